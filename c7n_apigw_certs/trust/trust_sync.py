"""``c7n-apigw-certs trust-sync``: a backend host keeps its trust file in step with a bundle.

No web server reads an SSM parameter or an S3 object: nginx, Envoy and Node read a file. The
rotation publishes the bundles (``publish.py``); a backend host runs this from cron, a systemd
timer or a sidecar::

    c7n-apigw-certs trust-sync --from ssm:/apigw/client-certs/abc123/prod \\
        --to /etc/nginx/apigw-trust.pem --reload 'nginx -s reload'

Each run reads the bundle, checks that it is a non-empty sequence of PEM certificates that
parse as X.509 (``bundles.split`` and ``pem.validity``, stdlib only; with ``cryptography``
installed, also its parser), and only when the content differs from the file:

1. writes it to a temporary file in the file's own directory, with the file's mode (0644 for a
   new file) and, where allowed, its owner, flushed to disk, then renames it over the file
   (``os.replace``: a reader sees the old file or the new one, never half of one);
2. runs the reload command (a shell command line), if any;
3. if the reload fails (non-zero exit, or no exit within ``--reload-timeout``), puts the old
   file back the same way (or removes the new one if there was none) and fails.

Runs on one file never overlap: a lock file beside it (``exclusive``); a run that finds it held
changes nothing and fails. Any failure (the bundle is missing, unreadable, access is denied,
it is not PEM certificates, the file cannot be written, the reload fails) leaves the old file
as it was, prints one line naming the source and the cause on stderr, and exits 1. An
unchanged bundle writes nothing and reloads nothing, so running it every minute is cheap and
idempotent. Exit 0 otherwise.

``--format nginx-map`` writes the certificates' SHA-1 fingerprints as an nginx ``map`` include
instead of the PEMs (``as_nginx_map``: why nginx needs it during a rotation of API Gateway's
own certificates).

Its IAM is ``c7n-apigw-certs iam --trust-sync SOURCE``: ``ssm:GetParameter`` on the parameter,
or ``s3:GetObject`` on the object, nothing else (``iam_resources``).
"""
import base64
import contextlib
import fcntl
import hashlib
import os
import re
import subprocess
import sys
import tempfile

from . import bundles
from ..audit import pem

DEFAULT_MODE = 0o644
DEFAULT_RELOAD_TIMEOUT = 60
_S3 = re.compile(r"s3://([^/]+)/(.+)")


class SyncError(Exception):
    """A run that changed nothing on disk (or put the old file back); the message says why."""


class Source:
    """Where a bundle is read: ``ssm:NAME`` or ``s3://BUCKET/KEY``."""

    def __init__(self, text):
        self.text = text
        if text.startswith("ssm:") and len(text) > 4:
            self.kind, self.parts = "ssm", (text[4:],)
        elif _S3.fullmatch(text):
            self.kind, self.parts = "s3", _S3.fullmatch(text).groups()
        else:
            raise ValueError("%r is not ssm:NAME or s3://BUCKET/KEY" % text)

    def __str__(self):
        return self.text

    def iam_resources(self):
        """{action: [ARN pattern]}: exactly this parameter or object (``iam.py``'s notation;
        the name is literal, so IAM's special characters are escaped)."""
        from ..iam import LITERAL
        escape = lambda s: "".join(LITERAL.get(c, c) for c in s)  # noqa: E731
        if self.kind == "ssm":
            return {"ssm:GetParameter": [
                "arn:${Partition}:ssm:${Region}:${Account}:parameter/"
                + escape(self.parts[0].lstrip("/"))]}
        bucket, key = self.parts
        return {"s3:GetObject": ["arn:${Partition}:s3:::%s/%s" % (escape(bucket), escape(key))]}

    def read(self, session, region=None):
        """The bundle's text; ``SyncError`` naming the cause."""
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            if self.kind == "ssm":
                client = session.client("ssm", region_name=region)
                return client.get_parameter(Name=self.parts[0])["Parameter"]["Value"]
            client = session.client("s3", region_name=region)
            body = client.get_object(Bucket=self.parts[0], Key=self.parts[1])["Body"].read()
        except ClientError as e:
            raise SyncError(self.explain(e)) from e
        except BotoCoreError as e:
            raise SyncError("cannot reach the store: %s: %s" % (type(e).__name__, e)) from e
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SyncError("the object is not UTF-8 text (%s)" % e) from e

    def explain(self, error):
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("ParameterNotFound", "NoSuchKey", "NoSuchBucket", "404"):
            return "the bundle does not exist (%s)" % code
        if code in ("AccessDenied", "AccessDeniedException", "403"):
            hint = ""
            if self.kind == "s3":
                # Without s3:ListBucket, S3 answers AccessDenied for a missing key too (fact 25).
                hint = "; or the object does not exist and s3:ListBucket is not granted"
            return "access denied (%s)%s: grant what `c7n-apigw-certs iam --trust-sync %s` " \
                "prints" % (code, hint, self.text)
        return "cannot read the bundle: %s" % error


def check(text):
    """The number of certificates in ``text``; ``SyncError`` unless it is a non-empty sequence
    of PEM certificates that parse."""
    try:
        pems = bundles.split(text)
    except bundles.BundleError as e:
        raise SyncError(str(e)) from e
    if not pems:
        raise SyncError("the bundle is empty: no backend can trust anything from it")
    for index, one in enumerate(pems, 1):
        try:
            pem.validity(one, "certificate %d of %d" % (index, len(pems)))
        except pem.CertificateError as e:
            raise SyncError("not a PEM certificate bundle: %s" % e) from e
        _strict_parse(one, index, len(pems))
    return len(pems)


def _strict_parse(one, index, count):
    try:
        from cryptography import x509
    except ImportError:  # the stdlib check above stands alone
        return
    try:
        x509.load_pem_x509_certificate(one.encode("ascii"))
    except ValueError as e:
        raise SyncError("not a PEM certificate bundle: certificate %d of %d: %s"
                        % (index, count, e)) from e


def fingerprint(one):
    """SHA-1 of the certificate's DER, lowercase hex: nginx's ``$ssl_client_fingerprint``."""
    body = one.split("-----BEGIN CERTIFICATE-----", 1)[1].split("-----END CERTIFICATE-----")[0]
    return hashlib.sha1(base64.b64decode("".join(body.split()))).hexdigest()


def as_pem(text):
    """The bundle as it is stored: what ``ssl_client_certificate``, Envoy's
    ``trusted_ca`` and Node's ``ca`` read."""
    return text.encode("utf-8")


def as_nginx_map(text):
    """One ``map`` entry per certificate, ``<fingerprint> 1;``, for nginx's
    ``map $ssl_client_fingerprint`` with ``ssl_verify_client optional_no_ca``: OpenSSL trusts only
    one of several self-signed certificates that share a subject name, as every API Gateway
    client certificate does (docs/aws-behaviour.md, fact 156), so a bundle of two cannot carry a
    rotation; a pinned fingerprint can."""
    lines = ["# c7n-apigw-certs trust-sync: SHA-1 fingerprints of the trusted client "
             "certificates\n"]
    lines += ["%s 1;\n" % fingerprint(one) for one in bundles.split(text)]
    return "".join(lines).encode("ascii")


FORMATS = {"pem": as_pem, "nginx-map": as_nginx_map}


def read_file(path):
    """The file's bytes, or None if there is none."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def write_atomically(path, data, like=None):
    """Replace ``path`` with ``data``: a temporary file beside it, with the mode (and owner,
    where allowed) of ``like`` (an ``os.stat_result``) or 0644, synced, then renamed over it."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, (like.st_mode & 0o7777) if like else DEFAULT_MODE)
        if like is not None:
            try:
                os.chown(tmp, like.st_uid, like.st_gid)
            except PermissionError:
                pass  # not root: the file becomes ours, its mode kept
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _sync_directory(directory)


def _sync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory; the rename is still atomic
    finally:
        os.close(fd)


def reload(command, timeout):
    """Run the reload command line; None when it succeeded, else what went wrong."""
    try:
        proc = subprocess.run(command, shell=True, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return "the reload command did not finish within %d s" % timeout
    if proc.returncode:
        output = " ".join((proc.stderr or proc.stdout or "").split())[-500:]
        return "the reload command exited %d%s" % (
            proc.returncode, ": %s" % output if output else "")
    return None


@contextlib.contextmanager
def exclusive(path):
    """One run at a time per file (cron can start one while another still reloads): a lock
    on ``.<name>.trust-sync.lock`` beside it; a run that finds it taken changes nothing."""
    lock = os.path.join(os.path.dirname(os.path.abspath(path)),
                        ".%s.trust-sync.lock" % os.path.basename(path))
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise SyncError("cannot open the lock %s: %s" % (lock, e)) from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SyncError("another trust-sync is updating it (%s is locked)" % lock) from None
        yield
    finally:
        os.close(fd)


def sync(source, path, reload_command=None, session=None, region=None,
         reload_timeout=DEFAULT_RELOAD_TIMEOUT, form="pem"):
    """One run (see the module's docstring): ``"unchanged"`` or ``"updated"``, or
    ``SyncError``. The file is the old one after any failure."""
    import boto3
    session = session or boto3.Session()
    text = source.read(session, region)
    count = check(text)
    with exclusive(path):
        return _replace(path, FORMATS[form](text), count, reload_command, reload_timeout)


def _replace(path, data, count, reload_command, reload_timeout):
    old = read_file(path)
    if old == data:
        return "unchanged", count
    like = os.stat(path) if old is not None else None
    try:
        write_atomically(path, data, like)
    except OSError as e:
        raise SyncError("cannot write %s: %s; the old file is kept" % (path, e)) from e
    if reload_command:
        failure = reload(reload_command, reload_timeout)
        if failure:
            try:
                restore(path, old, like)
            except OSError as e:
                raise SyncError("%s, and the old file could not be put back: %s" % (
                    failure, e)) from e
            raise SyncError("%s; %s" % (failure, "the old file is back in place" if old is not None
                                        else "the new file is removed (there was none before)"))
    return "updated", count


def restore(path, old, like):
    if old is None:
        os.unlink(path)
    else:
        write_atomically(path, old, like)


def main(args):
    """The command (``cli.py``): one line on stdout when it worked, on stderr and exit 1
    when it did not."""
    try:
        source = Source(args.source)
    except ValueError as e:
        sys.stderr.write("c7n-apigw-certs trust-sync: --from %s\n" % e)
        sys.exit(2)
    try:
        outcome, count = sync(source, args.to, args.reload, region=args.region,
                              reload_timeout=args.reload_timeout, form=args.format)
    except SyncError as e:
        sys.stderr.write("c7n-apigw-certs trust-sync: %s -> %s: %s; %s unchanged\n" % (
            source, args.to, e, args.to))
        sys.exit(1)
    if outcome == "updated":
        sys.stdout.write("c7n-apigw-certs trust-sync: %s updated from %s (%d certificates)%s\n"
                         % (args.to, source, count, ", reloaded" if args.reload else ""))
    else:
        sys.stdout.write("c7n-apigw-certs trust-sync: %s unchanged (%d certificates)\n"
                         % (args.to, count))

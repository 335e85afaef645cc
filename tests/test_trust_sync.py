"""``c7n-apigw-certs trust-sync``: the installed command against the sandbox, the trust file
read back after every run. Every failure leaves the old file exactly as it was."""
import base64
import json
import os
import stat

import pytest
from conftest import ACCOUNT, REGION, assume_role_allowed, client, make_cert, run_cli

PARAMETER = "/apigw/client-certs/abc123/prod"
BUCKET, KEY = "trust-bundles", "apigw/abc123/prod.pem"


def pem_of(cert_id):
    return client("apigateway").get_client_certificate(
        clientCertificateId=cert_id)["pemEncodedCertificate"]


def bundle(*cert_ids):
    return "".join(pem_of(c).strip() + "\n" for c in cert_ids)


def put_parameter(value, name=PARAMETER):
    client("ssm").put_parameter(Name=name, Value=value, Type="String", Overwrite=True)


def put_object(value, key=KEY):
    s3 = client("s3")
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=key, Body=value.encode())


class Backend:
    """A trust file, and a reload command that records each time it runs."""

    def __init__(self, tmp_path):
        self.dir = tmp_path / "nginx"
        self.dir.mkdir()
        self.path = self.dir / "apigw-trust.pem"
        self.reloads = tmp_path / "reloads"
        self.reload = "echo reloaded >> %s" % self.reloads

    def reload_count(self):
        return len(self.reloads.read_text().splitlines()) if self.reloads.exists() else 0

    def leftovers(self):
        """Files beside the trust file but its lock: temporary files left behind."""
        return sorted(p.name for p in self.dir.iterdir()
                      if p != self.path and not p.name.endswith(".trust-sync.lock"))


def sync(sandbox, backend, source="ssm:" + PARAMETER, reload=None, env=None, check=False):
    args = ["trust-sync", "--from", source, "--to", str(backend.path)]
    if reload is not False:
        args += ["--reload", reload or backend.reload]
    return run_cli("c7n-apigw-certs", args, env or sandbox.env, check=check)


def content(backend):
    """The file as stored (``read_text`` would turn API Gateway's ``\\r\\n`` into ``\\n``)."""
    return backend.path.read_bytes().decode()


@pytest.fixture
def backend(tmp_path):
    return Backend(tmp_path)


def test_writes_then_leaves_an_unchanged_bundle_alone(sandbox, backend):
    first, second = make_cert(sandbox, 30), make_cert(sandbox, 300)
    put_parameter(bundle(first))
    proc = sync(sandbox, backend)
    assert proc.returncode == 0, proc.stderr
    assert "updated from ssm:%s (1 certificates), reloaded" % PARAMETER in proc.stdout
    assert content(backend) == bundle(first)
    assert stat.S_IMODE(backend.path.stat().st_mode) == 0o644
    assert backend.reload_count() == 1

    again = sync(sandbox, backend)  # idempotent: nothing written, nothing reloaded
    assert again.returncode == 0 and "unchanged (1 certificates)" in again.stdout
    assert backend.reload_count() == 1

    put_parameter(bundle(first, second))
    assert sync(sandbox, backend).returncode == 0
    assert content(backend) == bundle(first, second)
    assert backend.reload_count() == 2
    assert backend.leftovers() == []  # no temporary file left beside it


def test_from_s3_keeps_the_file_mode(sandbox, backend):
    cert = make_cert(sandbox, 30)
    backend.path.write_text("old\n")
    os.chmod(backend.path, 0o640)
    put_object(bundle(cert))
    proc = sync(sandbox, backend, "s3://%s/%s" % (BUCKET, KEY))
    assert proc.returncode == 0, proc.stderr
    assert content(backend) == bundle(cert)
    assert stat.S_IMODE(backend.path.stat().st_mode) == 0o640


@pytest.mark.parametrize("source, cause", [
    ("ssm:/apigw/client-certs/none/prod", "the bundle does not exist (ParameterNotFound)"),
    ("s3://%s/apigw/none.pem" % BUCKET, "the bundle does not exist (NoSuchKey)"),
])
def test_a_missing_bundle_keeps_the_old_file(sandbox, backend, source, cause):
    put_object(bundle(make_cert(sandbox, 30)))
    backend.path.write_text("the old trust\n")
    proc = sync(sandbox, backend, source)
    assert proc.returncode == 1
    assert "trust-sync: %s -> %s: %s; %s unchanged" % (
        source, backend.path, cause, backend.path) in proc.stderr
    assert content(backend) == "the old trust\n"
    assert backend.reload_count() == 0


def block(data):
    return "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % (
        base64.b64encode(data).decode())


@pytest.mark.parametrize("value, cause", [
    ("not a bundle", "holds text outside any CERTIFICATE block"),
    (block(b"\x30\x03\x02\x01\x01"), "certificate 2 of 2: not an X.509 certificate"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n",
     "holds a RSA PRIVATE KEY block"),
])
def test_a_malformed_bundle_keeps_the_old_file(sandbox, backend, value, cause):
    good = make_cert(sandbox, 30)
    put_parameter(bundle(good))
    assert sync(sandbox, backend).returncode == 0
    put_parameter(bundle(good) + value)
    proc = sync(sandbox, backend)
    assert proc.returncode == 1
    assert cause in proc.stderr
    assert "-----BEGIN" not in proc.stderr  # the content is never echoed
    assert content(backend) == bundle(good)
    assert backend.reload_count() == 1


def test_an_empty_object_is_refused(sandbox, backend):
    put_object("")
    backend.path.write_text("the old trust\n")
    proc = sync(sandbox, backend, "s3://%s/%s" % (BUCKET, KEY))
    assert proc.returncode == 1 and "the bundle is empty" in proc.stderr
    assert content(backend) == "the old trust\n"


def test_a_failing_reload_puts_the_old_file_back(sandbox, backend):
    first, second = make_cert(sandbox, 30), make_cert(sandbox, 300)
    put_parameter(bundle(first))
    assert sync(sandbox, backend).returncode == 0
    os.chmod(backend.path, 0o600)
    put_parameter(bundle(first, second))
    proc = sync(sandbox, backend, reload="echo 'nginx: [emerg] bad' >&2; exit 3")
    assert proc.returncode == 1
    assert "the reload command exited 3: nginx: [emerg] bad; the old file is back in place" \
        in proc.stderr
    assert content(backend) == bundle(first)
    assert stat.S_IMODE(backend.path.stat().st_mode) == 0o600
    assert backend.leftovers() == []
    # The next run tries again: the bundle still differs from the file.
    assert sync(sandbox, backend).returncode == 0
    assert content(backend) == bundle(first, second)


def test_a_failing_reload_of_a_new_file_removes_it(sandbox, backend):
    put_parameter(bundle(make_cert(sandbox, 30)))
    proc = sync(sandbox, backend, reload="exit 1")
    assert proc.returncode == 1
    assert "the new file is removed (there was none before)" in proc.stderr
    assert not backend.path.exists() and backend.leftovers() == []


def test_a_reload_that_hangs_is_a_failure(sandbox, backend):
    put_parameter(bundle(make_cert(sandbox, 30)))
    backend.path.write_text("the old trust\n")
    args = ["trust-sync", "--from", "ssm:" + PARAMETER, "--to", str(backend.path),
            "--reload", "sleep 30", "--reload-timeout", "1"]
    proc = run_cli("c7n-apigw-certs", args, sandbox.env, check=False)
    assert proc.returncode == 1 and "did not finish within 1 s" in proc.stderr
    assert content(backend) == "the old trust\n"


def test_a_source_that_is_neither_is_a_usage_error(sandbox, backend):
    proc = sync(sandbox, backend, "parameter:/x")
    assert proc.returncode == 2 and "is not ssm:NAME or s3://BUCKET/KEY" in proc.stderr


# -- IAM: the generated document is enough, and nothing more ---------------------------------
def generated(*sources):
    args = ["iam", "--region", REGION, "--account", ACCOUNT]
    for source in sources:
        args += ["--trust-sync", source]
    return json.loads(run_cli("c7n-apigw-certs", args, dict(os.environ)).stdout)


def test_iam_document_names_exactly_the_source():
    assert generated("ssm:" + PARAMETER, "s3://%s/%s" % (BUCKET, KEY)) == {
        "Version": "2012-10-17", "Statement": [
            {"Sid": "S3GetObject", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": ["arn:aws:s3:::%s/%s" % (BUCKET, KEY)]},
            {"Sid": "SsmGetParameter", "Effect": "Allow", "Action": ["ssm:GetParameter"],
             "Resource": ["arn:aws:ssm:%s:%s:parameter%s" % (REGION, ACCOUNT, PARAMETER)]},
        ]}


def role_env(sandbox, role_arn):
    creds = client("sts").assume_role(RoleArn=role_arn, RoleSessionName="backend")["Credentials"]
    return dict(sandbox.env, AWS_ACCESS_KEY_ID=creds["AccessKeyId"],
                AWS_SECRET_ACCESS_KEY=creds["SecretAccessKey"],
                AWS_SESSION_TOKEN=creds["SessionToken"])


@pytest.mark.parametrize("source", ["ssm:" + PARAMETER, "s3://%s/%s" % (BUCKET, KEY)])
def test_the_generated_iam_is_enough_and_another_source_is_denied(sandbox, backend, source):
    cert = make_cert(sandbox, 30)
    put_parameter(bundle(cert))
    put_parameter(bundle(cert), name="/apigw/client-certs/other/prod")
    put_object(bundle(cert))
    put_object(bundle(cert), key="apigw/other/prod.pem")
    env = role_env(sandbox, assume_role_allowed(generated(source)))
    proc = sync(sandbox, backend, source, env=env)
    assert proc.returncode == 0, proc.stderr
    assert content(backend) == bundle(cert)

    other = source.replace("abc123/prod", "other/prod")
    backend.path.write_text("the old trust\n")
    refused = sync(sandbox, backend, other, env=env)
    assert refused.returncode == 1
    assert "access denied (AccessDenied" in refused.stderr
    assert "c7n-apigw-certs iam --trust-sync %s" % other in refused.stderr
    assert content(backend) == "the old trust\n"


def test_nginx_map_format_writes_the_fingerprints(sandbox, backend):
    """--format nginx-map: one ``<sha1> 1;`` line per certificate, nginx's
    ``$ssl_client_fingerprint`` (the SHA-1 of the DER, lowercase hex)."""
    import hashlib
    import ssl
    first, second = make_cert(sandbox, 30), make_cert(sandbox, 300)
    put_parameter(bundle(first, second))
    args = ["trust-sync", "--from", "ssm:" + PARAMETER, "--to", str(backend.path),
            "--format", "nginx-map"]
    assert run_cli("c7n-apigw-certs", args, sandbox.env).returncode == 0
    expected = [hashlib.sha1(ssl.PEM_cert_to_DER_cert(pem_of(c).replace("\r", ""))).hexdigest()
                for c in (first, second)]
    lines = content(backend).splitlines()
    assert lines[0].startswith("# ") and lines[1:] == ["%s 1;" % f for f in expected]
    again = run_cli("c7n-apigw-certs", args, sandbox.env)
    assert "unchanged (2 certificates)" in again.stdout


def test_a_run_while_another_holds_the_file_changes_nothing(sandbox, backend):
    import fcntl
    put_parameter(bundle(make_cert(sandbox, 30)))
    backend.path.write_text("the old trust\n")
    lock = backend.dir / ".apigw-trust.pem.trust-sync.lock"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = sync(sandbox, backend)
    assert proc.returncode == 1 and "another trust-sync is updating it" in proc.stderr
    assert content(backend) == "the old trust\n" and backend.reload_count() == 0
    assert sync(sandbox, backend).returncode == 0  # released: the next run goes through

"""Real TLS from the stages to backends that require a client certificate.

API Gateway presents a stage's client certificate to an HTTP backend (docs/aws-behaviour.md,
fact 9); the backend accepts the handshake only if the certificate is in its trust file. The
probe plays the stage's side of that handshake, with what the stage presents *at that moment*
(the sandbox's ``presented_certificate``: after its last deployment under the switch
``needs_deployment``, an ACM certificate's current version with its chain) and the private key
the sandbox keeps for every certificate it mints, and asks a real backend:

- ``Nginx``: Debian's nginx, a non-daemon master with its own prefix, configuration and ports
  under a directory of the caller's, one ``server`` per stage with ``ssl_verify_client on`` and
  ``ssl_client_certificate`` the file ``trust-sync`` maintains;
- ``TlsServer``: a Python ``ssl`` server with ``CERT_REQUIRED`` that verifies against a bundle
  held in memory, e.g. a load balancer's trust store as the sandbox holds it, or a stand-in for
  nginx where nginx is not installed.

Each request is one TCP connection: the handshake with the presented certificate (and its
chain: an ACM certificate's intermediates are sent with it), ``GET /``, the answer read. The
backend answers ``SUCCESS <serial>`` when it verified the certificate. A request is

- ``accepted``: 200 and ``SUCCESS``;
- ``refused``: the handshake failed with an alert, or nginx's 400 "The SSL certificate error"
  (nginx completes the handshake with an untrusted certificate and refuses the request,
  fact 157);
- ``expired``: refused, and the certificate presented had expired by the backend's clock (the
  real one): a stage that was broken before any rotation, which no trust file can mend;
- ``error``: anything else (a backend that is down, a timeout), never counted as either.

A stage counts when one of its API's methods (REST) or routes' integrations (WebSocket) is of
type ``HTTP`` or ``HTTP_PROXY``: only those send the client certificate (fact 9).
"""
import collections
import datetime
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

from ..audit import pem

ACCOUNT = "123456789012"
HTTP_TYPES = ("HTTP", "HTTP_PROXY")
ACCEPTED, REFUSED, ERROR = "accepted", "refused", "error"
EXPIRED = "expired"  # refused, and the certificate presented had expired: not a trust gap
TIMEOUT = 10
# An error-log line about one connection ("<pid>#<tid>: *<connection> ..."), not the processes.
CONNECTION_LINE = re.compile(r"\d+#\d+: \*\d+ ")


class ProbeError(Exception):
    """The probe or a backend could not be set up; the message says what."""


Stage = collections.namedtuple("Stage", "region protocol api_id name")
Stage.label = property(lambda s: "stage:%s/%s" % (s.api_id, s.name))
# ``backend``: the name of the stage's backend when it has several (``Probe``'s ``route``), else
# None.
Result = collections.namedtuple("Result", "phase stage certificate outcome detail backend",
                                defaults=(None,))


def http_stages(session, regions):
    """Every REST and WebSocket stage whose API has an HTTP integration, sorted."""
    found = []
    for region in regions:
        rest = session.client("apigateway", region_name=region)
        for api in rest.get_rest_apis(limit=500)["items"]:
            if _rest_has_http(rest, api["id"]):
                found += [Stage(region, "REST", api["id"], s["stageName"])
                          for s in rest.get_stages(restApiId=api["id"])["item"]]
        v2 = session.client("apigatewayv2", region_name=region)
        for api in v2.get_apis()["Items"]:
            if api.get("ProtocolType") != "WEBSOCKET":
                continue
            if any(i.get("IntegrationType") in HTTP_TYPES
                   for i in v2.get_integrations(ApiId=api["ApiId"])["Items"]):
                found += [Stage(region, "WEBSOCKET", api["ApiId"], s["StageName"])
                          for s in v2.get_stages(ApiId=api["ApiId"])["Items"]]
    return sorted(found)


def _rest_has_http(client, api_id):
    for resource in client.get_resources(restApiId=api_id, embed=["methods"])["items"]:
        for method in (resource.get("resourceMethods") or {}).values():
            integration = method.get("methodIntegration") or {}
            if integration.get("type") in HTTP_TYPES:
                return True
    return False


class Presented:
    """What each stage presents now: certificate, chain and key, read from the sandbox, and
    written to files once per certificate version (``ssl`` loads a client certificate from
    files only)."""

    def __init__(self, control, session, workdir, account=ACCOUNT):
        self.control, self.session, self.account = control, session, account
        self.workdir = workdir
        self.files, self.not_after = {}, {}

    def of(self, stage):
        """(certificate id or ARN, path of the PEM file with the chain, path of the key)."""
        answer = self.control.presented_certificate(
            self.account, stage.region, stage.api_id, stage.name, stage.protocol)
        cert_id = answer.get("certificate_id_or_arn") or answer.get("presented")
        if not cert_id:
            return None, None, None
        certificate, chain = answer["certificate_pem"], answer.get("chain_pem") or ""
        key = answer.get("private_key_pem")
        if not key:
            raise ProbeError("the sandbox has no private key for %s" % cert_id)
        # A renewed ACM certificate keeps its ARN: its files are named by its serial too.
        name = "%s-%s" % (cert_id, pem.validity(certificate, cert_id)[1].strftime("%Y%m%d%H%M%S"))
        if name not in self.files:
            base = os.path.join(self.workdir, name.replace("/", "_").replace(":", "_"))
            with open(base + ".pem", "w") as fh:
                fh.write(certificate.strip() + "\n" + (chain.strip() + "\n" if chain else ""))
            with open(base + ".key", "w") as fh:
                fh.write(key)
            os.chmod(base + ".key", 0o600)
            self.files[name] = (base + ".pem", base + ".key")
            self.not_after[cert_id] = pem.not_after(certificate, cert_id)
        return (cert_id,) + self.files[name]

    def expired(self, cert_id):
        return self.not_after[cert_id] <= datetime.datetime.now(datetime.timezone.utc)


def request(address, certfile, keyfile, timeout=TIMEOUT):
    """One connection presenting the certificate: (outcome, detail)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the stage's side: the backend's own certificate
    context.load_cert_chain(certfile, keyfile)  # is not what is proven here
    try:
        with socket.create_connection(address, timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname="backend.example.com") as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: backend.example.com\r\n"
                            b"Connection: close\r\n\r\n")
                answer = b""
                while True:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
    except ssl.SSLError as e:
        return REFUSED, "TLS alert: %s" % (e.reason or e)
    except (ConnectionResetError, BrokenPipeError) as e:
        # TLS 1.3: the server's alert can arrive as a reset after the client's Finished.
        return REFUSED, "connection closed in the handshake: %s" % e
    except OSError as e:
        return ERROR, "%s: %s" % (type(e).__name__, e)
    head, _, body = answer.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1:2]
    if status == [b"200"] and body.startswith(b"SUCCESS"):
        return ACCEPTED, body.decode(errors="replace").strip()
    if status == [b"400"] and b"SSL certificate error" in body:
        return REFUSED, "nginx: 400 The SSL certificate error"
    return ERROR, "unexpected answer: %r" % answer[:200]


class Probe:
    """Requests through stages to their backends, counted by phase. ``route(stage)`` is the
    (host, port) of the stage's backend, or {backend name: (host, port)} when it has several
    (a request to each, each result naming its backend); ``phase`` is the label counted
    against."""

    def __init__(self, control, session, stages, route, workdir):
        self.stages, self.route = list(stages), route
        self.presented = Presented(control, session, workdir)
        self.phase = "start"
        self.results = []
        self.lock = threading.Lock()
        self.turn = threading.Lock()  # one round at a time: the background's or a caller's
        self._stop = threading.Event()
        self._thread = None

    def once(self, stage):
        """A request through the stage to each of its backends: their results."""
        phase = self.phase
        cert_id, certfile, keyfile = self.presented.of(stage)
        routes = self.route(stage)
        if not isinstance(routes, dict):
            routes = {None: routes}
        results = []
        for backend, address in routes.items():
            if cert_id is None:
                results.append(Result(phase, stage.label, None, ERROR,
                                      "the stage presents no certificate", backend))
                continue
            outcome, detail = request(address, certfile, keyfile)
            if outcome == REFUSED and self.presented.expired(cert_id):
                outcome = EXPIRED
            results.append(Result(phase, stage.label, cert_id, outcome, detail, backend))
        with self.lock:
            self.results.extend(results)
        return results

    def round(self):
        """One request through every stage to each of its backends."""
        with self.turn:
            return [r for stage in self.stages for r in self.once(stage)]

    # -- continuous requests in the background ------------------------------------------
    def start(self, pause=0.1):
        """Rounds in the background until ``stop``, ``pause`` seconds apart (room for the
        runs being probed, on a small machine)."""
        self.pause = pause
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.pause):
            try:
                self.round()
            except Exception as e:  # noqa: BLE001 - recorded, and the proof fails on it
                with self.lock:
                    self.results.append(Result(self.phase, "-", None, ERROR,
                                               "%s: %s" % (type(e).__name__, e)))
                self._stop.wait(0.2)

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=60)
        self._thread = None

    # -- the figures ----------------------------------------------------------------------
    def figures(self, backend=None):
        """{phase: {"requests", "accepted", "refused", "errors"}} in the order phases came;
        ``backend``: only the requests to backends of that name."""
        out = {}
        with self.lock:
            results = [r for r in self.results if backend in (None, r.backend)]
        for r in results:
            row = out.setdefault(r.phase, {"requests": 0, ACCEPTED: 0, REFUSED: 0, EXPIRED: 0,
                                           "errors": 0})
            row["requests"] += 1
            row["errors" if r.outcome == ERROR else r.outcome] += 1
        return out

    def of_phase(self, phase, outcome=None, backend=None):
        with self.lock:
            return [r for r in self.results if r.phase == phase
                    and outcome in (None, r.outcome) and backend in (None, r.backend)]


def figures_table(figures):
    """The figures as a table; ``expired`` counts refusals of a certificate already expired."""
    lines = ["%-24s %8s %8s %8s %8s %6s" % (
        "phase", "requests", "accepted", "refused", "expired", "errors")]
    for phase, row in figures.items():
        lines.append("%-24s %8d %8d %8d %8d %6d" % (
            phase, row["requests"], row[ACCEPTED], row[REFUSED], row[EXPIRED], row["errors"]))
    return "\n".join(lines)


# -- backends ---------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_identity(directory):
    """A self-signed certificate and key for the backend's own side, as files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "backend.example.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    certfile, keyfile = os.path.join(directory, "server.pem"), os.path.join(directory,
                                                                             "server.key")
    with open(certfile, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(keyfile, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    os.chmod(keyfile, 0o600)
    return certfile, keyfile


def nginx_binary():
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
  access_log {prefix}/access.log;
  client_body_temp_path {prefix}/tmp/body;
  proxy_temp_path {prefix}/tmp/proxy;
  fastcgi_temp_path {prefix}/tmp/fastcgi;
  uwsgi_temp_path {prefix}/tmp/uwsgi;
  scgi_temp_path {prefix}/tmp/scgi;
  default_type text/plain;
{servers}}}
"""
NGINX_SERVER = """\
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {prefix}/server.pem;
    ssl_certificate_key {prefix}/server.key;
{verify}    location / {{ {check}return 200 "SUCCESS $ssl_client_serial\\n"; }}
  }}
"""
# ``verify``: nginx's chain verification against the trust file (a CA bundle).
VERIFY = """\
    ssl_client_certificate {trust};
    ssl_verify_client on;
    ssl_verify_depth 3;
"""
# ``pinned``: the client must send a certificate, and its SHA-1 fingerprint must be in the map
# file that ``trust-sync --format nginx-map`` writes; 495 is nginx's "The SSL certificate
# error" (fact 159).
PINNED = """\
    ssl_verify_client optional_no_ca;
"""
PINNED_MAP = """\
  map $ssl_client_fingerprint $apigw_trusted_{index} {{
    default 0;
    include {trust};
  }}
"""
PINNED_CHECK = "if ($apigw_trusted_{index} = 0) {{ return 495; }} "
MODES = ("verify", "pinned")


class Nginx:
    """nginx in the foreground, one TLS server per site, each with its own trust file and
    port; ``reload_command`` is what ``trust-sync --reload`` runs: ``nginx -t`` then
    ``nginx -s reload``, each of which loads the trust files and exits 1 when one does not load
    (fact 158), so trust-sync puts the old file back before the master ever sees the new one."""

    def __init__(self, prefix, sites, binary=None, mode="verify"):
        """``sites``: {name: trust file path}; each file must exist (nginx refuses to start
        without it). ``mode``: ``verify`` (the file is a PEM bundle, ``ssl_verify_client on``)
        or ``pinned`` (the file is a fingerprint map, ``trust-sync --format nginx-map``)."""
        if mode not in MODES:
            raise ValueError("mode: one of %s, not %r" % (", ".join(MODES), mode))
        self.mode = mode
        self.binary = binary or nginx_binary()
        if not self.binary:
            raise ProbeError("nginx is not installed (Debian: apt-get install -y nginx)")
        self.prefix = str(prefix)
        self.sites = dict(sites)
        self.ports = {}
        self.proc = None

    @property
    def conf(self):
        return os.path.join(self.prefix, "nginx.conf")

    def command(self, *args):
        return [self.binary, "-p", self.prefix, "-c", self.conf, "-e",
                os.path.join(self.prefix, "error.log")] + list(args)

    @property
    def reload_command(self):
        return "%s && %s" % (" ".join(self.command("-t", "-q")),
                             " ".join(self.command("-s", "reload")))

    def address(self, name):
        return ("127.0.0.1", self.ports[name])

    def start(self, attempts=3):
        os.makedirs(os.path.join(self.prefix, "tmp"), exist_ok=True)
        server_identity(self.prefix)
        for _ in range(attempts):
            self.ports = {name: free_port() for name in self.sites}
            with open(self.conf, "w") as fh:
                fh.write(self.configuration())
            self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
            if self._ready():
                return self
            self.stop()
            if "Address already in use" not in self.log():
                break
        raise ProbeError("nginx did not start:\n" + self.log()[-3000:])

    def configuration(self):
        servers = ""
        for index, (name, trust) in enumerate(sorted(self.sites.items())):
            pinned = self.mode == "pinned"
            if pinned:
                servers += PINNED_MAP.format(index=index, trust=trust)
            servers += NGINX_SERVER.format(
                port=self.ports[name], prefix=self.prefix,
                verify=PINNED if pinned else VERIFY.format(trust=trust),
                check=PINNED_CHECK.format(index=index) if pinned else "")
        return NGINX_CONF.format(prefix=self.prefix, servers=servers)

    def _ready(self, timeout=15):
        deadline = time.monotonic() + timeout
        waiting = set(self.ports.values())
        while waiting and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            for port in list(waiting):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    waiting.discard(port)
                except OSError:
                    pass
            time.sleep(0.05)
        return not waiting

    def log_size(self):
        try:
            return os.path.getsize(os.path.join(self.prefix, "error.log"))
        except FileNotFoundError:
            return 0

    def settle(self, since, timeout=15, quiet=0.3, coalesced=1.0):
        """Wait for the reloads signalled after the log had ``since`` bytes: nginx starts new
        workers after the signal's command has returned (fact 158). In the error log
        (measured, nginx 1.22.1), each ``nginx -s reload`` writes ``signal process started``
        before it exits, and the master, once it acts, ``signal 1 (SIGHUP) received ...,
        reconfiguring`` and then ``start worker processes``. Done when the master has taken a
        signal for each one sent, new workers started after the last, and the processes'
        lines (not the requests': the probe's go on meanwhile) have been quiet for ``quiet``
        seconds; signals that came together may be taken as one, so after ``coalesced``
        quiet seconds fewer taken than sent will do. False at ``timeout``."""
        deadline = time.monotonic() + timeout
        last, changed = None, time.monotonic()
        while time.monotonic() < deadline:
            lines = [line for line in self.log()[since:].splitlines()
                     if not CONNECTION_LINE.search(line)]
            if lines != last:
                last, changed = lines, time.monotonic()
            else:
                sent = sum("signal process started" in line for line in lines)
                taken = [i for i, line in enumerate(lines) if "(SIGHUP) received" in line]
                started = [i for i, line in enumerate(lines) if "start worker process" in line]
                still = time.monotonic() - changed
                if taken and started and started[-1] > taken[-1] and still >= quiet and (
                        len(taken) >= sent or still >= coalesced):
                    return True
            time.sleep(0.05)
        return False

    def log(self):
        try:
            with open(os.path.join(self.prefix, "error.log")) as fh:
                return fh.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish their requests
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class TlsServer:
    """A TLS server that requires a client certificate and verifies it against a bundle held
    in memory (``load``), answering ``SUCCESS <serial>`` like the nginx sites. As a load
    balancer in mutual-TLS verify mode does with its trust store, it verifies the whole chain
    the client sends up to a certificate of the bundle; a bundle swap applies to the next
    handshake."""

    def __init__(self, bundle):
        self.directory = tempfile.mkdtemp(prefix="c7n-apigw-tls-")
        self.certfile, self.keyfile = server_identity(self.directory)
        self.context = None
        self.load(bundle)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def load(self, bundle):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certfile, self.keyfile)
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=bundle)
        self.context = context

    def start(self):
        self._thread.start()
        return self

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._answer, args=(conn, self.context), daemon=True).start()

    @staticmethod
    def _answer(conn, context):
        conn.settimeout(TIMEOUT)
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(65536)
                serial = "%X" % int(tls.getpeercert()["serialNumber"], 16)
                body = ("SUCCESS %s\n" % serial).encode()
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close"
                            b"\r\n\r\n%s" % (len(body), body))
        except (ssl.SSLError, OSError):
            conn.close()  # the handshake failed: the alert went to the client

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class TrustStoreBackend(TlsServer):
    """A load balancer in mutual-TLS verify mode: it verifies against what the sandbox's ELB
    trust store holds (``SandboxClient.trust_store_bundle``, as the trust store last loaded it
    from S3, docs/aws-behaviour.md, fact 162), read again by ``refresh()`` (a load balancer
    picks up a trust store's new bundle by itself once it is ACTIVE)."""

    def __init__(self, control, trust_store_arn):
        self.control, self.trust_store_arn = control, trust_store_arn
        super().__init__(self._bundle())

    def _bundle(self):
        text = self.control.trust_store_bundle(self.trust_store_arn)
        if not text:
            raise ProbeError("no trust store %s in the sandbox" % self.trust_store_arn)
        return text

    def refresh(self):
        self.load(self._bundle())

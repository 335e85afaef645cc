"""Shared fixtures: one sandbox server for the session, reset before each test that uses it,
and helpers that run the real ``custodian`` and ``c7n-org`` command lines against it."""
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import boto3
import pytest
from botocore.config import Config

from c7n_apigw_certs.sandbox import timeshift
from c7n_apigw_certs.sandbox.remote import SandboxClient, environment
from c7n_apigw_certs.sandbox.seed import create_rest_stage
from warm import freeze_what_lasts, share_botocore_data

ACCOUNT = "123456789012"
REGION = "us-east-1"
BIN = os.path.dirname(sys.executable)
# No SDK retries in direct calls: a test sees exactly what the sandbox answered.
NO_RETRY = Config(retries={"total_max_attempts": 1})


def pytest_configure(config):
    share_botocore_data()  # botocore's data files parsed once for this process (tests/warm.py)


# The longest tests (measured: pytest --durations): started first, so that none of them is
# still running alone at the end while the other workers have finished.
LONGEST_FIRST = ("tests/test_demo.py::", "tests/test_trust_proof.py::",
                 "tests/test_rotate_e2e.py::test_stage_presenting_old_until_redeploy",
                 "tests/test_forgery.py::test_plan_says_what_each_following_run_does")


def pytest_collection_modifyitems(config, items):
    """The longest tests first, the rest in their order (the same on every worker)."""
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))


@pytest.fixture(scope="session")
def server():
    from c7n_apigw_certs.sandbox.server import SandboxServer
    # Not a log line per request into every test's captured log: a test reads the sandbox's
    # counters and answers, never werkzeug's access log.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    srv = SandboxServer(port=0).start()
    freeze_what_lasts()
    yield srv
    srv.stop()


@pytest.fixture
def sandbox(server, monkeypatch, tmp_path):
    """A fresh sandbox: controls and moto state reset; boto3 in this process points at it."""
    forget_clients()
    control = SandboxClient(server.endpoint)
    control.reset()
    for key, value in environment(server.endpoint, REGION).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOME", str(tmp_path))  # no c7n cache or AWS config from the machine
    control.env = dict(os.environ)
    return control


_CLIENTS = {}
# What a client is made from besides its arguments: the environment boto3 reads.
_CLIENT_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
               "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CONFIG_FILE",
               "AWS_SHARED_CREDENTIALS_FILE", "HOME")


def forget_clients():
    """Each test makes its own clients (their connections closed here, between tests)."""
    for made in _CLIENTS.values():
        made.close()
    _CLIENTS.clear()


def client(service, region=REGION, **kw):
    """A boto3 client with no retries, made once per test, service, region, arguments and
    environment: a client keeps no state but its connections."""
    key = (service, region, tuple(sorted(kw.items()))) + tuple(
        os.environ.get(name) for name in _CLIENT_ENV)
    if key not in _CLIENTS:
        _CLIENTS[key] = boto3.client(service, region_name=region, config=NO_RETRY, **kw)
    return _CLIENTS[key]


def make_cert(control, days, region=REGION, description="", account=ACCOUNT, **extra):
    """A certificate that expires in ``days`` days (negative: expired) at the sandbox's now."""
    return control.create_certificate(
        region=region, description=description, expires_in_days=days, account=account,
        **extra)["clientCertificateId"]


def make_acm_cert(control, kind, days, region=REGION, ca_arn=None, account=ACCOUNT, **extra):
    """An ACM certificate's ARN: ``kind`` "imported", "private" (issued by ``ca_arn``, or by a
    new root CA of the region when none is given) or "public", ending in ``days`` days
    (negative: expired) at the sandbox's now. ``extra``: ``domain``, ``client_auth``,
    ``key_type``, ``renewal`` ("eligible"/"ineligible"), ``tags``."""
    if kind == "private" and ca_arn is None:
        ca_arn = control.create_private_ca(region, "Test Root CA", account=account)["arn"]
    return control.create_acm_certificate(
        region, kind, days, ca_arn=ca_arn, account=account, **extra)["arn"]


def make_rest_stage(cert_id, api_name="api", stage="prod", region=REGION, api_id=None):
    apigw = client("apigateway", region)
    api_id = api_id or apigw.create_rest_api(name=api_name)["id"]
    create_rest_stage(apigw, api_id, stage, cert_id)
    return api_id


def make_websocket_stage(cert_id, api_name="ws", stage="live", region=REGION):
    v2 = client("apigatewayv2", region)
    api_id = v2.create_api(Name=api_name, ProtocolType="WEBSOCKET",
                           RouteSelectionExpression="$request.body.action")["ApiId"]
    v2.create_stage(ApiId=api_id, StageName=stage, ClientCertificateId=cert_id)
    return api_id


def write_policy(tmp_path, policy, name="policy.yml"):
    path = tmp_path / name
    path.write_text(json.dumps({"policies": policy if isinstance(policy, list) else [policy]}))
    return str(path)


class WarmRunner:
    """The installed command lines run forked from one warm interpreter per test worker
    (tests/warm.py says what that keeps and what it does not); started on first use."""

    def __init__(self):
        self.proc = None
        self.pending = b""

    def _start(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(os.path.dirname(__file__), "warm.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(_BASE_ENV))

    def _answer(self, deadline):
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            if not ready:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError("the warm interpreter (tests/warm.py) exited: %s"
                                   % self.proc.wait())
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def run(self, argv, env, timeout):
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        with tempfile.TemporaryDirectory() as folder:
            out, err = os.path.join(folder, "stdout"), os.path.join(folder, "stderr")
            self.proc.stdin.write((json.dumps({
                "argv": argv, "env": dict(env), "cwd": os.getcwd(), "stdout": out,
                "stderr": err}) + "\n").encode())
            self.proc.stdin.flush()
            deadline = time.monotonic() + timeout
            pid = self._answer(deadline + 60)["pid"]
            answer = self._answer(deadline)
            if answer is None:
                os.killpg(pid, signal.SIGKILL)
                self._answer(time.monotonic() + 60)
                raise subprocess.TimeoutExpired(argv, timeout)
            with open(out) as o, open(err) as e:
                return subprocess.CompletedProcess(argv, answer["rc"], o.read(), e.read())


# The warm interpreter starts with the worker's environment as it was before any test changed
# it; each command then gets its own (``env``).
_BASE_ENV = dict(os.environ)


WARM = WarmRunner()
# Which command lines the warm interpreter runs (tests/warm.py); the others start cold.
WARM_COMMANDS = ("custodian", "c7n-apigw-certs")


def _launch(command, warm_argv, cold_argv, env, cold, timeout):
    """``warm_argv`` in the warm interpreter when it runs ``command``, else ``cold_argv`` as
    a new process."""
    if command in WARM_COMMANDS and not cold:
        return WARM.run(warm_argv, env, timeout=timeout)
    return subprocess.run(cold_argv, env=env, capture_output=True, text=True, timeout=timeout)


def run_cli(command, args, env, check=True, cold=False):
    """Run an installed command line (``custodian``, ``c7n-org``) as a user would: from the
    warm interpreter (tests/warm.py), or with ``cold`` (and for ``c7n-org``) as a new one."""
    proc = _launch(command, [command] + args, [os.path.join(BIN, command)] + args, env,
                   cold, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError("%s %s exited %d\n%s\n%s" % (
            command, " ".join(args), proc.returncode, proc.stdout, proc.stderr[-6000:]))
    return proc


def custodian_run(control, tmp_path, policy, regions=(REGION,), check=True, extra=(), days=0,
                  real_waits=False, at=None):
    """``custodian run`` on one policy; returns {region: resources} and the process.
    ``days`` moves the custodian process's clock (sandbox/timeshift.py); move the sandbox's
    with it. ``at`` (a datetime or an ISO instant) freezes the process's clock there instead:
    with the sandbox's frozen at the same instant, days to expiry are exact to the second.
    The run's waits (deployment pacing, retry back-off) pass on the sandbox's clock and the
    run's own (timeshift ``--sandbox-sleep``), not the wall clock: the tests are about what
    the run does, not how long it takes. ``real_waits=True`` waits on the wall clock, for
    the test that proves the pacing against the sandbox's real-time rate."""
    path = policy if isinstance(policy, str) else write_policy(tmp_path, policy)
    out = tmp_path / "out"
    shutil.rmtree(out, ignore_errors=True)
    args = ["run", "--cache-period", "0", "-s", str(out)] + list(extra)
    for region in regions:
        args += ["--region", region]
    if at is not None:
        when = "@" + (at if isinstance(at, str) else at.isoformat())
        proc = run_at(when, "custodian", args + [path], control.env, check,
                      sandbox_sleep=not real_waits)
    elif real_waits and not days:
        proc = run_cli("custodian", args + [path], control.env, check=check)
    else:
        proc = run_at(days * 86400, "custodian", args + [path], control.env, check,
                      sandbox_sleep=not real_waits)
    return read_output(out, regions), proc


def run_at(seconds, command, args, env, check=True, sandbox_sleep=False, cold=False):
    """``command`` with its clock moved ``seconds`` on (sandbox/timeshift.py); with
    ``sandbox_sleep``, its waits move its clock and the sandbox's instead of waiting. From the
    warm interpreter unless ``cold`` (or for a command it does not run)."""
    cold_argv = timeshift.command(seconds, [command] + list(args), sandbox_sleep)
    proc = _launch(command, ["timeshift"] + cold_argv[len(timeshift.PREFIX):], cold_argv, env,
                   cold, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError("%s %s (at +%ss) exited %d\n%s" % (
            command, " ".join(args), seconds, proc.returncode, proc.stderr[-6000:]))
    return proc


def launch(cmd, env):
    """A command line another module built to start as a new process (sandbox/trust_proof.py:
    ``timeshift ... custodian ...`` and the installed ``c7n-apigw-certs``), started as
    ``run_at`` and ``run_cli`` start theirs (``_launch``: warm for WARM_COMMANDS)."""
    if cmd[:len(timeshift.PREFIX)] == timeshift.PREFIX:
        shift = cmd[len(timeshift.PREFIX):]  # [--sandbox-sleep] SECONDS|@INSTANT command args
        command = shift[(shift[0] == timeshift.SANDBOX_SLEEP) + 1]
        return _launch(command, ["timeshift"] + shift, cmd, env, False, timeout=600)
    if os.path.dirname(cmd[0]) != BIN:
        raise ValueError("not an installed command line: %s" % cmd)
    command = os.path.basename(cmd[0])
    return _launch(command, [command] + cmd[1:], cmd, env, False, timeout=600)


def read_output(out, regions):
    found = {}
    for region in regions:
        base = out / region if len(regions) > 1 else out
        for res in base.glob("*/resources.json"):
            found.setdefault(region, []).extend(json.loads(res.read_text()))
    return found


def api_calls(control, service=None, outcome="ok"):
    """{operation: calls} from the sandbox's counters."""
    calls = {}
    for row in control.counters():
        if service in (None, row["service"]) and row["outcome"] == outcome:
            calls[row["operation"]] = calls.get(row["operation"], 0) + row["calls"]
    return calls


def assume_role_allowed(document, role="c7n-apigw-certs-generated"):
    """A role in the sandbox's IAM whose one policy is ``document`` (the sandbox holds an
    assumed role's calls to it); its ARN, for ``custodian run --assume``."""
    iam_client = client("iam")
    iam_client.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": "arn:aws:iam::%s:root" % ACCOUNT}}]}))
    iam_client.put_role_policy(RoleName=role, PolicyName="generated",
                               PolicyDocument=json.dumps(document))
    return "arn:aws:iam::%s:role/%s" % (ACCOUNT, role)

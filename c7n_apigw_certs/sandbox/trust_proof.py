"""The proof by real TLS: requests through every stage, all through a staged rotation, to
nginx backends fed by ``trust-sync``; requests and refusals counted per phase.

Each stage with an HTTP integration (``probe.http_stages``) gets its own nginx server, whose
trust file ``c7n-apigw-certs trust-sync`` keeps in step with the stage's bundle: the SSM
parameter the policy's ``ssm`` destination names for that stage (``/apigw/client-certs/
{api_id}/{stage_name}`` in policies/rotate.yml). Before the first run each bundle holds what
its stage presents, as a backend's trust does before any rotation. Then a schedule of steps:

- ``("run", day)``: ``custodian run`` of the policy with the sandbox's clock and the
  command's moved to that day (``demo.custodian_command``); it starts the phase ``day N``;
- ``("sync",)``: every backend runs ``trust-sync`` (the installed command, with its
  ``--reload``), as its cron or timer would between two runs of the policy.

A probe (``probe.Probe``) sends requests through every stage the whole time in the background,
and one round more after each step, so every state the estate passes through is probed at
least once. ``ROTATION`` is the schedule of ``make demo`` (days 0, 3 and 10, a sync after each
run); ``LATE`` is the negative control: ``switch-after-days 0`` switches in the run that
publishes, and the backends only sync after it.

``mode``: ``pinned`` (the fingerprint map, ``trust-sync --format nginx-map``: what carries a
rotation of API Gateway's own certificates through nginx) or ``verify`` (the PEM bundle with
``ssl_verify_client on``, which OpenSSL cannot verify two API Gateway certificates against:
docs/aws-behaviour.md, fact 156).
"""
import os
import subprocess
import time

import boto3
import yaml

from . import probe
from .demo import REGIONS, custodian_command, find_command

ROTATION = (("run", 0), ("sync",), ("run", 3), ("sync",), ("run", 10), ("sync",))
LATE = (("run", 0), ("sync",))
# policies/migrate.yml has the rotation's gates (switch-after-days 3, delete-after-days 7).
MIGRATION = ROTATION
FORMATS = {"pinned": "nginx-map", "verify": "pem"}
# The actions that publish trust and switch stages: their ``publish`` is what backends read.
TRUST_ACTIONS = ("rotate", "migrate")
ELB = "elb-trust-store"


def trust_actions(data):
    """The policy data's ``rotate`` and ``migrate`` actions."""
    for policy in data["policies"]:
        for action in policy.get("actions", ()):
            if isinstance(action, dict) and action.get("type") in TRUST_ACTIONS:
                yield action


def destinations(policy_path, kind):
    """The destinations of type ``kind`` of the policy's first rotate or migrate action that
    has one, and the policy's data."""
    with open(policy_path) as fh:
        data = yaml.safe_load(fh)
    for action in trust_actions(data):
        found = [dest for dest in action["publish"] if dest["type"] == kind]
        if found:
            return found, data
    return [], data


def ssm_template(policy_path):
    """The ``name`` of the policy's first ``ssm`` destination, and the policy's data."""
    found, data = destinations(policy_path, "ssm")
    if not found:
        raise probe.ProbeError("%s has no rotate or migrate action with an ssm destination"
                               % policy_path)
    return found[0]["name"], data


def with_switch_after(policy_path, days, out_path):
    """A copy of the policy with another ``switch-after-days``."""
    _, data = ssm_template(policy_path)
    for action in trust_actions(data):
        action["switch-after-days"] = days
    with open(out_path, "w") as fh:
        yaml.safe_dump(data, fh)
    return out_path


def migration_policy(policy_path, ca_arn, out_path, publish=None, switch_after=None,
                     delete_after=None, description=None):
    """A copy of a migrate policy (policies/migrate.yml) with the CA ``ca_arn``, and, where
    given, other ``publish`` destinations, gates, or only the certificate of that
    ``description``."""
    with open(policy_path) as fh:
        data = yaml.safe_load(fh)
    for policy in data["policies"]:
        if description:
            policy.setdefault("filters", []).append({"description": description})
        for action in policy.get("actions", ()):
            if isinstance(action, dict) and action.get("type") == "migrate":
                action["certificate-authority-arn"] = ca_arn
                if publish is not None:
                    action["publish"] = publish
                if switch_after is not None:
                    action["switch-after-days"] = switch_after
                if delete_after is not None:
                    action["delete-after-days"] = delete_after
    with open(out_path, "w") as fh:
        yaml.safe_dump(data, fh)
    return out_path


def launch_process(cmd, env):
    """A command as a new process: its exit status and output (``subprocess.run``)."""
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


class Backends:
    """One nginx server per stage, each with the trust file trust-sync maintains. ``launch``:
    how its trust-sync commands start; by default each as a new process, all at once."""

    def __init__(self, env, stages, template, workdir, mode, launch=None):
        self.env, self.stages, self.mode, self.launch = env, stages, mode, launch
        self.workdir = workdir = os.path.abspath(workdir)
        self.trust_dir = os.path.join(workdir, "trust")
        os.makedirs(self.trust_dir, exist_ok=True)
        suffix = ".map" if mode == "pinned" else ".pem"
        self.files = {s.label: os.path.join(self.trust_dir, "%s_%s%s" % (
            s.api_id, s.name, suffix)) for s in stages}
        self.sources = {s.label: "ssm:" + template.format(
            api_id=s.api_id, stage_name=s.name, region=s.region) for s in stages}
        self.nginx = probe.Nginx(os.path.join(workdir, "nginx"), self.files, mode=mode)
        self.syncs = []  # (stage label, exit status, output) of every trust-sync run

    def sync(self, reload=True):
        """trust-sync for every backend at once, each as its own host would run it; returns
        how many files changed, once nginx runs the workers that read them (``settle``)."""
        command = find_command("c7n-apigw-certs")
        running = []
        since = self.nginx.log_size()
        for stage in self.stages:
            args = [command, "trust-sync", "--from", self.sources[stage.label], "--to",
                    self.files[stage.label], "--region", stage.region,
                    "--format", FORMATS[self.mode]]
            if reload:
                args += ["--reload", self.nginx.reload_command]
            if self.launch:  # one after the other, each reload settled before the next
                since = self.nginx.log_size()
                done = self.launch(args, self.env)
                output = (done.stdout + done.stderr).strip()
                self.syncs.append((stage.label, done.returncode, output))
                if reload and " updated from " in output:
                    self.nginx.settle(since)
                continue
            running.append((stage.label, subprocess.Popen(
                args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True)))
        for label, proc in running:
            output, _ = proc.communicate(timeout=120)
            self.syncs.append((label, proc.returncode, output.strip()))
        ours = self.syncs[-len(self.stages):]
        failed = [s for s in ours if s[1]]
        if failed:
            raise probe.ProbeError("trust-sync failed: %s" % "; ".join(
                "%s: %s" % (label, out) for label, _, out in failed))
        updated = sum(" updated from " in out for _, _, out in ours)
        if running and reload and updated:  # the reloads came together: settle them at once
            self.nginx.settle(since)
        return updated


def seed_trust(session, stages, template, presented):
    """Each stage's bundle holds what the stage presents: the backends' trust before any
    rotation. A bundle that exists is left alone."""
    for stage in stages:
        ssm = session.client("ssm", region_name=stage.region)
        name = template.format(api_id=stage.api_id, stage_name=stage.name, region=stage.region)
        cert_id, certfile, _ = presented.of(stage)
        with open(certfile) as fh:
            pem = fh.read()
        try:
            ssm.put_parameter(Name=name, Value=pem, Type="String", Overwrite=False)
        except ssm.exceptions.ParameterAlreadyExists:
            pass


def seed_trust_stores(session, control, stages, dest, presented):
    """The policy's ``elb-trust-store`` destination as a load balancer's listener has it before
    any rotation: per stage, the versioned S3 bundle with what the stage presents and the trust
    store loaded from it (``dest``'s templates rendered for the stage); and per stage a
    ``probe.TrustStoreBackend`` verifying against that trust store, started. A trust store that
    exists is left alone. {stage label: backend}. A bundle of API Gateway's generated
    certificates loads only under the sandbox's switch ``trust_store_self_signed: accept``
    (docs/aws-behaviour.md, fact 168)."""
    balancers = {}
    try:
        for stage in stages:
            fields = dict(api_id=stage.api_id, stage_name=stage.name, region=stage.region)
            bucket, key = dest["bucket"].format(**fields), dest["key"].format(**fields)
            name = dest["trust_store"].format(**fields)
            s3 = session.client("s3", region_name=stage.region)
            elb = session.client("elbv2", region_name=stage.region)
            try:
                arn = elb.describe_trust_stores(Names=[name])["TrustStores"][0]["TrustStoreArn"]
            except elb.exceptions.TrustStoreNotFoundException:
                _bucket(s3, bucket, stage.region)
                with open(presented.of(stage)[1]) as fh:
                    s3.put_object(Bucket=bucket, Key=key, Body=fh.read().encode())
                arn = elb.create_trust_store(
                    Name=name, CaCertificatesBundleS3Bucket=bucket,
                    CaCertificatesBundleS3Key=key)["TrustStores"][0]["TrustStoreArn"]
            balancers[stage.label] = probe.TrustStoreBackend(control, arn).start()
    except Exception:
        for balancer in balancers.values():
            balancer.stop()
        raise
    return balancers


def _bucket(s3, bucket, region):
    """The bucket, versioned (a trust store loads an object version: fact 162)."""
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        kw = {} if region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **kw)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


class Proof:
    """Backends and a probe around runs that the caller makes (``prove``, the demo):
    ``with Proof(...) as proof``: ``proof.phase(label)`` before a run, ``proof.probed()``
    after it, ``proof.sync()`` for the backends' trust-sync; the figures in ``proof.run``.
    ``inprocess``: trust-sync's own function instead of the installed command (the demo's
    speed; the tests run the command). When the policy publishes to an ``elb-trust-store``
    destination too, each stage has a second backend, a load balancer stand-in on that trust
    store (``seed_trust_stores``), which re-reads it when the backends sync: requests go to
    both, their results named ``nginx`` and ``elb``. ``pause``: seconds between two
    background rounds. ``launch(cmd, env)``: how the trust-sync commands start (``Backends``)."""

    def __init__(self, control, env, policy, workdir, mode="pinned", regions=REGIONS,
                 inprocess=False, before="before the rotation", pause=0.1, launch=None):
        self.control, self.env, self.policy = control, env, policy
        self.workdir, self.mode, self.regions = workdir, mode, regions
        self.inprocess, self.before, self.pause = inprocess, before, pause
        self.launch = launch
        self.balancers = {}

    def __enter__(self):
        session = _at(boto3.Session(aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"]),
                      self.env["AWS_ENDPOINT_URL"])
        self.session = session
        stages = probe.http_stages(session, self.regions)
        template, _ = ssm_template(self.policy)
        self.backends = Backends(self.env, stages, template, self.workdir, self.mode,
                                 self.launch)
        self.run = probe.Probe(self.control, session, stages, self.route,
                               _mkdir(os.path.join(self.workdir, "keys")))
        seed_trust(session, stages, template, self.run.presented)
        self._sync(reload=False)  # the files nginx starts with
        self.backends.nginx.start()
        elb, _ = destinations(self.policy, ELB)
        if elb:
            try:
                self.balancers = seed_trust_stores(session, self.control, stages, elb[0],
                                                   self.run.presented)
            except Exception:
                self.backends.nginx.stop()
                raise
        self.run.phase = self.before
        self.run.round()
        self.run.start(self.pause)
        return self

    def route(self, stage):
        nginx = self.backends.nginx.address(stage.label)
        if not self.balancers:
            return nginx
        return {"nginx": nginx, "elb": self.balancers[stage.label].address}

    def phase(self, label):
        self.run.phase = label

    def probed(self):
        """One round now: every state the estate passes through is probed at least once."""
        self.run.round()

    def sync(self):
        self._sync()
        for balancer in self.balancers.values():  # the load balancers read their trust store
            balancer.refresh()
        self.run.round()

    def _sync(self, reload=True):
        """The backends' trust-sync; returns how many files changed, once nginx runs the
        workers that read them (``Backends.sync`` settles the reloads it signals)."""
        if not self.inprocess:
            return self.backends.sync(reload)
        from ..trust import trust_sync
        since = self.backends.nginx.log_size()
        updated = 0
        for stage in self.backends.stages:
            outcome, _ = trust_sync.sync(
                trust_sync.Source(self.backends.sources[stage.label]),
                self.backends.files[stage.label],
                self.backends.nginx.reload_command if reload else None, session=self.session,
                region=stage.region, form=FORMATS[self.mode])
            updated += outcome == "updated"
        if reload and updated:  # files changed, nginx reloaded: wait until its new workers run
            self.backends.nginx.settle(since)
        return updated

    def __exit__(self, *exc):
        self.run.stop()
        self.backends.nginx.stop()
        for balancer in self.balancers.values():
            balancer.stop()


def prove(control, env, policy, workdir, schedule=ROTATION, mode="pinned", regions=REGIONS,
          label=None, say=None, before="before the rotation", launch=None):
    """Run the schedule with requests through every stage; the ``probe.Probe`` (its
    ``figures()`` and ``results``) and the ``Backends`` (their ``syncs``). ``label(day)`` names
    the phase a run starts (default ``day N``), ``before`` the phase before the first run;
    ``say`` receives a line per step. The policy runs in ``regions`` (a migration's CA is in
    one). ``launch(cmd, env)`` starts the commands (``custodian``, ``trust-sync``) and returns
    their ``subprocess.CompletedProcess``; by default each is a new process, the backends'
    trust-sync all at once (the tests start them from a warm interpreter, tests/warm.py)."""
    label = label or (lambda day: "day %d" % day)
    previous = 0
    with Proof(control, env, policy, workdir, mode, regions, before=before,
               launch=launch) as proof:
        for step in schedule:
            started = time.monotonic()
            if step[0] == "run":
                day = step[1]
                control.advance(days=day - previous)
                previous = day
                proof.phase(label(day))
                out = os.path.join(workdir, "out", "day-%d" % day)
                shown, cmd = custodian_command(out, policy, day, regions)
                proc = (launch or launch_process)(cmd, env)
                if say:
                    say("%s (exit %d, %.1f s)" % (shown, proc.returncode,
                                                   time.monotonic() - started))
                # A certificate that expires before its switch gate fails the run by design,
                # loudly (docs/rotation.md, "The state every run honours"); any other failure
                # stops the proof.
                failures = [line for line in proc.stderr.splitlines()
                            if "rotation failed:" in line]
                if proc.returncode and (not failures or any(
                        "before the switch gate" not in line for line in failures)):
                    raise probe.ProbeError("%s exited %d: %s" % (
                        shown, proc.returncode, proc.stderr[-3000:]))
                proof.probed()
            else:
                proof.sync()
                if say:
                    say("trust-sync on %d backend(s) (%.1f s)" % (
                        len(proof.backends.stages), time.monotonic() - started))
    return proof.run, proof.backends


def _at(session, endpoint):
    """The session's clients at the sandbox's endpoint."""
    original = session.client

    def client(service, **kw):
        kw.setdefault("endpoint_url", endpoint)
        return original(service, **kw)
    session.client = client
    return session


def _mkdir(path):
    os.makedirs(path, exist_ok=True)
    return path

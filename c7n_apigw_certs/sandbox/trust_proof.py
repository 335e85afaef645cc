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
FORMATS = {"pinned": "nginx-map", "verify": "pem"}


def ssm_template(policy_path):
    """The ``name`` of the policy's first ``ssm`` destination, and the policy's data."""
    with open(policy_path) as fh:
        data = yaml.safe_load(fh)
    for policy in data["policies"]:
        for action in policy.get("actions", ()):
            if isinstance(action, dict) and action.get("type") == "rotate":
                for dest in action["publish"]:
                    if dest["type"] == "ssm":
                        return dest["name"], data
    raise probe.ProbeError("%s has no rotate action with an ssm destination" % policy_path)


def with_switch_after(policy_path, days, out_path):
    """A copy of the policy with another ``switch-after-days``."""
    _, data = ssm_template(policy_path)
    for policy in data["policies"]:
        for action in policy.get("actions", ()):
            if isinstance(action, dict) and action.get("type") == "rotate":
                action["switch-after-days"] = days
    with open(out_path, "w") as fh:
        yaml.safe_dump(data, fh)
    return out_path


class Backends:
    """One nginx server per stage, each with the trust file trust-sync maintains."""

    def __init__(self, env, stages, template, workdir, mode):
        self.env, self.stages, self.mode = env, stages, mode
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
        """trust-sync for every backend at once, each as its own host would run it."""
        command = find_command("c7n-apigw-certs")
        running = []
        for stage in self.stages:
            args = [command, "trust-sync", "--from", self.sources[stage.label], "--to",
                    self.files[stage.label], "--region", stage.region,
                    "--format", FORMATS[self.mode]]
            if reload:
                args += ["--reload", self.nginx.reload_command]
            running.append((stage.label, subprocess.Popen(
                args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True)))
        for label, proc in running:
            output, _ = proc.communicate(timeout=120)
            self.syncs.append((label, proc.returncode, output.strip()))
        ours = self.syncs[-len(running):]
        failed = [s for s in ours if s[1]]
        if failed:
            raise probe.ProbeError("trust-sync failed: %s" % "; ".join(
                "%s: %s" % (label, out) for label, _, out in failed))
        return sum(" updated from " in out for _, _, out in ours)


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


class Proof:
    """Backends and a probe around runs that the caller makes (``prove``, the demo):
    ``with Proof(...) as proof``: ``proof.phase(label)`` before a run, ``proof.probed()``
    after it, ``proof.sync()`` for the backends' trust-sync; the figures in ``proof.run``.
    ``inprocess``: trust-sync's own function instead of the installed command (the demo's
    speed; the tests run the command)."""

    def __init__(self, control, env, policy, workdir, mode="pinned", regions=REGIONS,
                 inprocess=False):
        self.control, self.env, self.policy = control, env, policy
        self.workdir, self.mode, self.regions = workdir, mode, regions
        self.inprocess = inprocess

    def __enter__(self):
        session = _at(boto3.Session(aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"]),
                      self.env["AWS_ENDPOINT_URL"])
        self.session = session
        stages = probe.http_stages(session, self.regions)
        template, _ = ssm_template(self.policy)
        self.backends = Backends(self.env, stages, template, self.workdir, self.mode)
        self.run = probe.Probe(self.control, session, stages,
                               lambda s: self.backends.nginx.address(s.label),
                               _mkdir(os.path.join(self.workdir, "keys")))
        seed_trust(session, stages, template, self.run.presented)
        self._sync(reload=False)  # the files nginx starts with
        self.backends.nginx.start()
        self.run.phase = "before the rotation"
        self.run.round()
        self.run.start()
        return self

    def phase(self, label):
        self.run.phase = label

    def probed(self):
        """One round now: every state the estate passes through is probed at least once."""
        self.run.round()

    def sync(self):
        since = self.backends.nginx.log_size()
        if self._sync():  # files changed, nginx reloaded: wait until its new workers run
            self.backends.nginx.settle(since)
        self.run.round()

    def _sync(self, reload=True):
        if not self.inprocess:
            return self.backends.sync(reload)
        from .. import trust_sync
        updated = 0
        for stage in self.backends.stages:
            outcome, _ = trust_sync.sync(
                trust_sync.Source(self.backends.sources[stage.label]),
                self.backends.files[stage.label],
                self.backends.nginx.reload_command if reload else None, session=self.session,
                region=stage.region, form=FORMATS[self.mode])
            updated += outcome == "updated"
        return updated

    def __exit__(self, *exc):
        self.run.stop()
        self.backends.nginx.stop()


def prove(control, env, policy, workdir, schedule=ROTATION, mode="pinned", regions=REGIONS,
          label=None, say=None):
    """Run the schedule with requests through every stage; the ``probe.Probe`` (its
    ``figures()`` and ``results``) and the ``Backends`` (their ``syncs``). ``label(day)`` names
    the phase a run starts (default ``day N``); ``say`` receives a line per step."""
    label = label or (lambda day: "day %d" % day)
    previous = 0
    with Proof(control, env, policy, workdir, mode, regions) as proof:
        for step in schedule:
            started = time.monotonic()
            if step[0] == "run":
                day = step[1]
                control.advance(days=day - previous)
                previous = day
                proof.phase(label(day))
                out = os.path.join(workdir, "out", "day-%d" % day)
                shown, cmd = custodian_command(out, policy, day)
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                      timeout=600)
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

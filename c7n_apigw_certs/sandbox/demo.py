"""``c7n-apigw-certs demo``: the whole job, end to end, against the sandbox.

It starts ``c7n-apigw-certs sandbox --seed demo`` in its own process, runs the stock
``custodian run`` on ``policies/expiring.yml`` in both demo regions and prints what was found;
then runs ``policies/rotate.yml`` on simulated days 0, 3 and 10 and prints what each run did;
then migrates one certificate to an ACM private certificate with ``policies/migrate.yml`` and
shows a renewal that needs no change; and stops the sandbox. Every command it runs is what a
user would type; for the later days the sandbox's clock and the command's are moved on
(``timeshift.py``), as the days would pass.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from ..audit.report import short_id

REGIONS = ("us-east-1", "eu-west-1")
# policies/rotate.yml: switch-after-days 3, delete-after-days 7 (counted from the switch).
ROTATION_DAYS = (0, 3, 10)


class RunningSandbox:
    """``c7n-apigw-certs sandbox`` in a child process, for as long as the ``with`` lasts."""

    def __init__(self, seed="demo", timeout=60):
        self.seed, self.timeout = seed, timeout
        self.env = {}

    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix="c7n-apigw-sandbox-")
        env_file = os.path.join(self.tmp, "env")
        cmd = [sys.executable, "-m", "c7n_apigw_certs.cli", "sandbox", "--port", "0",
               "--env-file", env_file] + (["--seed", self.seed] if self.seed else [])
        self.log = open(os.path.join(self.tmp, "sandbox.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.timeout
        while not os.path.exists(env_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self.read_log()  # before __exit__ removes it
                self.__exit__()
                raise RuntimeError("the sandbox did not start; its log:\n" + log)
            time.sleep(0.05)
        for line in open(env_file):
            key, _, value = line.replace("export ", "", 1).strip().partition("=")
            self.env[key] = value
        return self

    def read_log(self):
        with open(os.path.join(self.tmp, "sandbox.log")) as fh:
            return fh.read()

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def summarize(output_dir, policy_name, regions=REGIONS):
    """What a person wants at a glance: per certificate, days left and the stages that break."""
    lines = []
    for region in regions:
        path = os.path.join(output_dir, region, policy_name, "resources.json")
        if not os.path.exists(path):
            continue
        found = json.load(open(path))
        for cert in sorted(found, key=lambda c: (c["c7n:days-left"] is not None,
                                                 c["c7n:days-left"] or 0)):
            if cert["c7n:days-left"] is None:
                when = "UNKNOWN: %s" % cert.get("c7n:condition-detail")
            elif cert["c7n:expired"]:
                when = "EXPIRED %d day(s) ago (%s)" % (-cert["c7n:days-left"],
                                                      cert["c7n:expires"][:10])
            else:
                when = "expires in %d day(s) (%s)" % (cert["c7n:days-left"],
                                                      cert["c7n:expires"][:10])
            lines.append("%-10s %s %-16s %s, %s%s" % (
                region, short_id(cert["clientCertificateId"]), cert.get("description", ""),
                when, cert.get("kind", "generated"),
                "" if cert["c7n:condition"] in ("expires", "expired") else
                " (%s)" % cert["c7n:condition"]))
            for stage in cert["c7n:stages"] or [{"label": "used by no stage"}]:
                lines.append("%28s %s" % ("-", stage["label"]))
    return "\n".join(lines)


def rotation_summary(output_dir, policy_name, regions=REGIONS):
    """What one rotate run did, a line per certificate, from its ``action-rotate`` records."""
    lines = []
    for region in regions:
        base = os.path.join(output_dir, region, policy_name)
        if not os.path.exists(os.path.join(base, "action-rotate")):
            continue
        matched = json.load(open(os.path.join(base, "resources.json")))
        names = {c["clientCertificateId"]: c.get("description", "") for c in matched}
        labels = {"%s/%s" % (s["apiId"], s["stageName"]): s["label"]
                  for c in matched for s in c.get("c7n:stages") or ()}
        for entry in json.load(open(os.path.join(base, "action-rotate"))):
            cert_id, record = entry["clientCertificateId"], entry.get("c7n:rotation") or {}
            lines.append("%-10s %s %-16s %s" % (region, cert_id, names.get(cert_id, ""),
                                                what_happened(record)))
            for label in record.get("switched") or ():
                short = label.replace("stage:", "", 1)
                lines.append("%28s %s" % ("-", labels.get(short, short)))
    return "\n".join(lines)


def what_happened(record):
    """A rotate record (``c7n:rotation``) in words."""
    done = []
    if record.get("successor") and record.get("published"):
        done.append("successor %s generated, trusted in %d bundle(s)" % (
            record["successor"], len(record["published"])))
    if record.get("switched"):
        done.append("%d stage(s) switched to %s" % (len(record["switched"]),
                                                    record.get("successor", "its successor")))
    if record.get("deleted"):
        done.append("deleted, its PEM removed from %d bundle(s)" % len(
            record.get("unpublished") or ()))
    elif record.get("not-deleted"):
        done.append("kept: %s" % record["not-deleted"])
    for key in ("waiting", "skipped"):
        if record.get(key):
            done.append("%s: %s" % (key, record[key]))
    done += ["FAILED: %s" % error for error in record.get("errors", ())]
    return "; ".join(done) or "nothing to do"


def policy_names(policy):
    return [line.split(":", 1)[1].strip() for line in open(policy)
            if line.strip().startswith("- name:")]


def find_command(name):
    """The command installed beside this Python (a venv need not be activated), else PATH's."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return beside if os.access(beside, os.X_OK) else (shutil.which(name) or name)


def run_demo(policy="policies/expiring.yml", output_dir="out",
             rotate_policy="policies/rotate.yml"):
    for path in (policy, rotate_policy):
        if not os.path.exists(path):
            sys.exit("%s not found: run the demo from the repository's root" % path)
    with RunningSandbox() as sandbox:
        env = dict(os.environ, **sandbox.env)
        audit(env, policy, output_dir)
        shown = signals(env, output_dir)
        staged_rotation(sandbox, env, rotate_policy, output_dir)
        if os.path.exists(FINDINGS):
            day = ROTATION_DAYS[-1]
            print("After the rotation, day %d: the findings of the rotated certificates are "
                  "archived by the next run:" % day)
            shown.show_findings(FINDINGS, os.path.join(output_dir, "signals-day-%d" % day), day)
        if os.path.exists(MIGRATE):
            migration(sandbox, env, output_dir)


def custodian_command(output_dir, policy, day=0, regions=REGIONS):
    """The ``custodian run`` a user types, and the command that runs it ``day`` days on. On a
    later day its waits (the deployment pacing, the pause before its fresh listing, retry
    back-off) pass on the sandbox's clock and its own, as its days do (``timeshift
    --sandbox-sleep``; the sandbox's deployment rate still counts them). Day 0 is today and
    its waits are real: the certificates the sandbox makes that day must not be dated ahead of
    the real clock, by which the TLS probe's nginx checks them ("certificate is not yet
    valid")."""
    regions = [arg for r in regions for arg in ("--region", r)]
    # --cache-period 0: c7n caches listings for 15 minutes by account id, and every sandbox
    # uses the same account id: a cache would show the previous sandbox's estate.
    args = ["run", "--cache-period", "0", "-s", output_dir] + regions + [policy]
    shown = "$ custodian " + " ".join(args)
    if not day:
        return shown, [find_command("custodian")] + args
    from . import timeshift
    return shown, timeshift.command(day * 86400, ["custodian"] + args, sandbox_sleep=True)


def audit(env, policy, output_dir):
    shown, cmd = custodian_command(output_dir, policy)
    print(shown, flush=True)
    subprocess.run(cmd, env=env, check=True)
    print("\nClient certificates that expire within the policy's window:\n")
    for name in policy_names(policy):
        print(summarize(output_dir, name) or "(none)")
    print("\nFull records: %s/<region>/<policy>/resources.json; the same as a table: "
          "custodian report -s %s%s %s" % (output_dir, output_dir,
                                            "".join(" --region " + r for r in REGIONS), policy))


FINDINGS = "policies/findings.yml"
# (title, policy, Signals method): each signal policy in policies/, in the order people meet them.
SIGNALS = (
    ("The audit as a table", "policies/expiring.yml", "show_report"),
    ("An alarm's metric", "policies/expiry-metric.yml", "show_metric"),
    ("An event for rules and chat integrations", "policies/expiry-event.yml", "show_event"),
    ("A mail to the owners", "policies/notify.yml", "show_mail"),
    ("Findings for the compliance team", FINDINGS, "show_findings"),
)


def signals(env, output_dir):
    """Each signal policy on the same estate, and what arrived where people read it. Returns
    the ``Signals``, for the findings after the rotation."""
    from .demo_signals import Signals

    started = {}

    def start(policy, out, day=0):
        shown, cmd = custodian_command(out, policy, day)
        started[policy, out, day] = shown, subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(policy, out, day=0):
        if (policy, out, day) not in started:
            start(policy, out, day)
        shown, proc = started.pop((policy, out, day))
        print(shown, flush=True)
        stdout, stderr = proc.communicate()
        print_failure(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))

    present = [s for s in SIGNALS if os.path.exists(s[1])]
    print("\nThe signals, on the same estate (policies/: %s):" % ", ".join(
        sorted({os.path.basename(s[1]) for s in present})))
    shown = Signals(env, run, REGIONS)
    shown.prepare()
    signals_out = os.path.join(output_dir, "signals")
    # The signal policies write to separate places and only read the estate: they run at once,
    # and each is shown, in order, when it has ended.
    for _, policy, method in present:
        if method != "show_report":
            start(policy, signals_out)
    for title, policy, method in present:
        print("\n%s:" % title)
        # The report reads the audit's output; the others write their own.
        getattr(shown, method)(policy, output_dir if method == "show_report" else signals_out)
    return shown


def staged_rotation(sandbox, env, policy, output_dir):
    """``policy`` on each of ROTATION_DAYS, the sandbox's clock moved with the command's."""
    from .remote import SandboxClient
    control = SandboxClient(sandbox.env["AWS_ENDPOINT_URL"])
    print("\nThe staged rotation (%s), one run a day as a schedule would run it; days are "
          "simulated: the sandbox's clock and custodian's are moved on together, and a later "
          "day's waits (the deployment pacing) pass on those clocks too.\n" % policy)
    previous = 0
    with tls_proof(control, env, policy, output_dir) as proof:
        for day in ROTATION_DAYS:
            control.advance(days=day - previous)
            previous = day
            out = os.path.join(output_dir, "day-%d" % day)
            shown, cmd = custodian_command(out, policy, day)
            print("day %-3d %s" % (day, shown), flush=True)
            proof.phase("day %d" % day)
            # The run's log goes to its output directory: the summary below is what it did.
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            proof.probed()
            for name in policy_names(policy):
                print(indent(rotation_summary(out, name) or "(no certificate matched)"))
            print_failure(proc)
            proof.sync()
            print()
    proof.report()


def tls_proof(control, env, policy, output_dir):
    """Requests by real TLS through every stage to nginx backends that trust-sync feeds after
    each run (``trust_proof.Proof``), or, where that cannot run, a stand-in that says why."""
    from . import probe
    from .trust_proof import Proof
    if not probe.nginx_binary():
        return NoProof("nginx is not installed (Debian: apt-get install -y nginx)")
    if not hasattr(control, "private_key_pem"):
        return NoProof("this sandbox does not hand out the private keys of its certificates")
    return ShownProof(Proof(control, env, policy, os.path.join(output_dir, "tls-proof"),
                            inprocess=True, pause=PROBE_PAUSE))


# Seconds between two background rounds of the demo's probes: few rounds, so that the runs they
# probe keep the machine (each phase is still probed after its run and after each sync).
PROBE_PAUSE = 1.0


class ShownProof:
    def __init__(self, proof):
        self.proof = proof

    def __enter__(self):
        self.proof.__enter__()
        return self

    def __exit__(self, *exc):
        self.proof.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self.proof, name)

    def report(self):
        from .probe import figures_table
        run = self.proof.run
        print("Meanwhile, requests by real TLS through the %d stages with an HTTP integration, "
              "each to its own nginx (ssl_verify_client optional_no_ca, the fingerprints that "
              "`c7n-apigw-certs trust-sync --format nginx-map` keeps in step with the stage's "
              "bundle after each run); 'expired': refused because the certificate presented "
              "had expired:\n" % len(run.stages))
        print(indent(figures_table(run.figures())))
        print()


class NoProof:
    def __init__(self, reason):
        self.reason = reason

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def phase(self, label):
        pass

    probed = sync = lambda self: None

    def report(self):
        print("(The rotation by real TLS is not shown: %s.)\n" % self.reason)


def print_failure(proc):
    """A command that failed: its exit status and the end of its log, under what it did."""
    if proc.returncode:
        errors = ["ERROR " + line.split(":ERROR ", 1)[1] for line in proc.stderr.splitlines()
                  if ":ERROR " in line]  # without the log's timestamps
        print(indent("the run failed (exit %d):\n%s" % (
            proc.returncode, "\n".join(errors[-6:]) or proc.stderr[-3000:])))


def indent(text, width=8):
    return "\n".join(" " * width + line for line in text.splitlines())


MIGRATE = "policies/migrate.yml"
MIGRATE_REGION, MIGRATED = "eu-west-1", "eu-staging"
SHIPPED_CA = ("arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/"
              "11111111-2222-3333-4444-555555555555")


def short(arn):
    """An ACM or Private CA ARN as the demo prints it: its kind and the first 8 of its UUID."""
    return "%s %s" % ("CA" if ":acm-pca:" in arn else "acm", arn.rsplit("/", 1)[1][:8])


# The migration's two runs: day 0 requests the private certificate and publishes the CA chain
# (switch-after-days 1), day 1 switches and retires (delete-after-days 0); the backends sync
# after each run, so no stage switches before its backend trusts the chain. Its days are
# counted from the real today again (the sandbox's clock is put back first): the backends
# check a certificate's dates by the real clock, which cannot be moved as the sandbox's and
# custodian's are, and ACM issues the private certificate from the sandbox's now; issued 10
# simulated days ahead, nginx would refuse it as not yet valid.
MIGRATION_DAYS = (0, 1)


def migration(sandbox, env, output_dir):
    """``policies/migrate.yml`` on one certificate of the estate (``eu-staging``, healthy: the one
    that would otherwise be rotated next year), with a new private CA of its region and the
    gates at 1 and 0 days so that two runs (``MIGRATION_DAYS``) show every step, with requests
    by real TLS through the region's stages to nginx in verify mode the whole time; then a
    renewal of the private certificate by ACM (the sandbox's control), and what it takes:
    nothing."""
    import boto3
    from cryptography import x509

    from .remote import SandboxClient
    control = SandboxClient(sandbox.env["AWS_ENDPOINT_URL"])
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    clients = {name: session.client(name, region_name=MIGRATE_REGION,
                                    endpoint_url=sandbox.env["AWS_ENDPOINT_URL"])
               for name in ("apigateway", "ssm")}
    control.reset_clock()
    day = 0
    root = control.create_private_ca(MIGRATE_REGION, "Demo Root CA")
    issuing = control.create_private_ca(MIGRATE_REGION, "Demo Issuing CA", 1800, root["arn"])
    first, last = MIGRATION_DAYS
    text = open(MIGRATE).read().replace(SHIPPED_CA, issuing["arn"]).replace(
        "switch-after-days: 3", "switch-after-days: %d" % (last - first))
    text = text.replace("delete-after-days: 7", "delete-after-days: 0").replace(
        "      - type: kind\n        kinds: [generated]\n",
        "      - type: kind\n        kinds: [generated]\n      - description: %s\n" % MIGRATED)
    os.makedirs(output_dir, exist_ok=True)
    policy = os.path.join(output_dir, "migrate-demo.yml")
    with open(policy, "w") as fh:
        fh.write(text)
    print("\nThe migration (%s) of one certificate, %s in %s, to a private certificate of a new "
          "issuing CA (%s, under a root CA): a copy of the policy with that CA, the one "
          "certificate, and the gates at %d and 0 days, so that two runs show every step. Its "
          "days are counted from today again (the sandbox's clock is put back): the backends "
          "below check certificates' dates by the real clock.\n" % (
              MIGRATE, MIGRATED, MIGRATE_REGION, short(issuing["arn"]), last - first))
    name = policy_names(policy)[0]
    records = []
    with migration_proof(control, env, policy, output_dir) as proof:
        for today in MIGRATION_DAYS:
            control.advance(days=today - day)
            day = today
            out = os.path.join(output_dir, "migrate", "day-%d" % today)
            args = ["run", "--cache-period", "0", "-s", out, "--region", MIGRATE_REGION, policy]
            print("day %-3d $ custodian %s" % (today, " ".join(args)), flush=True)
            proof.phase("migration, day %d" % today)
            from . import timeshift
            proc = subprocess.run(timeshift.command(today * 86400, ["custodian"] + args),
                                  env=env, capture_output=True, text=True)
            proof.probed()
            records = json.load(open(os.path.join(out, name, "action-migrate")))
            for entry in records:
                record = entry["c7n:rotation"]
                if record.get("successor"):
                    print(indent("%s: %s" % (entry["clientCertificateId"],
                                             migrated_in_words(record))))
            print_failure(proc)
            proof.sync()
            print()
    proof.report()
    migrated = [e["c7n:rotation"]["successor"] for e in records
                if e["c7n:rotation"].get("successor")]
    if not migrated:
        return
    arn = migrated[0]
    apigw, ssm = clients["apigateway"], clients["ssm"]
    for api in apigw.get_rest_apis()["items"]:
        for stage in apigw.get_stages(restApiId=api["id"])["item"]:
            if stage.get("clientCertificateId") != arn:
                continue
            where = (api["id"], stage["stageName"])
            bundle = ssm.get_parameter(Name="/apigw/client-certs/%s/%s" % where)[
                "Parameter"]["Value"]
            held = [c.subject.rfc4514_string()
                    for c in x509.load_pem_x509_certificates(bundle.encode())]
            print(indent("REST %s (%s) / %s presents %s; its bundle holds %s" % (
                api["name"], api["id"], stage["stageName"], short(arn), ", ".join(held))))
            before = control.presented_certificate("123456789012", MIGRATE_REGION, *where)
            renewed = control.renew_acm_certificate(arn)
            after = control.presented_certificate("123456789012", MIGRATE_REGION, *where)
            leaf = x509.load_pem_x509_certificate(after["certificate_pem"].encode())
            issuer = x509.load_pem_x509_certificate(issuing["certificate_pem"].encode())
            leaf.verify_directly_issued_by(issuer)  # raises if the bundle's CA did not sign it
            same = ssm.get_parameter(Name="/apigw/client-certs/%s/%s" % where)[
                "Parameter"]["Value"] == bundle
            print(indent("ACM renews %s (the sandbox's control): renewal %s, a new certificate "
                         "(%s) under the same ARN, until %s; the stage presents it now, signed "
                         "by the CA its bundle holds; bundle %s; no run of the plugin needed" % (
                             short(arn), renewed["renewal_summary"]["RenewalStatus"],
                             "new serial" if before["certificate_pem"] !=
                             after["certificate_pem"] else "SAME SERIAL",
                             renewed["not_after"][:10],
                             "unchanged" if same else "CHANGED")))


def migrated_in_words(record):
    """What one migrate run did to a certificate (its ``c7n:rotation`` record)."""
    done = []
    if record.get("published"):
        done.append("%s requested; CA chain trusted in %d bundle(s)" % (
            short(record["successor"]), len(record["published"])))
    if record.get("switched"):
        done.append("%d stage(s) switched to %s" % (len(record["switched"]),
                                                    short(record["successor"])))
    if record.get("deleted"):
        done.append("deleted, its PEM removed from %d bundle(s)" % len(
            record.get("unpublished", ())))
    for key in ("waiting", "skipped"):
        if record.get(key):
            done.append("%s: %s" % (key, record[key]))
    done += ["FAILED: %s" % error for error in record.get("errors", ())]
    return "; ".join(done) or "nothing to do"


def migration_proof(control, env, policy, output_dir):
    """Requests by real TLS through the migration region's stages to nginx with
    ``ssl_verify_client on`` and the PEM bundle trust-sync writes after each run (the old
    certificate, then the CA chain beside it, then the chain alone), or a stand-in saying why
    not."""
    from . import probe
    from .trust_proof import Proof
    if not probe.nginx_binary():
        return NoProof("nginx is not installed (Debian: apt-get install -y nginx)")
    if not hasattr(control, "private_key_pem"):
        return NoProof("this sandbox does not hand out the private keys of its certificates")
    return ShownMigrationProof(Proof(
        control, env, policy, os.path.join(output_dir, "tls-proof-migration"), mode="verify",
        regions=(MIGRATE_REGION,), inprocess=True, before="before the migration",
        pause=PROBE_PAUSE))


class ShownMigrationProof(ShownProof):
    def report(self):
        from .probe import figures_table
        run = self.proof.run
        print("Meanwhile, requests by real TLS through the %d stages of %s with an HTTP "
              "integration, each to its own nginx (ssl_verify_client on, the PEM bundle that "
              "`c7n-apigw-certs trust-sync` keeps in step with the stage's bundle after each "
              "run: the old certificate, then the CA chain beside it, then the chain alone):\n"
              % (len(run.stages), MIGRATE_REGION))
        print(indent(figures_table(run.figures())))
        print()

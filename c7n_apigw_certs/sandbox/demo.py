"""``c7n-apigw-certs demo``: the audit, end to end, against the sandbox.

It starts ``c7n-apigw-certs sandbox --seed demo`` in its own process, runs the stock
``custodian run`` on ``policies/expiring.yml`` in both demo regions, prints what was found, and
stops the sandbox. Everything it runs is what a user would type.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REGIONS = ("us-east-1", "eu-west-1")


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
        for cert in sorted(json.load(open(path)), key=lambda c: c["c7n:days-left"]):
            when = ("EXPIRED %d day(s) ago" % -cert["c7n:days-left"] if cert["c7n:expired"]
                    else "expires in %d day(s)" % cert["c7n:days-left"])
            lines.append("%-10s %s %-16s %s (%s)" % (
                region, cert["clientCertificateId"], cert.get("description", ""), when,
                cert["c7n:expires"][:10]))
            for stage in cert["c7n:stages"] or [{"label": "used by no stage"}]:
                lines.append("%28s %s" % ("-", stage["label"]))
    return "\n".join(lines)


def find_command(name):
    """The command installed beside this Python (a venv need not be activated), else PATH's."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return beside if os.access(beside, os.X_OK) else (shutil.which(name) or name)


def run_demo(policy="policies/expiring.yml", output_dir="out"):
    if not os.path.exists(policy):
        sys.exit("%s not found: run the demo from the repository's root" % policy)
    with RunningSandbox() as sandbox:
        env = dict(os.environ, **sandbox.env)
        custodian = [find_command("custodian")]
        regions = [arg for r in REGIONS for arg in ("--region", r)]
        # --cache-period 0: c7n caches listings for 15 minutes by account id, and every sandbox
        # uses the same account id: a cache would show the previous sandbox's estate.
        cmd = custodian + ["run", "--cache-period", "0", "-s", output_dir] + regions + [policy]
        print("$ " + " ".join(["custodian"] + cmd[1:]), flush=True)
        subprocess.run(cmd, env=env, check=True)
        names = [line.split(":", 1)[1].strip() for line in open(policy)
                 if line.strip().startswith("- name:")]
        print("\nClient certificates that expire within the policy's window:\n")
        for name in names:
            print(summarize(output_dir, name) or "(none)")
        print("\nFull records: %s/<region>/<policy>/resources.json; the same as a table: "
              "custodian report -s %s%s %s" % (output_dir, output_dir,
                                                "".join(" --region " + r for r in REGIONS),
                                                policy))

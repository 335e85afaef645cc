"""The proof by real TLS, as figures: requests through every stage of the demo estate during
the staged rotation of policies/rotate.yml (days 0, 3, 10), to nginx backends that
``c7n-apigw-certs trust-sync`` feeds after each run (c7n_apigw_certs/sandbox/trust_proof.py).

    python benchmarks/trust_probe.py             the three scenarios below
    python benchmarks/trust_probe.py --only pinned

Scenarios, each on a freshly seeded sandbox:

- ``pinned``: nginx with ``ssl_verify_client optional_no_ca`` and the fingerprint map that
  ``trust-sync --format nginx-map`` writes. Expected: 0 refused in every phase.
- ``verify``: nginx with ``ssl_verify_client on`` and the PEM bundle itself. Expected: the
  switched stages refused from day 3 until the old certificate leaves the bundle on day 10
  (OpenSSL trusts one of several self-signed certificates of the same subject:
  docs/aws-behaviour.md, fact 156).
- ``late``: the negative control, ``pinned`` with ``switch-after-days 0`` and backends that
  sync only after the run: the switched stages are refused until the sync.

``expired`` counts refusals of a certificate that had already expired (the demo's orders-prod,
3 days past, until its stage is switched on day 3): no trust file can mend those.
Needs nginx (Debian: apt-get install -y nginx).
"""
import argparse
import logging
import os
import sys
import tempfile
import time

import boto3

from c7n_apigw_certs.sandbox import probe, trust_proof
from c7n_apigw_certs.sandbox.remote import SandboxClient, environment
from c7n_apigw_certs.sandbox.seed import seed_demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLICY = os.path.join(ROOT, "policies", "rotate.yml")
SCENARIOS = ("pinned", "verify", "late")


def scenario(name, control, env, workdir):
    control.reset()
    os.environ.update(env)
    seed_demo(lambda region, desc, days: control.create_certificate(
        region=region, description=desc, expires_in_days=days)["clientCertificateId"],
        boto3.Session())
    control.reset_counters()
    if name == "late":
        policy = trust_proof.with_switch_after(POLICY, 0, os.path.join(workdir, "now.yml"))
        return trust_proof.prove(control, env, policy, workdir, schedule=trust_proof.LATE,
                                 label=lambda day: "day %d, sync late" % day)
    return trust_proof.prove(control, env, POLICY, workdir, mode=name)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=SCENARIOS, action="append")
    args = parser.parse_args()
    if not probe.nginx_binary():
        sys.exit("nginx is not installed (Debian: apt-get install -y nginx)")
    from c7n_apigw_certs.sandbox.server import SandboxServer
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = SandboxServer(port=0).start()
    env = dict(os.environ, **environment(server.endpoint))
    env["HOME"] = tempfile.mkdtemp(prefix="c7n-apigw-bench-home-")
    control = SandboxClient(server.endpoint)
    try:
        for name in args.only or SCENARIOS:
            started = time.monotonic()
            with tempfile.TemporaryDirectory(prefix="c7n-apigw-probe-") as workdir:
                run, _ = scenario(name, control, env, workdir)
            print("\n%s: %d stages, %.0f s" % (name, len(run.stages),
                                               time.monotonic() - started))
            print(probe.figures_table(run.figures()))
    finally:
        server.stop()


if __name__ == "__main__":
    main()

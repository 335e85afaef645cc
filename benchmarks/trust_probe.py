"""The proof by real TLS, as figures: requests through every stage of the demo estate during
the staged rotation of policies/rotate.yml (days 0, 3, 10), and during the migration of
policies/migrate.yml, to nginx backends that ``c7n-apigw-certs trust-sync`` feeds after each
run (c7n_apigw_certs/sandbox/trust_proof.py).

    python benchmarks/trust_probe.py             the scenarios below
    python benchmarks/trust_probe.py --only pinned
    python benchmarks/trust_probe.py --only migrate --only migrate-late

Scenarios, each on a freshly seeded sandbox:

- ``pinned``: nginx with ``ssl_verify_client optional_no_ca`` and the fingerprint map that
  ``trust-sync --format nginx-map`` writes. Expected: 0 refused in every phase.
- ``verify``: nginx with ``ssl_verify_client on`` and the PEM bundle itself. Expected: the
  switched stages refused from day 3 until the old certificate leaves the bundle on day 10
  (OpenSSL trusts one of several self-signed certificates of the same subject:
  docs/aws-behaviour.md, fact 156).
- ``late``: the negative control, ``pinned`` with ``switch-after-days 0`` and backends that
  sync only after the run: the switched stages are refused until the sync.
- ``migrate``: policies/migrate.yml (days 0, 3, 10) in eu-west-1 with a root and an issuing CA
  of the sandbox, publishing to the SSM bundle and to an ELB trust store per stage; each stage
  has two backends, nginx with ``ssl_verify_client on`` and the PEM bundle (the old generated
  certificate, then the CA chain beside it, then the chain alone) and a load balancer stand-in
  on the trust store (``probe.TrustStoreBackend``, re-read when the backends sync). Expected:
  0 refused in every phase, by both; the figures per backend follow the total.
- ``migrate-late``: its negative control, ``switch-after-days 0`` and backends that sync (and a
  load balancer that re-reads its trust store) only after the run: the private certificates
  are refused by both until then.

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
MIGRATE = os.path.join(ROOT, "policies", "migrate.yml")
SCENARIOS = ("pinned", "verify", "late", "migrate", "migrate-late")
# The migration's destinations: the SSM bundle trust-sync reads, and an ELB trust store per stage.
MIGRATE_REGION = "eu-west-1"
PUBLISH = [{"type": "ssm", "name": "/apigw/client-certs/{api_id}/{stage_name}"},
           {"type": "elb-trust-store", "trust_store": "apigw-{api_id}-{stage_name}",
            "bucket": "apigw-trust-stores", "key": "alb/{api_id}/{stage_name}.pem"}]


def migration(name, control, env, workdir):
    # A trust store holding a generated certificate (before the migration) needs the switch
    # trust_store_self_signed: accept (docs/aws-behaviour.md, fact 168).
    control.switches(trust_store_self_signed="accept")
    root = control.create_private_ca(MIGRATE_REGION, "Bench Root CA")
    issuing = control.create_private_ca(MIGRATE_REGION, "Bench Issuing CA", 1800, root["arn"])
    late = name == "migrate-late"
    policy = trust_proof.migration_policy(MIGRATE, issuing["arn"],
                                          os.path.join(workdir, "migrate.yml"), publish=PUBLISH,
                                          switch_after=0 if late else None)
    return trust_proof.prove(
        control, env, policy, workdir, mode="verify", regions=(MIGRATE_REGION,),
        schedule=trust_proof.LATE if late else trust_proof.MIGRATION,
        before="before the migration",
        label=(lambda day: "day %d, sync late" % day) if late else None)


def scenario(name, control, env, workdir):
    control.reset()
    os.environ.update(env)
    seed_demo(lambda region, desc, days: control.create_certificate(
        region=region, description=desc, expires_in_days=days)["clientCertificateId"],
        boto3.Session())
    control.reset_counters()
    if name.startswith("migrate"):
        return migration(name, control, env, workdir)
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
            backends = sorted({r.backend for r in run.results if r.backend})
            for backend in backends if len(backends) > 1 else ():
                print("\n%s, to %s only:" % (name, backend))
                print(probe.figures_table(run.figures(backend)))
    finally:
        server.stop()


if __name__ == "__main__":
    main()

"""The proof: requests through every stage of the demo estate, the whole staged rotation long
(days 0, 3 and 10 of policies/rotate.yml), to nginx backends that ``trust-sync`` feeds after
each run; not one refused. And its negative control: switched in the run that publishes, before
the backends synced, the stages are refused, and counted. The commands (``custodian``,
``trust-sync``) start from the warm interpreter (conftest.launch); ``make demo``
(tests/test_demo.py) runs the same proof with each as a new process."""
import os

import boto3
import pytest
from conftest import launch, make_cert
from test_probe import needs_nginx

from c7n_apigw_certs.sandbox import probe, trust_proof
from c7n_apigw_certs.sandbox.seed import seed_demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLICY = os.path.join(ROOT, "policies", "rotate.yml")
# The demo's stages with an HTTP integration, and those whose certificate expires within the
# policy's 30 days (seed.py).
STAGES = 8
ROTATED = {"orders-prod", "shared-backend", "live-updates", "eu-orders"}


@pytest.fixture
def estate(sandbox):
    ids = seed_demo(lambda region, desc, days: make_cert(sandbox, days, region, desc),
                    boto3.Session())
    sandbox.reset_counters()
    return ids


def presented_by_phase(run, phase):
    return {r.stage: r.certificate for r in run.of_phase(phase)}


def test_a_staged_rotation_refuses_no_request(sandbox, estate, tmp_path):
    needs_nginx()
    run, backends = trust_proof.prove(sandbox, sandbox.env, POLICY, str(tmp_path), launch=launch)
    figures = run.figures()
    assert list(figures) == ["before the rotation", "day 0", "day 3", "day 10"]
    for phase, row in figures.items():
        assert (phase, row["refused"], row["errors"]) == (phase, 0, 0), run.of_phase(phase)
        assert row["requests"] >= STAGES
    # orders-prod expired 3 days ago: its stage is refused until it is switched on day 3
    # (expired, not a trust gap), and never after.
    expired = run.of_phase("before the rotation", probe.EXPIRED) + run.of_phase(
        "day 0", probe.EXPIRED)
    assert expired and {r.certificate for r in expired} == {estate["orders-prod"]}
    assert not run.of_phase("day 10", probe.EXPIRED)
    assert not [r for r in run.of_phase("day 3", probe.EXPIRED)
                if r.certificate != estate["orders-prod"]]
    assert len(run.stages) == STAGES
    assert {s.protocol for s in run.stages} == {"REST", "WEBSOCKET"}
    # The rotation happened under the probe: the stages of the rotated certificates present
    # their successors from day 3 on, accepted; the others never changed.
    old = {v: k for k, v in estate.items()}
    before, after = presented_by_phase(run, "day 0"), presented_by_phase(run, "day 10")
    moved = {label for label in before if before[label] != after[label]}
    assert {old[before[label]] for label in moved} == ROTATED
    assert all(after[label] not in old for label in moved)
    day3 = [r for r in run.of_phase("day 3") if r.stage in moved and r.certificate not in old]
    assert day3 and all(r.outcome == probe.ACCEPTED for r in day3)
    # Every backend synced after each run, and its last sync left the successor alone in
    # trust: the old certificate is gone from every bundle on day 10.
    assert len(backends.syncs) == STAGES * 4 and not [s for s in backends.syncs if s[1]]
    for label in moved:
        with open(backends.files[label]) as fh:
            assert len([line for line in fh if line.endswith(" 1;\n")]) == 1


def test_switching_before_the_backends_synced_is_refused(sandbox, estate, tmp_path):
    """The negative control: switch-after-days 0 switches in the run that publishes; the
    backends sync only after it, so every switched stage is refused until then."""
    needs_nginx()
    policy = trust_proof.with_switch_after(POLICY, 0, str(tmp_path / "rotate-now.yml"))
    run, _ = trust_proof.prove(sandbox, sandbox.env, policy, str(tmp_path / "proof"),
                               schedule=trust_proof.LATE, launch=launch)
    figures = run.figures()
    assert figures["before the rotation"]["refused"] == 0
    refused = run.of_phase("day 0", probe.REFUSED)
    old = set(estate.values())
    # At least the round right after the run, before the sync: each switched stage once.
    switched_stages = {r.stage for r in refused}
    assert len(switched_stages) == 6 and figures["day 0"]["refused"] >= 6
    assert all(r.certificate not in old for r in refused)  # only successors are refused
    assert all(r.detail == "nginx: 400 The SSL certificate error" for r in refused)
    # After the late sync, the last round is accepted everywhere.
    last = run.results[-STAGES:]
    assert [r.outcome for r in last] == [probe.ACCEPTED] * STAGES


# -- the migration: generated certificates to ACM private certificates, through the CA chain --
MIGRATE = os.path.join(ROOT, "policies", "migrate.yml")
MIGRATE_REGION = "eu-west-1"  # the CA's region: the policy runs there only
# The demo estate's stages there (seed.py): eu-orders-api's prod (eu-orders, 12 days) and
# staging (eu-staging, 300 days), both HTTP integrations, each on a generated certificate.
MIGRATED = {"eu-orders", "eu-staging"}
PUBLISH = [{"type": "ssm", "name": "/apigw/client-certs/{api_id}/{stage_name}"},
           {"type": "elb-trust-store", "trust_store": "apigw-{api_id}-{stage_name}",
            "bucket": "apigw-trust-stores", "key": "alb/{api_id}/{stage_name}.pem"}]


def migration(sandbox, tmp_path, **gates):
    """A root CA and its issuing CA in the region, and policies/migrate.yml with that CA and
    both destinations a backend reads: the SSM bundle (trust-sync's nginx) and an ELB trust
    store per stage (a load balancer's). A trust store holding a generated certificate, as it
    does before the migration, needs ``trust_store_self_signed: accept`` (fact 168)."""
    sandbox.switches(trust_store_self_signed="accept")
    root = sandbox.create_private_ca(MIGRATE_REGION, "Proof Root CA")
    issuing = sandbox.create_private_ca(MIGRATE_REGION, "Proof Issuing CA", 1800, root["arn"])
    policy = trust_proof.migration_policy(MIGRATE, issuing["arn"], str(tmp_path / "migrate.yml"),
                                          publish=PUBLISH, **gates)
    return issuing, root, policy


def subjects(text):
    from cryptography import x509
    return [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(text.encode())]


def test_a_migration_to_private_certificates_refuses_no_request(sandbox, estate, tmp_path):
    """nginx with ssl_verify_client on and the PEM bundle trust-sync writes (the old generated
    certificate, then the CA chain beside it, then the chain alone), and a load balancer on its
    trust store: each verifies the private certificate through the chain. Days 0, 3, 10 of
    policies/migrate.yml, a sync after each run: not one request refused, to either."""
    from cryptography import x509
    needs_nginx()
    issuing, root, policy = migration(sandbox, tmp_path)
    run, backends = trust_proof.prove(
        sandbox, sandbox.env, policy, str(tmp_path / "proof"), schedule=trust_proof.MIGRATION,
        mode="verify", regions=(MIGRATE_REGION,), before="before the migration", launch=launch)
    phases = ["before the migration", "day 0", "day 3", "day 10"]
    assert list(run.figures()) == phases
    assert len(run.stages) == 2 and {s.region for s in run.stages} == {MIGRATE_REGION}
    for backend in ("nginx", "elb"):
        figures = run.figures(backend)
        assert list(figures) == phases
        for phase, row in figures.items():
            assert (backend, phase, row["refused"], row["expired"], row["errors"]) == (
                backend, phase, 0, 0, 0), run.of_phase(phase, backend=backend)
            assert row["requests"] >= len(run.stages)  # requests were made, to every stage
    # The migration happened under the probe: generated certificates until day 3, from day 3
    # on the ACM private certificates, accepted by both backends.
    old = {v: k for k, v in estate.items()}
    assert {old.get(c) for c in presented_by_phase(run, "day 0").values()} == MIGRATED
    for phase in ("day 3", "day 10"):
        shown = [r for r in run.of_phase(phase) if r.certificate not in old]
        assert {r.backend for r in shown} == {"nginx", "elb"}
        assert {r.stage for r in shown} == {s.label for s in run.stages}
        assert all(r.outcome == probe.ACCEPTED for r in shown)
    # Read back from the sandbox: every stage presents an ACM private certificate of the CA.
    acm = boto3.client("acm", region_name=MIGRATE_REGION)
    ca = x509.load_pem_x509_certificate(issuing["certificate_pem"].encode())
    for stage in run.stages:
        answer = sandbox.presented_certificate(probe.ACCOUNT, stage.region, stage.api_id,
                                               stage.name, stage.protocol)
        arn = answer["certificate_id_or_arn"]
        assert arn.startswith("arn:aws:acm:%s:" % MIGRATE_REGION), arn
        described = acm.describe_certificate(CertificateArn=arn)["Certificate"]
        assert (described["Type"], described["CertificateAuthorityArn"]) == (
            "PRIVATE", issuing["arn"])
        x509.load_pem_x509_certificate(answer["certificate_pem"].encode()
                                       ).verify_directly_issued_by(ca)
        # Both backends hold the CA chain alone once the old certificate is retired.
        with open(backends.files[stage.label]) as fh:
            assert subjects(fh.read()) == ["CN=Proof Issuing CA", "CN=Proof Root CA"]
        store = boto3.client("elbv2", region_name=MIGRATE_REGION).describe_trust_stores(
            Names=["apigw-%s-%s" % (stage.api_id, stage.name)])["TrustStores"][0]
        assert subjects(sandbox.trust_store_bundle(store["TrustStoreArn"])) == [
            "CN=Proof Issuing CA", "CN=Proof Root CA"]
    assert len(backends.syncs) == 2 * 4 and not [s for s in backends.syncs if s[1]]


def test_a_migration_switched_before_the_backends_synced_is_refused(sandbox, estate, tmp_path):
    """The migration's negative control: switch-after-days 0 switches in the run that
    publishes the CA chain; nginx syncs, and the load balancer re-reads its trust store, only
    after it: the private certificates are refused by both until then."""
    needs_nginx()
    _, _, policy = migration(sandbox, tmp_path, switch_after=0)
    run, _ = trust_proof.prove(
        sandbox, sandbox.env, policy, str(tmp_path / "proof"), schedule=trust_proof.LATE,
        mode="verify", regions=(MIGRATE_REGION,), before="before the migration", launch=launch)
    figures = run.figures()
    assert list(figures) == ["before the migration", "day 0"]
    assert figures["before the migration"]["refused"] == 0
    assert figures["before the migration"]["requests"] >= 2 * len(run.stages)
    old = set(estate.values())
    for backend in ("nginx", "elb"):
        refused = run.of_phase("day 0", probe.REFUSED, backend)
        # At least the round right after the run, before the sync: each stage once.
        assert {r.stage for r in refused} == {s.label for s in run.stages}, backend
        assert run.figures(backend)["day 0"]["refused"] >= len(run.stages)
        assert all(r.certificate not in old for r in refused)  # only the ACM certificates
    assert {r.detail for r in run.of_phase("day 0", probe.REFUSED, "nginx")} == {
        "nginx: 400 The SSL certificate error"}
    # After the late sync, the last round is accepted by both backends of every stage.
    last = run.results[-2 * len(run.stages):]
    assert [r.outcome for r in last] == [probe.ACCEPTED] * len(last)


def test_a_migration_whose_backends_never_sync_is_refused_on_the_switch(sandbox, estate,
                                                                          tmp_path):
    """The other negative control, with the policy's own gates: backends that never run
    trust-sync (nor re-read the trust store) keep trusting the old generated certificate only,
    and refuse every stage from the day it switches to the private certificate."""
    needs_nginx()
    _, _, policy = migration(sandbox, tmp_path)
    run, backends = trust_proof.prove(
        sandbox, sandbox.env, policy, str(tmp_path / "proof"),
        schedule=(("run", 0), ("run", 3)), mode="verify", regions=(MIGRATE_REGION,),
        before="before the migration", launch=launch)
    figures = run.figures()
    assert list(figures) == ["before the migration", "day 0", "day 3"]
    assert figures["day 0"]["refused"] == 0 and figures["day 0"]["requests"] > 0
    for backend in ("nginx", "elb"):
        refused = run.of_phase("day 3", probe.REFUSED, backend)
        assert {r.stage for r in refused} == {s.label for s in run.stages}, backend
        assert all(r.certificate.startswith("arn:aws:acm:") for r in refused)
    assert len(backends.syncs) == len(run.stages)  # the files nginx started with, only

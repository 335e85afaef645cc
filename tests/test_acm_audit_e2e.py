"""The audit of stages that present ACM certificates, through the real ``custodian`` command
line against the sandbox (its ACM and Private CA: sandbox/acm.py, sandbox/acmpca.py)."""
import csv
import io
import json
import pathlib

import pytest
from conftest import (
    api_calls, client, custodian_run, make_acm_cert, make_cert, make_rest_stage,
    make_websocket_stage, run_cli, write_policy)

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPIRING = str(ROOT / "policies" / "expiring.yml")
REGION = "us-east-1"


def expiring(days=30, **extra):
    return dict({"name": "expiring", "resource": "aws.apigw-client-certificate",
                 "filters": [{"type": "expiring", "days": days}]}, **extra)


def by_name(resources, estate):
    names = {v: k for k, v in estate.items() if isinstance(v, str)}
    return {names.get(r["clientCertificateId"], r["clientCertificateId"]): r
            for r in resources}


@pytest.fixture
def estate(sandbox):
    """Generated, imported and private certificates, each on a stage: which break within 30
    days (soon, imported-soon, renewal-failed, ca-soon, deleted) and which do not (healthy,
    imported-healthy, private-healthy); ``unused-acm`` is on no stage and never listed."""
    ca = sandbox.create_private_ca(REGION, "Orders Root CA")["arn"]
    short_ca = sandbox.create_private_ca(REGION, "Payments Root CA")["arn"]
    e = {
        "soon": make_cert(sandbox, 10, description="soon"),
        "healthy": make_cert(sandbox, 200, description="healthy"),
        "imported-soon": make_acm_cert(sandbox, "imported", 12, domain="imported.example.com"),
        "imported-healthy": make_acm_cert(sandbox, "imported", 300),
        "private-healthy": make_acm_cert(sandbox, "private", 300, ca_arn=ca),
        "renewal-failed": make_acm_cert(sandbox, "private", 20, ca_arn=ca),
        "ca-soon": make_acm_cert(sandbox, "private", 300, ca_arn=short_ca),
        "deleted": make_acm_cert(sandbox, "imported", 100),
        "unused-acm": make_acm_cert(sandbox, "imported", 5),
        "ca": ca, "short-ca": short_ca,
    }
    sandbox.fail_acm_renewal(e["renewal-failed"], reason="PCA_INVALID_STATE")
    sandbox.age_private_ca(short_ca, 15)
    for name in ("soon", "healthy", "imported-soon", "imported-healthy", "private-healthy",
                 "renewal-failed", "ca-soon", "deleted"):
        e["api:" + name] = make_rest_stage(e[name], name, "prod")
    make_rest_stage(e["private-healthy"], "private-healthy", "staging",
                    api_id=e["api:private-healthy"])
    client("acm").delete_certificate(CertificateArn=e["deleted"])
    return e


def test_the_audit_reports_exactly_what_breaks_with_kind_and_stages(sandbox, tmp_path, estate):
    found, _ = custodian_run(sandbox, tmp_path, EXPIRING)
    certs = by_name(found[REGION], estate)
    assert set(certs) == {"soon", "imported-soon", "renewal-failed", "ca-soon", "deleted"}
    assert {k: (c["kind"], c["c7n:condition"]) for k, c in certs.items()} == {
        "soon": ("generated", "expires"),
        "imported-soon": ("acm-imported", "expires"),
        "renewal-failed": ("acm-private", "renewal-failed"),
        "ca-soon": ("acm-private", "ca-expires"),
        "deleted": ("acm-unknown", "unknown"),
    }
    for name, cert in certs.items():
        assert [(s["apiName"], s["stageName"]) for s in cert["c7n:stages"]] == [(name, "prod")]
    assert certs["imported-soon"]["c7n:days-left"] == 12
    assert certs["imported-soon"]["clientCertificateId"] == estate["imported-soon"]
    assert certs["imported-soon"]["description"] == "imported.example.com"
    assert certs["imported-soon"]["c7n:acm"]["Type"] == "IMPORTED"
    failed = certs["renewal-failed"]
    assert failed["c7n:days-left"] == 20 and failed["c7n:expiry-source"] == "notAfter"
    assert failed["c7n:acm"]["RenewalStatus"] == "FAILED"
    assert "PCA_INVALID_STATE" in failed["c7n:condition-detail"]
    assert failed["c7n:acm"]["CertificateAuthority"]["Arn"] == estate["ca"]
    assert failed["c7n:acm"]["CertificateAuthority"]["Status"] == "ACTIVE"
    # ACM renews it, but its CA ends in 15 days, and every certificate it signed with it.
    ca_soon = certs["ca-soon"]
    assert ca_soon["c7n:days-left"] == 15 and ca_soon["c7n:expiry-source"] == "ca"
    assert ca_soon["c7n:acm"]["CertificateAuthority"]["Arn"] == estate["short-ca"]
    # Unknown, not healthy: no date, the reason, the stage.
    deleted = certs["deleted"]
    assert deleted["c7n:expires"] is None and deleted["c7n:expired"] is None
    assert "ResourceNotFoundException" in deleted["c7n:unknown"]
    assert estate["unused-acm"] not in {c["clientCertificateId"] for c in found[REGION]}


def test_the_run_says_why_a_certificate_is_unknown(sandbox, tmp_path, estate):
    _, proc = custodian_run(sandbox, tmp_path, EXPIRING)
    (line,) = [ln for ln in proc.stderr.splitlines() if estate["deleted"] in ln]
    assert "cannot be read" in line and "ResourceNotFoundException" in line


def test_without_the_filter_every_presented_certificate_is_listed_once(sandbox, tmp_path,
                                                                       estate):
    """The resource itself: every generated certificate and every ACM certificate a stage
    presents, no other ACM certificate (an account's ACM serves load balancers too)."""
    found, _ = custodian_run(sandbox, tmp_path, {
        "name": "all", "resource": "aws.apigw-client-certificate"})
    certs = by_name(found[REGION], estate)
    assert set(certs) == {"soon", "healthy", "imported-soon", "imported-healthy",
                          "private-healthy", "renewal-failed", "ca-soon", "deleted"}
    assert len(found[REGION]) == 8
    assert sorted(s["stageName"] for s in certs["private-healthy"]["c7n:stages"]) == [
        "prod", "staging"]
    assert certs["private-healthy"]["kind"] == "acm-private"
    assert certs["healthy"]["kind"] == "generated"


def test_the_report_shows_them_readably(sandbox, tmp_path, estate):
    custodian_run(sandbox, tmp_path, EXPIRING)
    text = run_cli("custodian", ["report", "-s", str(tmp_path / "out"), "--format", "csv",
                                 EXPIRING], sandbox.env).stdout
    header, *rows = csv.reader(io.StringIO(text))
    assert header == ["id", "kind", "description", "expires", "days_left", "condition",
                      "stages", "Region"]
    assert len(rows) == 5
    by_kind = {}
    for row in csv.DictReader(io.StringIO(text)):
        by_kind.setdefault(row["kind"], []).append(row)
    (unknown,) = by_kind["acm-unknown"]
    assert unknown["expires"] == "unknown" and unknown["days_left"] == ""
    assert unknown["condition"] == "unknown" and unknown["stages"] == "REST deleted/prod"
    assert unknown["id"] == "acm:" + estate["deleted"].rsplit("/", 1)[-1][:8]
    (imported,) = by_kind["acm-imported"]
    assert (imported["days_left"], imported["condition"], imported["stages"]) == (
        "12", "expires", "REST imported-soon/prod")
    assert sorted(r["condition"] for r in by_kind["acm-private"]) == [
        "ca-expires", "renewal-failed"]
    grid = run_cli("custodian", ["report", "-s", str(tmp_path / "out"), "--format", "grid",
                                 EXPIRING], sandbox.env).stdout
    assert "| acm-private" in grid and "renewal-failed" in grid


def test_acm_calls_are_the_minimum(sandbox, tmp_path, estate):
    """One ListCertificates page with every key type; one GetCertificate per imported
    certificate a stage presents; one DescribeCertificate per private one and per ARN the
    listing did not answer (the deleted one); one DescribeCertificateAuthority per CA."""
    sandbox.reset_counters()
    custodian_run(sandbox, tmp_path, EXPIRING)
    assert api_calls(sandbox, "acm") == {"ListCertificates": 1, "GetCertificate": 2,
                                         "DescribeCertificate": 4}
    assert api_calls(sandbox, "acm-pca") == {"DescribeCertificateAuthority": 2}


def test_every_key_type_is_asked_for(sandbox, tmp_path):
    """ACM lists only RSA_1024 and RSA_2048 unless asked (fact 98): an EC certificate is
    found in the listing, not described."""
    ec = make_acm_cert(sandbox, "imported", 7, key_type="EC_prime256v1")
    make_rest_stage(ec, "ec")
    sandbox.reset_counters()
    found, _ = custodian_run(sandbox, tmp_path, expiring(30))
    (cert,) = found[REGION]
    assert cert["clientCertificateId"] == ec and cert["c7n:acm"]["KeyAlgorithm"] == \
        "EC_prime256v1"
    assert api_calls(sandbox, "acm") == {"ListCertificates": 1, "GetCertificate": 1}


def test_revoked_and_expired_are_told_apart(sandbox, tmp_path):
    revoked = make_acm_cert(sandbox, "imported", 200)
    expired = make_acm_cert(sandbox, "imported", -2)
    make_rest_stage(revoked, "revoked")
    make_rest_stage(expired, "expired")
    sandbox.revoke_acm_certificate(revoked)
    found, _ = custodian_run(sandbox, tmp_path, expiring(0, actions=[
        {"type": "post-finding", "types": ["Software and Configuration Checks"]}]))
    certs = {c["clientCertificateId"]: c for c in found[REGION]}
    assert certs[revoked]["c7n:condition"] == "revoked"
    assert certs[expired]["c7n:condition"] == "expired"
    assert certs[expired]["c7n:days-left"] == -2
    findings = {f["Resources"][0]["Id"]: f for f in client("securityhub").get_findings()[
        "Findings"]}
    assert set(findings) == {revoked, expired}
    assert {a: f["Severity"]["Label"] for a, f in findings.items()} == {
        revoked: "CRITICAL", expired: "CRITICAL"}
    assert findings[revoked]["Resources"][0]["Details"]["Other"]["condition"] == "revoked"
    assert "re-import" in findings[revoked]["Remediation"]["Recommendation"]["Text"]


def test_a_private_certificate_pending_renewal_breaks_only_close_to_its_end(sandbox, tmp_path):
    ca = sandbox.create_private_ca(REGION, "Root")["arn"]
    close, far = make_acm_cert(sandbox, "private", 10, ca_arn=ca), \
        make_acm_cert(sandbox, "private", 100, ca_arn=ca)
    ineligible = make_acm_cert(sandbox, "private", 25, ca_arn=ca, renewal="ineligible")
    sandbox.pending_acm_renewal(close)
    sandbox.pending_acm_renewal(far)
    for name, arn in (("close", close), ("far", far), ("ineligible", ineligible)):
        make_rest_stage(arn, name)
    found, _ = custodian_run(sandbox, tmp_path, expiring(30))
    certs = {c["clientCertificateId"]: c["c7n:condition"] for c in found[REGION]}
    assert certs == {close: "renewal-pending", ineligible: "renewal-ineligible"}
    # The same certificate renewed (same ARN): healthy again, with no change to its stage.
    sandbox.renew_acm_certificate(close)
    found, _ = custodian_run(sandbox, tmp_path, expiring(30))
    assert {c["clientCertificateId"] for c in found[REGION]} == {ineligible}


def test_with_the_stages_from_aws_config(sandbox, tmp_path, estate):
    """``source: config``: the same ACM certificates, found through Config's stages."""
    found, _ = custodian_run(sandbox, tmp_path, expiring(30, source="config"))
    certs = by_name(found[REGION], estate)
    assert set(certs) == {"soon", "imported-soon", "renewal-failed", "ca-soon", "deleted"}
    assert certs["imported-soon"]["c7n:stages"][0]["stageName"] == "prod"


def test_websocket_stage_on_an_acm_certificate(sandbox, tmp_path):
    sandbox.switches(websocket_acm="accept")
    arn = make_acm_cert(sandbox, "imported", 9)
    api = make_websocket_stage(arn, "live", "production")
    found, _ = custodian_run(sandbox, tmp_path, expiring(30))
    (cert,) = found[REGION]
    assert cert["clientCertificateId"] == arn
    assert [(s["protocol"], s["apiId"]) for s in cert["c7n:stages"]] == [("WEBSOCKET", api)]


def test_rest_stage_expiring_reads_acm_certificates(sandbox, tmp_path):
    soon = make_acm_cert(sandbox, "imported", 6)
    make_rest_stage(soon, "a")
    make_rest_stage(make_acm_cert(sandbox, "imported", 90), "b")
    found, _ = custodian_run(sandbox, tmp_path, {
        "name": "stages", "resource": "aws.rest-stage",
        "filters": [{"type": "expiring", "days": 14}]})
    (stage,) = found[REGION]
    assert stage["c7n:client-certificate"]["clientCertificateId"] == soon
    assert stage["c7n:client-certificate"]["kind"] == "acm-imported"
    assert stage["c7n:client-certificate"]["c7n:days-left"] == 6


def test_under_exactly_the_generated_document(sandbox, tmp_path, estate):
    """The audit as a role with nothing but ``c7n-apigw-certs iam policies/expiring.yml``:
    nothing refused; less acm:DescribeCertificate, the private certificates cannot be fully
    read, and the run names the action."""
    from conftest import assume_role_allowed
    doc = json.loads(run_cli("c7n-apigw-certs", ["iam", EXPIRING], sandbox.env).stdout)
    sandbox.reset_counters()
    found, _ = custodian_run(sandbox, tmp_path, EXPIRING, extra=[
        "--assume", assume_role_allowed(doc)])
    assert api_calls(sandbox, outcome="denied") == {}
    assert len(found[REGION]) == 5
    less = dict(doc, Statement=[dict(s, Action=[a for a in s["Action"]
                                                if a != "acm:DescribeCertificate"])
                                for s in doc["Statement"]])
    found, proc = custodian_run(sandbox, tmp_path, EXPIRING, extra=[
        "--assume", assume_role_allowed(less, role="without-describe")])
    assert "acm:DescribeCertificate" in proc.stderr
    certs = by_name(found[REGION], estate)
    # Listed, but neither renewal nor CA known: unknown, never healthy, with the reason.
    for name in ("renewal-failed", "private-healthy", "ca-soon"):
        assert certs[name]["c7n:condition"] == "ca-unknown"
        assert "AccessDeniedException" in certs[name]["c7n:condition-detail"]


def test_policy_file_runs_as_written(sandbox, tmp_path, estate):
    """policies/expiring.yml, unchanged for a user, reports both kinds."""
    policy = write_policy(tmp_path, expiring(30))
    found, _ = custodian_run(sandbox, tmp_path, policy)
    assert {c["kind"] for c in found[REGION]} == {"generated", "acm-imported", "acm-private",
                                                  "acm-unknown"}

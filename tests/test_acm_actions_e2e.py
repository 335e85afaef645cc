"""What ``delete``, ``rotate`` and the tag actions do with ACM certificates, several at once,
through the real ``custodian`` against the sandbox: one certificate's refusal stays with it,
the others finish; ACM is left as it was, read back."""
import json

import pytest
from conftest import (
    REGION, client, custodian_run, make_acm_cert, make_cert, make_rest_stage, run_cli,
    write_policy)

BUCKET = "trust-bundles"


def rotate_policy(**extra):
    return {"name": "rotate", "resource": "aws.apigw-client-certificate",
            "filters": [{"type": "expiring", "days": 30}],
            "actions": [dict({"type": "rotate", "switch-after-days": 0,
                              "delete-after-days": 0, "publish": [
                                  {"type": "s3", "bucket": BUCKET,
                                   "key": "trust/{api_id}/{stage_name}.pem"}]}, **extra)]}


@pytest.fixture
def estate(sandbox):
    """Within 30 days: a generated certificate, two imported ones and a private one whose
    renewal failed, each on a stage; and a healthy private one."""
    client("s3").create_bucket(Bucket=BUCKET)
    ca = sandbox.create_private_ca(REGION, "Root")["arn"]
    e = {"generated": make_cert(sandbox, 10, description="generated"),
         "imported-1": make_acm_cert(sandbox, "imported", 12),
         "imported-2": make_acm_cert(sandbox, "imported", 5),
         "private-failed": make_acm_cert(sandbox, "private", 20, ca_arn=ca),
         "private-healthy": make_acm_cert(sandbox, "private", 300, ca_arn=ca)}
    sandbox.fail_acm_renewal(e["private-failed"])
    for name, cert in list(e.items()):
        e["api:" + name] = make_rest_stage(cert, name)
    return e


def acm_state():
    acm = client("acm")
    return {c["CertificateArn"]: (c["Status"], c["NotAfter"])
            for p in acm.get_paginator("list_certificates").paginate(Includes={
                "keyTypes": ["RSA_2048", "EC_prime256v1"]})
            for c in p["CertificateSummaryList"]}


def stage_of(estate, name):
    return client("apigateway").get_stage(restApiId=estate["api:" + name],
                                          stageName="prod")["clientCertificateId"]


def test_rotate_fails_each_imported_certificate_and_rotates_the_generated_one(
        sandbox, tmp_path, estate):
    before = acm_state()
    _, proc = custodian_run(sandbox, tmp_path, rotate_policy(), check=False)
    assert proc.returncode != 0  # the imported ones failed, and the run says so
    rotated = json.loads((tmp_path / "out" / "rotate" / "action-rotate").read_text())
    rotation = {r["clientCertificateId"]: r["c7n:rotation"] for r in rotated}
    assert set(rotation) == {estate[k] for k in ("generated", "imported-1", "imported-2",
                                                 "private-failed")}
    for name in ("imported-1", "imported-2"):
        (error,) = rotation[estate[name]]["errors"]
        assert "re-import the renewed certificate under the same ARN" in error
        assert estate[name] in error and "private certificate" in error
        assert "rotate failed for 2 certificate(s)" in proc.stderr
    failed = rotation[estate["private-failed"]]
    assert "errors" not in failed and "renewal-failed" in failed["skipped"]
    assert "not rotated: acm-private" in proc.stderr
    # The generated one went all the way: its stage presents a successor, it is deleted.
    new = stage_of(estate, "generated")
    assert new != estate["generated"] and len(new) == 6
    assert rotation[estate["generated"]]["successor"] == new
    ids = {c["clientCertificateId"] for c in client("apigateway").get_client_certificates()[
        "items"]}
    assert estate["generated"] not in ids
    # ACM and the ACM stages are as they were.
    assert acm_state() == before
    for name in ("imported-1", "imported-2", "private-failed", "private-healthy"):
        assert stage_of(estate, name) == estate[name]


def test_delete_never_deletes_an_acm_certificate(sandbox, tmp_path, estate):
    """Even asked to (no in-use filter, every certificate the resource lists): the generated
    certificate's stage protects it, each ACM one is refused with why, ACM is untouched."""
    spare = make_cert(sandbox, 10, description="spare")
    before = acm_state()
    found, proc = custodian_run(sandbox, tmp_path, {
        "name": "delete", "resource": "aws.apigw-client-certificate",
        "actions": [{"type": "delete"}]})
    ids = {c["clientCertificateId"] for c in client("apigateway").get_client_certificates()[
        "items"]}
    assert spare not in ids and estate["generated"] in ids
    assert "client-certificate:%s is used by stage:" % estate["generated"] in proc.stderr
    for name in ("imported-1", "imported-2", "private-failed", "private-healthy"):
        (line,) = [ln for ln in proc.stderr.splitlines() if estate[name] in ln]
        assert "is an ACM certificate (acm-" in line and "never deletes" in line
        assert line.endswith("not deleted")
    assert acm_state() == before
    assert len(found[REGION]) == 6  # the five on stages and the spare, nothing else


def test_tag_actions_skip_acm_certificates(sandbox, tmp_path, estate):
    _, proc = custodian_run(sandbox, tmp_path, {
        "name": "tag", "resource": "aws.apigw-client-certificate",
        "filters": [{"type": "expiring", "days": 30}],
        "actions": [{"type": "tag", "key": "expiring", "value": "yes"}]})
    tags = client("apigateway").get_client_certificate(
        clientCertificateId=estate["generated"])["tags"]
    assert tags == {"expiring": "yes"}
    for name in ("imported-1", "imported-2", "private-failed"):
        assert client("acm").list_tags_for_certificate(
            CertificateArn=estate[name]).get("Tags", []) == []
        assert "client-certificate:%s tag skipped: an ACM certificate" % estate[name] in \
            proc.stderr


def test_dryrun_reports_the_refusals_and_changes_nothing(sandbox, tmp_path, estate):
    before = acm_state()
    path = write_policy(tmp_path, rotate_policy())
    found, _ = custodian_run(sandbox, tmp_path, path, extra=["--dryrun"])
    assert {c["kind"] for c in found[REGION]} == {"generated", "acm-imported", "acm-private"}
    assert acm_state() == before and stage_of(estate, "generated") == estate["generated"]


@pytest.mark.parametrize("action", ["rotate", "delete"])
def test_a_policy_that_cannot_act_is_refused_at_load(tmp_path, action):
    """kind filters that select no generated certificate, and an action that acts only on
    those: ``custodian validate`` refuses it naming why; with generated among the kinds, or
    with no such action, it is valid."""
    data = rotate_policy() if action == "rotate" else {
        "name": "delete", "resource": "aws.apigw-client-certificate",
        "actions": [{"type": "delete"}]}
    data["filters"] = [{"type": "kind", "kinds": ["acm-imported", "acm-private"]}] + \
        data.get("filters", [])
    env = {"PATH": "/usr/bin:/bin"}
    proc = run_cli("custodian", ["validate", write_policy(tmp_path, data)], env, check=False)
    assert proc.returncode != 0
    assert "selects no generated certificate" in proc.stderr + proc.stdout
    assert action in proc.stderr + proc.stdout
    data["filters"][0]["kinds"].append("generated")
    run_cli("custodian", ["validate", write_policy(tmp_path, data)], env)
    audit = {"name": "acm-only", "resource": "aws.apigw-client-certificate",
             "filters": [{"type": "kind", "kinds": ["acm-imported"]}]}
    run_cli("custodian", ["validate", write_policy(tmp_path, audit)], env)

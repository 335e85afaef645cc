"""The audit through the real ``custodian`` command line against the sandbox server."""
import csv
import datetime
import io
import pathlib
import shutil

from conftest import (
    api_calls, client, custodian_run, make_cert, make_rest_stage, make_websocket_stage,
    read_output, run_at, run_cli, write_policy)

ROOT = pathlib.Path(__file__).resolve().parents[1]
def custodian_run_at(control, tmp_path, policy, at, region="us-east-1"):
    """``custodian run`` with its clock frozen at ``at``; returns {region: resources}."""
    out = tmp_path / "out"
    shutil.rmtree(out, ignore_errors=True)
    args = ["run", "--cache-period", "0", "-s", str(out), "--region", region,
            write_policy(tmp_path, policy)]
    run_at("@" + at.isoformat(), "custodian", args, control.env)
    return read_output(out, (region,))


def expiring(days=30):
    return {"name": "expiring", "resource": "aws.apigw-client-certificate",
            "filters": [{"type": "expiring", "days": days}]}


def by_description(resources):
    return {r.get("description"): r for r in resources}


def test_both_sides_of_the_threshold(sandbox, tmp_path):
    """The sandbox and custodian stand still at the same instant, so the threshold is tested
    to the second: expiring in exactly 30 days is inside a 30-day window, one second more is
    outside."""
    at = datetime.datetime(2030, 6, 15, 12, 0, tzinfo=datetime.timezone.utc)
    sandbox.set_now(at.isoformat(), tick=False)
    expiries = {"d%d" % days: at + datetime.timedelta(days=days) for days in (29, 31, -2, 30)}
    expiries["just-outside"] = at + datetime.timedelta(days=30, seconds=1)
    for description, expires in expiries.items():
        sandbox.create_certificate(description=description,
                                   created=(expires - datetime.timedelta(days=365)).isoformat())
    found = custodian_run_at(sandbox, tmp_path, expiring(30), at)
    certs = by_description(found["us-east-1"])
    assert set(certs) == {"d29", "d30", "d-2"}
    assert certs["d30"]["c7n:days-left"] == 30 and certs["d30"]["c7n:expired"] is False
    assert certs["d29"]["c7n:days-left"] == 29 and certs["d29"]["c7n:expired"] is False
    assert certs["d-2"]["c7n:expired"] is True and certs["d-2"]["c7n:days-left"] == -2
    assert certs["d30"]["c7n:expiry-source"] == "expirationDate"


def test_stages_that_use_each_certificate(sandbox, tmp_path):
    shared, ws, unused = (make_cert(sandbox, 5, description=d)
                          for d in ("shared", "ws", "unused"))
    api_a = make_rest_stage(shared, "orders", "prod")
    make_rest_stage(shared, "orders", "staging", api_id=api_a)
    api_b = make_rest_stage(shared, "payments", "prod")
    ws_api = make_websocket_stage(ws, "live", "production")
    found, _ = custodian_run(sandbox, tmp_path, expiring(30))
    certs = by_description(found["us-east-1"])
    stages = sorted((s["protocol"], s["apiId"], s["apiName"], s["stageName"])
                    for s in certs["shared"]["c7n:stages"])
    assert stages == sorted([("REST", api_a, "orders", "prod"),
                             ("REST", api_a, "orders", "staging"),
                             ("REST", api_b, "payments", "prod")])
    assert [(s["protocol"], s["apiId"], s["stageName"]) for s in certs["ws"]["c7n:stages"]] == \
        [("WEBSOCKET", ws_api, "production")]
    assert certs["unused"]["c7n:stages"] == []
    assert certs["shared"]["Tags"] == []


def test_api_calls_are_the_minimum(sandbox, tmp_path):
    cert = make_cert(sandbox, 5)
    for name in ("a", "b", "c"):
        make_rest_stage(cert, name)
    make_websocket_stage(cert)
    sandbox.reset_counters()
    found, _ = custodian_run(sandbox, tmp_path, expiring(30))
    assert len(found["us-east-1"]) == 1
    # One listing of certificates, of REST APIs, of v2 APIs; one GetStages per API.
    assert api_calls(sandbox, "apigateway") == {
        "GetClientCertificates": 1, "GetRestApis": 1, "GetStages": 3}
    assert api_calls(sandbox, "apigatewayv2") == {"GetApis": 1, "GetStages": 1}


def test_no_certificates_still_lists_the_stages_and_no_acm(sandbox, tmp_path):
    """With no certificate of API Gateway's, the stages are still listed (a stage may present
    an ACM certificate, which API Gateway does not list); with no stage on an ACM ARN, ACM is
    not called at all."""
    client("apigateway").create_rest_api(name="no-certificate-here")
    sandbox.reset_counters()
    found, _ = custodian_run(sandbox, tmp_path, expiring(30))
    assert found.get("us-east-1", []) == []
    assert api_calls(sandbox, "apigateway") == {
        "GetClientCertificates": 1, "GetRestApis": 1, "GetStages": 1}
    assert api_calls(sandbox, "acm") == {} and api_calls(sandbox, "acm-pca") == {}


def test_paging_past_25_and_500(sandbox, tmp_path):
    sandbox.switches(quota=600)
    for i in range(510):
        make_cert(sandbox, 10 if i % 2 else 100)
    sandbox.reset_counters()
    found, _ = custodian_run(sandbox, tmp_path, expiring(30))
    assert len(found["us-east-1"]) == 255
    assert len({c["clientCertificateId"] for c in found["us-east-1"]}) == 255
    assert api_calls(sandbox, "apigateway")["GetClientCertificates"] == 2  # 500 a page


def test_two_regions(sandbox, tmp_path):
    make_cert(sandbox, 3, region="us-east-1", description="east")
    make_cert(sandbox, 3, region="eu-west-1", description="west")
    make_cert(sandbox, 300, region="eu-west-1", description="healthy")
    found, _ = custodian_run(sandbox, tmp_path, expiring(30), regions=("us-east-1", "eu-west-1"))
    assert [c["description"] for c in found["us-east-1"]] == ["east"]
    assert [c["description"] for c in found["eu-west-1"]] == ["west"]


def test_pem_earlier_than_expiration_date(sandbox, tmp_path):
    now = datetime.datetime.fromisoformat(sandbox.now()).replace(microsecond=0)
    early = now + datetime.timedelta(days=10)
    make_cert(sandbox, 200, description="lying", not_after=early.isoformat())
    make_cert(sandbox, 200, description="honest")
    found, _ = custodian_run(sandbox, tmp_path, expiring(30))
    (cert,) = found["us-east-1"]
    assert cert["description"] == "lying"
    assert cert["c7n:expiry-source"] == "pem"
    assert cert["c7n:expires"] == early.isoformat()
    assert cert["c7n:days-left"] == 10


def test_unused_policy_file(sandbox, tmp_path):
    used = make_cert(sandbox, 100, description="used")
    make_rest_stage(used)
    make_cert(sandbox, 100, description="spare")
    found, _ = custodian_run(sandbox, tmp_path, str(ROOT / "policies" / "unused.yml"))
    assert [c["description"] for c in found["us-east-1"]] == ["spare"]


def test_expiring_policy_file_and_report(sandbox, tmp_path):
    cert = make_cert(sandbox, 12, description="soon")
    make_rest_stage(cert, "orders")
    make_cert(sandbox, 200, description="later")
    policy = str(ROOT / "policies" / "expiring.yml")
    found, _ = custodian_run(sandbox, tmp_path, policy)
    assert [c["description"] for c in found["us-east-1"]] == ["soon"]
    report = run_cli("custodian", ["report", "-s", str(tmp_path / "out"), "--format", "csv",
                                   policy], sandbox.env).stdout
    header, row = csv.reader(io.StringIO(report.strip()))
    assert header == ["id", "kind", "description", "expires", "days_left", "condition",
                      "stages", "Region"]  # more in tests/test_report.py
    assert row[:3] == [cert, "generated", "soon"] and row[4] == "12"
    assert row[5:] == ["expires", "REST orders/prod", "us-east-1"]


def test_throttling_is_retried_not_a_wrong_result(sandbox, tmp_path):
    """API Gateway's rate refusal (429 TooManyRequestsException, "Too Many Requests", as the
    sandbox's throttle answers it) on listings and on stages: c7n retries, nothing is lost.
    Armed as faults, so that the refusals happen however fast the machine is."""
    cert = make_cert(sandbox, 5)
    for name in "abcdef":
        make_rest_stage(cert, name)
    for operation, count in (("GetClientCertificates", 1), ("GetRestApis", 1),
                             ("GetStages", 3)):
        sandbox.add_fault(operation, count=count, code="TooManyRequestsException", status=429,
                          message="Too Many Requests")
    found, _ = custodian_run(sandbox, tmp_path, expiring(30))
    assert len(found["us-east-1"][0]["c7n:stages"]) == 6
    assert api_calls(sandbox, outcome="fault") == {
        "GetClientCertificates": 1, "GetRestApis": 1, "GetStages": 3}
    assert sandbox.clear_faults() == {"faults": []}  # every one was spent


def test_rest_stage_expiring(sandbox, tmp_path):
    soon, later = make_cert(sandbox, 7, description="soon"), make_cert(sandbox, 90)
    api_soon = make_rest_stage(soon, "a")
    make_rest_stage(later, "b")
    apigw_stage = {"name": "stages", "resource": "aws.rest-stage",
                   "filters": [{"type": "expiring", "days": 14}]}
    found, _ = custodian_run(sandbox, tmp_path, apigw_stage)
    (stage,) = found["us-east-1"]
    assert stage["restApiId"] == api_soon and stage["stageName"] == "prod"
    assert stage["c7n:client-certificate"]["clientCertificateId"] == soon
    assert stage["c7n:client-certificate"]["c7n:days-left"] == 7


def test_findings_pipeline(sandbox, tmp_path):
    """Compliance pipelines: the expiring policy posts Security Hub findings with the ARN."""
    soon = make_cert(sandbox, 4, description="soon")
    make_cert(sandbox, 200, description="later")
    policy = dict(expiring(30), actions=[{"type": "post-finding",
                                          "types": ["Software and Configuration Checks"]}])
    found, _ = custodian_run(sandbox, tmp_path, policy)
    assert [c["clientCertificateId"] for c in found["us-east-1"]] == [soon]
    findings = client("securityhub").get_findings()["Findings"]
    assert len(findings) == 1
    (resource,) = findings[0]["Resources"]
    assert resource["Id"] == "arn:aws:apigateway:us-east-1::/clientcertificates/%s" % soon

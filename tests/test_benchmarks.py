"""benchmarks/audit.py on a tiny estate: the estate it builds, its accounting of calls, and its
check of the audit's output. Behaviour only: no test here looks at a wall time."""
import os
import sys

import pytest

from conftest import ACCOUNT, REGION, client

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
import audit  # noqa: E402

TINY = audit.Estate(rest_apis=3, stages_each=2, websockets=2, http_apis=1, certificates=6,
                    unused=1)


def test_estate_builder_makes_the_estate_it_describes(sandbox):
    """Every stage on the certificate the plan names; the deployments are set-up calls, so the
    CreateDeployment rate (5 s by default) refuses none of them."""
    certs = audit.build_estate(sandbox.env["AWS_ENDPOINT_URL"], sandbox, TINY)
    assert len(certs) == len(set(certs)) == 6
    rest = client("apigateway")
    seen = []
    for api in sorted(rest.get_rest_apis(limit=500)["items"], key=lambda a: a["name"]):
        stages = {s["stageName"]: s["clientCertificateId"]
                  for s in rest.get_stages(restApiId=api["id"])["item"]}
        assert sorted(stages) == ["prod", "staging"]
        seen += [stages["prod"], stages["staging"]]
    v2 = client("apigatewayv2")
    apis = sorted(v2.get_apis()["Items"], key=lambda a: a["Name"])
    assert [a["ProtocolType"] for a in apis] == ["HTTP", "WEBSOCKET", "WEBSOCKET"]
    for api in apis[1:]:
        (stage,) = v2.get_stages(ApiId=api["ApiId"])["Items"]
        seen.append(stage["ClientCertificateId"])
    # REST stages in order, then WebSocket stages, round-robin over the 5 used certificates.
    assert seen == [certs[j % 5] for j in range(8)]
    assert certs[5] not in seen
    refused = [r for r in sandbox.counters() if r["outcome"] != "ok"]
    assert refused == []
    days = {c["clientCertificateId"]: c["description"] for c in rest.get_client_certificates(
        limit=500)["items"]}
    assert days == {c: "bench-%02d" % i for i, c in enumerate(certs)}


def test_expiry_plan_keeps_clear_of_the_threshold():
    days = [audit.expires_in_days(i) for i in range(60)]
    assert not {29, 30, 31} & set(days)
    assert audit.expected(TINY) == {0: 2, 1: 2, 2: 2, 3: 1}  # -25, -10, 5 and 20 days


def test_audit_makes_exactly_the_minimum_and_reports_the_estate(sandbox, tmp_path):
    """The real custodian, unthrottled: every API Gateway call is one the minimum names, no
    Config call, and the output is the estate's expiring certificates with their stages."""
    endpoint = sandbox.env["AWS_ENDPOINT_URL"]
    certs = audit.build_estate(endpoint, sandbox, TINY)
    result = audit.run_audit(endpoint, sandbox, sandbox.env, str(tmp_path), TINY, certs,
                             rate=None, burst=None)
    assert result["exit_code"] == 0, result.get("stderr_tail")
    assert result["output_problems"] == []
    assert result["matched"] == 4
    need = audit.minimum_calls(TINY)
    assert need == {("apigateway", "GetClientCertificates"): 1,
                    ("apigateway", "GetRestApis"): 1, ("apigateway", "GetStages"): 3,
                    ("apigatewayv2", "GetApis"): 1, ("apigatewayv2", "GetStages"): 2}
    assert result["api_gateway_minimum"] == 8
    assert result["api_gateway_ok"] == 8
    assert result["api_gateway_throttled"] == 0
    assert result["over_minimum"] == {}
    assert result["config_calls"] == 0
    assert result["calls"]["apigateway GetStages"] == {"ok": 3}


def test_accounting_names_the_operations_over_the_minimum():
    rows = [
        {"account": ACCOUNT, "region": REGION, "service": "apigateway",
         "operation": "GetStages", "outcome": "ok", "calls": 5},
        {"account": ACCOUNT, "region": REGION, "service": "apigateway",
         "operation": "GetStages", "outcome": "throttled", "calls": 2},
        {"account": ACCOUNT, "region": REGION, "service": "apigateway",
         "operation": "GetTags", "outcome": "ok", "calls": 1},
        {"account": ACCOUNT, "region": "eu-west-1", "service": "config",
         "operation": "SelectResourceConfig", "outcome": "ok", "calls": 1},
        {"account": ACCOUNT, "region": REGION, "service": "sts",
         "operation": "AssumeRole", "outcome": "ok", "calls": 4},
    ]
    need = {("apigateway", "GetStages"): 3, ("config", "SelectResourceConfig"): 1}
    figures = audit.account(audit.tally(rows), need)
    assert figures["api_gateway_ok"] == 6
    assert figures["api_gateway_throttled"] == 2
    assert figures["api_gateway_minimum"] == 3
    assert figures["config_calls"] == 1
    assert figures["over_minimum"] == {
        "apigateway GetStages": {"made": 5, "needed": 3},
        "apigateway GetTags": {"made": 1, "needed": 0}}


def test_minimum_calls_pages_and_sources():
    big = audit.Estate(rest_apis=1001, stages_each=1, websockets=600, http_apis=0,
                       certificates=60, unused=0)
    need = audit.minimum_calls(big, regions=2)
    assert need[("apigateway", "GetRestApis")] == 2 * 3
    assert need[("apigatewayv2", "GetApis")] == 2 * 2
    assert need[("apigateway", "GetStages")] == 2 * 1001
    config = audit.minimum_calls(big, source="config")
    assert config == {("apigateway", "GetClientCertificates"): 1,
                      ("config", "SelectResourceConfig"): 33}  # 1601 stages + 1601 APIs
    # No certificate of API Gateway's: the stages are still listed (one may present an ACM
    # certificate), here one REST API page and one v2 page, no stage of any.
    empty = audit.Estate(rest_apis=0, websockets=0, http_apis=3, certificates=0, unused=0)
    assert audit.minimum_calls(empty) == {("apigateway", "GetClientCertificates"): 1,
                                          ("apigateway", "GetRestApis"): 1,
                                          ("apigatewayv2", "GetApis"): 1}


def test_acm_minimum():
    """benchmarks/acm.py's minimum: ACM only when a stage presents an ACM certificate, pages of
    1000 over every ACM certificate of the account, one call per certificate and per CA."""
    import acm
    need = acm.minimum(rest_apis=10, generated=10, imported=0, private=0, cas=0, unrelated=5)
    assert need["acm"] == {} and need["acm-pca"] == {}
    need = acm.minimum(rest_apis=3000, generated=10, imported=700, private=600, cas=3,
                       unrelated=500)
    assert need["acm"] == {"ListCertificates": 2, "GetCertificate": 700,
                           "DescribeCertificate": 600}
    assert need["acm-pca"] == {"DescribeCertificateAuthority": 3}
    assert need["apigateway"]["GetRestApis"] == 6 and need["apigateway"]["GetStages"] == 3000


def test_check_output_finds_what_differs():
    certs = ["c%d" % i for i in range(6)]
    right = {"c0": 2, "c1": 2, "c2": 2, "c3": 1}
    assert audit.check_output(right, TINY, certs) == []
    wrong = {"c0": 2, "c1": 1, "c3": 1, "c5": 0}
    assert audit.check_output(wrong, TINY, certs) == [
        "missing c2", "unexpected c5", "c1: 1 stages reported, 2 use it"]


def test_a_source_the_plugin_refuses_is_skipped_with_the_reason(sandbox, tmp_path):
    """The Config variant is one option away; a policy the installed plugin refuses is
    reported as skipped, with custodian's own complaint, and the audit is not run."""
    result = audit.run_audit(sandbox.env["AWS_ENDPOINT_URL"], sandbox, sandbox.env,
                             str(tmp_path), TINY, [], source="no-such-source")
    assert set(result) == {"source", "skipped"}
    assert "no-such-source" in result["skipped"]
    assert sandbox.counters() == []


def test_config_variant_differs_only_in_its_source(tmp_path):
    path = audit.write_policy(str(tmp_path), "config")
    shipped = audit.policy_data()
    variant = audit.policy_data("config")
    assert [p.pop("source") for p in variant["policies"]] == ["config"] * len(shipped["policies"])
    assert variant == shipped
    assert open(path).read().count("source: config") == len(shipped["policies"])


def test_estate_refuses_a_shape_it_cannot_build():
    with pytest.raises(ValueError):
        audit.Estate(certificates=3, unused=3)  # stages, but every certificate unused
    with pytest.raises(ValueError):
        audit.Estate(stages_each=len(audit.STAGE_NAMES) + 1)


def test_a_policy_custodian_refuses_is_reported_with_its_complaint(sandbox, tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(open(audit.POLICY).read().replace("days: 30", "days: -1"))
    why = audit.refusal(str(bad), dict(sandbox.env, HOME=str(tmp_path)))
    assert why and "-1" in why
    assert audit.refusal(audit.POLICY, dict(sandbox.env, HOME=str(tmp_path))) is None


def test_org_run_over_accounts_and_regions_is_accounted(sandbox, tmp_path):
    """c7n-org, 2 workers, 2 accounts x 2 regions of the tiny estate, each account's calls
    within its burst: the minimum exactly, none throttled, one AssumeRole per account and
    region, every account-region's output as its estate says."""
    endpoint = sandbox.env["AWS_ENDPOINT_URL"]
    regions = ("us-east-1", "eu-west-1")
    certs = {}
    for acct in audit.org_accounts(2):
        session = audit.session_in(endpoint, acct)
        certs[acct] = {r: audit.build_estate(endpoint, sandbox, TINY, r, acct, session)
                       for r in regions}
    result = audit.run_org(sandbox, sandbox.env, str(tmp_path), TINY, certs, 2, regions)
    assert result["exit_code"] == 0, result.get("stderr_tail")
    assert result["output_problems"] == []
    assert result["account_regions"] == 4
    assert result["matched"] == 4 * 4
    assert result["api_gateway_ok"] == result["api_gateway_minimum"] == 4 * 8
    assert result["api_gateway_throttled"] == 0
    assert result["calls"]["sts AssumeRole"] == {"ok": 4}
    assert result["lower_bound_s"] == 0  # 16 calls an account: within the burst of 40


def test_throttle_bounds_per_account():
    def row(acct, n, service="apigateway", outcome="ok"):
        return {"account": acct, "region": REGION, "service": service,
                "operation": "GetStages", "outcome": outcome, "calls": n}
    rows = [row("a", 100), row("a", 20, "apigatewayv2"), row("a", 50, outcome="throttled"),
            row("b", 60), row("c", 30), row("c", 500, "sts")]
    # a: (120 - 40) / 10 = 8 s; b: 2 s; c: within its burst
    assert audit.throttle_bounds(rows, 1) == {
        "lower_bound_s": 10.0, "lower_bound_serial_s": 10.0, "lower_bound_parallel_s": 8.0}
    assert audit.throttle_bounds(rows, 2)["lower_bound_s"] == 8.0

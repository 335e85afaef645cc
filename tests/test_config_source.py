"""``source: config`` on aws.apigw-client-certificate: the stages that use certificates from AWS
Config (one query a region, or an aggregator's), the certificates from one listing; and rotate
and delete, which must not trust Config's lag. Through the real ``custodian`` against the
sandbox, whose Config records stages with a settable delay (``config_delay``)."""
import json
import math
import pathlib

import boto3
import pytest
from c7n.exceptions import PolicyValidationError
from c7n_apigw_certs.sandbox.seed import create_rest_stage

from conftest import (
    ACCOUNT, REGION, api_calls, client, custodian_run, make_cert, make_rest_stage,
    make_websocket_stage, run_cli)

SSM_NAME = "/apigw/client-certs/{api_id}/{stage_name}"
DAY = 86400


def audit(source="config", query=None, filters=None, name="audit"):
    policy = {"name": name, "resource": "aws.apigw-client-certificate",
              "filters": filters or []}
    if source:
        policy["source"] = source
    if query:
        policy["query"] = query
    return policy


@pytest.fixture
def estate(sandbox):
    """A shared certificate on REST stages of two APIs and a WebSocket stage; one on a REST
    stage of a third API; one unused."""
    shared = make_cert(sandbox, 10, description="shared")
    api_a = make_rest_stage(shared, "orders", "prod")
    make_rest_stage(shared, "orders", "staging", api_id=api_a)
    api_b = make_rest_stage(shared, "payments", "prod")
    ws = make_websocket_stage(shared, "live-updates", "production")
    single = make_cert(sandbox, 200, description="single")
    api_c = make_rest_stage(single, "inventory", "prod")
    unused = make_cert(sandbox, 5, description="unused")
    return {"shared": shared, "single": single, "unused": unused, "apis": (api_a, api_b, api_c),
            "ws": ws}


def by_id(resources):
    return {r["clientCertificateId"]: r for r in resources}


def labels(cert):
    return sorted(s["label"] for s in cert["c7n:stages"])


def test_config_source_finds_the_stages_the_listings_find(sandbox, estate, tmp_path):
    described = by_id(custodian_run(sandbox, tmp_path, audit(source=None))[0][REGION])
    sandbox.reset_counters()
    found, proc = custodian_run(sandbox, tmp_path, audit())
    from_config = by_id(found[REGION])
    assert set(from_config) == set(described) == {estate["shared"], estate["single"],
                                                   estate["unused"]}
    for cert_id, cert in described.items():
        assert labels(from_config[cert_id]) == labels(cert)
    assert labels(from_config[estate["shared"]]) == sorted([
        "REST orders (%s) / prod" % estate["apis"][0],
        "REST orders (%s) / staging" % estate["apis"][0],
        "REST payments (%s) / prod" % estate["apis"][1],
        "WEBSOCKET live-updates (%s) / production" % estate["ws"]])
    assert from_config[estate["unused"]]["c7n:stages"] == []
    # API Gateway once, for the certificates; Config once, for every stage of the region.
    assert api_calls(sandbox, "apigateway") == {"GetClientCertificates": 1}
    assert api_calls(sandbox, "apigatewayv2") == {}
    assert api_calls(sandbox, "config") == {"SelectResourceConfig": 1}
    origin = from_config[estate["shared"]]["c7n:stages-source"]
    assert origin["source"] == "config" and origin["aggregator"] is None
    assert origin["captured"].startswith(sandbox.now()[:10])
    assert "stages of us-east-1 from AWS Config: 5 stage(s) with a client certificate" \
        in proc.stderr
    assert "c7n:stages-source" not in described[estate["shared"]]


def test_one_config_query_whatever_the_number_of_apis(sandbox, tmp_path):
    cert = make_cert(sandbox, 10)
    for i in range(8):
        make_rest_stage(cert, "api-%d" % i, "prod")
    sandbox.reset_counters()
    found, _ = custodian_run(sandbox, tmp_path, audit())
    assert len(found[REGION][0]["c7n:stages"]) == 8
    assert api_calls(sandbox, "apigateway") == {"GetClientCertificates": 1}
    assert api_calls(sandbox, "config") == {"SelectResourceConfig": 1}


def test_config_query_follows_next_token(sandbox, monkeypatch):
    """Pages of PAGE_SIZE results, each continued by NextToken until none is left."""
    from c7n_apigw_certs.audit import config_source
    cert = make_cert(sandbox, 10)
    for i in range(3):
        make_rest_stage(cert, "api-%d" % i, "prod")
    monkeypatch.setattr(config_source, "PAGE_SIZE", 2)
    sandbox.reset_counters()
    found, _, _ = config_source.stages_by_certificate(boto3.Session, REGION, ACCOUNT, {})
    assert len(found[cert]) == 3
    # 3 APIs + 3 stages = 6 items: 3 pages of 2.
    assert api_calls(sandbox, "config") == {"SelectResourceConfig": math.ceil(6 / 2)}


def test_config_lag_is_visible_in_the_output(sandbox, estate, tmp_path):
    """A stage that Config has not recorded yet is not in c7n:stages; the annotation tells
    when Config last captured anything, and the describe source sees the stage at once."""
    sandbox.switches(config_delay=3600)
    late = make_cert(sandbox, 10, description="late")
    make_rest_stage(late, "new-api", "prod")
    found = by_id(custodian_run(sandbox, tmp_path, audit())[0][REGION])
    assert found[late]["c7n:stages"] == []
    assert found[late]["c7n:stages-source"]["captured"] < sandbox.now()
    assert len(by_id(custodian_run(sandbox, tmp_path, audit(source=None))[0][REGION])[late][
        "c7n:stages"]) == 1
    sandbox.advance(seconds=3601)
    found = by_id(custodian_run(sandbox, tmp_path, audit())[0][REGION])
    assert labels(found[late]) == ["REST new-api (%s) / prod" % found[late]["c7n:stages"][0][
        "apiId"]]


def test_expiring_and_in_use_filters_on_config_stages(sandbox, estate, tmp_path):
    found, _ = custodian_run(sandbox, tmp_path, audit(filters=[
        {"type": "expiring", "days": 30}, {"type": "in-use"}]))
    assert [r["clientCertificateId"] for r in found[REGION]] == [estate["shared"]]


def test_template_owners_come_through_config_tags(sandbox, estate, tmp_path):
    """CloudFormation's tags on an API, recorded by Config, make its stages owned."""
    arn = "arn:aws:apigateway:%s::/restapis/%s" % (REGION, estate["apis"][2])
    sandbox.tag_as_stack(arn, "arn:aws:cloudformation:%s:%s:stack/inventory/1" % (
        REGION, ACCOUNT), "InventoryApi")
    client("apigateway").tag_resource(resourceArn=arn, tags={"touch": "1"})  # recorded now
    found, _ = custodian_run(sandbox, tmp_path, audit(filters=[{"type": "template-owned"}]))
    assert [r["clientCertificateId"] for r in found[REGION]] == [estate["single"]]
    (stage,) = found[REGION][0]["c7n:stages"]
    assert stage["owner"]["stack"] == "inventory"


# -- rotate and delete do not act on Config's view --------------------------------------------
def rotate_with_config():
    return dict(audit(filters=[{"type": "expiring", "days": 30}], name="rotate"), actions=[{
        "type": "rotate", "publish": [{"type": "ssm", "name": SSM_NAME}],
        "switch-after-days": 0, "delete-after-days": 0}])


def test_rotate_switches_a_stage_config_has_not_recorded(sandbox, tmp_path):
    old = make_cert(sandbox, 10, description="old")
    recorded_api = make_rest_stage(old, "recorded", "prod")
    sandbox.switches(config_delay=DAY)
    late_api = make_rest_stage(old, "late", "prod")  # in API Gateway now, in Config tomorrow
    late_ws = make_websocket_stage(old, "late-ws", "live")
    found, proc = custodian_run(sandbox, tmp_path, rotate_with_config())
    (cert,) = found[REGION]
    assert [s["apiId"] for s in cert["c7n:stages"]] == [recorded_api]  # Config's view
    apigw, v2 = client("apigateway"), client("apigatewayv2")
    certs = {c["clientCertificateId"]: c for c in apigw.get_client_certificates()["items"]}
    (new,) = [c for c, v in certs.items() if v.get("tags", {}).get(
        "c7n:rotation:predecessor") == old]
    for api in (recorded_api, late_api):
        assert apigw.get_stage(restApiId=api, stageName="prod")["clientCertificateId"] == new
        value = client("ssm").get_parameter(Name=SSM_NAME.format(
            api_id=api, stage_name="prod"))["Parameter"]["Value"]
        assert certs[new]["pemEncodedCertificate"].strip() in value
    assert v2.get_stage(ApiId=late_ws, StageName="live")["ClientCertificateId"] == new
    assert old not in certs  # retired: the fresh listings showed nothing on it


def test_rotate_keeps_a_certificate_a_late_stage_still_uses(sandbox, tmp_path):
    """The fresh listing before the delete is API Gateway's: a stage put on the old
    certificate after the switch (Config has not seen it) keeps it alive."""
    old = make_cert(sandbox, 10, description="old")
    make_rest_stage(old, "recorded", "prod")
    sandbox.switches(config_delay=5 * DAY)  # Config will not have seen the late stage
    policy = rotate_with_config()
    policy["actions"][0]["switch-after-days"] = 0
    policy["actions"][0]["delete-after-days"] = 1
    custodian_run(sandbox, tmp_path, policy)  # switches; the delete waits a day
    late_api = make_rest_stage(old, "late", "prod")  # someone uses the old one again
    sandbox.advance(days=2)
    custodian_run(sandbox, tmp_path, policy, days=2)
    certs = {c["clientCertificateId"] for c in client("apigateway").get_client_certificates()[
        "items"]}
    assert old in certs
    assert client("apigateway").get_stage(restApiId=late_api, stageName="prod")[
        "clientCertificateId"] in certs


def test_delete_lists_stages_from_api_gateway(sandbox, tmp_path):
    """Config says unused (the stage is not recorded yet); the fresh listing says in use: not
    deleted. A certificate that is truly unused is deleted in the same run."""
    make_rest_stage(make_cert(sandbox, 300, description="seen"), "seen", "prod")  # recorded
    sandbox.switches(config_delay=DAY)
    used = make_cert(sandbox, 10, description="used")
    make_rest_stage(used, "new", "prod")
    unused = make_cert(sandbox, 10, description="unused")
    policy = dict(audit(filters=[{"type": "in-use", "state": False}], name="delete-unused"),
                  actions=[{"type": "delete"}])
    found, proc = custodian_run(sandbox, tmp_path, policy)
    assert {r["clientCertificateId"] for r in found[REGION]} == {used, unused}
    certs = {c["clientCertificateId"] for c in client("apigateway").get_client_certificates()[
        "items"]}
    assert used in certs and unused not in certs
    assert "client-certificate:%s is used by stage:" % used in proc.stderr


# -- an aggregator ------------------------------------------------------------------------------
OTHER = "210987654321"


def other_account():
    role = "arn:aws:iam::%s:role/audit" % OTHER
    creds = client("sts").assume_role(RoleArn=role, RoleSessionName="test")["Credentials"]
    return boto3.Session(aws_access_key_id=creds["AccessKeyId"],
                         aws_secret_access_key=creds["SecretAccessKey"],
                         aws_session_token=creds["SessionToken"], region_name=REGION)


def put_aggregator(config_client, name="org"):
    config_client.put_configuration_aggregator(
        ConfigurationAggregatorName=name,
        AccountAggregationSources=[{"AccountIds": [ACCOUNT, OTHER], "AllAwsRegions": True}])


def test_aggregator_answers_the_runs_account_and_region(sandbox, estate, tmp_path):
    put_aggregator(client("config"))
    # A stage of another account and one of another region, both on ids like ours.
    other = other_account().client("apigateway")
    their_cert = make_cert(sandbox, 10, account=OTHER)
    create_rest_stage(other, other.create_rest_api(name="theirs")["id"], "prod", their_cert)
    eu_cert = make_cert(sandbox, 10, region="eu-west-1")
    make_rest_stage(eu_cert, "eu", "prod", region="eu-west-1")
    from c7n_apigw_certs.audit import config_source
    everything, _, _ = config_source.stages_by_certificate(
        boto3.Session, REGION, ACCOUNT, {"aggregator": "org"})
    assert set(everything) == {estate["shared"], estate["single"]}  # not theirs, not eu's
    sandbox.reset_counters()
    found, proc = custodian_run(sandbox, tmp_path, audit(query=[{"aggregator": "org"}]))
    certs = by_id(found[REGION])
    assert len(certs[estate["shared"]]["c7n:stages"]) == 4
    assert certs[estate["shared"]]["c7n:stages-source"]["aggregator"] == "org"
    assert api_calls(sandbox, "config") == {"SelectAggregateResourceConfig": 1}
    assert "(aggregator org)" in proc.stderr


def test_aggregator_of_another_account_through_a_role(sandbox, estate, tmp_path):
    put_aggregator(other_account().client("config"), "central")
    role = "arn:aws:iam::%s:role/audit" % OTHER
    found, _ = custodian_run(sandbox, tmp_path, audit(query=[
        {"aggregator": "central"}, {"aggregator-role": role}]))
    assert len(by_id(found[REGION])[estate["shared"]]["c7n:stages"]) == 4
    # Without the role, the run's own account has no such aggregator: the run fails.
    _, proc = custodian_run(sandbox, tmp_path, audit(query=[{"aggregator": "central"}]),
                            check=False)
    assert proc.returncode != 0 and "NoSuchConfigurationAggregatorException" in proc.stderr


# -- validation and IAM -------------------------------------------------------------------------
@pytest.mark.parametrize("policy,words", [
    (audit(source=None, query=[{"aggregator": "org"}]), "only with source: config"),
    (audit(query=[{"expr": "select *"}]), "unknown key(s) expr"),
    (audit(query=[{"aggregator-region": "us-east-1"}]), "need an aggregator"),
    (audit(query=[{"aggregator": "org"}, {"aggregator-role": "audit"}]), "must be a role ARN"),
    (audit(query=[{"aggregator": 3}]), "non-empty string"),
], ids=["query-without-config", "unknown-key", "region-alone", "role-not-arn", "not-string"])
def test_validation_refuses(policy, words):
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    load_resources(("aws.apigw-client-certificate",))
    with pytest.raises(PolicyValidationError, match=words.replace("(", r"\(").replace(
            ")", r"\)")):
        Policy(policy, Config.empty(region=REGION, account_id=ACCOUNT)).validate()


def test_iam_of_the_config_source(tmp_path, sandbox):
    path = tmp_path / "p.yml"
    path.write_text(json.dumps({"policies": [
        audit(filters=[{"type": "expiring"}]),
        audit(query=[{"aggregator": "org"}], name="agg")]}))
    document = json.loads(run_cli("c7n-apigw-certs", ["iam", str(path)], sandbox.env).stdout)
    actions = {a: s["Resource"] for s in document["Statement"] for a in s["Action"]}
    assert actions["config:SelectResourceConfig"] == "*" or \
        actions["config:SelectResourceConfig"] == ["*"]
    assert "config:SelectAggregateResourceConfig" in actions
    assert actions["apigateway:GET"] == ["arn:aws:apigateway:*::/clientcertificates"]


def test_iam_through_an_aggregator_role_is_assume_role_on_it(tmp_path, sandbox):
    """The run's role only assumes the aggregator's role; the query is that role's call."""
    role = "arn:aws:iam::111111111111:role/config-reader"
    path = tmp_path / "p.yml"
    path.write_text(json.dumps({"policies": [audit(query=[
        {"aggregator": "org"}, {"aggregator-role": role}])]}))
    document = json.loads(run_cli("c7n-apigw-certs", ["iam", str(path)], sandbox.env).stdout)
    actions = {a: s["Resource"] for s in document["Statement"] for a in s["Action"]}
    assert actions["sts:AssumeRole"] in (role, [role])
    assert not any(a.startswith("config:") for a in actions)


# -- a view of the stages that Config does not complete -------------------------------------
@pytest.mark.parametrize("recorded,unknown", [
    (["AWS::ApiGateway::RestApi", "AWS::ApiGatewayV2::Api"], ["REST", "WEBSOCKET"]),
    (["AWS::ApiGateway::RestApi", "AWS::ApiGateway::Stage", "AWS::ApiGatewayV2::Api"],
     ["WEBSOCKET"]),
    ([], ["REST", "WEBSOCKET"]),
], ids=["no-stage-type", "no-v2-stage-type", "nothing-recorded"])
def test_stages_config_does_not_record_are_unknown_not_unused(
        sandbox, estate, tmp_path, recorded, unknown):
    """A recorder that leaves stage types out answers nothing for them: a certificate seen
    on no stage then has unknown stages (null), which in-use matches neither way, so nothing
    calls a certificate in use unused (a mail's "delete it", a finding archived)."""
    sandbox.switches(config_types=recorded)
    client("apigateway").create_rest_api(name="touch")  # a change: the recorder observes
    found, proc = custodian_run(sandbox, tmp_path, audit())
    certs = by_id(found[REGION])
    assert sorted(certs[estate["shared"]]["c7n:stages-source"]["incomplete"]) == unknown
    if "REST" in unknown:
        for name in ("shared", "single", "unused"):
            assert certs[estate[name]]["c7n:stages"] is None
            assert certs[estate[name]]["stages"] == "unknown"  # the report's column
    else:  # the REST stages are known; the WebSocket one of "shared" is not seen
        assert len(certs[estate["shared"]]["c7n:stages"]) == 3
        assert certs[estate["unused"]]["c7n:stages"] is None
    assert "stages unknown" in proc.stderr
    for state in (True, False):
        matched = custodian_run(sandbox, tmp_path, audit(
            filters=[{"type": "in-use", "state": state}]))[0].get(REGION, [])
        assert estate["unused"] not in {r["clientCertificateId"] for r in matched}


def test_a_websocket_stage_named_only_by_its_arn(sandbox, estate, tmp_path):
    """AWS Config's schema lists no apiId for a v2 stage (fact 80): its ARN places it."""
    sandbox.switches(config_v2_api_id=False)
    make_websocket_stage(estate["single"], "chat", "live")  # recorded without apiId
    found = by_id(custodian_run(sandbox, tmp_path, audit())[0][REGION])
    assert [s["label"] for s in found[estate["single"]]["c7n:stages"]
            if s["protocol"] == "WEBSOCKET"][0].startswith("WEBSOCKET chat (")


def test_an_item_that_names_no_api_is_still_a_use(monkeypatch):
    """A stage item whose API cannot be placed still uses its certificate."""
    from c7n_apigw_certs.audit import config_source
    items = [{"resourceType": "AWS::ApiGatewayV2::Api", "resourceId": "w1",
              "configuration": {"apiId": "w1", "name": "ws", "protocolType": "WEBSOCKET"}},
             {"resourceType": "AWS::ApiGatewayV2::Stage", "resourceId": "opaque",
              "configuration": {"stageName": "live", "clientCertificateId": "c1"}},
             {"resourceType": "AWS::ApiGatewayV2::Stage", "resourceId": "gone",
              "configurationItemStatus": "ResourceDeleted",
              "configuration": {"stageName": "old", "clientCertificateId": "c2"}}]
    monkeypatch.setattr(config_source, "items", lambda *a: iter(items))
    found, _, unknown = config_source.stages_by_certificate(None, REGION, ACCOUNT, {})
    assert [s["stageName"] for s in found["c1"]] == ["live"] and "c2" not in found
    assert unknown == {}


def test_an_aggregator_needs_the_runs_account(monkeypatch):
    """Without the account id (STS unreachable) the aggregator's query would be the whole
    organisation's: refused."""
    from c7n.exceptions import PolicyExecutionError

    from c7n_apigw_certs.audit import config_source
    with pytest.raises(PolicyExecutionError, match="account id is unknown"):
        list(config_source.items(boto3.Session, REGION, None, {"aggregator": "org"}))


# -- reading Config's items (unit) ----------------------------------------------------------
@pytest.mark.parametrize("item,expected", [
    ({"resourceType": "AWS::ApiGateway::Stage",
      "resourceId": "arn:aws:apigateway:us-east-2::/restapis/3qcpw4j8pi/stages/dev",
      "configuration": {"stageName": "dev"}}, ("REST", "3qcpw4j8pi", "dev")),
    ({"resourceType": "AWS::ApiGateway::Stage", "resourceId": "3qcpw4j8pi/dev",
      "configuration": {"stageName": "dev"}}, None),
    ({"resourceType": "AWS::ApiGatewayV2::Stage", "resourceId": "opaque",
      "configuration": {"apiId": "ab12", "stageName": "live"}}, ("WEBSOCKET", "ab12", "live")),
    ({"resourceType": "AWS::ApiGatewayV2::Stage", "resourceId": "opaque",
      "configuration": {"stageName": "live"},
      "relationships": [{"resourceType": "AWS::ApiGatewayV2::Api", "resourceId": "cd34"}]},
     ("WEBSOCKET", "cd34", "live")),
    ({"resourceType": "AWS::ApiGatewayV2::Stage", "resourceId": "opaque",
      "configuration": {"stageName": "live"}}, None),
    ({"resourceType": "AWS::ApiGatewayV2::Stage", "resourceId": "opaque",
      "arn": "arn:aws:apigateway:us-east-2::/apis/ef56/stages/live",
      "configuration": {"stageName": "live"}}, ("WEBSOCKET", "ef56", "live")),
], ids=["rest-arn", "rest-not-arn", "ws-apiid", "ws-relationship", "ws-neither", "ws-arn"])
def test_stage_of_an_item(item, expected):
    """Fact 26 puts a WebSocket stage's apiId in its configuration, the schema (fact 80) does
    not list it: the configuration, a relationship and the ARN are read."""
    from c7n_apigw_certs.audit import config_source
    assert config_source.stage_of(item) == expected


def test_tags_as_a_list_or_a_map():
    from c7n_apigw_certs.audit import config_source
    assert config_source.tag_map([{"key": "a", "value": "1", "tag": "a=1"}]) == {"a": "1"}
    assert config_source.tag_map({"a": "1"}) == {"a": "1"}
    assert config_source.tag_map(None) == {}


def test_the_shipped_config_source_policy(sandbox, estate, tmp_path):
    sandbox.reset_counters()
    found, _ = custodian_run(sandbox, tmp_path, str(
        pathlib.Path(__file__).resolve().parents[1] / "policies" / "config-source.yml"))
    certs = by_id(found[REGION])
    assert set(certs) == {estate["shared"], estate["unused"]}  # within 30 days
    assert len(certs[estate["shared"]]["c7n:stages"]) == 4
    assert api_calls(sandbox, "apigateway") == {"GetClientCertificates": 1}

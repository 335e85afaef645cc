"""The sandbox's AWS Config (sandbox/config.py): stages recorded as Config records them, with a
settable lag; the advanced queries c7n and the plugin send, paged; aggregators; evaluations
stored and read back; the events Config sends a rule's function."""
import functools
import json
import pathlib

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION, client, make_cert, make_rest_stage, make_websocket_stage
from c7n_apigw_certs.sandbox.remote import SandboxError

PLACEBO = pathlib.Path(__file__).parent / "data" / "placebo"
C7N_QUERY = ("select resourceId, configuration, supplementaryConfiguration "
             "where resourceType = 'AWS::ApiGateway::Stage'")  # c7n's ConfigSource default


def results(response):
    return [json.loads(r) for r in response["Results"]]


def select(expression, **kw):
    return client("config").select_resource_config(Expression=expression, **kw)


def stage_arn(api, stage, region=REGION):
    return "arn:aws:apigateway:%s::/restapis/%s/stages/%s" % (region, api, stage)


def test_rest_stage_items_have_the_recorded_shape(sandbox):
    """The answer to c7n's own query has the fields and shape of the one AWS gave Cloud
    Custodian (test_rest_stage_certificate_filter_config_source): the ARN as resourceId, no
    restApiId, clientCertificateId only where set."""
    recorded = json.loads((PLACEBO / "test_rest_stage_certificate_filter_config_source" /
                           "config.SelectResourceConfig_1.json").read_text())["data"]
    cert = make_cert(sandbox, 10)
    api = make_rest_stage(cert, "a", "dev")
    client("apigateway").create_deployment(restApiId=api, stageName="prod")
    response = select(C7N_QUERY)
    assert response["QueryInfo"] == recorded["QueryInfo"]
    ours = {r["resourceId"]: r for r in results(response)}
    theirs = [json.loads(r) for r in recorded["Results"]]
    assert {tuple(sorted(r)) for r in ours.values()} == {tuple(sorted(r)) for r in theirs}
    dev, prod = ours[stage_arn(api, "dev")], ours[stage_arn(api, "prod")]
    assert dev["configuration"]["clientCertificateId"] == cert
    assert "clientCertificateId" not in prod["configuration"]
    for item in (dev, prod):
        assert "restApiId" not in item["configuration"]
        assert {"stageName", "deploymentId", "createdDate", "lastUpdatedDate"} <= set(
            item["configuration"])
        assert item["configuration"]["createdDate"].endswith("Z")  # ISO, as recorded


def test_websocket_stage_items_carry_api_and_stage(sandbox):
    cert = make_cert(sandbox, 10)
    api = make_websocket_stage(cert, "ws", "live")
    (item,) = results(select(
        "SELECT resourceId, configuration WHERE resourceType = 'AWS::ApiGatewayV2::Stage'"))
    assert item["configuration"]["apiId"] == api
    assert item["configuration"]["stageName"] == "live"
    assert item["configuration"]["clientCertificateId"] == cert


def test_selected_properties_nest_and_where_filters(sandbox):
    cert = make_cert(sandbox, 10)
    api = make_rest_stage(cert, "orders", "prod")
    client("apigateway").create_deployment(restApiId=api, stageName="bare")
    client("apigateway").tag_resource(resourceArn=stage_arn(api, "prod"), tags={"team": "x"})
    response = select(
        "SELECT resourceId, resourceName, configuration.clientCertificateId, tags "
        "WHERE resourceType IN ('AWS::ApiGateway::Stage', 'AWS::ApiGateway::RestApi') "
        "AND NOT resourceName = 'bare'")
    assert response["QueryInfo"]["SelectFields"] == [
        {"Name": "resourceId"}, {"Name": "resourceName"},
        {"Name": "configuration.clientCertificateId"}, {"Name": "tags"}]
    found = {r["resourceId"]: r for r in results(response)}
    assert found == {
        api: {"resourceId": api, "resourceName": "orders", "tags": []},
        stage_arn(api, "prod"): {"resourceId": stage_arn(api, "prod"), "resourceName": "prod",
                                 "configuration": {"clientCertificateId": cert},
                                 "tags": [{"key": "team", "value": "x"}]}}
    assert results(select("SELECT resourceId WHERE tags.key = 'team'")) == [
        {"resourceId": stage_arn(api, "prod")}]
    assert results(select("SELECT resourceId WHERE configuration.clientCertificateId = '%s' "
                          "OR (resourceName = 'nothing')" % cert)) == [
        {"resourceId": stage_arn(api, "prod")}]


def test_pages_of_limit_continued_by_next_token(sandbox):
    cert = make_cert(sandbox, 10)
    for i in range(5):
        make_rest_stage(cert, "api-%d" % i, "prod")
    query = "SELECT resourceId WHERE resourceType = 'AWS::ApiGateway::Stage'"
    seen, token, pages = [], None, 0
    while True:
        page = select(query, Limit=2, **({"NextToken": token} if token else {}))
        pages += 1
        assert len(page["Results"]) <= 2
        seen += [r["resourceId"] for r in results(page)]
        token = page.get("NextToken")
        if not token:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 5
    paginated = client("config").get_paginator("select_resource_config").paginate(
        Expression=query, PaginationConfig={"PageSize": 2}).build_full_result()
    assert sorted(json.loads(r)["resourceId"] for r in paginated["Results"]) == sorted(seen)


@pytest.mark.parametrize("kw,code", [
    ({"Limit": 101}, "InvalidLimitException"),
    ({"NextToken": "not-a-token"}, "InvalidNextTokenException"),
    ({"Expression": "SELECT resourceId GROUP BY resourceType"}, "InvalidExpressionException"),
    ({"Expression": "SELECT resourceId WHERE resourceName LIKE 'a%'"},
     "InvalidExpressionException"),
], ids=["limit", "token", "group-by", "like"])
def test_refusals(sandbox, kw, code):
    kw = dict({"Expression": "SELECT resourceId"}, **kw)
    with pytest.raises(ClientError) as e:
        client("config").select_resource_config(**kw)
    assert e.value.response["Error"]["Code"] == code


def test_recording_delay_on_the_sandbox_clock(sandbox):
    """With config_delay, a new stage appears, a switched stage shows its new certificate, and
    a deleted stage disappears only once the delay has passed on the sandbox clock."""
    old, new = make_cert(sandbox, 10), make_cert(sandbox, 200)
    api = make_rest_stage(old, "a", "prod")
    query = ("SELECT resourceId, configuration.clientCertificateId, "
             "configurationItemCaptureTime WHERE resourceType = 'AWS::ApiGateway::Stage'")
    before = {r["resourceId"]: r for r in results(select(query))}
    sandbox.switches(config_delay=3600)
    client("apigateway").update_stage(restApiId=api, stageName="prod", patchOperations=[
        {"op": "replace", "path": "/clientCertificateId", "value": new}])
    other = make_rest_stage(new, "b", "prod")
    assert {r["resourceId"]: r for r in results(select(query))} == before
    sandbox.advance(seconds=3599)
    assert {r["resourceId"]: r for r in results(select(query))} == before
    sandbox.advance(seconds=2)
    after = {r["resourceId"]: r for r in results(select(query))}
    assert after[stage_arn(api, "prod")]["configuration"]["clientCertificateId"] == new
    assert stage_arn(other, "prod") in after
    assert after[stage_arn(api, "prod")]["configurationItemCaptureTime"] > \
        before[stage_arn(api, "prod")]["configurationItemCaptureTime"]
    # A deletion lags as well.
    client("apigateway").delete_stage(restApiId=other, stageName="prod")
    assert stage_arn(other, "prod") in {r["resourceId"] for r in results(select(query))}
    sandbox.advance(seconds=3601)
    assert stage_arn(other, "prod") not in {r["resourceId"] for r in results(select(query))}


def test_config_delay_switch_is_checked(sandbox):
    with pytest.raises(SandboxError, match="config_delay"):
        sandbox.switches(config_delay=-1)
    assert sandbox.switches(config_delay=60)["config_delay"] == 60


OTHER = "210987654321"


def session_of(account):
    creds = client("sts").assume_role(RoleArn="arn:aws:iam::%s:role/x" % account,
                                      RoleSessionName="test")["Credentials"]
    return boto3.Session(aws_access_key_id=creds["AccessKeyId"],
                         aws_secret_access_key=creds["SecretAccessKey"],
                         aws_session_token=creds["SessionToken"], region_name=REGION)


def test_aggregator_covers_its_accounts_and_regions(sandbox):
    ours = make_rest_stage(make_cert(sandbox, 10), "ours", "prod")
    eu = make_rest_stage(make_cert(sandbox, 10, region="eu-west-1"), "eu", "prod",
                         region="eu-west-1")
    theirs = session_of(OTHER).client("apigateway").create_rest_api(name="theirs")["id"]
    config = client("config")
    config.put_configuration_aggregator(
        ConfigurationAggregatorName="ours-us", AccountAggregationSources=[
            {"AccountIds": [ACCOUNT], "AwsRegions": [REGION]}])
    config.put_configuration_aggregator(
        ConfigurationAggregatorName="all", AccountAggregationSources=[
            {"AccountIds": [ACCOUNT, OTHER], "AllAwsRegions": True}])
    query = ("SELECT resourceId, accountId, awsRegion "
             "WHERE resourceType = 'AWS::ApiGateway::RestApi'")

    def ids(name, expression=query):
        response = config.select_aggregate_resource_config(
            Expression=expression, ConfigurationAggregatorName=name)
        return {(r["accountId"], r["awsRegion"], r["resourceId"]) for r in results(response)}
    assert ids("ours-us") == {(ACCOUNT, REGION, ours)}
    assert ids("all") == {(ACCOUNT, REGION, ours), (ACCOUNT, "eu-west-1", eu),
                          (OTHER, REGION, theirs)}
    assert ids("all", query + " AND accountId = '%s'" % OTHER) == {(OTHER, REGION, theirs)}
    with pytest.raises(config.exceptions.NoSuchConfigurationAggregatorException):
        ids("missing")


def test_evaluations_are_stored_per_rule_and_read_back(sandbox):
    event = sandbox.config_event("r1")
    invoking = json.loads(event["invokingEvent"])
    assert invoking["messageType"] == "ScheduledNotification"
    assert set(event) >= {"invokingEvent", "resultToken", "configRuleName", "eventLeftScope",
                          "executionRoleArn", "configRuleArn", "accountId", "version"}
    config = client("config")
    evaluation = {"ComplianceResourceType": "AWS::ApiGateway::Stage",
                  "ComplianceType": "NON_COMPLIANT",
                  "OrderingTimestamp": invoking["notificationCreationTime"]}
    config.put_evaluations(ResultToken=event["resultToken"], Evaluations=[
        dict(evaluation, ComplianceResourceId="c%d" % i) for i in range(3)] + [
        dict(evaluation, ComplianceResourceId="ok", ComplianceType="COMPLIANT")])
    # TestMode stores nothing; an older evaluation does not replace a newer one.
    config.put_evaluations(ResultToken=event["resultToken"], TestMode=True, Evaluations=[
        dict(evaluation, ComplianceResourceId="ok")])
    config.put_evaluations(ResultToken=event["resultToken"], Evaluations=[dict(
        evaluation, ComplianceResourceId="ok", OrderingTimestamp="2000-01-01T00:00:00Z")])
    pages = list(config.get_paginator("get_compliance_details_by_config_rule").paginate(
        ConfigRuleName="r1", PaginationConfig={"PageSize": 2}))
    assert len(pages) == 2
    found = {e["EvaluationResultIdentifier"]["EvaluationResultQualifier"]["ResourceId"]:
             e["ComplianceType"] for p in pages for e in p["EvaluationResults"]}
    assert found == {"c0": "NON_COMPLIANT", "c1": "NON_COMPLIANT", "c2": "NON_COMPLIANT",
                     "ok": "COMPLIANT"}
    only = config.get_compliance_details_by_config_rule(
        ConfigRuleName="r1", ComplianceTypes=["COMPLIANT"])["EvaluationResults"]
    assert [e["EvaluationResultIdentifier"]["EvaluationResultQualifier"]["ResourceId"]
            for e in only] == ["ok"]


def test_event_refusals(sandbox):
    with pytest.raises(SandboxError, match="message_type"):
        sandbox.config_event("r3", "OversizedConfigurationItemChangeNotification")
    with pytest.raises(SandboxError, match="400"):
        sandbox._call("POST", "config-event", {"rule": "r3", "colour": "blue"})


def test_evaluation_refusals(sandbox):
    config = client("config")
    with pytest.raises(config.exceptions.InvalidResultTokenException):
        config.put_evaluations(ResultToken="made-up", Evaluations=[{
            "ComplianceResourceType": "AWS::ApiGateway::Stage",
            "ComplianceResourceId": "x", "ComplianceType": "COMPLIANT",
            "OrderingTimestamp": "2026-01-01T00:00:00Z"}])
    with pytest.raises(config.exceptions.NoSuchConfigRuleException):
        config.get_compliance_details_by_config_rule(ConfigRuleName="never-invoked")


def test_annotations_of_at_most_256_characters(sandbox):
    """Fact 170: 256 characters are stored and read back whole; 257 are refused, the request
    whole, as AWS's constraint errors read (botocore checks only the minimum)."""
    event = sandbox.config_event("r4")
    config = client("config")
    evaluation = {"ComplianceResourceType": "AWS::ApiGateway::Stage",
                  "ComplianceType": "NON_COMPLIANT",
                  "OrderingTimestamp": json.loads(event["invokingEvent"])[
                      "notificationCreationTime"]}
    with pytest.raises(config.exceptions.ValidationException,
                       match="at 'evaluations.2.member.annotation' failed to satisfy constraint: "
                             "Member must have length less than or equal to 256"):
        config.put_evaluations(ResultToken=event["resultToken"], Evaluations=[
            dict(evaluation, ComplianceResourceId="fits", Annotation="a" * 256),
            dict(evaluation, ComplianceResourceId="long", Annotation="a" * 257)])
    assert config.get_compliance_details_by_config_rule(ConfigRuleName="r4")[
        "EvaluationResults"] == []
    config.put_evaluations(ResultToken=event["resultToken"], Evaluations=[
        dict(evaluation, ComplianceResourceId="fits", Annotation="a" * 256)])
    (stored,) = config.get_compliance_details_by_config_rule(ConfigRuleName="r4")[
        "EvaluationResults"]
    assert stored["Annotation"] == "a" * 256


def test_change_notification_carries_the_recorded_item(sandbox):
    cert = make_cert(sandbox, 10)
    api = make_rest_stage(cert, "a", "prod")
    event = sandbox.config_event("r2", "ConfigurationItemChangeNotification",
                                 resource_type="AWS::ApiGateway::Stage",
                                 resource_id=stage_arn(api, "prod"))
    invoking = json.loads(event["invokingEvent"])
    item = invoking["configurationItem"]
    assert invoking["messageType"] == "ConfigurationItemChangeNotification"
    assert item["resourceType"] == "AWS::ApiGateway::Stage"
    assert item["resourceId"] == stage_arn(api, "prod")
    assert item["configuration"]["clientCertificateId"] == cert
    assert item["configurationItemStatus"] in ("OK", "ResourceDiscovered")
    # The item as the example events show it: awsAccountId and ARN; tags a map.
    assert item["awsAccountId"] == ACCOUNT and item["ARN"] == stage_arn(api, "prod")
    assert item["tags"] == {} and item["configurationItemVersion"] == "1.3"
    with pytest.raises(SandboxError, match="no configuration item"):
        sandbox.config_event("r2", "ConfigurationItemChangeNotification",
                             resource_type="AWS::ApiGateway::Stage",
                             resource_id=stage_arn(api, "nope"))


CERTIFICATE_TYPE = "AWS::ApiGateway::ClientCertificate"  # a CloudFormation type, not recorded


@pytest.mark.parametrize("switch", ["recorded", "any"])
def test_evaluation_types_config_records_or_any(sandbox, switch):
    """Whether PutEvaluations takes a type Config does not record is unsettled (fact 135): at
    "recorded" (the default) the whole request is refused with AWS's error and nothing is
    stored; at "any" it is stored. Recorded types are taken either way."""
    if switch != "recorded":
        sandbox.switches(config_evaluation_types=switch)
    assert sandbox.switches()["config_evaluation_types"] == switch
    event = sandbox.config_event("types")
    when = json.loads(event["invokingEvent"])["notificationCreationTime"]
    config = client("config")
    stage = {"ComplianceResourceType": "AWS::ApiGateway::Stage", "ComplianceResourceId":
             stage_arn("api123", "prod"), "ComplianceType": "COMPLIANT",
             "OrderingTimestamp": when}
    certificate = dict(stage, ComplianceResourceType=CERTIFICATE_TYPE,
                       ComplianceResourceId="abc123")
    put = functools.partial(config.put_evaluations, ResultToken=event["resultToken"])
    if switch == "recorded":
        with pytest.raises(config.exceptions.InvalidParameterValueException) as e:
            put(Evaluations=[stage, certificate])
        message = e.value.response["Error"]["Message"]
        assert message.startswith(
            "The resource type %s is invalid. Only the following values are permitted: [" % (
                CERTIFICATE_TYPE))
        listed = message.split("[", 1)[1].rstrip("]").split(", ")
        assert {"AWS::ApiGateway::Stage", "AWS::ApiGatewayV2::Stage",
                "AWS::ACM::Certificate"} <= set(listed)
        assert CERTIFICATE_TYPE not in listed
        with pytest.raises(config.exceptions.InvalidParameterValueException):
            put(Evaluations=[certificate], TestMode=True)
    else:
        put(Evaluations=[stage, certificate])
    put(Evaluations=[dict(stage, ComplianceResourceId=stage_arn("api456", "prod"))])
    stored = {e["EvaluationResultIdentifier"]["EvaluationResultQualifier"]["ResourceType"]
              for e in config.get_compliance_details_by_config_rule(
                  ConfigRuleName="types")["EvaluationResults"]}
    assert stored == ({"AWS::ApiGateway::Stage"} if switch == "recorded"
                      else {"AWS::ApiGateway::Stage", CERTIFICATE_TYPE})
    count = len(config.get_compliance_details_by_config_rule(
        ConfigRuleName="types")["EvaluationResults"])
    assert count == (1 if switch == "recorded" else 3)  # a refused request stores nothing



def test_describe_config_rules_refuses_unknown_names(sandbox):
    """Fact 138: AWS refuses an unknown rule name (moto answered [] while a region had no rule),
    which is how c7n's deployer learns it must create the rule."""
    config = client("config")
    with pytest.raises(config.exceptions.NoSuchConfigRuleException):
        config.describe_config_rules(ConfigRuleNames=["never-made"])
    config.put_config_rule(ConfigRule={"ConfigRuleName": "made", "Source": {
        "Owner": "AWS", "SourceIdentifier": "S3_BUCKET_VERSIONING_ENABLED"}})
    (rule,) = config.describe_config_rules(ConfigRuleNames=["made"])["ConfigRules"]
    assert rule["ConfigRuleName"] == "made"
    with pytest.raises(config.exceptions.NoSuchConfigRuleException):
        config.describe_config_rules(ConfigRuleNames=["made", "never-made"])

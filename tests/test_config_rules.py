"""AWS Config as the compliance sink: the shipped config-poll-rule and config-rule policies run
as their Lambda functions would, in this process through the plugin's handler (the plugin
initialized, then ``c7n.handler.dispatch_event``) with ``config.json`` written as c7n's archive
writes it, on the events that AWS Config sends (built by the sandbox from what it recorded);
the evaluations are read back from the sandbox's Config. Also ``expiring`` on c7n's
aws.apigwv2-stage, in pull mode."""
import json
import pathlib

import pytest
import yaml

import c7n_apigw_certs
from conftest import ACCOUNT, REGION, client, custodian_run, make_cert, make_rest_stage, \
    make_websocket_stage

ROOT = pathlib.Path(__file__).resolve().parents[1]


def shipped(name, index=0):
    return yaml.safe_load((ROOT / "policies" / name).read_text())["policies"][index]


def rule_name(policy):
    return "custodian-" + policy["name"]  # c7n's function and rule name (c7n/mu.py)


def config_event(sandbox, policy, message_type="ScheduledNotification", **resource):
    return sandbox.config_event(rule_name(policy), message_type, ACCOUNT, REGION, **resource)


def invoke(policy, event, tmp_path, monkeypatch):
    """What the function does on an event. The policy is validated as ``custodian run`` does
    before deploying (the plugin completes the mode's handler and package), its data written
    to ``config.json`` as c7n's archive writes it (c7n/mu.py ``PolicyLambda.get_archive``; the
    execution options of a plain ``custodian run`` are empty), and the event handed to the
    handler the mode names: the plugin's, which initializes it and calls c7n's
    ``dispatch_event``, reading ``config.json`` from the working directory."""
    from c7n.config import Config
    from c7n.policy import Policy
    from c7n.resources import load_resources
    c7n_apigw_certs.initialize()
    load_resources((policy["resource"],))
    validated = Policy(json.loads(json.dumps(policy)),
                       Config.empty(region=REGION, account_id=ACCOUNT))
    validated.validate()
    assert validated.data["mode"]["handler"] == "c7n_apigw_certs.handler.run"
    function = tmp_path / "function"
    function.mkdir(exist_ok=True)
    (function / "config.json").write_text(json.dumps(
        {"execution-options": {}, "policies": [validated.data]}, indent=2))
    monkeypatch.chdir(function)
    from c7n import handler as c7n_handler
    monkeypatch.setattr(c7n_handler, "policy_config", None)  # a cold start: config.json is read
    monkeypatch.setattr(c7n_handler, "policy_data", None)
    original = c7n_handler.init_config

    def init_config(data):  # the function's /tmp is this test's (c7n sets output_dir /tmp)
        options = original(data)
        options["output_dir"] = str(tmp_path / "function-tmp")
        return options
    monkeypatch.setattr(c7n_handler, "init_config", init_config)
    from c7n_apigw_certs.handler import run
    return run(event, None)


def evaluations(policy):
    pages = client("config").get_paginator("get_compliance_details_by_config_rule").paginate(
        ConfigRuleName=rule_name(policy))
    return {(e["EvaluationResultIdentifier"]["EvaluationResultQualifier"]["ResourceType"],
             e["EvaluationResultIdentifier"]["EvaluationResultQualifier"]["ResourceId"]):
            e["ComplianceType"] for p in pages for e in p["EvaluationResults"]}


REST_STAGE, V2_STAGE = "AWS::ApiGateway::Stage", "AWS::ApiGatewayV2::Stage"
CERT = "AWS::ApiGateway::ClientCertificate"  # a CloudFormation type Config does not record


def rest_stage_arn(api, stage="prod"):
    return "arn:aws:apigateway:%s::/restapis/%s/stages/%s" % (REGION, api, stage)


def annotations(policy):
    pages = client("config").get_paginator("get_compliance_details_by_config_rule").paginate(
        ConfigRuleName=rule_name(policy))
    return {e["EvaluationResultIdentifier"]["EvaluationResultQualifier"]["ResourceId"]:
            e["Annotation"] for p in pages for e in p["EvaluationResults"]}


def test_poll_rule_posts_one_evaluation_per_rest_stage(sandbox, tmp_path, monkeypatch):
    """policies/config-poll-rule.yml's REST rule: one evaluation per stage, of the type Config
    records and with the id it records (the stage ARN), accepted by a Config that refuses
    unrecorded types (the sandbox's default); a deleted stage is NOT_APPLICABLE next period."""
    policy = shipped("config-poll-rule.yml")
    assert sandbox.switches()["config_evaluation_types"] == "recorded"
    expiring, expired, healthy = (make_cert(sandbox, d) for d in (10, -3, 200))
    soon = make_rest_stage(expiring, "orders", "prod")
    gone = make_rest_stage(expired, "legacy", "prod")
    fine = make_rest_stage(healthy, "reports", "prod")
    bare = make_rest_stage(healthy, "bare", "prod")
    client("apigateway").update_stage(restApiId=bare, stageName="prod", patchOperations=[
        {"op": "replace", "path": "/clientCertificateId", "value": ""}])  # no certificate
    invoke(policy, config_event(sandbox, policy), tmp_path, monkeypatch)
    assert evaluations(policy) == {(REST_STAGE, rest_stage_arn(soon)): "NON_COMPLIANT",
                                   (REST_STAGE, rest_stage_arn(gone)): "NON_COMPLIANT",
                                   (REST_STAGE, rest_stage_arn(fine)): "COMPLIANT",
                                   (REST_STAGE, rest_stage_arn(bare)): "COMPLIANT"}
    # The plugin's config-poll-rule (config_modes.py, fact 171): a NON_COMPLIANT annotation
    # names the certificate, its kind, expiry and days left; a COMPLIANT one is c7n's text.
    notes = annotations(policy)
    expiry = {c["clientCertificateId"]: c["expirationDate"].date().isoformat()
              for c in client("apigateway").get_client_certificates()["items"]}
    assert notes[rest_stage_arn(soon)] == (
        "Stage presents client certificate %s (generated): expires %s, 10 day(s) left "
        "(window: 30 days)" % (expiring, expiry[expiring]))
    assert notes[rest_stage_arn(gone)] == (
        "Stage presents client certificate %s (generated): EXPIRED %s, 3 day(s) ago" % (
            expired, expiry[expired]))
    assert notes[rest_stage_arn(fine)] == notes[rest_stage_arn(bare)] == (
        "The resource is compliant with policy:%s." % policy["name"])

    client("apigateway").delete_stage(restApiId=gone, stageName="prod")
    sandbox.advance(days=1)
    invoke(policy, config_event(sandbox, policy), tmp_path, monkeypatch)
    assert evaluations(policy)[(REST_STAGE, rest_stage_arn(gone))] == "NOT_APPLICABLE"
    assert evaluations(policy)[(REST_STAGE, rest_stage_arn(soon))] == "NON_COMPLIANT"


def test_poll_rule_names_websocket_stages_by_stage_name(sandbox, tmp_path, monkeypatch):
    """The WebSocket rule: c7n 0.9.53 posts aws.apigwv2-stage's id, the stage name (fact 137),
    so same-named stages of two APIs share one evaluation, NON_COMPLIANT if either is."""
    policy = shipped("config-poll-rule.yml", 1)
    expiring, healthy = make_cert(sandbox, 10), make_cert(sandbox, 200)
    make_websocket_stage(expiring, "chat", "live")
    make_websocket_stage(healthy, "feed", "live")
    make_websocket_stage(healthy, "feed-dev", "dev")
    invoke(policy, config_event(sandbox, policy), tmp_path, monkeypatch)
    assert evaluations(policy) == {(V2_STAGE, "live"): "NON_COMPLIANT",
                                   (V2_STAGE, "dev"): "COMPLIANT"}
    # Only chat's "live" matched: the shared evaluation names its certificate alone.
    assert annotations(policy)["live"].startswith(
        "Stage presents client certificate %s (generated): expires " % expiring)


def test_an_annotation_that_would_not_fit_is_shortened_not_refused(sandbox, tmp_path,
                                                                    monkeypatch):
    """Negative control of the 256 characters (fact 170): eight WebSocket stages named "live",
    each on its own expiring certificate, share one evaluation (fact 137) whose full text
    would be about 700 characters. The sandbox refuses a longer annotation as AWS does; the
    one posted is accepted, at most 256 characters, the most urgent certificates first and
    the number left out at the end."""
    policy = shipped("config-poll-rule.yml", 1)
    certs = {days: make_cert(sandbox, days) for days in (-2, 3, 5, 7, 9, 11, 13, 15)}
    apis = {days: make_websocket_stage(cert, "chat-%d" % i, "live")
            for i, (days, cert) in enumerate(certs.items())}
    invoke(policy, config_event(sandbox, policy), tmp_path, monkeypatch)
    assert evaluations(policy) == {(V2_STAGE, "live"): "NON_COMPLIANT"}
    note = annotations(policy)["live"]
    assert len(note) <= 256
    assert note.startswith("8 stages of this name: api %s presents %s (generated): EXPIRED " % (
        apis[-2], certs[-2]))
    assert "api %s presents %s (generated): expires " % (apis[3], certs[3]) in note
    shown = [days for days, cert in certs.items() if cert in note]
    assert shown == sorted(certs)[:len(shown)] and 1 < len(shown) < 8
    assert note.endswith(" (+%d more)" % (8 - len(shown)))


CERTIFICATE_POLL_RULE = {
    "name": "apigw-client-certificates-expiring-rule", "resource": "aws.apigw-client-certificate",
    "mode": {"type": "config-poll-rule", "schedule": "TwentyFour_Hours",
             "role": "arn:aws:iam::{account_id}:role/c7n-apigw-certs-config-rule"},
    "filters": [{"type": "expiring", "days": 30}]}


@pytest.mark.parametrize("types", ["recorded", "any"])
def test_a_certificate_level_poll_rule_where_aws_refuses_its_type(
        sandbox, tmp_path, monkeypatch, caplog, types):
    """The rule shipped before (evaluations of AWS::ApiGateway::ClientCertificate, which c7n's
    docstring allows): where Config refuses unrecorded types (fact 135) the function fails,
    logging c7n's "error during policy execution" with AWS's message, and Config shows
    nothing; where it accepts any type, one evaluation per certificate."""
    sandbox.switches(config_evaluation_types=types)
    expiring, healthy = make_cert(sandbox, 10), make_cert(sandbox, 200)
    event = config_event(sandbox, CERTIFICATE_POLL_RULE)
    if types == "any":
        invoke(CERTIFICATE_POLL_RULE, event, tmp_path, monkeypatch)
        assert evaluations(CERTIFICATE_POLL_RULE) == {(CERT, expiring): "NON_COMPLIANT",
                                                      (CERT, healthy): "COMPLIANT"}
        assert annotations(CERTIFICATE_POLL_RULE)[expiring].startswith(
            "Client certificate %s (generated): expires " % expiring)
        return
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError, match="InvalidParameterValueException.*The resource type "
                       "AWS::ApiGateway::ClientCertificate is invalid"):
        invoke(CERTIFICATE_POLL_RULE, event, tmp_path, monkeypatch)
    # The plugin's line names the refusal and what to use instead (config_modes.py), then
    # c7n's, with AWS's message in its traceback.
    refusal, = [r for r in caplog.records if r.name == "custodian.apigw-client-certificate"
                and r.levelname == "ERROR"]
    assert refusal.getMessage().startswith(
        "policy:%s AWS Config refused the evaluations of AWS::ApiGateway::ClientCertificate "
        "(rule custodian-%s): it accepts only types it records" % (
            CERTIFICATE_POLL_RULE["name"], CERTIFICATE_POLL_RULE["name"]))
    assert "Config shows no result for this rule. Evaluate the stages that present the " \
        "certificates instead: policies/config-poll-rule.yml. AWS said: The resource type " \
        "AWS::ApiGateway::ClientCertificate is invalid." in refusal.getMessage()
    assert "error during policy execution" in caplog.text
    assert evaluations(CERTIFICATE_POLL_RULE) == {}


@pytest.mark.parametrize("protocol", ["REST", "WEBSOCKET"])
def test_change_rule_evaluates_the_stage_that_changed(sandbox, tmp_path, monkeypatch, protocol):
    index, resource_type = {"REST": (0, "AWS::ApiGateway::Stage"),
                            "WEBSOCKET": (1, "AWS::ApiGatewayV2::Stage")}[protocol]
    policy = shipped("config-rule.yml", index)
    expiring, healthy = make_cert(sandbox, 10), make_cert(sandbox, 200)
    stages = {}
    for name, cert_id in (("soon", expiring), ("fine", healthy), ("none", None)):
        if protocol == "REST":
            api = client("apigateway").create_rest_api(name=name)["id"]
            make_rest_stage(cert_id or healthy, name, "prod", api_id=api)
            if not cert_id:  # cleared as terraform clears it (fact 8)
                client("apigateway").update_stage(restApiId=api, stageName="prod", patchOperations=[
                    {"op": "replace", "path": "/clientCertificateId", "value": ""}])
            stages[name] = "arn:aws:apigateway:%s::/restapis/%s/stages/prod" % (REGION, api)
        else:
            v2 = client("apigatewayv2")
            api = v2.create_api(Name=name, ProtocolType="WEBSOCKET",
                                RouteSelectionExpression="$request.body.action")["ApiId"]
            kw = {"ClientCertificateId": cert_id} if cert_id else {}
            v2.create_stage(ApiId=api, StageName="live", **kw)
            stages[name] = "arn:aws:apigateway:%s::/apis/%s/stages/live" % (REGION, api)
    for arn in stages.values():
        event = config_event(sandbox, policy, "ConfigurationItemChangeNotification",
                             resource_type=resource_type, resource_id=arn)
        invoke(policy, event, tmp_path, monkeypatch)
    assert evaluations(policy) == {(resource_type, stages["soon"]): "NON_COMPLIANT",
                                   (resource_type, stages["fine"]): "COMPLIANT",
                                   (resource_type, stages["none"]): "COMPLIANT"}
    notes = annotations(policy)
    assert notes[stages["soon"]].startswith(
        "Stage presents client certificate %s (generated): expires " % expiring)
    assert notes[stages["soon"]].endswith(", 10 day(s) left (window: 30 days)")
    assert notes[stages["fine"]] == "The resource is compliant with policy:%s." % policy["name"]


def test_change_rule_sees_what_config_recorded(sandbox, tmp_path, monkeypatch):
    """The rule judges the configuration item Config sent: a stage switched to a healthy
    certificate is COMPLIANT once Config has recorded the switch, not before."""
    policy = shipped("config-rule.yml")
    expiring, healthy = make_cert(sandbox, 10), make_cert(sandbox, 200)
    api = make_rest_stage(expiring, "orders", "prod")
    arn = "arn:aws:apigateway:%s::/restapis/%s/stages/prod" % (REGION, api)
    sandbox.switches(config_delay=600)
    client("apigateway").update_stage(restApiId=api, stageName="prod", patchOperations=[
        {"op": "replace", "path": "/clientCertificateId", "value": healthy}])
    change = dict(resource_type="AWS::ApiGateway::Stage", resource_id=arn)
    invoke(policy, config_event(sandbox, policy, "ConfigurationItemChangeNotification",
                                **change), tmp_path, monkeypatch)
    assert set(evaluations(policy).values()) == {"NON_COMPLIANT"}
    sandbox.advance(seconds=601)
    invoke(policy, config_event(sandbox, policy, "ConfigurationItemChangeNotification",
                                **change), tmp_path, monkeypatch)
    assert set(evaluations(policy).values()) == {"COMPLIANT"}


def test_websocket_stage_expiring_in_pull_mode(sandbox, tmp_path):
    expiring, healthy = make_cert(sandbox, 5), make_cert(sandbox, 200)
    soon = make_websocket_stage(expiring, "soon", "live")
    make_websocket_stage(healthy, "fine", "live")
    client("apigatewayv2").create_api(Name="http", ProtocolType="HTTP")
    found, _ = custodian_run(sandbox, tmp_path, {
        "name": "ws-expiring", "resource": "aws.apigwv2-stage",
        "filters": [{"type": "expiring", "days": 14}]})
    (stage,) = found[REGION]
    assert stage["c7n:parent-id"] == soon and stage["StageName"] == "live"
    assert stage["c7n:client-certificate"]["clientCertificateId"] == expiring
    assert stage["c7n:client-certificate"]["c7n:days-left"] == 5


@pytest.mark.parametrize("policy,words", [
    ({"name": "p", "resource": "aws.apigw-client-certificate",
      "mode": {"type": "config-rule"}}, "AWS Config does not support"),
    ({"name": "p", "resource": "aws.rest-stage",
      "mode": {"type": "config-poll-rule", "schedule": "One_Hour"}},
     "should use mode: config-rule"),
    ({"name": "p", "resource": "aws.apigw-client-certificate",
      "mode": {"type": "config-poll-rule"}}, "schedule required"),
], ids=["certificates-are-not-recorded", "stages-are-recorded", "poll-needs-schedule"])
def test_c7n_refuses_the_wrong_rule_kind(policy, words):
    """Certificates take a periodic rule, stages a change-triggered one (c7n's checks, fact 86)."""
    from c7n.config import Config
    from c7n.exceptions import PolicyValidationError
    from c7n.policy import Policy
    from c7n.resources import load_resources
    c7n_apigw_certs.initialize()
    load_resources((policy["resource"],))
    with pytest.raises(PolicyValidationError, match=words):
        Policy(policy, Config.empty(region=REGION, account_id=ACCOUNT)).validate()


def test_the_document_has_what_each_rule_s_function_calls():
    """c7n-apigw-certs iam prints what the functions call besides the audit: evaluations, and
    for the poll rule the earlier ones."""
    from c7n_apigw_certs import iam
    for name, extra in (("config-poll-rule.yml", {"config:PutEvaluations",
                                                  "config:GetComplianceDetailsByConfigRule"}),
                        ("config-rule.yml", {"config:PutEvaluations"})):
        document = iam.policy_document([str(ROOT / "policies" / name)])
        actions = {a for s in document["Statement"] for a in s["Action"]}
        assert extra <= actions, name
        assert "config:GetComplianceDetailsByConfigRule" not in actions or \
            name == "config-poll-rule.yml"
        get, = [s for s in document["Statement"] if "apigateway:GET" in s["Action"]]
        assert get["Resource"] == ["arn:aws:apigateway:*::%s" % p for p in (
            "/apis", "/apis/*/stages", "/clientcertificates", "/restapis", "/restapis/*/stages")]

"""policies/config-poll-rule.yml end to end: ``custodian run`` deploys each rule's function and
its periodic AWS Config rule to the sandbox; the archive it uploaded runs in a fresh, isolated
interpreter (test_lambda's stand-in for the Lambda runtime) on the ScheduledNotification AWS
Config sends each period, with the function's clock at the sandbox's. Days pass between the
periods and nothing touches the stages: a stage whose certificate crosses the 30-day window
turns NON_COMPLIANT on the next period, in a Config that refuses unrecorded types."""
import datetime
import json
import pathlib
import subprocess
import sys

import freezegun
import pytest
import yaml
from conftest import ACCOUNT, REGION, api_calls, assume_role_allowed, client, custodian_run, \
    make_acm_cert, make_cert, make_rest_stage, make_websocket_stage
from test_config_rules import annotations, evaluations, rest_stage_arn
from test_lambda import create_lambda_role, runtime_dir, unpack

from c7n_apigw_certs import handler
from c7n_apigw_certs.sandbox.deploy import deployed_function

ROOT = pathlib.Path(__file__).resolve().parents[1]
POLICY_FILE = ROOT / "policies" / "config-poll-rule.yml"
POLICIES = yaml.safe_load(POLICY_FILE.read_text())["policies"]
ROLE = "c7n-apigw-certs-config-rule"
FREEZEGUN = pathlib.Path(freezegun.__file__).parent

# test_lambda's bootstrap (sys.path: the function's directory and the runtime's libraries only,
# no site-packages, no .pth), with the process's clock set to the sandbox's: freezegun from a
# directory of its own, as sandbox/timeshift.py moves a command's clock. The function's code
# and c7n's know nothing of it.
BOOTSTRAP = r"""
import importlib, json, logging, sys
task, runtime, clock, now, entry = sys.argv[1:6]
sys.path[:0] = [task, runtime, clock]
import freezegun
freezegun.freeze_time(now, tick=False).start()
logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
module, name = entry.rsplit(".", 1)
result = getattr(importlib.import_module(module), name)(json.loads(sys.stdin.read()), None)
print(json.dumps({"result": result, "path": sys.path}))
"""


def clock_dir(tmp_path):
    clock = tmp_path / "clock"
    clock.mkdir(exist_ok=True)
    if not (clock / "freezegun").exists():
        (clock / "freezegun").symlink_to(FREEZEGUN)
    return clock


def run_period(sandbox, tmp_path, policy, archive, handler_name,
               message_type="ScheduledNotification", **resource):
    """One period: the event AWS Config sends the rule now, the function run on it at now
    (``resource``: the item of a ConfigurationItemChangeNotification)."""
    event = sandbox.config_event("custodian-" + policy["name"], message_type,
                                 ACCOUNT, REGION, **resource)
    now = json.loads(event["invokingEvent"])["notificationCreationTime"]
    work = tmp_path / policy["name"]
    work.mkdir(exist_ok=True)
    task = work / "task"
    if not task.exists():
        task = unpack(archive, work)
    runtime = work / "runtime" if (work / "runtime").exists() else runtime_dir(work)
    env = {k: v for k, v in sandbox.env.items() if k.startswith("AWS_")}
    env.update({"HOME": str(work), "LAMBDA_TASK_ROOT": str(task),
                "AWS_LAMBDA_FUNCTION_NAME": "custodian-" + policy["name"]})
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", BOOTSTRAP, str(task), str(runtime),
         str(clock_dir(work)), now, handler_name],
        input=json.dumps(event), cwd=str(task), env=env, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-6000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    assert not [p for p in report["path"] if "site-packages" in p]
    return now, proc


def stage_state(stage):
    """A stage as read back, less the response's metadata."""
    return {k: v for k, v in stage.items() if k != "ResponseMetadata"}


def ordering(policy):
    pages = client("config").get_paginator("get_compliance_details_by_config_rule").paginate(
        ConfigRuleName="custodian-" + policy["name"])
    return {e["EvaluationResultIdentifier"]["OrderingTimestamp"].astimezone(
        datetime.timezone.utc) for p in pages for e in p["EvaluationResults"]}


@pytest.fixture
def deployed(sandbox, tmp_path):
    """Both rules deployed by ``custodian run``: {policy name: (configuration, archive)}."""
    create_lambda_role(ROLE)
    resources, _ = custodian_run(sandbox, tmp_path, str(POLICY_FILE))
    assert resources == {}  # a Lambda mode deploys: nothing is evaluated from here
    rules = {r["ConfigRuleName"]: r for r in
             client("config").describe_config_rules()["ConfigRules"]}
    found = {}
    for policy in POLICIES:
        name = "custodian-" + policy["name"]
        rule = rules[name]
        assert rule["Source"]["Owner"] == "CUSTOM_LAMBDA"
        assert rule["Source"]["SourceDetails"] == [{
            "EventSource": "aws.config", "MessageType": "ScheduledNotification",
            "MaximumExecutionFrequency": "TwentyFour_Hours"}]
        assert "Scope" not in rule  # a poll rule is not tied to one recorded type
        configuration, archive = deployed_function(ACCOUNT, REGION, name)
        assert configuration["Handler"] == handler.HANDLER
        found[policy["name"]] = (configuration, archive)
    return found


def test_a_stage_turns_non_compliant_when_its_certificate_enters_the_window(
        sandbox, tmp_path, deployed):
    """REST stages, by ARN. 35 days left: COMPLIANT on day 0 and, 31 days left, on day 4; 29
    days left on day 6: NON_COMPLIANT, with the stage untouched all along. The other stage's
    certificate (200 days) stays COMPLIANT: the change is the window, not the run."""
    assert sandbox.switches()["config_evaluation_types"] == "recorded"
    policy = POLICIES[0]
    configuration, archive = deployed[policy["name"]]
    ageing, healthy = make_cert(sandbox, 35), make_cert(sandbox, 200)
    orders, reports = make_rest_stage(ageing, "orders", "prod"), make_rest_stage(healthy,
                                                                                 "reports")
    before = stage_state(client("apigateway").get_stage(restApiId=orders, stageName="prod"))
    sandbox.reset_counters()
    seen = []
    for day in (0, 4, 6):
        sandbox.advance(days=day - (seen[-1][0] if seen else 0))
        when, _ = run_period(sandbox, tmp_path, policy, archive, configuration["Handler"])
        seen.append((day, evaluations(policy)[("AWS::ApiGateway::Stage",
                                               rest_stage_arn(orders))]))
        assert evaluations(policy)[("AWS::ApiGateway::Stage", rest_stage_arn(reports))] == \
            "COMPLIANT"
        assert ordering(policy) == {datetime.datetime.fromisoformat(when.replace("Z", "+00:00"))}
        # each period's evaluations replace the last
    assert seen == [(0, "COMPLIANT"), (4, "COMPLIANT"), (6, "NON_COMPLIANT")]
    # Nothing changed the stage: no write to API Gateway, the stage as it was.
    assert set(api_calls(sandbox, "apigateway")) <= {"GetRestApis", "GetStages",
                                                     "GetClientCertificates"}
    assert stage_state(client("apigateway").get_stage(restApiId=orders, stageName="prod")) == \
        before
    assert api_calls(sandbox, "config")["PutEvaluations"] == 3  # one a period, all accepted
    assert api_calls(sandbox, outcome="fault") == {} and api_calls(sandbox, outcome="denied") == {}
    assert api_calls(sandbox, outcome="throttled") == {}


def test_websocket_stages_age_the_same_way(sandbox, tmp_path, deployed):
    """The WebSocket rule, its evaluations by stage name (fact 137): COMPLIANT at 31 days
    left, NON_COMPLIANT two days later, the stage untouched."""
    policy = POLICIES[1]
    configuration, archive = deployed[policy["name"]]
    ageing = make_cert(sandbox, 31)
    api = make_websocket_stage(ageing, "chat", "live")
    make_websocket_stage(make_cert(sandbox, 200), "feed", "dev")
    before = stage_state(client("apigatewayv2").get_stage(ApiId=api, StageName="live"))
    run_period(sandbox, tmp_path, policy, archive, configuration["Handler"])
    assert evaluations(policy) == {("AWS::ApiGatewayV2::Stage", "live"): "COMPLIANT",
                                   ("AWS::ApiGatewayV2::Stage", "dev"): "COMPLIANT"}
    sandbox.advance(days=2)
    run_period(sandbox, tmp_path, policy, archive, configuration["Handler"])
    assert evaluations(policy) == {("AWS::ApiGatewayV2::Stage", "live"): "NON_COMPLIANT",
                                   ("AWS::ApiGatewayV2::Stage", "dev"): "COMPLIANT"}
    assert stage_state(client("apigatewayv2").get_stage(ApiId=api, StageName="live")) == before


def test_the_annotation_names_the_certificate_even_an_acm_one(sandbox, tmp_path, deployed):
    """What a person reads in Config, from the archive as it runs: a stage on an imported ACM
    certificate with 33 days left is COMPLIANT (c7n's text); four days on, untouched, it is
    NON_COMPLIANT and the annotation names the ACM ARN, its kind, its expiry date and the 29
    days left. A stage on an expired generated certificate says EXPIRED and since when."""
    policy = POLICIES[0]
    configuration, archive = deployed[policy["name"]]
    arn = make_acm_cert(sandbox, "imported", 33)
    acm_api = make_rest_stage(arn, "billing", "prod")
    expired = make_cert(sandbox, -2)
    old_api = make_rest_stage(expired, "legacy", "prod")
    run_period(sandbox, tmp_path, policy, archive, configuration["Handler"])
    assert annotations(policy)[rest_stage_arn(acm_api)] == (
        "The resource is compliant with policy:%s." % policy["name"])
    sandbox.advance(days=4)
    run_period(sandbox, tmp_path, policy, archive, configuration["Handler"])
    assert evaluations(policy) == {("AWS::ApiGateway::Stage", rest_stage_arn(acm_api)):
                                   "NON_COMPLIANT",
                                   ("AWS::ApiGateway::Stage", rest_stage_arn(old_api)):
                                   "NON_COMPLIANT"}
    not_after = client("acm").describe_certificate(CertificateArn=arn)["Certificate"][
        "NotAfter"].astimezone(datetime.timezone.utc).date().isoformat()
    notes = annotations(policy)
    assert notes[rest_stage_arn(acm_api)] == (
        "Stage presents client certificate %s (acm-imported): expires %s, 29 day(s) left "
        "(window: 30 days)" % (arn, not_after))
    expired_on = {c["clientCertificateId"]: c["expirationDate"] for c in
                  client("apigateway").get_client_certificates()["items"]}[expired]
    assert notes[rest_stage_arn(old_api)] == (
        "Stage presents client certificate %s (generated): EXPIRED %s, 6 day(s) ago" % (
            expired, expired_on.astimezone(datetime.timezone.utc).date().isoformat()))


CHANGE_POLICIES = yaml.safe_load((ROOT / "policies" / "config-rule.yml").read_text())["policies"]


def test_the_change_triggered_rules_run_from_their_archive(sandbox, tmp_path):
    """policies/config-rule.yml deployed by ``custodian run`` (each rule scoped to the stage
    type Config records) and its archive run on the change notification Config sends for a
    REST and a WebSocket stage: evaluations accepted by a Config that refuses unrecorded
    types, the NON_COMPLIANT one naming its certificate."""
    assert sandbox.switches()["config_evaluation_types"] == "recorded"
    create_lambda_role(ROLE)
    custodian_run(sandbox, tmp_path, str(ROOT / "policies" / "config-rule.yml"))
    rules = {r["ConfigRuleName"]: r for r in
             client("config").describe_config_rules()["ConfigRules"]}
    expiring, healthy = make_cert(sandbox, 10), make_cert(sandbox, 200)
    rest = make_rest_stage(expiring, "orders", "prod")
    ws = make_websocket_stage(healthy, "chat", "live")
    changed = {0: ("AWS::ApiGateway::Stage", rest_stage_arn(rest)),
               1: ("AWS::ApiGatewayV2::Stage",
                   "arn:aws:apigateway:%s::/apis/%s/stages/live" % (REGION, ws))}
    for index, policy in enumerate(CHANGE_POLICIES):
        name = "custodian-" + policy["name"]
        resource_type, resource_id = changed[index]
        assert rules[name]["Scope"] == {"ComplianceResourceTypes": [resource_type]}
        configuration, archive = deployed_function(ACCOUNT, REGION, name)
        assert configuration["Handler"] == handler.HANDLER
        run_period(sandbox, tmp_path, policy, archive, configuration["Handler"],
                   "ConfigurationItemChangeNotification", resource_type=resource_type,
                   resource_id=resource_id)
    assert evaluations(CHANGE_POLICIES[0]) == {changed[0]: "NON_COMPLIANT"}
    assert evaluations(CHANGE_POLICIES[1]) == {changed[1]: "COMPLIANT"}
    assert annotations(CHANGE_POLICIES[0])[changed[0][1]].startswith(
        "Stage presents client certificate %s (generated): expires " % expiring)
    assert api_calls(sandbox, outcome="fault") == {}


def test_the_functions_clock_is_what_moves_the_result(sandbox, tmp_path, deployed):
    """Negative control: the sandbox moved six days but the function run at day 0 (its clock
    not moved) still finds 35 days left: COMPLIANT. The flip above comes from the days."""
    policy = POLICIES[0]
    configuration, archive = deployed[policy["name"]]
    orders = make_rest_stage(make_cert(sandbox, 35), "orders", "prod")
    day0 = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    sandbox.advance(days=6)
    event = sandbox.config_event("custodian-" + policy["name"], "ScheduledNotification",
                                 ACCOUNT, REGION)
    work = tmp_path / "control"
    work.mkdir()
    task, runtime = unpack(archive, work), runtime_dir(work)
    env = {k: v for k, v in sandbox.env.items() if k.startswith("AWS_")}
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", BOOTSTRAP, str(task), str(runtime),
         str(clock_dir(work)), day0, configuration["Handler"]],
        input=json.dumps(event), cwd=str(task), env=env, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert evaluations(policy) == {("AWS::ApiGateway::Stage", rest_stage_arn(orders)):
                                   "COMPLIANT"}


def test_the_rules_listings_run_under_their_generated_document(sandbox, tmp_path):
    """What the functions list (the policies less their mode), as a role holding exactly what
    ``c7n-apigw-certs iam policies/config-poll-rule.yml`` prints: nothing refused; and less its
    WebSocket listing, refused naming it (the sandbox checks API Gateway, not Config)."""
    from c7n_apigw_certs import iam
    document = iam.policy_document([str(POLICY_FILE)], region=REGION, account=ACCOUNT)
    make_rest_stage(make_cert(sandbox, 10), "orders", "prod")
    make_websocket_stage(make_cert(sandbox, 10), "chat", "live")
    pulled = tmp_path / "pull.yml"
    pulled.write_text(yaml.safe_dump({"policies": [
        {k: v for k, v in p.items() if k != "mode"} for p in POLICIES]}))
    custodian_run(sandbox, tmp_path, str(pulled), extra=[
        "--assume", assume_role_allowed(document, "config-rule-listings")])
    assert api_calls(sandbox, outcome="denied") == {}
    less = json.loads(json.dumps(document))
    for statement in less["Statement"]:
        statement["Resource"] = [r for r in statement["Resource"] if "/apis" not in r]
    _, proc = custodian_run(sandbox, tmp_path, str(pulled), check=False, extra=[
        "--assume", assume_role_allowed(less, "config-rule-listings-less")])
    assert proc.returncode != 0
    assert "apigateway:GET on resource: arn:aws:apigateway:%s::/apis" % REGION in proc.stderr

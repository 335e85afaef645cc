"""Lambda modes: ``custodian run`` of policies/periodic-audit.yml deploys a function and its
schedule to the sandbox; the archive it uploaded, unpacked alone next to only what the Lambda
Python runtime provides, is run in a fresh interpreter with a scheduled event, and finds and
does what ``custodian run`` of the same policy in pull mode finds and does."""
import copy
import datetime
import io
import json
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest
import yaml
from c7n.config import Config
from c7n.exceptions import PolicyValidationError
from c7n.policy import Policy
from c7n.resources import load_resources
from conftest import (
    ACCOUNT, REGION, api_calls, client, custodian_run, make_cert, make_rest_stage,
    make_websocket_stage, run_cli, write_policy)

from c7n_apigw_certs import handler
from c7n_apigw_certs.signals.metrics import DEFAULT_METRIC_NAME, DEFAULT_NAMESPACE
from c7n_apigw_certs.sandbox.deploy import deployed_function, scheduled_event

ROOT = pathlib.Path(__file__).resolve().parents[1]
POLICY_FILE = ROOT / "policies" / "periodic-audit.yml"
POLICY = yaml.safe_load(POLICY_FILE.read_text())["policies"][0]
FUNCTION = "custodian-" + POLICY["name"]
ROLE = POLICY["mode"]["role"]
ROLE_ARN = "arn:aws:iam::%s:role/%s" % (ACCOUNT, ROLE)
# What the Lambda Python runtime provides besides the standard library
# (docs/aws-behaviour.md, fact 27).
RUNTIME_PROVIDES = ("boto3", "botocore", "dateutil", "jmespath", "s3transfer", "urllib3", "six")
SITE = pathlib.Path(yaml.__file__).resolve().parents[1]

# A stand-in for the Lambda runtime's bootstrap: sys.path is the function's directory and the
# runtime's libraries only (the interpreter runs with -I -S: no site-packages, no .pth file, no
# PYTHONPATH), the working directory is the function's, the handler is the configured
# "module.function", called with the event and a context object.
BOOTSTRAP = r"""
import importlib, importlib.util, json, logging, sys
task, runtime, entry = sys.argv[1:4]
sys.path[:0] = [task, runtime]
logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")

class Context:
    function_name = "{function}"
    aws_request_id = "8f5e3bde-0000-4000-8000-000000000000"
    invoked_function_arn = "arn:aws:lambda:{region}:{account}:function:{function}"
    memory_limit_in_mb = 512
    log_group_name = "/aws/lambda/{function}"
    def get_remaining_time_in_millis(self):
        return 900000

module, name = entry.rsplit(".", 1)
event = json.loads(sys.stdin.read())
result = getattr(importlib.import_module(module), name)(event, Context())
print(json.dumps({{
    "result": result,
    "path": sys.path,
    "absent": [m for m in ("cryptography", "yaml", "jsonschema", "moto")
               if importlib.util.find_spec(m) is None],
    "plugin": sorted(m for m in sys.modules if m.startswith("c7n_apigw_certs")),
    "plugin_file": sys.modules["c7n_apigw_certs"].__file__
                   if "c7n_apigw_certs" in sys.modules else None,
}}))
""".format(function=FUNCTION, region=REGION, account=ACCOUNT)


def create_lambda_role(role=ROLE):
    """The function's execution role: moto, like AWS, refuses a function whose role does not
    exist ("cannot be assumed by Lambda")."""
    client("iam").create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"Service": "lambda.amazonaws.com"}}]}))


def runtime_dir(tmp_path):
    """A directory holding only the libraries the Lambda runtime provides, from this venv."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for name in RUNTIME_PROVIDES:
        source = SITE / name if (SITE / name).is_dir() else SITE / (name + ".py")
        assert source.exists(), source
        os.symlink(source, runtime / source.name)
    return runtime


def unpack(archive, tmp_path):
    task = tmp_path / "task"
    task.mkdir()
    zipfile.ZipFile(io.BytesIO(archive)).extractall(task)
    return task


def invoke(control, task, runtime, entry, event, check=True):
    """Run ``entry`` of the unpacked function in a fresh, isolated interpreter."""
    env = {k: v for k, v in control.env.items() if k.startswith("AWS_")}
    env.update({"HOME": str(task.parent), "LAMBDA_TASK_ROOT": str(task),
                "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11"})
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", BOOTSTRAP, str(task), str(runtime), entry],
        input=json.dumps(event), cwd=str(task), env=env, capture_output=True, text=True,
        timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError("the function failed (%d)\n%s" % (proc.returncode,
                                                               proc.stderr[-6000:]))
    return proc


def metric_stats(cert_id):
    """(SampleCount, Minimum, Maximum) of the certificate's DaysToExpiry datapoints."""
    now = datetime.datetime.now(datetime.timezone.utc)
    points = client("cloudwatch").get_metric_statistics(
        Namespace=DEFAULT_NAMESPACE, MetricName=DEFAULT_METRIC_NAME,
        Dimensions=[{"Name": "ClientCertificateId", "Value": cert_id},
                    {"Name": "Region", "Value": REGION}],
        StartTime=now - datetime.timedelta(hours=1), EndTime=now + datetime.timedelta(hours=1),
        Period=7200, Statistics=["SampleCount", "Minimum", "Maximum"])["Datapoints"]
    if not points:
        return (0, None, None)
    return (sum(p["SampleCount"] for p in points), min(p["Minimum"] for p in points),
            max(p["Maximum"] for p in points))


@pytest.fixture
def estate(sandbox):
    """Three certificates the audit matches (a REST stage's, a WebSocket stage's, an expired
    one), one in use but far from expiry, one expiring but unused."""
    certs = {name: make_cert(sandbox, days, description=name) for name, days in (
        ("soon", 5), ("ws", 20), ("expired", -2), ("far", 200), ("unused", 3))}
    api = make_rest_stage(certs["soon"], api_name="orders", stage="prod")
    make_rest_stage(certs["expired"], api_id=api, stage="staging")
    make_rest_stage(certs["far"], api_id=api, stage="dev")
    make_websocket_stage(certs["ws"])
    return certs


def deploy(control, tmp_path, policy):
    create_lambda_role()
    resources, proc = custodian_run(control, tmp_path, policy)
    assert resources == {}  # a Lambda mode deploys: nothing is audited from here
    return deployed_function(ACCOUNT, REGION, FUNCTION)


# -- the deployed function, run as Lambda runs it ------------------------------------------------

def test_archive_runs_the_audit_as_custodian_run_does(sandbox, estate, tmp_path):
    # The shipped policy, its output kept in a directory the test reads (the function's own
    # default is its /tmp, fact 27); nothing else differs.
    lambda_out = tmp_path / "lambda-out"
    policy = copy.deepcopy(POLICY)
    policy["mode"]["execution-options"] = {"output_dir": str(lambda_out)}
    configuration, archive = deploy(sandbox, tmp_path, policy)
    assert configuration["Handler"] == handler.HANDLER

    task, runtime = unpack(archive, tmp_path), runtime_dir(tmp_path)
    event = scheduled_event(ACCOUNT, REGION, FUNCTION)
    proc = invoke(sandbox, task, runtime, configuration["Handler"], event)
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["result"] is True
    # isolated for real: the function's directory, the runtime's, and the standard library
    assert report["path"][:2] == [str(task), str(runtime)]
    assert not [p for p in report["path"] if "site-packages" in p]
    assert report["absent"] == ["cryptography", "yaml", "jsonschema", "moto"]
    assert report["plugin_file"] == str(task / "c7n_apigw_certs" / "__init__.py")
    assert "c7n_apigw_certs.audit.pem" in report["plugin"]

    found = json.loads((lambda_out / POLICY["name"] / "resources.json").read_text())
    matched = {estate["soon"], estate["ws"], estate["expired"]}
    assert {r["clientCertificateId"] for r in found} == matched
    days = {r["clientCertificateId"]: r["c7n:days-left"] for r in found}
    assert days == {estate["soon"]: 5, estate["ws"]: 20, estate["expired"]: -2}
    after_lambda = {cid: metric_stats(cid) for cid in estate.values()}
    assert after_lambda == dict(
        {cid: (1.0, float(d), float(d)) for cid, d in days.items()},
        **{estate["far"]: (0, None, None), estate["unused"]: (0, None, None)})

    # The same policy in pull mode, by custodian run: the same certificates, the same values.
    pull = {k: v for k, v in POLICY.items() if k != "mode"}
    resources, _ = custodian_run(sandbox, tmp_path, pull)
    assert {r["clientCertificateId"]: r["c7n:days-left"] for r in resources[REGION]} == days
    for cid, (count, low, high) in after_lambda.items():
        assert metric_stats(cid) == ((2.0, low, high) if count else (0, None, None))


def test_without_the_plugins_handler_the_function_cannot_find_the_resource(
        sandbox, estate, tmp_path):
    """The same archive through c7n's own handler, which it also holds: "Invalid resource",
    because nothing loads the plugin there (no .pth file runs), and no metric is sent."""
    configuration, archive = deploy(sandbox, tmp_path, POLICY)
    task, runtime = unpack(archive, tmp_path), runtime_dir(tmp_path)
    assert (task / "custodian_policy.py").exists()
    proc = invoke(sandbox, task, runtime, handler.C7N_HANDLER,
                  scheduled_event(ACCOUNT, REGION, FUNCTION), check=False)
    assert proc.returncode != 0
    assert "Invalid resource: apigw-client-certificate" in proc.stderr
    assert metric_stats(estate["soon"]) == (0, None, None)
    # and through the plugin's handler, the very same archive works
    invoke(sandbox, task, runtime, configuration["Handler"],
           scheduled_event(ACCOUNT, REGION, FUNCTION))
    assert metric_stats(estate["soon"]) == (1.0, 5.0, 5.0)


# -- the deployment ------------------------------------------------------------------------------

def test_custodian_run_deploys_the_function_and_its_daily_schedule(sandbox, tmp_path):
    configuration, archive = deploy(sandbox, tmp_path, str(POLICY_FILE))
    # the gate knows each call by name (signing names lambda and events: fact 75)
    assert set(api_calls(sandbox, "lambda")) == {
        "GetFunction", "CreateFunction", "GetFunctionConfiguration", "AddPermission"}
    assert set(api_calls(sandbox, "events")) == {
        "DescribeRule", "PutRule", "ListTargetsByRule", "PutTargets"}
    function_arn = "arn:aws:lambda:%s:%s:function:%s" % (REGION, ACCOUNT, FUNCTION)
    assert configuration["FunctionName"] == FUNCTION
    assert configuration["Handler"] == "c7n_apigw_certs.handler.run"
    assert configuration["Runtime"] == "python3.11"
    assert configuration["Role"] == ROLE_ARN  # the bare name, in the account deployed to
    # read back through the API, as a user would
    listed = client("lambda").get_function(FunctionName=FUNCTION)["Configuration"]
    assert (listed["Handler"], listed["Role"]) == (configuration["Handler"], ROLE_ARN)

    names = zipfile.ZipFile(io.BytesIO(archive)).namelist()
    assert {"config.json", "c7n/handler.py", "c7n_apigw_certs/handler.py",
            "c7n_apigw_certs/audit/pem.py", "c7n_apigw_certs/entry.py"} <= set(names)
    assert not [n for n in names if n.startswith(("cryptography/", "yaml/", "_cffi"))]
    config = json.loads(zipfile.ZipFile(io.BytesIO(archive)).read("config.json"))
    (deployed_policy,) = config["policies"]
    assert deployed_policy["mode"]["handler"] == handler.HANDLER
    assert deployed_policy["mode"]["packages"] == [handler.PACKAGE]

    events = client("events")
    rule = events.describe_rule(Name=FUNCTION)
    assert (rule["ScheduleExpression"], rule["State"]) == ("rate(1 day)", "ENABLED")
    (target,) = events.list_targets_by_rule(Rule=FUNCTION)["Targets"]
    assert target["Arn"] == function_arn
    (statement,) = json.loads(client("lambda").get_policy(FunctionName=FUNCTION)["Policy"])[
        "Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == rule["Arn"]


def test_deploy_without_the_role_fails_and_schedules_nothing(sandbox, tmp_path):
    _, proc = custodian_run(sandbox, tmp_path, str(POLICY_FILE), check=False)
    assert proc.returncode != 0
    assert "The role defined for the function cannot be assumed by Lambda" in proc.stderr
    assert client("lambda").list_functions()["Functions"] == []
    assert client("events").list_rules()["Rules"] == []


def test_running_it_again_updates_the_same_function_and_rule(sandbox, tmp_path):
    deploy(sandbox, tmp_path, str(POLICY_FILE))
    changed = copy.deepcopy(POLICY)
    changed["mode"]["schedule"] = "rate(12 hours)"
    changed["filters"][0]["days"] = 14
    custodian_run(sandbox, tmp_path, changed)
    (function,) = client("lambda").list_functions()["Functions"]
    assert function["Handler"] == handler.HANDLER
    _, archive = deployed_function(ACCOUNT, REGION, FUNCTION)
    config = json.loads(zipfile.ZipFile(io.BytesIO(archive)).read("config.json"))
    assert config["policies"][0]["filters"][0] == {"type": "expiring", "days": 14}
    (rule,) = client("events").list_rules()["Rules"]
    assert rule["ScheduleExpression"] == "rate(12 hours)"
    assert len(client("events").list_targets_by_rule(Rule=FUNCTION)["Targets"]) == 1


def test_c7n_org_deploys_to_every_account_with_that_accounts_role(sandbox, tmp_path):
    """c7n-org completes the bare role name with each account's id; the role must exist in
    every account (created here through the role c7n-org assumes)."""
    import boto3
    accounts = {"alpha": "111111111111", "beta": "222222222222"}
    for account in accounts.values():
        creds = boto3.client("sts").assume_role(
            RoleArn="arn:aws:iam::%s:role/custodian" % account,
            RoleSessionName="setup")["Credentials"]
        boto3.client("iam", aws_access_key_id=creds["AccessKeyId"],
                     aws_secret_access_key=creds["SecretAccessKey"],
                     aws_session_token=creds["SessionToken"]).create_role(
            RoleName=ROLE, AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Action": "sts:AssumeRole",
                    "Principal": {"Service": "lambda.amazonaws.com"}}]}))
    config = tmp_path / "accounts.yml"
    config.write_text(yaml.safe_dump({"accounts": [
        {"name": name, "account_id": account, "regions": [REGION],
         "role": "arn:aws:iam::%s:role/custodian" % account}
        for name, account in accounts.items()]}))
    run_cli("c7n-org", ["run", "-c", str(config), "-s", str(tmp_path / "org-out"),
                        "-u", str(POLICY_FILE)], sandbox.env)
    for account in accounts.values():
        configuration, archive = deployed_function(account, REGION, FUNCTION)
        assert configuration["Role"] == "arn:aws:iam::%s:role/%s" % (account, ROLE)
        assert configuration["Handler"] == handler.HANDLER
        assert "c7n_apigw_certs/audit/pem.py" in zipfile.ZipFile(io.BytesIO(archive)).namelist()
        assert scheduled_event(account, REGION, FUNCTION)["account"] == account
    assert client("lambda").list_functions()["Functions"] == []  # not in the caller's account


# -- the mode the plugin completes -------------------------------------------------------------

OPTIONS = Config.empty(region=REGION, account_id=ACCOUNT)
EXPIRING = {"name": "t", "resource": "aws.apigw-client-certificate",
            "filters": [{"type": "expiring", "days": 30}]}
STAGES = {"name": "t", "resource": "aws.rest-stage",
          "filters": [{"type": "expiring", "days": 14}]}


def validated(data):
    load_resources([data["resource"]])
    p = Policy(copy.deepcopy(data), OPTIONS)
    p.validate()
    return p.data.get("mode")


@pytest.mark.parametrize("data,mode", [
    (EXPIRING, {"type": "periodic", "schedule": "rate(1 day)", "role": ROLE}),
    (EXPIRING, {"type": "schedule", "schedule": "rate(1 day)", "role": ROLE}),
    (EXPIRING, {"type": "config-poll-rule", "schedule": "One_Hour", "role": ROLE}),
    (STAGES, {"type": "config-rule", "role": ROLE}),
    (STAGES, {"type": "periodic", "schedule": "rate(1 day)", "role": ROLE}),
], ids=["periodic", "schedule", "config-poll-rule", "rest-stage-config-rule",
        "rest-stage-periodic"])
def test_every_lambda_mode_gets_the_plugins_handler_and_package(data, mode):
    completed = validated(dict(data, mode=mode))
    assert completed["handler"] == "c7n_apigw_certs.handler.run"
    assert completed["packages"] == ["c7n_apigw_certs"]


def test_pull_mode_and_plain_rest_stage_policies_are_not_touched():
    assert validated(EXPIRING) is None
    plain = dict(STAGES, filters=[{"stageName": "prod"}],
                 mode={"type": "periodic", "schedule": "rate(1 day)", "role": ROLE})
    assert "handler" not in validated(plain)


def test_named_settings_are_kept_and_completed():
    mode = validated(dict(EXPIRING, mode={
        "type": "periodic", "schedule": "rate(1 day)", "role": ROLE,
        "handler": "my_wrapper.run", "packages": ["my_wrapper"]}))
    assert mode["handler"] == "my_wrapper.run"  # the user's, which may wrap ours
    assert mode["packages"] == ["my_wrapper", "c7n_apigw_certs"]
    again = validated(dict(EXPIRING, mode=mode))
    assert again["packages"] == ["my_wrapper", "c7n_apigw_certs"]


def test_c7ns_default_handler_is_refused_at_validation(sandbox, tmp_path):
    data = dict(EXPIRING, name="default-handler", mode={
        "type": "periodic", "schedule": "rate(1 day)", "role": ROLE,
        "handler": "custodian_policy.run"})
    with pytest.raises(PolicyValidationError, match="policy:default-handler mode.handler: "
                       "custodian_policy.run cannot load the c7n-apigw-certs plugin"):
        validated(data)
    _, proc = custodian_run(sandbox, tmp_path, write_policy(tmp_path, data), check=False)
    assert proc.returncode != 0 and "custodian_policy.run cannot load" in proc.stderr
    assert client("lambda").list_functions()["Functions"] == []


def test_the_handler_loads_the_plugin_then_dispatches(monkeypatch):
    import c7n.handler
    seen = []
    monkeypatch.setattr(c7n.handler, "dispatch_event", lambda e, c: seen.append((e, c)) or 7)
    event = {"detail-type": "Scheduled Event", "detail": {}}
    assert handler.run(event, "ctx") == 7
    assert seen == [(event, "ctx")]
    from c7n.resources.resource_map import ResourceMap
    assert ResourceMap["aws.apigw-client-certificate"] == "c7n_apigw_certs.entry.ClientCertificate"


def test_the_lambda_page_shows_the_shipped_policy():
    section = (ROOT / "docs" / "lambda-and-config.md").read_text().split(
        "## Running in AWS Lambda", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block)["policies"] == [POLICY]


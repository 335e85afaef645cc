"""The rotate and delete actions through the real ``custodian`` against the sandbox, with the
safety invariants checked after every run."""
import datetime
import json

import pytest

from c7n_apigw_certs.rotation.stages import DEPLOY_INTERVAL
from conftest import (
    ACCOUNT, REGION, api_calls, client, custodian_run, make_cert, make_rest_stage,
    make_websocket_stage, run_at, run_cli, write_policy)

BUCKET = "trust-bundles"
SSM_NAME = "/apigw/client-certs/{api_id}/{stage_name}"
S3_KEY = "apigw/{api_id}/{stage_name}.pem"
PREDECESSOR = "c7n:rotation:predecessor"


def rotate_policy(switch=3, delete=7, extra=None, days=30, publish=None):
    action = {"type": "rotate", "description": "rotated from {old_cert_id}",
              "publish": publish or [{"type": "ssm", "name": SSM_NAME},
                                     {"type": "s3", "bucket": BUCKET, "key": S3_KEY}],
              "switch-after-days": switch}
    if delete is not None:
        action["delete-after-days"] = delete
    action.update(extra or {})
    return {"name": "rotate", "resource": "aws.apigw-client-certificate",
            "filters": [{"type": "expiring", "days": days}], "actions": [action]}


@pytest.fixture
def estate(sandbox):
    """One expiring certificate used by three REST stages of two APIs and a WebSocket stage,
    a healthy one, and an unused expiring one."""
    client("s3").create_bucket(Bucket=BUCKET)
    old = make_cert(sandbox, 10, description="old", tags={"team": "payments"})
    api_a = make_rest_stage(old, "a", "prod")
    make_rest_stage(old, "a", "staging", api_id=api_a)
    api_b = make_rest_stage(old, "b", "prod")
    ws = make_websocket_stage(old)
    healthy = make_cert(sandbox, 300, description="healthy")
    make_rest_stage(healthy, "c", "prod")
    unused = make_cert(sandbox, 10, description="unused")
    return {"old": old, "healthy": healthy, "unused": unused,
            "rest": [(api_a, "prod"), (api_a, "staging"), (api_b, "prod")], "ws": [(ws, "live")]}


# -- what the account looks like -----------------------------------------------------------
def certificates():
    pages = client("apigateway").get_paginator("get_client_certificates").paginate()
    return {c["clientCertificateId"]: c for p in pages for c in p["items"]}


def stage_certificates(estate):
    apigw, v2 = client("apigateway"), client("apigatewayv2")
    found = {}
    for api, stage in estate["rest"]:
        found[(api, stage)] = apigw.get_stage(restApiId=api, stageName=stage).get(
            "clientCertificateId")
    for api, stage in estate["ws"]:
        found[(api, stage)] = v2.get_stage(ApiId=api, StageName=stage).get("ClientCertificateId")
    return found


def bundles(api, stage):
    ssm = client("ssm").get_parameter(
        Name=SSM_NAME.format(api_id=api, stage_name=stage))["Parameter"]["Value"]
    s3 = client("s3").get_object(Bucket=BUCKET, Key=S3_KEY.format(api_id=api, stage_name=stage))
    return ssm, s3["Body"].read().decode()


def published(api, stage):
    try:
        return bundles(api, stage)
    except (client("ssm").exceptions.ParameterNotFound, client("s3").exceptions.NoSuchKey):
        return None


def check_invariants(sandbox, estate):
    certs = certificates()
    stages = stage_certificates(estate)
    # No stage references a deleted certificate; nothing in use was deleted.
    for where, cert_id in stages.items():
        assert cert_id in certs, "%s references deleted %s" % (where, cert_id)
    # At most one successor per certificate, ever.
    predecessors = [c.get("tags", {}).get(PREDECESSOR) for c in certs.values()]
    named = [p for p in predecessors if p]
    assert len(named) == len(set(named)), "two successors of one certificate"
    # Every published bundle holds every certificate its stage presents.
    for (api, stage), cert_id in stages.items():
        presented = cert_id
        if (api, stage) in estate["rest"]:
            presented = sandbox.presented(ACCOUNT, REGION, api, stage)["presented"] or cert_id
        content = published(api, stage)
        if content is None:
            assert presented == estate["old"], "a stage presents an unpublished certificate"
            continue
        for text in content:
            assert certs[presented]["pemEncodedCertificate"].strip() in text, \
                "%s/%s presents %s, which its bundle lacks" % (api, stage, presented)
    return certs, stages


def successor_of(certs, old):
    (new,) = [c for c, v in certs.items() if v.get("tags", {}).get(PREDECESSOR) == old]
    return new


def assert_complete(sandbox, estate):
    certs, stages = check_invariants(sandbox, estate)
    assert estate["old"] not in certs
    new = successor_of(certs, estate["old"])
    assert set(stages.values()) == {new}
    for api, stage in estate["rest"] + estate["ws"]:
        for text in bundles(api, stage):
            assert text == certs[new]["pemEncodedCertificate"].strip() + "\n"
    assert certs[new]["tags"]["team"] == "payments"
    assert certs[new]["description"] == "rotated from %s" % estate["old"]
    return new


def action_records(tmp_path):
    path = tmp_path / "out" / "rotate" / "action-rotate"
    return {r["clientCertificateId"]: r["c7n:rotation"] for r in json.loads(path.read_text())}


# -- the tests ----------------------------------------------------------------------------
def test_full_rotation_in_one_run(sandbox, estate, tmp_path):
    custodian_run(sandbox, tmp_path, rotate_policy(switch=0, delete=0))
    new = assert_complete(sandbox, estate)
    records = action_records(tmp_path)
    record = records[estate["old"]]
    assert record["successor"] == new and record["deleted"] is True
    assert len(record["switched"]) == 4 and len(record["published"]) == 8
    assert records[estate["unused"]]["skipped"] == "used by no stage"
    assert estate["unused"] in certificates() and estate["healthy"] in certificates()


def test_staged_rotation_across_runs(sandbox, estate, tmp_path):
    policy = rotate_policy(switch=3, delete=7)
    custodian_run(sandbox, tmp_path, policy)  # day 0: successor and trust only
    certs, stages = check_invariants(sandbox, estate)
    new = successor_of(certs, estate["old"])
    assert set(stages.values()) == {estate["old"]}
    for api, stage in estate["rest"] + estate["ws"]:
        for text in bundles(api, stage):
            assert certs[new]["pemEncodedCertificate"].strip() in text
            assert certs[estate["old"]]["pemEncodedCertificate"].strip() in text
    assert action_records(tmp_path)[estate["old"]]["waiting"].startswith("switch at ")

    sandbox.advance(days=1)  # both clocks move: a run refuses a clock far from AWS's
    custodian_run(sandbox, tmp_path, policy, days=1)  # too early to switch
    assert set(check_invariants(sandbox, estate)[1].values()) == {estate["old"]}

    sandbox.advance(days=2)
    custodian_run(sandbox, tmp_path, policy, days=3)  # day 3: switch, keep the old trusted
    certs, stages = check_invariants(sandbox, estate)
    assert set(stages.values()) == {new} and estate["old"] in certs
    assert action_records(tmp_path)[estate["old"]]["waiting"].startswith("delete at ")
    assert len(certs) == 4  # old, successor, healthy, unused: no second successor

    sandbox.advance(days=7)
    custodian_run(sandbox, tmp_path, policy, days=10)  # day 10: retire
    assert_complete(sandbox, estate)


def test_without_delete_after_days_nothing_is_deleted(sandbox, estate, tmp_path):
    custodian_run(sandbox, tmp_path, rotate_policy(switch=0, delete=None))
    certs, stages = check_invariants(sandbox, estate)
    assert estate["old"] in certs
    assert set(stages.values()) == {successor_of(certs, estate["old"])}


@pytest.mark.parametrize("fault", [
    {"operation": "GenerateClientCertificate"},
    {"operation": "TagResource"},  # dies between generating and linking: no second successor
    {"operation": "PutParameter", "service": "ssm"},
    {"operation": "PutObject", "service": "s3"},
    {"operation": "UpdateStage", "target": "staging"},
    {"operation": "UpdateStage", "service": "apigatewayv2"},
    {"operation": "DeleteClientCertificate"},
], ids=lambda f: "%s-%s" % (f.get("service", "apigw"), f["operation"]))
def test_failure_at_each_step_then_rerun(sandbox, estate, tmp_path, fault):
    sandbox.add_fault(**fault)
    _, proc = custodian_run(sandbox, tmp_path, rotate_policy(switch=0, delete=0), check=False)
    assert proc.returncode != 0
    assert "client-certificate:%s" % estate["old"] in proc.stderr
    certs, _ = check_invariants(sandbox, estate)
    assert estate["old"] in certs  # nothing deleted for a certificate whose step failed
    custodian_run(sandbox, tmp_path, rotate_policy(switch=0, delete=0))
    assert_complete(sandbox, estate)


THROTTLED = ("GetClientCertificates", "GetStages", "GenerateClientCertificate", "GetStage",
             "UpdateStage", "TagResource", "DeleteClientCertificate")


def test_throttled_calls_are_retried(sandbox, estate, tmp_path):
    """Every kind of call the rotation makes is refused twice with API Gateway's 429: c7n's
    retry backs off and the run completes, having been refused exactly as armed (faults, not a
    clock: nothing here depends on timing)."""
    for operation in THROTTLED:
        sandbox.add_fault(operation, service="apigateway", code="TooManyRequestsException",
                          status=429, message="Too Many Requests", count=2)
    custodian_run(sandbox, tmp_path, rotate_policy(switch=0, delete=0))
    assert_complete(sandbox, estate)
    refused = {}
    for row in sandbox.counters():
        if row["outcome"] == "fault":
            refused[row["operation"]] = refused.get(row["operation"], 0) + row["calls"]
    assert refused == {operation: 2 for operation in THROTTLED}


def test_stage_presenting_old_until_redeploy(sandbox, estate, tmp_path):
    """If a stage presents a new certificate only after a redeploy (fact 11), redeploy: true
    keeps every presented certificate trusted and completes the rotation. The one run that
    waits on the wall clock: four deployments against the sandbox's real-time rate of one every
    5 seconds (fact 24), paced so that none is refused."""
    sandbox.switches(needs_deployment=True)
    custodian_run(sandbox, tmp_path, rotate_policy(switch=0, delete=0, extra={"redeploy": True}),
                  real_waits=True)
    new = assert_complete(sandbox, estate)
    for api, stage in estate["rest"]:
        assert sandbox.presented(ACCOUNT, REGION, api, stage)["presented"] == new
    assert "CreateDeployment" not in api_calls(sandbox, outcome="throttled")


def test_paced_waits_pass_on_the_sandbox_clock(sandbox, estate, tmp_path):
    """The same rotation with its waits on the sandbox's clock (timeshift --sandbox-sleep), as
    the other tests run: both clocks stand still but for the waits, so the sandbox's clock
    moves by exactly one deployment interval (fact 24) per deployment after the first, and the
    sandbox's rate, which counts those moves, refuses none."""
    at = datetime.datetime.fromisoformat(sandbox.now())
    sandbox.set_now(at.isoformat(), tick=False)
    sandbox.switches(needs_deployment=True)
    before = api_calls(sandbox).get("CreateDeployment", 0)
    path = write_policy(tmp_path, rotate_policy(switch=0, delete=0, extra={"redeploy": True}))
    run_at("@" + at.isoformat(), "custodian", ["run", "--cache-period", "0", "-s",
           str(tmp_path / "out"), "--region", REGION, path], sandbox.env, sandbox_sleep=True)
    new = assert_complete(sandbox, estate)
    for api, stage in estate["rest"]:
        assert sandbox.presented(ACCOUNT, REGION, api, stage)["presented"] == new
    deployments = api_calls(sandbox)["CreateDeployment"] - before
    assert deployments >= len(estate["rest"])
    assert "CreateDeployment" not in api_calls(sandbox, outcome="throttled")
    moved = datetime.datetime.fromisoformat(sandbox.now()) - at
    assert moved == datetime.timedelta(seconds=DEPLOY_INTERVAL * (deployments - 1))


def test_dryrun_changes_nothing(sandbox, estate, tmp_path):
    before = certificates()
    custodian_run(sandbox, tmp_path, rotate_policy(switch=0, delete=0), extra=["--dryrun"])
    assert certificates().keys() == before.keys()
    assert set(stage_certificates(estate).values()) == {estate["old"]}
    assert published(*estate["rest"][0]) is None


def test_quota_is_reported_with_the_count(sandbox, estate, tmp_path):
    sandbox.switches(quota=3)
    _, proc = custodian_run(sandbox, tmp_path, rotate_policy(), check=False)
    assert proc.returncode != 0
    assert "LimitExceededException" in proc.stderr and "3 exist" in proc.stderr
    check_invariants(sandbox, estate)


def test_site_wide_name_is_written_once(sandbox, estate, tmp_path):
    publish = [{"type": "ssm", "name": "/apigw/{region}/{old_cert_id}"}]
    custodian_run(sandbox, tmp_path, rotate_policy(switch=0, delete=None, publish=publish))
    record = action_records(tmp_path)[estate["old"]]
    assert record["published"] == ["ssm:/apigw/us-east-1/%s" % estate["old"]]
    value = client("ssm").get_parameter(
        Name="/apigw/us-east-1/%s" % estate["old"])["Parameter"]["Value"]
    assert value.count("BEGIN CERTIFICATE") == 2  # the old one stays until it is deleted


def test_delete_action_spares_what_is_in_use(sandbox, estate, tmp_path):
    policy = {"name": "delete", "resource": "aws.apigw-client-certificate",
              "filters": [{"type": "expiring", "days": 30}], "actions": [{"type": "delete"}]}
    _, proc = custodian_run(sandbox, tmp_path, policy)
    certs = certificates()
    assert estate["unused"] not in certs and estate["old"] in certs
    assert "client-certificate:%s is used by" % estate["old"] in proc.stderr


@pytest.mark.parametrize("action,words", [
    ({"publish": [{"type": "ftp", "name": "x"}]}, ["ftp"]),
    ({"publish": [{"type": "s3", "key": "k"}]}, ["bucket"]),
    ({"publish": [{"type": "ssm", "name": "/x/{api}"}]}, ["api", "unknown template field"]),
    ({"switch-after-days": -1}, ["switch-after-days", "-1"]),
    ({"delete-after-days": -2}, ["delete-after-days"]),
    ({"description": "{stage_name}"}, ["stage_name"]),
    ({"publish": []}, ["publish"]),
])
def test_validate_rejects(tmp_path, action, words):
    policy = rotate_policy()
    policy["actions"][0].update(action)
    path = write_policy(tmp_path, policy)
    proc = run_cli("custodian", ["validate", path], {"PATH": "/usr/bin:/bin"}, check=False)
    assert proc.returncode != 0
    for word in words:
        assert word in proc.stderr + proc.stdout


def test_switch_after_days_is_required(tmp_path):
    policy = rotate_policy()
    del policy["actions"][0]["switch-after-days"]
    proc = run_cli("custodian", ["validate", write_policy(tmp_path, policy)],
                   {"PATH": "/usr/bin:/bin"}, check=False)
    assert proc.returncode != 0 and "switch-after-days" in proc.stderr + proc.stdout


def test_quota_makes_room_by_retiring_first(sandbox, tmp_path):
    """Rotating more certificates than the quota leaves room for: the run retires the ones
    already switched before generating more, so one run still completes them all."""
    client("s3").create_bucket(Bucket=BUCKET)
    olds = [make_cert(sandbox, 10, description="old-%d" % i) for i in range(3)]
    stages = {"old": None, "rest": [], "ws": []}
    for i, old in enumerate(olds):
        stages["rest"].append((make_rest_stage(old, "api-%d" % i), "prod"))
    sandbox.switches(quota=4)  # room for one successor at a time
    custodian_run(sandbox, tmp_path, rotate_policy(switch=0, delete=0))
    certs = certificates()
    assert len(certs) == 3 and not set(olds) & set(certs)
    records = action_records(tmp_path)
    assert all(records[o]["deleted"] is True for o in olds)
    for old in olds:
        stages["old"] = old
        check_invariants(sandbox, stages)


def test_stage_added_after_publication_is_trusted_before_it_switches(sandbox, estate, tmp_path):
    policy = rotate_policy(switch=3, delete=7)
    custodian_run(sandbox, tmp_path, policy)  # day 0: publish for the four stages
    late_api = make_rest_stage(estate["old"], "late", "prod")
    estate["rest"].append((late_api, "prod"))
    assert published(late_api, "prod") is None

    sandbox.advance(days=3)
    custodian_run(sandbox, tmp_path, policy, days=3)  # day 3: the others switch, it waits
    certs, stages = check_invariants(sandbox, estate)
    new = successor_of(certs, estate["old"])
    assert stages[(late_api, "prod")] == estate["old"]
    assert sum(1 for c in stages.values() if c == new) == 4
    assert published(late_api, "prod") is not None
    record = action_records(tmp_path)[estate["old"]]
    assert record["late"] == ["stage:%s/prod" % late_api]
    assert record["waiting"].startswith("switch at ")  # the late stage's own gate

    sandbox.advance(days=3)
    custodian_run(sandbox, tmp_path, policy, days=6)  # day 6: its own 3 days have passed
    assert check_invariants(sandbox, estate)[1][(late_api, "prod")] == new

    sandbox.advance(days=7)
    custodian_run(sandbox, tmp_path, policy, days=13)
    assert_complete(sandbox, estate)


def test_shared_bundle_keeps_trusting_other_certificates(sandbox, estate, tmp_path):
    """A name without stage fields is one bundle for every stage of the region: rotating one
    certificate must not drop the others that stages present."""
    name = "/apigw/{region}/trust"
    publish = [{"type": "ssm", "name": name}]
    policy = rotate_policy(switch=3, delete=7, publish=publish)
    pems = {c: v["pemEncodedCertificate"].strip() for c, v in certificates().items()}

    def shared():
        return client("ssm").get_parameter(Name="/apigw/us-east-1/trust")["Parameter"]["Value"]

    custodian_run(sandbox, tmp_path, policy)
    new = successor_of(certificates(), estate["old"])
    new_pem = certificates()[new]["pemEncodedCertificate"].strip()
    assert new_pem in shared() and pems[estate["old"]] in shared()
    assert pems[estate["healthy"]] in shared()  # stage c/prod presents it: still trusted
    assert pems[estate["unused"]] not in shared()  # no stage presents it

    sandbox.advance(days=3)
    custodian_run(sandbox, tmp_path, policy, days=3)
    sandbox.advance(days=7)
    custodian_run(sandbox, tmp_path, policy, days=10)
    assert estate["old"] not in certificates()
    assert shared().count("BEGIN CERTIFICATE") == 2
    assert new_pem in shared() and pems[estate["healthy"]] in shared()


def test_successor_is_rotated_in_turn_a_year_later(sandbox, estate, tmp_path):
    """Without delete-after-days the old certificate stays; its successor must still be
    rotated before it expires."""
    policy = rotate_policy(switch=0, delete=None)
    custodian_run(sandbox, tmp_path, policy)
    first = successor_of(certificates(), estate["old"])
    sandbox.advance(days=360)
    custodian_run(sandbox, tmp_path, policy, days=360)
    records = action_records(tmp_path)
    assert records[estate["old"]] == {"successor": first, "steps": ["done"]}  # nothing to do
    certs, stages = check_invariants(sandbox, estate)
    assert estate["old"] in certs  # never deleted without delete-after-days
    second = successor_of(certs, first)
    assert set(stages.values()) == {second}


def test_a_tag_that_is_not_a_time_stops_only_that_certificate(sandbox, estate, tmp_path):
    custodian_run(sandbox, tmp_path, rotate_policy(switch=3, delete=7))
    arn = "arn:aws:apigateway:us-east-1::/clientcertificates/%s" % estate["old"]
    client("apigateway").tag_resource(resourceArn=arn,
                                      tags={"c7n:rotation:published-at": "soon"})
    sandbox.advance(days=3)
    _, proc = custodian_run(sandbox, tmp_path, rotate_policy(switch=3, delete=7), check=False,
                            days=3)
    assert proc.returncode != 0 and "not a time" in proc.stderr
    assert set(check_invariants(sandbox, estate)[1].values()) == {estate["old"]}


def test_the_shipped_rotate_policy_under_its_generated_iam(sandbox, tmp_path):
    """policies/rotate.yml as shipped, staged over ten days, run as a role that has nothing but
    what ``c7n-apigw-certs iam policies/rotate.yml`` prints."""
    import pathlib

    from conftest import assume_role_allowed
    from test_iam import generated
    path = str(pathlib.Path(__file__).resolve().parents[1] / "policies" / "rotate.yml")
    client("s3").create_bucket(Bucket="my-trust-bundles")
    old = make_cert(sandbox, 20, description="shipped", tags={"team": "payments"})
    api = make_rest_stage(old, "shipped", "prod")
    ws = make_websocket_stage(old, "shipped-ws", "live")
    role = ["--assume", assume_role_allowed(generated(path))]
    custodian_run(sandbox, tmp_path, path, extra=role)
    (new,) = [c for c, v in certificates().items() if v.get("tags", {}).get(PREDECESSOR) == old]
    sandbox.advance(days=3)
    custodian_run(sandbox, tmp_path, path, extra=role, days=3)
    assert client("apigateway").get_stage(restApiId=api, stageName="prod")[
        "clientCertificateId"] == new
    assert client("apigatewayv2").get_stage(ApiId=ws, StageName="live")[
        "ClientCertificateId"] == new
    assert old in certificates()
    sandbox.advance(days=7)
    custodian_run(sandbox, tmp_path, path, extra=role, days=10)
    assert old not in certificates() and new in certificates()
    pem = certificates()[new]["pemEncodedCertificate"].strip() + "\n"
    assert client("ssm").get_parameter(Name="/apigw/client-certs/%s/prod" % api)[
        "Parameter"]["Value"] == pem
    assert client("s3").get_object(Bucket="my-trust-bundles", Key="apigw/%s/live.pem" % ws)[
        "Body"].read().decode() == pem
    assert not [r for r in sandbox.counters() if r["outcome"] == "denied"]

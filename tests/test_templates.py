"""Stages and certificates that a template owns, through the real ``custodian``: rotate hands
the switch over instead of fighting the template, never deletes what a template owns, notices
a template that puts the old certificate back, and the ``template-owned`` filter finds them.

CloudFormation's tags are set here exactly as CloudFormation sets them (the sandbox's tag
control, which alone may write ``aws:`` keys); tests/test_templates_stacks.py deploys real
stacks where the sandbox's CloudFormation can."""
import json

import pytest

from conftest import (
    REGION, client, custodian_run, make_cert, make_rest_stage, make_websocket_stage)

PREDECESSOR = "c7n:rotation:predecessor"
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/orders/6a1b2c3d"
PUBLISH = [{"type": "ssm", "name": "/trust/{api_id}/{stage_name}"}]


def arn(path):
    return "arn:aws:apigateway:%s::%s" % (REGION, path)


def stack_tags(logical_id, stack="orders"):
    return {"aws:cloudformation:stack-name": stack,
            "aws:cloudformation:logical-id": logical_id,
            "aws:cloudformation:stack-id": STACK_ID.replace("orders", stack)}


def rotate(switch=0, delete=0, **extra):
    action = dict({"type": "rotate", "publish": PUBLISH, "switch-after-days": switch}, **extra)
    if delete is not None:
        action["delete-after-days"] = delete
    return {"name": "rotate", "resource": "aws.apigw-client-certificate",
            "filters": [{"type": "expiring", "days": 30}], "actions": [action]}


def certificates():
    return {c["clientCertificateId"]: c
            for c in client("apigateway").get_client_certificates(limit=500)["items"]}


def successor_of(old):
    found = [c for c, v in certificates().items() if v.get("tags", {}).get(PREDECESSOR) == old]
    assert len(found) == 1, found
    return found[0]


def rest_certificate(api, stage="prod"):
    return client("apigateway").get_stage(restApiId=api, stageName=stage).get(
        "clientCertificateId")


def switch_stage(api, cert_id, stage="prod"):
    """What the template's owner does: the stack (or terraform apply) sets the new id."""
    client("apigateway").update_stage(restApiId=api, stageName=stage, patchOperations=[
        {"op": "replace", "path": "/clientCertificateId", "value": cert_id}])


def handover(tmp_path):
    return json.loads((tmp_path / "out" / "rotate" / "handover.json").read_text())


def record(tmp_path, cert_id):
    data = json.loads((tmp_path / "out" / "rotate" / "action-rotate").read_text())
    return {r["clientCertificateId"]: r["c7n:rotation"] for r in data}[cert_id]


def trusted(api, stage="prod"):
    return client("ssm").get_parameter(Name="/trust/%s/%s" % (api, stage))["Parameter"]["Value"]


@pytest.fixture
def owned(sandbox):
    """An expiring certificate on a stage that stack ``orders`` owns (tags on the stage and
    its API, as CloudFormation sets them), and on a stage nobody owns."""
    old = make_cert(sandbox, 20, description="orders")
    api = make_rest_stage(old, "orders-api", "prod")
    sandbox.tag(arn("/restapis/%s" % api), stack_tags("OrdersApi"))
    sandbox.tag(arn("/restapis/%s/stages/prod" % api), stack_tags("ProdStage"))
    free = make_rest_stage(old, "free-api", "prod")
    return {"old": old, "api": api, "free": free}


def test_a_stack_owned_stage_is_handed_over_not_switched(sandbox, owned, tmp_path):
    _, proc = custodian_run(sandbox, tmp_path, rotate())
    new = successor_of(owned["old"])
    assert rest_certificate(owned["api"]) == owned["old"]  # not switched behind the stack
    assert rest_certificate(owned["free"]) == new          # nobody owns this one
    pem = certificates()[new]["pemEncodedCertificate"].strip()
    assert pem in trusted(owned["api"])  # trust published: its owner can switch safely
    (entry,) = handover(tmp_path)
    assert entry["stage"] == "stage:%s/prod" % owned["api"]
    assert entry["owner"] == {"tool": "cloudformation", "stack": "orders",
                              "logical-id": "ProdStage"}
    assert entry["action"].startswith("set ClientCertificateId to %s" % new)
    line = "hand-over: stage:%s/prod, stack orders (logical id ProdStage)" % owned["api"]
    assert line in proc.stderr
    assert owned["old"] in certificates()  # still presented by the owned stage
    assert record(tmp_path, owned["old"])["handed-over"] == ["stage:%s/prod" % owned["api"]]

    # The owner updates the stack: the next run sees the stage on the successor and retires.
    sandbox.advance(days=1)
    switch_stage(owned["api"], new)
    custodian_run(sandbox, tmp_path, rotate(), days=1)
    assert owned["old"] not in certificates()
    assert trusted(owned["api"]) == pem + "\n"
    assert handover(tmp_path) == []


def test_the_delete_window_restarts_when_the_owner_switches(sandbox, owned, tmp_path):
    """delete-after-days counts from the owner's switch, not from ours: the backends of the
    handed-over stage get their days too."""
    custodian_run(sandbox, tmp_path, rotate(delete=7))
    new = successor_of(owned["old"])
    sandbox.advance(days=10)
    switch_stage(owned["api"], new)
    custodian_run(sandbox, tmp_path, rotate(delete=7), days=10)
    assert owned["old"] in certificates()
    assert record(tmp_path, owned["old"])["waiting"].startswith("delete at ")
    sandbox.advance(days=7)
    custodian_run(sandbox, tmp_path, rotate(delete=7), days=17)
    assert owned["old"] not in certificates()


def test_switch_owned_switches_them_anyway(sandbox, owned, tmp_path):
    custodian_run(sandbox, tmp_path, rotate(**{"switch-owned": True}))
    new = successor_of(owned["old"])
    assert rest_certificate(owned["api"]) == new and rest_certificate(owned["free"]) == new
    assert owned["old"] not in certificates()
    assert handover(tmp_path) == []


def test_a_certificate_a_stack_owns_is_never_deleted(sandbox, tmp_path):
    """Its successor still takes over every stage; the old one is left to the stack, with
    the hand-over saying so; the delete action leaves it alone too."""
    old = make_cert(sandbox, 10, description="stack-made")
    sandbox.tag(arn("/clientcertificates/%s" % old), stack_tags("ClientCert"))
    api = make_rest_stage(old, "api", "prod")
    custodian_run(sandbox, tmp_path, rotate())
    new = successor_of(old)
    assert rest_certificate(api) == new
    assert old in certificates()
    # The successor carries the old one's tags except aws: keys, which API Gateway refuses.
    assert not [k for k in certificates()[new].get("tags", {}) if k.startswith("aws:")]
    (entry,) = handover(tmp_path)
    assert entry["kind"] == "certificate" and "never deletes it" in entry["action"]
    assert "owned by stack orders" in record(tmp_path, old)["not-deleted"]

    delete = {"name": "delete", "resource": "aws.apigw-client-certificate",
              "filters": [{"type": "in-use", "state": False}], "actions": [{"type": "delete"}]}
    _, proc = custodian_run(sandbox, tmp_path, delete)
    assert old in certificates()
    assert "owned by stack orders (logical id ClientCert): remove it from the template" in \
        proc.stderr


def test_terraform_tags_named_by_the_policy(sandbox, tmp_path):
    """Terraform leaves no mark of its own: with its default tag named in owner-tags, its stage
    is handed over; without, nothing tells, and the stage is switched."""
    old = make_cert(sandbox, 10, description="tf")
    api = make_rest_stage(old, "tf-api", "prod")
    sandbox.tag(arn("/restapis/%s" % api), {"ManagedBy": "terraform"})
    custodian_run(sandbox, tmp_path, rotate(**{"owner-tags": {"ManagedBy": "terraform"}}))
    (entry,) = handover(tmp_path)
    assert entry["owner"] == {"tool": "tag", "tag": "ManagedBy=terraform", "via": "api"}
    assert "client_certificate_id" in entry["action"]
    assert rest_certificate(api) == old
    custodian_run(sandbox, tmp_path, rotate(**{"owner-tags": {"Other": None}}))
    assert rest_certificate(api) == successor_of(old)


def test_websocket_stage_owned_by_a_stack(sandbox, tmp_path):
    old = make_cert(sandbox, 10, description="ws")
    ws = make_websocket_stage(old, "live", "production")
    sandbox.tag(arn("/apis/%s/stages/production" % ws), stack_tags("LiveStage", "live"))
    custodian_run(sandbox, tmp_path, rotate())
    (entry,) = handover(tmp_path)
    assert entry["protocol"] == "WEBSOCKET" and "AWS::ApiGatewayV2::Stage" in entry["action"]
    assert client("apigatewayv2").get_stage(ApiId=ws, StageName="production")[
        "ClientCertificateId"] == old


def test_a_template_that_reverts_the_switch_is_noticed(sandbox, tmp_path):
    """No tag tells who owns the stage, so it is switched; its template then puts the old
    certificate back. The next run does not fight it: it reports the revert with the stage,
    keeps both certificates trusted, and does not delete the old one."""
    old = make_cert(sandbox, 10, description="reverted")
    api = make_rest_stage(old, "api", "prod")
    custodian_run(sandbox, tmp_path, rotate(switch=0, delete=7))
    new = successor_of(old)
    assert rest_certificate(api) == new
    sandbox.advance(days=2)
    switch_stage(api, old)  # terraform apply: the configuration still names the old one
    sandbox.advance(days=8)
    _, proc = custodian_run(sandbox, tmp_path, rotate(switch=0, delete=7), days=10, check=False)
    assert proc.returncode != 0  # reported as a failure: a pipeline must see it
    assert "moved back to client-certificate:%s" % old in proc.stderr
    assert rest_certificate(api) == old  # not switched again
    assert old in certificates()
    text = trusted(api)
    for cert_id in (old, new):
        assert certificates()[cert_id]["pemEncodedCertificate"].strip() in text
    rec = record(tmp_path, old)
    assert rec["reverted"] == ["stage:%s/prod" % api]
    (entry,) = handover(tmp_path)
    assert "moved back to the old certificate" in entry["reason"]
    assert "moved back" in proc.stderr


def test_a_stage_the_template_adds_later_does_not_reset_the_others(sandbox, owned, tmp_path):
    """Day 0 publishes; day 3 the free stage switches and the owned one is handed over; on day
    4 the template adds a stage on the old certificate: it gets its trust, with its own date,
    and the hand-over of the first stage still says day 3."""
    custodian_run(sandbox, tmp_path, rotate(switch=3, delete=None))
    new = successor_of(owned["old"])
    sandbox.advance(days=3)
    custodian_run(sandbox, tmp_path, rotate(switch=3, delete=None), days=3)
    assert rest_certificate(owned["free"]) == new
    first = handover(tmp_path)[0]["not-before"]
    sandbox.advance(days=1)
    late = make_rest_stage(owned["old"], "late-api", "prod")
    sandbox.tag(arn("/restapis/%s" % late), stack_tags("LateApi"))
    custodian_run(sandbox, tmp_path, rotate(switch=3, delete=None), days=4)
    entries = {e["stage"]: e for e in handover(tmp_path)}
    assert entries["stage:%s/prod" % owned["api"]]["not-before"] == first
    assert entries["stage:%s/prod" % late]["not-before"] > first
    pem = certificates()[new]["pemEncodedCertificate"].strip()
    assert pem in trusted(late)


def test_a_hand_over_nobody_acted_on_fails_the_run_before_expiry(sandbox, tmp_path):
    """Seven days before the old certificate expires, stages still left to their owner make
    the run fail (they stay as they are): an unattended hand-over must not go unnoticed."""
    old = make_cert(sandbox, 12, description="soon")
    api = make_rest_stage(old, "api", "prod")
    sandbox.tag(arn("/restapis/%s/stages/prod" % api), stack_tags("ProdStage"))
    custodian_run(sandbox, tmp_path, rotate())  # 12 days left: handed over, no alarm
    sandbox.advance(days=6)
    _, proc = custodian_run(sandbox, tmp_path, rotate(), days=6, check=False)
    assert proc.returncode != 0
    assert "1 stage(s) left to their owner still use client-certificate:%s" % old in proc.stderr
    assert rest_certificate(api) == old and len(handover(tmp_path)) == 1


def test_template_owned_filter(sandbox, owned, tmp_path):
    plain = make_cert(sandbox, 10, description="plain")
    make_rest_stage(plain, "plain-api", "prod")
    policy = {"name": "owned", "resource": "aws.apigw-client-certificate",
              "filters": [{"type": "template-owned"}]}
    found, _ = custodian_run(sandbox, tmp_path, policy)
    (cert,) = found[REGION]
    assert cert["clientCertificateId"] == owned["old"] and cert["c7n:owner"] is None
    by_api = {s["apiId"]: s["owner"] for s in cert["c7n:stages"]}
    assert by_api[owned["api"]]["stack"] == "orders" and by_api[owned["free"]] is None
    policy["filters"][0]["state"] = False
    found, _ = custodian_run(sandbox, tmp_path, policy)
    assert [c["clientCertificateId"] for c in found[REGION]] == [plain]


def test_the_shipped_templates_policy(sandbox, tmp_path):
    """policies/templates.yml as shipped: a stack's stage and a Terraform-tagged stage are
    handed over, a stage nobody owns is switched; the report policy finds the owned ones."""
    import pathlib
    path = str(pathlib.Path(__file__).resolve().parents[1] / "policies" / "templates.yml")
    client("s3").create_bucket(Bucket="my-trust-bundles")
    old = make_cert(sandbox, 20, description="shared")
    stack_api = make_rest_stage(old, "stack-api", "prod")
    sandbox.tag(arn("/restapis/%s/stages/prod" % stack_api), stack_tags("ProdStage"))
    tf_api = make_rest_stage(old, "tf-api", "prod")
    sandbox.tag(arn("/restapis/%s" % tf_api), {"ManagedBy": "terraform"})
    free = make_rest_stage(old, "free-api", "prod")
    plain = make_cert(sandbox, 20, description="plain")
    make_rest_stage(plain, "plain-api", "prod")
    custodian_run(sandbox, tmp_path, path)
    sandbox.advance(days=3)
    custodian_run(sandbox, tmp_path, path, days=3)
    new = successor_of(old)
    assert rest_certificate(free) == new
    assert rest_certificate(stack_api) == old and rest_certificate(tf_api) == old
    out = tmp_path / "out" / "apigw-client-certificates-rotate-templated" / "handover.json"
    owners = {e["stage"]: e["owner"] for e in json.loads(out.read_text())}
    assert owners["stage:%s/prod" % stack_api]["stack"] == "orders"
    assert owners["stage:%s/prod" % tf_api]["tag"] == "ManagedBy=terraform"
    assert len(owners) == 2
    key = "apigw/123456789012/us-east-1/%s/prod.pem" % stack_api
    text = client("s3").get_object(Bucket="my-trust-bundles", Key=key)["Body"].read().decode()
    assert certificates()[new]["pemEncodedCertificate"].strip() in text
    report = tmp_path / "out" / "apigw-client-certificates-owned-by-templates"
    reported = {c["clientCertificateId"] for c in json.loads(
        (report / "resources.json").read_text())}
    assert old in reported and plain not in reported


def test_with_redeploy_the_owner_is_told_to_deploy_and_nothing_of_theirs_is(sandbox, owned,
                                                                             tmp_path):
    """redeploy: true deploys the stages this action switched, never a template's: its owner is
    told to deploy it too."""
    from conftest import api_calls
    sandbox.reset_counters()
    custodian_run(sandbox, tmp_path, rotate(redeploy=True))
    (entry,) = handover(tmp_path)
    assert entry["action"].endswith(", and deploy the stage")
    assert api_calls(sandbox).get("CreateDeployment") == 1  # the free stage only

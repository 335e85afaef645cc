"""A whole rotation of stages that real CloudFormation stacks own, in the sandbox (whose
CloudFormation deploys AWS::ApiGateway::RestApi, Stage and ClientCertificate and tags them as
CloudFormation does): the hand-over is written and nothing is switched; the owner updates the
stack to the successor; the next run retires the old certificate only if the stack does not own
it. And a stack update that puts the old certificate back is noticed, not fought."""
import json

from c7n_apigw_certs.sandbox.cloudformation import rest_api_template
from conftest import api_calls, client, custodian_run, make_cert

PREDECESSOR = "c7n:rotation:predecessor"
PUBLISH = [{"type": "ssm", "name": "/trust/{api_id}/{stage_name}"}]


def rotate(**extra):
    return {"name": "rotate", "resource": "aws.apigw-client-certificate",
            "filters": [{"type": "expiring", "days": 30}],
            "actions": [dict({"type": "rotate", "publish": PUBLISH, "switch-after-days": 0,
                              "delete-after-days": 0}, **extra)]}


def certificates():
    return {c["clientCertificateId"]: c
            for c in client("apigateway").get_client_certificates(limit=500)["items"]}


def successor_of(old):
    (new,) = [c for c, v in certificates().items() if v.get("tags", {}).get(PREDECESSOR) == old]
    return new


def deploy(name, template, parameters=None, update=False):
    cfn = client("cloudformation")
    call = cfn.update_stack if update else cfn.create_stack
    call(StackName=name, TemplateBody=json.dumps(template), Parameters=[
        {"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()])
    resources = cfn.describe_stack_resources(StackName=name)["StackResources"]
    return {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in resources}


def stage_certificate(api):
    return client("apigateway").get_stage(restApiId=api, stageName="prod").get(
        "clientCertificateId")


def handover(tmp_path):
    return json.loads((tmp_path / "out" / "rotate" / "handover.json").read_text())


def record(tmp_path, cert_id):
    data = json.loads((tmp_path / "out" / "rotate" / "action-rotate").read_text())
    return {r["clientCertificateId"]: r["c7n:rotation"] for r in data}.get(cert_id)


def test_stack_owned_stage_on_a_certificate_outside_the_stack(sandbox, tmp_path):
    old = make_cert(sandbox, 20, description="outside the stack")
    ids = deploy("orders", rest_api_template("orders", certificate=old))
    api = ids["RestApi"]
    assert stage_certificate(api) == old

    custodian_run(sandbox, tmp_path, rotate())
    new = successor_of(old)
    assert stage_certificate(api) == old  # not switched behind the stack
    (entry,) = handover(tmp_path)
    assert entry["owner"] == {"tool": "cloudformation", "stack": "orders", "logical-id": "Stage"}
    assert entry["action"].startswith("set ClientCertificateId to %s" % new)
    pem = certificates()[new]["pemEncodedCertificate"].strip()
    assert pem in client("ssm").get_parameter(Name="/trust/%s/prod" % api)["Parameter"]["Value"]

    # The owner does what the hand-over says: the stack's parameter becomes the successor.
    deploy("orders", rest_api_template("orders", certificate=old),
           {"ClientCertificateId": new}, update=True)
    assert stage_certificate(api) == new
    custodian_run(sandbox, tmp_path, rotate())
    assert old not in certificates()  # the stack never owned it: retired as usual
    assert handover(tmp_path) == []


def test_a_certificate_the_stack_owns_is_left_to_the_stack(sandbox, tmp_path):
    ids = deploy("edge", rest_api_template("edge", certificate="own"))
    api, old = ids["RestApi"], ids["ClientCertificate"]
    sandbox.advance(days=350)  # the stack's certificate, made now, expires in 15 days
    custodian_run(sandbox, tmp_path, rotate(), days=350)
    new = successor_of(old)
    entries = {e["kind"]: e for e in handover(tmp_path)}
    assert entries["stage"]["owner"]["logical-id"] == "Stage"
    assert entries["certificate"]["owner"]["logical-id"] == "ClientCertificate"
    assert not [k for k in certificates()[new].get("tags", {}) if k.startswith("aws:")]

    # The owner keeps the certificate resource in the template but points the stage at the
    # successor: the stack still owns the old one, so the plugin does not delete it.
    template = rest_api_template("edge", certificate="own")
    template["Resources"]["Stage"]["Properties"]["ClientCertificateId"] = new
    deploy("edge", template, update=True)
    assert stage_certificate(api) == new
    custodian_run(sandbox, tmp_path, rotate(), days=350)
    assert old in certificates()
    assert "owned by stack edge" in record(tmp_path, old)["not-deleted"]
    assert api_calls(sandbox).get("DeleteClientCertificate", 0) == 0

    # Then the owner removes it from the template: CloudFormation deletes it, not the plugin.
    deploy("edge", rest_api_template("edge", certificate=new), update=True)
    assert old not in certificates() and stage_certificate(api) == new
    assert api_calls(sandbox).get("DeleteClientCertificate", 0) == 0


def test_a_stack_update_that_puts_the_old_certificate_back(sandbox, tmp_path):
    """switch-owned: the team accepted the drift; the next stack update touching the stage
    puts the template's certificate back. The next run reports it (and fails), does not switch
    again, keeps both certificates trusted, and deletes nothing."""
    old = make_cert(sandbox, 20, description="drifted")
    ids = deploy("drift", rest_api_template("drift", certificate=old))
    api = ids["RestApi"]
    policy = rotate(**{"switch-owned": True, "delete-after-days": 7})
    custodian_run(sandbox, tmp_path, policy)
    new = successor_of(old)
    assert stage_certificate(api) == new
    deploy("drift", rest_api_template("drift", certificate=old, stage_description="v2"),
           update=True)
    assert stage_certificate(api) == old  # CloudFormation applied the template again
    sandbox.advance(days=8)
    _, proc = custodian_run(sandbox, tmp_path, policy, days=8, check=False)
    assert proc.returncode != 0 and "moved back" in proc.stderr
    assert stage_certificate(api) == old and old in certificates()
    text = client("ssm").get_parameter(Name="/trust/%s/prod" % api)["Parameter"]["Value"]
    for cert_id in (old, new):
        assert certificates()[cert_id]["pemEncodedCertificate"].strip() in text
    assert record(tmp_path, old)["reverted"] == ["stage:%s/prod" % api]

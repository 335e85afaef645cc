"""Stacks that own REST and WebSocket APIs, stages and client certificates (sandbox/
cloudformation.py): what CloudFormation creates, tags (fact 29), updates and deletes, and the
marks Terraform leaves (fact 30)."""
import json

import boto3
import pytest
from moto import mock_aws

from c7n_apigw_certs import sandbox as sandbox_package
from c7n_apigw_certs.sandbox.cloudformation import (
    rest_api_template, tag_as_stack, websocket_api_template)
from c7n_apigw_certs.sandbox.controls import CONTROLS
from c7n_apigw_certs.sandbox.remote import stack_tags
from conftest import (
    ACCOUNT, NO_RETRY, REGION, client, make_cert, make_rest_stage, make_websocket_stage)

APIGW = "arn:aws:apigateway:%s::" % REGION


def create_stack(name, template, **kw):
    cfn = client("cloudformation")
    stack_id = cfn.create_stack(StackName=name, TemplateBody=json.dumps(template), **kw)["StackId"]
    assert status(name) == "CREATE_COMPLETE"
    return stack_id


def update_stack(name, template=None, **kw):
    body = {"TemplateBody": json.dumps(template)} if template else {"UsePreviousTemplate": True}
    client("cloudformation").update_stack(StackName=name, **body, **kw)
    assert status(name) == "UPDATE_COMPLETE"


def status(name):
    return client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]


def resources(name):
    """{logical id: physical id} of a stack."""
    listed = client("cloudformation").describe_stack_resources(StackName=name)
    return {r["LogicalResourceId"]: r.get("PhysicalResourceId")
            for r in listed["StackResources"]}


def certificate_ids():
    listed = client("apigateway").get_client_certificates()["items"]
    return {c["clientCertificateId"] for c in listed}


def stage_certificate(api_id, stage="prod"):
    return client("apigateway").get_stage(restApiId=api_id, stageName=stage).get(
        "clientCertificateId")


def switch_outside(api_id, cert_id, stage="prod"):
    client("apigateway").update_stage(restApiId=api_id, stageName=stage, patchOperations=[
        {"op": "replace", "path": "/clientCertificateId", "value": cert_id}])


def test_a_stack_makes_its_api_stage_and_certificate(sandbox):
    create_stack("edge", rest_api_template("orders"))
    made = resources("edge")
    assert set(made) == {"RestApi", "RootGet", "Deployment", "Stage", "ClientCertificate"}
    assert certificate_ids() == {made["ClientCertificate"]}
    assert stage_certificate(made["RestApi"]) == made["ClientCertificate"]
    stage = client("apigateway").get_stages(restApiId=made["RestApi"])["item"]
    assert [(s["stageName"], s["deploymentId"]) for s in stage] == [("prod", made["Deployment"])]
    integration = client("apigateway").get_integration(
        restApiId=made["RestApi"], resourceId=client("apigateway").get_resources(
            restApiId=made["RestApi"])["items"][0]["id"], httpMethod="GET")
    assert integration["type"] == "HTTP_PROXY"  # the certificate is presented to it (fact 9)
    assert sandbox.presented(ACCOUNT, REGION, made["RestApi"], "prod") == {
        "configured": made["ClientCertificate"], "presented": made["ClientCertificate"]}


def test_what_a_stack_makes_carries_cloudformations_tags(sandbox):
    stack_id = create_stack("edge", rest_api_template("orders", tags={"team": "payments"}),
                            Tags=[{"Key": "cost-centre", "Value": "42"}])
    made = resources("edge")
    apigw = client("apigateway")

    def expected(logical_id, **own):
        return dict({"aws:cloudformation:stack-name": "edge",
                     "aws:cloudformation:logical-id": logical_id,
                     "aws:cloudformation:stack-id": stack_id, "cost-centre": "42"}, **own)
    assert apigw.get_rest_apis()["items"][0]["tags"] == expected("RestApi", team="payments")
    assert apigw.get_stages(restApiId=made["RestApi"])["item"][0]["tags"] == \
        expected("Stage", team="payments")
    assert apigw.get_client_certificates()["items"][0]["tags"] == expected("ClientCertificate")
    assert stack_tags(stack_id, "Stage") == {k: v for k, v in expected("Stage").items()
                                             if k.startswith("aws:")}
    # Callers still cannot touch them (fact 35), nor put one through a template.
    with pytest.raises(apigw.exceptions.BadRequestException):
        apigw.tag_resource(resourceArn=APIGW + "/restapis/" + made["RestApi"],
                           tags={"aws:cloudformation:stack-name": "other"})
    client("cloudformation").create_stack(StackName="sneaky", TemplateBody=json.dumps(
        rest_api_template("sneaky", tags={"aws:owner": "me"})))
    assert status("sneaky") == "ROLLBACK_COMPLETE"
    assert [a["name"] for a in apigw.get_rest_apis()["items"]] == ["orders"]


def test_a_parameter_moves_the_stage_to_another_certificate(sandbox):
    first, second = make_cert(sandbox, 100), make_cert(sandbox, 300)
    create_stack("edge", rest_api_template("orders", certificate=first))
    api_id = resources("edge")["RestApi"]
    assert stage_certificate(api_id) == first
    update_stack("edge", Parameters=[{"ParameterKey": "ClientCertificateId",
                                      "ParameterValue": second}])
    assert stage_certificate(api_id) == second
    assert certificate_ids() == {first, second}  # the stack owns neither


def test_a_stage_switched_outside_goes_back_when_an_update_touches_it(sandbox):
    """fact 29: the next update that touches the stage applies the template's value again;
    an update that leaves the stage alone leaves the switch alone."""
    create_stack("edge", rest_api_template("orders"))
    made = resources("edge")
    outside = make_cert(sandbox, 300)
    switch_outside(made["RestApi"], outside)
    update_stack("edge", rest_api_template("orders", certificate_description="renamed"))
    assert stage_certificate(made["RestApi"]) == outside  # the stage was not touched
    update_stack("edge", rest_api_template("orders", certificate_description="renamed",
                                           stage_description="touched"))
    assert stage_certificate(made["RestApi"]) == made["ClientCertificate"]
    assert client("apigateway").get_client_certificate(
        clientCertificateId=made["ClientCertificate"])["description"] == "renamed"


def test_change_sets_as_cdk_deploys(sandbox):
    """``cdk deploy`` creates and executes change sets: the same resources, tags and updates."""
    cfn = client("cloudformation")
    made = cfn.create_change_set(StackName="cdk", ChangeSetName="one", ChangeSetType="CREATE",
                                 TemplateBody=json.dumps(rest_api_template("orders")))
    cfn.execute_change_set(ChangeSetName=made["Id"])
    assert status("cdk") == "CREATE_COMPLETE"
    own = resources("cdk")
    assert client("apigateway").get_client_certificates()["items"][0]["tags"] == \
        stack_tags(made["StackId"], "ClientCertificate")
    successor = make_cert(sandbox, 365)
    change = cfn.create_change_set(
        StackName="cdk", ChangeSetName="two", ChangeSetType="UPDATE",
        TemplateBody=json.dumps(rest_api_template("orders", certificate=successor)))
    planned = cfn.describe_change_set(ChangeSetName=change["Id"])["Changes"]
    assert sorted((c["ResourceChange"]["Action"], c["ResourceChange"]["LogicalResourceId"])
                  for c in planned) == [("Modify", "Stage"), ("Remove", "ClientCertificate")]
    cfn.execute_change_set(ChangeSetName=change["Id"])
    assert stage_certificate(own["RestApi"]) == successor
    assert certificate_ids() == {successor}


def test_a_renamed_stage_is_replaced(sandbox):
    """``StageName`` needs a new stage: made with the template's certificate and tags, the old
    one deleted."""
    stack_id = create_stack("edge", rest_api_template("orders"))
    made = resources("edge")
    update_stack("edge", rest_api_template("orders", stage_name="v2"))
    stages = client("apigateway").get_stages(restApiId=made["RestApi"])["item"]
    assert [s["stageName"] for s in stages] == ["v2"]
    assert stages[0]["clientCertificateId"] == made["ClientCertificate"]
    assert stages[0]["tags"] == stack_tags(stack_id, "Stage")
    assert resources("edge")["Stage"] == "v2"


def test_a_changed_backend_updates_the_integration(sandbox):
    """The method is put again; the stage still refers to the stack's deployment."""
    create_stack("edge", rest_api_template("orders"))
    made = resources("edge")
    update_stack("edge", rest_api_template("orders", backend_url="https://new.example.com/"))
    apigw = client("apigateway")
    root = apigw.get_resources(restApiId=made["RestApi"])["items"][0]["id"]
    assert apigw.get_integration(restApiId=made["RestApi"], resourceId=root,
                                 httpMethod="GET")["uri"] == "https://new.example.com/"
    update_stack("edge", rest_api_template("orders", backend_url="https://new.example.com/",
                                           stage_description="touched"))
    assert resources("edge")["Deployment"] == made["Deployment"]
    assert apigw.get_stage(restApiId=made["RestApi"], stageName="prod")["deploymentId"] == \
        made["Deployment"]


def test_a_stack_update_follows_needs_deployment(sandbox):
    """What the stage presents after a stack moves it follows the switch (fact 11)."""
    first, second = make_cert(sandbox, 100), make_cert(sandbox, 300)
    create_stack("edge", rest_api_template("orders", certificate=first))
    api_id = resources("edge")["RestApi"]
    sandbox.switches(needs_deployment=True)
    update_stack("edge", Parameters=[{"ParameterKey": "ClientCertificateId",
                                      "ParameterValue": second}])
    assert sandbox.presented(ACCOUNT, REGION, api_id, "prod") == {
        "configured": second, "presented": first}
    client("apigateway").create_deployment(restApiId=api_id, stageName="prod")
    assert sandbox.presented(ACCOUNT, REGION, api_id, "prod")["presented"] == second


@pytest.mark.parametrize("delete_in_use", ["allow", "refuse"])
def test_a_certificate_removed_from_the_template_is_deleted(sandbox, delete_in_use):
    """The stage moves first, the removed certificate goes in the clean-up: even where
    deleting a certificate in use is refused (fact 7), the update succeeds."""
    sandbox.switches(delete_in_use=delete_in_use)
    create_stack("edge", rest_api_template("orders"))
    made = resources("edge")
    successor = make_cert(sandbox, 365)
    update_stack("edge", rest_api_template("orders", certificate=successor))
    assert stage_certificate(made["RestApi"]) == successor
    assert certificate_ids() == {successor}
    assert "ClientCertificate" not in resources("edge")
    apigw = client("apigateway")
    with pytest.raises(apigw.exceptions.NotFoundException):
        apigw.get_client_certificate(clientCertificateId=made["ClientCertificate"])


def test_retain_keeps_a_removed_certificate_with_its_tags(sandbox):
    stack_id = create_stack("edge", rest_api_template("orders", retain_certificate=True))
    made = resources("edge")
    successor = make_cert(sandbox, 365)
    update_stack("edge", rest_api_template("orders", certificate=successor))
    assert certificate_ids() == {made["ClientCertificate"], successor}
    kept = client("apigateway").get_client_certificate(
        clientCertificateId=made["ClientCertificate"])
    assert kept["tags"] == stack_tags(stack_id, "ClientCertificate")  # still says "stack"
    assert stage_certificate(made["RestApi"]) == successor


def test_deleting_the_stack_deletes_what_it_made(sandbox):
    kept = make_cert(sandbox, 100)
    create_stack("edge", rest_api_template("orders"))
    create_stack("retained", rest_api_template("billing", retain_certificate=True))
    retained = resources("retained")["ClientCertificate"]
    cfn = client("cloudformation")
    cfn.delete_stack(StackName="edge")
    cfn.delete_stack(StackName="retained")
    apigw = client("apigateway")
    assert apigw.get_rest_apis()["items"] == []
    assert certificate_ids() == {kept, retained}
    assert [s["StackStatus"] for s in cfn.list_stacks()["StackSummaries"]] == \
        ["DELETE_COMPLETE"] * 2


def test_template_tags_change_only_what_the_template_set(sandbox):
    create_stack("edge", rest_api_template("orders", tags={"team": "a", "tier": "1"}))
    api_arn = APIGW + "/restapis/" + resources("edge")["RestApi"]
    apigw = client("apigateway")
    apigw.tag_resource(resourceArn=api_arn, tags={"rotation": "pending"})  # not the stack's
    update_stack("edge", rest_api_template("orders", tags={"team": "b"}))
    tags = apigw.get_tags(resourceArn=api_arn)["tags"]
    assert tags["team"] == "b" and tags["rotation"] == "pending" and "tier" not in tags
    assert tags["aws:cloudformation:logical-id"] == "RestApi"


def test_a_refused_resource_fails_the_stack_and_rolls_it_back(sandbox):
    """The certificate quota (fact 5) refuses the stack's certificate: the call answers, the
    stack rolls back, its events say why."""
    sandbox.switches(quota=0)
    cfn = client("cloudformation")
    cfn.create_stack(StackName="edge", TemplateBody=json.dumps(rest_api_template("orders")))
    assert status("edge") == "ROLLBACK_COMPLETE"
    reasons = [e.get("ResourceStatusReason", "")
               for e in cfn.describe_stack_events(StackName="edge")["StackEvents"]
               if e["ResourceStatus"] == "CREATE_FAILED"]
    assert reasons and reasons[0].startswith("LimitExceededException: ")
    assert client("apigateway").get_rest_apis()["items"] == []


def test_a_refused_update_answers_and_says_it_could_not_roll_back(sandbox):
    create_stack("edge", rest_api_template("orders", certificate=make_cert(sandbox, 100)))
    api_id = resources("edge")["RestApi"]
    before = stage_certificate(api_id)
    client("cloudformation").update_stack(
        StackName="edge", UsePreviousTemplate=True,
        Parameters=[{"ParameterKey": "ClientCertificateId", "ParameterValue": "nope00"}])
    assert status("edge") == "UPDATE_ROLLBACK_FAILED"
    assert stage_certificate(api_id) == before


def test_a_websocket_stack(sandbox):
    stack_id = create_stack("live", websocket_api_template("updates", tags={"team": "rt"}))
    made = resources("live")
    v2 = client("apigatewayv2")
    api = v2.get_apis()["Items"][0]
    assert api["ApiId"] == made["WebSocketApi"] and api["ProtocolType"] == "WEBSOCKET"
    own = dict(stack_tags(stack_id, "WebSocketApi"), team="rt")
    assert api["Tags"] == own
    stage = v2.get_stages(ApiId=api["ApiId"])["Items"][0]
    assert stage["ClientCertificateId"] == made["ClientCertificate"]
    assert stage["Tags"] == dict(own, **stack_tags(stack_id, "WebSocketStage"))
    assert v2.get_tags(ResourceArn=APIGW + "/apis/%s/stages/live" % api["ApiId"])["Tags"] == \
        stage["Tags"]
    outside = make_cert(sandbox, 300)
    v2.update_stage(ApiId=api["ApiId"], StageName="live", ClientCertificateId=outside)
    update_stack("live", websocket_api_template("updates", tags={"team": "rt"},
                                                stage_description="touched"))
    assert v2.get_stage(ApiId=api["ApiId"], StageName="live")["ClientCertificateId"] == \
        made["ClientCertificate"]
    successor = make_cert(sandbox, 365)
    update_stack("live", websocket_api_template("updates", certificate=successor))
    assert v2.get_stage(ApiId=api["ApiId"], StageName="live")["ClientCertificateId"] == \
        successor
    assert certificate_ids() == {outside, successor}
    client("cloudformation").delete_stack(StackName="live")
    assert v2.get_apis()["Items"] == []


def test_stack_deployments_are_exempt_from_the_deployment_rate(sandbox):
    """A stack's deployment is CloudFormation's own call: it neither is refused nor moves the
    account's window (cloudformation.py says why); our own CreateDeployment is still held."""
    sandbox.deploy_interval(3600)
    create_stack("one", rest_api_template("one"))
    create_stack("two", rest_api_template("two"))
    apigw = client("apigateway")
    api_id = resources("one")["RestApi"]
    apigw.create_deployment(restApiId=api_id, stageName="prod")
    with pytest.raises(apigw.exceptions.TooManyRequestsException):
        apigw.create_deployment(restApiId=api_id, stageName="prod")


MARK = {"ManagedBy": "terraform"}


def test_terraform_marks_every_kind_with_plain_tags(sandbox):
    """Terraform leaves no tag of its own; provider ``default_tags`` put ordinary ones (fact 30),
    through TagResource as any caller, on every kind our code reads."""
    cert_id = make_cert(sandbox, 100)
    rest_api = make_rest_stage(cert_id)
    ws_api = make_websocket_stage(cert_id)
    apigw, v2 = client("apigateway"), client("apigatewayv2")
    for arn in (APIGW + "/clientcertificates/" + cert_id, APIGW + "/restapis/" + rest_api,
                APIGW + "/restapis/%s/stages/prod" % rest_api):
        apigw.tag_resource(resourceArn=arn, tags=MARK)
    for arn in (APIGW + "/apis/" + ws_api, APIGW + "/apis/%s/stages/live" % ws_api):
        v2.tag_resource(ResourceArn=arn, Tags=MARK)
    assert apigw.get_client_certificates()["items"][0]["tags"] == MARK
    assert apigw.get_rest_apis()["items"][0]["tags"] == MARK
    assert apigw.get_stages(restApiId=rest_api)["item"][0]["tags"] == MARK
    assert v2.get_apis()["Items"][0]["Tags"] == MARK
    assert v2.get_stages(ApiId=ws_api)["Items"][0]["Tags"] == MARK
    # default_tags also on GenerateClientCertificate, and through the control.
    made = apigw.generate_client_certificate(tags=MARK)["clientCertificateId"]
    assert apigw.get_client_certificate(clientCertificateId=made)["tags"] == MARK
    other = make_cert(sandbox, 200)
    assert sandbox.tag(APIGW + "/clientcertificates/" + other, MARK) == MARK


def test_tag_as_stack_for_what_a_stack_cannot_make_here(sandbox):
    """A resource made outside the sandbox's CloudFormation, tagged exactly as a stack would
    have (over HTTP, and the same function in process)."""
    cert_id = make_cert(sandbox, 100)
    ws_api = make_websocket_stage(cert_id)
    stack_id = "arn:aws:cloudformation:%s:%s:stack/cdk-edge/1b2c" % (REGION, ACCOUNT)
    arn = APIGW + "/apis/%s/stages/live" % ws_api
    assert sandbox.tag_as_stack(arn, stack_id, "LiveStage") == {
        "aws:cloudformation:stack-name": "cdk-edge",
        "aws:cloudformation:logical-id": "LiveStage",
        "aws:cloudformation:stack-id": stack_id}
    assert client("apigatewayv2").get_stage(ApiId=ws_api, StageName="live")["Tags"] == \
        stack_tags(stack_id, "LiveStage")


@pytest.fixture
def in_process(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # fact 22
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sandbox_package.install()
    CONTROLS.reset()
    with mock_aws():
        yield
    CONTROLS.reset()


def test_in_process_the_same(in_process):
    cfn = boto3.client("cloudformation", region_name=REGION, config=NO_RETRY)
    apigw = boto3.client("apigateway", region_name=REGION, config=NO_RETRY)
    stack_id = cfn.create_stack(StackName="edge", TemplateBody=json.dumps(
        rest_api_template("orders")))["StackId"]
    made = {r["LogicalResourceId"]: r.get("PhysicalResourceId")
            for r in cfn.describe_stack_resources(StackName="edge")["StackResources"]}
    assert apigw.get_stage(restApiId=made["RestApi"], stageName="prod")[
        "clientCertificateId"] == made["ClientCertificate"]
    assert apigw.get_client_certificates()["items"][0]["tags"] == \
        stack_tags(stack_id, "ClientCertificate")
    arn = APIGW + "/clientcertificates/" + made["ClientCertificate"]
    assert tag_as_stack(ACCOUNT, arn, stack_id, "Renamed")["aws:cloudformation:logical-id"] == \
        "Renamed"
    cfn.delete_stack(StackName="edge")
    assert apigw.get_client_certificates()["items"] == []

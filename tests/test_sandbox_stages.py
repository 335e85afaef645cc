"""REST and WebSocket stages' certificate field, deployments, and REST API paging."""
import boto3
import pytest

from c7n_apigw_certs.sandbox.controls import DeployRate
from c7n_apigw_certs.sandbox.remote import SandboxError
from c7n_apigw_certs.sandbox.seed import create_rest_stage
from conftest import (
    ACCOUNT, NO_RETRY, REGION, client, make_cert, make_rest_stage, make_websocket_stage)


def test_rest_stage_certificate_set_and_cleared(sandbox):
    cert_id = make_cert(sandbox, 100)
    api_id = make_rest_stage(cert_id)
    apigw = client("apigateway")
    assert apigw.get_stage(restApiId=api_id, stageName="prod")["clientCertificateId"] == cert_id
    assert apigw.get_stages(restApiId=api_id)["item"][0]["clientCertificateId"] == cert_id
    apigw.update_stage(restApiId=api_id, stageName="prod", patchOperations=[
        {"op": "replace", "path": "/clientCertificateId", "value": ""}])
    stage = apigw.get_stage(restApiId=api_id, stageName="prod")
    assert "clientCertificateId" not in stage  # absent, not null (recorded GetStages)


def test_rest_stage_rejects_unknown_certificate(sandbox):
    api_id = make_rest_stage(make_cert(sandbox, 100))
    apigw = client("apigateway")
    with pytest.raises(apigw.exceptions.NotFoundException):
        apigw.update_stage(restApiId=api_id, stageName="prod", patchOperations=[
            {"op": "replace", "path": "/clientCertificateId", "value": "nope00"}])


def test_redeploy_keeps_the_stage_certificate(sandbox):
    cert_id = make_cert(sandbox, 100)
    api_id = make_rest_stage(cert_id)
    apigw = client("apigateway")
    apigw.create_deployment(restApiId=api_id, stageName="prod")
    assert apigw.get_stage(restApiId=api_id, stageName="prod")["clientCertificateId"] == cert_id


def test_other_patch_operations_still_reach_moto(sandbox):
    api_id = make_rest_stage(make_cert(sandbox, 100))
    apigw = client("apigateway")
    apigw.update_stage(restApiId=api_id, stageName="prod", patchOperations=[
        {"op": "replace", "path": "/description", "value": "hello"},
        {"op": "replace", "path": "/clientCertificateId", "value": ""}])
    stage = apigw.get_stage(restApiId=api_id, stageName="prod")
    assert stage["description"] == "hello" and "clientCertificateId" not in stage


def test_rest_apis_page(sandbox):
    apigw = client("apigateway")
    made = {apigw.create_rest_api(name="api-%d" % i)["id"] for i in range(30)}
    first = apigw.get_rest_apis()
    assert len(first["items"]) == 25 and first["position"]
    second = apigw.get_rest_apis(position=first["position"], limit=500)
    assert "position" not in second
    assert {a["id"] for a in first["items"] + second["items"]} == made


def test_websocket_stage_certificate(sandbox):
    cert_id, other = make_cert(sandbox, 100), make_cert(sandbox, 200)
    api_id = make_websocket_stage(cert_id)
    v2 = client("apigatewayv2")
    assert v2.get_stage(ApiId=api_id, StageName="live")["ClientCertificateId"] == cert_id
    v2.update_stage(ApiId=api_id, StageName="live", ClientCertificateId=other)
    assert v2.get_stages(ApiId=api_id)["Items"][0]["ClientCertificateId"] == other
    assert v2.get_stage(ApiId=api_id, StageName="live")["ClientCertificateId"] == other


def test_delete_in_use_is_a_switch(sandbox):
    """AWS's behaviour is not documented (docs/aws-behaviour.md, fact 7): both outcomes
    are available."""
    cert_id = make_cert(sandbox, 100)
    make_rest_stage(cert_id)
    apigw = client("apigateway")
    sandbox.switches(delete_in_use="refuse")
    with pytest.raises(apigw.exceptions.BadRequestException):
        apigw.delete_client_certificate(clientCertificateId=cert_id)
    sandbox.switches(delete_in_use="allow")
    apigw.delete_client_certificate(clientCertificateId=cert_id)
    assert apigw.get_client_certificates()["items"] == []


def test_needs_deployment_is_a_switch(sandbox):
    """Whether a changed certificate is presented before a redeploy is unknown (fact 11)."""
    old, new = make_cert(sandbox, 10), make_cert(sandbox, 300)
    api_id = make_rest_stage(old)
    apigw = client("apigateway")
    sandbox.switches(needs_deployment=True)
    apigw.update_stage(restApiId=api_id, stageName="prod", patchOperations=[
        {"op": "replace", "path": "/clientCertificateId", "value": new}])
    shown = sandbox.presented("123456789012", "us-east-1", api_id, "prod")
    assert shown == {"configured": new, "presented": old}
    apigw.create_deployment(restApiId=api_id, stageName="prod")
    shown = sandbox.presented("123456789012", "us-east-1", api_id, "prod")
    assert shown == {"configured": new, "presented": new}


def test_same_shape_as_recorded_get_stages(sandbox):
    """The members a reader of stages uses (c7n's rest-stage: stageName, deploymentId,
    createdDate; ours: clientCertificateId) are there as in the recorded GetStages."""
    import datetime
    import json
    import pathlib
    recorded_path = (pathlib.Path(__file__).resolve().parent / "data" / "placebo" /
                     "test_rest_stage_client_certificate_filter" / "apigateway.GetStages_1.json")
    recorded = json.loads(recorded_path.read_text())["data"]["item"][0]
    cert_id = make_cert(sandbox, 100)
    ours = client("apigateway").get_stages(restApiId=make_rest_stage(cert_id))["item"][0]
    needed = {"stageName", "deploymentId", "clientCertificateId", "createdDate",
              "lastUpdatedDate", "methodSettings", "variables", "cacheClusterEnabled"}
    assert needed <= set(recorded) and needed <= set(ours)
    assert isinstance(ours["createdDate"], datetime.datetime)
    assert "description" not in ours  # unset: absent, as in the recorded response


def test_needs_deployment_holds_for_websocket_stages(sandbox):
    """With the switch, a WebSocket stage presents the certificate of its last deployment."""
    old, new = make_cert(sandbox, 10), make_cert(sandbox, 300)
    api_id = make_websocket_stage(old)
    v2 = client("apigatewayv2")
    assert sandbox.presented(ACCOUNT, REGION, api_id, "live") == \
        {"configured": old, "presented": old}  # as created
    sandbox.switches(needs_deployment=True)
    v2.update_stage(ApiId=api_id, StageName="live", ClientCertificateId=new)
    assert sandbox.presented(ACCOUNT, REGION, api_id, "live") == \
        {"configured": new, "presented": old}
    deployment = v2.create_deployment(ApiId=api_id, StageName="live")
    assert sandbox.presented(ACCOUNT, REGION, api_id, "live") == \
        {"configured": new, "presented": new}
    assert v2.get_stage(ApiId=api_id, StageName="live")["DeploymentId"] == \
        deployment["DeploymentId"]
    sandbox.switches(needs_deployment=False)
    v2.update_stage(ApiId=api_id, StageName="live", ClientCertificateId=old)
    assert sandbox.presented(ACCOUNT, REGION, api_id, "live") == \
        {"configured": old, "presented": old}


def test_presented_of_an_unknown_stage_is_refused(sandbox):
    api_id = make_websocket_stage(make_cert(sandbox, 10))
    with pytest.raises(SandboxError, match="404"):
        sandbox.presented(ACCOUNT, REGION, api_id, "nope")


def test_deployments_are_limited_per_account(sandbox):
    """fact 24: one CreateDeployment every 5 seconds per account. An interval of an hour makes
    the second call refused however slow the machine; REST and WebSocket share the window."""
    assert sandbox.switches()["deploy_interval"] == 5.0  # on by default, as AWS
    sandbox.deploy_interval(3600)
    cert_id = make_cert(sandbox, 10)
    rest_api = make_rest_stage(cert_id)  # set-up calls are not held to the rate
    ws_api = make_websocket_stage(cert_id)
    apigw, v2 = client("apigateway"), client("apigatewayv2")
    apigw.create_deployment(restApiId=rest_api, stageName="prod")
    with pytest.raises(apigw.exceptions.TooManyRequestsException) as err:
        apigw.create_deployment(restApiId=rest_api, stageName="prod")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert err.value.response["Error"]["Message"] == "Too Many Requests"
    with pytest.raises(v2.exceptions.TooManyRequestsException):
        v2.create_deployment(ApiId=ws_api, StageName="live")
    make_rest_stage(cert_id, "another")  # still seeding freely
    rows = {(r["service"], r["outcome"]): r["calls"] for r in sandbox.counters()
            if r["operation"] == "CreateDeployment"}
    assert rows == {("apigateway", "ok"): 3, ("apigateway", "throttled"): 1,
                    ("apigatewayv2", "throttled"): 1}
    # "per account" (fact 139): another region of the account is in the same window.
    eu_api = make_rest_stage(make_cert(sandbox, 10, region="eu-west-1"), region="eu-west-1")
    eu = client("apigateway", region="eu-west-1")
    with pytest.raises(eu.exceptions.TooManyRequestsException):
        eu.create_deployment(restApiId=eu_api, stageName="prod")

    creds = client("sts").assume_role(RoleArn="arn:aws:iam::111111111111:role/any",
                                      RoleSessionName="other")["Credentials"]
    other = boto3.client("apigateway", region_name=REGION, config=NO_RETRY,
                         aws_access_key_id=creds["AccessKeyId"],
                         aws_secret_access_key=creds["SecretAccessKey"],
                         aws_session_token=creds["SessionToken"])
    other_api = other.create_rest_api(name="theirs")["id"]
    create_rest_stage(other, other_api, "prod", make_cert(sandbox, 10, account="111111111111"))
    other.create_deployment(restApiId=other_api, stageName="prod")  # another account's window


def test_a_deployment_window_passes_on_the_sandbox_clock(sandbox):
    """A wait passed on the sandbox's clock (timeshift --sandbox-sleep) counts for the
    CreateDeployment rate as a wait on the wall clock: an hour's window, advanced by an hour."""
    sandbox.deploy_interval(3600)
    api_id = make_rest_stage(make_cert(sandbox, 10))
    apigw = client("apigateway")
    apigw.create_deployment(restApiId=api_id, stageName="prod")
    sandbox.advance(seconds=3590)
    with pytest.raises(apigw.exceptions.TooManyRequestsException):
        apigw.create_deployment(restApiId=api_id, stageName="prod")
    sandbox.advance(seconds=10)
    apigw.create_deployment(restApiId=api_id, stageName="prod")
    outcomes = [r["outcome"] for r in sandbox.counters() if r["operation"] == "CreateDeployment"
                and r["outcome"] == "throttled"]
    assert outcomes == ["throttled"]


def test_deployment_limit_off(sandbox):
    sandbox.deploy_interval(0)
    api_id = make_rest_stage(make_cert(sandbox, 10))
    apigw = client("apigateway")
    for _ in range(3):
        apigw.create_deployment(restApiId=api_id, stageName="prod")
    ws_api = make_websocket_stage(make_cert(sandbox, 10))
    for _ in range(3):
        client("apigatewayv2").create_deployment(ApiId=ws_api, StageName="live")
    assert not [r for r in sandbox.counters() if r["outcome"] == "throttled"]


def test_deployment_window_arithmetic():
    now = [100.0]
    rate = DeployRate(clock=lambda: now[0])
    assert rate.allow("a", 5.0)
    now[0] = 104.5
    assert not rate.allow("a", 5.0)  # 4.5 s after the last accepted one
    assert rate.allow("b", 5.0)  # per account
    now[0] = 105.0
    assert rate.allow("a", 5.0)  # 5 s: accepted, and the window starts again
    now[0] = 109.0
    assert not rate.allow("a", 5.0)
    now[0] = 110.0
    assert rate.allow("a", 5.0)  # refused calls did not move the window
    assert rate.allow("a", 0) and rate.allow("a", 0)  # 0: no limit
    rate.reset()
    assert rate.allow("a", 5.0)

"""REST and WebSocket stages' certificate field, and REST API paging, in the sandbox."""
import pytest

from conftest import client, make_cert, make_rest_stage, make_websocket_stage


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
    """AWS's behaviour is not documented (aws-facts fact 7): both outcomes are available."""
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
    recorded_path = (pathlib.Path(__file__).resolve().parents[2] / "shared" / "reference" /
                     "c7n-placebo" / "test_rest_stage_client_certificate_filter" /
                     "apigateway.GetStages_1.json")
    if not recorded_path.exists():
        pytest.skip("shared/reference is beside the repository")
    recorded = json.loads(recorded_path.read_text())["data"]["item"][0]
    cert_id = make_cert(sandbox, 100)
    ours = client("apigateway").get_stages(restApiId=make_rest_stage(cert_id))["item"][0]
    needed = {"stageName", "deploymentId", "clientCertificateId", "createdDate",
              "lastUpdatedDate", "methodSettings", "variables", "cacheClusterEnabled"}
    assert needed <= set(recorded) and needed <= set(ours)
    assert isinstance(ours["createdDate"], datetime.datetime)
    assert "description" not in ours  # unset: absent, as in the recorded response

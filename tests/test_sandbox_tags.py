"""API Gateway's tag rules for callers (fact 35), and the control that tags as CloudFormation
does (fact 29)."""
import pytest

from c7n_apigw_certs.sandbox.remote import SandboxError
from conftest import ACCOUNT, REGION, client, make_cert, make_rest_stage, make_websocket_stage

APIGW = "arn:aws:apigateway:%s::" % REGION
STACK = {"aws:cloudformation:stack-name": "edge",
         "aws:cloudformation:logical-id": "ClientCertificate",
         "aws:cloudformation:stack-id": "arn:aws:cloudformation:%s:%s:stack/edge/1" % (
             REGION, ACCOUNT)}


def bad_request(call):
    apigw = client("apigateway")
    with pytest.raises(apigw.exceptions.BadRequestException) as err:
        call()
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return err.value.response["Error"]["Message"]


@pytest.mark.parametrize("key", ["aws:cloudformation:stack-name", "AWS:x", "Aws:team"])
def test_callers_cannot_use_aws_keys(sandbox, key):
    apigw = client("apigateway")
    message = bad_request(lambda: apigw.generate_client_certificate(tags={key: "v"}))
    assert message == "Invalid tag key. Tag keys cannot start with 'aws:' (case insensitive)"
    assert apigw.get_client_certificates()["items"] == []
    cert_id = make_cert(sandbox, 10)
    bad_request(lambda: apigw.tag_resource(resourceArn=APIGW + "/clientcertificates/" + cert_id,
                                           tags={"team": "a", key: "v"}))
    assert "tags" not in apigw.get_client_certificate(clientCertificateId=cert_id)


def test_at_most_50_tags_aws_ones_aside(sandbox):
    apigw = client("apigateway")
    fifty = {"k%02d" % i: "v" for i in range(50)}
    bad_request(lambda: apigw.generate_client_certificate(tags=dict(fifty, extra="v")))
    cert_id = apigw.generate_client_certificate(tags=fifty)["clientCertificateId"]
    arn = APIGW + "/clientcertificates/" + cert_id
    apigw.tag_resource(resourceArn=arn, tags={"k00": "changed"})  # a key it has: still 50
    assert "at most 50" in bad_request(lambda: apigw.tag_resource(resourceArn=arn,
                                                                  tags={"k50": "v"}))
    sandbox.tag(arn, STACK)  # system tags do not count
    assert len(apigw.get_tags(resourceArn=arn)["tags"]) == 53
    apigw.untag_resource(resourceArn=arn, tagKeys=["k01"])
    apigw.tag_resource(resourceArn=arn, tags={"k50": "v"})


def test_key_and_value_lengths(sandbox):
    apigw = client("apigateway")
    apigw.generate_client_certificate(tags={"k" * 128: "v" * 256})
    bad_request(lambda: apigw.generate_client_certificate(tags={"k" * 129: "v"}))
    bad_request(lambda: apigw.generate_client_certificate(tags={"k": "v" * 257}))


def test_control_tags_every_kind_of_resource_as_cloudformation(sandbox):
    cert_id = make_cert(sandbox, 10)
    rest_api = make_rest_stage(cert_id)
    ws_api = make_websocket_stage(cert_id)
    arns = [APIGW + "/clientcertificates/" + cert_id, APIGW + "/restapis/" + rest_api,
            APIGW + "/restapis/%s/stages/prod" % rest_api, APIGW + "/apis/" + ws_api,
            APIGW + "/apis/%s/stages/live" % ws_api]
    for arn in arns:
        assert sandbox.tag(arn, STACK, region=REGION) == STACK
    apigw, v2 = client("apigateway"), client("apigatewayv2")
    for arn in arns:
        tags = (apigw if "/apis/" not in arn else v2).get_tags(
            **({"resourceArn": arn} if "/apis/" not in arn else {"ResourceArn": arn}))
        assert tags.get("tags", tags.get("Tags")) == STACK
    assert apigw.get_client_certificate(clientCertificateId=cert_id)["tags"] == STACK
    assert apigw.get_rest_api(restApiId=rest_api)["tags"] == STACK
    assert apigw.get_stage(restApiId=rest_api, stageName="prod")["tags"] == STACK
    assert v2.get_api(ApiId=ws_api)["Tags"] == STACK
    assert v2.get_stage(ApiId=ws_api, StageName="live")["Tags"] == STACK


def test_callers_tag_rest_and_websocket_resources_under_the_same_rules(sandbox):
    cert_id = make_cert(sandbox, 10)
    rest_api = make_rest_stage(cert_id)
    ws_api = make_websocket_stage(cert_id)
    apigw, v2 = client("apigateway"), client("apigatewayv2")
    apigw.tag_resource(resourceArn=APIGW + "/restapis/" + rest_api, tags={"team": "a"})
    assert apigw.get_rest_api(restApiId=rest_api)["tags"] == {"team": "a"}
    bad_request(lambda: apigw.tag_resource(resourceArn=APIGW + "/restapis/" + rest_api,
                                           tags={"aws:x": "a"}))
    stage_arn = APIGW + "/apis/%s/stages/live" % ws_api
    v2.tag_resource(ResourceArn=stage_arn, Tags={"team": "b"})
    assert v2.get_tags(ResourceArn=stage_arn)["Tags"] == {"team": "b"}
    with pytest.raises(v2.exceptions.BadRequestException):
        v2.tag_resource(ResourceArn=APIGW + "/apis/" + ws_api, Tags={"aws:x": "b"})
    v2.untag_resource(ResourceArn=stage_arn, TagKeys=["team"])
    assert v2.get_tags(ResourceArn=stage_arn)["Tags"] == {}


@pytest.mark.parametrize("spec", [
    {"arn": APIGW + "/clientcertificates/nope00", "tags": {"a": "b"}},
    {"arn": "arn:aws:s3:::bucket", "tags": {"a": "b"}},
    {"arn": APIGW + "/restapis/x", "tags": "a=b"},
    {"arn": APIGW + "/clientcertificates/x", "tags": {"a": "b"}, "region": "eu-west-1"},
])
def test_control_refuses_what_it_cannot_tag(sandbox, spec):
    with pytest.raises(SandboxError):
        sandbox.tag(**spec)

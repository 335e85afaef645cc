"""The same extension under ``moto.mock_aws``, in this process, with no server."""
import datetime
import io
import json

import boto3
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError
from moto import mock_aws

from c7n_apigw_certs import sandbox
from c7n_apigw_certs.sandbox.apigateway import create_certificate
from c7n_apigw_certs.sandbox.controls import CONTROLS
from c7n_apigw_certs.sandbox.seed import create_rest_stage
from conftest import NO_RETRY


@pytest.fixture
def mocked(monkeypatch):
    for key in ("AWS_ENDPOINT_URL",):  # a leftover endpoint would send mock calls out (fact 22)
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sandbox.install()
    CONTROLS.reset()
    with mock_aws():
        yield boto3.client("apigateway", region_name="us-east-1", config=NO_RETRY)
    CONTROLS.reset()


def test_certificates_and_stage_field_in_process(mocked):
    cert_id = mocked.generate_client_certificate(description="d")["clientCertificateId"]
    assert mocked.get_client_certificate(clientCertificateId=cert_id)["description"] == "d"
    api_id = mocked.create_rest_api(name="a")["id"]
    create_rest_stage(mocked, api_id, "prod", cert_id)
    assert mocked.get_stage(restApiId=api_id, stageName="prod")["clientCertificateId"] == cert_id
    arn = "arn:aws:apigateway:us-east-1::/clientcertificates/%s" % cert_id
    mocked.tag_resource(resourceArn=arn, tags={"k": "v"})  # the ARN arrives percent-encoded
    assert mocked.get_tags(resourceArn=arn)["tags"] == {"k": "v"}


def test_clock_in_process(mocked):
    """freezegun does not reach a server; in process the same clock object serves."""
    past = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    cert = create_certificate("123456789012", "us-east-1", "old", created=past)
    listed = mocked.get_client_certificates()["items"][0]
    assert listed["clientCertificateId"] == cert.id
    assert listed["expirationDate"] == past + datetime.timedelta(days=365)
    CONTROLS.clock.advance(days=10)
    made = mocked.generate_client_certificate()
    assert made["createdDate"] > datetime.datetime.now(datetime.timezone.utc) + \
        datetime.timedelta(days=9)


def test_gate_in_process(mocked):
    CONTROLS.faults.add({"operation": "GetClientCertificates"})
    with pytest.raises(mocked.exceptions.BadRequestException):
        mocked.get_client_certificates()
    mocked.get_client_certificates()
    assert CONTROLS.counters.total(operation="GetClientCertificates") == 2
    assert CONTROLS.counters.total(operation="GetClientCertificates", outcome="fault") == 1
    CONTROLS.throttle.configure(rate=0.001, burst=1)
    mocked.get_rest_apis()
    with pytest.raises(mocked.exceptions.TooManyRequestsException):
        mocked.get_rest_apis()


def test_reset_and_drop_faults_in_process(mocked):
    """In process there is no socket to close: botocore's own ConnectionClosedError is raised."""
    CONTROLS.faults.add({"operation": "GetClientCertificates", "reset": True})
    with pytest.raises(ConnectionClosedError):
        mocked.get_client_certificates()
    mocked.get_client_certificates()
    ssm = boto3.client("ssm", region_name="us-east-1", config=NO_RETRY)
    ssm.put_parameter(Name="/certs/a", Value="one", Type="String")
    CONTROLS.faults.add({"operation": "PutParameter", "drop": True})
    assert ssm.put_parameter(Name="/certs/a", Value="two", Type="String",
                             Overwrite=True)["Version"] == 2
    assert ssm.get_parameter(Name="/certs/a")["Parameter"]["Value"] == "one"


def test_deployment_rate_in_process(mocked):
    """The window is measured on the DeployRate's clock, which a test may replace."""
    now, real = [0.0], CONTROLS.deploys.clock
    CONTROLS.deploys.clock = lambda: now[0]
    try:
        cert_id = mocked.generate_client_certificate()["clientCertificateId"]
        api_id = mocked.create_rest_api(name="a")["id"]
        create_rest_stage(mocked, api_id, "prod", cert_id)
        mocked.create_deployment(restApiId=api_id, stageName="prod")
        with pytest.raises(mocked.exceptions.TooManyRequestsException):
            mocked.create_deployment(restApiId=api_id, stageName="prod")
        now[0] = 5.0
        mocked.create_deployment(restApiId=api_id, stageName="prod")
    finally:
        CONTROLS.deploys.clock = real


def test_iam_and_ssm_sizes_in_process(mocked):
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_role(RoleName="reader", AssumeRolePolicyDocument="{}")
    iam.put_role_policy(RoleName="reader", PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "apigateway:GET", "Resource": "*"}]}))
    creds = boto3.client("sts", region_name="us-east-1").assume_role(
        RoleArn="arn:aws:iam::123456789012:role/reader", RoleSessionName="tester")["Credentials"]
    reader = boto3.client("apigateway", region_name="us-east-1", config=NO_RETRY,
                          aws_access_key_id=creds["AccessKeyId"],
                          aws_secret_access_key=creds["SecretAccessKey"],
                          aws_session_token=creds["SessionToken"])
    reader.get_client_certificates()
    with pytest.raises(ClientError) as err:
        reader.generate_client_certificate()
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    assert CONTROLS.counters.total(outcome="denied") == 1
    ssm = boto3.client("ssm", region_name="us-east-1", config=NO_RETRY)
    with pytest.raises(ClientError) as err:
        ssm.put_parameter(Name="/certs/big", Value="x" * 4097, Type="String")
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_streamed_object_body_reaches_moto(mocked):
    """The gate reads a request's body before moto does; a streamed one must survive that."""
    s3 = boto3.client("s3", region_name="us-east-1", config=NO_RETRY)
    s3.create_bucket(Bucket="trust-bucket")
    s3.put_object(Bucket="trust-bucket", Key="ca.pem", Body=io.BytesIO(b"pem"))
    assert s3.get_object(Bucket="trust-bucket", Key="ca.pem")["Body"].read() == b"pem"

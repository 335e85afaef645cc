"""The same extension under ``moto.mock_aws``, in this process, with no server."""
import datetime

import boto3
import pytest
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

"""The sandbox's client certificates, over HTTP through boto3, against the recorded AWS shapes."""
import datetime
import json
import pathlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import REGION, client, make_cert

PLACEBO = pathlib.Path(__file__).resolve().parent / "data" / "placebo"  # see its README.md


def arn(cert_id, region=REGION):
    return "arn:aws:apigateway:%s::/clientcertificates/%s" % (region, cert_id)


def test_generate_get_update_delete(sandbox):
    apigw = client("apigateway")
    made = apigw.generate_client_certificate(description="edge", tags={"team": "payments"})
    cert_id = made["clientCertificateId"]
    assert made["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert len(cert_id) == 6 and cert_id.isalnum() and cert_id == cert_id.lower()
    got = apigw.get_client_certificate(clientCertificateId=cert_id)
    assert got["description"] == "edge" and got["tags"] == {"team": "payments"}

    apigw.update_client_certificate(clientCertificateId=cert_id, patchOperations=[
        {"op": "replace", "path": "/description", "value": "renamed"}])
    assert apigw.get_client_certificate(clientCertificateId=cert_id)["description"] == "renamed"

    apigw.delete_client_certificate(clientCertificateId=cert_id)
    assert apigw.get_client_certificates()["items"] == []


@pytest.mark.parametrize("call", [
    lambda c: c.get_client_certificate(clientCertificateId="nope00"),
    lambda c: c.delete_client_certificate(clientCertificateId="nope00"),
    lambda c: c.update_client_certificate(clientCertificateId="nope00", patchOperations=[]),
    lambda c: c.get_tags(resourceArn=arn("nope00")),
])
def test_unknown_id_is_not_found(sandbox, call):
    apigw = client("apigateway")
    with pytest.raises(apigw.exceptions.NotFoundException) as err:
        call(apigw)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_tags_on_the_certificate_arn(sandbox):
    apigw = client("apigateway")
    cert_id = apigw.generate_client_certificate()["clientCertificateId"]
    assert "tags" not in apigw.get_client_certificate(clientCertificateId=cert_id)
    apigw.tag_resource(resourceArn=arn(cert_id), tags={"a": "1", "b": "2"})
    apigw.untag_resource(resourceArn=arn(cert_id), tagKeys=["a"])
    assert apigw.get_tags(resourceArn=arn(cert_id))["tags"] == {"b": "2"}
    assert apigw.get_client_certificates()["items"][0]["tags"] == {"b": "2"}


def test_pem_is_a_real_api_gateway_certificate(sandbox):
    apigw = client("apigateway")
    made = apigw.generate_client_certificate()
    pem = made["pemEncodedCertificate"]
    assert "\r\n" in pem and pem.startswith("-----BEGIN CERTIFICATE-----")
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.subject.rfc4514_string() == "CN=ApiGateway,L=Seattle,C=US"
    assert cert.issuer == cert.subject
    assert isinstance(cert.public_key(), rsa.RSAPublicKey) and cert.public_key().key_size == 2048
    assert cert.signature_hash_algorithm.name == "sha256"
    assert len(cert.extensions) == 0
    assert cert.not_valid_after_utc == made["expirationDate"]
    assert made["expirationDate"] - made["createdDate"] == datetime.timedelta(days=365)
    assert cert.not_valid_before_utc == made["createdDate"]


def test_paging_follows_limit_and_position(sandbox):
    for _ in range(30):
        make_cert(sandbox, 100)
    apigw = client("apigateway")
    first = apigw.get_client_certificates()
    assert len(first["items"]) == 25 and "position" in first
    rest = apigw.get_client_certificates(position=first["position"])
    assert len(rest["items"]) == 5 and "position" not in rest
    ids = [c["clientCertificateId"] for c in first["items"] + rest["items"]]
    assert len(set(ids)) == 30
    small = apigw.get_client_certificates(limit=7)
    assert len(small["items"]) == 7
    pages = apigw.get_paginator("get_client_certificates").paginate(
        PaginationConfig={"PageSize": 4})
    assert sum(len(p["items"]) for p in pages) == 30
    with pytest.raises(apigw.exceptions.BadRequestException):
        apigw.get_client_certificates(limit=501)


def test_quota_of_sixty(sandbox):
    for _ in range(60):
        make_cert(sandbox, 100)
    apigw = client("apigateway")
    with pytest.raises(apigw.exceptions.LimitExceededException) as err:
        apigw.generate_client_certificate()
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert len(list(c for p in apigw.get_paginator("get_client_certificates").paginate()
                    for c in p["items"])) == 60


def test_certificates_are_per_account_and_region(sandbox):
    make_cert(sandbox, 100, region="eu-west-1")
    assert client("apigateway").get_client_certificates()["items"] == []
    assert len(client("apigateway", "eu-west-1").get_client_certificates()["items"]) == 1


def _recorded(name):
    """The parsed items of a recorded GetClientCertificates response."""
    data = json.loads((PLACEBO / name / "apigateway.GetClientCertificates_1.json").read_text())
    return data["data"]["items"]


def test_same_shape_as_recorded_aws(sandbox):
    recorded = _recorded("test_rest_client_certificate_resource")[0]
    make_cert(sandbox, 100, description="Test certificate")
    ours = client("apigateway").get_client_certificates()["items"][0]
    assert set(ours) == set(recorded)  # no tags on either: the key is absent
    for key, value in recorded.items():
        if isinstance(value, dict) and value.get("__class__") == "datetime":
            assert isinstance(ours[key], datetime.datetime)
        else:
            assert type(ours[key]) is type(value)
    theirs = x509.load_pem_x509_certificate(recorded["pemEncodedCertificate"].encode())
    mine = x509.load_pem_x509_certificate(ours["pemEncodedCertificate"].encode())
    assert mine.subject == theirs.subject and mine.version == theirs.version
    assert (mine.not_valid_after_utc - mine.not_valid_before_utc ==
            theirs.not_valid_after_utc - theirs.not_valid_before_utc)
    assert len(recorded["pemEncodedCertificate"].split("\r\n")) == \
        len(ours["pemEncodedCertificate"].split("\r\n"))


def test_seeded_certificate_as_of_a_past_moment(sandbox):
    now = datetime.datetime(2030, 3, 1, 8, 30, tzinfo=datetime.timezone.utc)
    sandbox.set_now(now.isoformat(), tick=False)
    cert_id = make_cert(sandbox, 5)
    cert = client("apigateway").get_client_certificate(clientCertificateId=cert_id)
    assert cert["expirationDate"] - now == datetime.timedelta(days=5)
    assert cert["createdDate"] == now - datetime.timedelta(days=360)


def test_seeded_pem_may_expire_before_expiration_date(sandbox):
    now = datetime.datetime.fromisoformat(sandbox.now()).replace(microsecond=0)
    not_after = (now + datetime.timedelta(days=50)).isoformat()
    cert_id = make_cert(sandbox, 100, not_after=not_after)
    cert = client("apigateway").get_client_certificate(clientCertificateId=cert_id)
    parsed = x509.load_pem_x509_certificate(cert["pemEncodedCertificate"].encode())
    assert parsed.not_valid_after_utc.isoformat() == not_after
    assert cert["expirationDate"] > parsed.not_valid_after_utc


"""Each kind's decision (kinds.py) and what acm.Reader makes of ACM's answers, in process: both
sides of each rule, with botocore's Stubber standing in for ACM (the sandbox's ACM is used
end to end in tests/test_acm_audit_e2e.py)."""
import datetime

import boto3
import pytest
from botocore.stub import Stubber
from dateutil.tz import tzutc

from c7n_apigw_certs.audit import acm, kinds

NOW = datetime.datetime(2030, 6, 15, 12, 0, tzinfo=tzutc())
DAY = datetime.timedelta(days=1)
ARN = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
CA = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/aaaa"


def private(days=300, ca_days=3000, ca_status="ACTIVE", **acm_facts):
    facts = dict({"Type": "PRIVATE", "Status": "ISSUED", "NotAfter": (NOW + days * DAY),
                  "RenewalEligibility": "ELIGIBLE",
                  "CertificateAuthority": {"Arn": CA, "Status": ca_status,
                                           "NotAfter": (NOW + ca_days * DAY).isoformat()}},
                 **acm_facts)
    return {"clientCertificateId": ARN, "kind": "acm-private", "c7n:acm": facts}


def verdict(cert):
    return kinds.of(cert).expiry(cert, NOW)


@pytest.mark.parametrize("cert,condition,binds", [
    (private(), "ca-expires", "ca"),                                   # ACM renews it
    (private(RenewalStatus="FAILED"), "renewal-failed", "notAfter"),
    (private(RenewalEligibility="INELIGIBLE"), "renewal-ineligible", "notAfter"),
    (private(RenewalStatus="PENDING_AUTO_RENEWAL"), "renewal-pending", "notAfter"),
    (private(ca_status="DISABLED"), "ca-inactive", "notAfter"),
    (private(ca_days=-1), "ca-expired", "ca"),
    (private(days=-1), "expired", "notAfter"),
    (private(Status="REVOKED"), "revoked", "notAfter"),
    (private(DescribeError="DescribeCertificate: AccessDeniedException: no"), "ca-unknown",
     "notAfter"),
])
def test_private_certificate_conditions(cert, condition, binds):
    found = verdict(cert)
    assert (found.condition, found.source) == (condition, binds)
    assert (condition in kinds.MATCH_ALWAYS) == (condition in (
        "ca-expired", "expired", "revoked", "ca-unknown"))


def test_a_failed_renewal_counts_only_when_its_date_comes_first():
    """The certificate ending after its CA: the CA binds even with a failed renewal."""
    found = verdict(private(days=300, ca_days=100, RenewalStatus="FAILED"))
    assert (found.condition, found.source, found.expires) == ("ca-expires", "ca", NOW + 100 * DAY)


def test_imported_takes_the_earliest_of_not_after_and_chain():
    cert = {"clientCertificateId": ARN, "kind": "acm-imported", "c7n:acm": {
        "Type": "IMPORTED", "Status": "ISSUED", "NotAfter": (NOW + 90 * DAY).isoformat(),
        "ChainNotAfter": (NOW + 20 * DAY).isoformat()}}
    assert (verdict(cert).source, verdict(cert).expires) == ("chain", NOW + 20 * DAY)
    del cert["c7n:acm"]["ChainNotAfter"]
    assert (verdict(cert).source, verdict(cert).condition) == ("notAfter", "expires")


def test_public_and_unknown_always_match_and_no_action_touches_them():
    public = {"clientCertificateId": ARN, "kind": "acm-public",
              "c7n:acm": {"Type": "AMAZON_ISSUED", "Status": "ISSUED",
                          "NotAfter": (NOW + 200 * DAY).isoformat()}}
    unknown = {"clientCertificateId": ARN, "kind": "acm-unknown", "c7n:unknown": "gone"}
    assert verdict(public).condition == "no-client-auth"
    assert verdict(unknown) == kinds.Verdict(None, None, "unknown", "gone")
    for cert in (public, unknown):
        assert kinds.of(cert).delete_refusal(cert) and kinds.of(cert).tag_refusal(cert)
        assert kinds.of(cert).rotate_step(cert, NOW).fail
    generated = {"clientCertificateId": "abc123", "expirationDate": NOW + DAY}
    assert kinds.of(generated).delete_refusal(generated) is None
    assert kinds.of(generated).rotate_step(generated, NOW) is None
    assert kinds.of(generated).arn(generated, "eu-west-1") == \
        "arn:aws:apigateway:eu-west-1::/clientcertificates/abc123"
    assert kinds.of(public).arn(public, "eu-west-1") == ARN


def test_acm_arns_are_told_from_ids():
    assert acm.is_acm_arn(ARN)
    assert not acm.is_acm_arn("abc123")
    assert not acm.is_acm_arn("arn:aws:apigateway:us-east-1::/clientcertificates/abc123")


@pytest.fixture
def reader():
    session = boto3.Session(aws_access_key_id="k", aws_secret_access_key="s",
                            region_name="us-east-1")
    found = acm.Reader(lambda: session, "us-east-1", "123456789012")
    found.clients()
    with Stubber(found.acm) as acm_stub, Stubber(found.pca) as pca_stub:
        yield found, acm_stub, pca_stub
        acm_stub.assert_no_pending_responses()
        pca_stub.assert_no_pending_responses()


def test_another_region_or_account_is_unknown_without_a_call(reader):
    found, acm_stub, _ = reader
    other_region = ARN.replace("us-east-1", "eu-west-1")
    other_account = ARN.replace("123456789012", "999999999999")
    acm_stub.add_response("list_certificates", {"CertificateSummaryList": []})
    records = {r["clientCertificateId"]: r for r in found.records(
        {other_region: [{"stageName": "prod"}], other_account: [{"stageName": "dev"}],
         "abc123": []})}
    assert set(records) == {other_region, other_account}
    assert "region eu-west-1" in records[other_region]["c7n:unknown"]
    assert "account 999999999999" in records[other_account]["c7n:unknown"]
    assert records[other_region]["c7n:stages"] == [{"stageName": "prod"}]


def test_a_refused_listing_falls_back_to_describing(reader):
    found, acm_stub, pca_stub = reader
    acm_stub.add_client_error("list_certificates", "AccessDeniedException", "no list")
    acm_stub.add_response("describe_certificate", {"Certificate": {
        "CertificateArn": ARN, "Type": "PRIVATE", "Status": "ISSUED",
        "NotAfter": NOW + 300 * DAY, "CertificateAuthorityArn": CA,
        "RenewalEligibility": "ELIGIBLE"}}, {"CertificateArn": ARN})
    pca_stub.add_response("describe_certificate_authority", {"CertificateAuthority": {
        "Arn": CA, "Status": "ACTIVE", "Type": "ROOT", "NotAfter": NOW + 3000 * DAY}},
        {"CertificateAuthorityArn": CA})
    (record,) = found.records({ARN: []})
    assert record["kind"] == "acm-private"
    assert record["c7n:acm"]["CertificateAuthority"]["Status"] == "ACTIVE"
    assert verdict(record).condition == "ca-expires"

"""The sandbox's ACM and AWS Private CA (docs/aws-behaviour.md, facts 110-119): real chains,
renewals under the same ARN, stages that present ACM certificates, and the switches for what no
source settles, each both ways."""
import datetime

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID
from moto import mock_aws

from c7n_apigw_certs import sandbox as sandbox_package
from c7n_apigw_certs.sandbox.controls import CONTROLS
from c7n_apigw_certs.sandbox.remote import SandboxError
from c7n_apigw_certs.sandbox.seed import create_rest_stage
from conftest import (ACCOUNT, NO_RETRY, REGION, client, make_acm_cert, make_cert,
                      make_rest_stage)

CLIENT_AUTH = "TLS_WEB_CLIENT_AUTHENTICATION"


def load(pem):
    return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)


def load_all(pem):
    return x509.load_pem_x509_certificates(pem.encode()) if pem else []


def verify_client(leaf_pem, chain_pem, roots, at):
    """A backend's check of a client certificate (clientAuth EKU included) against its trust
    store ``roots``; returns the verified chain or raises VerificationError."""
    store = verification.Store(roots)
    verifier = verification.PolicyBuilder().store(store).time(at).build_client_verifier()
    return verifier.verify(load(leaf_pem), load_all(chain_pem)).chain


def at(sandbox):
    return datetime.datetime.fromisoformat(sandbox.now())


def set_cert(apigw, api_id, value, stage="prod"):
    return apigw.update_stage(restApiId=api_id, stageName=stage, patchOperations=[
        {"op": "replace", "path": "/clientCertificateId", "value": value}])


@pytest.fixture
def cas(sandbox):
    root = sandbox.create_private_ca(REGION, "Sandbox Root CA")
    issuing = sandbox.create_private_ca(REGION, "Sandbox Issuing CA", parent_arn=root["arn"])
    return root, issuing


# -- Private CA -------------------------------------------------------------------------------
def test_root_and_subordinate_are_real_cas(sandbox, cas):
    root, issuing = cas
    pca = client("acm-pca")
    root_ca = pca.describe_certificate_authority(CertificateAuthorityArn=root["arn"])[
        "CertificateAuthority"]
    sub_ca = pca.describe_certificate_authority(CertificateAuthorityArn=issuing["arn"])[
        "CertificateAuthority"]
    assert (root_ca["Type"], root_ca["Status"]) == ("ROOT", "ACTIVE")
    assert (sub_ca["Type"], sub_ca["Status"]) == ("SUBORDINATE", "ACTIVE")
    root_got = pca.get_certificate_authority_certificate(CertificateAuthorityArn=root["arn"])
    sub_got = pca.get_certificate_authority_certificate(CertificateAuthorityArn=issuing["arn"])
    assert "CertificateChain" not in root_got  # a root has none (fact 117)
    assert load(sub_got["CertificateChain"]) == load(root_got["Certificate"])
    root_cert, sub_cert = load(root_got["Certificate"]), load(sub_got["Certificate"])
    root_cert.verify_directly_issued_by(root_cert)  # self-signed
    sub_cert.verify_directly_issued_by(root_cert)
    with pytest.raises(ValueError):  # negative control: the root is not signed by the sub
        root_cert.verify_directly_issued_by(sub_cert)
    constraints = sub_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert (constraints.ca, constraints.path_length) == (True, 0)
    assert root_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert sub_ca["NotAfter"] == sub_cert.not_valid_after_utc
    names = [ca["Arn"] for ca in pca.list_certificate_authorities()["CertificateAuthorities"]]
    assert sorted(names) == sorted([root["arn"], issuing["arn"]])


def public_key_of(pem):
    return load(pem).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_no_two_cas_share_a_key_and_only_a_reset_frees_them(sandbox):
    """Keys come from a sequence (sandbox/certificates.py, CA_KEYS): never another live CA's,
    in any region; a reset (no CA left) lets the next CAs take them again."""
    made = [sandbox.create_private_ca(region, "Root %d" % n)
            for n, region in enumerate([REGION, REGION, "eu-west-1"])]
    made.append(sandbox.create_private_ca(REGION, "Issuing", parent_arn=made[0]["arn"]))
    keys = [public_key_of(ca["certificate_pem"]) for ca in made]
    assert len(set(keys)) == len(keys)
    sandbox.reset()
    again = sandbox.create_private_ca(REGION, "Root again")
    assert public_key_of(again["certificate_pem"]) == keys[0]


def test_an_import_with_a_bad_key_is_refused(sandbox):
    acm = client("acm")
    pem = sandbox.create_acm_certificate(REGION, "imported", 30)
    got = acm.get_certificate(CertificateArn=pem["arn"])
    key = sandbox.private_key_pem(pem["arn"]).encode()
    for bad in (b"not a key", key.replace(b"A", b"B", 40)):
        with pytest.raises(ClientError, match="The private key is not PEM-encoded or is not "
                                              "valid"):
            acm.import_certificate(Certificate=got["Certificate"].encode(), PrivateKey=bad)
    again = acm.import_certificate(Certificate=got["Certificate"].encode(), PrivateKey=key)
    assert again["CertificateArn"] != pem["arn"]


def test_ageing_a_ca_keeps_what_it_signed_valid_and_can_expire_it(sandbox, cas):
    root, issuing = cas
    arn = make_acm_cert(sandbox, "private", 200, ca_arn=issuing["arn"])
    pca, acm = client("acm-pca"), client("acm")
    aged = sandbox.age_private_ca(issuing["arn"], 30)
    got = acm.get_certificate(CertificateArn=arn)
    assert load(got["CertificateChain"].split("-----END CERTIFICATE-----")[0]
                + "-----END CERTIFICATE-----") == load(aged["certificate_pem"])
    # Same key and subject: the leaf still verifies against the re-issued CA certificate.
    verify_client(got["Certificate"], got["CertificateChain"], [load(root["certificate_pem"])],
                  at(sandbox))
    described = pca.describe_certificate_authority(CertificateAuthorityArn=issuing["arn"])[
        "CertificateAuthority"]
    assert described["Status"] == "ACTIVE"
    assert abs((described["NotAfter"] - at(sandbox)).total_seconds() - 30 * 86400) < 5
    # A request that would outlive the CA fails, as Private CA refuses it (fact 116).
    late = acm.request_certificate(DomainName="late.example.com",
                                   CertificateAuthorityArn=issuing["arn"])["CertificateArn"]
    late_detail = acm.describe_certificate(CertificateArn=late)["Certificate"]
    assert (late_detail["Status"], late_detail["FailureReason"]) == (
        "FAILED", "PCA_INVALID_DURATION")
    sandbox.age_private_ca(issuing["arn"], -1)
    assert pca.describe_certificate_authority(CertificateAuthorityArn=issuing["arn"])[
        "CertificateAuthority"]["Status"] == "EXPIRED"
    assert pca.describe_certificate_authority(CertificateAuthorityArn=root["arn"])[
        "CertificateAuthority"]["Status"] == "ACTIVE"
    failed = acm.request_certificate(DomainName="x.example.com",
                                     CertificateAuthorityArn=issuing["arn"])["CertificateArn"]
    assert acm.describe_certificate(CertificateArn=failed)["Certificate"]["FailureReason"] == \
        "PCA_INVALID_STATE"
    with pytest.raises(ClientError, match="RequestInProgressException"):
        acm.get_certificate(CertificateArn=failed)


def test_issue_certificate_honours_validity_on_the_sandbox_clock(sandbox, cas):
    _, issuing = cas
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "direct")]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    sandbox.advance(days=1000)
    pca = client("acm-pca")
    arn = pca.issue_certificate(CertificateAuthorityArn=issuing["arn"], Csr=csr,
                                SigningAlgorithm="SHA256WITHRSA",
                                Validity={"Type": "DAYS", "Value": 7})["CertificateArn"]
    got = pca.get_certificate(CertificateAuthorityArn=issuing["arn"], CertificateArn=arn)
    cert = load(got["Certificate"])
    assert abs((cert.not_valid_after_utc - at(sandbox)).total_seconds() - 7 * 86400) < 5
    cert.verify_directly_issued_by(load(issuing["certificate_pem"]))


# -- ACM certificates --------------------------------------------------------------------------
def test_private_certificate_is_issued_by_the_ca_with_client_auth(sandbox, cas):
    root, issuing = cas
    acm = client("acm")
    arn = acm.request_certificate(DomainName="api.example.com",
                                  CertificateAuthorityArn=issuing["arn"])["CertificateArn"]
    detail = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    assert (detail["Type"], detail["Status"], detail["RenewalEligibility"]) == (
        "PRIVATE", "ISSUED", "ELIGIBLE")
    assert detail["CertificateAuthorityArn"] == issuing["arn"]
    assert CLIENT_AUTH in [e["Name"] for e in detail["ExtendedKeyUsages"]]
    assert detail["KeyAlgorithm"] == "RSA_2048"
    assert "RenewalSummary" not in detail  # none until a renewal is attempted
    got = acm.get_certificate(CertificateArn=arn)
    leaf = load(got["Certificate"])
    assert int(detail["Serial"].replace(":", ""), 16) == leaf.serial_number
    assert abs((leaf.not_valid_after_utc - at(sandbox)).total_seconds() - 395 * 86400) < 5
    assert detail["NotAfter"] == leaf.not_valid_after_utc
    chain = verify_client(got["Certificate"], got["CertificateChain"],
                          [load(root["certificate_pem"])], at(sandbox))
    assert [c.subject for c in chain] == [leaf.subject, load(issuing["certificate_pem"]).subject,
                                          load(root["certificate_pem"]).subject]
    # Negative control: a backend that trusts another root refuses it.
    other = sandbox.create_private_ca(REGION, "Other Root")
    with pytest.raises(verification.VerificationError):
        verify_client(got["Certificate"], got["CertificateChain"],
                      [load(other["certificate_pem"])], at(sandbox))


def test_renewal_keeps_the_arn_and_changes_serial_and_not_after(sandbox, cas):
    root, issuing = cas
    arn = make_acm_cert(sandbox, "private", 20, ca_arn=issuing["arn"])
    acm = client("acm")
    before = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    old_pem = acm.get_certificate(CertificateArn=arn)["Certificate"]
    sandbox.advance(days=5)
    renewed = sandbox.renew_acm_certificate(arn)
    after = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    new = acm.get_certificate(CertificateArn=arn)
    assert renewed["arn"] == after["CertificateArn"] == arn
    assert after["Serial"] != before["Serial"] and renewed["serial"] == after["Serial"]
    assert after["NotAfter"] - before["NotAfter"] > datetime.timedelta(days=300)
    assert after["RenewalSummary"]["RenewalStatus"] == "SUCCESS"
    assert new["Certificate"] != old_pem
    verify_client(new["Certificate"], new["CertificateChain"], [load(root["certificate_pem"])],
                  at(sandbox))
    assert [c["CertificateArn"] for c in acm.list_certificates()["CertificateSummaryList"]] == [
        arn]  # still one certificate


def test_renewal_failure_pending_and_revocation_are_reported(sandbox, cas):
    _, issuing = cas
    failing = make_acm_cert(sandbox, "private", 40, ca_arn=issuing["arn"])
    pending = make_acm_cert(sandbox, "private", 40, ca_arn=issuing["arn"])
    revoked = make_acm_cert(sandbox, "imported", 40)
    sandbox.fail_acm_renewal(failing, "PCA_INVALID_STATE")
    sandbox.pending_acm_renewal(pending)
    sandbox.revoke_acm_certificate(revoked)
    acm = client("acm")
    detail = {arn: acm.describe_certificate(CertificateArn=arn)["Certificate"]
              for arn in (failing, pending, revoked)}
    assert detail[failing]["RenewalSummary"]["RenewalStatus"] == "FAILED"
    assert detail[failing]["RenewalSummary"]["RenewalStatusReason"] == "PCA_INVALID_STATE"
    assert detail[failing]["Status"] == "ISSUED"  # the certificate itself still valid
    assert detail[pending]["RenewalSummary"]["RenewalStatus"] == "PENDING_AUTO_RENEWAL"
    assert detail[revoked]["Status"] == "REVOKED" and "RevokedAt" in detail[revoked]
    with pytest.raises(SandboxError, match="400"):
        sandbox.fail_acm_renewal(failing, "NOT_A_REASON")


def test_kinds_ages_and_expiry_on_the_sandbox_clock(sandbox, cas):
    _, issuing = cas
    imported = make_acm_cert(sandbox, "imported", 3)
    expired = make_acm_cert(sandbox, "imported", -2)
    public = make_acm_cert(sandbox, "public", 100)
    private = make_acm_cert(sandbox, "private", 10, ca_arn=issuing["arn"], renewal="ineligible")
    acm = client("acm")

    def describe(arn):
        return acm.describe_certificate(CertificateArn=arn)["Certificate"]
    assert (describe(imported)["Type"], describe(imported)["Status"]) == ("IMPORTED", "ISSUED")
    assert describe(imported)["RenewalEligibility"] == "INELIGIBLE"
    assert describe(expired)["Status"] == "EXPIRED"
    assert describe(public)["Type"] == "AMAZON_ISSUED"
    assert CLIENT_AUTH not in [e["Name"] for e in describe(public)["ExtendedKeyUsages"]]
    assert describe(private)["RenewalEligibility"] == "INELIGIBLE"
    sandbox.advance(days=5)
    assert [describe(a)["Status"] for a in (imported, private)] == ["EXPIRED", "ISSUED"]
    sandbox.advance(days=6)
    assert describe(private)["Status"] == "EXPIRED"
    # An imported certificate carries the chain it was imported with, and the key it came with.
    got = acm.get_certificate(CertificateArn=imported)
    leaf = load(got["Certificate"])
    leaf.verify_directly_issued_by(load_all(got["CertificateChain"])[0])
    key = serialization.load_pem_private_key(sandbox.private_key_pem(imported).encode(), None)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()


def test_public_request_pends_validation_and_has_no_client_auth(sandbox):
    acm = client("acm")
    arn = acm.request_certificate(DomainName="www.example.com",
                                  ValidationMethod="DNS")["CertificateArn"]
    detail = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    assert (detail["Type"], detail["Status"]) == ("AMAZON_ISSUED", "PENDING_VALIDATION")
    assert [e["Name"] for e in detail["ExtendedKeyUsages"]] == [
        "TLS_WEB_SERVER_AUTHENTICATION"]
    with pytest.raises(ClientError, match="RequestInProgressException"):
        acm.get_certificate(CertificateArn=arn)


def test_list_certificates_pages_and_lists_rsa_2048_by_default(sandbox, cas):
    _, issuing = cas
    rsa = sorted(make_acm_cert(sandbox, "imported", 50 + 10 * i) for i in range(3))
    ec = make_acm_cert(sandbox, "private", 50, ca_arn=issuing["arn"], key_type="EC_prime256v1")
    rsa4096 = make_acm_cert(sandbox, "imported", 50, key_type="RSA_4096")
    acm = client("acm")
    default = [c["CertificateArn"] for c in acm.list_certificates()["CertificateSummaryList"]]
    assert default == rsa  # EC and RSA_4096 are left out unless asked for (fact 114)
    every = {"keyTypes": ["RSA_2048", "RSA_4096", "EC_prime256v1"]}
    seen, token, pages = [], None, 0
    while True:
        kw = {"MaxItems": 2, "Includes": every}
        if token:
            kw["NextToken"] = token
        page = acm.list_certificates(**kw)
        pages += 1
        seen += page["CertificateSummaryList"]
        token = page.get("NextToken")
        if not token:
            break
    assert pages == 3
    assert sorted(c["CertificateArn"] for c in seen) == sorted(rsa + [ec, rsa4096])
    by_arn = {c["CertificateArn"]: c for c in seen}
    assert (by_arn[ec]["Type"], by_arn[ec]["KeyAlgorithm"]) == ("PRIVATE", "EC_prime256v1")
    assert CLIENT_AUTH in by_arn[ec]["ExtendedKeyUsages"]
    assert "RenewalSummary" not in by_arn[ec]  # the summary lacks it: DescribeCertificate
    sandbox.advance(days=51.5)  # the three ending in 50 days have expired, not the others
    expired = acm.list_certificates(CertificateStatuses=["EXPIRED"], Includes=every)
    ending_50 = [a for a in rsa if acm.describe_certificate(CertificateArn=a)["Certificate"][
        "NotAfter"] <= at(sandbox)]
    assert len(ending_50) == 1
    assert sorted(c["CertificateArn"] for c in expired["CertificateSummaryList"]) == sorted(
        ending_50 + [ec, rsa4096])


def test_tags_and_reimport_under_the_same_arn(sandbox):
    arn = make_acm_cert(sandbox, "imported", 5, tags={"team": "payments"})
    acm = client("acm")
    acm.add_tags_to_certificate(CertificateArn=arn, Tags=[{"Key": "k", "Value": "v"}])
    assert sorted((t["Key"], t["Value"]) for t in acm.list_tags_for_certificate(
        CertificateArn=arn)["Tags"]) == [("k", "v"), ("team", "payments")]
    before = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    sandbox.renew_acm_certificate(arn)  # the owner re-imports a renewed certificate
    after = acm.describe_certificate(CertificateArn=arn)["Certificate"]
    assert after["Serial"] != before["Serial"] and after["NotAfter"] > before["NotAfter"]
    assert after["Type"] == "IMPORTED" and "RenewalSummary" not in after
    assert len(acm.list_tags_for_certificate(CertificateArn=arn)["Tags"]) == 2


# -- stages -------------------------------------------------------------------------------------
def test_rest_stage_takes_imported_and_private_and_refuses_the_others(sandbox, cas):
    _, issuing = cas
    imported = make_acm_cert(sandbox, "imported", 30)
    private = make_acm_cert(sandbox, "private", 30, ca_arn=issuing["arn"])
    public = make_acm_cert(sandbox, "public", 30)
    server_only = make_acm_cert(sandbox, "private", 30, ca_arn=issuing["arn"],
                                client_auth=False)
    elsewhere = make_acm_cert(sandbox, "imported", 30, region="eu-west-1")
    missing = private[:-4] + "0000"
    generated = make_cert(sandbox, 100)
    api_id = make_rest_stage(generated)
    apigw = client("apigateway")
    for arn in (imported, private):
        set_cert(apigw, api_id, arn)
        assert apigw.get_stage(restApiId=api_id, stageName="prod")["clientCertificateId"] == arn
    for arn, why in ((public, "AMAZON_ISSUED"), (server_only, "clientAuth"),
                     (elsewhere, "Region"), (missing, "not found")):
        with pytest.raises(ClientError, match=why) as refused:
            set_cert(apigw, api_id, arn)
        assert refused.value.response["Error"]["Code"] == "BadRequestException"
        assert apigw.get_stage(restApiId=api_id, stageName="prod")[
            "clientCertificateId"] == private  # unchanged
    listed = [c["clientCertificateId"] for c in apigw.get_client_certificates()["items"]]
    assert listed == [generated]  # never an ACM ARN (fact 112)
    with pytest.raises(ClientError) as lookup:
        apigw.get_client_certificate(clientCertificateId=private)
    assert lookup.value.response["Error"]["Code"] == "NotFoundException"


def test_stage_presents_the_current_version_with_no_redeploy(sandbox, cas):
    root, issuing = cas
    generated = make_cert(sandbox, 100)
    api_id = make_rest_stage(generated)
    sandbox.switches(needs_deployment=True, deploy_interval=0)
    private = make_acm_cert(sandbox, "private", 30, ca_arn=issuing["arn"])
    apigw = client("apigateway")
    set_cert(apigw, api_id, private)
    shown = sandbox.presented_certificate(ACCOUNT, REGION, api_id, "prod")
    assert (shown["configured"], shown["certificate_id_or_arn"]) == (private, generated)
    assert shown["chain_pem"] == ""  # a generated certificate: itself only
    apigw.create_deployment(restApiId=api_id, stageName="prod")  # a switch needs one
    shown = sandbox.presented_certificate(ACCOUNT, REGION, api_id, "prod")
    assert shown["certificate_id_or_arn"] == private
    first = load(shown["certificate_pem"])
    verify_client(shown["certificate_pem"], shown["chain_pem"], [load(root["certificate_pem"])],
                  at(sandbox))
    deployments = len(apigw.get_deployments(restApiId=api_id)["items"])
    sandbox.renew_acm_certificate(private)
    shown = sandbox.presented_certificate(ACCOUNT, REGION, api_id, "prod")
    renewed = load(shown["certificate_pem"])
    assert renewed.serial_number != first.serial_number
    assert renewed.not_valid_after_utc > first.not_valid_after_utc
    assert len(apigw.get_deployments(restApiId=api_id)["items"]) == deployments
    verify_client(shown["certificate_pem"], shown["chain_pem"], [load(root["certificate_pem"])],
                  at(sandbox))
    key = serialization.load_pem_private_key(sandbox.private_key_pem(private).encode(), None)
    assert key.public_key().public_numbers() == renewed.public_key().public_numbers()
    assert ExtendedKeyUsageOID.CLIENT_AUTH in renewed.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value


def test_generated_certificates_keep_their_private_key(sandbox):
    cert_id = make_cert(sandbox, 100)
    api_id = make_rest_stage(cert_id)
    shown = sandbox.presented_certificate(ACCOUNT, REGION, api_id, "prod")
    pem = client("apigateway").get_client_certificate(clientCertificateId=cert_id)[
        "pemEncodedCertificate"]
    assert shown["certificate_pem"] == pem
    key = serialization.load_pem_private_key(sandbox.private_key_pem(cert_id).encode(), None)
    assert key.public_key().public_numbers() == load(pem).public_key().public_numbers()
    other = make_cert(sandbox, 100, region="eu-west-1")
    assert sandbox.private_key_pem(other) is None  # looked up in its own region only
    assert sandbox.private_key_pem(other, region="eu-west-1").startswith("-----BEGIN")


@pytest.mark.parametrize("mode", ["refuse", "accept"])
def test_websocket_stages_follow_the_switch(sandbox, cas, mode):
    _, issuing = cas
    sandbox.switches(websocket_acm=mode)
    private = make_acm_cert(sandbox, "private", 30, ca_arn=issuing["arn"])
    public = make_acm_cert(sandbox, "public", 30)
    v2 = client("apigatewayv2")
    api_id = v2.create_api(Name="ws", ProtocolType="WEBSOCKET",
                           RouteSelectionExpression="$request.body.action")["ApiId"]
    generated = make_cert(sandbox, 100)
    v2.create_stage(ApiId=api_id, StageName="live", ClientCertificateId=generated)
    if mode == "refuse":
        with pytest.raises(ClientError, match="WebSocket"):
            v2.update_stage(ApiId=api_id, StageName="live", ClientCertificateId=private)
        with pytest.raises(ClientError, match="WebSocket"):
            v2.create_stage(ApiId=api_id, StageName="other", ClientCertificateId=private)
        assert v2.get_stage(ApiId=api_id, StageName="live")["ClientCertificateId"] == generated
        assert [s["StageName"] for s in v2.get_stages(ApiId=api_id)["Items"]] == ["live"]
    else:
        v2.update_stage(ApiId=api_id, StageName="live", ClientCertificateId=private)
        assert v2.get_stage(ApiId=api_id, StageName="live")["ClientCertificateId"] == private
        shown = sandbox.presented_certificate(ACCOUNT, REGION, api_id, "live", "WEBSOCKET")
        assert shown["certificate_id_or_arn"] == private
        with pytest.raises(ClientError, match="AMAZON_ISSUED"):  # fact 111 still holds
            v2.update_stage(ApiId=api_id, StageName="live", ClientCertificateId=public)


@pytest.mark.parametrize("listed", [False, True])
def test_in_use_by_follows_the_switch(sandbox, listed):
    sandbox.switches(acm_in_use_by=listed)
    arn = make_acm_cert(sandbox, "imported", 30)
    api_id = make_rest_stage(make_cert(sandbox, 100))
    set_cert(client("apigateway"), api_id, arn)
    acm = client("acm")
    in_use = acm.describe_certificate(CertificateArn=arn)["Certificate"]["InUseBy"]
    summary = acm.list_certificates()["CertificateSummaryList"][0]
    if listed:
        assert in_use == ["arn:aws:apigateway:%s::/restapis/%s/stages/prod" % (REGION, api_id)]
        assert summary["InUse"] is True
        with pytest.raises(ClientError) as refused:
            acm.delete_certificate(CertificateArn=arn)
        assert refused.value.response["Error"]["Code"] == "ResourceInUseException"
        assert acm.describe_certificate(CertificateArn=arn)["Certificate"]["CertificateArn"]
    else:
        assert in_use == [] and summary["InUse"] is False
        acm.delete_certificate(CertificateArn=arn)
        with pytest.raises(ClientError, match="ResourceNotFoundException"):
            acm.describe_certificate(CertificateArn=arn)


def test_controls_refuse_what_cannot_be_made(sandbox):
    with pytest.raises(SandboxError, match="400"):
        sandbox.create_acm_certificate(REGION, "private", 30)  # no CA
    with pytest.raises(SandboxError, match="400"):
        sandbox.create_acm_certificate(REGION, "self-signed", 30)
    with pytest.raises(SandboxError, match="400"):
        sandbox.renew_acm_certificate("arn:aws:acm:us-east-1:123456789012:certificate/nope")


# -- in process -----------------------------------------------------------------------------------
@pytest.fixture
def mocked(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sandbox_package.install()
    CONTROLS.reset()
    with mock_aws():
        yield
    CONTROLS.reset()


def test_the_same_in_process(mocked):
    root = CONTROLS.create_private_ca(REGION, "In-process Root")
    arn = CONTROLS.create_acm_certificate(REGION, "private", 30, ca_arn=root["arn"])["arn"]
    acm = boto3.client("acm", region_name=REGION, config=NO_RETRY)
    apigw = boto3.client("apigateway", region_name=REGION, config=NO_RETRY)
    got = acm.get_certificate(CertificateArn=arn)
    verify_client(got["Certificate"], got["CertificateChain"], [load(root["certificate_pem"])],
                  CONTROLS.clock.now())
    api_id = apigw.create_rest_api(name="a")["id"]
    create_rest_stage(apigw, api_id, "prod", arn)
    shown = CONTROLS.presented(REGION, "REST", api_id, "prod")
    assert shown["certificate_pem"] == got["Certificate"]
    CONTROLS.renew_acm_certificate(arn)
    assert CONTROLS.presented(REGION, "REST", api_id, "prod")["certificate_pem"] != \
        got["Certificate"]


# -- IAM (fact 119) ------------------------------------------------------------------------------
def _assumed(name, *statements):
    from test_sandbox_iam import assumed
    return assumed(name, *statements)


def _refusal(call):
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response


def test_iam_scopes_acm_calls_to_the_certificate_and_lists_to_star(sandbox, cas):
    _, issuing = cas
    mine = make_acm_cert(sandbox, "private", 30, ca_arn=issuing["arn"])
    other = make_acm_cert(sandbox, "imported", 30)
    session = _assumed("acm-reader", {
        "Effect": "Allow", "Resource": mine,
        "Action": ["acm:DescribeCertificate", "acm:GetCertificate", "acm:AddTagsToCertificate",
                   "acm:ListTagsForCertificate"]},
        {"Effect": "Allow", "Action": "acm:ListCertificates", "Resource": "*"})
    acm = session.client("acm", config=NO_RETRY)
    assert acm.describe_certificate(CertificateArn=mine)["Certificate"]["CertificateArn"] == mine
    assert acm.get_certificate(CertificateArn=mine)["Certificate"].startswith("-----BEGIN")
    acm.add_tags_to_certificate(CertificateArn=mine, Tags=[{"Key": "k", "Value": "v"}])
    assert acm.list_tags_for_certificate(CertificateArn=mine)["Tags"] == [
        {"Key": "k", "Value": "v"}]
    assert len(acm.list_certificates()["CertificateSummaryList"]) == 2
    answer = _refusal(lambda: acm.describe_certificate(CertificateArn=other))
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert answer["Error"]["Code"] == "AccessDeniedException"
    assert answer["Error"]["Message"] == (
        "User: arn:aws:sts::%s:assumed-role/acm-reader/tester is not authorized to perform: "
        "acm:DescribeCertificate on resource: %s because no identity-based policy allows the "
        "acm:DescribeCertificate action" % (ACCOUNT, other))
    answer = _refusal(lambda: acm.request_certificate(
        DomainName="a.example.com", CertificateAuthorityArn=issuing["arn"]))
    assert "acm:RequestCertificate on resource: *" in answer["Error"]["Message"]
    answer = _refusal(lambda: acm.delete_certificate(CertificateArn=mine))
    assert "acm:DeleteCertificate on resource: %s" % mine in answer["Error"]["Message"]
    denied = [r for r in sandbox.counters() if r["outcome"] == "denied"]
    assert sorted((r["service"], r["operation"]) for r in denied) == [
        ("acm", "DeleteCertificate"), ("acm", "DescribeCertificate"),
        ("acm", "RequestCertificate")]
    # Nothing refused happened: the certificate is still there, no new one was requested.
    assert len(client("acm").list_certificates()["CertificateSummaryList"]) == 2


def test_iam_scopes_private_ca_calls_to_the_ca(sandbox, cas):
    root, issuing = cas
    session = _assumed("pca-reader", {
        "Effect": "Allow", "Resource": issuing["arn"],
        "Action": ["acm-pca:DescribeCertificateAuthority",
                   "acm-pca:GetCertificateAuthorityCertificate"]},
        {"Effect": "Allow", "Action": "acm:RequestCertificate", "Resource": "*"})
    pca = session.client("acm-pca", config=NO_RETRY)
    assert pca.describe_certificate_authority(CertificateAuthorityArn=issuing["arn"])[
        "CertificateAuthority"]["Status"] == "ACTIVE"
    assert pca.get_certificate_authority_certificate(
        CertificateAuthorityArn=issuing["arn"])["CertificateChain"]
    answer = _refusal(lambda: pca.describe_certificate_authority(
        CertificateAuthorityArn=root["arn"]))
    assert (answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]["Code"]) == (
        400, "AccessDeniedException")
    assert "acm-pca:DescribeCertificateAuthority on resource: %s " % root["arn"] in answer[
        "Error"]["Message"]
    answer = _refusal(pca.list_certificate_authorities)
    assert "acm-pca:ListCertificateAuthorities on resource: *" in answer["Error"]["Message"]
    # RequestCertificate with a CA needs acm:RequestCertificate only (fact 111, option B).
    arn = session.client("acm", config=NO_RETRY).request_certificate(
        DomainName="a.example.com", CertificateAuthorityArn=issuing["arn"])["CertificateArn"]
    assert client("acm").describe_certificate(CertificateArn=arn)["Certificate"][
        "Status"] == "ISSUED"


# -- CloudFormation: a template may hand a stage an ACM ARN (the migration's hand-over) -------
def test_a_stack_stage_takes_a_qualifying_acm_arn_and_refuses_a_public_one(sandbox, cas):
    import json as _json

    from c7n_apigw_certs.sandbox.cloudformation import rest_api_template
    _, issuing = cas
    private = make_acm_cert(sandbox, "private", 30, ca_arn=issuing["arn"])
    public = make_acm_cert(sandbox, "public", 30)
    cfn = client("cloudformation")
    cfn.create_stack(StackName="edge", TemplateBody=_json.dumps(
        rest_api_template("orders", certificate=private)))
    assert cfn.describe_stacks(StackName="edge")["Stacks"][0]["StackStatus"] == \
        "CREATE_COMPLETE"
    api_id = [r["PhysicalResourceId"] for r in cfn.describe_stack_resources(
        StackName="edge")["StackResources"] if r["LogicalResourceId"] == "RestApi"][0]
    assert client("apigateway").get_stage(restApiId=api_id, stageName="prod")[
        "clientCertificateId"] == private
    assert sandbox.presented(ACCOUNT, REGION, api_id, "prod")["presented"] == private
    cfn.create_stack(StackName="edge-public", TemplateBody=_json.dumps(
        rest_api_template("orders-public", certificate=public)))
    assert cfn.describe_stacks(StackName="edge-public")["Stacks"][0]["StackStatus"] == \
        "ROLLBACK_COMPLETE"


def test_a_request_from_a_ca_that_cannot_sign_fails_with_its_reason(sandbox, cas):
    _, issuing = cas
    elsewhere = sandbox.create_private_ca("eu-west-1", "EU Root")
    acm = client("acm")
    missing = issuing["arn"][:-4] + "0000"
    reasons = {}
    for ca_arn in (issuing["arn"], elsewhere["arn"], missing):
        arn = acm.request_certificate(DomainName="api.example.com",
                                      CertificateAuthorityArn=ca_arn)["CertificateArn"]
        detail = acm.describe_certificate(CertificateArn=arn)["Certificate"]
        reasons[ca_arn] = (detail["Status"], detail.get("FailureReason"))
    assert reasons == {issuing["arn"]: ("ISSUED", None),
                       elsewhere["arn"]: ("FAILED", "PCA_INVALID_ARN"),
                       missing: ("FAILED", "PCA_RESOURCE_NOT_FOUND")}


def test_faults_reach_acm_calls_by_certificate(sandbox):
    broken, fine = make_acm_cert(sandbox, "imported", 30), make_acm_cert(sandbox, "imported", 30)
    sandbox.add_fault("DescribeCertificate", service="acm", target=broken, count=-1,
                      code="AccessDeniedException", message="denied by the test")
    acm = client("acm")
    with pytest.raises(ClientError, match="AccessDeniedException"):
        acm.describe_certificate(CertificateArn=broken)
    assert acm.describe_certificate(CertificateArn=fine)["Certificate"]["CertificateArn"] == fine
    faults = [r for r in sandbox.counters() if r["outcome"] == "fault"]
    assert [(r["service"], r["operation"], r["calls"]) for r in faults] == [
        ("acm", "DescribeCertificate", 1)]


@pytest.mark.parametrize("delay", [0, 3600])
def test_a_renewal_reaches_the_stage_after_the_propagation_switch(sandbox, cas, delay):
    _, issuing = cas
    sandbox.switches(acm_propagation_seconds=delay)
    arn = make_acm_cert(sandbox, "private", 30, ca_arn=issuing["arn"])
    api_id = make_rest_stage(make_cert(sandbox, 100))
    set_cert(client("apigateway"), api_id, arn)
    before = sandbox.presented_certificate(ACCOUNT, REGION, api_id, "prod")
    sandbox.renew_acm_certificate(arn)
    current = client("acm").get_certificate(CertificateArn=arn)["Certificate"]
    during = sandbox.presented_certificate(ACCOUNT, REGION, api_id, "prod")
    sandbox.advance(seconds=3601)
    after = sandbox.presented_certificate(ACCOUNT, REGION, api_id, "prod")
    expected_during = before if delay else after
    assert during["certificate_pem"] == expected_during["certificate_pem"]
    assert during["private_key_pem"] == expected_during["private_key_pem"]
    assert after["certificate_pem"] == current != before["certificate_pem"]
    for shown in (before, during, after):  # the key presented matches the certificate
        key = serialization.load_pem_private_key(shown["private_key_pem"].encode(), None)
        assert key.public_key().public_numbers() == load(
            shown["certificate_pem"]).public_key().public_numbers()

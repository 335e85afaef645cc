"""The rotation through the real ``custodian`` with an ELB trust store as its trust destination
(stores.ElbTrustStore; docs/aws-behaviour.md, facts 162-169), under both answers of the switch
``trust_store_self_signed``."""
import pytest
from cryptography import x509

from conftest import REGION, client, custodian_run, make_cert, make_rest_stage

BUCKET, KEY, STORE = "trust-bundles", "alb/ca.pem", "alb-trust"
PUBLISH = [{"type": "elb-trust-store", "trust_store": STORE, "bucket": BUCKET, "key": KEY}]


def policy():
    return {"name": "rotate", "resource": "aws.apigw-client-certificate",
            "filters": [{"type": "expiring", "days": 30}],
            "actions": [{"type": "rotate", "publish": PUBLISH, "switch-after-days": 0}]}


def serials(text):
    return {c.serial_number for c in x509.load_pem_x509_certificates(text.encode())}


def serial(pem):
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


def trust_store(sandbox, first_pem):
    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=first_pem.encode())
    return client("elbv2").create_trust_store(
        Name=STORE, CaCertificatesBundleS3Bucket=BUCKET,
        CaCertificatesBundleS3Key=KEY)["TrustStores"][0]["TrustStoreArn"]


def test_rotation_publishes_to_a_trust_store_that_takes_the_certificates(sandbox, tmp_path):
    sandbox.switches(trust_store_self_signed="accept", trust_store_pending_describes=1)
    old = make_cert(sandbox, 10)
    apis = [make_rest_stage(old, "a"), make_rest_stage(old, "b")]
    apigw = client("apigateway")
    old_pem = apigw.get_client_certificate(clientCertificateId=old)["pemEncodedCertificate"]
    arn = trust_store(sandbox, old_pem)
    custodian_run(sandbox, tmp_path, policy())
    new = {apigw.get_stage(restApiId=a, stageName="prod")["clientCertificateId"] for a in apis}
    assert len(new) == 1 and new != {old}
    new_pem = apigw.get_client_certificate(clientCertificateId=new.pop())[
        "pemEncodedCertificate"]
    # The load balancer verifies against both: the one presented before and the one after.
    assert serials(sandbox.trust_store_bundle(arn)) == {serial(old_pem), serial(new_pem)}
    assert client("elbv2").describe_trust_stores(TrustStoreArns=[arn])["TrustStores"][0][
        "NumberOfCaCertificates"] == 2


def test_a_trust_store_that_needs_a_ca_fails_the_certificate_before_any_stage_moves(
        sandbox, tmp_path):
    sandbox.switches(trust_store_self_signed="refuse")
    root = sandbox.create_private_ca(REGION, "Backend Root")
    old = make_cert(sandbox, 10)
    other = make_cert(sandbox, 12)
    apis = [make_rest_stage(old, "a"), make_rest_stage(other, "b")]
    arn = trust_store(sandbox, root["certificate_pem"])
    _, proc = custodian_run(sandbox, tmp_path, policy(), check=False)
    assert proc.returncode != 0
    assert proc.stderr.count("this load balancer needs a CA") >= 2  # each certificate fails
    apigw = client("apigateway")
    assert [apigw.get_stage(restApiId=a, stageName="prod")["clientCertificateId"]
            for a in apis] == [old, other]
    assert serials(sandbox.trust_store_bundle(arn)) == {serial(root["certificate_pem"])}
    body = client("s3").get_object(Bucket=BUCKET, Key=KEY)["Body"].read().decode()
    assert serials(body) == {serial(root["certificate_pem"])}


@pytest.mark.parametrize("missing", ["elasticloadbalancing:ModifyTrustStore"])
def test_generated_iam_covers_the_trust_store(sandbox, tmp_path, missing):
    import json

    from conftest import assume_role_allowed, run_cli, write_policy
    sandbox.switches(trust_store_self_signed="accept")
    old = make_cert(sandbox, 10)
    api = make_rest_stage(old, "a")
    apigw = client("apigateway")
    trust_store(sandbox, apigw.get_client_certificate(clientCertificateId=old)[
        "pemEncodedCertificate"])
    path = write_policy(tmp_path, policy())
    document = json.loads(run_cli("c7n-apigw-certs", ["iam", path], sandbox.env).stdout)
    actions = {a for s in document["Statement"] for a in (
        [s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {"elasticloadbalancing:ModifyTrustStore",
            "elasticloadbalancing:DescribeTrustStores"} <= actions
    less = {"Version": document["Version"], "Statement": [
        dict(s, Action=[a for a in ([s["Action"]] if isinstance(s["Action"], str)
                                    else s["Action"]) if a != missing])
        for s in document["Statement"]]}
    less["Statement"] = [s for s in less["Statement"] if s["Action"]]
    role = assume_role_allowed(less)
    _, proc = custodian_run(sandbox, tmp_path, path, check=False, extra=["--assume", role])
    assert proc.returncode != 0 and missing in proc.stderr
    assert apigw.get_stage(restApiId=api, stageName="prod")["clientCertificateId"] == old
    client("iam").delete_role_policy(RoleName="c7n-apigw-certs-generated",
                                     PolicyName="generated")
    client("iam").put_role_policy(RoleName="c7n-apigw-certs-generated", PolicyName="generated",
                                  PolicyDocument=json.dumps(document))
    custodian_run(sandbox, tmp_path, path, extra=["--assume", role])
    assert apigw.get_stage(restApiId=api, stageName="prod")["clientCertificateId"] != old


def test_an_openssl_load_balancer_refuses_the_successor_of_a_generated_certificate(
        sandbox, tmp_path):
    """Real TLS, and a finding (docs/aws-behaviour.md, fact 168): even a trust store that takes
    API Gateway's certificates does not carry a rotation to a load balancer that verifies as
    OpenSSL does. The stand-in (``probe.TrustStoreBackend``) accepts the old certificate before
    the rotation, and after it refuses the successor although the trust store's bundle holds
    it: both are self-signed ``CN=ApiGateway`` with no key ids, and OpenSSL looks the issuer up
    by name and tries the first match only (the backends' finding with nginx, fact 164's
    neighbours). Hence the message of the refusal: such a load balancer needs a CA."""
    import boto3

    from c7n_apigw_certs.sandbox.probe import (
        ACCEPTED, REFUSED, Presented, Stage, TrustStoreBackend, request)
    sandbox.switches(trust_store_self_signed="accept")
    old = make_cert(sandbox, 10)
    api = make_rest_stage(old, "a")
    apigw = client("apigateway")
    arn = trust_store(sandbox, apigw.get_client_certificate(clientCertificateId=old)[
        "pemEncodedCertificate"])
    stage = Stage(REGION, "REST", api, "prod")
    presented = Presented(sandbox, boto3.Session(region_name=REGION), str(tmp_path))
    balancer = TrustStoreBackend(sandbox, arn).start()
    try:
        _, certfile, keyfile = presented.of(stage)
        assert request(balancer.address, certfile, keyfile)[0] == ACCEPTED
        custodian_run(sandbox, tmp_path, policy())
        balancer.refresh()
        cert_id, certfile, keyfile = presented.of(stage)
        new_pem = apigw.get_client_certificate(clientCertificateId=cert_id)[
            "pemEncodedCertificate"]
        assert cert_id != old and serial(new_pem) in serials(sandbox.trust_store_bundle(arn))
        assert request(balancer.address, certfile, keyfile)[0] == REFUSED
    finally:
        balancer.stop()


def test_a_load_balancer_trusting_the_private_ca_accepts_renewals_with_no_change(
        sandbox, tmp_path):
    """The way out the refusal names: a stage on a private certificate, the trust store
    holding its CA chain. Real TLS accepts it, and still accepts after the certificate is
    renewed, with no trust store call in between; negative control: a load balancer trusting
    another CA refuses it."""
    import boto3

    from c7n_apigw_certs.sandbox.probe import (
        ACCEPTED, REFUSED, Presented, Stage, TrustStoreBackend, request)
    from conftest import make_acm_cert
    root = sandbox.create_private_ca(REGION, "Backend Root")
    issuing = sandbox.create_private_ca(REGION, "Issuing", parent_arn=root["arn"])
    arn = make_acm_cert(sandbox, "private", 30, ca_arn=issuing["arn"])
    api = make_rest_stage(make_cert(sandbox, 100), "a")
    client("apigateway").update_stage(restApiId=api, stageName="prod", patchOperations=[
        {"op": "replace", "path": "/clientCertificateId", "value": arn}])
    store = trust_store(sandbox, root["certificate_pem"])
    other = sandbox.create_private_ca(REGION, "Other Root")
    client("s3").put_object(Bucket=BUCKET, Key="other.pem", Body=other["certificate_pem"])
    other_store = client("elbv2").create_trust_store(
        Name="other", CaCertificatesBundleS3Bucket=BUCKET,
        CaCertificatesBundleS3Key="other.pem")["TrustStores"][0]["TrustStoreArn"]
    stage = Stage(REGION, "REST", api, "prod")
    presented = Presented(sandbox, boto3.Session(region_name=REGION), str(tmp_path))
    balancer = TrustStoreBackend(sandbox, store).start()
    wrong = TrustStoreBackend(sandbox, other_store).start()
    try:
        _, certfile, keyfile = presented.of(stage)
        assert request(balancer.address, certfile, keyfile)[0] == ACCEPTED
        assert request(wrong.address, certfile, keyfile)[0] == REFUSED
        sandbox.reset_counters()
        sandbox.renew_acm_certificate(arn)
        _, renewed, renewed_key = presented.of(stage)
        assert renewed != certfile  # a new version, in files of its own
        assert request(balancer.address, renewed, renewed_key)[0] == ACCEPTED
        assert not [r for r in sandbox.counters() if r["service"] == "elasticloadbalancing"]
    finally:
        balancer.stop()
        wrong.stop()

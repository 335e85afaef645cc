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

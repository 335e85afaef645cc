"""The sandbox's Elastic Load Balancing trust stores (docs/aws-behaviour.md, facts 162-169)."""
import pytest
from botocore.exceptions import ClientError
from cryptography import x509

from conftest import ACCOUNT, NO_RETRY, REGION, client, make_acm_cert

BUCKET, KEY = "trust-bundles", "alb/ca.pem"


def put(text):
    s3 = client("s3")
    try:
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    return s3.put_object(Bucket=BUCKET, Key=KEY, Body=text.encode())["VersionId"]


def create(name="alb-trust", version=None):
    kw = {"CaCertificatesBundleS3ObjectVersion": version} if version else {}
    return client("elbv2").create_trust_store(
        Name=name, CaCertificatesBundleS3Bucket=BUCKET, CaCertificatesBundleS3Key=KEY,
        **kw)["TrustStores"][0]


def modify(arn, version=None):
    kw = {"CaCertificatesBundleS3ObjectVersion": version} if version else {}
    return client("elbv2").modify_trust_store(
        TrustStoreArn=arn, CaCertificatesBundleS3Bucket=BUCKET, CaCertificatesBundleS3Key=KEY,
        **kw)["TrustStores"][0]


def subjects(text):
    return [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(text.encode())]


def test_a_trust_store_loads_the_bundle_when_told_and_not_after(sandbox):
    first = sandbox.create_private_ca(REGION, "First Root")
    second = sandbox.create_private_ca(REGION, "Second Root")
    v1 = put(first["certificate_pem"])
    store = create()
    assert (store["Status"], store["NumberOfCaCertificates"]) == ("ACTIVE", 1)
    assert store["TrustStoreArn"].startswith(
        "arn:aws:elasticloadbalancing:%s:%s:truststore/alb-trust/" % (REGION, ACCOUNT))
    v2 = put(first["certificate_pem"] + second["certificate_pem"])
    # S3 changed; the trust store has not read it (fact 162).
    assert subjects(sandbox.trust_store_bundle(store["TrustStoreArn"])) == ["CN=First Root"]
    assert modify(store["TrustStoreArn"], v2)["NumberOfCaCertificates"] == 2
    assert subjects(sandbox.trust_store_bundle(store["TrustStoreArn"])) == [
        "CN=First Root", "CN=Second Root"]
    modify(store["TrustStoreArn"], v1)  # an older version, by its id
    assert subjects(sandbox.trust_store_bundle(store["TrustStoreArn"])) == ["CN=First Root"]
    described = client("elbv2").describe_trust_stores(Names=["alb-trust"])["TrustStores"]
    assert [(d["TrustStoreArn"], d["NumberOfCaCertificates"]) for d in described] == [
        (store["TrustStoreArn"], 1)]


@pytest.mark.parametrize("mode", ["refuse", "accept"])
def test_a_certificate_without_the_ca_flag_follows_the_switch(sandbox, mode):
    sandbox.switches(trust_store_self_signed=mode)
    root = sandbox.create_private_ca(REGION, "Root")
    put(root["certificate_pem"])
    store = create()
    generated = sandbox.create_certificate(expires_in_days=100)["pemEncodedCertificate"]
    put(root["certificate_pem"] + generated)
    if mode == "refuse":
        with pytest.raises(ClientError) as refused:
            modify(store["TrustStoreArn"])
        assert refused.value.response["Error"]["Code"] == "InvalidCaCertificatesBundle"
        assert "not a CA certificate" in refused.value.response["Error"]["Message"]
        assert subjects(sandbox.trust_store_bundle(store["TrustStoreArn"])) == ["CN=Root"]
    else:
        assert modify(store["TrustStoreArn"])["NumberOfCaCertificates"] == 2
        assert subjects(sandbox.trust_store_bundle(store["TrustStoreArn"]))[1] == \
            "CN=ApiGateway,L=Seattle,C=US"


def test_bundle_rules_and_quotas(sandbox):
    elb = client("elbv2")
    with pytest.raises(ClientError, match="CaCertificatesBundleNotFound"):
        elb.create_trust_store(Name="nothing", CaCertificatesBundleS3Bucket=BUCKET,
                               CaCertificatesBundleS3Key="missing.pem")
    put("not a certificate")
    with pytest.raises(ClientError, match="InvalidCaCertificatesBundle"):
        create()
    root = sandbox.create_private_ca(REGION, "Root")
    put(root["certificate_pem"] * 26)
    with pytest.raises(ClientError, match="more than 25"):
        create()
    put(root["certificate_pem"] * 25)
    assert create()["NumberOfCaCertificates"] == 25
    with pytest.raises(ClientError, match="DuplicateTrustStoreName"):
        create()
    assert [s["Name"] for s in elb.describe_trust_stores()["TrustStores"]] == ["alb-trust"]


def test_pending_describes_answer_creating_then_active(sandbox):
    sandbox.switches(trust_store_pending_describes=2)
    put(sandbox.create_private_ca(REGION, "Root")["certificate_pem"])
    arn = create()["TrustStoreArn"]
    elb = client("elbv2")
    seen = [elb.describe_trust_stores(TrustStoreArns=[arn])["TrustStores"][0]["Status"]
            for _ in range(3)]
    assert seen == ["CREATING", "CREATING", "ACTIVE"]
    assert modify(arn)["Status"] == "CREATING"  # a modify makes it load again
    seen = [elb.describe_trust_stores(TrustStoreArns=[arn])["TrustStores"][0]["Status"]
            for _ in range(3)]
    assert seen == ["CREATING", "CREATING", "ACTIVE"]
    elb.delete_trust_store(TrustStoreArn=arn)
    with pytest.raises(ClientError, match="TrustStoreNotFound"):
        elb.describe_trust_stores(TrustStoreArns=[arn])


def test_iam_holds_trust_store_calls_to_their_arns(sandbox):
    from test_sandbox_iam import assumed
    put(sandbox.create_private_ca(REGION, "Root")["certificate_pem"])
    mine, other = create("mine")["TrustStoreArn"], create("other")["TrustStoreArn"]
    session = assumed("elb-writer", {
        "Effect": "Allow", "Action": "elasticloadbalancing:ModifyTrustStore", "Resource": mine},
        {"Effect": "Allow", "Action": "elasticloadbalancing:DescribeTrustStores",
         "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    elb = session.client("elbv2", config=NO_RETRY)
    elb.modify_trust_store(TrustStoreArn=mine, CaCertificatesBundleS3Bucket=BUCKET,
                           CaCertificatesBundleS3Key=KEY)
    assert len(elb.describe_trust_stores()["TrustStores"]) == 2
    with pytest.raises(ClientError) as refused:
        elb.modify_trust_store(TrustStoreArn=other, CaCertificatesBundleS3Bucket=BUCKET,
                               CaCertificatesBundleS3Key=KEY)
    answer = refused.value.response
    assert (answer["ResponseMetadata"]["HTTPStatusCode"], answer["Error"]["Code"]) == (
        403, "AccessDenied")
    assert "elasticloadbalancing:ModifyTrustStore on resource: %s " % other in answer[
        "Error"]["Message"]
    with pytest.raises(ClientError, match="truststore/third/\\*"):
        elb.create_trust_store(Name="third", CaCertificatesBundleS3Bucket=BUCKET,
                               CaCertificatesBundleS3Key=KEY)
    assert [r["operation"] for r in sandbox.counters() if r["outcome"] == "denied"] == [
        "CreateTrustStore", "ModifyTrustStore"]


def test_an_acm_private_chain_is_what_a_trust_store_takes(sandbox):
    """The migration's case: the CA chain of a private certificate loads (CA flags set)."""
    root = sandbox.create_private_ca(REGION, "Root")
    issuing = sandbox.create_private_ca(REGION, "Issuing", parent_arn=root["arn"])
    arn = make_acm_cert(sandbox, "private", 30, ca_arn=issuing["arn"])
    chain = client("acm").get_certificate(CertificateArn=arn)["CertificateChain"]
    put(chain)
    assert create()["NumberOfCaCertificates"] == 2


# -- the trust destination ``elb-trust-store`` (stores.ElbTrustStore) ------------------------------
def stores():
    import boto3
    from c7n.query import QueryResourceManager
    from c7n.utils import reset_session_cache

    from c7n_apigw_certs.trust.stores import Stores
    reset_session_cache()
    return Stores(lambda: boto3.Session(region_name=REGION), REGION,
                  QueryResourceManager.retry)


def elb_location(name="alb-trust"):
    from c7n_apigw_certs.trust.publish import Location
    return Location({"type": "elb-trust-store", "trust_store": name, "bucket": BUCKET,
                     "key": KEY}, {})


@pytest.fixture
def ca_store(sandbox):
    root = sandbox.create_private_ca(REGION, "Root")
    put(root["certificate_pem"])
    arn = create()["TrustStoreArn"]
    return root, arn


def test_destination_merges_writes_and_loads_the_new_version(sandbox, ca_store):
    root, arn = ca_store
    sandbox.switches(trust_store_pending_describes=2)  # the destination waits for ACTIVE
    issuing = sandbox.create_private_ca(REGION, "Issuing", parent_arn=root["arn"])
    target = stores()
    target.adapter(elb_location()).sleep = lambda seconds: None
    text = target.update(elb_location(), add=[issuing["certificate_pem"]])
    assert subjects(text) == ["CN=Root", "CN=Issuing"]
    assert subjects(sandbox.trust_store_bundle(arn)) == ["CN=Root", "CN=Issuing"]
    body = client("s3").get_object(Bucket=BUCKET, Key=KEY)["Body"].read().decode()
    assert subjects(body) == ["CN=Root", "CN=Issuing"]
    calls = {r["operation"]: r["calls"] for r in sandbox.counters()
             if r["service"] == "elasticloadbalancing" and r["outcome"] == "ok"}
    assert calls["ModifyTrustStore"] == 1 and calls["DescribeTrustStores"] >= 3


@pytest.mark.parametrize("mode", ["refuse", "accept"])
def test_destination_with_a_generated_certificate_follows_the_switch(sandbox, ca_store, mode):
    from c7n_apigw_certs.trust.stores import StoreError
    root, arn = ca_store
    sandbox.switches(trust_store_self_signed=mode)
    generated = sandbox.create_certificate(expires_in_days=100)["pemEncodedCertificate"]
    target = stores()
    if mode == "refuse":
        with pytest.raises(StoreError, match="this load balancer needs a CA") as refused:
            target.update(elb_location(), add=[generated])
        assert "private certificate" in str(refused.value)
        body = client("s3").get_object(Bucket=BUCKET, Key=KEY)["Body"].read().decode()
        assert subjects(body) == ["CN=Root"]  # put back as it was
        assert subjects(sandbox.trust_store_bundle(arn)) == ["CN=Root"]
    else:
        text = target.update(elb_location(), add=[generated])
        assert subjects(sandbox.trust_store_bundle(arn)) == subjects(text) == [
            "CN=Root", "CN=ApiGateway,L=Seattle,C=US"]


def test_destination_loads_a_bundle_s3_holds_but_the_trust_store_does_not(sandbox, ca_store):
    root, arn = ca_store
    other = sandbox.create_private_ca(REGION, "Other")
    put(root["certificate_pem"] + other["certificate_pem"])  # a run stopped before Modify
    text = stores().update(elb_location(), add=[other["certificate_pem"]])
    assert subjects(text) == ["CN=Root", "CN=Other"]
    assert subjects(sandbox.trust_store_bundle(arn)) == ["CN=Root", "CN=Other"]


def test_destination_refuses_before_writing_a_bundle_over_25(sandbox, ca_store):
    from c7n_apigw_certs.trust.stores import StoreError
    _, arn = ca_store
    extra = [sandbox.create_private_ca(REGION, "CA %d" % i)["certificate_pem"]
             for i in range(25)]
    with pytest.raises(StoreError, match="over the 25"):
        stores().plan(elb_location(), add=extra)
    body = client("s3").get_object(Bucket=BUCKET, Key=KEY)["Body"].read().decode()
    assert subjects(body) == ["CN=Root"]
    with pytest.raises(StoreError, match="no trust store named nope"):
        stores().update(elb_location("nope"), add=extra[:1])


def test_destination_permissions_are_scoped():
    from c7n_apigw_certs.trust.stores import ElbTrustStore
    found = ElbTrustStore.iam_resources({"type": "elb-trust-store", "trust_store": "alb-{region}",
                                         "bucket": BUCKET, "key": "alb/{api_id}.pem"})
    assert found["elasticloadbalancing:ModifyTrustStore"] == [
        "arn:${Partition}:elasticloadbalancing:${Region}:${Account}:truststore/alb-${Region}/*"]
    assert found["s3:PutObject"] == ["arn:${Partition}:s3:::%s/alb/*.pem" % BUCKET]
    assert found["elasticloadbalancing:DescribeTrustStores"] == ["*"]

"""IAM in the sandbox: an assumed role's keys get what its policies allow, as in AWS."""
import functools
import json
from urllib.parse import quote

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, NO_RETRY, REGION, client, custodian_run, make_cert, make_rest_stage

APIGW = "arn:aws:apigateway:%s::" % REGION


def assumed(name, *statements, managed=(), session_policy=None, account=ACCOUNT):
    """A role with these statements inline (and managed policies attached), assumed: a session
    with its keys."""
    iam = client("iam")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"AWS": ACCOUNT}}]}))
    if statements:
        iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": list(statements)}))
    for i, document in enumerate(managed):
        arn = iam.create_policy(PolicyName="%s-%d" % (name, i),
                                PolicyDocument=json.dumps(document))["Policy"]["Arn"]
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    kw = {"Policy": json.dumps(session_policy)} if session_policy else {}
    creds = client("sts").assume_role(
        RoleArn="arn:aws:iam::%s:role/%s" % (account, name), RoleSessionName="tester",
        **kw)["Credentials"]
    return boto3.Session(aws_access_key_id=creds["AccessKeyId"],
                         aws_secret_access_key=creds["SecretAccessKey"],
                         aws_session_token=creds["SessionToken"], region_name=REGION)


def allow(action, resource):
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def deny(action, resource):
    return {"Effect": "Deny", "Action": action, "Resource": resource}


def refused(call):
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response


def not_allowed(role, action, resource, quote=False):
    shown = '"%s"' % resource if quote else resource
    return ("User: arn:aws:sts::%s:assumed-role/%s/tester is not authorized to perform: %s on "
            "resource: %s because no identity-based policy allows the %s action"
            % (ACCOUNT, role, action, shown, action))


# -- the mapping of each call the plugin makes to its action and resource -------------------
# What the sandbox answers is what a policy generator must grant: the refusal names both.
CALLS = [
    ("apigateway", "get_client_certificates", {},
     "apigateway:GET", APIGW + "/clientcertificates"),
    ("apigateway", "generate_client_certificate", {"description": "d"},
     "apigateway:POST", APIGW + "/clientcertificates"),
    ("apigateway", "get_client_certificate", {"clientCertificateId": "abc123"},
     "apigateway:GET", APIGW + "/clientcertificates/abc123"),
    ("apigateway", "delete_client_certificate", {"clientCertificateId": "abc123"},
     "apigateway:DELETE", APIGW + "/clientcertificates/abc123"),
    ("apigateway", "tag_resource", {"resourceArn": APIGW + "/clientcertificates/abc123",
                                    "tags": {"k": "v"}},
     "apigateway:PUT", APIGW + "/tags/arn%3Aaws%3Aapigateway%3Aus-east-1%3A%3A"
                               "%2Fclientcertificates%2Fabc123"),
    ("apigateway", "get_tags", {"resourceArn": APIGW + "/clientcertificates/abc123"},
     "apigateway:GET", APIGW + "/tags/arn%3Aaws%3Aapigateway%3Aus-east-1%3A%3A"
                               "%2Fclientcertificates%2Fabc123"),
    ("apigateway", "get_rest_apis", {}, "apigateway:GET", APIGW + "/restapis"),
    ("apigateway", "get_stages", {"restApiId": "api123"},
     "apigateway:GET", APIGW + "/restapis/api123/stages"),
    ("apigateway", "get_stage", {"restApiId": "api123", "stageName": "prod"},
     "apigateway:GET", APIGW + "/restapis/api123/stages/prod"),
    ("apigateway", "update_stage", {"restApiId": "api123", "stageName": "prod",
                                    "patchOperations": []},
     "apigateway:PATCH", APIGW + "/restapis/api123/stages/prod"),
    ("apigateway", "create_deployment", {"restApiId": "api123", "stageName": "prod"},
     "apigateway:POST", APIGW + "/restapis/api123/deployments"),
    ("apigatewayv2", "get_apis", {}, "apigateway:GET", APIGW + "/apis"),
    ("apigatewayv2", "get_stages", {"ApiId": "ws1234"},
     "apigateway:GET", APIGW + "/apis/ws1234/stages"),
    ("apigatewayv2", "get_stage", {"ApiId": "ws1234", "StageName": "live"},
     "apigateway:GET", APIGW + "/apis/ws1234/stages/live"),
    ("apigatewayv2", "update_stage", {"ApiId": "ws1234", "StageName": "live",
                                      "ClientCertificateId": "abc123"},
     "apigateway:PATCH", APIGW + "/apis/ws1234/stages/live"),
    ("apigatewayv2", "create_deployment", {"ApiId": "ws1234", "StageName": "live"},
     "apigateway:POST", APIGW + "/apis/ws1234/deployments"),
    ("ssm", "get_parameter", {"Name": "/certs/trust:3"},
     "ssm:GetParameter", "arn:aws:ssm:%s:%s:parameter/certs/trust" % (REGION, ACCOUNT)),
    ("ssm", "put_parameter", {"Name": "/certs/trust", "Value": "x", "Type": "String",
                              "Overwrite": True},
     "ssm:PutParameter", "arn:aws:ssm:%s:%s:parameter/certs/trust" % (REGION, ACCOUNT)),
    ("ssm", "get_parameters_by_path", {"Path": "/certs/"},
     "ssm:GetParametersByPath", "arn:aws:ssm:%s:%s:parameter/certs/" % (REGION, ACCOUNT)),
    ("s3", "get_object", {"Bucket": "trust-bucket", "Key": "certs/ca.pem"},
     "s3:GetObject", "arn:aws:s3:::trust-bucket/certs/ca.pem"),
    ("s3", "put_object", {"Bucket": "trust-bucket", "Key": "certs/ca.pem", "Body": b"x"},
     "s3:PutObject", "arn:aws:s3:::trust-bucket/certs/ca.pem"),
    ("s3", "list_objects_v2", {"Bucket": "trust-bucket", "Prefix": "certs/"},
     "s3:ListBucket", "arn:aws:s3:::trust-bucket"),
    ("s3", "create_bucket", {"Bucket": "trust-bucket"},
     "s3:CreateBucket", "arn:aws:s3:::trust-bucket"),
]
STATUS = {"apigateway": 403, "apigatewayv2": 403, "ssm": 400, "s3": 403}


@pytest.mark.parametrize("service,method,kw,action,resource", CALLS,
                         ids=["%s.%s" % c[:2] for c in CALLS])
def test_each_call_is_refused_naming_its_action_and_resource(
        sandbox, service, method, kw, action, resource):
    session = assumed("nothing", allow("sts:GetCallerIdentity", "*"))
    caller = session.client(service, config=NO_RETRY)
    response = refused(lambda: getattr(caller, method)(**kw))
    assert response["ResponseMetadata"]["HTTPStatusCode"] == STATUS[service]
    assert response["Error"]["Code"] == ("AccessDenied" if service == "s3"
                                         else "AccessDeniedException")
    assert response["Error"]["Message"] == not_allowed("nothing", action, resource,
                                                       quote=service == "s3")
    denied = [r for r in sandbox.counters() if r["outcome"] == "denied"]
    assert [(r["service"], r["calls"]) for r in denied] == [(service, 1)]


@pytest.mark.parametrize("service,method,kw,action,resource", CALLS,
                         ids=["%s.%s" % c[:2] for c in CALLS])
def test_each_call_passes_with_exactly_its_permission(
        sandbox, service, method, kw, action, resource):
    """The same mapping, from the other side: allowing just that action on just that resource
    lets the request through to moto (which may then say the resource does not exist)."""
    statements = [allow(action, resource)]
    if (service, method) == ("apigateway", "tag_resource"):  # and its second check (below)
        statements.append(allow("apigateway:PATCH", kw["resourceArn"]))
    session = assumed("exact", *statements)
    caller = session.client(service, config=NO_RETRY)
    try:
        getattr(caller, method)(**kw)
    except ClientError as e:
        assert "AccessDenied" not in e.response["Error"]["Code"]
    assert not [r for r in sandbox.counters() if r["outcome"] == "denied"]


def test_rest_tag_resource_needs_put_on_its_tags_and_patch_on_the_resource(sandbox):
    """A REST TagResource is checked twice (fact 136): PUT on the Tags resource, then PATCH on
    the tagged resource. Each alone is refused, naming the other; both let it through."""
    cert = make_cert(sandbox, 10)
    arn = APIGW + "/clientcertificates/" + cert
    tags_arn = APIGW + "/tags/" + quote(arn, safe="")
    put, patch = allow("apigateway:PUT", tags_arn), allow("apigateway:PATCH", arn)
    for role, statement, missing, on in (("put-only", put, "apigateway:PATCH", arn),
                                         ("patch-only", patch, "apigateway:PUT", tags_arn)):
        caller = assumed(role, statement).client("apigateway", config=NO_RETRY)
        response = refused(functools.partial(caller.tag_resource, resourceArn=arn,
                                             tags={"k": role}))
        assert response["Error"]["Message"] == not_allowed(role, missing, on)
    assert "k" not in client("apigateway").get_tags(resourceArn=arn).get("tags", {})
    both = assumed("both", put, patch).client("apigateway", config=NO_RETRY)
    both.tag_resource(resourceArn=arn, tags={"k": "both"})
    assert client("apigateway").get_tags(resourceArn=arn)["tags"]["k"] == "both"
    # A WebSocket TagResource (POST) is checked once: no source names a second check.
    api = client("apigatewayv2").create_api(Name="ws", ProtocolType="WEBSOCKET",
                                            RouteSelectionExpression="$request.body.a")["ApiId"]
    v2_arn = APIGW + "/apis/" + api
    post = allow("apigateway:POST", APIGW + "/tags/" + quote(v2_arn, safe=""))
    assumed("v2", post).client("apigatewayv2", config=NO_RETRY).tag_resource(
        ResourceArn=v2_arn, Tags={"k": "v2"})
    assert client("apigatewayv2").get_tags(ResourceArn=v2_arn)["Tags"]["k"] == "v2"


# -- policy evaluation ------------------------------------------------------------------------
def test_allowed_calls_pass_and_others_are_denied(sandbox):
    make_cert(sandbox, 10, description="mine")
    apigw = assumed("reader", allow("apigateway:GET", [APIGW + "/clientcertificates",
                                                       APIGW + "/clientcertificates/*"])
                    ).client("apigateway", config=NO_RETRY)
    (cert,) = apigw.get_client_certificates()["items"]
    assert apigw.get_client_certificate(
        clientCertificateId=cert["clientCertificateId"])["description"] == "mine"
    response = refused(apigw.generate_client_certificate)
    assert response["Error"]["Message"] == not_allowed(
        "reader", "apigateway:POST", APIGW + "/clientcertificates")
    refused(apigw.get_rest_apis)
    assert len(client("apigateway").get_client_certificates()["items"]) == 1  # nothing made


def test_root_keys_and_roles_never_created_stay_unrestricted(sandbox):
    client("apigateway").generate_client_certificate()
    creds = client("sts").assume_role(RoleArn="arn:aws:iam::%s:role/not-created" % ACCOUNT,
                                      RoleSessionName="someone")["Credentials"]
    other = boto3.client("apigateway", region_name=REGION, config=NO_RETRY,
                         aws_access_key_id=creds["AccessKeyId"],
                         aws_secret_access_key=creds["SecretAccessKey"],
                         aws_session_token=creds["SessionToken"])
    other.generate_client_certificate()
    assert len(other.get_client_certificates()["items"]) == 2


def test_explicit_deny_wins_over_allow(sandbox):
    cert_id = make_cert(sandbox, 10)
    apigw = assumed("no-delete", allow("apigateway:*", "*"),
                    deny("apigateway:DELETE", APIGW + "/clientcertificates/*")
                    ).client("apigateway", config=NO_RETRY)
    response = refused(lambda: apigw.delete_client_certificate(clientCertificateId=cert_id))
    assert response["Error"]["Message"] == (
        "User: arn:aws:sts::%s:assumed-role/no-delete/tester is not authorized to perform: "
        "apigateway:DELETE on resource: %s/clientcertificates/%s with an explicit deny in an "
        "identity-based policy" % (ACCOUNT, APIGW, cert_id))
    assert apigw.get_client_certificate(clientCertificateId=cert_id)


def test_wildcards_and_case_of_actions(sandbox):
    apigw = assumed("wild", allow("APIGateway:g?t", "arn:aws:apigateway:*::/client*")
                    ).client("apigateway", config=NO_RETRY)
    apigw.get_client_certificates()
    refused(apigw.get_rest_apis)  # /restapis does not match /client*
    refused(apigw.generate_client_certificate)  # POST does not match g?t


def test_resources_match_case_sensitively(sandbox):
    apigw = assumed("upper", allow("apigateway:GET", APIGW + "/CLIENTCERTIFICATES")
                    ).client("apigateway", config=NO_RETRY)
    refused(apigw.get_client_certificates)


def test_managed_policies_count_and_session_policy_narrows(sandbox):
    managed = {"Version": "2012-10-17", "Statement": [allow("apigateway:GET", "*")]}
    apigw = assumed("managed", managed=[managed]).client("apigateway", config=NO_RETRY)
    apigw.get_rest_apis()
    apigw.get_client_certificates()
    narrowed = assumed("narrowed", allow("apigateway:GET", "*"), session_policy={
        "Version": "2012-10-17", "Statement": [allow("apigateway:GET", APIGW + "/restapis")]}
    ).client("apigateway", config=NO_RETRY)
    narrowed.get_rest_apis()
    refused(narrowed.get_client_certificates)


def test_unsupported_elements_never_allow(sandbox):
    """Conditions are not evaluated: an Allow with one grants nothing, a Deny with one
    denies. NotAction and NotResource are evaluated."""
    apigw = assumed("conditional", {**allow("apigateway:GET", "*"),
                                    "Condition": {"Bool": {"aws:SecureTransport": "true"}}}
                    ).client("apigateway", config=NO_RETRY)
    refused(apigw.get_rest_apis)
    apigw = assumed("cond-deny", allow("apigateway:*", "*"), {
        **deny("apigateway:POST", "*"), "Condition": {"StringEquals": {"aws:TagKeys": "x"}}}
    ).client("apigateway", config=NO_RETRY)
    refused(apigw.generate_client_certificate)
    apigw = assumed("not-action", {"Effect": "Allow", "NotAction": "apigateway:DELETE",
                                   "NotResource": APIGW + "/restapis"}
                    ).client("apigateway", config=NO_RETRY)
    apigw.get_client_certificates()
    refused(apigw.get_rest_apis)


def test_assumed_credentials_expire_on_the_sandbox_clock(sandbox):
    """A custodian run moved days ahead with the sandbox (sandbox/timeshift.py) gets credentials
    valid at its own now."""
    sandbox.set_now("2030-01-01T00:00:00+00:00", tick=False)
    client("iam").create_role(RoleName="later", AssumeRolePolicyDocument="{}")
    creds = client("sts").assume_role(RoleArn="arn:aws:iam::%s:role/later" % ACCOUNT,
                                      RoleSessionName="tester",
                                      DurationSeconds=900)["Credentials"]
    assert creds["Expiration"].isoformat() == "2030-01-01T00:15:00+00:00"


def test_other_services_are_not_checked(sandbox):
    session = assumed("empty")
    assert session.client("sts").get_caller_identity()["Arn"].endswith("assumed-role/empty/tester")
    session.client("iam").list_roles()
    refused(session.client("apigateway", config=NO_RETRY).get_rest_apis)


# -- S3: a missing key is 404 only for a caller who may list the bucket (fact 25) -----------
@pytest.fixture
def bucket(sandbox):
    s3 = client("s3")
    s3.create_bucket(Bucket="trust-bucket")
    s3.put_object(Bucket="trust-bucket", Key="certs/ca.pem", Body=b"pem")
    return "trust-bucket"


def test_missing_key_without_list_bucket_is_access_denied(bucket):
    s3 = assumed("get-only", allow("s3:GetObject", "arn:aws:s3:::trust-bucket/*")
                 ).client("s3", config=NO_RETRY)
    assert s3.get_object(Bucket=bucket, Key="certs/ca.pem")["Body"].read() == b"pem"
    response = refused(lambda: s3.get_object(Bucket=bucket, Key="certs/missing.pem"))
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert response["Error"]["Code"] == "AccessDenied"
    assert response["Error"]["Message"] == not_allowed(
        "get-only", "s3:ListBucket", "arn:aws:s3:::trust-bucket", quote=True)
    head = refused(lambda: s3.head_object(Bucket=bucket, Key="certs/missing.pem"))
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_missing_key_with_list_bucket_is_no_such_key(bucket):
    s3 = assumed("get-list", allow("s3:GetObject", "arn:aws:s3:::trust-bucket/*"),
                 allow("s3:ListBucket", "arn:aws:s3:::trust-bucket")).client("s3", config=NO_RETRY)
    response = refused(lambda: s3.get_object(Bucket=bucket, Key="certs/missing.pem"))
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert response["Error"]["Code"] == "NoSuchKey"
    head = refused(lambda: s3.head_object(Bucket=bucket, Key="certs/missing.pem"))
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["certs/ca.pem"]


def test_root_keys_see_no_such_key(bucket):
    response = refused(lambda: client("s3").get_object(Bucket=bucket, Key="missing"))
    assert response["Error"]["Code"] == "NoSuchKey"


def test_ssm_parameter_resource_drops_the_leading_slash_and_selector(sandbox):
    client("ssm").put_parameter(Name="/certs/trust", Value="v1", Type="String")
    ssm = assumed("ssm-reader", allow(
        "ssm:GetParameter", "arn:aws:ssm:%s:%s:parameter/certs/*" % (REGION, ACCOUNT))
    ).client("ssm", config=NO_RETRY)
    assert ssm.get_parameter(Name="/certs/trust:1")["Parameter"]["Value"] == "v1"
    response = refused(lambda: ssm.put_parameter(Name="/certs/trust", Value="v2", Type="String",
                                                 Overwrite=True))
    assert response["Error"]["Code"] == "AccessDeniedException"
    assert client("ssm").get_parameter(Name="/certs/trust")["Parameter"]["Value"] == "v1"


# -- the real command line, with --assume, as c7n runs in a member account -------------------
READ_AUDIT = allow("apigateway:GET", ["arn:aws:apigateway:*::/clientcertificates",
                                      "arn:aws:apigateway:*::/restapis",
                                      "arn:aws:apigateway:*::/restapis/*/stages",
                                      "arn:aws:apigateway:*::/apis",
                                      "arn:aws:apigateway:*::/apis/*/stages"])


def test_custodian_with_assume_is_held_to_the_role(sandbox, tmp_path):
    make_rest_stage(make_cert(sandbox, 5, description="soon"))
    policy = {"name": "expiring", "resource": "aws.apigw-client-certificate",
              "filters": [{"type": "expiring", "days": 30}]}
    assumed("auditor", READ_AUDIT)
    found, _ = custodian_run(sandbox, tmp_path, policy,
                             extra=["--assume", "arn:aws:iam::%s:role/auditor" % ACCOUNT])
    assert [c["description"] for c in found[REGION]] == ["soon"]
    assert [len(c["c7n:stages"]) for c in found[REGION]] == [1]
    assert not [r for r in sandbox.counters() if r["outcome"] == "denied"]

    assumed("half-auditor", allow("apigateway:GET", "arn:aws:apigateway:*::/clientcertificates"))
    _, proc = custodian_run(sandbox, tmp_path, policy, check=False,
                            extra=["--assume", "arn:aws:iam::%s:role/half-auditor" % ACCOUNT])
    assert "AccessDeniedException" in proc.stderr
    assert "apigateway:GET on resource: arn:aws:apigateway:us-east-1::/restapis" in proc.stderr
    assert [r["operation"] for r in sandbox.counters() if r["outcome"] == "denied"][:1] == \
        ["GetRestApis"]

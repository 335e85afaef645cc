"""What the sandbox controls that AWS does not: accounts, clock, faults, throttle, counters."""
import datetime
import subprocess
import sys
import time

import boto3
import pytest

from c7n_apigw_certs.sandbox.demo import RunningSandbox
from conftest import NO_RETRY, client, make_cert, make_rest_stage


def test_assume_role_lands_in_that_account(sandbox):
    creds = client("sts").assume_role(
        RoleArn="arn:aws:iam::111111111111:role/custodian", RoleSessionName="test")["Credentials"]
    other = boto3.client(
        "apigateway", region_name="us-east-1", config=NO_RETRY,
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"])
    other.generate_client_certificate(description="theirs")
    assert client("apigateway").get_client_certificates()["items"] == []
    assert [c["description"] for c in other.get_client_certificates()["items"]] == ["theirs"]
    make_cert(sandbox, 10, account="111111111111", description="seeded")
    assert len(other.get_client_certificates()["items"]) == 2
    accounts = {r["account"] for r in sandbox.counters() if r["service"] == "apigateway"}
    assert accounts == {"111111111111", "123456789012"}


def test_clock_moves_forward_for_new_certificates(sandbox):
    before = client("apigateway").generate_client_certificate()["createdDate"]
    sandbox.advance(days=3)
    after = client("apigateway").generate_client_certificate()["createdDate"]
    assert datetime.timedelta(days=3) <= after - before < datetime.timedelta(days=3, minutes=5)
    sandbox.set_now("2030-01-01T00:00:00+00:00")
    assert client("apigateway").generate_client_certificate()["createdDate"].year == 2030
    sandbox.reset_clock()
    assert abs(datetime.datetime.fromisoformat(sandbox.now()) -
               datetime.datetime.now(datetime.timezone.utc)) < datetime.timedelta(minutes=1)


def test_one_shot_fault_aimed_at_one_stage(sandbox):
    cert_id = make_cert(sandbox, 10)
    api_a, api_b = make_rest_stage(cert_id, "a"), make_rest_stage(cert_id, "b")
    apigw = client("apigateway")
    sandbox.add_fault("UpdateStage", target=[api_b, "prod"])
    patch = [{"op": "replace", "path": "/description", "value": "x"}]
    apigw.update_stage(restApiId=api_a, stageName="prod", patchOperations=patch)
    with pytest.raises(apigw.exceptions.BadRequestException) as err:
        apigw.update_stage(restApiId=api_b, stageName="prod", patchOperations=patch)
    assert "Fault injected" in str(err.value)
    apigw.update_stage(restApiId=api_b, stageName="prod", patchOperations=patch)  # spent
    faults = [r for r in sandbox.counters() if r["outcome"] == "fault"]
    assert [(r["operation"], r["calls"]) for r in faults] == [("UpdateStage", 1)]


def test_n_shot_fault_with_chosen_error(sandbox):
    apigw = client("apigateway")
    sandbox.add_fault("GenerateClientCertificate", count=2, code="ConflictException",
                      status=409, message="busy")
    for _ in range(2):
        with pytest.raises(apigw.exceptions.ConflictException):
            apigw.generate_client_certificate()
    apigw.generate_client_certificate()
    assert sandbox.clear_faults() == {"faults": []}


def test_fault_on_another_service(sandbox):
    ssm = client("ssm")
    sandbox.add_fault("PutParameter", service="ssm", target="/certs/a")
    ssm.put_parameter(Name="/certs/b", Value="x", Type="String")
    with pytest.raises(ssm.exceptions.ClientError) as err:
        ssm.put_parameter(Name="/certs/a", Value="x", Type="String")
    assert err.value.response["Error"]["Code"] == "BadRequestException"


def test_throttle_answers_429_past_the_burst(sandbox):
    sandbox.throttle(rate=1, burst=3)
    apigw = client("apigateway")
    outcomes = []
    for _ in range(5):
        try:
            apigw.get_client_certificates()
            outcomes.append("ok")
        except apigw.exceptions.TooManyRequestsException as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 429
            outcomes.append("throttled")
    assert outcomes[:3] == ["ok"] * 3 and "throttled" in outcomes[3:]
    assert client("ssm").describe_parameters()  # other services are not throttled
    rows = {r["outcome"]: r["calls"] for r in sandbox.counters()
            if r["operation"] == "GetClientCertificates"}
    assert rows["ok"] + rows["throttled"] == 5
    sandbox.throttle()  # off
    for _ in range(5):
        apigw.get_client_certificates()


def test_counters_are_per_operation_and_resettable(sandbox):
    make_rest_stage(make_cert(sandbox, 10))
    sandbox.reset_counters()
    apigw = client("apigateway")
    apigw.get_rest_apis()
    apigw.get_client_certificates()
    apigw.get_client_certificates()
    client("apigatewayv2", "eu-west-1").get_apis()
    rows = {(r["region"], r["service"], r["operation"]): r["calls"] for r in sandbox.counters()}
    assert rows == {("us-east-1", "apigateway", "GetRestApis"): 1,
                    ("us-east-1", "apigateway", "GetClientCertificates"): 2,
                    ("eu-west-1", "apigatewayv2", "GetApis"): 1}
    sandbox.reset_counters()
    assert sandbox.counters() == []


def test_sandbox_command_serves_the_demo_estate():
    """``c7n-apigw-certs sandbox --seed demo`` from the installed command, as a user runs it."""
    started = time.monotonic()
    with RunningSandbox(seed="demo") as running:
        ready = time.monotonic() - started
        session = boto3.Session(
            aws_access_key_id=running.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=running.env["AWS_SECRET_ACCESS_KEY"])
        certs = {}
        for region in ("us-east-1", "eu-west-1"):
            apigw = session.client("apigateway", region_name=region,
                                   endpoint_url=running.env["AWS_ENDPOINT_URL"])
            certs[region] = apigw.get_client_certificates()["items"]
        v2 = session.client("apigatewayv2", region_name="us-east-1",
                            endpoint_url=running.env["AWS_ENDPOINT_URL"])
        protocols = sorted(a["ProtocolType"] for a in v2.get_apis()["Items"])
    assert len(certs["us-east-1"]) == 5 and len(certs["eu-west-1"]) == 2
    assert protocols == ["HTTP", "WEBSOCKET"]
    now = datetime.datetime.now(datetime.timezone.utc)
    left = sorted((c["expirationDate"] - now).days for c in certs["us-east-1"])
    assert left[0] < 0 and 4 <= left[1] <= 5  # one expired, one within 5 days
    print("sandbox --seed demo ready in %.2f s" % ready)


def test_sandbox_command_prints_the_environment():
    proc = subprocess.Popen(
        [sys.executable, "-m", "c7n_apigw_certs.cli", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE, text=True)
    exports = {}
    try:
        for line in proc.stdout:
            if line.startswith("export "):
                key, value = line[len("export "):].strip().split("=", 1)
                exports[key] = value
            if "AWS_REGION" in exports:
                break
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert exports["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"} <= set(exports)
    assert proc.returncode == 0  # SIGTERM is a clean stop

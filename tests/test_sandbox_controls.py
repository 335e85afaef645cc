"""What the sandbox controls that AWS does not: accounts, clock, faults, throttle, counters."""
import datetime
import hashlib
import io
import subprocess
import sys
import time

import boto3
import pytest
from botocore.exceptions import ConnectionClosedError

from c7n_apigw_certs.sandbox.controls import CONFIG_TYPES, CONTROLS, Clock, Throttle
from c7n_apigw_certs.sandbox.demo import RunningSandbox
from c7n_apigw_certs.sandbox.remote import SandboxError
from conftest import NO_RETRY, client, make_cert, make_rest_stage

UTC = datetime.timezone.utc


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
    sandbox.set_now("2030-01-01T00:00:00+00:00", tick=False)
    before = client("apigateway").generate_client_certificate()["createdDate"]
    assert before == datetime.datetime(2030, 1, 1, tzinfo=UTC)
    sandbox.advance(days=3)
    after = client("apigateway").generate_client_certificate()["createdDate"]
    assert after - before == datetime.timedelta(days=3)
    sandbox.set_now("2031-01-01T00:00:00+00:00")  # ticking from there
    assert client("apigateway").generate_client_certificate()["createdDate"].year == 2031
    real_before = datetime.datetime.now(UTC)
    sandbox.reset_clock()
    now = datetime.datetime.fromisoformat(sandbox.now())
    assert real_before <= now <= datetime.datetime.now(UTC)


def test_clock_frozen_or_ticking():
    clock = Clock()
    frozen = datetime.datetime(2030, 5, 1, 12, tzinfo=UTC)
    clock.set(frozen, tick=False)
    assert clock.now() == frozen and not clock.ticking
    clock.advance(seconds=90)
    assert clock.now() == frozen + datetime.timedelta(seconds=90)
    clock.set(frozen)
    assert clock.ticking and clock.now() >= frozen
    clock.reset()
    assert clock.ticking and clock.offset == datetime.timedelta(0)


def test_the_rates_clock_counts_advances_and_never_runs_back():
    """Clock.seconds (the throttle's and the deployment rate's): real seconds plus every forward
    advance, whatever "now" is set to, so a wait passed on the sandbox's clock refills the
    rates as a real one does, and moving "now" back never stretches a window."""
    clock = Clock()
    start = clock.seconds()
    clock.set(datetime.datetime(2030, 5, 1, tzinfo=UTC), tick=False)
    clock.advance(seconds=5)
    assert clock.seconds() - start >= 5
    moved = clock.seconds()
    clock.set(datetime.datetime(2020, 1, 1, tzinfo=UTC), tick=False)  # "now" moved back
    clock.advance(seconds=-60)
    clock.reset()
    assert clock.seconds() >= moved
    rate = Throttle(clock=clock.seconds)
    rate.configure(rate=1, burst=1)
    assert rate.allow("a") and not rate.allow("a")  # the bucket is empty...
    clock.advance(seconds=1)
    assert rate.allow("a")  # ...and a second on the sandbox's clock refills a token


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
    """A rate so small that no token comes back during the test: exactly the burst passes,
    whatever the machine's speed. The refill itself is tested on a clock of the test's own."""
    sandbox.throttle(rate=0.001, burst=3)
    apigw = client("apigateway")
    outcomes = []
    for _ in range(5):
        try:
            apigw.get_client_certificates()
            outcomes.append("ok")
        except apigw.exceptions.TooManyRequestsException as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 429
            assert e.response["Error"]["Message"] == "Too Many Requests"
            outcomes.append("throttled")
    assert outcomes == ["ok"] * 3 + ["throttled"] * 2
    assert client("ssm").describe_parameters()  # other services are not throttled
    rows = {r["outcome"]: r["calls"] for r in sandbox.counters()
            if r["operation"] == "GetClientCertificates"}
    assert rows == {"ok": 3, "throttled": 2}
    sandbox.throttle()  # off
    for _ in range(5):
        apigw.get_client_certificates()


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_throttle_bucket_refills_at_the_rate():
    clock = FakeClock()
    throttle = Throttle(clock=clock)
    throttle.configure(rate=10, burst=40)  # API Gateway's account quota (fact 13)
    assert [throttle.allow("a") for _ in range(41)] == [True] * 40 + [False]
    assert throttle.allow("b")  # per account
    clock.now += 0.25  # 2.5 tokens
    assert [throttle.allow("a") for _ in range(3)] == [True, True, False]
    clock.now += 0.0625  # 0.5 + 0.625 tokens
    assert [throttle.allow("a") for _ in range(2)] == [True, False]
    clock.now += 100  # refills to the burst, not beyond
    assert [throttle.allow("a") for _ in range(41)] == [True] * 40 + [False]
    throttle.configure(None)
    assert all(throttle.allow("a") for _ in range(100))


def test_reset_fault_closes_the_connection_unanswered(sandbox):
    ssm = client("ssm")
    ssm.put_parameter(Name="/certs/a", Value="one", Type="String")
    sandbox.reset_connection("GetParameter", service="ssm", target="/certs/a")
    with pytest.raises(ConnectionClosedError):
        ssm.get_parameter(Name="/certs/a")
    assert ssm.get_parameter(Name="/certs/a")["Parameter"]["Value"] == "one"  # spent
    apigw = client("apigateway")
    api_id = make_rest_stage(make_cert(sandbox, 10))
    sandbox.reset_connection("UpdateStage", count=2)
    patch = [{"op": "replace", "path": "/description", "value": "x"}]
    for _ in range(2):
        with pytest.raises(ConnectionClosedError):
            apigw.update_stage(restApiId=api_id, stageName="prod", patchOperations=patch)
    assert "description" not in apigw.get_stage(restApiId=api_id, stageName="prod")
    faults = {r["operation"]: r["calls"] for r in sandbox.counters() if r["outcome"] == "fault"}
    assert faults == {"GetParameter": 1, "UpdateStage": 2}


def test_drop_fault_answers_success_and_loses_the_write(sandbox):
    ssm = client("ssm")
    ssm.put_parameter(Name="/certs/a", Value="one", Type="String")
    sandbox.drop_write("PutParameter", target="/certs/a")
    answer = ssm.put_parameter(Name="/certs/a", Value="two", Type="String", Overwrite=True)
    assert (answer["Version"], answer["Tier"]) == (2, "Standard")
    got = ssm.get_parameter(Name="/certs/a")["Parameter"]
    assert (got["Value"], got["Version"]) == ("one", 1)

    s3 = client("s3")
    s3.create_bucket(Bucket="trust-bucket")
    s3.put_object(Bucket="trust-bucket", Key="ca.pem", Body=b"old")
    sandbox.drop_write("PutObject", service="s3")
    answer = s3.put_object(Bucket="trust-bucket", Key="ca.pem", Body=b"new")
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert answer["ETag"] == '"%s"' % hashlib.md5(b"new").hexdigest()
    assert s3.get_object(Bucket="trust-bucket", Key="ca.pem")["Body"].read() == b"old"
    s3.put_object(Bucket="trust-bucket", Key="ca.pem", Body=io.BytesIO(b"new"))  # spent
    assert s3.get_object(Bucket="trust-bucket", Key="ca.pem")["Body"].read() == b"new"


def test_fault_after_lets_requests_pass_first(sandbox):
    apigw = client("apigateway")
    sandbox.add_fault("GetRestApis", after=2, count=1)
    apigw.get_rest_apis()
    apigw.get_rest_apis()
    with pytest.raises(apigw.exceptions.BadRequestException):
        apigw.get_rest_apis()
    apigw.get_rest_apis()
    assert [(r["outcome"], r["calls"]) for r in sandbox.counters()] == [("fault", 1), ("ok", 3)]


def test_fault_target_may_be_a_part_of_an_arn(sandbox):
    """TagResource names its certificate in an ARN: the certificate id alone aims at it."""
    apigw = client("apigateway")
    one, two = make_cert(sandbox, 10), make_cert(sandbox, 10)
    sandbox.add_fault("TagResource", target=two)
    arn = "arn:aws:apigateway:us-east-1::/clientcertificates/%s"
    apigw.tag_resource(resourceArn=arn % one, tags={"a": "b"})
    with pytest.raises(apigw.exceptions.BadRequestException):
        apigw.tag_resource(resourceArn=arn % two, tags={"a": "b"})


@pytest.mark.parametrize("operation,fault", [
    ("GetRestApis", {"afterwards": 1}),
    ("GetRestApis", {"count": "2"}),
    ("UpdateStage", {"drop": True}),
    ("PutParameter", {"service": "s3", "drop": True}),
    ("PutObject", {"drop": True, "reset": True}),
    ("", {"drop": True}),
])
def test_faults_that_cannot_be_armed_are_refused(sandbox, operation, fault):
    with pytest.raises(SandboxError, match="400"):
        sandbox.add_fault(operation, **fault)
    assert sandbox.clear_faults() == {"faults": []}


@pytest.mark.parametrize("switch", [{"deploy_interval": -1}, {"deploy_interval": "5"},
                                    {"needs_deployment": "yes"}, {"quota": -3},
                                    {"delete_in_use": "maybe"}, {"nope": 1},
                                    {"config_delay": -1}, {"config_types": ["AWS::S3::Bucket"]},
                                    {"config_types": "AWS::ApiGateway::Stage"},
                                    {"config_v2_api_id": "no"}, {"date_skew": "soon"},
                                    {"date_header": 1}, {"websocket_acm": "maybe"},
                                    {"acm_in_use_by": "yes"}, {"acm_propagation_seconds": -1},
                                    {"trust_store_self_signed": "yes"},
                                    {"trust_store_pending_describes": -1},
                                    {"config_evaluation_types": "some"}])
def test_switches_refuse_bad_values(sandbox, switch):
    with pytest.raises(SandboxError, match="400"):
        sandbox.switches(**switch)
    assert sandbox.switches() == {"delete_in_use": "allow", "needs_deployment": False,
                                  "quota": 60, "deploy_interval": 5.0, "config_delay": 0.0,
                                  "config_types": list(CONFIG_TYPES), "config_v2_api_id": True,
                                  "config_evaluation_types": "recorded",
                                  "date_skew": 0.0, "date_header": True,
                                  "websocket_acm": "refuse", "acm_in_use_by": False,
                                  "acm_propagation_seconds": 0.0,
                                  "trust_store_self_signed": "refuse",
                                  "trust_store_pending_describes": 0}


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


def test_reset_leaves_nothing_for_the_next_test(sandbox):
    """A worker's one server serves all its tests: ``reset`` (the ``sandbox`` fixture's) puts
    every control back and empties moto's state in every service a test writes to."""
    defaults = sandbox.switches()
    cert_id = make_cert(sandbox, 10)
    make_rest_stage(cert_id)
    client("ssm").put_parameter(Name="/left/over", Value="x", Type="String")
    client("s3").create_bucket(Bucket="left-over")
    client("sqs").create_queue(QueueName="left-over")
    sandbox.set_now("2030-01-01T00:00:00+00:00", tick=False)
    sandbox.add_fault("GetStages", code="BadRequestException", status=400)
    sandbox.throttle(rate=5, burst=5)
    sandbox.switches(needs_deployment=True, quota=3, deploy_interval=60, delete_in_use="refuse")
    assert sandbox.counters() != []
    sandbox.reset()
    assert sandbox.switches() == defaults
    assert sandbox.clear_faults() == {"faults": []}
    assert sandbox.counters() == []
    assert CONTROLS.clock.ticking and CONTROLS.throttle.rate is None  # this process's server
    assert client("apigateway").get_client_certificates()["items"] == []
    assert client("apigateway").get_rest_apis()["items"] == []
    assert client("ssm").describe_parameters()["Parameters"] == []
    assert client("s3").list_buckets()["Buckets"] == []
    assert client("sqs").list_queues().get("QueueUrls", []) == []


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

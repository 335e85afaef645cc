"""``post-expiry-event`` through the real ``custodian`` against the sandbox: the events are read
back as a user's rule receives them, from an SQS queue that an EventBridge rule (matching the
detail-type) targets in the sandbox."""
import datetime
import json
import math
import pathlib

import pytest
from c7n.config import Config
from c7n.exceptions import PolicyValidationError
from c7n.policy import Policy
from c7n.resources import load_resources
from c7n.schema import generate, validate
from conftest import (
    ACCOUNT, REGION, api_calls, assume_role_allowed, client, make_cert, make_rest_stage,
    make_websocket_stage)
from test_metrics import AT, cert_at, run_frozen

from c7n_apigw_certs import iam
from c7n_apigw_certs.signals.events import DEFAULT_DETAIL_TYPE, DEFAULT_SOURCE, MAX_ENTRIES
from c7n_apigw_certs.audit.resource import certificate_arn

ROOT = pathlib.Path(__file__).resolve().parents[1]
POLICY_FILE = ROOT / "policies" / "expiry-event.yml"
DAY = datetime.timedelta(days=1)
WEST = "eu-west-1"


def event_policy(**action):
    return {"name": "expiry-event", "resource": "aws.apigw-client-certificate",
            "actions": [dict({"type": "post-expiry-event"}, **action)]}


def route(region=REGION, bus="default", detail_type=DEFAULT_DETAIL_TYPE, name="expiry"):
    """A rule on the bus matching the detail-type, with an SQS queue as its target; the
    queue's URL."""
    sqs, events = client("sqs", region), client("events", region)
    url = sqs.create_queue(QueueName="%s-%s" % (name, bus))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    if bus != "default":
        events.create_event_bus(Name=bus)
    events.put_rule(Name=name, EventBusName=bus,
                    EventPattern=json.dumps({"detail-type": [detail_type]}))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
    return url


def delivered(url, region=REGION):
    """{certificate id: event} of every event on the queue."""
    sqs, found = client("sqs", region), {}
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return found
        for m in messages:
            event = json.loads(m["Body"])
            cert_id = event["detail"]["ClientCertificateId"]
            assert cert_id not in found, "two events for %s" % cert_id
            found[cert_id] = event
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def events_calls(control, outcome="ok"):
    return api_calls(control, "events", outcome)


@pytest.fixture
def sandbox(sandbox):
    sandbox.set_now(AT.isoformat(), tick=False)
    return sandbox


# -- the events ------------------------------------------------------------------------------
def test_the_shipped_policy_one_event_per_certificate(sandbox, tmp_path):
    """policies/expiry-event.yml: an event per certificate that a stage presents and that
    expires within 45 days (expired included), with ACM's DaysToExpiry, the stages (REST and
    WebSocket), the owner, and the certificate's ARN in resources; in each region's own bus."""
    expired = cert_at(sandbox, "orders-prod", AT - 3 * DAY)
    near = cert_at(sandbox, "shared-backend", AT + 5 * DAY)
    edge = cert_at(sandbox, "edge", AT + 45 * DAY)
    outside = cert_at(sandbox, "outside", AT + 45 * DAY + datetime.timedelta(seconds=1))
    unused = cert_at(sandbox, "unused", AT + 2 * DAY)
    orders = make_rest_stage(expired, api_name="orders-api")
    make_rest_stage(near, stage="staging", api_id=orders)
    chat = make_websocket_stage(near, api_name="chat", stage="production")
    make_rest_stage(edge, api_name="edge-api")
    make_rest_stage(outside, api_name="outside-api")
    sandbox.tag_as_stack(certificate_arn(REGION, expired),
                         "arn:aws:cloudformation:%s:%s:stack/orders/1" % (REGION, ACCOUNT),
                         "OrdersCertificate")
    west = cert_at(sandbox, "eu-orders", AT + 12 * DAY, region=WEST)
    make_rest_stage(west, api_name="eu-orders-api", region=WEST)
    queue, west_queue = route(), route(WEST)
    sandbox.reset_counters()

    run_frozen(sandbox, tmp_path, str(POLICY_FILE), regions=(REGION, WEST))
    events = delivered(queue)
    assert set(events) == {expired, near, edge}
    assert unused not in events and outside not in events
    assert events_calls(sandbox) == {"PutEvents": 2}  # one request per region

    event = events[near]
    assert event["source"] == DEFAULT_SOURCE == "c7n-apigw-certs"
    assert event["detail-type"] == "API Gateway Client Certificate Approaching Expiration"
    assert event["resources"] == [certificate_arn(REGION, near)]
    assert event["account"] == ACCOUNT and event["region"] == REGION
    assert event["time"] == AT.strftime("%Y-%m-%dT%H:%M:%SZ")
    detail = event["detail"]
    stages = sorted(detail.pop("Stages"), key=lambda s: s["Protocol"])
    assert detail == {
        "ClientCertificateId": near, "ClientCertificateArn": certificate_arn(REGION, near),
        "Description": "shared-backend", "DaysToExpiry": 5, "Expired": False,
        "ExpiresAt": (AT + 5 * DAY).isoformat(), "ExpirySource": "expirationDate",
        "Kind": "generated", "Condition": "expires", "ConditionDetail": "",
        "StageCount": 2, "StagesTruncated": False,
        "Owner": None, "Region": REGION, "Account": ACCOUNT}
    assert stages == [
        {"Protocol": "REST", "ApiId": orders, "ApiName": "orders-api", "StageName": "staging",
         "Owner": None},
        {"Protocol": "WEBSOCKET", "ApiId": chat, "ApiName": "chat",
         "StageName": "production", "Owner": None}]
    assert events[expired]["detail"]["DaysToExpiry"] == -3
    assert events[expired]["detail"]["Expired"] is True
    assert events[expired]["detail"]["Owner"] == {
        "tool": "cloudformation", "stack": "orders", "logical-id": "OrdersCertificate"}
    assert events[edge]["detail"]["DaysToExpiry"] == 45
    # The other region's certificate went to that region's bus, with its region.
    (west_event,) = delivered(west_queue, WEST).values()
    assert west_event["resources"] == [certificate_arn(WEST, west)]
    assert west_event["detail"]["Region"] == west_event["region"] == WEST
    assert west_event["detail"]["DaysToExpiry"] == 12


def test_ten_entries_a_request(sandbox, tmp_path):
    count = 2 * MAX_ENTRIES + 3
    certs = {make_cert(sandbox, 10) for _ in range(count)}
    queue = route()
    sandbox.reset_counters()
    run_frozen(sandbox, tmp_path, event_policy())
    assert set(delivered(queue)) == certs
    assert events_calls(sandbox) == {"PutEvents": math.ceil(count / MAX_ENTRIES)}


def test_requests_stay_under_256_kb_and_a_detail_lists_100_stages():
    """Certificates with many stages: requests packed by EventBridge's entry size, each under
    256 KB; a detail lists the first 100 stages and counts them all."""
    from c7n_apigw_certs.signals.events import (
        MAX_REQUEST_SIZE, MAX_STAGES, PostExpiryEvent, batches, entry_size)
    load_resources(("aws.apigw-client-certificate",))
    policy = Policy({"name": "p", "resource": "aws.apigw-client-certificate",
                     "actions": [{"type": "post-expiry-event"}]},
                    Config.empty(region=REGION, account_id=ACCOUNT))
    (action,) = policy.resource_manager.actions
    assert isinstance(action, PostExpiryEvent)
    stage = {"protocol": "REST", "apiId": "a1b2c3d4e5", "stageName": "prod-" + "x" * 100,
             "apiName": "api-" + "y" * 100, "owner": {"type": "cloudformation",
                                                      "stack": "s" * 100}}
    certs = [{"clientCertificateId": "c%05d" % n, "expirationDate": AT + 5 * DAY,
              "c7n:stages": [dict(stage, apiId="a%09d" % i) for i in range(n * 30)]}
             for n in range(1, 11)]
    entries = [(c, action.entry(c, REGION, ACCOUNT, AT)) for c in certs]
    sent = list(batches(entries))
    assert [c["clientCertificateId"] for b in sent for c, _ in b] == [
        c["clientCertificateId"] for c in certs]  # every one, in order
    assert len(sent) > 1 and all(len(b) <= MAX_ENTRIES for b in sent)
    assert all(sum(entry_size(e) for _, e in b) <= MAX_REQUEST_SIZE for b in sent)
    last = json.loads(entries[-1][1]["Detail"])
    assert len(last["Stages"]) == MAX_STAGES and last["StageCount"] == 300
    assert last["StagesTruncated"] is True
    first = json.loads(entries[0][1]["Detail"])
    assert len(first["Stages"]) == first["StageCount"] == 30
    assert first["StagesTruncated"] is False


def test_source_detail_type_and_bus_from_the_policy(sandbox, tmp_path):
    cert = make_cert(sandbox, 10)
    default_queue = route()
    queue = route(bus="certificates", detail_type="Client certificate expiring",
                  name="custom")
    run_frozen(sandbox, tmp_path, event_policy(**{
        "source": "com.example.platform", "detail-type": "Client certificate expiring",
        "event-bus": "certificates"}))
    (event,) = delivered(queue).values()
    assert event["source"] == "com.example.platform"
    assert event["detail-type"] == "Client certificate expiring"
    assert event["resources"] == [certificate_arn(REGION, cert)]
    assert delivered(default_queue) == {}


# -- failures, dry runs ----------------------------------------------------------------------
def test_a_refused_entry_stays_with_its_certificate(sandbox, tmp_path):
    """EventBridge refuses one entry of a request (FailedEntryCount 1): that certificate is
    logged and named in the run's failure; the other certificates' events arrive, in the same
    request and the next one; custodian exits 2."""
    certs = [make_cert(sandbox, 10, description="c%d" % i) for i in range(MAX_ENTRIES + 2)]
    queue = route()
    refused = certs[3]
    sandbox.add_fault("PutEventsEntry", service="events", target=refused,
                      code="NotAuthorizedForSourceException",
                      message="Not authorized for the source.")
    sandbox.reset_counters()
    _, proc = run_frozen(sandbox, tmp_path, event_policy(), check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert set(delivered(queue)) == set(certs) - {refused}
    assert events_calls(sandbox) == {"PutEvents": 2}  # not sent again: not retryable
    assert events_calls(sandbox, "fault") == {"PutEventsEntry": 1}
    assert "client-certificate:%s post-expiry-event failed: NotAuthorizedForSourceException: " \
        "Not authorized for the source." % refused in proc.stderr
    assert "PolicyExecutionError" in proc.stderr
    assert "post-expiry-event: 1 of %d certificate(s) have no event: client-certificate:%s" % (
        len(certs), refused) in proc.stderr
    assert "post-expiry-event: %d event(s) sent" % (len(certs) - 1) in proc.stderr


def test_a_retryable_entry_is_sent_once_more(sandbox, tmp_path):
    """ThrottlingException on one entry (retryable, says the API reference): it is sent again
    in one more request, and arrives once; the run succeeds. Twice in a row, it fails."""
    certs = [make_cert(sandbox, 10) for _ in range(3)]
    queue = route()
    sandbox.add_fault("PutEventsEntry", service="events", target=certs[1],
                      code="ThrottlingException", message="Rate exceeded")
    sandbox.reset_counters()
    _, proc = run_frozen(sandbox, tmp_path, event_policy())
    assert set(delivered(queue)) == set(certs)
    assert events_calls(sandbox) == {"PutEvents": 2}
    assert "sending them once more" in proc.stderr

    sandbox.add_fault("PutEventsEntry", service="events", target=certs[1], count=2,
                      code="InternalFailure", message="Internal failure")
    _, proc = run_frozen(sandbox, tmp_path, event_policy(), check=False)
    assert proc.returncode == 2
    assert set(delivered(queue)) == set(certs) - {certs[1]}
    assert "client-certificate:%s post-expiry-event failed: InternalFailure" % certs[1] \
        in proc.stderr


def test_a_failed_request_fails_its_certificates_and_the_others_are_sent(sandbox, tmp_path):
    certs = [make_cert(sandbox, 10) for _ in range(MAX_ENTRIES + 4)]
    queue = route()
    sandbox.add_fault("PutEvents", service="events", code="InternalException", status=500,
                      message="boom", count=-1, after=1)
    _, proc = run_frozen(sandbox, tmp_path, event_policy(), check=False)
    assert proc.returncode == 2
    arrived = set(delivered(queue))
    assert len(arrived) == MAX_ENTRIES  # the first request; the second one failed
    for cert in set(certs) - arrived:
        assert "client-certificate:%s post-expiry-event failed: PutEvents: " \
            "InternalException: boom" % cert in proc.stderr
    assert "4 of %d certificate(s) have no event" % len(certs) in proc.stderr


def test_dryrun_sends_nothing(sandbox, tmp_path):
    make_rest_stage(make_cert(sandbox, 10))
    queue = route()
    sandbox.reset_counters()
    found, _ = run_frozen(sandbox, tmp_path, str(POLICY_FILE), extra=["--dryrun"])
    assert len(found[REGION]) == 1
    assert events_calls(sandbox) == {}
    assert delivered(queue) == {}


def test_no_certificate_no_request(sandbox, tmp_path):
    sandbox.reset_counters()
    run_frozen(sandbox, tmp_path, event_policy())
    assert events_calls(sandbox) == {}


# -- configuration and IAM -----------------------------------------------------------------
@pytest.mark.parametrize("action", [
    {"source": ""}, {"source": "s" * 257}, {"detail-type": ""}, {"detail-type": "d" * 129},
    {"event-bus": ""}, {"event-bus": "has space"}, {"event-bus": "arn:aws:sns:x"},
    {"event_bus": "default"}, {"source": 7},
], ids=lambda a: repr(a)[:40])
def test_schema_refuses(action):
    load_resources(("aws.apigw-client-certificate",))
    assert validate({"policies": [event_policy(**action)]}, generate())


def test_schema_accepts():
    load_resources(("aws.apigw-client-certificate",))
    for action in ({}, {"source": "com.example", "detail-type": "x", "event-bus": "b-1.x/y"},
                   {"event-bus": "arn:aws:events:us-east-1:123456789012:event-bus/central"}):
        assert validate({"policies": [event_policy(**action)]}, generate()) == []


@pytest.mark.parametrize("source", ["aws.acm", "AWS.apigateway"])
def test_reserved_source_is_refused_at_load(source):
    load_resources(("aws.apigw-client-certificate",))
    policy = Policy(event_policy(source=source), Config.empty(region=REGION,
                                                               account_id=ACCOUNT))
    with pytest.raises(PolicyValidationError,
                       match="policy:expiry-event post-expiry-event.source: '%s': sources "
                             "that begin with aws. are reserved" % source):
        policy.validate()


def test_the_document_names_the_bus():
    doc = iam.policy_document([str(POLICY_FILE)])
    assert {"Sid": "EventsPutEvents", "Effect": "Allow", "Action": ["events:PutEvents"],
            "Resource": ["arn:aws:events:*:*:event-bus/default"]} in doc["Statement"]
    assert sorted(a for s in doc["Statement"] for a in s["Action"]) == [
        "acm-pca:DescribeCertificateAuthority", "acm:DescribeCertificate", "acm:GetCertificate",
        "acm:ListCertificates", "apigateway:GET", "events:PutEvents"]


def test_the_document_of_a_bus_arn(tmp_path):
    arn = "arn:aws:events:us-east-1:210987654321:event-bus/central"
    path = tmp_path / "p.yml"
    path.write_text(json.dumps({"policies": [event_policy(**{"event-bus": arn})]}))
    doc = iam.policy_document([str(path)], region=REGION, account=ACCOUNT)
    assert {"Sid": "EventsPutEvents", "Effect": "Allow", "Action": ["events:PutEvents"],
            "Resource": [arn]} in doc["Statement"]


def test_runs_under_exactly_the_document(sandbox, tmp_path):
    """As a role with exactly the generated document the events arrive; a document for
    another bus, or without events:PutEvents, is refused by the sandbox, naming the action
    and the bus, and nothing arrives."""
    make_rest_stage(make_cert(sandbox, 10))
    queue = route()
    doc = iam.policy_document([str(POLICY_FILE)], region=REGION, account=ACCOUNT)
    run_frozen(sandbox, tmp_path, str(POLICY_FILE),
               extra=["--assume", assume_role_allowed(doc)])
    assert len(delivered(queue)) == 1

    other_bus = json.loads(json.dumps(doc).replace("event-bus/default", "event-bus/other"))
    without = dict(doc, Statement=[s for s in doc["Statement"]
                                   if s["Action"] != ["events:PutEvents"]])
    for name, narrowed in (("other-bus", other_bus), ("without", without)):
        _, proc = run_frozen(sandbox, tmp_path, str(POLICY_FILE), check=False,
                             extra=["--assume", assume_role_allowed(narrowed, role=name)])
        assert proc.returncode == 2, name
        assert "not authorized to perform: events:PutEvents on resource: " \
            "arn:aws:events:%s:%s:event-bus/default" % (REGION, ACCOUNT) in proc.stderr, name
        assert delivered(queue) == {}

"""``put-expiry-metric`` through the real ``custodian`` against the sandbox: the datapoints are
read back from the sandbox's CloudWatch (values, dimensions, namespace, timestamp, unit)."""
import datetime
import pathlib
import re

import pytest
from c7n.config import Config
from c7n.exceptions import PolicyValidationError
from c7n.policy import Policy
from c7n.resources import load_resources
from c7n.schema import generate, validate
from conftest import (
    ACCOUNT, REGION, api_calls, client, custodian_run, make_cert, make_rest_stage,
    make_websocket_stage)

from c7n_apigw_certs import iam
from c7n_apigw_certs.signals.metrics import DEFAULT_METRIC_NAME, DEFAULT_NAMESPACE, MAX_DATA

ROOT = pathlib.Path(__file__).resolve().parents[1]
POLICY_FILE = ROOT / "policies" / "expiry-metric.yml"
AT = datetime.datetime(2030, 6, 15, 12, 0, tzinfo=datetime.timezone.utc)
WEST = "eu-west-1"


def cloudwatch_calls(control, outcome="ok"):
    """{operation: calls} of CloudWatch from the sandbox's counters (the gate names a service
    by its SigV4 signing name: ``monitoring``)."""
    return api_calls(control, "monitoring", outcome)


def metric_policy(**action):
    return {"name": "expiry-metric", "resource": "aws.apigw-client-certificate",
            "actions": [dict({"type": "put-expiry-metric"}, **action)]}


@pytest.fixture
def sandbox(sandbox):
    """conftest's sandbox, standing still at AT: certificates made in a test expire relative to
    AT, and ``run_frozen`` runs custodian at AT."""
    sandbox.set_now(AT.isoformat(), tick=False)
    return sandbox


def run_frozen(control, tmp_path, policy, regions=(REGION,), check=True, extra=(), at=AT):
    """``custodian run`` with its clock frozen at ``at`` (AT), where the sandbox stands: the
    days to expiry are exact to the second. Its waits (retry back-off) move both clocks on
    instead of waiting (timeshift --sandbox-sleep). Returns ({region: resources}, the
    process)."""
    return custodian_run(control, tmp_path, policy, regions, check, extra, at=at)


def cert_at(control, description, expires, region=REGION, **extra):
    """A certificate whose expirationDate is ``expires`` (365 days after its creation)."""
    return control.create_certificate(
        region=region, description=description, account=ACCOUNT,
        created=(expires - datetime.timedelta(days=365)).isoformat(), **extra)[
            "clientCertificateId"]


def by_id(cert_id, region=REGION):
    return [{"Name": "ClientCertificateId", "Value": cert_id}, {"Name": "Region", "Value": region}]


def by_region(region=REGION):
    return [{"Name": "Region", "Value": region}]


def read_back(dimensions, region=REGION, namespace=DEFAULT_NAMESPACE,
              metric=DEFAULT_METRIC_NAME):
    """{Minimum, Maximum, SampleCount: value} of the metric with exactly these dimensions over
    the minute that starts at AT (GetMetricData, as an alarm reads it), or {} if it has no
    datapoint; every datapoint must be stamped AT."""
    queries = [{"Id": stat.lower(), "Label": stat, "MetricStat": {
        "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dimensions},
        "Period": 60, "Stat": stat}} for stat in ("Minimum", "Maximum", "SampleCount")]
    results = client("cloudwatch", region).get_metric_data(
        MetricDataQueries=queries, StartTime=AT, EndTime=AT + datetime.timedelta(minutes=1))
    found = {}
    for result in results["MetricDataResults"]:
        assert [t.astimezone(datetime.timezone.utc) for t in result["Timestamps"]] == \
            [AT] * len(result["Values"])
        if result["Values"]:
            (found[result["Label"]],) = result["Values"]
    return found


def listed(region=REGION, namespace=DEFAULT_NAMESPACE):
    """Every (metric name, {dimension: value}) of the namespace, from ListMetrics."""
    pages = client("cloudwatch", region).get_paginator("list_metrics").paginate(
        Namespace=namespace)
    return sorted((m["MetricName"], tuple(sorted((d["Name"], d["Value"])
                                                 for d in m["Dimensions"])))
                  for page in pages for m in page["Metrics"])


def per_certificate(region=REGION, namespace=DEFAULT_NAMESPACE):
    """The ids that have a per-certificate series in the namespace."""
    return {dict(dims)["ClientCertificateId"] for _, dims in listed(region, namespace)
            if "ClientCertificateId" in dict(dims)}


# -- values ------------------------------------------------------------------------------
def test_days_to_expiry_on_both_sides_of_expiry_and_of_a_threshold(sandbox, tmp_path):
    """The ``expiring`` filter's c7n:days-left, whole days rounded up: 14 days exactly is 14,
    one second more is 15; one second before expiry is 1, a day after it -1, three days -3.
    The PEM's notAfter counts when it is the earlier date."""
    day, second = datetime.timedelta(days=1), datetime.timedelta(seconds=1)
    certs = {
        "d14": cert_at(sandbox, "d14", AT + 14 * day),
        "d14+1s": cert_at(sandbox, "d14+1s", AT + 14 * day + second),
        "1s-left": cert_at(sandbox, "1s-left", AT + second),
        "expired-1d": cert_at(sandbox, "expired-1d", AT - day),
        "expired-3d": cert_at(sandbox, "expired-3d", AT - 3 * day),
        "pem-10d": cert_at(sandbox, "pem-10d", AT + 200 * day,
                           not_after=(AT + 10 * day).isoformat()),
    }
    expected = {"d14": 14, "d14+1s": 15, "1s-left": 1, "expired-1d": -1, "expired-3d": -3,
                "pem-10d": 10}
    sandbox.reset_counters()
    policy = dict(metric_policy(), filters=[{"type": "expiring", "days": 365}])
    found, _ = run_frozen(sandbox, tmp_path, policy)
    assert cloudwatch_calls(sandbox) == {"PutMetricData": 1}  # one request for all
    # The filter's annotation and the metric are one number.
    assert {r["clientCertificateId"]: r["c7n:days-left"] for r in found[REGION]} == {
        cert_id: expected[name] for name, cert_id in certs.items()}
    for name, cert_id in certs.items():
        assert read_back(by_id(cert_id)) == {
            "Minimum": expected[name], "Maximum": expected[name], "SampleCount": 1}, name
    # The region's series: every certificate once, so its Minimum is the soonest expiry.
    assert read_back(by_region()) == {"Minimum": -3, "Maximum": 15, "SampleCount": 6}
    # The unit is Count.
    (point,) = client("cloudwatch").get_metric_statistics(
        Namespace=DEFAULT_NAMESPACE, MetricName=DEFAULT_METRIC_NAME,
        Dimensions=by_id(certs["expired-3d"]), StartTime=AT,
        EndTime=AT + datetime.timedelta(minutes=1), Period=60,
        Statistics=["Minimum"])["Datapoints"]
    assert point["Unit"] == "Count" and point["Minimum"] == -3


def test_dimensions_and_namespace(sandbox, tmp_path):
    first, second = make_cert(sandbox, 40), make_cert(sandbox, 50)
    expired = make_cert(sandbox, -3)
    run_frozen(sandbox, tmp_path, metric_policy())
    # Two certificates of one condition share that series (moto's ListMetrics names it twice).
    assert sorted(set(listed())) == sorted(
        [("DaysToExpiry", (("ClientCertificateId", first), ("Region", REGION))),
         ("DaysToExpiry", (("ClientCertificateId", second), ("Region", REGION))),
         ("DaysToExpiry", (("ClientCertificateId", expired), ("Region", REGION))),
         ("DaysToExpiry", (("Condition", "expired"), ("Region", REGION))),
         ("DaysToExpiry", (("Condition", "expires"), ("Region", REGION))),
         ("DaysToExpiry", (("Region", REGION),))])


def test_namespace_and_metric_name_from_the_policy(sandbox, tmp_path):
    cert = make_cert(sandbox, 20)
    run_frozen(sandbox, tmp_path, metric_policy(**{
        "namespace": "Platform/Certificates", "metric-name": "ClientCertificateDaysLeft"}))
    assert listed() == []
    assert listed(namespace="Platform/Certificates") == sorted(
        [("ClientCertificateDaysLeft", (("ClientCertificateId", cert), ("Region", REGION))),
         ("ClientCertificateDaysLeft", (("Condition", "expires"), ("Region", REGION))),
         ("ClientCertificateDaysLeft", (("Region", REGION),))])
    assert read_back(by_id(cert), namespace="Platform/Certificates",
                     metric="ClientCertificateDaysLeft")["Minimum"] == 20


# -- the shipped policy ------------------------------------------------------------------
def test_the_shipped_policy_as_is(sandbox, tmp_path):
    """policies/expiry-metric.yml in two regions: the certificates that REST and WebSocket
    stages present, each in its own region's CloudWatch; an unused one is left out."""
    rest, ws, unused = (make_cert(sandbox, days, description=d)
                        for days, d in ((12, "rest"), (-2, "ws"), (5, "unused")))
    make_rest_stage(rest)
    make_websocket_stage(ws)
    west = make_cert(sandbox, 30, region=WEST)
    make_rest_stage(west, region=WEST)
    make_cert(sandbox, 1, region=WEST, description="unused")
    run_frozen(sandbox, tmp_path, str(POLICY_FILE), regions=(REGION, WEST))
    assert per_certificate() == {rest, ws}
    assert read_back(by_id(rest))["Minimum"] == 12
    assert read_back(by_id(ws))["Minimum"] == -2  # expired, still in use: still published
    assert read_back(by_region()) == {"Minimum": -2, "Maximum": 12, "SampleCount": 2}
    assert per_certificate(WEST) == {west}
    assert read_back(by_id(west, WEST), WEST) == {"Minimum": 30, "Maximum": 30,
                                                   "SampleCount": 1}
    assert read_back(by_region(WEST), WEST)["SampleCount"] == 1
    assert unused not in per_certificate()


def test_the_shipped_policy_needs_put_metric_data_on_everything():
    doc = iam.policy_document([str(POLICY_FILE)])
    assert {"Sid": "AcmListCertificatesCloudwatchPutMetricData", "Effect": "Allow",
            "Action": ["acm:ListCertificates", "cloudwatch:PutMetricData"],
            "Resource": ["*"]} in doc["Statement"]
    assert sorted(a for s in doc["Statement"] for a in s["Action"]) == [
        "acm-pca:DescribeCertificateAuthority", "acm:DescribeCertificate", "acm:GetCertificate",
        "acm:ListCertificates", "apigateway:GET", "cloudwatch:PutMetricData"]


# -- failures, dry runs ------------------------------------------------------------------
def test_a_failed_request_is_logged_and_the_others_are_still_sent(sandbox, tmp_path):
    """Two requests (three datapoints a certificate, MAX_DATA a request); the first fails. Its
    certificates are named in the log, the second request is still sent, and the run fails
    with PolicyExecutionError (custodian exits 2). The fault hits the first request: the gate
    cannot tell which certificates a request carries (it does not parse a CBOR body), so the
    log line says which ones they were."""
    per_request = MAX_DATA // 3
    sandbox.switches(quota=per_request + 40)
    certs = {make_cert(sandbox, 100) for _ in range(per_request + 20)}
    sandbox.add_fault("PutMetricData", count=1, code="InvalidParameterValue", status=400,
                      message="The value for parameter MetricData is not valid")
    sandbox.reset_counters()
    _, proc = run_frozen(sandbox, tmp_path, metric_policy(), check=False)
    assert cloudwatch_calls(sandbox, outcome="fault") == {"PutMetricData": 1}
    assert cloudwatch_calls(sandbox) == {"PutMetricData": 1}
    assert proc.returncode == 2, proc.stderr[-3000:]
    (line,) = [ln for ln in proc.stderr.splitlines() if "PutMetricData failed" in ln]
    assert "no datapoint for %d certificate(s)" % per_request in line
    assert "InvalidParameterValue: The value for parameter MetricData is not valid" in line
    unsent = set(re.findall(r"client-certificate:([a-z0-9]+)", line))
    assert len(unsent) == per_request and unsent < certs
    assert per_certificate() == certs - unsent  # the other request went through
    assert read_back(by_region())["SampleCount"] == len(certs) - per_request
    assert "PolicyExecutionError" in proc.stderr
    assert "put-expiry-metric: %d of %d certificate(s) have no datapoint (1 failed request(s))" \
        % (per_request, len(certs)) in proc.stderr


def test_dryrun_sends_nothing(sandbox, tmp_path):
    cert = make_cert(sandbox, 10)
    make_rest_stage(cert)
    sandbox.reset_counters()
    found, _ = run_frozen(sandbox, tmp_path, str(POLICY_FILE), extra=["--dryrun"])
    assert [c["clientCertificateId"] for c in found[REGION]] == [cert]
    assert cloudwatch_calls(sandbox) == {}
    assert listed() == []


def test_no_certificate_no_request(sandbox, tmp_path):
    sandbox.reset_counters()
    run_frozen(sandbox, tmp_path, metric_policy())
    assert cloudwatch_calls(sandbox) == {}


# -- configuration -----------------------------------------------------------------------
@pytest.mark.parametrize("action", [
    {"namespace": ""}, {"namespace": ":leading-colon"}, {"namespace": "tab\there"},
    {"namespace": "\tleading-tab"}, {"namespace": "x" * 256}, {"namespace": 7},
    {"metric-name": ""}, {"metric-name": "y" * 256}, {"metric_name": "DaysToExpiry"},
], ids=lambda a: repr(a)[:40])
def test_schema_refuses(action):
    assert validate({"policies": [metric_policy(**action)]}, generate())


def test_schema_accepts():
    for action in ({}, {"namespace": "Team/Certs #1: prod", "metric-name": "Days left"},
                   {"namespace": "x" * 255, "metric-name": "y" * 255}):
        assert validate({"policies": [metric_policy(**action)]}, generate()) == []


def test_reserved_namespace_is_refused_at_load():
    load_resources(("aws.apigw-client-certificate",))
    policy = Policy(metric_policy(namespace="AWS/CertificateManager"),
                    Config.empty(region=REGION, account_id=ACCOUNT))
    with pytest.raises(PolicyValidationError,
                       match="policy:expiry-metric put-expiry-metric.namespace: "
                             "'AWS/CertificateManager': namespaces that begin with AWS/"):
        policy.validate()

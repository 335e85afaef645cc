"""``post-finding`` on certificates through the real ``custodian`` against the sandbox: findings
read back with GetFindings (severity by urgency, stages, remediation), updated in place, archived
once their certificate is rotated, failures kept to their certificate, --dryrun, IAM."""
import datetime
import json
import pathlib

import pytest
from c7n.config import Config
from c7n.exceptions import PolicyValidationError
from c7n.policy import Policy
from c7n.resources import load_resources
from conftest import (
    ACCOUNT, REGION, api_calls, assume_role_allowed, client, make_rest_stage,
    make_websocket_stage)
from test_metrics import AT, cert_at, run_frozen
from test_rotate_safety import SSM_NAME

from c7n_apigw_certs import iam
from c7n_apigw_certs.signals.findings import ClientCertificateFinding
from c7n_apigw_certs.audit.resource import certificate_arn

ROOT = pathlib.Path(__file__).resolve().parents[1]
POLICY_FILE = str(ROOT / "policies" / "findings.yml")
POLICY = "apigw-client-certificates-findings"
DAY = datetime.timedelta(days=1)
WEST = "eu-west-1"


@pytest.fixture
def sandbox(sandbox):
    """Standing still at AT, where ``run_frozen`` runs custodian."""
    sandbox.set_now(AT.isoformat(), tick=False)
    return sandbox


@pytest.fixture
def estate(sandbox):
    """Expired, 3 days, 20 days, and 60 days (outside the 30-day window); the 3-day one is
    presented by a REST and a WebSocket stage."""
    certs = {name: cert_at(sandbox, name, AT + days * DAY)
             for name, days in (("expired", -3), ("d3", 3), ("d20", 20), ("d60", 60))}
    certs["orders"] = make_rest_stage(certs["d3"], "orders-api")
    certs["live"] = make_websocket_stage(certs["d3"], "live-updates", "production")
    make_rest_stage(certs["expired"], "legacy-api")
    return certs


def findings(region=REGION, **states):
    """{certificate id: finding} from GetFindings, every page; ``states``: RecordState..."""
    filters = {k: [{"Value": v, "Comparison": "EQUALS"}] for k, v in states.items()}
    pages = client("securityhub", region).get_paginator("get_findings").paginate(
        Filters=filters)
    return {f["Resources"][0]["Id"].rsplit("/", 1)[-1]: f
            for page in pages for f in page["Findings"]}


def hub_calls(sandbox, outcome="ok"):
    return api_calls(sandbox, "securityhub", outcome)


def run_at(sandbox, tmp_path, policy=POLICY_FILE, days=0, regions=(REGION,), check=True,
           extra=()):
    """``custodian run`` frozen ``days`` after AT, the sandbox standing there too; returns
    ({region: resources}, the process)."""
    when = AT + days * DAY
    sandbox.set_now(when.isoformat(), tick=False)
    return run_frozen(sandbox, tmp_path, policy, regions, check, extra, at=when)


# -- what a finding says -----------------------------------------------------------------
def test_severity_by_urgency_stages_and_remediation(sandbox, tmp_path, estate):
    sandbox.reset_counters()
    run_at(sandbox, tmp_path)
    # One read of the policy's findings, one import for all: the fewest calls.
    assert hub_calls(sandbox) == {"GetFindings": 1, "BatchImportFindings": 1}
    found = findings()
    assert set(found) == {estate["expired"], estate["d3"], estate["d20"]}
    assert {cert: f["Severity"]["Label"] for cert, f in found.items()} == {
        estate["expired"]: "CRITICAL", estate["d3"]: "HIGH", estate["d20"]: "MEDIUM"}
    near = found[estate["d3"]]
    assert near["FindingProviderFields"]["Severity"] == {"Label": "HIGH", "Original": "3"}
    assert near["Id"] == "%s/%s/%s/%s" % (REGION, ACCOUNT, POLICY, estate["d3"])
    assert near["Title"] == "API Gateway client certificate expires soon"
    assert near["RecordState"] == "ACTIVE" and near["Workflow"]["Status"] == "NEW"
    assert near["Types"] == ["Software and Configuration Checks/AWS Security Best Practices"]
    (resource,) = near["Resources"]
    assert resource["Id"] == certificate_arn(REGION, estate["d3"])
    assert resource["Type"] == "Other" and resource["Region"] == REGION
    assert resource["Details"]["Other"] == {
        "clientCertificateId": estate["d3"], "description": "d3",
        "expires": (AT + 3 * DAY).isoformat(), "daysLeft": "3", "expired": "false",
        "expirySource": "expirationDate", "stageCount": "2", "kind": "generated",
        "condition": "expires",
        "stage:1": "REST orders-api (%s) / prod" % estate["orders"],
        "stage:2": "WEBSOCKET live-updates (%s) / production" % estate["live"]}
    text = near["Remediation"]["Recommendation"]["Text"]
    assert text.startswith("Rotate API Gateway client certificate %s (expires %s): run the "
                           "rotate policy (policies/rotate.yml" % (
                               estate["d3"], (AT + 3 * DAY).isoformat()))
    assert "switches the 2 stage(s)" in text
    assert "(expired %s)" % (AT - 3 * DAY).isoformat() in found[estate["expired"]][
        "Remediation"]["Recommendation"]["Text"]
    assert found[estate["expired"]]["Resources"][0]["Details"]["Other"]["expired"] == "true"
    assert "stage:1" not in found[estate["d20"]]["Resources"][0]["Details"]["Other"]


def test_severity_label_and_recommendation_from_the_policy(sandbox, tmp_path, estate):
    policy = {"name": "fixed", "resource": "aws.apigw-client-certificate",
              "filters": [{"type": "expiring", "days": 30}],
              "actions": [{"type": "post-finding", "severity_label": "LOW",
                           "recommendation": "Call the platform team",
                           "recommendation_url": "https://wiki.example.com/certs",
                           "types": ["Software and Configuration Checks"]}]}
    run_at(sandbox, tmp_path, policy)
    found = findings()
    assert {f["Severity"]["Label"] for f in found.values()} == {"LOW"}
    assert found[estate["d3"]]["Remediation"]["Recommendation"] == {
        "Text": "Call the platform team", "Url": "https://wiki.example.com/certs"}


# -- the same finding, run after run; resolved once rotated ------------------------------
def test_a_later_run_updates_the_same_findings(sandbox, tmp_path, estate):
    run_at(sandbox, tmp_path)
    first = findings()
    run_at(sandbox, tmp_path, days=1)
    second = findings()
    assert set(second) == set(first)  # no second finding for the same certificate
    assert len(client("securityhub").get_findings()["Findings"]) == 3
    for cert, finding in second.items():
        assert finding["CreatedAt"] == first[cert]["CreatedAt"]
        assert finding["UpdatedAt"] > first[cert]["UpdatedAt"]
    # a day later: 20 -> 19 days, 3 -> 2, expired stays CRITICAL
    assert second[estate["d20"]]["Severity"] == {"Label": "MEDIUM", "Original": "19"}
    assert second[estate["d3"]]["Severity"]["Original"] == "2"


def rotate_only(cert_id):
    """policies/rotate.yml's action on one certificate, switched and retired in one run."""
    return {"name": "rotate", "resource": "aws.apigw-client-certificate",
            "filters": [{"type": "value", "key": "clientCertificateId", "value": cert_id}],
            "actions": [{"type": "rotate", "publish": [{"type": "ssm", "name": SSM_NAME}],
                         "switch-after-days": 0, "delete-after-days": 0}]}


def test_a_rotated_certificate_s_finding_is_archived_by_the_next_run(sandbox, tmp_path, estate):
    run_at(sandbox, tmp_path)
    run_at(sandbox, tmp_path, rotate_only(estate["d3"]))
    remaining = {c["clientCertificateId"] for c in
                 client("apigateway").get_client_certificates()["items"]}
    assert estate["d3"] not in remaining  # rotated and retired
    sandbox.reset_counters()
    out, _ = run_at(sandbox, tmp_path, days=1)
    assert hub_calls(sandbox) == {"GetFindings": 1, "BatchImportFindings": 1}
    archived = findings(RecordState="ARCHIVED")
    assert set(archived) == {estate["d3"]}
    # Archiving is the provider's way to close a finding; the workflow stays the customer's.
    assert archived[estate["d3"]]["Workflow"]["Status"] == "NEW"
    # "No issue was found": a view by severity alone stops counting it.
    assert archived[estate["d3"]]["Severity"]["Label"] == "INFORMATIONAL"
    assert archived[estate["d3"]]["FindingProviderFields"]["Severity"]["Label"] == \
        "INFORMATIONAL"
    assert archived[estate["d3"]]["UpdatedAt"].startswith((AT + DAY).date().isoformat())
    assert set(findings(RecordState="ACTIVE")) == {estate["expired"], estate["d20"]}
    assert set(findings()) == {estate["expired"], estate["d3"], estate["d20"]}
    # What the run did, in c7n's action output.
    action = json.loads((tmp_path / "out" / POLICY / "action-post-finding").read_text())
    assert action["archived"] == ["%s/%s/%s/%s" % (REGION, ACCOUNT, POLICY, estate["d3"])]
    assert len(action["posted"]) == 2


def test_a_certificate_that_matches_again_is_active_again(sandbox, tmp_path, estate):
    """Renewed out of the window, archived; back in it (a 45-day window), ACTIVE and NEW."""
    run_at(sandbox, tmp_path)
    narrow = dict(json_policy(), filters=[{"type": "expiring", "days": 10}])
    run_at(sandbox, tmp_path, narrow, days=1)
    assert set(findings(RecordState="ARCHIVED")) == {estate["d20"]}
    wide = dict(json_policy(), filters=[{"type": "expiring", "days": 45}])
    run_at(sandbox, tmp_path, wide, days=2)
    assert findings(RecordState="ARCHIVED") == {}
    back = findings()[estate["d20"]]
    assert back["RecordState"] == "ACTIVE" and back["Workflow"]["Status"] == "NEW"
    assert back["Severity"]["Original"] == "18" and back["Severity"]["Label"] == "MEDIUM"


def test_when_nothing_matches_any_more_the_findings_are_archived(sandbox, tmp_path):
    """c7n runs no action for a policy that matched nothing; the resource gives post-finding
    its turn then: the region's last certificate rotated away still closes its finding."""
    only, other = cert_at(sandbox, "only", AT + 5 * DAY), cert_at(sandbox, "other", AT + 6 * DAY)
    run_at(sandbox, tmp_path)
    assert set(findings(RecordState="ACTIVE")) == {only, other}
    for cert_id in (only, other):
        client("apigateway").delete_client_certificate(clientCertificateId=cert_id)
    sandbox.reset_counters()
    found, _ = run_at(sandbox, tmp_path, days=1, extra=["--dryrun"])
    assert found.get(REGION, []) == [] and hub_calls(sandbox) == {}  # --dryrun: nothing
    found, _ = run_at(sandbox, tmp_path, days=1)
    assert found.get(REGION, []) == []
    assert hub_calls(sandbox) == {"GetFindings": 1, "BatchImportFindings": 1}
    assert findings(RecordState="ACTIVE") == {}
    assert set(findings(RecordState="ARCHIVED")) == {only, other}
    action = json.loads((tmp_path / "out" / POLICY / "action-post-finding").read_text())
    assert action["posted"] == [] and len(action["archived"]) == 2
    sandbox.reset_counters()
    run_at(sandbox, tmp_path, days=2)  # nothing ACTIVE left: one read, no import
    assert hub_calls(sandbox) == {"GetFindings": 1}


def test_another_policy_s_findings_and_another_region_s_are_left_alone(sandbox, tmp_path,
                                                                         estate):
    other = dict(json_policy(), name="other-policy")
    run_at(sandbox, tmp_path, other)
    west = cert_at(sandbox, "west", AT + 4 * DAY, region=WEST)
    run_at(sandbox, tmp_path, regions=(REGION, WEST))
    narrow = dict(json_policy(), filters=[{"type": "expiring", "days": 1}])
    run_at(sandbox, tmp_path, narrow, days=1, regions=(REGION,))
    # This policy's d3 and d20 in us-east-1 archived; other-policy's untouched; eu-west-1's
    # finding is in its own hub.
    assert {f["GeneratorId"] for f in findings(RecordState="ARCHIVED").values()} == {POLICY}
    assert len([f for f in client("securityhub").get_findings()["Findings"]
                if f["GeneratorId"] == "other-policy" and f["RecordState"] == "ACTIVE"]) == 3
    assert set(findings(WEST)) == {west}


def json_policy():
    """policies/findings.yml's policy as data."""
    import yaml
    with open(POLICY_FILE) as fh:
        (policy,) = yaml.safe_load(fh)["policies"]
    return policy


# -- failures, dry runs ------------------------------------------------------------------
def test_an_event_mode_archives_nothing_it_was_not_given(sandbox, tmp_path, estate):
    """An event mode (cloudtrail, hub-action) hands the action only the event's certificates:
    the others' findings stay ACTIVE, the given one is updated."""
    run_at(sandbox, tmp_path)
    assert len(findings(RecordState="ACTIVE")) == 3
    load_resources(("aws.apigw-client-certificate",))
    data = dict(json_policy(), mode={
        "type": "cloudtrail", "role": "arn:aws:iam::%s:role/custodian" % ACCOUNT,
        "events": [{"source": "apigateway.amazonaws.com", "event": "UpdateStage",
                    "ids": "requestParameters.restApiId"}]})
    policy = Policy(data, Config.empty(region=REGION, account_id=ACCOUNT,
                                       output_dir=str(tmp_path / "event")))
    (action,) = policy.resource_manager.actions
    (cert,) = [c for c in client("apigateway").get_client_certificates()["items"]
               if c["clientCertificateId"] == estate["d3"]]
    cert.update({"c7n:stages": []})
    sandbox.set_now((AT + DAY).isoformat(), tick=False)
    with policy.ctx:
        action.process([cert])
    assert findings(RecordState="ARCHIVED") == {}
    assert set(findings(RecordState="ACTIVE")) == {estate["expired"], estate["d3"],
                                                   estate["d20"]}
    policy.resource_manager.actions[0].on_no_match()  # not a pull mode: nothing either
    assert findings(RecordState="ARCHIVED") == {}


def test_nothing_matching_and_an_unreadable_hub_is_a_warning(sandbox, tmp_path):
    """Stock c7n makes no call when nothing matches: a region whose Security Hub is not
    enabled must not fail every run that finds nothing."""
    sandbox.add_fault("GetFindings", service="securityhub", code="InvalidAccessException",
                      message="not subscribed")
    found, proc = run_at(sandbox, tmp_path)
    assert found.get(REGION, []) == [] and proc.returncode == 0
    assert "could not all be archived" in proc.stderr and "not subscribed" in proc.stderr
    assert (tmp_path / "out" / POLICY / "resources.json").exists()


def test_an_archive_is_later_than_the_finding_even_with_a_clock_behind(sandbox, tmp_path,
                                                                       estate):
    """A run whose clock is behind the finding's UpdatedAt (another run, a skewed machine)
    still archives: Security Hub ignores an update that is not later."""
    run_at(sandbox, tmp_path, days=2)
    narrow = dict(json_policy(), filters=[{"type": "expiring", "days": 10}])
    run_at(sandbox, tmp_path, narrow, days=1)  # a day behind the findings it updates
    archived = findings(RecordState="ARCHIVED")
    assert set(archived) == {estate["d20"]}
    assert archived[estate["d20"]]["UpdatedAt"] > findings()[estate["expired"]]["CreatedAt"]


def test_a_finding_refused_stays_with_its_certificate(sandbox, tmp_path, estate):
    """A fault on one certificate's finding (answered in FailedFindings, as AWS answers a
    finding it refuses): that certificate is logged, the others are imported, exit 2."""
    sandbox.add_fault("ImportFinding", service="securityhub", target=estate["d3"],
                      code="InvalidInput", message="Finding refused by the sandbox")
    _, proc = run_at(sandbox, tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert hub_calls(sandbox, "fault") == {"ImportFinding": 1}
    assert set(findings()) == {estate["expired"], estate["d20"]}
    (line,) = [ln for ln in proc.stderr.splitlines() if "finding not imported" in ln]
    assert "client-certificate:%s finding not imported: InvalidInput: Finding refused by " \
           "the sandbox" % estate["d3"] in line
    assert "PolicyExecutionError" in proc.stderr
    run_at(sandbox, tmp_path, days=1)  # the next run posts it
    assert set(findings()) == {estate["expired"], estate["d3"], estate["d20"]}


def test_a_failed_request_does_not_stop_the_next(sandbox, tmp_path, estate):
    """One finding a request (batch_size 1); the second request fails: the other two are
    imported, the failed one is logged with its certificate."""
    policy = json_policy()
    policy["actions"][0]["batch_size"] = 1
    sandbox.add_fault("BatchImportFindings", service="securityhub", after=1,
                      code="InternalException", status=400, message="try later")
    sandbox.reset_counters()
    _, proc = run_at(sandbox, tmp_path, policy, check=False)
    assert proc.returncode == 2
    assert hub_calls(sandbox) == {"GetFindings": 1, "BatchImportFindings": 2}
    assert len(findings()) == 2
    (line,) = [ln for ln in proc.stderr.splitlines() if "finding not imported" in ln]
    assert "InternalException: try later" in line


def test_unreadable_findings_post_but_archive_nothing(sandbox, tmp_path, estate):
    run_at(sandbox, tmp_path)
    sandbox.add_fault("GetFindings", service="securityhub", code="InvalidAccessException",
                      message="not subscribed")
    narrow = dict(json_policy(), filters=[{"type": "expiring", "days": 1}])
    _, proc = run_at(sandbox, tmp_path, narrow, days=1, check=False)
    assert proc.returncode == 2
    assert "GetFindings: InvalidAccessException: not subscribed" in proc.stderr
    assert findings(RecordState="ARCHIVED") == {}
    assert findings()[estate["expired"]]["Severity"]["Original"] == "-4"  # still updated


def test_dryrun_posts_nothing(sandbox, tmp_path, estate):
    sandbox.reset_counters()
    found, _ = run_at(sandbox, tmp_path, extra=["--dryrun"])
    assert len(found[REGION]) == 3
    assert hub_calls(sandbox) == {}
    assert findings() == {}


# -- IAM, configuration ------------------------------------------------------------------
def test_the_policy_needs_exactly_these_permissions(sandbox, tmp_path, estate):
    doc = iam.policy_document([POLICY_FILE])
    assert sorted(a for s in doc["Statement"] for a in s["Action"]) == [
        "acm-pca:DescribeCertificateAuthority", "acm:DescribeCertificate", "acm:GetCertificate",
        "acm:ListCertificates", "apigateway:GET", "securityhub:BatchImportFindings",
        "securityhub:GetFindings"]
    assert {"Sid": "AcmListCertificatesSecurityHubBatchImportFindingsGetFindings",
            "Effect": "Allow", "Action": ["acm:ListCertificates",
                                          "securityhub:BatchImportFindings",
                                          "securityhub:GetFindings"],
            "Resource": ["*"]} in doc["Statement"]
    # ... and are enough: the run as a role with only them (the sandbox checks API Gateway's).
    run_at(sandbox, tmp_path, extra=["--assume", assume_role_allowed(doc)])
    assert api_calls(sandbox, outcome="denied") == {}
    assert len(findings()) == 3
    assert ClientCertificateFinding.permissions == (
        "securityhub:BatchImportFindings", "securityhub:GetFindings")


def test_bad_finding_types_are_refused_at_load():
    load_resources(("aws.apigw-client-certificate",))
    policy = Policy(dict(json_policy(), actions=[{"type": "post-finding",
                                                  "types": ["Not A Namespace/x"]}]),
                    Config.empty(region=REGION, account_id=ACCOUNT))
    with pytest.raises(PolicyValidationError, match="Finding types must be in the format"):
        policy.validate()


# -- the sandbox's Security Hub (sandbox/securityhub.py; facts 61-64) ----------------------
def asff(finding_id, updated, **extra):
    return dict({
        "SchemaVersion": "2018-10-08", "Id": finding_id, "GeneratorId": "g",
        "ProductArn": "arn:aws:securityhub:us-east-1::product/cloud-custodian/cloud-custodian",
        "AwsAccountId": ACCOUNT, "Types": ["Software and Configuration Checks"],
        "CreatedAt": "2030-01-01T00:00:00+00:00", "UpdatedAt": updated,
        "Severity": {"Label": "LOW"}, "Title": "t", "Description": "d",
        "Resources": [{"Type": "Other", "Id": certificate_arn(REGION, "abc123")}]}, **extra)


def test_sandbox_imports_as_security_hub_does(sandbox):
    hub = client("securityhub")
    answer = hub.batch_import_findings(Findings=[
        asff("a", "2030-01-02T00:00:00Z"),
        {k: v for k, v in asff("b", "2030-01-02T00:00:00Z").items() if k != "Types"}])
    assert answer["FailedCount"] == 1 and answer["FailedFindings"][0]["Id"] == "b"
    assert answer["FailedFindings"][0]["ErrorCode"] == "InvalidInput"
    (a,) = hub.get_findings()["Findings"]
    assert a["Workflow"] == {"Status": "NEW"} and a["RecordState"] == "ACTIVE"
    assert a["FindingProviderFields"]["Severity"] == {"Label": "LOW"}
    # An older update is ignored; a newer one updates, through FindingProviderFields too,
    # and cannot change the workflow.
    hub.batch_import_findings(Findings=[asff("a", "2030-01-01T12:00:00Z", Title="old")])
    assert hub.get_findings()["Findings"][0]["Title"] == "t"
    hub.batch_import_findings(Findings=[asff(
        "a", "2030-01-03T00:00:00Z", Workflow={"Status": "SUPPRESSED"},
        FindingProviderFields={"Severity": {"Label": "HIGH"}})])
    (a,) = hub.get_findings()["Findings"]
    assert a["Severity"] == {"Label": "HIGH"} and a["Workflow"] == {"Status": "NEW"}
    # Archived then active again: a RESOLVED workflow is NEW again.
    hub.batch_import_findings(Findings=[asff("r", "2030-01-02T00:00:00Z", RecordState="ARCHIVED",
                                             Workflow={"Status": "RESOLVED"})])
    hub.batch_import_findings(Findings=[asff("r", "2030-01-03T00:00:00Z",
                                             RecordState="ACTIVE")])
    found = {f["Id"]: f for f in hub.get_findings()["Findings"]}
    assert found["r"]["Workflow"] == {"Status": "NEW"} and found["r"]["RecordState"] == "ACTIVE"
    with pytest.raises(hub.exceptions.InvalidInputException):
        hub.batch_import_findings(Findings=[asff(str(n), "2030-01-02T00:00:00Z")
                                            for n in range(101)])


def test_sandbox_filters_findings_as_security_hub_does(sandbox):
    hub = client("securityhub")
    hub.batch_import_findings(Findings=[
        asff("p/1", "2030-01-02T00:00:00Z"), asff("p/2", "2030-01-02T00:00:00Z"),
        asff("q/1", "2030-01-02T00:00:00Z", RecordState="ARCHIVED")])

    def ids(**filters):
        return sorted(f["Id"] for f in hub.get_findings(Filters=filters)["Findings"])

    def f(value, comparison="EQUALS"):
        return {"Value": value, "Comparison": comparison}

    assert ids() == ["p/1", "p/2", "q/1"]
    assert ids(Id=[f("p/", "PREFIX")]) == ["p/1", "p/2"]
    assert ids(Id=[f("p/1"), f("q/", "PREFIX")]) == ["p/1", "q/1"]  # OR on one field
    assert ids(Id=[f("p/", "PREFIX")], RecordState=[f("ACTIVE")]) == ["p/1", "p/2"]  # AND
    assert ids(Id=[f("p/1", "NOT_EQUALS"), f("q/", "PREFIX_NOT_EQUALS")]) == ["p/2"]
    assert ids(RecordState=[f("ARCHIVED")]) == ["q/1"]
    assert ids(ResourceId=[f("abc123", "CONTAINS")]) == ["p/1", "p/2", "q/1"]
    with pytest.raises(hub.exceptions.InvalidInputException):
        hub.get_findings(Filters={"CompanyName": [f("x")]})
    pages = list(hub.get_paginator("get_findings").paginate(PaginationConfig={"PageSize": 2}))
    assert [len(p["Findings"]) for p in pages] == [2, 1]


def test_a_hub_in_another_region(sandbox, tmp_path, estate):
    """c7n's ``region``: the findings of us-east-1's certificates go to eu-west-1's hub, under
    us-east-1's ids, and are archived there."""
    policy = json_policy()
    policy["actions"][0]["region"] = WEST
    run_at(sandbox, tmp_path, policy)
    assert findings() == {}
    found = findings(WEST)
    assert set(found) == {estate["expired"], estate["d3"], estate["d20"]}
    assert found[estate["d3"]]["Id"].startswith("%s/%s/" % (REGION, ACCOUNT))
    assert found[estate["d3"]]["ProductArn"] == (
        "arn:aws:securityhub:%s::product/cloud-custodian/cloud-custodian" % WEST)
    assert found[estate["d3"]]["Resources"][0]["Region"] == REGION
    run_at(sandbox, tmp_path, dict(policy, filters=[{"type": "expiring", "days": 1}]), days=1)
    assert set(findings(WEST, RecordState="ARCHIVED")) == {estate["d3"], estate["d20"]}

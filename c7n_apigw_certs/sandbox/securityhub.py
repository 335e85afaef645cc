"""moto's Security Hub, with what a finding provider meets in AWS and moto 5.2.5 lacks
(docs/aws-behaviour.md, facts 61-64; moto's ``get_findings`` ignores ``Filters``, and its
``batch_import_findings`` overwrites a finding with whatever arrives):

- ``BatchImportFindings`` refuses, finding by finding (``FailedFindings``, ``InvalidInput``), a
  finding without one of ASFF's required fields, and more than 100 findings a request (fact
  61); an update whose ``UpdatedAt`` is not later than the finding's is ignored (fact 61);
  ``Note``, ``UserDefinedFields``, ``VerificationState`` and ``Workflow`` of an existing finding
  are not changed by an import (fact 62); ``FindingProviderFields`` is filled from the
  top-level fields when a finding is created, and an update of it sets the top-level
  ``Severity`` and ``Types`` (fact 62);
- a new finding's ``Workflow.Status`` and ``WorkflowState`` are ``NEW`` and its ``RecordState``
  ``ACTIVE`` unless sent; ``RecordState`` from ``ARCHIVED`` to ``ACTIVE`` sets a ``NOTIFIED``
  or ``RESOLVED`` workflow back to ``NEW``; archiving does not resolve it (fact 63);
- ``GetFindings`` applies ``Filters`` on the string fields listed in ``FIELDS`` with
  ``EQUALS``, ``PREFIX``, ``CONTAINS`` (joined by OR on one field) and ``NOT_EQUALS``,
  ``PREFIX_NOT_EQUALS``, ``NOT_CONTAINS`` (joined by AND), fields joined by AND (fact 64); a
  filter on another field is refused (``InvalidInputException``), so that a test cannot pass
  on a filter the sandbox would silently ignore.

A fault armed on the operation ``ImportFinding`` (service ``securityhub``) fails one finding of
a ``BatchImportFindings`` instead of the request: its ``target`` is matched against the
finding's ``Id`` and its resources' ids (and the parts of an ARN among them, such as a
certificate id), and the finding is answered in ``FailedFindings`` with the fault's ``code``
and ``message``, as AWS answers a finding it refuses (an account without Security Hub gets
``InvalidAccess`` so, fact 61). A fault on ``BatchImportFindings`` fails the whole request.
"""
import datetime
import functools
import re

from dateutil.parser import isoparse
from moto.securityhub.exceptions import InvalidInputException
from moto.securityhub.models import Finding, SecurityHubBackend
from moto.utilities.paginator import paginate

from .controls import CONTROLS

MAX_FINDINGS = 100
REQUIRED = ("AwsAccountId", "CreatedAt", "Description", "GeneratorId", "Id", "ProductArn",
            "Resources", "SchemaVersion", "Severity", "Title", "Types", "UpdatedAt")
CUSTOMER_FIELDS = ("Note", "UserDefinedFields", "VerificationState", "Workflow")
PROVIDER_FIELDS = ("Confidence", "Criticality", "RelatedFindings", "Severity", "Types")
FIELDS = {
    "Id": lambda f: [f.get("Id")],
    "ProductArn": lambda f: [f.get("ProductArn")],
    "GeneratorId": lambda f: [f.get("GeneratorId")],
    "AwsAccountId": lambda f: [f.get("AwsAccountId")],
    "Title": lambda f: [f.get("Title")],
    "RecordState": lambda f: [f.get("RecordState")],
    "WorkflowStatus": lambda f: [f.get("Workflow", {}).get("Status")],
    "ComplianceStatus": lambda f: [f.get("Compliance", {}).get("Status")],
    "SeverityLabel": lambda f: [f.get("Severity", {}).get("Label")],
    "ResourceId": lambda f: [r.get("Id") for r in f.get("Resources", ())],
    "ResourceType": lambda f: [r.get("Type") for r in f.get("Resources", ())],
}
POSITIVE = {
    "EQUALS": lambda value, want: value == want,
    "PREFIX": lambda value, want: value.startswith(want),
    "CONTAINS": lambda value, want: want in value,
}
NEGATIVE = {
    "NOT_EQUALS": lambda value, want: value != want,
    "PREFIX_NOT_EQUALS": lambda value, want: not value.startswith(want),
    "NOT_CONTAINS": lambda value, want: want not in value,
}


def matches(finding, filters):
    for field, conditions in (filters or {}).items():
        if field not in FIELDS:
            raise InvalidInputException(
                op="GetFindings", msg="the sandbox does not filter on %s (it filters on %s)" % (
                    field, ", ".join(sorted(FIELDS))))
        values = [v for v in FIELDS[field](finding) if isinstance(v, str)]
        positive = [c for c in conditions if c.get("Comparison", "EQUALS") in POSITIVE]
        negative = [c for c in conditions if c.get("Comparison") in NEGATIVE]
        if positive and not any(POSITIVE[c.get("Comparison", "EQUALS")](v, c["Value"])
                                for c in positive for v in values):
            return False
        if not all(NEGATIVE[c["Comparison"]](v, c["Value"]) for c in negative for v in values):
            return False
    return True


@paginate(pagination_model=SecurityHubBackend.PAGINATION_MODEL)
def get_findings(self, filters=None, sort_criteria=None, max_results=None):
    if max_results is not None and not 1 <= int(max_results) <= MAX_FINDINGS:
        raise InvalidInputException(op="GetFindings",
                                    msg="MaxResults must be a number between 1 and 100")
    return [f.as_dict() for f in self.findings if matches(f.as_dict(), filters)]


def finding_ids(finding):
    """The finding's Id, its resources' ids and the parts of those that are ARNs."""
    ids = {finding.get("Id", "")}
    for resource in finding.get("Resources") or ():
        rid = str(resource.get("Id", ""))
        ids.add(rid)
        if rid.startswith("arn:"):
            ids.update(p for p in re.split(r"[:/]", rid.split("::", 1)[-1]) if p)
    return frozenset(ids)


def _when(value):
    return isoparse(value).astimezone(datetime.timezone.utc)


def refusal(backend, finding):
    """(code, message) if this finding is refused, else None."""
    missing = [k for k in REQUIRED if k not in finding or finding[k] in (None, "", [])]
    if missing:
        return "InvalidInput", "Finding is missing required field(s): %s" % ", ".join(missing)
    fault = CONTROLS.faults.take("securityhub", "ImportFinding", finding_ids(finding))
    if fault:
        CONTROLS.counters.add(backend.account_id, backend.region_name, "securityhub",
                              "ImportFinding", "fault")
        return fault["code"], fault["message"]
    return None


def import_one(backend, data):
    existing = next((f for f in backend.findings if f.id == data["Id"]), None)
    if existing is None:
        finding = dict(data)
        finding.setdefault("RecordState", "ACTIVE")
        finding.setdefault("Workflow", {"Status": "NEW"})
        finding["WorkflowState"] = "NEW"
        provided = finding.setdefault("FindingProviderFields", {})
        for key in PROVIDER_FIELDS:
            if key in finding and key not in provided:
                provided[key] = finding[key]
        backend.findings.append(Finding(data["Id"], finding))
        return
    old = existing.data
    if _when(data["UpdatedAt"]) <= _when(old["UpdatedAt"]):
        return  # an update not later than the finding is ignored (fact 61)
    update = {k: v for k, v in data.items() if k not in CUSTOMER_FIELDS}
    for key, value in (data.get("FindingProviderFields") or {}).items():
        if key in PROVIDER_FIELDS:
            update[key] = value
    was = old.get("RecordState", "ACTIVE")
    old.update(update)
    if (was == "ARCHIVED" and old.get("RecordState") == "ACTIVE"
            and old.get("Workflow", {}).get("Status") in ("NOTIFIED", "RESOLVED")):
        old["Workflow"] = {"Status": "NEW"}
        old["WorkflowState"] = "NEW"


def batch_import_findings(self, findings):
    if len(findings) > MAX_FINDINGS:
        raise InvalidInputException(op="BatchImportFindings",
                                    msg="Findings: at most 100 findings a request")
    failed = []
    for data in findings:
        refused = refusal(self, data)
        if refused:
            failed.append({"Id": data.get("Id", ""), "ErrorCode": refused[0],
                           "ErrorMessage": refused[1]})
            continue
        import_one(self, data)
    return len(failed), len(findings) - len(failed), failed


@functools.cache
def install():
    """Extend moto's Security Hub in this process. Idempotent."""
    SecurityHubBackend.get_findings = get_findings
    SecurityHubBackend.batch_import_findings = batch_import_findings

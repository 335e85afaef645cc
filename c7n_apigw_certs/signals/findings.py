"""``post-finding`` on client certificates: c7n's Security Hub action with urgency, the stages,
a remediation, and findings that resolve themselves once the certificate is rotated.

c7n's own ``post-finding`` (``c7n/resources/securityhub.py``, ``PostFinding``) posts one finding
a resource with the severity the policy states. For a certificate the urgency is in its days
left, and c7n's version would need more than it declares (docs/aws-behaviour.md, fact 65): it
records each finding's id in a tag on the resource, through the resource's ``tag`` action
(``apigateway:PUT``, ``PATCH``), which ``rotate`` would then copy onto the successor. This
subclass keeps c7n's schema and finding, and changes only what a certificate needs:

- the finding's ``Id`` is ``{region}/{account}/{policy}/{certificate id}``: the same
  certificate and policy update the same finding, with no tag (fact 61: an import with an
  existing ``Id`` updates it);
- severity from the days left, unless ``severity_label`` fixes it;
- ``Details.Other`` names the certificate's expiry and every stage that presents it;
- a default remediation text that points at ``policies/rotate.yml``;
- findings this policy posted for certificates that no longer match are archived.
"""
import datetime

from botocore.exceptions import BotoCoreError, ClientError
from c7n.exceptions import PolicyExecutionError
from c7n.resources.securityhub import PostFinding
from c7n.utils import chunks, dumps, get_partition, local_session
from dateutil.parser import parse as parse_date
from dateutil.tz import tzutc

from ..audit import kinds, usage
from ..audit.filters import (
    CONDITION, CONDITION_DETAIL, DAYS_LEFT, EXPIRED, EXPIRES, EXPIRY_SOURCE, annotate_expiry)
from ..audit.resource import STAGES, ClientCertificate
from ..rotation.retire import error_text

CRITICAL, HIGH, MEDIUM = "CRITICAL", "HIGH", "MEDIUM"
HIGH_WITHIN_DAYS = 7
# BatchImportFindings takes at most 100 findings a request (fact 61).
MAX_BATCH = 100
# GetFindings returns at most 100 a page (fact 64).
PAGE = 100
# Security Hub keeps a value of Details.Other under 1024 characters (c7n: SECHUB_VALUE_SIZE_LIMIT);
# one key a stage, up to MAX_STAGE_KEYS of them, keeps each short.
VALUE_LIMIT = 1024
MAX_STAGE_KEYS = 40
REMEDIATION = (
    "Rotate API Gateway client certificate %(id)s (%(when)s %(expires)s): run the rotate policy "
    "(policies/rotate.yml of c7n-apigw-certs) daily. It generates a successor, publishes it to "
    "the trust stores of the backends, switches the %(stages)d stage(s) that present this "
    "certificate, and retires it. Stages that a template owns are handed over to their owner "
    "(out/<policy>/handover.json).")
# What an archived finding carries over from the finding read back (the fields an import
# needs, fact 61); Security Hub's own fields (Workflow, ProcessedAt...) are not sent back.
IMPORTED_KEYS = (
    "SchemaVersion", "Id", "ProductArn", "GeneratorId", "AwsAccountId", "Types", "CreatedAt",
    "Severity", "Title", "Description", "Resources", "ProductFields", "Remediation",
    "FindingProviderFields", "Compliance")


def after(finding, now):
    """``now``, or just after the finding's own ``UpdatedAt`` if that is not earlier: Security
    Hub ignores an update that is not later than the finding (fact 61), and a clock behind
    another run's must not turn an update into a silent no-op."""
    if not finding.get("UpdatedAt"):
        return now
    previous = parse_date(finding["UpdatedAt"])
    if previous.tzinfo is None:
        previous = previous.replace(tzinfo=tzutc())
    return max(now, previous + datetime.timedelta(milliseconds=1))


def severity_of(cert):
    """CRITICAL once expired or broken whatever its date (revoked, its CA expired, a public
    ACM certificate: ``kinds.BROKEN``), HIGH when it cannot be read (``kinds.UNKNOWNS``), when
    ACM's renewal of it failed, or within ``HIGH_WITHIN_DAYS`` days, else MEDIUM: the policy's
    filters decided that the certificate is worth a finding at all."""
    if cert[EXPIRED] or cert[CONDITION] in kinds.BROKEN:
        return CRITICAL
    if cert[CONDITION] in kinds.UNKNOWNS + ("renewal-failed",):
        return HIGH
    return HIGH if cert[DAYS_LEFT] <= HIGH_WITHIN_DAYS else MEDIUM


@ClientCertificate.action_registry.register("post-finding")
class ClientCertificateFinding(PostFinding):
    """Post a Security Hub finding for each certificate, with its urgency, the stages that
    present it and how to fix it; archive the findings of certificates that no longer match.

    c7n's ``post-finding`` with its keys (``types`` required; ``title``, ``description``,
    ``recommendation``, ``recommendation_url``, ``compliance_status``, ``region`` for a hub in
    another region, ``batch_size``...), and for a certificate:

    - **Severity** from the days left (``c7n:days-left``, as the ``expiring`` filter counts
      them): ``CRITICAL`` once expired, ``HIGH`` within 7 days, ``MEDIUM`` otherwise (what the
      policy's window let through). ``severity_label`` fixes one label for all instead. Sent as
      ``Severity`` and as ``FindingProviderFields.Severity``, where a provider updates it.
    - **Details**: ``Resources[0].Details.Other`` has ``clientCertificateId``,
      ``description``, ``expires``, ``daysLeft``, ``expired``, ``expirySource``, ``stageCount``
      and one key a stage, ``stage:1``..., each ``PROTOCOL apiName (apiId) / stage``.
    - **Remediation** text naming ``policies/rotate.yml`` unless ``recommendation`` is set.
    - **One finding per certificate and policy**, ``Id`` ``{region}/{account}/{policy}/{id}``;
      no tag is written on the certificate.
    - **Resolved on the next run**: once a run, this action reads the policy's ``ACTIVE``
      findings of this region and account (``GetFindings``) and archives (``RecordState:
      ARCHIVED``) those whose certificate it was not given: rotated, deleted, or no longer
      expiring. That is how a finding provider closes a finding (fact 63); Security Hub sets
      ``Workflow`` back to ``NEW`` if the certificate matches again.

    c7n runs no action when a policy matches nothing; the resource's manager then calls
    ``on_no_match``, so the last findings of a region are archived too. Findings
    go 100 to a request (``batch_size``, default 100). A request or a finding that fails is
    logged with its certificates; the others are still sent, and the run fails with
    ``PolicyExecutionError``. Under ``--dryrun`` nothing is sent.

    :example:

    .. code-block:: yaml

        policies:
          - name: apigw-client-certificates-findings
            resource: aws.apigw-client-certificate
            filters:
              - type: expiring
                days: 30
            actions:
              - type: post-finding
                types:
                  - "Software and Configuration Checks/AWS Security Best Practices"
    """

    permissions = ("securityhub:BatchImportFindings", "securityhub:GetFindings")
    resource_type = "Other"

    def iam_resources(self):
        """Both on ``*``: the resource types of these actions are not settled by a source here
        (fact 65), and ``*`` is never narrower than what AWS checks."""
        return {action: ["*"] for action in self.permissions}

    def process(self, resources, event=None):
        now = datetime.datetime.now(tz=tzutc())
        client = local_session(self.manager.session_factory).client(
            "securityhub", region_name=self.hub_region())
        failures = []
        try:
            active = self.active_findings(client)
        except (ClientError, BotoCoreError) as e:
            active = None
            failures.append("GetFindings: %s" % error_text(e))
            self.log.error("post-finding: the policy's findings could not be read (%s): new "
                           "ones are posted, none is archived", error_text(e))
        findings, certs = [], {}
        for cert in resources:
            annotate_expiry(cert, now)
            finding_id = self.finding_id(cert["clientCertificateId"])
            known = (active or {}).get(finding_id, {})
            created = known.get("CreatedAt", now.isoformat())
            findings.append(self.get_finding([cert], finding_id, created,
                                             after(known, now).isoformat()))
            certs[finding_id] = "client-certificate:%s" % cert["clientCertificateId"]
        # Only a pull-mode run (pull, periodic, config-poll-rule) hands the action every
        # certificate that matched; an event mode hands it the event's, and the others'
        # findings are not stale.
        stale = [] if active is None or not self.whole_match() else [
            self.archived(f, now) for fid, f in sorted(active.items()) if fid not in certs]
        for finding in stale:
            certs[finding["Id"]] = "client-certificate:%s (archived)" % (
                finding["Id"].rsplit("/", 1)[-1])
        refused = self.import_all(client, findings + stale, certs)
        failures.extend(reason for _, reason in refused)
        failed = {finding_id for finding_id, _ in refused}
        self.log.info("post-finding: %d finding(s) posted, %d archived in %s",
                      len([f for f in findings if f["Id"] not in failed]),
                      len([f for f in stale if f["Id"] not in failed]), self.hub_region())
        # What the run did, written even when it fails (c7n writes an action's output only
        # when it returns): out/<policy>/action-post-finding.
        self.manager.ctx.output.write_file("action-post-finding", dumps({
            "posted": sorted(f["Id"] for f in findings if f["Id"] not in failed),
            "archived": sorted(f["Id"] for f in stale if f["Id"] not in failed),
            "failed": sorted(failed), "errors": failures}, indent=2))
        if failures:
            raise PolicyExecutionError("post-finding: %d failure(s): %s" % (
                len(failures), "; ".join(failures)))
        return None

    def whole_match(self):
        """Whether ``process`` is given every certificate the policy matched (pull modes)."""
        from c7n.policy import PullMode
        return isinstance(self.manager.ctx.policy.get_execution_mode(), PullMode)

    def on_no_match(self):
        """The policy matched nothing (called by the resource's manager, as c7n would not call
        ``process``): every ACTIVE finding of the policy in the region is archived. A failure
        is a warning here: stock c7n makes no call when nothing matches, and a region whose
        Security Hub is not enabled must not fail every run that finds nothing."""
        if not self.whole_match():
            return
        try:
            self.process([])
        except PolicyExecutionError as e:
            self.log.warning("post-finding: nothing matched, and the policy's earlier findings "
                             "could not all be archived: %s", e)

    # -- what is sent ------------------------------------------------------------------------
    def hub_region(self):
        return self.data.get("region", self.manager.config.region)

    def id_prefix(self):
        config = self.manager.config
        return "%s/%s/%s/" % (config.region, config.account_id, self.manager.ctx.policy.name)

    def finding_id(self, cert_id):
        return self.id_prefix() + cert_id

    def product_arn(self):
        """c7n's product ARN in the hub's region, as ``PostFinding.get_finding`` makes it."""
        return "arn:%s:securityhub:%s::product/cloud-custodian/cloud-custodian" % (
            get_partition(self.manager.config.region), self.hub_region())

    def get_finding(self, resources, existing_finding_id, created_at, updated_at):
        finding = super().get_finding(resources, existing_finding_id, created_at, updated_at)
        (cert,) = resources
        label = self.data.get("severity_label") or severity_of(cert)
        # The days left, or the condition when there are none to count (unknown).
        original = str(cert[DAYS_LEFT]) if cert[DAYS_LEFT] is not None else cert[CONDITION]
        finding["Severity"] = {"Label": label, "Original": original}
        finding["FindingProviderFields"] = {
            "Severity": {"Label": label, "Original": original},
            "Types": finding["Types"]}
        if not self.data.get("recommendation"):
            recommendation = finding.setdefault("Remediation", {}).setdefault(
                "Recommendation", {})
            # What rotate would do instead, for a certificate it does not replace (kinds.py).
            instead = kinds.of(cert).rotate_step(cert, datetime.datetime.now(tz=tzutc()))
            recommendation["Text"] = instead.message if instead else REMEDIATION % {
                "id": cert["clientCertificateId"], "expires": cert[EXPIRES],
                "when": "expired" if cert[EXPIRED] else "expires",
                "stages": len(cert.get(STAGES) or ())}
        return finding

    def format_resource(self, r):
        details = {
            "clientCertificateId": r["clientCertificateId"],
            "description": r.get("description", ""),
            "kind": kinds.of(r).name,
            "expires": r[EXPIRES] or "unknown",
            "daysLeft": str(r[DAYS_LEFT]),
            "expired": str(r[EXPIRED]).lower(),
            "expirySource": r[EXPIRY_SOURCE] or "",
            "condition": r[CONDITION],
            "conditionDetail": r[CONDITION_DETAIL],
            "stageCount": str(len(r.get(STAGES) or ())),
        }
        for n, stage in enumerate((r.get(STAGES) or ())[:MAX_STAGE_KEYS], 1):
            details["stage:%d" % n] = stage["label"]  # usage.stage_entry's
        resource = {
            "Type": self.resource_type,
            "Id": self.manager.get_arns([r])[0],
            "Region": self.manager.config.region,
            "Partition": get_partition(self.manager.config.region),
            "Details": {self.resource_type: {
                k: v[:VALUE_LIMIT - 1] for k, v in details.items() if v != ""}},
        }
        tags = {t["Key"]: t["Value"] for t in r.get("Tags", [])}
        if tags:
            resource["Tags"] = tags
        return resource

    @staticmethod
    def archived(finding, now):
        """The finding as this provider imports it again, archived. ``ProductFields`` that
        Security Hub adds itself (``aws/...``) are not sent back; ``UpdatedAt`` is later than
        the finding's own, since Security Hub ignores an update that is not (fact 61): a clock
        behind another run's must not turn the archive into a silent no-op (``after``). Its
        severity becomes ``INFORMATIONAL``, "no issue was found" (fact 62), so that a view
        that counts by severity alone no longer counts it; a ``Compliance`` status becomes
        ``PASSED``."""
        update = {k: finding[k] for k in IMPORTED_KEYS if k in finding}
        if "ProductFields" in update:
            update["ProductFields"] = {k: v for k, v in update["ProductFields"].items()
                                       if not k.startswith("aws/")}
        resolved = {"Label": "INFORMATIONAL"}
        if (finding.get("Severity") or {}).get("Original"):
            resolved["Original"] = finding["Severity"]["Original"]
        update["Severity"] = resolved
        update["FindingProviderFields"] = dict(update.get("FindingProviderFields") or {},
                                               Severity=dict(resolved))
        if update.get("Compliance"):
            update["Compliance"] = dict(update["Compliance"], Status="PASSED")
        update.update(UpdatedAt=after(finding, now).isoformat(), RecordState="ARCHIVED")
        return update

    # -- calls -------------------------------------------------------------------------------
    def active_findings(self, client):
        """{Id: finding} of this policy's ACTIVE findings for this region and account."""
        filters = {
            "ProductArn": [{"Value": self.product_arn(), "Comparison": "EQUALS"}],
            "Id": [{"Value": self.id_prefix(), "Comparison": "PREFIX"}],
            "RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}],
        }
        return {f["Id"]: f for page in usage.pages(
                    client, "get_findings", Filters=filters,
                    PaginationConfig={"PageSize": PAGE})
                for f in page.get("Findings", ())}

    def import_all(self, client, findings, certs):
        """BatchImportFindings, ``batch_size`` a request. Returns [(finding id, reason)] of
        what was not imported, each logged with its certificate."""
        refused = []
        size = min(self.data.get("batch_size", MAX_BATCH), MAX_BATCH)
        for batch in chunks(findings, size):
            try:
                answer = self.manager.retry(client.batch_import_findings, Findings=batch)
            except (ClientError, BotoCoreError) as e:
                answer = {"FailedFindings": [
                    {"Id": f["Id"], "Error": error_text(e)} for f in batch]}
            for failed in answer.get("FailedFindings", ()):
                reason = failed.get("Error") or "%s: %s" % (
                    failed.get("ErrorCode"), failed.get("ErrorMessage"))
                who = certs.get(failed.get("Id"), failed.get("Id"))
                self.log.error("%s finding not imported: %s", who, reason)
                refused.append((failed.get("Id"), "%s: %s" % (who, reason)))
        return refused

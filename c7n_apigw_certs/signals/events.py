"""The ``post-expiry-event`` action: one EventBridge event per certificate, as ACM sends "ACM
Certificate Approaching Expiration" for its own certificates (docs/aws-behaviour.md, fact 32),
so that rules route API Gateway client certificates to the same places (SNS, a ticket queue,
a Lambda that starts a rotation...).

The event's ``source`` cannot be ACM's ``aws.acm``: the ``aws.`` prefix is reserved for AWS
services (fact 67). Its default, ``c7n-apigw-certs``, and its ``detail-type``, "API Gateway
Client Certificate Approaching Expiration", are the policy's to change. The detail carries
ACM's ``DaysToExpiry`` (the ``expiring`` filter's ``c7n:days-left``, whole days rounded up,
negative once expired) and what a reader needs to act: the certificate, its effective expiry,
every stage that presents it, and who owns what.
"""
import datetime
import json

from botocore.exceptions import BotoCoreError, ClientError
from c7n.actions import BaseAction
from c7n.exceptions import PolicyExecutionError, PolicyValidationError
from c7n.utils import local_session, type_schema
from dateutil.tz import tzutc

from ..audit import kinds
from ..audit.filters import (
    CONDITION, CONDITION_DETAIL, DAYS_LEFT, EXPIRED, EXPIRES, EXPIRY_SOURCE, annotate_expiry)
from ..audit.resource import STAGES, ClientCertificate
from ..rotation.retire import error_text

DEFAULT_SOURCE = "c7n-apigw-certs"
DEFAULT_DETAIL_TYPE = "API Gateway Client Certificate Approaching Expiration"
DEFAULT_BUS = "default"
RESERVED_SOURCE = "aws."  # "The aws. value prefix is service-reserved" (fact 67)
# PutEvents takes 1 to 10 entries a request (API reference, PutEvents; botocore's model:
# PutEventsRequestEntryList max 10): fact 68.
MAX_ENTRIES = 10
# "The total entry size must be less than 256KB" a request, each entry counted as Time 14
# bytes plus the UTF-8 bytes of Source, DetailType, Detail and each Resources entry (user
# guide, "Calculating PutEvents event entry size"; fact 68).
MAX_REQUEST_SIZE = 256 * 1024 - 1
# Stages listed in one event's detail (a few hundred bytes each, keeping an entry far under
# the limit); the rest are counted in StageCount, with StagesTruncated true.
MAX_STAGES = 100
# Per-entry codes that the API reference calls retryable (PutEventsResultEntry, fact 68):
# such entries are sent once more in a later request of the same run.
RETRYABLE = {"InternalFailure", "ThrottlingException"}

SOURCE_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 256}
DETAIL_TYPE_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 128}
# botocore's EventBusNameOrArn: a name, or an event bus ARN.
BUS_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 1600,
              "pattern": r"^(arn:aws[\w-]*:events:[a-z]+-[a-z]+-[\w-]+:[0-9]{12}:event-bus/)?"
                         r"[/.\-_A-Za-z0-9]+$"}


def stage_detail(stage):
    return {"Protocol": stage["protocol"], "ApiId": stage["apiId"],
            "ApiName": stage.get("apiName"), "StageName": stage["stageName"],
            "Owner": stage.get("owner")}


@ClientCertificate.action_registry.register("post-expiry-event")
class PostExpiryEvent(BaseAction):
    """Send one EventBridge event per certificate, modelled on ACM's "ACM Certificate
    Approaching Expiration", to the region's event bus.

    ``source`` (default ``c7n-apigw-certs``; not ``aws.``..., which AWS reserves),
    ``detail-type`` (default ``API Gateway Client Certificate Approaching Expiration``) and
    ``event-bus`` (a name or ARN; default ``default``) are the policy's. Each event names the
    certificate's ARN in ``resources`` and carries in ``detail``: ``ClientCertificateId``,
    ``ClientCertificateArn``, ``Description``, ``DaysToExpiry`` (ACM's name: whole days,
    rounded up, negative once expired), ``Expired``, ``ExpiresAt`` (the earlier of
    ``expirationDate`` and the PEM's notAfter, ISO-8601) and ``ExpirySource``, ``Stages`` (each
    with ``Protocol`` ``REST``/``WEBSOCKET``, ``ApiId``, ``ApiName``, ``StageName``, ``Owner``;
    the first 100), ``StageCount`` and ``StagesTruncated``,
    ``Owner`` (the template that owns the certificate, or null), ``Region`` and ``Account``.

    Events go at most 10 and under 256 KB to a request (PutEvents' limits). An entry that
    EventBridge refuses (``FailedEntryCount``; the entry's ``ErrorCode``) is logged against its
    certificate while the others are sent; ``InternalFailure`` and ``ThrottlingException``,
    which AWS calls retryable, are sent once more. A request that fails as a whole fails its
    certificates alike. Then the run fails with ``PolicyExecutionError`` naming every
    certificate without an event. Under ``--dryrun`` nothing is sent.

    :example:

    .. code-block:: yaml

        policies:
          - name: apigw-client-certificates-expiry-event
            resource: aws.apigw-client-certificate
            filters:
              - type: expiring
                days: 30
              - type: in-use
            actions:
              - type: post-expiry-event
                event-bus: default
    """

    schema = type_schema("post-expiry-event", source=SOURCE_SCHEMA,
                         **{"detail-type": DETAIL_TYPE_SCHEMA, "event-bus": BUS_SCHEMA})
    permissions = ("events:PutEvents",)

    def iam_resources(self):
        """``events:PutEvents`` on the one event bus it writes to (the ``event-bus``
        resource type of the Service Authorization Reference: fact 69)."""
        bus = self.data.get("event-bus", DEFAULT_BUS)
        if not bus.startswith("arn:"):
            bus = "arn:${Partition}:events:${Region}:${Account}:event-bus/%s" % bus
        return {"events:PutEvents": [bus]}

    def validate(self):
        source = self.data.get("source", DEFAULT_SOURCE)
        if source.lower().startswith(RESERVED_SOURCE):
            raise PolicyValidationError(
                "policy:%s post-expiry-event.source: %r: sources that begin with %s are "
                "reserved for AWS services" % (
                    self.manager.data.get("name") if self.manager else "?", source,
                    RESERVED_SOURCE))
        return self

    def process(self, resources):
        if not resources:
            return None
        now = datetime.datetime.now(tz=tzutc())
        region, account = self.manager.config.region, self.manager.config.account_id
        client = local_session(self.manager.session_factory).client("events", region_name=region)
        entries = [(cert, self.entry(cert, region, account, now)) for cert in resources]
        failed = {}  # certificate id: error
        for attempt in (1, 2):
            retry = []
            for batch in batches(entries):
                for (cert, entry), error, retryable in self.send(client, batch):
                    if retryable and attempt == 1:
                        retry.append((cert, entry))
                    else:
                        failed[cert["clientCertificateId"]] = error
                        self.log.error("client-certificate:%s post-expiry-event failed: %s",
                                       cert["clientCertificateId"], error)
            if not retry:
                break
            self.log.warning("post-expiry-event: %d entr(ies) failed with a retryable error "
                             "(%s), sending them once more", len(retry), ", ".join(
                                 "client-certificate:%s" % c["clientCertificateId"]
                                 for c, _ in retry))
            entries = retry
        self.log.info("post-expiry-event: %d event(s) sent to event bus %s in %s",
                      len(resources) - len(failed), self.data.get("event-bus", DEFAULT_BUS),
                      region)
        if failed:
            raise PolicyExecutionError(
                "post-expiry-event: %d of %d certificate(s) have no event: %s" % (
                    len(failed), len(resources), "; ".join(
                        "client-certificate:%s: %s" % (cert_id, error)
                        for cert_id, error in sorted(failed.items()))))
        return None

    def send(self, client, batch):
        """One PutEvents request; yields ((cert, entry), error, retryable) for each entry
        that has no event."""
        try:
            answer = self.manager.retry(client.put_events, Entries=[e for _, e in batch])
        except (ClientError, BotoCoreError) as e:
            for item in batch:
                yield item, "PutEvents: %s" % error_text(e), False
            return
        if not answer.get("FailedEntryCount"):
            return
        # "The response Entries array always includes the same number of entries as the
        # request array", in order (fact 68).
        for item, result in zip(batch, answer["Entries"], strict=True):
            if result.get("ErrorCode"):
                yield item, "%s: %s" % (result["ErrorCode"], result.get("ErrorMessage", "")), \
                    result["ErrorCode"] in RETRYABLE

    def entry(self, cert, region, account, now):
        annotate_expiry(cert, now)
        arn = kinds.of(cert).arn(cert, region)
        detail = {
            "ClientCertificateId": cert["clientCertificateId"],
            "ClientCertificateArn": arn,
            "Kind": kinds.of(cert).name,
            "Description": cert.get("description", ""),
            "DaysToExpiry": cert[DAYS_LEFT],
            "Expired": cert[EXPIRED],
            "ExpiresAt": cert[EXPIRES],
            "ExpirySource": cert[EXPIRY_SOURCE],
            "Condition": cert[CONDITION],
            "ConditionDetail": cert[CONDITION_DETAIL],
            "Stages": [stage_detail(s) for s in (cert.get(STAGES) or ())[:MAX_STAGES]],
            "StageCount": len(cert.get(STAGES) or ()),
            "StagesTruncated": len(cert.get(STAGES) or ()) > MAX_STAGES,
            "Owner": cert.get("c7n:owner"),
            "Region": region,
            "Account": account,
        }
        return {"Time": now, "Source": self.data.get("source", DEFAULT_SOURCE),
                "DetailType": self.data.get("detail-type", DEFAULT_DETAIL_TYPE),
                "Detail": json.dumps(detail), "Resources": [arn],
                "EventBusName": self.data.get("event-bus", DEFAULT_BUS)}


def entry_size(entry):
    """An entry's size as EventBridge counts it (``MAX_REQUEST_SIZE``)."""
    size = 14 if entry.get("Time") else 0
    for key in ("Source", "DetailType", "Detail"):
        size += len(entry.get(key, "").encode("utf-8"))
    return size + sum(len(r.encode("utf-8")) for r in entry.get("Resources", ()))


def batches(entries):
    """[(cert, entry)] in requests of at most ``MAX_ENTRIES`` entries and ``MAX_REQUEST_SIZE``
    bytes. An entry too large alone is still sent alone: EventBridge's refusal then stays with
    its certificate."""
    batch, size = [], 0
    for item in entries:
        grows = entry_size(item[1])
        if batch and (len(batch) == MAX_ENTRIES or size + grows > MAX_REQUEST_SIZE):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += grows
    if batch:
        yield batch

"""The ``rotate`` action: successor, publish trust, switch, retire; staged across runs.

The order is the developer guide's ("Rotate an Expiring Client Certificate"; aws-facts.md,
facts 1-2): a new certificate, trusted by every backend before any stage presents it, then the
stages switched, then the old certificate dropped from trust and deleted once nothing uses it.

State lives in tags on the certificates themselves (fact 4: tags on the certificate's ARN), so
reruns, ``c7n-org`` workers and other machines converge and nothing local can be lost:

- on the successor, set in the very call that creates it: ``c7n:rotation:predecessor``. A run
  that dies right after ``GenerateClientCertificate`` leaves a successor that the next run finds,
  so there is at most one successor per certificate.
- on the old certificate: ``c7n:rotation:successor``, ``c7n:rotation:published-at`` (when its
  trust was written and read back) and ``c7n:rotation:switched-at`` (when a stage last moved),
  written in one ``TagResource`` call when the run is done with that certificate (or stopped by
  a failure). A run that dies before that call repeats only idempotent work: it finds the
  successor by its tag, rewrites the same bundles, and finds switched stages switched.
"""
import datetime

from botocore.config import Config
from botocore.exceptions import ClientError
from c7n.actions import BaseAction
from c7n.utils import dumps, local_session, type_schema
from dateutil.parser import isoparse
from dateutil.tz import tzutc

from . import usage
from .publish import (
    DESTINATION_SCHEMA, PublishError, Publisher, bundle, check_template, is_shared, locations,
    permissions, render, validate_destinations)
from .resource import ClientCertificate, certificate_arn
from .retire import ActionFailed, delete_certificate, still_used

PREFIX = "c7n:rotation:"
PREDECESSOR = PREFIX + "predecessor"
SUCCESSOR = PREFIX + "successor"
PUBLISHED = PREFIX + "published-at"
SWITCHED = PREFIX + "switched-at"
RECORD = "c7n:rotation"
DESCRIPTION_FIELDS = {"old_cert_id", "region", "account_id"}
DEFAULT_DESCRIPTION = "Rotated from {old_cert_id} by c7n-apigw-certs"


class StepFailed(Exception):
    def __init__(self, step, detail):
        super().__init__("%s: %s" % (step, detail))
        self.step = step


def stamp(when):
    return when.astimezone(tzutc()).strftime("%Y-%m-%dT%H:%M:%SZ")


def tag_time(cert, key):
    """A time this action wrote into a tag; a value someone else wrote stops the rotation of
    that certificate rather than guessing a gate."""
    value = cert.get("tags", {}).get(key)
    try:
        when = isoparse(value)
    except (TypeError, ValueError) as e:
        raise StepFailed("state", "tag %s is %r, not a time (%s)" % (key, value, e)) from e
    return when if when.tzinfo else when.replace(tzinfo=tzutc())


@ClientCertificate.action_registry.register("rotate")
class RotateClientCertificate(BaseAction):
    """Rotate client certificates in the safe order, as far as each run's time gates allow.

    Each run moves every matched certificate along: (1) generate exactly one successor (the old
    certificate's tags copied, both linked by tags); (2) write a PEM bundle of the successor and
    the old certificate to every ``publish`` destination and read it back; (3) once
    ``switch-after-days`` have passed since then, switch every REST and WebSocket stage that
    still uses the old certificate, re-reading each stage and its trust bundle right before;
    (4) if ``delete-after-days`` is set, once that many days have passed since the last switch
    and fresh listings show no stage uses it, drop the old certificate from the bundles and
    delete it. Without ``delete-after-days`` nothing is deleted.

    ``switch-after-days: 0`` switches in the same run that publishes: safe only when backends
    read their trust store on every connection (or reload it before the next call). Otherwise
    give them the days they need to pick up the new bundle.

    Whether a changed certificate is presented before the stage is redeployed is not settled
    (aws-facts.md, fact 11). ``redeploy: true`` redeploys each switched stage (it also deploys
    any undeployed change of that API) and drops the old certificate from the bundles in the
    same run; with ``redeploy: false`` (the default) the old certificate stays in the bundles
    until it is deleted, so a stage that still presents it is still trusted.

    Template fields, in ``name``, ``key`` and ``description``: ``{cert_id}`` (the successor),
    ``{old_cert_id}``, ``{api_id}``, ``{stage_name}``, ``{region}``, ``{account_id}`` (the
    description knows no successor or stage yet). A name with ``{api_id}`` or ``{stage_name}``
    is written once for each stage that uses the old certificate.

    A certificate no stage uses is not rotated (nothing to protect); see ``delete``. Each
    certificate records what the run did under ``c7n:rotation`` (in ``action-rotate``); any
    failure is logged with the certificate and stage, the other certificates go on, and the run
    ends with an error listing the failures.

    :example:

    .. code-block:: yaml

        policies:
          - name: apigw-client-certificates-rotate
            resource: aws.apigw-client-certificate
            filters:
              - type: expiring
                days: 30
            actions:
              - type: rotate
                description: "rotated from {old_cert_id}"
                publish:
                  - type: ssm
                    name: "/apigw/client-certs/{api_id}/{stage_name}"
                  - type: s3
                    bucket: my-trust-bundles
                    key: "apigw/{api_id}/{stage_name}.pem"
                switch-after-days: 3
                delete-after-days: 7
    """

    schema = type_schema(
        "rotate",
        required=["publish", "switch-after-days"],
        **{
            "description": {"type": "string", "maxLength": 256},
            "publish": {"type": "array", "minItems": 1, "items": DESTINATION_SCHEMA},
            "switch-after-days": {"type": "number", "minimum": 0},
            "delete-after-days": {"type": "number", "minimum": 0},
            "redeploy": {"type": "boolean"},
        })

    def get_permissions(self):
        perms = {"apigateway:GET", "apigateway:POST", "apigateway:PUT", "apigateway:PATCH"}
        if "delete-after-days" in self.data:
            perms.add("apigateway:DELETE")
        return sorted(perms) + permissions(self.data.get("publish", ()))

    def validate(self):
        name = self.manager.data.get("name") if self.manager else "?"
        validate_destinations(self.data.get("publish", ()), name)
        check_template("policy:%s rotate.description" % name,
                       self.data.get("description", DEFAULT_DESCRIPTION), DESCRIPTION_FIELDS)
        return self

    # -- the run --------------------------------------------------------------------------
    def process(self, resources):
        self.now = datetime.datetime.now(tz=tzutc())
        region = self.manager.config.region
        session = local_session(self.manager.session_factory)
        self.apigw = session.client("apigateway", region_name=region)
        # botocore's retry takes LimitExceededException (the quota of 60) for throttling and
        # backs off for seconds on each: generate without it, so a full quota shows at once.
        # c7n's retry still backs off on TooManyRequestsException.
        self.generator = session.client("apigateway", region_name=region,
                                        config=Config(retries={"total_max_attempts": 1}))
        self.v2 = session.client("apigatewayv2", region_name=region)
        self.publisher = Publisher(self.manager.session_factory, region)
        self.fields = {"region": region, "account_id": self.manager.config.account_id or ""}
        self.listing = self.list_certificates()
        # Who uses what, region-wide: the listing this run's resource query made (the same
        # stage objects as each certificate's c7n:stages), else a fresh one.
        self.stage_map = getattr(self.manager, "stages_by_certificate", None)
        if self.stage_map is None:
            self.stage_map = usage.stages_by_certificate(self.manager.session_factory, region)
        self.pending, self.due, self.failures = {}, [], []
        for cert in resources:
            record = cert[RECORD] = {}
            cert_id = cert["clientCertificateId"]
            successor = None
            try:
                successor = self.advance(cert, record)
            except StepFailed as e:
                self.failed(cert_id, record, e)
            try:  # what was done is recorded even when a later step failed
                self.flush(cert_id)
            except StepFailed as e:
                successor = None
                self.failed(cert_id, record, e)
            if successor is not None:
                self.due.append((cert, successor))
        self.retire_due()
        self.manager.ctx.output.write_file("action-rotate", dumps(
            [{k: c.get(k) for k in ("clientCertificateId", RECORD)} for c in resources],
            indent=2))
        if self.failures:
            raise ActionFailed("rotate failed for %d certificate(s): %s" % (
                len(self.failures), "; ".join(self.failures)))
        return resources

    def failed(self, cert_id, record, error):
        record.setdefault("errors", []).append(str(error))
        self.failures.append("client-certificate:%s %s" % (cert_id, error))
        self.log.error("client-certificate:%s rotation failed at %s", cert_id, error)

    def list_certificates(self):
        """One fresh listing per run: successors and tags as they are now, not as filtered."""
        return {c["clientCertificateId"]: c
                for page in usage.pages(self.apigw, "get_client_certificates",
                                        limit=usage.PAGE_SIZE)
                for c in page.get("items", ())}

    def call(self, step, fn, **kw):
        try:
            return self.manager.retry(fn, **kw)
        except ClientError as e:
            raise StepFailed(step, "%s: %s" % (e.response["Error"]["Code"],
                                               e.response["Error"].get("Message", ""))) from e

    def mark(self, cert_id, tags):
        """Note state on the old certificate; ``flush`` writes it in one call when the run is
        done with that certificate, or stopped by a failure."""
        self.listing[cert_id].setdefault("tags", {}).update(tags)
        self.pending.setdefault(cert_id, {}).update(tags)

    def flush(self, cert_id):
        tags = self.pending.pop(cert_id, None)
        if tags:
            self.call("tag", self.apigw.tag_resource,
                      resourceArn=certificate_arn(self.manager.config.region, cert_id),
                      tags=tags)

    def advance(self, cert, record):
        """Move one certificate as far as its gates allow; its successor when it is due to
        retire, else None."""
        old_id = cert["clientCertificateId"]
        old = self.listing.get(old_id)
        if old is None:
            record["skipped"] = "vanished"
            self.log.info("client-certificate:%s no longer exists: skipped", old_id)
            return None
        predecessor = old.get("tags", {}).get(PREDECESSOR)
        if predecessor in self.listing and self.stage_map.get(predecessor):
            # Its own rotation is still moving stages onto it; once they all use it, it is a
            # certificate like any other (and is rotated in turn before it expires).
            record["skipped"] = "successor of %s, whose rotation is under way" % predecessor
            return None
        stages = self.stage_map.get(old_id, [])
        successor = self.find_successor(old)
        if successor is None and not stages:
            record["skipped"] = "used by no stage"
            self.log.info("client-certificate:%s is used by no stage: not rotated "
                          "(the delete action removes unused certificates)", old_id)
            return None
        if successor is None:
            successor = self.generate(old)
        elif old.get("tags", {}).get(SUCCESSOR) != successor["clientCertificateId"]:
            self.mark(old_id, {SUCCESSOR: successor["clientCertificateId"]})  # a run died here
        new_id = successor["clientCertificateId"]
        record["successor"] = new_id
        fields = dict(self.fields, cert_id=new_id, old_cert_id=old_id)
        places = locations(self.data["publish"], fields, stages)

        if PUBLISHED not in old.get("tags", {}):
            record["published"] = self.publish(old_id, places)
            self.mark(old_id, {PUBLISHED: stamp(self.now)})
        switch_at = tag_time(old, PUBLISHED) + datetime.timedelta(
            days=self.data["switch-after-days"])
        if self.now < switch_at:
            record["waiting"] = "switch at %s" % stamp(switch_at)
            return None

        switched, late = self.switch(old_id, successor, list(stages), places, record)
        # A switch now, or none needed: its stages had all moved away on their own.
        if switched or (SWITCHED not in old.get("tags", {}) and not late):
            self.mark(old_id, {SWITCHED: stamp(self.now)})
        if late:
            record["waiting"] = "trust published late for %s" % ", ".join(late)
            return None
        if switched and self.data.get("redeploy"):  # the stages present it: stop trusting old
            record["republished"] = self.publish(old_id, places)
        if "delete-after-days" not in self.data:
            return None
        delete_at = tag_time(old, SWITCHED) + datetime.timedelta(
            days=self.data["delete-after-days"])
        if self.now < delete_at:
            record["waiting"] = "delete at %s" % stamp(delete_at)
            return None
        return successor

    def successors(self, cert_id):
        """Certificates created as successors of this one, oldest first."""
        return sorted((c for c in self.listing.values()
                       if c.get("tags", {}).get(PREDECESSOR) == cert_id),
                      key=lambda c: (c["createdDate"], c["clientCertificateId"]))

    def find_successor(self, old):
        old_id = old["clientCertificateId"]
        found = self.successors(old_id)
        if len(found) > 1:
            self.log.warning("client-certificate:%s has %d successors (%s): using %s",
                             old_id, len(found), ", ".join(c["clientCertificateId"] for c in found),
                             found[0]["clientCertificateId"])
        return found[0] if found else None

    def generate(self, old):
        old_id = old["clientCertificateId"]
        tags = {k: v for k, v in old.get("tags", {}).items() if not k.startswith(PREFIX)}
        tags[PREDECESSOR] = old_id
        description = self.data.get("description", DEFAULT_DESCRIPTION).format(
            old_cert_id=old_id, **self.fields)
        try:
            made = self.manager.retry(self.generator.generate_client_certificate,
                                      description=description, tags=tags)
        except ClientError as e:
            code = e.response["Error"]["Code"]
            if code == "LimitExceededException" and self.retire_due():
                return self.generate(old)  # the quota counts successors: room was made
            if code == "LimitExceededException":
                raise StepFailed("generate", "LimitExceededException: the region's quota of "
                                 "client certificates is reached (%d exist; 60 by default)"
                                 % len(self.listing)) from e
            raise StepFailed(
                "generate", "%s: %s" % (code, e.response["Error"].get("Message"))) from e
        made.pop("ResponseMetadata", None)
        self.listing[made["clientCertificateId"]] = made
        self.log.info("client-certificate:%s successor client-certificate:%s generated",
                      old_id, made["clientCertificateId"])
        self.mark(old_id, {SUCCESSOR: made["clientCertificateId"]})
        return made

    def stages_behind(self, place, stages):
        """Every stage whose bundle is this place: the given ones, or, for a name that stages
        of other certificates share, every stage of the region that renders to it."""
        if not is_shared(place.dest):
            return stages
        return [stage for users in self.stage_map.values() for stage in users
                if render(place.dest, self.fields, stage) == place]

    def bundle_for(self, place, stages, exclude=()):
        """The PEMs of every certificate the stages behind a place may present: each one's
        certificate, its successor once generated, and (unless ``redeploy``) its predecessor
        while that still exists, since the stage may still present it (fact 11)."""
        ids = []
        for stage in sorted(self.stages_behind(place, stages),
                            key=lambda s: (s["apiId"], s["stageName"])):
            cert_id = stage["clientCertificateId"]
            predecessor = self.listing.get(cert_id, {}).get("tags", {}).get(PREDECESSOR)
            successor = next(iter(self.successors(cert_id)), {}).get("clientCertificateId")
            for candidate in (successor, cert_id,
                              None if self.data.get("redeploy") else predecessor):
                if candidate in self.listing and candidate not in exclude \
                        and candidate not in ids:
                    ids.append(candidate)
        return bundle(*(self.listing[i]["pemEncodedCertificate"] for i in ids))

    def publish(self, old_id, places, exclude=()):
        labels = []
        for place, stages in places.items():
            try:
                self.publisher.write(place, self.bundle_for(place, stages, exclude))
            except (ClientError, PublishError) as e:
                raise StepFailed("publish", "%s: %s" % (place.label, e)) from e
            labels.append(place.label)
        self.log.info("client-certificate:%s trust published to %s", old_id, ", ".join(labels))
        return labels

    def switch(self, old_id, successor, stages, places, record):
        """Switch each stage still on the old certificate, if its bundles hold the successor."""
        new_id = successor["clientCertificateId"]
        new_pem = successor["pemEncodedCertificate"].strip()
        switched, late = [], []
        for stage in stages:
            label = "stage:%s/%s" % (stage["apiId"], stage["stageName"])
            missing = {p: behind for p, behind in places.items() if stage in behind and
                       new_pem not in (self.current(p, label) or "")}
            if missing:  # a stage that came after publication: trust first, switch later
                self.publish(old_id, missing)
                self.mark(old_id, {PUBLISHED: stamp(self.now)})
                late.append(label)
                continue
            if self.fresh_certificate(stage, label) != old_id:
                self.log.info("client-certificate:%s %s no longer uses it: not switched",
                              old_id, label)
                continue
            self.update_stage(stage, new_id, label)
            self.stage_map[old_id].remove(stage)
            stage["clientCertificateId"] = new_id
            self.stage_map.setdefault(new_id, []).append(stage)
            switched.append(label)
            self.log.info("client-certificate:%s %s switched to client-certificate:%s",
                          old_id, label, new_id)
        record["switched"] = switched
        return switched, late

    def current(self, place, label):
        try:
            return self.publisher.current(place)
        except ClientError as e:
            raise StepFailed("switch", "%s reading %s: %s" % (label, place.label, e)) from e

    def fresh_certificate(self, stage, label):
        """The stage's certificate as API Gateway says it is now."""
        if stage["protocol"] == usage.REST:
            got = self.call("switch %s" % label, self.apigw.get_stage,
                            restApiId=stage["apiId"], stageName=stage["stageName"])
            return got.get("clientCertificateId")
        got = self.call("switch %s" % label, self.v2.get_stage,
                        ApiId=stage["apiId"], StageName=stage["stageName"])
        return got.get("ClientCertificateId")

    def update_stage(self, stage, new_id, label):
        step = "switch %s" % label
        if stage["protocol"] == usage.REST:
            self.call(step, self.apigw.update_stage, restApiId=stage["apiId"],
                      stageName=stage["stageName"], patchOperations=[
                          {"op": "replace", "path": "/clientCertificateId", "value": new_id}])
            if self.data.get("redeploy"):
                self.call(step, self.apigw.create_deployment, restApiId=stage["apiId"],
                          stageName=stage["stageName"],
                          description="c7n-apigw-certs: client certificate %s" % new_id)
        else:
            self.call(step, self.v2.update_stage, ApiId=stage["apiId"],
                      StageName=stage["stageName"], ClientCertificateId=new_id)
            if self.data.get("redeploy"):
                self.call(step, self.v2.create_deployment, ApiId=stage["apiId"],
                          StageName=stage["stageName"])

    def retire_due(self):
        """Fresh listings of every stage, then drop each old certificate that is due from trust
        and delete it, unless a stage uses it. Runs at the end of the run, or earlier when the
        quota needs room for successors. True if any certificate was deleted."""
        due, self.due = self.due, []
        if not due:
            return False
        fresh = self.stage_map = usage.stages_by_certificate(
            self.manager.session_factory, self.manager.config.region)
        deleted = False
        for cert, successor in due:
            old_id, record = cert["clientCertificateId"], cert[RECORD]
            reason = still_used(self.log, old_id, fresh)
            if reason:
                record["not-deleted"] = reason
                continue
            try:
                # Nothing presents the old certificate any more: stop trusting it, then delete.
                fields = dict(self.fields, cert_id=successor["clientCertificateId"],
                              old_cert_id=old_id)
                places = locations(self.data["publish"], fields,
                                   fresh.get(successor["clientCertificateId"], []))
                record["republished"] = self.publish(old_id, places, exclude={old_id})
                delete_certificate(self.apigw, self.manager.retry, old_id)
            except StepFailed as e:
                self.failed(old_id, record, e)
                continue
            except ClientError as e:
                self.failed(old_id, record, StepFailed("delete", e))
                continue
            record["deleted"] = deleted = True
            self.listing.pop(old_id, None)
            self.log.info("client-certificate:%s deleted; its stages use "
                          "client-certificate:%s", old_id, successor["clientCertificateId"])
        return deleted

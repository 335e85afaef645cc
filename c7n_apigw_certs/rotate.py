"""The ``rotate`` action: successor, publish trust, switch, (deploy,) retire; staged across runs.

The order is the developer guide's ("Rotate an Expiring Client Certificate";
docs/aws-behaviour.md, facts 1-2): a new certificate, trusted by every backend before any stage
presents it, then the stages switched, then the old certificate dropped from trust and deleted
once nothing uses it. ``plan.py`` decides each certificate's next step from its tags and the
listings; the executors here carry the steps out, each re-checking fresh state right before it
changes anything:

- ``Successors``: exactly one successor per certificate, even when two runs race.
- ``Trust``: merged writes to the stores (``stores.py``), sizes checked before any write.
- ``Switcher``: stages switched (and deployed) through one adapter per protocol (``stages.py``).
- ``retire.Retirer``: deletion only after fresh listings of every stage.

Every failure stays with its certificate: the others go on, the state already reached is
written to the certificate's tags, ``action-rotate`` is written, and the run ends with c7n's
``PolicyExecutionError`` listing every failure.
"""
import datetime

from botocore.config import Config
from c7n.actions import BaseAction
from c7n.exceptions import PolicyExecutionError
from c7n.utils import dumps, local_session, type_schema
from dateutil.tz import tzutc

from . import bundles, owners, plan, stages, usage
from .handover import HandOver
from .plan import (
    Failed, LATE, PREDECESSOR, PUBLISHED, RETIRE_AFTER, SUCCESSOR, SWITCHED, SWITCHED_STAGES,
    UNDEPLOYED, Options, stamp)
from .publish import (
    DESTINATION_SCHEMA, check_template, locations, stages_behind, template_fields, trusted_ids,
    validate_destinations)
from .resource import ClientCertificate, certificate_arn
from .retire import FAILURES, Retirer, error_text
from .stores import STORES, Stores

RECORD = "c7n:rotation"
DESCRIPTION_FIELDS = {"old_cert_id", "region", "account_id"}
DEFAULT_DESCRIPTION = "Rotated from {old_cert_id} by c7n-apigw-certs"
MAX_TAGS = 50          # tags on one API Gateway resource, aws: keys aside (facts 35, 60)
MAX_STEPS = 8          # a certificate takes at most this many steps in one run
# A successor that lost a race is deleted only by a later run, once it is this old and unused:
# a run that is still going may have found it and be about to switch a stage to it.
ORPHAN_AGE = datetime.timedelta(days=1)


class QuotaFull(Exception):
    """``LimitExceededException`` from ``GenerateClientCertificate`` (fact 5)."""


def user_tags(tags):
    return {k: v for k, v in (tags or {}).items()
            if not k.lower().startswith("aws:") and not k.startswith(plan.PREFIX)}


def copied_tags(tags, log, old_id, owner_tags=()):
    """The old certificate's tags that a successor may carry: no reserved ``aws:`` key (API
    Gateway refuses them from callers, and CloudFormation sets them on what it creates: fact 35),
    no rotation state, no tag that marks a template's resources (the successor is ours, not the
    template's); room left for the predecessor tag and for its own rotation's state."""
    keep = {k: v for k, v in sorted(user_tags(tags).items()) if k not in owner_tags}
    room = MAX_TAGS - 1 - len(plan.STATE_TAGS)
    if len(keep) > room:
        log.warning("client-certificate:%s has more tags than a successor can carry with its "
                    "rotation state: not copied: %s", old_id, ", ".join(sorted(keep)[room:]))
        keep = {k: keep[k] for k in sorted(keep)[:room]}
    keep[PREDECESSOR] = old_id
    return keep


@ClientCertificate.action_registry.register("rotate")
class RotateClientCertificate(BaseAction):
    """Rotate client certificates in the safe order, as far as each run's time gates allow.

    Each run moves every matched certificate along: (1) generate exactly one successor (the old
    certificate's tags copied, except ``aws:`` keys; both linked by tags); (2) merge the
    successor's PEM into every ``publish`` destination of every stage on the old certificate
    (a bundle keeps every PEM it holds; sizes are checked first) and read it back; (3) once
    ``switch-after-days`` have passed, switch every REST and WebSocket stage still on the old
    certificate, re-reading each stage and its bundles right before; with ``redeploy: true``,
    deploy each switched stage (paced to API Gateway's 1 deployment every 5 seconds); (4) if
    ``delete-after-days`` is set, once that many days have passed since the last switch (and
    every switched stage is deployed, with ``redeploy``) and fresh listings show no stage uses
    it, drop the old certificate from the bundles and delete it. Without ``delete-after-days``
    the old certificate is never deleted.

    ``switch-after-days: 0`` switches in the same run that publishes: safe only when backends
    read their trust store on every connection. A stage that appears after publication gets
    its trust then and switches ``switch-after-days`` later; the others do not wait for it.

    Whether a changed certificate is presented before the stage is redeployed is not settled
    (docs/aws-behaviour.md, facts 11 and 31). The old certificate stays in the bundles until it
    is deleted either way; with ``redeploy: true`` a stage whose deployment failed is recorded
    (tag ``c7n:rotation:undeployed``), deployed by a later run, and its old certificate is not
    deleted before.

    Destinations: ``ssm`` (``name``; ``tier``: ``Standard`` (default, 4 KB), ``Advanced``
    (8 KB) or ``Intelligent-Tiering``) and ``s3`` (``bucket``, ``key``). Template fields:
    ``{cert_id}`` (the successor), ``{old_cert_id}``, ``{api_id}``, ``{stage_name}``,
    ``{region}``, ``{account_id}``; ``description`` knows ``{old_cert_id}``, ``{region}``,
    ``{account_id}``. A name with ``{api_id}`` or ``{stage_name}`` is one bundle per stage.

    A certificate no stage uses is not rotated; see ``delete``. Each certificate records what
    the run did under ``c7n:rotation`` (in ``action-rotate``); a failure stays with its
    certificate and the run ends with an error listing every failure.

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
            "owner-tags": owners.OWNER_TAGS_SCHEMA,
            "switch-owned": {"type": "boolean"},
        })

    def iam_resources(self):
        """Each IAM action with the resources it is used on (fact 39). DELETE is needed even
        without ``delete-after-days``: a run that loses a race deletes its own successor."""
        from .iam import apigateway_arn
        paths = {
            "apigateway:GET": usage.LISTING_PATHS,
            "apigateway:POST": ("/clientcertificates",),
            "apigateway:PUT": ("/tags/*",),
            # TagResource is checked as PUT on /tags/<ARN> and PATCH on the tagged certificate
            # (fact 136; iann0036/iam-dataset#39, tested against AWS).
            "apigateway:PATCH": ("/clientcertificates/*",),
            "apigateway:DELETE": ("/clientcertificates/*",),
        }
        for adapter in stages.ADAPTERS:
            for action, found in adapter.paths.items():
                if action != "apigateway:POST" or self.data.get("redeploy"):
                    paths[action] = tuple(paths.get(action, ())) + found
        out = {action: [apigateway_arn(p) for p in found] for action, found in paths.items()}
        for dest in self.data.get("publish", ()):
            for action, arns in STORES[dest["type"]].iam_resources(dest).items():
                out.setdefault(action, [])
                out[action] += [arn for arn in arns if arn not in out[action]]
        return out

    def get_permissions(self):
        return sorted(self.iam_resources())

    def validate(self):
        name = self.manager.data.get("name") if self.manager else "?"
        validate_destinations(self.data.get("publish", ()), name)
        check_template("policy:%s rotate.description" % name,
                       self.data.get("description", DEFAULT_DESCRIPTION), DESCRIPTION_FIELDS)
        return self

    def process(self, resources):
        run = Rotation(self, resources)
        try:
            run.execute()
        finally:  # what was done is written even if something unforeseen stopped the run
            self.manager.ctx.output.write_file("action-rotate", dumps(
                [{k: c.get(k) for k in ("clientCertificateId", RECORD)} for c in resources],
                indent=2))
            self.manager.ctx.output.write_file("handover.json", dumps(
                run.hand_over.entries, indent=2))
        if run.failures:
            raise PolicyExecutionError("rotate failed for %d certificate(s): %s" % (
                len(run.failures), "; ".join(run.failures)))
        return resources


class Rotation:
    """One run of the action in one region: the listings, the pending tags, the failures."""

    def __init__(self, action, resources):
        self.action, self.log, self.manager = action, action.log, action.manager
        self.resources = resources
        self.now = datetime.datetime.now(tz=tzutc())
        data = action.data
        self.options = Options(data["switch-after-days"], data.get("delete-after-days"),
                               bool(data.get("redeploy")))
        region = self.manager.config.region
        session = local_session(self.manager.session_factory)
        self.apigw = session.client("apigateway", region_name=region)
        self.fields = {"region": region, "account_id": self.manager.config.account_id or ""}
        self.stores = Stores(self.manager.session_factory, region, self.manager.retry)
        self.trust = Trust(self)
        self.successors = Successors(self, session.client(
            # botocore's retry takes LimitExceededException (the quota) for throttling and backs
            # off for seconds: generate without it. c7n's retry still backs off on 429s.
            "apigateway", region_name=region, config=Config(retries={"total_max_attempts": 1})))
        self.switcher = Switcher(self, stages.adapters(session, region, self.manager.retry))
        self.retirement = Retirement(self)
        self.hand_over = HandOver(self)
        self.pending, self.due, self.failures = {}, [], []
        self.listing, self.stage_map = {}, {}

    # -- the run ------------------------------------------------------------------------
    def execute(self):
        for cert in self.resources:
            cert[RECORD] = {}
        try:
            self.listing = usage.certificates(self.apigw)
            # Who uses what: the listing this run's query made seconds ago (each change is
            # re-checked against fresh state before it is made), else a fresh one.
            self.stage_map = getattr(self.manager, "stages_by_certificate", None)
            if self.stage_map is None:  # a cached query: no listing of this run to reuse
                self.stage_map = usage.stages_by_certificate(self.manager.session_factory,
                                                             self.manager.config.region)
        except FAILURES as e:
            for cert in self.resources:
                self.failed(cert, Failed("listing: %s" % error_text(e)))
            return
        if not self.fields["account_id"] and self.uses_account_id():
            # c7n leaves the account id empty when STS cannot be reached (fact 43): a bundle
            # name rendered without it is not the one the backends read.
            for cert in self.resources:
                self.failed(cert, Failed("the account id is unknown (sts:GetCallerIdentity "
                                         "failed), and a template uses {account_id}"))
            return
        queue = list(self.resources)
        while queue:
            wave, queue = self.successors.wave(queue)
            for cert in wave:
                self.advance(cert)
            deleted = self.retirement.retire_due()
            if queue and not deleted:
                for cert in queue:  # no room was made: the quota is the limit
                    self.failed(cert, Failed(
                        "generate: LimitExceededException: the region's quota of client "
                        "certificates is reached (%d exist; 60 by default)" % len(self.listing)))
                break

    def uses_account_id(self):
        data = self.action.data
        templates = [data.get("description", "")] + [
            value for dest in data["publish"] for key, value in dest.items() if key != "type"]
        return any("account_id" in template_fields(t) for t in templates)

    def persist(self, cert_id):
        """Write a certificate's pending state now: what must survive a death before the next
        change (``undeployed``, before a switch with ``redeploy``)."""
        tags = self.pending.pop(cert_id, None)
        if tags:
            try:
                self.manager.retry(self.apigw.tag_resource, resourceArn=certificate_arn(
                    self.manager.config.region, cert_id), tags=tags)
            except FAILURES as e:
                raise Failed("tag: %s" % error_text(e)) from e

    def failed(self, cert, error):
        cert_id, record = cert["clientCertificateId"], cert[RECORD]
        text = str(error) if isinstance(error, Failed) else error_text(error)
        record.setdefault("errors", []).append(text)
        self.failures.append("client-certificate:%s %s" % (cert_id, text))
        self.log.error("client-certificate:%s rotation failed: %s", cert_id, text)

    def mark(self, cert_id, tags):
        """Note state on a certificate; ``flush`` writes it in one call when the run is done
        with that certificate, or stopped by a failure."""
        self.listing[cert_id].setdefault("tags", {}).update(tags)
        self.pending.setdefault(cert_id, {}).update(tags)

    def flush(self, cert):
        try:
            self.persist(cert["clientCertificateId"])
        except Failed as e:
            self.failed(cert, e)

    def advance(self, cert):
        """Move one certificate as far as its gates allow, then write its state."""
        record = cert[RECORD]
        try:
            self.steps(cert, record)
        except (Failed,) + FAILURES as e:
            self.failed(cert, e)
        finally:
            self.flush(cert)
        if record.get("errors"):  # a certificate that failed is never retired in that run
            self.due = [(c, n) for c, n in self.due if c is not cert]

    def steps(self, cert, record):
        old_id = cert["clientCertificateId"]
        for _ in range(MAX_STEPS):
            old = self.listing.get(old_id)
            if old is None:
                record["skipped"] = "vanished"
                return
            new_id = self.successors.chosen.get(old_id)
            tags = old.get("tags", {})
            ours, handed = self.hand_over.split(old_id, tags)
            step = plan.next_step(tags, new_id, len(ours), self.now, self.options,
                                  self.rotating_predecessor(old), len(handed))
            if step.name in (plan.SKIP, plan.GENERATE):  # GENERATE here: deferred by a race
                record.setdefault("skipped", step.reason or "successor deferred")
                return
            if step.name == plan.WAIT:
                record["waiting"] = step.reason
                return
            if step.name in (plan.HANDOVER, plan.RETIRE, plan.DONE) and \
                    self.hand_over.certificate(old_id, new_id, record):
                step = plan.Step(plan.HANDOVER) if handed else plan.Step(plan.DONE)
            if step.name == plan.HANDOVER:
                self.hand_over.step(old_id, new_id, record)
                return
            if step.name == plan.DONE:
                return
            if step.name == plan.RETIRE:
                self.due.append((cert, new_id))
                return
            executor = {plan.PUBLISH: self.trust.step, plan.SWITCH: self.switcher.step,
                        plan.DEPLOY: self.switcher.deploy_step}[step.name]
            executor(old_id, new_id, record)
        raise Failed("state: no progress after %d steps" % MAX_STEPS)

    def rotating_predecessor(self, cert):
        predecessor = cert.get("tags", {}).get(PREDECESSOR)
        if predecessor in self.listing and self.stage_map.get(predecessor):
            return predecessor
        return None

    def places(self, old_id, new_id, stage_list):
        fields = dict(self.fields, cert_id=new_id, old_cert_id=old_id)
        return locations(self.action.data["publish"], fields, stage_list), fields

    def switched(self, old_id):
        """A stage moved (or none needed to): the clock of the delete window starts again."""
        tags = {SWITCHED: stamp(self.now)}
        if self.options.delete_after is not None:
            tags[RETIRE_AFTER] = stamp(self.now + plan.days(self.options.delete_after))
        self.mark(old_id, tags)


class Retirement:
    """The last step, for the certificates that are due and the successors orphaned by a race:
    after fresh listings of every stage, out of trust, then deleted (``retire.Retirer``)."""

    def __init__(self, run):
        self.run, self.log = run, run.log
        self.retirer = Retirer(run.manager, run.apigw, run.log)

    def retire_due(self):
        """Runs after each wave. True if a certificate was deleted (room under the quota)."""
        run = self.run
        due, run.due = run.due, []
        orphans, run.successors.orphans = run.successors.orphans, []
        if not due and not orphans:
            return False
        try:
            fresh = run.stage_map = self.retirer.refresh()
        except FAILURES as e:
            for cert, _ in due:
                run.failed(cert, Failed("retire: fresh stage listing: %s" % error_text(e)))
            return False
        deleted = False
        for cert, new_id in due:
            deleted = self.retire(cert, new_id, fresh) or deleted
        for orphan_id, cert in orphans:
            deleted = self.delete_orphan(orphan_id, cert) or deleted
        return deleted

    def retire(self, cert, new_id, fresh):
        run, old_id, record = self.run, cert["clientCertificateId"], cert[RECORD]
        reason = self.retirer.in_use(old_id)
        if reason:
            record["not-deleted"] = reason
            return False
        try:  # nothing presents it: delete it, then stop trusting it (if the delete fails
            # it still exists and is still trusted; if the untrusting fails, a dead PEM stays)
            self.retirer.delete(old_id)
            record["deleted"] = True
            places, _ = run.places(old_id, new_id, fresh.get(new_id, []))
            record["unpublished"] = run.trust.remove(
                places, run.listing[old_id]["pemEncodedCertificate"])
        except (Failed,) + FAILURES as e:
            run.failed(cert, e)
            return record.get("deleted", False)
        run.listing.pop(old_id, None)
        self.log.info("client-certificate:%s deleted; its stages use client-certificate:%s",
                      old_id, new_id)
        return True

    def delete_orphan(self, orphan_id, cert):
        """A successor this run made and lost a race with, or an unused extra one."""
        record = cert[RECORD]
        if self.retirer.in_use(orphan_id):
            record.setdefault("orphans-kept", []).append(orphan_id)
            return False
        try:
            self.retirer.delete(orphan_id)
        except FAILURES as e:
            self.run.failed(cert, Failed("delete orphaned successor %s: %s"
                                         % (orphan_id, error_text(e))))
            return False
        record.setdefault("orphans-deleted", []).append(orphan_id)
        self.run.listing.pop(orphan_id, None)
        self.log.info("client-certificate:%s orphaned successor client-certificate:%s deleted",
                      cert["clientCertificateId"], orphan_id)
        return True


class Successors:
    """Exactly one successor per certificate. The successor is created with its predecessor
    tag in the same call, so a rerun finds it. Two runs at the same moment can each create one:
    after a wave of creations one listing shows every successor, and a run goes on with its own
    only if it is strictly the oldest (a run that saw no other one may be going on with its own,
    and ``createdDate`` has whole seconds: on a tie both step back). The others are not deleted
    by the run that made them: a later run, which sees them all, goes on with one (the one
    stages use, else the oldest) and deletes the rest once a day old and unused."""

    def __init__(self, run, generator):
        self.run, self.generator, self.log = run, generator, run.log
        self.chosen = {}    # old id -> the successor this run goes on with
        self.orphans = []   # (successor id, old certificate) to delete once unused

    def of(self, old_id):
        """Successors of a certificate in the listing, oldest first."""
        return sorted((c for c in self.run.listing.values()
                       if c.get("tags", {}).get(PREDECESSOR) == old_id),
                      key=lambda c: (c["createdDate"], c["clientCertificateId"]))

    def wave(self, queue):
        """Find or generate the successors of as many queued certificates as the quota allows:
        (those ready to advance, those that wait for room)."""
        ready, waiting, made = [], [], []
        for cert in queue:
            old_id = cert["clientCertificateId"]
            try:
                if old_id not in self.chosen and self.find(cert) is None \
                        and self.needs_one(cert):
                    if waiting:  # the quota is full: no call can succeed before a retire
                        waiting.append(cert)
                        continue
                    made.append((cert, self.generate(cert)))
            except QuotaFull:
                waiting.append(cert)
                continue
            except (Failed,) + FAILURES as e:
                self.run.failed(cert, e)
                self.run.flush(cert)
                continue
            ready.append(cert)
        if made:
            ready = self.settle_races(ready, made)
        return ready, waiting

    def needs_one(self, cert):
        old = self.run.listing.get(cert["clientCertificateId"])
        if old is None:
            return False
        step = plan.next_step(old.get("tags", {}), None,
                              len(self.run.stage_map.get(old["clientCertificateId"], ())),
                              self.run.now, self.run.options, self.run.rotating_predecessor(old))
        return step.name == plan.GENERATE

    def find(self, cert):
        """The successor to go on with among those that exist: the one stages use if exactly
        one is used, else the oldest. Unused others a day old are orphans, deleted after the
        fresh stage listing of the retire phase; younger ones may be another run's, going on."""
        old_id = cert["clientCertificateId"]
        found = self.of(old_id)
        if not found:
            return None
        used = [c for c in found if self.run.stage_map.get(c["clientCertificateId"])]
        chosen = used[0] if len(used) == 1 else found[0]
        for extra in found:
            if extra is chosen:
                continue
            if self.run.stage_map.get(extra["clientCertificateId"]):
                self.log.warning("client-certificate:%s has another successor %s that stages "
                                 "use: kept", old_id, extra["clientCertificateId"])
            elif plan.utc(extra["createdDate"]) + ORPHAN_AGE <= self.run.now:
                self.orphans.append((extra["clientCertificateId"], cert))
            else:
                cert[RECORD].setdefault("orphans-kept", []).append(extra["clientCertificateId"])
        new_id = self.chosen[old_id] = chosen["clientCertificateId"]
        cert[RECORD]["successor"] = new_id
        if self.run.listing[old_id].get("tags", {}).get(SUCCESSOR) != new_id:
            self.run.mark(old_id, {SUCCESSOR: new_id})
        return new_id

    def generate(self, cert):
        old_id = cert["clientCertificateId"]
        old = self.run.listing[old_id]
        description = self.run.action.data.get("description", DEFAULT_DESCRIPTION).format(
            old_cert_id=old_id, **self.run.fields)
        if len(user_tags(old.get("tags"))) + len(plan.STATE_TAGS) > MAX_TAGS:
            raise Failed("generate: the certificate has %d tags: its rotation needs room for %d "
                         "more (at most %d a resource); remove some first"
                         % (len(user_tags(old.get("tags"))), len(plan.STATE_TAGS), MAX_TAGS))
        try:
            made = self.run.manager.retry(
                self.generator.generate_client_certificate, description=description,
                tags=copied_tags(old.get("tags", {}), self.log, old_id,
                                 self.run.hand_over.owner_tags))
        except FAILURES as e:
            if getattr(e, "response", {}).get("Error", {}).get("Code") == \
                    "LimitExceededException":
                raise QuotaFull() from e
            raise Failed("generate: %s" % error_text(e)) from e
        made.pop("ResponseMetadata", None)
        new_id = made["clientCertificateId"]
        self.run.listing[new_id] = made
        self.chosen[old_id] = new_id
        cert[RECORD]["successor"] = new_id
        self.run.mark(old_id, {SUCCESSOR: new_id})
        self.log.info("client-certificate:%s successor client-certificate:%s generated",
                      old_id, new_id)
        return new_id

    def settle_races(self, ready, made):
        """One fresh listing after the wave's creations: a successor another run made at the
        same moment shows now. Ours stays only if strictly older than every other."""
        try:
            fresh = usage.certificates(self.run.apigw)
        except FAILURES as e:
            lost = {cert["clientCertificateId"] for cert, _ in made}
            for cert, _ in made:
                self.run.failed(cert, Failed("check for a concurrent rotation: %s"
                                             % error_text(e)))
                self.run.flush(cert)
            return [c for c in ready if c["clientCertificateId"] not in lost]
        for cert_id, tags in self.run.pending.items():  # ours, not yet written
            fresh.get(cert_id, {}).setdefault("tags", {}).update(tags)
        self.run.listing = fresh
        deferred = set()
        for cert, new_id in made:
            old_id = cert["clientCertificateId"]
            ours = fresh.get(new_id)
            rivals = [c for c in self.of(old_id) if c["clientCertificateId"] != new_id]
            if ours is None or any(c["createdDate"] <= ours["createdDate"] for c in rivals):
                deferred.add(old_id)
                self.chosen.pop(old_id)
                self.run.pending.get(old_id, {}).pop(SUCCESSOR, None)
                fresh.get(old_id, {}).get("tags", {}).pop(SUCCESSOR, None)
                cert[RECORD]["skipped"] = "another run rotates it too (successor %s): ours, %s, "\
                    "is left for the next run to settle" % (
                        ", ".join(c["clientCertificateId"] for c in rivals), new_id)
                cert[RECORD].pop("successor", None)
                self.log.warning("client-certificate:%s %s", old_id, cert[RECORD]["skipped"])
        return [c for c in ready if c["clientCertificateId"] not in deferred]


class Trust:
    """The bundles: which PEMs each location must hold (``publish.trusted_ids``), merged into
    what it holds (``stores.Stores``). Every location of a certificate is planned (read, merged,
    size-checked) before any is written, so a bundle too large stops the certificate before
    anything changes."""

    def __init__(self, run):
        self.run = run

    def step(self, old_id, new_id, record):
        """PUBLISH: trust for every stage on the old certificate."""
        run = self.run
        places, fields = run.places(old_id, new_id, run.stage_map.get(old_id, []))
        record["published"] = self.publish(places, fields)
        run.mark(old_id, {PUBLISHED: stamp(run.now)})

    def pems(self, ids):
        return [self.run.listing[i]["pemEncodedCertificate"] for i in ids]

    def needed(self, place, behind, fields):
        listing = self.run.listing
        successors = {p: c for c, v in listing.items()
                      for p in [v.get("tags", {}).get(PREDECESSOR)] if p}
        for old_id, new_id in self.run.successors.chosen.items():
            successors[old_id] = new_id
        return self.pems(trusted_ids(
            stages_behind(place, behind, self.run.stage_map, fields), listing, successors))

    def publish(self, places, fields):
        wanted = {place: self.needed(place, behind, fields) for place, behind in places.items()}
        for place, pems in wanted.items():
            self.run.stores.plan(place, add=pems)
        for place, pems in wanted.items():
            self.run.stores.update(place, add=pems)
        labels = [place.label for place in wanted]
        self.run.log.info("client-certificate:%s trust published to %s",
                          fields["old_cert_id"], ", ".join(labels))
        return labels

    def remove(self, places, pem):
        for place in places:
            self.run.stores.update(place, remove=[pem])
        return [place.label for place in places]

    def holds(self, place, pem, cache):
        if place not in cache:
            cache[place] = self.run.stores.read(place).text
        return bundles.holds(cache[place], pem)

    def lacking(self, places, stage, fields, new_pem, cache):
        """The places behind a stage that lack a PEM the stage may present, read fresh (what a
        stage may present must be trusted before it changes), and whether one of them lacked
        the successor itself."""
        found, without_new = {}, False
        for place, behind in places.items():
            if stage not in behind:
                continue
            missing = [pem for pem in self.needed(place, behind, fields)
                       if not self.holds(place, pem, cache)]
            if missing:
                found[place] = behind
                without_new = without_new or not self.holds(place, new_pem, cache)
        return found, without_new


class Switcher:
    """Stages onto the successor, each re-read right before it changes and only if every bundle
    behind it already holds what it may present; deployments with ``redeploy``."""

    def __init__(self, run, adapters):
        self.run, self.adapters, self.log = run, adapters, run.log

    def step(self, old_id, new_id, record):
        """SWITCH: every stage still on the old certificate that is ours to switch; with
        ``redeploy``, deployed. The others are left to their owner (``HandOver``)."""
        run = self.run
        tags = run.listing[old_id].setdefault("tags", {})
        ours, handed = run.hand_over.split(old_id, tags)
        moved = len(handed) < plan.handed_count(tags)
        switched, late = self.switch(old_id, new_id, ours, record)
        if not switched and not late and (moved or (SWITCHED not in tags and not handed)):
            # None needed: its stages moved on their own, or their owner switched them.
            run.switched(old_id)
        run.hand_over.count(old_id, handed)

    def switch(self, old_id, new_id, stage_list, record):
        run = self.run
        places, fields = run.places(old_id, new_id, stage_list)
        new_pem = run.listing[new_id]["pemEncodedCertificate"]
        switched, late, cache = [], [], {}
        record["switched"] = switched
        for stage in stage_list:
            label = stages.stage_label(stage)
            lacking, without_new = run.trust.lacking(places, stage, fields, new_pem, cache)
            if lacking:  # trust first: a stage that came later, or a PEM someone removed
                run.trust.publish(lacking, fields)
                cache.clear()
            if without_new:  # backends get switch-after-days to pick the successor up
                run.mark(old_id, {LATE: stamp(run.now)})
                late.append(label)
                continue
            adapter = self.adapters[stage["protocol"]]
            current = adapter.current(stage)
            if current != old_id:
                self.log.info("client-certificate:%s %s is on %s now: not switched",
                              old_id, label, current)
                self.move(stage, old_id, current)
                continue
            short = label[len("stage:"):]
            if run.options.redeploy:  # recorded before the switch: a death in between is safe
                run.mark(old_id, {UNDEPLOYED: plan.with_label(
                    run.listing[old_id]["tags"], UNDEPLOYED, short)})
                run.persist(old_id)
            adapter.switch(stage, new_id)
            run.switched(old_id)  # marked at once: a later failure must not lose it
            run.mark(old_id, {SWITCHED_STAGES: plan.with_label(
                run.listing[old_id]["tags"], SWITCHED_STAGES, short)})
            self.move(stage, old_id, new_id)
            switched.append(label)
            self.log.info("client-certificate:%s %s switched to client-certificate:%s",
                          old_id, label, new_id)
            if run.options.redeploy:
                self.deploy(old_id, new_id, [stage], record)
        if late:
            record["late"] = late
        return switched, late

    def move(self, stage, old_id, new_id):
        stage_map = self.run.stage_map
        if stage in stage_map.get(old_id, []):
            stage_map[old_id].remove(stage)
        stage["clientCertificateId"] = new_id
        if new_id:
            stage_map.setdefault(new_id, []).append(stage)

    def deploy(self, old_id, new_id, stage_list, record):
        """Deploy each stage, and clear it from ``undeployed``; a failure leaves it listed."""
        run = self.run
        for stage in stage_list:
            short = stages.stage_label(stage)[len("stage:"):]
            try:
                self.adapters[stage["protocol"]].deploy(
                    stage, "c7n-apigw-certs: client certificate %s" % new_id)
            except FAILURES as e:
                record["undeployed"] = run.listing[old_id]["tags"].get(UNDEPLOYED, "")
                raise Failed("deploy %s: %s" % (stages.stage_label(stage), error_text(e))) from e
            run.mark(old_id, {UNDEPLOYED: plan.with_label(
                run.listing[old_id]["tags"], UNDEPLOYED, short, add=False)})
            record.setdefault("deployed", []).append(stages.stage_label(stage))

    def deploy_step(self, old_id, new_id, record):
        """DEPLOY: the stages this action switched whose deployment is not confirmed. A stage a
        template owns is its owner's to deploy (the hand-over says so), never ours."""
        run = self.run
        wanted = set(plan.undeployed(run.listing[old_id].get("tags", {})))
        on_new = [s for s in run.stage_map.get(new_id, [])
                  if plan.ALL in wanted or "%s/%s" % (s["apiId"], s["stageName"]) in wanted]
        if plan.ALL in wanted:
            on_new = [s for s in on_new if owners.stage_owner(s, run.hand_over.owner_tags)
                      is None or run.hand_over.switch_owned]
        self.deploy(old_id, new_id, on_new, record)
        run.mark(old_id, {UNDEPLOYED: ""})

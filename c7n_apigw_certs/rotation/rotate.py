"""The ``rotate`` action: successor, publish trust, switch, (deploy,) retire; staged across runs.

The order is the developer guide's ("Rotate an Expiring Client Certificate";
docs/aws-behaviour.md, facts 1-2): a new certificate, trusted by every backend before any stage
presents it, then the stages switched, then the old certificate dropped from trust and deleted
once nothing uses it. ``plan.py`` decides each certificate's next step from its tags and the
listings; the executors here carry the steps out, each re-checking fresh state right before it
changes anything:

- ``Successors``: exactly one successor per certificate, even when two runs race, and only one
  that this rotation made: a certificate that tags alone name is never adopted
  (``plan.successor_doubt``), and the old certificate's state is checked before it steers
  anything (``plan.check_state``). ``c7n-apigw-certs plan`` (``preview.py``) shows what the next
  run would do with the same choices.
- ``Trust``: merged writes to the stores (``stores.py``), sizes checked before any write.
- ``Switcher``: stages switched (and deployed) through one adapter per protocol (``stages.py``).
- ``retire.Retirer``: deletion only after fresh listings of every stage.

Every failure stays with its certificate: the others go on, the state already reached is
written to the certificate's tags, ``action-rotate`` is written, and the run ends with c7n's
``PolicyExecutionError`` listing every failure.
"""
import datetime
import time

from botocore.config import Config
from c7n.actions import BaseAction
from c7n.exceptions import PolicyExecutionError
from c7n.utils import dumps, local_session, type_schema

from ..trust import bundles
from ..audit import kinds, owners, usage
from . import plan, stages
from .clock import AccountClock, SkewError
from .handover import HandOver
from .plan import (
    Failed, LATE, ORIGIN, PREDECESSOR, PUBLISHED, RETIRE_AFTER, SUCCESSOR, SWITCHED,
    SWITCHED_STAGES, UNDEPLOYED, Options, stamp)
from ..trust.publish import (
    DESTINATION_SCHEMA, check_template, locations, stages_behind, template_fields, trusted_ids,
    validate_destinations)
from ..audit.resource import ClientCertificate, certificate_arn
from .retire import FAILURES, Retirer, error_text
from ..trust.stores import STORES, Stores

RECORD = "c7n:rotation"
DESCRIPTION_FIELDS = {"old_cert_id", "region", "account_id"}
DEFAULT_DESCRIPTION = "Rotated from {old_cert_id} by c7n-apigw-certs"
MAX_TAGS = 50          # tags on one API Gateway resource, aws: keys aside (facts 35, 60)
MAX_STEPS = 8          # a certificate takes at most this many steps in one run
TAG_ATTEMPTS = 3       # merged tag writes, each read back, before giving up (fact 120)
# Seconds between a run's last tag write and the read that checks it once more (``settle``):
# another writer's write that was merged from a read older than ours lands within its own
# read-to-write gap (one in-memory merge: milliseconds, longer only when that machine stalls).
SETTLE_SECONDS = 5.0
# The tags a certificate needs room for, beyond its own: its rotation's state, its successor's
# (or its own) predecessor and origin tags, and the records of its destinations (fact 122).
STATE_ROOM = len(plan.STATE_TAGS) + len(plan.SUCCESSOR_TAGS) + plan.MAX_TRUST_TAGS
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
    template's); room left for the predecessor and origin tags and for its own rotation's
    state. The caller adds the origin marker (``plan.origin``)."""
    keep = {k: v for k, v in sorted(user_tags(tags).items()) if k not in owner_tags}
    room = MAX_TAGS - STATE_ROOM
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
    deleted before, by any policy (one without ``redeploy`` fails, saying so). A deployment
    ships the API as it is now: any change to its methods not yet deployed goes live with it.

    Every destination has its own gate (tag ``c7n:rotation:trust:<digest>``): no stage switches
    before every gate recorded, by this policy or another, has passed, and each destination is
    read before each switch and before retirement. A gate that would pass less than a day before
    the old certificate expires is not waited for: what is trusted switches at once, and the
    run fails naming the stages and the expiry. Gates use AWS's time (the ``Date`` of its
    answers); a local clock more than 5 minutes off refuses to act.

    Destinations: ``ssm`` (``name``; ``tier``: ``Standard`` (default, 4 KB), ``Advanced``
    (8 KB) or ``Intelligent-Tiering``) and ``s3`` (``bucket``, ``key``). Template fields:
    ``{cert_id}`` (the successor), ``{old_cert_id}``, ``{api_id}``, ``{stage_name}``,
    ``{region}``, ``{account_id}``; ``description`` knows ``{old_cert_id}``, ``{region}``,
    ``{account_id}``. A name with ``{api_id}`` or ``{stage_name}`` is one bundle per stage.

    A certificate no stage uses is not rotated; see ``delete``. Only API Gateway's own
    certificates are rotated: an imported ACM certificate fails with what to do instead
    (re-import the renewed certificate under the same ARN, or move its stages to a private
    certificate), a private one is left to ACM's renewal and its renewal's state recorded.
    Each certificate records what the run did under ``c7n:rotation`` (in ``action-rotate``);
    a failure stays with its certificate and the run ends with an error listing every failure.

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
        from ..iam import apigateway_arn
        paths = {
            # GetClientCertificate: the certificate's tags read again right before each write
            # of its state and before its retirement (fact 120).
            "apigateway:GET": usage.LISTING_PATHS + ("/clientcertificates/*",),
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

    def plan_resources(self):
        """What ``c7n-apigw-certs plan`` calls for this action: its listings, nothing else."""
        from ..iam import apigateway_arn
        return {"apigateway:GET": [apigateway_arn(p) for p in usage.LISTING_PATHS]}

    def validate(self):
        name = self.manager.data.get("name") if self.manager else "?"
        validate_destinations(self.data.get("publish", ()), name)
        check_template("policy:%s rotate.description" % name,
                       self.data.get("description", DEFAULT_DESCRIPTION), DESCRIPTION_FIELDS)
        return self

    def process(self, resources):
        run = self.executor(resources)
        try:
            run.execute()
        finally:  # what was done is written even if something unforeseen stopped the run
            self.manager.ctx.output.write_file("action-%s" % self.type, dumps(
                [{k: c.get(k) for k in ("clientCertificateId", RECORD)} for c in resources],
                indent=2))
            self.manager.ctx.output.write_file("handover.json", dumps(
                run.hand_over.entries, indent=2))
        if run.failures:
            raise PolicyExecutionError("%s failed for %d certificate(s): %s" % (
                self.type, len(run.failures), "; ".join(run.failures)))
        return resources

    def executor(self, resources):
        """One run's executor; ``migrate`` (migrate.py) gives its own."""
        return Rotation(self, resources)


class Rotation:
    """One run of the action in one region: the listings, the pending tags, the failures."""

    def __init__(self, action, resources):
        self.action, self.log, self.manager = action, action.log, action.manager
        self.resources = resources
        self.clock = AccountClock()
        self.now = self.clock.now()
        data = action.data
        self.options = Options(data["switch-after-days"], data.get("delete-after-days"),
                               bool(data.get("redeploy")))
        region = self.manager.config.region
        session = local_session(self.manager.session_factory)
        self.apigw = self.clock.watch(session.client("apigateway", region_name=region))
        self.fields = {"region": region, "account_id": self.manager.config.account_id or ""}
        self.stores = Stores(self.manager.session_factory, region, self.manager.retry)
        self.trust = Trust(self)
        self.successors = self.successor_source(session, region)
        self.switcher = Switcher(self, stages.adapters(session, region, self.manager.retry))
        self.retirement = Retirement(self)
        self.hand_over = HandOver(self)
        self.pending, self.edits, self.due, self.failures = {}, {}, [], []
        self.journal = {}  # every stage-list edit of this run, per certificate, in order
        self.own_keys = [plan.dest_digest(d) for d in data["publish"]]
        self.listing, self.stage_map = {}, {}

    def successor_source(self, session, region):
        """Where successors come from: ``GenerateClientCertificate`` here; an ACM private
        certificate in the migration (``migrate.PrivateCertificates``), which keeps the same
        interface (``wave``, ``chosen``, ``orphans``)."""
        return Successors(self, session.client(
            # botocore's retry takes LimitExceededException (the quota) for throttling and backs
            # off for seconds: generate without it. c7n's retry still backs off on 429s.
            "apigateway", region_name=region, config=Config(retries={"total_max_attempts": 1})))

    # -- the run ------------------------------------------------------------------------
    def execute(self):
        for cert in self.resources:
            cert[RECORD] = {}
        try:
            self.load()
        except FAILURES as e:
            for cert in self.resources:
                self.failed(cert, Failed("listing: %s" % error_text(e)))
            return
        try:  # every gate from AWS's time, once the listings' answers dated it
            self.clock.check()
        except SkewError as e:
            for cert in self.resources:
                self.failed(cert, Failed("clock: %s" % e))
            return
        self.now = self.clock.now()
        self.log.debug("rotation time %s, from %s", stamp(self.now), self.clock.source)
        if not self.fields["account_id"] and self.uses_account_id():
            # c7n leaves the account id empty when STS cannot be reached (fact 43): a bundle
            # name rendered without it is not the one the backends read.
            for cert in self.resources:
                self.failed(cert, Failed("the account id is unknown (sts:GetCallerIdentity "
                                         "failed), and a template uses {account_id}"))
            return
        queue = [cert for cert in self.resources if not self.refused(cert)]
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
        self.settle()

    def refused(self, cert):
        """True for a certificate that rotate does not replace (an ACM certificate: its
        adapter's ``rotate_step``, kinds.py): failed with what to do instead, or, for a private
        certificate that ACM renews, recorded with its renewal's state. The others go on."""
        refusal = kinds.of(cert).rotate_step(cert, self.now)
        if refusal is None:
            return False
        if refusal.fail:
            self.failed(cert, Failed(refusal.message))
        else:
            cert[RECORD]["skipped"] = refusal.message
            (self.log.warning if refusal.problem else self.log.info)(
                "client-certificate:%s not rotated: %s", cert["clientCertificateId"],
                refusal.message)
        return True

    def load(self):
        """The listings the run decides from (``plan`` reads the same ones): every certificate
        of the region now, and who uses what: the listing this run's query made seconds ago
        (each change is re-checked against fresh state before it is made), else a fresh one."""
        self.listing = usage.certificates(self.apigw)
        self.stage_map = getattr(self.manager, "stages_by_certificate", None)
        if self.stage_map is None:  # a cached query: no listing of this run to reuse
            self.stage_map = usage.stages_by_certificate(self.manager.session_factory,
                                                         self.manager.config.region)

    def uses_account_id(self):
        data = self.action.data
        templates = [data.get("description", "")] + [
            value for dest in data["publish"] for key, value in dest.items() if key != "type"]
        return any("account_id" in template_fields(t) for t in templates)

    def persist(self, cert_id, final=False):
        """Write a certificate's pending state now, merged into its tags as they are now (read
        again, not the start-of-run listing: another run may have written since), and read back;
        merged again if another writer's change landed in between (fact 120). Called before
        each change that a record protects, and when the run is done with the certificate
        (``final``: then read again even with nothing new).

        Every write re-applies all of this run's stage-list edits (its journal), not only the
        new ones: another run that wrote from a read older than our last write may have dropped
        our entries, and our next write puts them back. What is left is the window between the
        other run's last read and its last write (fact 120): ``settle`` checks once more after
        the run's last write."""
        ours, edits = self.pending.pop(cert_id, {}), self.edits.pop(cert_id, [])
        journal = self.journal.setdefault(cert_id, [])
        journal.extend(edits)
        if not ours and not edits and not (final and journal):
            return
        edits = list(journal)
        arn = certificate_arn(self.manager.config.region, cert_id)
        try:
            current = self.fresh_tags(cert_id)
            for _ in range(TAG_ATTEMPTS):
                out = plan.merged(current, ours, edits)
                if not out:
                    break
                room = {k for k in list(current) + list(out) if not k.lower().startswith("aws:")}
                if len(room) > MAX_TAGS:
                    raise Failed("tag: the certificate would have %d tags, more than the %d a "
                                 "resource can have; remove some of its own" % (
                                     len(room), MAX_TAGS))
                self.manager.retry(self.apigw.tag_resource, resourceArn=arn, tags=out)
                current = self.fresh_tags(cert_id)
            else:
                if plan.merged(current, ours, edits):
                    raise Failed("tag: other writers kept changing the certificate's tags: "
                                 "gave up after %d attempts" % TAG_ATTEMPTS)
        except FAILURES as e:
            raise Failed("tag: %s" % error_text(e)) from e
        if cert_id in self.listing:
            self.listing[cert_id]["tags"] = current

    def settle(self):
        """The run's last check of what it wrote. Every write already merges into tags read
        just before it and reads back, but TagResource has no conditional write (fact 120):
        another run that read the tags before our last write can still land its write after our
        read-back, and drop our stage-list entries (a stage switched but not listed; worse, a
        stage undeployed but not listed, whose old certificate a later run would retire while
        the stage presents it). So once the run is done with every certificate, it waits
        ``SETTLE_SECONDS`` (once, for all of them), reads each certificate whose stage lists it
        edited, and writes its entries again where they are missing (``persist``, read back),
        and again after another wait if it had to, up to ``TAG_ATTEMPTS`` times. What remains
        is a writer stalled longer than that between its read and its write. The cost: one
        wait per run that switched or deployed, and one GetClientCertificate per certificate
        it did that for."""
        certs = {c["clientCertificateId"]: c for c in self.resources}
        due = [cert_id for cert_id, journal in self.journal.items()
               if journal and cert_id in self.listing and cert_id in certs]
        for attempt in range(TAG_ATTEMPTS + 1):
            if not due:
                return
            time.sleep(SETTLE_SECONDS)
            again = []
            for cert_id in due:
                try:
                    current = self.fresh_tags(cert_id)
                    if not plan.merged(current, {}, self.journal[cert_id]):
                        continue
                    if attempt == TAG_ATTEMPTS:
                        raise Failed("tag: other writers kept dropping this run's stage-list "
                                     "entries: gave up after %d checks" % TAG_ATTEMPTS)
                    self.log.warning("client-certificate:%s another writer dropped this run's "
                                     "stage-list entries: written again", cert_id)
                    self.persist(cert_id, final=True)
                    again.append(cert_id)
                except Failed as e:
                    self.failed(certs[cert_id], e)
                except FAILURES as e:
                    self.failed(certs[cert_id], Failed("tag: check: %s" % error_text(e)))
            due = again

    def fresh_tags(self, cert_id):
        return self.manager.retry(self.apigw.get_client_certificate,
                                  clientCertificateId=cert_id).get("tags") or {}

    def failed(self, cert, error):
        cert_id, record = cert["clientCertificateId"], cert[RECORD]
        text = str(error) if isinstance(error, Failed) else error_text(error)
        record.setdefault("errors", []).append(text)
        self.failures.append("client-certificate:%s %s" % (cert_id, text))
        self.log.error("client-certificate:%s rotation failed: %s", cert_id, text)

    def mark(self, cert_id, tags):
        """Note state on a certificate; ``persist`` writes it, before the change it protects
        or when the run is done with that certificate (``flush``)."""
        self.listing[cert_id].setdefault("tags", {}).update(tags)
        self.pending.setdefault(cert_id, {}).update(tags)

    def mark_label(self, cert_id, key, label, add=True):
        """Add (or remove) a stage in a stage list: an edit, applied to the tags as they are
        when written, so that another run's entries stay."""
        tags = self.listing[cert_id].setdefault("tags", {})
        tags[key] = plan.with_label(tags, key, label, add)
        self.edits.setdefault(cert_id, []).append((key, label, add))

    def flush(self, cert):
        try:
            self.persist(cert["clientCertificateId"], final=True)
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
        options = self.options
        for _ in range(MAX_STEPS):
            old = self.listing.get(old_id)
            if old is None:
                record["skipped"] = "vanished"
                return
            new_id = self.successors.chosen.get(old_id)
            tags = old.get("tags", {})
            ours, handed = self.hand_over.split(old_id, tags)
            step = plan.next_step(tags, new_id, len(ours), self.now, options,
                                  self.rotating_predecessor(old), len(handed),
                                  plan.utc(old["expirationDate"]), self.own_keys)
            if step.name in (plan.HANDOVER, plan.RETIRE, plan.DONE) and \
                    self.hand_over.certificate(old_id, new_id, record):
                step = plan.Step(plan.HANDOVER) if handed else plan.Step(plan.DONE)
            record.setdefault("steps", []).append(step.name)
            if step.name in (plan.SKIP, plan.GENERATE):  # GENERATE here: deferred by a race
                record.setdefault("skipped", step.reason or "successor deferred")
                return
            if step.name == plan.WAIT:
                record["waiting"] = step.reason
                return
            if step.name == plan.HANDOVER:
                self.hand_over.step(old_id, new_id, record)
                return
            if step.name == plan.DONE:
                return
            if step.name == plan.RETIRE:
                self.due.append((cert, new_id))
                return
            if step.name == plan.UNCONFIRMED:
                record["undeployed"] = step.reason
                raise Failed(
                    "stage(s) %s were switched to client-certificate:%s but their deployment is "
                    "not confirmed (tag %s), and this policy does not redeploy: the old "
                    "certificate stays trusted and is not deleted. Deploy them, or run a policy "
                    "with 'redeploy: true' (or, for a stage that is gone, remove it from the "
                    "tag)" % (step.reason, new_id, UNDEPLOYED))
            if step.name == plan.EXPIRING:
                self.switcher.urgent(old_id, new_id, record, step)
            if step.name == plan.DEPLOY:  # once a run: what it could not deploy stays listed
                options = options._replace(redeploy=False)
            executor = {plan.PUBLISH: self.trust.step, plan.SWITCH: self.switcher.step,
                        plan.DEPLOY: self.switcher.deploy_step}[step.name]
            executor(old_id, new_id, record)
        raise Failed("state: no progress after %d steps" % MAX_STEPS)

    def rotating_predecessor(self, cert):
        """The certificate's predecessor, while stages still use it: only one whose successor
        this certificate is (``Successors.doubt``), not any that a tag names."""
        predecessor = cert.get("tags", {}).get(PREDECESSOR)
        if predecessor in self.listing and self.stage_map.get(predecessor) and \
                self.successors.doubt(self.listing[predecessor], cert) is None:
            return predecessor
        return None

    def stage_certs(self):
        """{"api/stage": the certificate it presents} for the stages listed."""
        return {"%s/%s" % (s["apiId"], s["stageName"]): cert_id
                for cert_id, users in self.stage_map.items() for s in users}

    def places(self, old_id, new_id, stage_list, recorded=False):
        """{Location: [stages behind it]} of this policy's destinations; with ``recorded``,
        also of every destination another policy recorded on the old certificate (read from
        its tag), which this policy must keep trusted too (fact 123)."""
        fields = dict(self.fields, cert_id=new_id, old_cert_id=old_id)
        destinations = list(self.action.data["publish"])
        if recorded:
            tags = self.listing.get(old_id, {}).get("tags", {})
            for key, (_, dest) in sorted(plan.trust_records(tags).items()):
                if dest is not None and key not in self.own_keys:
                    destinations.append(dest)
        return locations(destinations, fields, stage_list), fields

    def recorded(self, old_id, destinations):
        """The records of destinations just published: a gate for each (now +
        switch-after-days), within the room the certificate's tags have."""
        at = self.now + plan.days(self.options.switch_after)
        tags = {plan.dest_digest(dest): plan.trust_value(at, dest) for dest in destinations}
        known = plan.trust_records(self.listing[old_id].get("tags", {}))
        if len(set(known) | set(tags)) > plan.MAX_TRUST_TAGS:
            raise Failed("publish: %d destinations recorded for this certificate, more than the "
                         "%d its tags have room for" % (len(set(known) | set(tags)),
                                                        plan.MAX_TRUST_TAGS))
        return tags

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
        try:
            reason = self.blocked(old_id, new_id, fresh)
        except (Failed,) + FAILURES as e:
            run.failed(cert, e)
            return False
        if reason:
            record["not-deleted"] = reason
            self.log.warning("client-certificate:%s not deleted: %s", old_id, reason)
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

    def blocked(self, old_id, new_id, fresh):
        """Why not to retire now, from what the account says right before: the certificate's
        tags read again (another policy or run may have recorded an undeployed stage or a
        longer window since this run listed them), and every destination of every stage on the
        successor, this policy's and those recorded by others, read: each must hold the
        successor, which is all those stages will present once the old one is gone. One that
        lacks it gets it now, and the old certificate waits for a later run."""
        run = self.run
        tags = run.fresh_tags(old_id)
        run.listing[old_id]["tags"] = tags
        reason = plan.delete_blocker(tags, None, run.now)
        if reason:
            return reason
        places, fields = run.places(old_id, new_id, fresh.get(new_id, []), recorded=True)
        new_pem, cache = run.listing[new_id]["pemEncodedCertificate"], {}
        lacking = {place: behind for place, behind in places.items()
                   if not run.trust.holds(place, new_pem, cache)}
        if not lacking:
            return None
        run.trust.publish(lacking, fields)
        return "%s lacked the successor: published now, retired by a later run" % ", ".join(
            sorted(place.label for place in lacking))

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

    def of(self, old_id, cert=None):
        """Successors of a certificate in the listing that this rotation made, oldest first:
        those whose tags and dates agree (``plan.successor_doubt``). With ``cert`` (the
        resource being rotated), each other candidate is reported, and recorded under
        ``distrusted``; it is never adopted, and nothing of it is changed."""
        old = self.run.listing.get(old_id)
        if old is None:
            return []
        named = old.get("tags", {}).get(SUCCESSOR)
        found = []
        for candidate in sorted(
                (c for c in self.run.listing.values()
                 if c.get("tags", {}).get(PREDECESSOR) == old_id or
                 c["clientCertificateId"] == named),
                key=lambda c: (plan.created(c), c["clientCertificateId"])):
            doubt = self.doubt(old, candidate)
            if doubt is None:
                found.append(candidate)
            elif cert is not None:
                self.distrusted(cert, candidate, *doubt)
        return found

    def doubt(self, old, candidate):
        """Why a certificate is not a successor of ``old`` that this rotation made, or None."""
        owner_tags = self.run.hand_over.owner_tags
        return plan.successor_doubt(
            old, candidate, self.run.stage_map.get(candidate["clientCertificateId"], ()),
            lambda stage: owners.stage_owner(stage, owner_tags) is not None)

    def distrusted(self, cert, other, tag, reason):
        """Report a candidate that is not adopted: which tag named it, which disagreed."""
        old_id, other_id = cert["clientCertificateId"], other["clientCertificateId"]
        claim = "%s %s" % ((other_id, PREDECESSOR) if other.get("tags", {}).get(
            PREDECESSOR) == old_id else (old_id, SUCCESSOR))
        entry = {"certificate": other_id, "named-by": claim, "tag": tag, "reason": reason}
        found = cert[RECORD].setdefault("distrusted", [])
        if entry in found:
            return
        found.append(entry)
        self.log.warning("client-certificate:%s not adopted as the successor of "
                         "client-certificate:%s (named by the tag %s of %s): tag %s: %s; left "
                         "unchanged", other_id, old_id, claim.split()[1], claim.split()[0], tag,
                         reason)

    def verified(self):
        """({old id: successor id}, {successor id: old id}) for the pairs of the listing that
        this rotation made, with the successors this run goes on with: what trust is computed
        from, so that no tag alone adds a PEM to a bundle."""
        successors, predecessors = {}, {}
        for cand_id, cand in self.run.listing.items():
            old_id = cand.get("tags", {}).get(PREDECESSOR)
            old = self.run.listing.get(old_id)
            if old is not None and self.doubt(old, cand) is None:
                successors.setdefault(old_id, cand_id)
                predecessors[cand_id] = old_id
        successors.update(self.chosen)
        predecessors.update({new: old for old, new in self.chosen.items()})
        return successors, predecessors

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

    def choose(self, cert):
        """(the successor to go on with, or None; the other successors this rotation made),
        after the old certificate's state is checked against them (``plan.check_state``:
        ``StateError``). Changes nothing: ``find`` acts on it, ``plan`` prints it."""
        old_id = cert["clientCertificateId"]
        found = self.of(old_id, cert)
        used = [c for c in found if self.run.stage_map.get(c["clientCertificateId"])]
        chosen = (used[0] if len(used) == 1 else found[0]) if found else None
        old = self.run.listing.get(old_id)
        if old is not None:  # its state, before any of it steers the rotation
            plan.check_state(old.get("tags", {}), old_id, plan.created(old), self.run.now,
                             chosen and chosen["clientCertificateId"], self.run.stage_certs())
        return chosen, [c for c in found if c is not chosen]

    def find(self, cert):
        """The successor to go on with among those that exist: the one stages use if exactly
        one is used, else the oldest. Unused others a day old are orphans, deleted after the
        fresh stage listing of the retire phase; younger ones may be another run's, going on."""
        old_id = cert["clientCertificateId"]
        chosen, extras = self.choose(cert)
        if chosen is None:
            return None
        for extra in extras:
            if self.run.stage_map.get(extra["clientCertificateId"]):
                self.log.warning("client-certificate:%s has another successor %s that stages "
                                 "use: kept", old_id, extra["clientCertificateId"])
            elif plan.created(extra) + ORPHAN_AGE <= self.run.now:
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
        if len(user_tags(old.get("tags"))) + STATE_ROOM > MAX_TAGS:
            # Counted with every key the rotation may add: its state, the predecessor tag (the
            # old certificate's own, or its successor's) and the destinations' records.
            raise Failed("generate: the certificate has %d tags: its rotation needs room for %d "
                         "more (at most %d a resource); remove some first"
                         % (len(user_tags(old.get("tags"))), STATE_ROOM, MAX_TAGS))
        tags = copied_tags(old.get("tags", {}), self.log, old_id, self.run.hand_over.owner_tags)
        tags[ORIGIN] = plan.origin(old_id, plan.created(old), self.run.now)
        try:
            made = self.run.manager.retry(
                self.generator.generate_client_certificate, description=description,
                tags=tags)
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
        cert[RECORD].setdefault("steps", []).append(plan.GENERATE)
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
            if ours is None or any(plan.created(c) <= plan.created(ours) for c in rivals):
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
        """PUBLISH: trust for every stage of the rotation in every destination of this policy,
        the first time, or when it names a destination no run published yet (added, renamed,
        or another policy went first). Each destination's gate is recorded before it is
        written (a record lost after the write would shorten the gate)."""
        run = self.run
        tags = run.listing[old_id].get("tags", {})
        stage_list = run.stage_map.get(old_id, []) + run.stage_map.get(new_id, [])
        places, fields = run.places(old_id, new_id, stage_list)
        marks = run.recorded(old_id, [dest for dest in run.action.data["publish"]
                                      if plan.dest_digest(dest) not in tags])
        if PUBLISHED not in tags:
            marks[PUBLISHED] = stamp(run.now)
        run.mark(old_id, marks)
        run.persist(old_id)
        record["published"] = self.publish(places, fields)

    def pems(self, ids):
        """The PEMs to trust for these certificates: one each, or a CA chain for a successor
        whose trust is its CA's (the migration's)."""
        return [pem for i in ids
                for pem in bundles.split(self.run.listing[i]["pemEncodedCertificate"])]

    def needed(self, place, behind, fields):
        successors, predecessors = self.run.successors.verified()
        return self.pems(trusted_ids(
            stages_behind(place, behind, self.run.stage_map, fields), self.run.listing,
            successors, predecessors))

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
        return all(bundles.holds(cache[place], one) for one in bundles.split(pem))

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
        """Each stage, once every destination behind it holds what it will present: this
        policy's and those other policies recorded (each read now)."""
        run = self.run
        places, fields = run.places(old_id, new_id, stage_list, recorded=True)
        new_pem = run.listing[new_id]["pemEncodedCertificate"]
        switched, late, cache = [], [], {}
        record["switched"] = switched
        for stage in stage_list:
            label = stages.stage_label(stage)
            lacking, without_new = run.trust.lacking(places, stage, fields, new_pem, cache)
            if without_new:  # backends get switch-after-days to pick the successor up: the
                # gate is written before the trust, so that losing it cannot shorten it
                run.mark(old_id, {LATE: stamp(run.now)})
                run.persist(old_id)
                late.append(label)
            if lacking:  # trust first: a stage that came later, or a PEM someone removed
                run.trust.publish(lacking, fields)
                cache.clear()
            if without_new:
                continue
            adapter = self.adapters[stage["protocol"]]
            current = adapter.current(stage)
            if current != old_id:
                self.log.info("client-certificate:%s %s is on %s now: not switched",
                              old_id, label, current)
                self.move(stage, old_id, current)
                continue
            short = label[len("stage:"):]
            # Recorded before the switch, so that no failure or death after it loses them:
            # which stage this action switched (the revert guard), when (the delete window),
            # and, with redeploy, that its deployment is not confirmed yet.
            run.switched(old_id)
            run.mark_label(old_id, SWITCHED_STAGES, short)
            if run.options.redeploy:
                run.mark_label(old_id, UNDEPLOYED, short)
            run.persist(old_id)
            try:
                adapter.switch(stage, new_id)
            except FAILURES:
                run.mark_label(old_id, SWITCHED_STAGES, short, add=False)
                run.mark_label(old_id, UNDEPLOYED, short, add=False)
                try:  # not switched after all: else a later run takes it for moved back
                    run.persist(old_id)
                except Failed as e:
                    self.log.warning("client-certificate:%s %s not switched, but still listed "
                                     "as switched: %s", old_id, label, e)
                raise
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
            run.mark_label(old_id, UNDEPLOYED, short, add=False)
            record.setdefault("deployed", []).append(stages.stage_label(stage))

    def deploy_step(self, old_id, new_id, record):
        """DEPLOY: the stages this action switched whose deployment is not confirmed. A stage a
        template owns is its owner's to deploy (the hand-over says so), never ours."""
        run = self.run
        tags = run.listing[old_id].get("tags", {})
        every = plan.ALL in plan.undeployed(tags)
        on_new = [s for s in run.stage_map.get(new_id, []) if plan.has_label(
            tags, UNDEPLOYED, stages.stage_label(s)[len("stage:"):])]
        if every:
            on_new = [s for s in on_new if owners.stage_owner(s, run.hand_over.owner_tags)
                      is None or run.hand_over.switch_owned]
        self.deploy(old_id, new_id, on_new, record)
        if every:
            run.mark_label(old_id, UNDEPLOYED, plan.ALL, add=False)

    def urgent(self, old_id, new_id, record, step):
        """EXPIRING: the switch gate would pass too close to (or after) the old certificate's
        expiry. Waiting is an outage, so every stage whose destinations already hold the
        successor switches now; a stage whose trust was lacking gets it now and switches on the
        next run. Either way the run fails, naming the stages and the dates."""
        run = self.run
        expires = plan.utc(run.listing[old_id]["expirationDate"])
        self.log.error("client-certificate:%s expires at %s, before its stages' switch gate "
                       "(%s) and its margin: switching at once what is trusted", old_id,
                       stamp(expires), step.reason)
        ours, _ = run.hand_over.split(old_id, run.listing[old_id].get("tags", {}))
        # A stage whose trust this very run published is not "published": its backends had no
        # time at all to read it. It switches on the next run. So does every stage when this run
        # published the successor's trust in the first place (its publish step).
        late = list(record.get("late", ()))
        if plan.PUBLISH in record.get("steps", ()):
            late += [stages.stage_label(s) for s in ours
                     if stages.stage_label(s) not in late]
        now_trusted = [s for s in ours if stages.stage_label(s) not in late]
        switched, more = self.switch(old_id, new_id, now_trusted, record) if now_trusted \
            else ([], [])
        late += more
        record["expiring"] = {"expires": stamp(expires), "gate": stamp(step.at),
                              "switched": list(switched), "not-switched": list(late)}
        raise Failed(
            "expires at %s, before the switch gate %s of its stage(s) (switch-after-days %s): "
            "switched at once: %s; not switched, their trust was lacking and is published now "
            "(the next run switches them): %s" % (
                stamp(expires), stamp(step.at), run.options.switch_after,
                ", ".join(switched) or "none", ", ".join(late) or "none"))

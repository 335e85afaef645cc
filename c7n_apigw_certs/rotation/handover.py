"""The hand-over: what the owner of a template must change, when ``rotate`` leaves a stage (or a
certificate) to it instead of fighting the template. Pure: entries and their text.

A stage switched behind its template's back drifts, and the next update of the stack (or the
next ``terraform apply``) puts the template's certificate back (docs/aws-behaviour.md, facts 29
and 30). A certificate a template owns must not be deleted behind it either: CloudFormation's
next update fails on it, and Terraform creates a new one, with a PEM no backend trusts. So the
rotation generates the successor and publishes its trust as usual, then tells the owner:
``handover.json`` in the policy's output, and one log line per entry. ``HandOver`` is the
``rotate`` action's executor for it.
"""
import datetime

from ..audit import owners
from . import plan, stages
from ..audit.owners import CLOUDFORMATION, describe
from .plan import HANDED, LATE, SWITCHED_STAGES, Failed, stamp

STAGE_ACTION = "set ClientCertificateId to %s"
OWNED = "its template owns it"
MOVED_BACK = ("it moved back to the old certificate after this action switched it: its owner "
              "reverted it")
# Stages still left to their owner this close to the old certificate's expiry fail the run:
# a hand-over nobody acted on is an outage in the making.
ALARM = datetime.timedelta(days=7)


def stage_entry(old_id, new_id, stage, found, not_before, reason, redeploy=False):
    """One stage whose owner must switch it (and deploy it, where the policy redeploys: this
    action never deploys a stage that it did not switch)."""
    return {
        "kind": "stage",
        "certificate": old_id,
        "successor": new_id,
        "stage": "stage:%s/%s" % (stage["apiId"], stage["stageName"]),
        "protocol": stage["protocol"],
        "apiName": stage.get("apiName", ""),
        "owner": found,
        "reason": reason,
        "not-before": not_before,
        "action": STAGE_ACTION % new_id + stage_hint(found, stage, new_id) + (
            ", and deploy the stage" if redeploy else ""),
    }


def stage_hint(found, stage, new_id):
    if found is None:
        return " (who owns the stage is not known: set it where it is defined)"
    if found["tool"] == CLOUDFORMATION:
        return (" in the template of stack %s (%s %s), then update the stack" % (
            found["stack"], "AWS::ApiGateway::Stage" if stage["protocol"] == "REST"
            else "AWS::ApiGatewayV2::Stage", found.get("logical-id", "")))
    return (" where the resource tagged %s is defined (Terraform: client_certificate_id = "
            "\"%s\"), then apply" % (found["tag"], new_id))


def certificate_entry(old_id, new_id, found):
    """The old certificate itself belongs to a template: never deleted here."""
    if found["tool"] == CLOUDFORMATION:
        action = ("stack %s owns %s (AWS::ApiGateway::ClientCertificate %s): c7n-apigw-certs "
                  "never deletes it. Once no stage uses it, remove it from the template; to keep "
                  "the successor %s under the template, pass its id as a parameter to the "
                  "stages' ClientCertificateId" % (
                      found["stack"], old_id, found.get("logical-id", ""), new_id))
    else:
        action = ("the certificate is tagged %s: c7n-apigw-certs never deletes it. Once no stage "
                  "uses it, remove it from the configuration (Terraform: import the successor "
                  "with `terraform import <address> %s` in its place, or `terraform state rm` "
                  "the old one before removing it)" % (found["tag"], new_id))
    return {"kind": "certificate", "certificate": old_id, "successor": new_id, "owner": found,
            "reason": "owned by a template", "action": action}


def line(entry):
    """The log line of an entry: who, where, what to do."""
    where = entry.get("stage") or "client-certificate:%s" % entry["certificate"]
    text = "client-certificate:%s hand-over: %s, %s (%s): %s" % (
        entry["certificate"], where, describe(entry["owner"]), entry["reason"], entry["action"])
    if entry.get("not-before"):
        text += ", not before %s" % entry["not-before"]
    return text


class HandOver:
    """Stages and certificates that a template owns, and stages that moved back to the old
    certificate after the switch: never switched (unless ``switch-owned``), never fought, never
    deleted; their owner is told what to change (``handover.py``). Their trust is published as
    for any stage, so the owner can switch as soon as the gate has passed."""

    def __init__(self, run):
        self.run, self.log = run, run.log
        self.owner_tags = run.action.data.get("owner-tags") or {}
        self.switch_owned = bool(run.action.data.get("switch-owned"))
        self.entries = []
        self.told = set()

    def split(self, old_id, tags):
        """The stages on the old certificate: (ours to switch, [(stage, owner, reason)])."""
        ours, handed = [], []
        for stage in self.run.stage_map.get(old_id, []):
            found = owners.stage_owner(stage, self.owner_tags)
            if found is not None and not self.switch_owned:
                handed.append((stage, found, OWNED))
            elif plan.has_label(tags, SWITCHED_STAGES,
                                "%s/%s" % (stage["apiId"], stage["stageName"])):
                # This action switched it, and it is on the old certificate again: a template
                # (or a person) put it back. Switching it again would fight them.
                handed.append((stage, found, MOVED_BACK))
            else:
                ours.append(stage)
        return ours, handed

    def count(self, old_id, handed):
        if plan.handed_count(self.run.listing[old_id].get("tags", {})) != len(handed):
            self.run.mark(old_id, {HANDED: str(len(handed))})

    def add(self, entry):
        self.entries.append(entry)
        self.log.warning(line(entry))

    def step(self, old_id, new_id, record):
        """HANDOVER: trust for every stage left to its owner (published now for one that came
        late), and what its owner must change, from when."""
        run = self.run
        tags = run.listing[old_id].setdefault("tags", {})
        _, handed = self.split(old_id, tags)
        places, fields = run.places(old_id, new_id, [stage for stage, _, _ in handed],
                                    recorded=True)
        gate = plan.switch_gate(tags, run.options.switch_after)
        new_pem, cache = run.listing[new_id]["pemEncodedCertificate"], {}
        for stage, found, reason in handed:
            not_before = gate
            missing = {p: behind for p, behind in places.items()
                       if stage in behind and not run.trust.holds(p, new_pem, cache)}
            if missing:  # came after publication: trust first (its gate written before), its
                # owner switches later
                run.mark(old_id, {LATE: stamp(run.now)})
                run.persist(old_id)
                run.trust.publish(missing, fields)
                cache.clear()
                not_before = run.now + plan.days(run.options.switch_after)
            self.add(stage_entry(old_id, new_id, stage, found, stamp(not_before), reason,
                                 run.options.redeploy))
            if reason == MOVED_BACK:
                record.setdefault("reverted", []).append(stages.stage_label(stage))
        record["handed-over"] = [stages.stage_label(stage) for stage, _, _ in handed]
        record["waiting"] = "for the owner of %d stage(s) to switch" % len(handed)
        self.count(old_id, handed)
        self.alarm(old_id, record)

    def alarm(self, old_id, record):
        """A stage moved back, or a hand-over this close to expiry: the run fails, so that a
        pipeline or a person sees it (the stages stay as they are)."""
        if record.get("reverted"):
            raise Failed("%s moved back to client-certificate:%s after the switch: not "
                         "switched again (see handover.json)" % (
                             ", ".join(record["reverted"]), old_id))
        expires = plan.utc(self.run.listing[old_id]["expirationDate"])
        if expires - ALARM <= self.run.now:
            raise Failed("%d stage(s) left to their owner still use client-certificate:%s, "
                         "which expires at %s (see handover.json)" % (
                             len(record["handed-over"]), old_id, stamp(expires)))

    def certificate(self, old_id, new_id, record):
        """True if a template owns the old certificate: it is never deleted here."""
        found = owners.owner(self.run.listing[old_id].get("tags"), self.owner_tags)
        if found is None:
            return False
        record["not-deleted"] = "owned by %s: remove it from the template" % owners.describe(
            found)
        if old_id not in self.told:
            self.told.add(old_id)
            self.add(certificate_entry(old_id, new_id, found))
        return True

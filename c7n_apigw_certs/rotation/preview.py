"""``c7n-apigw-certs plan POLICY.yml -r REGION``: what the next run of each policy's ``rotate``
would do, before it runs. Read-only.

``custodian run --dryrun`` never reaches an action (c7n's pull mode returns before any), so it
cannot show a rotation's next step. This command loads the policy as ``custodian`` does, runs its
query and filters (the certificates the action would get), lists certificates and stages as the
action does (``rotate.Rotation.load``), chooses each successor with the action's own checks
(``rotate.Successors.choose``: what a forged tag cannot steer) and state checks
(``plan.check_state``), and asks ``plan.preview`` (``plan.next_step``, step after step) what the
run would do. Nothing is written: no tag, no bundle, no stage; the IAM document
``c7n-apigw-certs iam --plan`` has only read actions.

What the run re-checks right before each change (a bundle that lacks a PEM, a stage that moved,
a call that fails) can stop it earlier than the plan says; it never goes further.
"""
import json
import os
import sys
import tempfile

from ..audit import owners
from . import plan
from .plan import StateError

STEP_TEXT = {plan.GENERATE: "generate a successor", plan.PUBLISH: "publish trust",
             plan.SWITCH: "switch", plan.DEPLOY: "deploy", plan.HANDOVER: "hand over",
             plan.RETIRE: "retire", plan.DONE: "done", plan.WAIT: "wait", plan.SKIP: "skip",
             plan.EXPIRING: "switch at once what is trusted, and fail (expiry before the gate)",
             plan.UNCONFIRMED: "fail (switched stages not deployed, and no redeploy)"}


class PlanError(Exception):
    """A policy file that cannot be planned (not valid, or no rotate action)."""


def options_for(region, args, output_dir):
    from c7n.config import Config
    return Config.empty(region=region, regions=[region], assume_role=args.assume,
                        profile=args.profile, external_id=None, output_dir=output_dir,
                        cache_period=0, account_id=None)


def rotate_policies(path, options):
    """The policies of the file that have a ``rotate`` action, loaded and validated by c7n."""
    from c7n.provider import clouds

    from ..iam import PolicyFileError, load_policies
    clouds["aws"]().initialize(options)
    try:
        policies = load_policies(path, options)
    except PolicyFileError as e:
        raise PlanError(str(e)) from e
    found = [(p, a) for p in policies for a in p.resource_manager.actions if a.type == "rotate"]
    if not found:
        raise PlanError("%s: no policy with a rotate action" % path)
    return found


def plan_policy(policy, action):
    """[entry] for each certificate the policy selects in its region."""
    from .rotate import RECORD, Rotation
    with policy.ctx:
        resources = policy.resource_manager.resources()
    from .clock import SkewError
    run = Rotation(action, resources)
    run.load()
    try:  # the run's "now": AWS's, as the listings' answers date it
        run.clock.check()
    except SkewError as e:
        raise PlanError("clock: %s" % e) from e
    run.now = run.clock.now()
    entries = []
    for cert in resources:
        cert[RECORD] = {}
        entries.append(certificate_plan(run, cert, policy.name))
    return entries


def certificate_plan(run, cert, policy_name):
    """What the next run does with one certificate, and why: the action's own choices."""
    from .rotate import RECORD
    old_id = cert["clientCertificateId"]
    entry = {"policy": policy_name, "region": run.manager.config.region,
             "certificate": old_id, "steps": [], "reason": None, "successor": None,
             "stages": {}, "trust": [], "gates": {}, "distrusted": [], "error": None}
    old = run.listing.get(old_id)
    if old is None:
        entry.update(steps=[plan.SKIP], reason="vanished")
        return entry
    tags = old.get("tags", {})
    try:
        chosen, _ = run.successors.choose(cert)
        new_id = chosen and chosen["clientCertificateId"]
        ours, handed = run.hand_over.split(old_id, tags)
        owned = owners.owner(tags, run.hand_over.owner_tags) is not None
        steps, after = plan.preview(tags, new_id, len(ours), run.now, run.options,
                                    run.rotating_predecessor(old), len(handed), owned,
                                    plan.utc(old["expirationDate"]), run.own_keys)
        entry["gates"] = {k: plan.stamp(v) for k, v in
                          plan.gates(after, run.now, run.options).items()}
    except StateError as e:
        entry["error"] = str(e)
        steps, ours, handed, new_id = [], [], [], None
    entry["distrusted"] = cert[RECORD].get("distrusted", [])
    entry["steps"] = [s.name for s in steps]
    entry["reason"] = steps[-1].reason if steps else None
    names = entry["steps"]
    if new_id or plan.GENERATE in names:
        entry["successor"] = new_id or "(new)"
    if set(names) & {plan.SWITCH, plan.EXPIRING} or plan.WAIT in names and new_id:
        entry["stages"]["switch"] = [label(s) for s in ours]
    if handed:
        entry["stages"]["hand-over"] = [label(s) for s, _, _ in handed]
    if entry["successor"] and set(names) & {plan.PUBLISH, plan.SWITCH, plan.RETIRE, plan.WAIT}:
        places, _ = run.places(old_id, entry["successor"], run.stage_map.get(old_id, []) +
                               run.stage_map.get(new_id, []))
        entry["trust"] = sorted(place.label for place in places)
    return entry


def label(stage):
    return "stage:%s/%s" % (stage["apiId"], stage["stageName"])


def text(entry):
    """The entry as a person reads it."""
    steps = ", ".join(STEP_TEXT[s] for s in entry["steps"]) or "stops"
    head = "client-certificate:%s (%s, policy %s): next run: %s" % (
        entry["certificate"], entry["region"], entry["policy"], steps)
    if entry["reason"]:
        head += " (%s)" % entry["reason"]
    lines = [head]
    if entry["error"]:
        lines.append("  error: %s" % entry["error"])
    if entry["successor"]:
        lines.append("  successor: %s" % (
            "a new one" if entry["successor"] == "(new)"
            else "client-certificate:%s" % entry["successor"]))
    for what, found in sorted(entry["stages"].items()):
        lines.append("  %s: %s" % (what, ", ".join(found) or "none"))
    if entry["trust"]:
        lines.append("  trust: %s" % ", ".join(entry["trust"]))
    for gate, when in sorted(entry["gates"].items()):
        lines.append("  %s at %s" % (gate, when))
    for doubt in entry["distrusted"]:
        lines.append("  distrusted: client-certificate:%s, tag %s: %s" % (
            doubt["certificate"], doubt["tag"], doubt["reason"]))
    return "\n".join(lines)


def default_region():
    """The environment's region (c7n-org's ``run-script`` sets it per account and region, fact
    134), else us-east-1."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def run_plan(args):
    """Print the plan of every rotate policy of the file, per region; exit 1 if a
    certificate's state stops its rotation, 2 if the file cannot be planned."""
    import c7n_apigw_certs
    c7n_apigw_certs.initialize()
    entries = []
    try:
        with tempfile.TemporaryDirectory(prefix="c7n-apigw-certs-plan-") as out:
            for region in args.region or [default_region()]:
                for policy, action in rotate_policies(args.policy_file,
                                                      options_for(region, args, out)):
                    entries.extend(plan_policy(policy, action))
    except PlanError as e:
        sys.stderr.write("c7n-apigw-certs plan: %s\n" % e)
        sys.exit(2)
    if args.json:
        sys.stdout.write(json.dumps(entries, indent=2) + "\n")
    else:
        sys.stdout.write("".join(text(e) + "\n" for e in entries) or
                         "no certificate selected\n")
    if any(e["error"] for e in entries):
        sys.exit(1)

"""The rotation's state machine: from a certificate's tags and what the listings show, its next
step. Pure: no AWS calls, no clock of its own; ``rotate.py`` carries each step out.

A rotation of certificate OLD goes, across as many runs as its time gates ask::

    generate -> publish -> (wait switch-after-days) -> switch -> [deploy] -> (wait
    delete-after-days) -> retire

State lives in tags on OLD (``c7n:rotation:*``, below), and on the successor the tag
``predecessor``, set in the very call that creates it (docs/aws-behaviour.md, fact 4: tags on the
certificate's ARN). A record that a gate depends on is written *before* the action it protects
(``rotate.Rotation.persist``), merged into the certificate's tags as they are at that moment
(fact 120). Every step is re-checked against fresh state by its executor right before it
changes anything: the plan says what is due, never that it is safe.

Every record is honoured whatever the options of the policy that reads it: a stage listed in
``undeployed`` blocks retirement for a policy without ``redeploy`` too, a gate another policy
recorded for its own destination (``trust:<digest>``) holds every policy's switch, and a gate
that would let the certificate expire under a stage is never waited for (``EXPIRING``).
"""
import base64
import collections
import datetime
import hashlib
import json
import re

from dateutil.parser import isoparse
from dateutil.tz import tzutc

PREFIX = "c7n:rotation:"
PREDECESSOR = PREFIX + "predecessor"    # on the successor: the certificate it replaces
SUCCESSOR = PREFIX + "successor"        # on the old certificate: its successor's id
PUBLISHED = PREFIX + "published-at"     # trust first published for the stages of the time
LATE = PREFIX + "late-published-at"     # trust last published for a stage that came later
SWITCHED = PREFIX + "switched-at"       # a stage last moved to the successor
SWITCHED_STAGES = PREFIX + "switched"   # the stages this action switched ("api/stage" ...)
UNDEPLOYED = PREFIX + "undeployed"      # stages switched whose deployment is not confirmed
RETIRE_AFTER = PREFIX + "retire-after"  # switched-at + delete-after-days: the delete window
HANDED = PREFIX + "handed-over"         # how many stages were left to their owner last run
ORIGIN = PREFIX + "origin"              # on the successor: "OLD-ID OLD-CREATED GENERATED-AT"
TRUST = PREFIX + "trust:"  # + a destination's digest: "<switch not before>_<destination>"
SEPARATOR = "_"  # between a record's time and its destination: no space (fact 121)
STATE_TAGS = (SUCCESSOR, PUBLISHED, LATE, SWITCHED, SWITCHED_STAGES, UNDEPLOYED, RETIRE_AFTER,
              HANDED)
SUCCESSOR_TAGS = (PREDECESSOR, ORIGIN)  # set in the call that creates a successor
LIST_TAGS = (SWITCHED_STAGES, UNDEPLOYED)
# Times where the later one is the safe one (a longer gate, a later window): two writers merge
# to the later (``merged``).
TIME_TAGS = (PUBLISHED, LATE, SWITCHED, RETIRE_AFTER)
# How far two clocks (this machine's, API Gateway's) may disagree, and how long one run may
# take between its start (the time it stamps) and the creation of a successor.
SKEW = datetime.timedelta(minutes=15)
RUN_TIME = datetime.timedelta(hours=1)
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
# A stage list's entry: an API id, "/", a stage name (letters, digits, "-", "_", at most 128:
# docs/aws-behaviour.md, fact 130; or $default), or a stage's digest ("#", 6 hex digits).
LABEL = re.compile(r"([A-Za-z0-9]{1,64}/([A-Za-z0-9_-]{1,128}|\$default)|#[0-9a-f]{6})\Z")
COUNT = re.compile(r"\d{1,4}\Z")
DESTINATION_TYPES = ("ssm", "s3", "elb-trust-store")  # publish.DESTINATION_SCHEMA's kinds
TAG_VALUE_LENGTH = 256  # an API Gateway tag value (docs/aws-behaviour.md, fact 35)
ALL = "*"               # a list of stages too long even as digests: every stage
DIGEST = "#"            # an entry "#<6 hex>": a stage's digest, when labels outgrow the value
MAX_TRUST_TAGS = 6      # destinations recorded per certificate (the 50-tag budget, fact 122)
# A gate that passes this close to the old certificate's expiry is not waited for: a daily
# schedule would run past the expiry first.
EXPIRY_MARGIN = datetime.timedelta(days=1)

# The steps.
SKIP = "skip"          # nothing to rotate (reason)
GENERATE = "generate"  # make the one successor
PUBLISH = "publish"    # write trust for every stage on the old certificate
WAIT = "wait"          # a time gate (at)
SWITCH = "switch"      # move every stage still on the old certificate (may be none: marks)
DEPLOY = "deploy"      # redeploy switched stages whose deployment did not land
HANDOVER = "hand-over"  # stages whose owner (a template) must switch them: say how
DONE = "done"          # nothing left to do without delete-after-days
RETIRE = "retire"      # drop from trust and delete, after fresh listings agree
EXPIRING = "expiring"  # a gate past (or too near) expiry: switch what is trusted now, and fail
UNCONFIRMED = "undeployed"  # stages switched, their deployment unconfirmed, and no redeploy

Step = collections.namedtuple("Step", "name reason at", defaults=(None, None))
Options = collections.namedtuple("Options", "switch_after delete_after redeploy")


class Failed(Exception):
    """A step that could not be done, with what it was doing: the certificate stops there."""


class StateError(ValueError):
    """A state tag this action did not write (a person edited it): the certificate stops
    rather than guessing a gate."""


def stamp(when):
    return when.astimezone(tzutc()).strftime("%Y-%m-%dT%H:%M:%SZ")


def tag_time(tags, key):
    """The time in a state tag, or None when the tag is absent. Only the form ``stamp`` writes
    is a time: anything else is a value this action did not write."""
    value = tags.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not STAMP.match(value):
        raise StateError("tag %s is %r, not a time as this action writes it (%s)" % (
            key, value, "YYYY-MM-DDTHH:MM:SSZ"))
    try:
        when = isoparse(value)
    except (TypeError, ValueError) as e:
        raise StateError("tag %s is %r, not a time (%s)" % (key, value, e)) from e
    return utc(when)


def created(cert):
    """A listed certificate's ``createdDate``, aware (boto3 parses it; a test may not)."""
    when = cert["createdDate"]
    if isinstance(when, (int, float)):
        return datetime.datetime.fromtimestamp(when, tz=tzutc())
    if isinstance(when, str):
        return utc(isoparse(when))
    return utc(when)


def utc(when):
    return when if when.tzinfo else when.replace(tzinfo=tzutc())


def labels(tags, key):
    """The entries a stage list holds: labels (``api/stage``), digests (``#1a2b3c``) once the
    labels outgrew a tag value, or ``["*"]`` when even the digests did."""
    return [label for label in (tags.get(key) or "").split() if label]


def digest(label):
    """A stage's short digest: 24 bits, so about 30 stages fit a tag value, and a false match
    among them is a one in half a million chance (on the safe side: a stage taken for switched
    is handed over, never switched again)."""
    return DIGEST + hashlib.sha256(label.encode()).hexdigest()[:6]


def has_label(tags, key, label):
    """Whether a stage list holds the stage, in either form (``*``: every stage does)."""
    found = labels(tags, key)
    return label in found or digest(label) in found or ALL in found


def encode_labels(found):
    """A stage list as one tag value: labels while they fit, digests when they do not, ``*``
    (every stage, the safe side for both lists) when even those do not."""
    if ALL in found:
        return ALL
    value = " ".join(sorted(set(found)))
    if len(value) <= TAG_VALUE_LENGTH and not any(x.startswith(DIGEST) for x in found):
        return value  # labels while they fit; once digests, digests only (one form)
    value = " ".join(sorted({x if x.startswith(DIGEST) else digest(x) for x in found}))
    return value if len(value) <= TAG_VALUE_LENGTH else ALL


def with_label(tags, key, label, add=True):
    """The tag's new value with a label added (or removed, in either form)."""
    found = labels(tags, key)
    if not add and label == ALL:
        return ""  # every stage named: cleared as a whole
    if ALL in found:
        return ALL
    present = label in found or digest(label) in found
    if present == add:  # already so: the value as it is (applying an edit twice is a no-op)
        return tags.get(key) or ""
    if add:
        return encode_labels(found + [label])
    return encode_labels([x for x in found if x not in (label, digest(label))])


def undeployed(tags):
    """The stages switched whose deployment is not confirmed (``redeploy: true``): written
    *before* each switch and cleared after its deployment, so a run that dies in between, or
    fails to write its tags at the end, still leaves them listed."""
    return labels(tags, UNDEPLOYED)


def deploy_pending(tags):
    """Whether a switched stage may still present the old certificate for want of a deployment
    (docs/aws-behaviour.md, facts 11 and 31)."""
    return bool(undeployed(tags))


def days(n):
    return datetime.timedelta(days=n)


def handed_count(tags):
    value = tags.get(HANDED) or "0"
    if not COUNT.match(value):
        raise StateError("tag %s is %r, not a count" % (HANDED, value))
    return int(value)


# -- what this action could have written ----------------------------------------------------
def check_state(tags, cert_id, cert_created, now, successor, stage_certs):
    """Raise ``StateError`` for the first state tag of an old certificate that this action could
    not have written: a time not in ``stamp``'s form, in the future, before the certificate
    existed, or out of the order the steps write them (trust before a switch); a count that is
    not one; a stage list with a label that is no stage, or naming a stage that presents a third
    certificate (neither this one nor its successor); any state at all without a successor
    (``successor`` None: none that this rotation made exists).

    ``stage_certs``: {"api/stage": the certificate it presents} for the stages listed now."""
    times = {key: tag_time(tags, key) for key in TIME_TAGS}
    for key, when in times.items():
        if when is None:
            continue
        if when < cert_created - SKEW:
            raise StateError("tag %s is %s, before the certificate was created (%s)" % (
                key, tags[key], stamp(cert_created)))
        if key != RETIRE_AFTER and when > now + SKEW:
            raise StateError("tag %s is %s, in the future (now %s)" % (
                key, tags[key], stamp(now)))
    state = [key for key in STATE_TAGS
             if key != SUCCESSOR and tags.get(key) not in (None, "", "0")]
    if successor is None and state:
        raise StateError(
            "tag %s is set, but no successor that this rotation made exists%s: state this "
            "action could not have written (to start over, remove the certificate's "
            "%s* tags)" % (state[0], " (%s names %s)" % (SUCCESSOR, tags[SUCCESSOR])
                           if tags.get(SUCCESSOR) else "", PREFIX))
    published = times[PUBLISHED]
    for key in (LATE, SWITCHED, RETIRE_AFTER):
        if times[key] is not None and (published is None or times[key] < published):
            raise StateError("tag %s is %s, %s: trust is published before anything else" % (
                key, tags[key], "before %s (%s)" % (PUBLISHED, tags[PUBLISHED])
                if published else "but %s is not set" % PUBLISHED))
    handed_count(tags)
    for key, (at, _) in trust_records(tags).items():
        if at is not None and at < cert_created - SKEW:
            raise StateError("tag %s is %s, before the certificate was created (%s)" % (
                key, tags[key], stamp(cert_created)))
        if published is None:
            raise StateError("tag %s is set, but %s is not" % (key, PUBLISHED))
    for key in LIST_TAGS:
        for label in labels(tags, key):
            if label == ALL:
                continue
            if not LABEL.match(label):
                raise StateError("tag %s lists %r, which is no stage (api/stage)" % (key, label))
            other = stage_certs.get(label)
            if other is not None and other not in (cert_id, successor):
                raise StateError(
                    "tag %s lists stage:%s, which presents client-certificate:%s, neither this "
                    "certificate nor its successor: a stage this rotation never switched"
                    % (key, label, other))


# -- which certificate is a successor -----------------------------------------------------
def origin(old_id, old_created, at):
    """The marker a successor is created with: its predecessor's id and creation date, and the
    time of the run that generated it."""
    return "%s %s %s" % (old_id, stamp(old_created), stamp(at))


def successor_doubt(old, candidate, candidate_stages, owned):
    """Why ``candidate`` (a listed certificate) is not a successor this rotation made for
    ``old``, as (the tag that does not agree, the reason), or None. Every tag can be written by
    whoever may tag, so each is checked against what the listings show and against the others:

    - it was created after ``old``, and names it in ``predecessor``;
    - its ``origin`` names ``old``'s id and creation date, and the run that made it: within a
      run's length of its own creation (it was tagged in the call that created it);
    - ``old``'s state agrees: if ``old``'s trust is published, the candidate existed by then;
    - no stage presents it but ``old``'s own: only stages that ``old``'s rotation switched
      (``switched``, written before each switch), and stages that a template owns
      (``owned(stage)``) once ``old``'s rotation handed stages over.
    """
    tags = candidate.get("tags") or {}
    old_id, old_tags = old["clientCertificateId"], old.get("tags") or {}
    old_created, made = created(old), created(candidate)
    if tags.get(PREDECESSOR) != old_id:
        return SUCCESSOR, "%s names it, but its %s is %r" % (
            SUCCESSOR, PREDECESSOR, tags.get(PREDECESSOR))
    if made < old_created:
        return PREDECESSOR, "it was created at %s, before client-certificate:%s (%s)" % (
            stamp(made), old_id, stamp(old_created))
    for stage in candidate_stages:
        label = "%s/%s" % (stage["apiId"], stage["stageName"])
        if has_label(old_tags, SWITCHED_STAGES, label) or (HANDED in old_tags and owned(stage)):
            continue
        return PREDECESSOR, "stage:%s presents it, which client-certificate:%s's rotation " \
            "never switched (%s)" % (label, old_id, SWITCHED_STAGES)
    marker = (tags.get(ORIGIN) or "").split(" ")
    if len(marker) != 3 or not all(STAMP.match(part) for part in marker[1:]):
        return ORIGIN, "it has no %s marker as this action writes it (%r)" % (
            ORIGIN, tags.get(ORIGIN))
    if marker[:2] != [old_id, stamp(old_created)]:
        return ORIGIN, "%s names %s created %s, not client-certificate:%s created %s" % (
            ORIGIN, marker[0], marker[1], old_id, stamp(old_created))
    at = utc(isoparse(marker[2]))
    if not at - SKEW <= made <= at + RUN_TIME:
        return ORIGIN, "%s says it was generated by a run at %s, but it was created at %s" % (
            ORIGIN, marker[2], stamp(made))
    published = tag_time(old_tags, PUBLISHED)
    if published is not None and made > published + RUN_TIME:
        return PUBLISHED, "it was created at %s, after client-certificate:%s's trust was " \
            "published (%s %s)" % (stamp(made), old_id, PUBLISHED, old_tags[PUBLISHED])
    return None


def preview(tags, successor, on_old, now, options, rotating_predecessor=None, handed=0,
            owned_certificate=False, expires=None, destinations=(), limit=8):
    """(The steps one run takes for one certificate, the old certificate's tags after them):
    the steps in order, as ``next_step`` chooses them when each step does what it is for
    (trust published, every stage of ours switched, every switched stage deployed).
    ``owned_certificate``: a template owns the old certificate, which is then never retired.
    What a run finds when it re-checks (a bundle that lacks a PEM, a stage that moved, a call
    that fails) can make it stop earlier than this says; it never goes further."""
    tags, steps = dict(tags), []
    for _ in range(limit):
        step = next_step(tags, successor, on_old, now, options, rotating_predecessor, handed,
                         expires, destinations)
        if step.name == GENERATE:
            steps.append(step)
            successor = successor or "(new)"
            continue
        if step.name in (HANDOVER, RETIRE, DONE) and owned_certificate:
            step = Step(HANDOVER) if handed else Step(DONE)
        steps.append(step)
        if step.name == PUBLISH:
            tags.setdefault(PUBLISHED, stamp(now))
            for key in destinations:
                tags.setdefault(key, stamp(now + days(options.switch_after)))
        elif step.name == SWITCH:
            on_old = 0
            tags[SWITCHED] = stamp(now)
            tags[HANDED] = str(handed)
        elif step.name == DEPLOY:
            tags[UNDEPLOYED] = ""
            options = options._replace(redeploy=False)  # once a run, as the run does
        else:  # a wait, a hand-over, the end, or a step that fails the run (EXPIRING,
            break  # UNCONFIRMED) after what it does
    return steps, tags


def gates(tags, now, options):
    """{"switch": when, "delete": when} for what is still ahead, from the old certificate's
    tags (as ``preview`` leaves them): the switch once trust is published, the delete window
    once switched (or, not switched yet, at the earliest)."""
    found = {}
    switch_at = switch_gate(tags, options.switch_after) if PUBLISHED in tags else \
        now + days(options.switch_after)
    switched = tag_time(tags, SWITCHED)
    if switched is None or switch_at > now:
        found["switch"] = switch_at
    if options.delete_after is not None:
        start = switched if switched is not None else switch_at
        found["delete"] = start + days(options.delete_after)
    return found


def dest_digest(dest):
    """The key of a destination's record: a digest of its kind and its name templates (not its
    tier: the same place in another tier is the same place)."""
    canonical = "\n".join([dest["type"]] + ["%s=%s" % (k, dest[k]) for k in ("name", "bucket",
                                                                          "key") if k in dest])
    return TRUST + hashlib.sha256(canonical.encode()).hexdigest()[:12]


def trust_value(not_before, dest):
    """A destination's record: when its gate passes, then the destination itself (base64 of its
    JSON: tag values allow letters, digits and ``_ . : / = + - @``, spaces maybe, fact 121) so
    that a policy that does not name it can still read it; the time alone when it is too long
    for a tag value (then only the policies that name it check it)."""
    text = json.dumps(dest, sort_keys=True, separators=(",", ":")).encode()
    value = stamp(not_before) + SEPARATOR + base64.b64encode(text).decode()
    return value if len(value) <= TAG_VALUE_LENGTH else stamp(not_before)


def trust_records(tags):
    """{key: (switch not before, destination or None)} of every destination recorded."""
    found = {}
    for key, value in tags.items():
        if not key.startswith(TRUST):
            continue
        when, _, encoded = (value or "").partition(SEPARATOR)
        at = tag_time({key: when}, key)
        dest = None
        if encoded:
            try:
                dest = json.loads(base64.b64decode(encoded, validate=True))
            except ValueError as e:
                raise StateError("tag %s is %r, not a destination (%s)" % (key, value, e)) from e
            if not isinstance(dest, dict) or dest.get("type") not in DESTINATION_TYPES:
                raise StateError("tag %s names %r, not a destination" % (key, dest))
        found[key] = (at, dest)
    return found


def switch_gate(tags, switch_after):
    """When the stages still on the old certificate may switch: this policy's days after the
    latest publication, and never before any destination's own recorded gate (another policy's
    too)."""
    published = tag_time(tags, PUBLISHED)
    latest = max(published, tag_time(tags, LATE) or published)
    gates = [latest + days(switch_after)] + [at for at, _ in trust_records(tags).values()]
    return max(gates)


def next_step(tags, successor, on_old, now, options, rotating_predecessor=None, handed=0,
              expires=None, destinations=()):
    """The next step for one certificate.

    ``tags``: the old certificate's tags now; ``successor``: its successor's id or None;
    ``on_old``: how many stages on the old certificate this action may switch; ``handed``: how
    many are left to their owner (a template owns them, or moved them back); ``now``: the run's
    time; ``options``: the policy's ``Options``; ``rotating_predecessor``: the id of this
    certificate's own predecessor while that one's rotation still has stages to move here;
    ``expires``: the old certificate's expiry; ``destinations``: the record keys
    (``dest_digest``) of this policy's own destinations, each published once before any switch.
    """
    if rotating_predecessor:
        return Step(SKIP, "successor of %s, whose rotation is under way" % rotating_predecessor)
    if successor is None:
        if not on_old and not handed:
            return Step(SKIP, "used by no stage")
        return Step(GENERATE)
    if tag_time(tags, PUBLISHED) is None or any(key not in tags for key in destinations):
        return Step(PUBLISH)  # a destination this policy names and no run published yet
    # A stage handed over earlier is on the successor now: its owner switched it, and the
    # delete window starts again from that.
    moved = handed < handed_count(tags)
    waiting = hand_over = None
    if on_old or handed or moved or SWITCHED not in tags:
        # Stages still on the old certificate were either there at publication or came later;
        # those that came later had their trust published at LATE, so the latest publication
        # gates them all (the stages already switched never waited for a late one).
        switch_at = switch_gate(tags, options.switch_after)
        if now < switch_at:
            if on_old and expires is not None and switch_at + EXPIRY_MARGIN > expires:
                return Step(EXPIRING, "the switch gate %s is too close to the expiry %s" % (
                    stamp(switch_at), stamp(expires)), switch_at)
            waiting = Step(WAIT, "switch at %s" % stamp(switch_at), switch_at)
        elif on_old or moved or (SWITCHED not in tags and not handed):
            return Step(SWITCH)
        else:
            hand_over = Step(HANDOVER, "%d stage(s) left to their owner" % handed, switch_at)
    if options.redeploy and deploy_pending(tags):
        return Step(DEPLOY)  # stages already switched need not wait for the others
    if waiting is not None:
        return waiting
    if hand_over is not None:
        return hand_over
    if options.delete_after is None:
        return Step(DONE)
    retire_at = tag_time(tags, SWITCHED) + days(options.delete_after)
    if now < retire_at:
        return Step(WAIT, "delete at %s" % stamp(retire_at), retire_at)
    if deploy_pending(tags):  # recorded by a policy that redeploys; this one does not
        return Step(UNCONFIRMED, " ".join(undeployed(tags)))
    return Step(RETIRE)


def merged(current, ours, edits):
    """The tags to write: ``ours`` (values) and ``edits`` (``[(key, label, add)]`` on stage
    lists) applied to the certificate's tags as they are ``current``ly, not as the run first
    listed them, so that another run's entries survive. Of two times of a gate, the later one
    stays (the safe side); but ``published-at`` says when trust was first published, so the
    earlier stays: a run that listed before a rival published, and published again after the
    rival switched, must not date the publication after that switch (a state every later run
    refuses). Switching still waits for every destination's own record and checks that the
    bundles hold the certificates (``Trust.lacking``). Only the keys that change."""
    out = {}
    for key, value in ours.items():
        if key in TIME_TAGS or key.startswith(TRUST):
            mine, theirs = (tag_time({key: v.partition(SEPARATOR)[0]}, key) if v else None
                            for v in (value, current.get(key)))
            if theirs is not None and mine is not None and (
                    theirs < mine if key == PUBLISHED else theirs > mine):
                value = current[key]
        if current.get(key) != value:
            out[key] = value
    view = dict(current, **out)
    for key, label, add in edits:
        value = with_label(view, key, label, add)
        view[key] = value
        if current.get(key, "") != value:
            out[key] = value
        else:
            out.pop(key, None)
    return out


def delete_blocker(tags, predecessor_state, now):
    """Why the ``delete`` action must leave a certificate alone, from its rotation state, or
    None. ``predecessor_state``: None when the certificate is no successor (or its predecessor
    is gone), else ``(predecessor tags, whether a stage uses the predecessor)``."""
    if predecessor_state is not None:
        pred_tags, pred_used = predecessor_state
        if pred_used or SWITCHED not in pred_tags:
            return "successor of %s, whose rotation is unfinished" % tags[PREDECESSOR]
    if SUCCESSOR in tags:
        if SWITCHED not in tags:
            return "rotating to %s: its stages are not switched yet" % tags[SUCCESSOR]
        if undeployed(tags):
            return "rotating to %s: stages %s switched but not deployed" % (
                tags[SUCCESSOR], ", ".join(undeployed(tags)))
        retire_after = tag_time(tags, RETIRE_AFTER)
        if retire_after is not None and now < retire_after:
            return "inside its delete-after-days window until %s" % stamp(retire_after)
    return None

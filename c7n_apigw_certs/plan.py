"""The rotation's state machine: from a certificate's tags and what the listings show, its next
step. Pure: no AWS calls, no clock of its own; ``rotate.py`` carries each step out.

A rotation of certificate OLD goes, across as many runs as its time gates ask::

    generate -> publish -> (wait switch-after-days) -> switch -> [deploy] -> (wait
    delete-after-days) -> retire

State lives in tags on OLD (``c7n:rotation:*``, below), written in one ``TagResource`` call
when a run is done with the certificate, and on the successor the tag ``predecessor``, set in the
very call that creates it (docs/aws-behaviour.md, fact 4: tags on the certificate's ARN). Every
step is re-checked against fresh state by its executor right before it changes anything: the
plan says what is due, never that it is safe.
"""
import collections
import datetime

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
STATE_TAGS = (SUCCESSOR, PUBLISHED, LATE, SWITCHED, SWITCHED_STAGES, UNDEPLOYED, RETIRE_AFTER,
              HANDED)
TAG_VALUE_LENGTH = 256  # an API Gateway tag value (docs/aws-behaviour.md, fact 35)
ALL = "*"               # a list of stages too long for one tag value: every stage

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
    """The time in a state tag, or None when the tag is absent."""
    value = tags.get(key)
    if value is None:
        return None
    try:
        when = isoparse(value)
    except (TypeError, ValueError) as e:
        raise StateError("tag %s is %r, not a time (%s)" % (key, value, e)) from e
    return utc(when)


def utc(when):
    return when if when.tzinfo else when.replace(tzinfo=tzutc())


def labels(tags, key):
    """The stage labels (``api/stage``) a state tag lists; ``["*"]`` when it outgrew a tag."""
    return [label for label in (tags.get(key) or "").split() if label]


def with_label(tags, key, label, add=True):
    """The tag's new value with a label added (or removed). A list longer than a tag value
    holds becomes ``*``: every stage, the safe side for both lists."""
    found = labels(tags, key)
    if ALL in found:
        return ALL
    found = sorted(set(found) | {label}) if add else [x for x in found if x != label]
    value = " ".join(found)
    return value if len(value) <= TAG_VALUE_LENGTH else ALL


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
    if not value.isdigit():
        raise StateError("tag %s is %r, not a count" % (HANDED, value))
    return int(value)


def next_step(tags, successor, on_old, now, options, rotating_predecessor=None, handed=0):
    """The next step for one certificate.

    ``tags``: the old certificate's tags now; ``successor``: its successor's id or None;
    ``on_old``: how many stages on the old certificate this action may switch; ``handed``: how
    many are left to their owner (a template owns them, or moved them back); ``now``: the run's
    time; ``options``: the policy's ``Options``; ``rotating_predecessor``: the id of this
    certificate's own predecessor while that one's rotation still has stages to move here.
    """
    if rotating_predecessor:
        return Step(SKIP, "successor of %s, whose rotation is under way" % rotating_predecessor)
    if successor is None:
        if not on_old and not handed:
            return Step(SKIP, "used by no stage")
        return Step(GENERATE)
    published = tag_time(tags, PUBLISHED)
    if published is None:
        return Step(PUBLISH)
    # A stage handed over earlier is on the successor now: its owner switched it, and the
    # delete window starts again from that.
    moved = handed < handed_count(tags)
    waiting = hand_over = None
    if on_old or handed or moved or SWITCHED not in tags:
        # Stages still on the old certificate were either there at publication or came later;
        # those that came later had their trust published at LATE, so the latest publication
        # gates them all (the stages already switched never waited for a late one).
        latest = max(published, tag_time(tags, LATE) or published)
        switch_at = latest + days(options.switch_after)
        if now < switch_at:
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
    return Step(RETIRE)


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

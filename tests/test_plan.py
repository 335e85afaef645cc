"""The rotation's state machine, as a pure function of tags, listings and time."""
import datetime

import pytest

from c7n_apigw_certs import plan
from c7n_apigw_certs.plan import (
    LATE, PREDECESSOR, PUBLISHED, RETIRE_AFTER, SUCCESSOR, SWITCHED, UNDEPLOYED,
    Options, delete_blocker, next_step, stamp)

NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.timezone.utc)
STAGED = Options(switch_after=3, delete_after=7, redeploy=False)


def ago(days):
    return stamp(NOW - datetime.timedelta(days=days))


def step(tags, successor="new", on_old=1, options=STAGED, **kw):
    return next_step(tags, successor, on_old, NOW, options, **kw)


def test_unused_certificate_is_not_rotated():
    assert step({}, successor=None, on_old=0) == ("skip", "used by no stage", None)


def test_a_certificate_in_use_needs_a_successor_then_trust():
    assert step({}, successor=None).name == plan.GENERATE
    assert step({SUCCESSOR: "new"}).name == plan.PUBLISH


@pytest.mark.parametrize("published,expected", [(2.99, plan.WAIT), (3, plan.SWITCH)])
def test_switch_waits_for_its_days_both_sides(published, expected):
    result = step({SUCCESSOR: "new", PUBLISHED: ago(published)})
    assert result.name == expected
    if expected == plan.WAIT:
        assert result.reason.startswith("switch at ") and result.at > NOW


def test_a_late_stage_waits_for_its_own_publication_only():
    tags = {SUCCESSOR: "new", PUBLISHED: ago(5), LATE: ago(1)}
    result = step(tags)  # the late stage waits 3 days from its own trust, not from the first
    assert result.name == plan.WAIT
    assert result.reason == "switch at %s" % stamp(NOW + datetime.timedelta(days=2))
    # the stages switched on time did not wait for it: the delete window runs from their switch
    done = dict(tags, **{SWITCHED: ago(4)})
    assert step(done, on_old=0).reason == "delete at %s" % stamp(
        NOW + datetime.timedelta(days=3))


def test_stages_gone_from_the_old_certificate_still_mark_a_switch():
    assert step({SUCCESSOR: "new", PUBLISHED: ago(3)}, on_old=0).name == plan.SWITCH


@pytest.mark.parametrize("switched,expected", [(6.99, plan.WAIT), (7, plan.RETIRE)])
def test_retire_waits_for_delete_after_days_both_sides(switched, expected):
    tags = {SUCCESSOR: "new", PUBLISHED: ago(10), SWITCHED: ago(switched)}
    assert step(tags, on_old=0).name == expected


def test_without_delete_after_days_nothing_is_retired():
    tags = {SUCCESSOR: "new", PUBLISHED: ago(10), SWITCHED: ago(100)}
    assert step(tags, on_old=0, options=Options(3, None, False)).name == plan.DONE


def test_an_undeployed_stage_blocks_retirement_until_deployed():
    redeploy = Options(0, 0, True)
    tags = {SUCCESSOR: "new", PUBLISHED: ago(10), SWITCHED: ago(9), UNDEPLOYED: "abc/prod"}
    assert step(tags, on_old=0, options=redeploy).name == plan.DEPLOY
    deployed = dict(tags, **{UNDEPLOYED: ""})
    assert step(deployed, on_old=0, options=redeploy).name == plan.RETIRE


def test_pending_deployments_do_not_wait_for_late_stages():
    redeploy = Options(3, 0, True)
    tags = {SUCCESSOR: "new", PUBLISHED: ago(10), LATE: ago(0), SWITCHED: ago(5),
            UNDEPLOYED: "abc/prod"}
    assert step(tags, on_old=1, options=redeploy).name == plan.DEPLOY
    assert step(dict(tags, **{UNDEPLOYED: ""}), on_old=1, options=redeploy).name == plan.WAIT


def test_stage_lists_in_a_tag_value():
    tags = {}
    value = plan.with_label(tags, UNDEPLOYED, "abc/prod")
    assert value == "abc/prod"
    tags[UNDEPLOYED] = plan.with_label({UNDEPLOYED: value}, UNDEPLOYED, "def/dev")
    assert plan.undeployed(tags) == ["abc/prod", "def/dev"]
    assert plan.with_label(tags, UNDEPLOYED, "abc/prod", add=False) == "def/dev"
    long = {UNDEPLOYED: " ".join("a%08d/stage" % i for i in range(16))}
    assert plan.with_label(long, UNDEPLOYED, "zzz/prod") == plan.ALL  # past 256 characters
    assert plan.with_label({UNDEPLOYED: plan.ALL}, UNDEPLOYED, "x/y", add=False) == plan.ALL


def test_a_successor_waits_for_its_predecessors_rotation():
    result = step({PREDECESSOR: "old"}, successor=None, rotating_predecessor="old")
    assert result.name == plan.SKIP and "old" in result.reason


def test_a_state_tag_that_is_not_a_time_stops_the_certificate():
    with pytest.raises(plan.StateError, match="not a time"):
        step({SUCCESSOR: "new", PUBLISHED: "soon"})


# -- what the delete action must leave alone -----------------------------------------------
def test_delete_spares_a_successor_of_an_unfinished_rotation():
    tags = {PREDECESSOR: "old"}
    assert "unfinished" in delete_blocker(tags, ({SUCCESSOR: "new"}, False), NOW)
    assert "unfinished" in delete_blocker(tags, ({SWITCHED: ago(1)}, True), NOW)
    assert delete_blocker(tags, ({SWITCHED: ago(1)}, False), NOW) is None
    assert delete_blocker(tags, None, NOW) is None  # its predecessor is gone


def test_delete_spares_an_old_certificate_inside_its_window():
    tags = {SUCCESSOR: "new", SWITCHED: ago(1), RETIRE_AFTER: stamp(NOW + datetime.timedelta(
        days=6))}
    assert "window" in delete_blocker(tags, None, NOW)
    assert delete_blocker(dict(tags, **{RETIRE_AFTER: ago(0)}), None, NOW) is None
    assert "not switched" in delete_blocker({SUCCESSOR: "new"}, None, NOW)
    assert "not deployed" in delete_blocker(
        {SUCCESSOR: "new", SWITCHED: ago(9), UNDEPLOYED: "a/b"}, None, NOW)


# -- stages left to their owner (a template) ------------------------------------------------
def test_owned_stages_are_handed_over_once_the_switch_is_due():
    tags = {SUCCESSOR: "new", PUBLISHED: ago(1)}
    assert step(tags, on_old=0, handed=1).name == plan.WAIT  # not before the gate
    tags[PUBLISHED] = ago(3)
    assert step(tags, on_old=1, handed=1).name == plan.SWITCH  # ours first
    result = step(dict(tags, **{SWITCHED: ago(0)}), on_old=0, handed=1)
    assert result.name == plan.HANDOVER and result.reason == "1 stage(s) left to their owner"
    assert step(tags, on_old=0, handed=2).name == plan.HANDOVER  # none of ours: no switch mark


def test_a_handed_over_stage_moved_by_its_owner_restarts_the_delete_window():
    tags = {SUCCESSOR: "new", PUBLISHED: ago(20), SWITCHED: ago(17), plan.HANDED: "1"}
    assert step(tags, on_old=0, handed=0).name == plan.SWITCH  # marks the owner's switch
    done = dict(tags, **{plan.HANDED: "0", SWITCHED: ago(0)})
    assert step(done, on_old=0, handed=0).reason.startswith("delete at ")


def test_a_handed_over_count_that_is_not_a_number_stops_the_certificate():
    with pytest.raises(plan.StateError, match="not a count"):
        step({SUCCESSOR: "new", PUBLISHED: ago(5), plan.HANDED: "x"}, on_old=0, handed=1)


def test_a_certificate_only_owned_stages_use_still_gets_a_successor():
    assert step({}, successor=None, on_old=0, handed=1).name == plan.GENERATE

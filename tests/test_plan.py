"""The rotation's state machine, as a pure function of tags, listings and time."""
import datetime
import re

import pytest

from c7n_apigw_certs.rotation import plan
from c7n_apigw_certs.rotation.plan import (
    LATE, PREDECESSOR, PUBLISHED, RETIRE_AFTER, SUCCESSOR, SWITCHED, SWITCHED_STAGES,
    UNDEPLOYED,
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
    assert plan.with_label({UNDEPLOYED: plan.ALL}, UNDEPLOYED, "x/y", add=False) == plan.ALL
    assert plan.with_label({UNDEPLOYED: plan.ALL}, UNDEPLOYED, plan.ALL, add=False) == ""


def test_a_long_stage_list_is_kept_as_digests_that_still_answer():
    """Past 256 characters the labels become 6-hex digests: the list still tells a stage it
    holds from one it does not (the revert guard needs that); past about 30 stages, ``*``."""
    names = ["a%08d/stage" % i for i in range(20)]
    tags = {}
    for name in names:
        tags[SWITCHED_STAGES] = plan.with_label(tags, SWITCHED_STAGES, name)
    value = tags[SWITCHED_STAGES]
    assert len(value) <= 256 and plan.ALL not in value and value.startswith("#")
    assert all(plan.has_label(tags, SWITCHED_STAGES, name) for name in names)
    assert not plan.has_label(tags, SWITCHED_STAGES, "a00000020/stage")  # negative control
    # an edit applied twice (a run re-applies its journal) changes nothing
    assert plan.with_label(tags, SWITCHED_STAGES, names[0]) == value
    assert plan.with_label(tags, SWITCHED_STAGES, "zz/absent", add=False) == value
    tags[SWITCHED_STAGES] = plan.with_label(tags, SWITCHED_STAGES, names[3], add=False)
    assert not plan.has_label(tags, SWITCHED_STAGES, names[3])
    assert plan.has_label(tags, SWITCHED_STAGES, names[4])
    many = {SWITCHED_STAGES: ""}
    for i in range(40):
        many[SWITCHED_STAGES] = plan.with_label(many, SWITCHED_STAGES, "b%08d/x" % i)
    assert many[SWITCHED_STAGES] == plan.ALL


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


# -- records every policy honours (issue 15) -------------------------------------------------
def test_an_undeployed_stage_blocks_retirement_without_redeploy_too():
    """A policy without ``redeploy`` reads the record another one wrote: no retirement, and a
    step that says why (the executor fails the certificate with a message)."""
    tags = {SUCCESSOR: "new", PUBLISHED: ago(10), SWITCHED: ago(9), UNDEPLOYED: "abc/prod"}
    result = step(tags, on_old=0)  # STAGED has redeploy off
    assert result.name == plan.UNCONFIRMED and result.reason == "abc/prod"
    assert step(dict(tags, **{UNDEPLOYED: ""}), on_old=0).name == plan.RETIRE  # control
    inside = dict(tags, **{SWITCHED: ago(1)})
    assert step(inside, on_old=0).reason.startswith("delete at ")  # the window still counts


SSM = {"type": "ssm", "name": "/a/{api_id}/{stage_name}"}
S3 = {"type": "s3", "bucket": "b", "key": "k/{api_id}.pem"}


def test_a_destination_record_round_trips_in_tag_characters():
    value = plan.trust_value(NOW, SSM)
    assert len(value) <= 256 and set(value) <= set(  # no space either (fact 121)
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:/=+-@")
    key = plan.dest_digest(SSM)
    assert key.startswith(plan.TRUST) and key != plan.dest_digest(S3)
    assert key == plan.dest_digest(dict(SSM, tier="Advanced"))  # the same place
    assert plan.trust_records({key: value}) == {key: (NOW, SSM)}
    huge = {"type": "s3", "bucket": "b", "key": "k" * 300}
    assert plan.trust_records({"x": "y", key: plan.trust_value(NOW, huge)}) == {key: (NOW, None)}
    with pytest.raises(plan.StateError):
        plan.trust_records({key: stamp(NOW) + "_!!notbase64"})


def test_a_destination_no_run_published_is_published_before_anything_else():
    own = [plan.dest_digest(SSM), plan.dest_digest(S3)]
    tags = {SUCCESSOR: "new", PUBLISHED: ago(5), own[0]: plan.trust_value(
        NOW - datetime.timedelta(days=2), SSM)}
    assert step(tags, destinations=own).name == plan.PUBLISH  # S3 is new to this rotation
    tags[own[1]] = plan.trust_value(NOW - datetime.timedelta(days=1), S3)
    assert step(tags, destinations=own).name == plan.SWITCH


def test_another_policys_destination_gate_holds_every_policy():
    """Policy B (5 days) recorded its destination's gate; policy A (3 days) has passed its
    own, yet waits for B's, whichever ran first."""
    b_gate = NOW + datetime.timedelta(hours=30)
    tags = {SUCCESSOR: "new", PUBLISHED: ago(3), plan.dest_digest(S3): plan.trust_value(
        b_gate, S3)}
    result = step(tags)
    assert result.name == plan.WAIT and result.at == b_gate
    passed = dict(tags, **{plan.dest_digest(S3): plan.trust_value(ago_time(0), S3)})
    assert step(passed).name == plan.SWITCH


def ago_time(days):
    return NOW - datetime.timedelta(days=days)


@pytest.mark.parametrize("expires_in,expected", [(3.99, plan.EXPIRING), (4.01, plan.WAIT)])
def test_a_gate_too_close_to_expiry_is_not_waited_for(expires_in, expected):
    """A late stage's gate 3 days away, and a margin of 1 day: with 3.99 days of validity left
    the step is EXPIRING; with 4.01 days it waits (both sides)."""
    tags = {SUCCESSOR: "new", PUBLISHED: ago(10), LATE: ago(0), SWITCHED: ago(7)}
    expires = NOW + datetime.timedelta(days=expires_in)
    result = step(tags, expires=expires)
    assert result.name == expected
    if expected == plan.EXPIRING:
        assert stamp(expires) in result.reason and result.at == NOW + datetime.timedelta(days=3)
    assert step(tags, on_old=0, expires=expires).name != plan.EXPIRING  # no stage left on it


def test_tags_are_merged_into_what_the_certificate_has_now():
    """Two runs: ours adds a/prod to ``switched``; another already added b/prod and a later
    gate. The write keeps theirs, adds ours, and never moves a gate earlier."""
    current = {SWITCHED_STAGES: "b/prod", LATE: ago(0), UNDEPLOYED: "b/prod"}
    out = plan.merged(current, {LATE: ago(1), SWITCHED: ago(0)},
                      [(SWITCHED_STAGES, "a/prod", True), (UNDEPLOYED, "c/dev", False)])
    assert out == {SWITCHED_STAGES: "a/prod b/prod", SWITCHED: ago(0)}
    assert plan.merged(dict(current, **out), {LATE: ago(1), SWITCHED: ago(0)},
                       [(SWITCHED_STAGES, "a/prod", True)]) == {}  # nothing more to write
    assert plan.merged({}, {LATE: ago(1)}, []) == {LATE: ago(1)}


def test_a_rival_publication_after_a_switch_keeps_the_first_published_at():
    """Two runs race: the rival published and switched; ours listed before and publishes
    after. ``published-at`` keeps the first publication (a later one would date it after the
    switch, a state every later run refuses), while a gate keeps the later time."""
    current = {SUCCESSOR: "new", PUBLISHED: ago(2), SWITCHED: ago(1)}
    assert plan.merged(current, {PUBLISHED: ago(0)}, []) == {}
    assert plan.merged(current, {PUBLISHED: ago(3)}, []) == {PUBLISHED: ago(3)}
    assert plan.merged(current, {SWITCHED: ago(0)}, []) == {SWITCHED: ago(0)}
    assert plan.merged(current, {SWITCHED: ago(3)}, []) == {}


# -- what a forged tag cannot steer -------------------------------------------------------
CREATED = NOW - datetime.timedelta(days=355)


def cert(cert_id, created, **tags):
    return {"clientCertificateId": cert_id, "createdDate": created, "tags": tags}


def successor(made=NOW, **tags):
    base = {PREDECESSOR: "old", plan.ORIGIN: plan.origin("old", CREATED, made)}
    return cert("new", made, **dict(base, **tags))


def doubt(old, candidate, stages=(), owned=lambda stage: False):
    return plan.successor_doubt(old, candidate, list(stages), owned)


def stage(api="a1", name="prod"):
    return {"apiId": api, "stageName": name}


def test_a_successor_this_rotation_made_is_adopted():
    old = cert("old", CREATED)
    assert doubt(old, successor()) is None
    switched = cert("old", CREATED, **{SWITCHED: ago(1), PUBLISHED: ago(1),
                                      plan.SWITCHED_STAGES: "a1/prod"})
    assert doubt(switched, successor(NOW - datetime.timedelta(days=1)), [stage()]) is None


@pytest.mark.parametrize("case,tag,text", [
    ("no origin", plan.ORIGIN, "no c7n:rotation:origin"),
    ("older", PREDECESSOR, "before client-certificate:old"),
    ("origin of another", plan.ORIGIN, "not client-certificate:old"),
    ("origin not at creation", plan.ORIGIN, "but it was created at"),
    ("created after publication", PUBLISHED, "after client-certificate:old's trust"),
    ("another stage presents it", PREDECESSOR, "stage:b1/prod presents it"),
    ("named by successor only", SUCCESSOR, "its c7n:rotation:predecessor is None"),
])
def test_a_candidate_that_disagrees_is_not_adopted(case, tag, text):
    old, candidate, stages = cert("old", CREATED), successor(), []
    if case == "no origin":
        del candidate["tags"][plan.ORIGIN]
    elif case == "older":
        candidate["createdDate"] = CREATED - datetime.timedelta(seconds=1)
    elif case == "origin of another":
        candidate["tags"][plan.ORIGIN] = plan.origin("other", CREATED, NOW)
    elif case == "origin not at creation":
        candidate["tags"][plan.ORIGIN] = plan.origin("old", CREATED, NOW - datetime.timedelta(
            days=30))
    elif case == "created after publication":
        old["tags"][PUBLISHED] = ago(2)
    elif case == "another stage presents it":
        old["tags"].update({SWITCHED: ago(0), PUBLISHED: ago(0),
                            plan.SWITCHED_STAGES: "a1/prod"})
        stages = [stage(), stage("b1")]
    else:
        candidate["tags"].pop(PREDECESSOR)
    found = doubt(old, candidate, stages)
    assert found is not None and found[0] == tag and text in found[1], found


def test_a_template_owned_stage_may_present_the_successor_after_a_hand_over():
    old = cert("old", CREATED, **{PUBLISHED: ago(1), plan.HANDED: "0"})
    assert doubt(old, successor(NOW - datetime.timedelta(days=1)), [stage("t1")],
                 owned=lambda s: True) is None
    assert doubt(old, successor(NOW - datetime.timedelta(days=1)), [stage("t1")]) is not None


def check(tags, successor="new", stage_certs=None):
    plan.check_state(tags, "old", CREATED, NOW, successor, stage_certs or {})


@pytest.mark.parametrize("tags,text", [
    ({PUBLISHED: "2026-11-27 12:00"}, "not a time as this action writes it"),
    ({PUBLISHED: stamp(NOW + datetime.timedelta(days=1))}, "in the future"),
    ({PUBLISHED: stamp(CREATED - datetime.timedelta(days=1))}, "before the certificate"),
    ({PUBLISHED: ago(1), SWITCHED: ago(2)}, "trust is published before anything else"),
    ({SWITCHED: ago(2)}, "but c7n:rotation:published-at is not set"),
    ({PUBLISHED: ago(1), plan.SWITCHED_STAGES: "a1/prod; rm"}, "which is no stage"),
    ({PUBLISHED: ago(1), plan.SWITCHED_STAGES: "b1/prod"}, "presents client-certificate:third"),
    ({PUBLISHED: ago(1), plan.HANDED: "-1"}, "not a count"),
])
def test_a_state_tag_this_action_could_not_have_written_stops_it(tags, text):
    with pytest.raises(plan.StateError, match=re.escape(text)):
        check(tags, stage_certs={"a1/prod": "old", "b1/prod": "third"})


def test_state_without_a_successor_of_its_own_stops_it():
    with pytest.raises(plan.StateError, match="no successor that this rotation made exists"):
        check({SUCCESSOR: "forged", PUBLISHED: ago(1)}, successor=None)
    check({SUCCESSOR: "forged"}, successor=None)  # alone: a new successor replaces it
    check({PUBLISHED: ago(1), RETIRE_AFTER: stamp(NOW + datetime.timedelta(days=6)),
           SWITCHED: ago(1), plan.SWITCHED_STAGES: "a1/prod " + plan.digest("x/y")},
          stage_certs={"a1/prod": "new"})  # what the action writes passes


def test_preview_is_the_run_of_next_step():
    steps, after = plan.preview({}, None, 1, NOW, Options(0, 0, False))
    assert [s.name for s in steps] == ["generate", "publish", "switch", "retire"]
    steps, after = plan.preview({}, None, 1, NOW, STAGED)
    assert [s.name for s in steps] == ["generate", "publish", "wait"]
    assert plan.gates(after, NOW, STAGED) == {"switch": NOW + datetime.timedelta(days=3),
                                              "delete": NOW + datetime.timedelta(days=10)}
    steps, _ = plan.preview({}, None, 1, NOW, Options(0, 0, False), owned_certificate=True)
    assert [s.name for s in steps][-1] == "done"  # a template's certificate is never retired


@pytest.mark.parametrize("dest", [
    {"type": "ssm", "name": "/trust/{api_id}"},
    {"type": "elb-trust-store", "trust_store": "arn:aws:elasticloadbalancing:us-east-1:"
     "123456789012:truststore/ts/1", "bucket": "b", "key": "ca.pem"}])
def test_a_trust_record_of_each_destination_kind_is_read_back(dest):
    key = plan.dest_digest(dest)
    assert plan.trust_records({key: plan.trust_value(NOW, dest)}) == {key: (NOW, dest)}

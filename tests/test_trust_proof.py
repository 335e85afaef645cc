"""The proof: requests through every stage of the demo estate, the whole staged rotation long
(days 0, 3 and 10 of policies/rotate.yml), to nginx backends that ``trust-sync`` feeds after
each run; not one refused. And its negative control: switched in the run that publishes, before
the backends synced, the stages are refused, and counted."""
import os

import boto3
import pytest
from conftest import make_cert
from test_probe import needs_nginx

from c7n_apigw_certs.sandbox import probe, trust_proof
from c7n_apigw_certs.sandbox.seed import seed_demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLICY = os.path.join(ROOT, "policies", "rotate.yml")
# The demo's stages with an HTTP integration, and those whose certificate expires within the
# policy's 30 days (seed.py).
STAGES = 8
ROTATED = {"orders-prod", "shared-backend", "live-updates", "eu-orders"}


@pytest.fixture
def estate(sandbox):
    ids = seed_demo(lambda region, desc, days: make_cert(sandbox, days, region, desc),
                    boto3.Session())
    sandbox.reset_counters()
    return ids


def presented_by_phase(run, phase):
    return {r.stage: r.certificate for r in run.of_phase(phase)}


def test_a_staged_rotation_refuses_no_request(sandbox, estate, tmp_path):
    needs_nginx()
    run, backends = trust_proof.prove(sandbox, sandbox.env, POLICY, str(tmp_path))
    figures = run.figures()
    assert list(figures) == ["before the rotation", "day 0", "day 3", "day 10"]
    for phase, row in figures.items():
        assert (phase, row["refused"], row["errors"]) == (phase, 0, 0), run.of_phase(phase)
        assert row["requests"] >= STAGES
    # orders-prod expired 3 days ago: its stage is refused until it is switched on day 3
    # (expired, not a trust gap), and never after.
    expired = run.of_phase("before the rotation", probe.EXPIRED) + run.of_phase(
        "day 0", probe.EXPIRED)
    assert expired and {r.certificate for r in expired} == {estate["orders-prod"]}
    assert not run.of_phase("day 10", probe.EXPIRED)
    assert not [r for r in run.of_phase("day 3", probe.EXPIRED)
                if r.certificate != estate["orders-prod"]]
    assert len(run.stages) == STAGES
    assert {s.protocol for s in run.stages} == {"REST", "WEBSOCKET"}
    # The rotation happened under the probe: the stages of the rotated certificates present
    # their successors from day 3 on, accepted; the others never changed.
    old = {v: k for k, v in estate.items()}
    before, after = presented_by_phase(run, "day 0"), presented_by_phase(run, "day 10")
    moved = {label for label in before if before[label] != after[label]}
    assert {old[before[label]] for label in moved} == ROTATED
    assert all(after[label] not in old for label in moved)
    day3 = [r for r in run.of_phase("day 3") if r.stage in moved and r.certificate not in old]
    assert day3 and all(r.outcome == probe.ACCEPTED for r in day3)
    # Every backend synced after each run, and its last sync left the successor alone in
    # trust: the old certificate is gone from every bundle on day 10.
    assert len(backends.syncs) == STAGES * 4 and not [s for s in backends.syncs if s[1]]
    for label in moved:
        with open(backends.files[label]) as fh:
            assert len([line for line in fh if line.endswith(" 1;\n")]) == 1


def test_switching_before_the_backends_synced_is_refused(sandbox, estate, tmp_path):
    """The negative control: switch-after-days 0 switches in the run that publishes; the
    backends sync only after it, so every switched stage is refused until then."""
    needs_nginx()
    policy = trust_proof.with_switch_after(POLICY, 0, str(tmp_path / "rotate-now.yml"))
    run, _ = trust_proof.prove(sandbox, sandbox.env, policy, str(tmp_path / "proof"),
                               schedule=trust_proof.LATE)
    figures = run.figures()
    assert figures["before the rotation"]["refused"] == 0
    refused = run.of_phase("day 0", probe.REFUSED)
    old = set(estate.values())
    # At least the round right after the run, before the sync: each switched stage once.
    switched_stages = {r.stage for r in refused}
    assert len(switched_stages) == 6 and figures["day 0"]["refused"] >= 6
    assert all(r.certificate not in old for r in refused)  # only successors are refused
    assert all(r.detail == "nginx: 400 The SSL certificate error" for r in refused)
    # After the late sync, the last round is accepted everywhere.
    last = run.results[-STAGES:]
    assert [r.outcome for r in last] == [probe.ACCEPTED] * STAGES

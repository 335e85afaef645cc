"""The warm interpreter (tests/warm.py) runs ``custodian`` as a new interpreter would: the same
resources, files, exit status and messages, for a good policy and a bad one. Most tests run
through it; this file holds it to the console script started cold."""
import json

import pytest

from conftest import make_cert, make_rest_stage, read_output, run_at, run_cli, write_policy


def policy(days):
    return {"name": "expiring", "resource": "aws.apigw-client-certificate",
            "filters": [{"type": "expiring", "days": days}]}


def run(control, tmp_path, name, days, cold, at=None):
    out = tmp_path / name
    args = ["run", "--cache-period", "0", "-s", str(out), "--region", "us-east-1",
            write_policy(tmp_path, policy(days), name + ".yml")]
    if at:
        proc = run_at(at, "custodian", args, control.env, cold=cold)
    else:
        proc = run_cli("custodian", args, control.env, cold=cold)
    files = sorted(p.name for p in (out / "expiring").iterdir())
    return read_output(out, ("us-east-1",)), files, proc


@pytest.fixture
def estate(sandbox):
    for days in (3, 20, 200):
        make_rest_stage(make_cert(sandbox, days, description="d%d" % days), "api-%d" % days)
    return sandbox


@pytest.mark.parametrize("at", [None, "@2026-12-20T00:00:00+00:00"], ids=["now", "frozen"])
def test_a_warm_run_is_a_cold_run(estate, tmp_path, at):
    warm, warm_files, warm_proc = run(estate, tmp_path, "warm", 30, cold=False, at=at)
    cold, cold_files, cold_proc = run(estate, tmp_path, "cold", 30, cold=True, at=at)
    assert warm == cold and warm["us-east-1"], (warm, cold)
    assert warm_files == cold_files and "resources.json" in warm_files
    assert warm_proc.returncode == cold_proc.returncode == 0
    counts = [[line.split("count:")[1].split()[0] for line in p.stderr.splitlines()
               if "count:" in line] for p in (warm_proc, cold_proc)]
    assert counts[0] == counts[1] == [str(len(warm["us-east-1"]))]


def test_the_comparison_can_fail(estate, tmp_path):
    """Negative control: a different window gives a different answer, warm or cold."""
    warm, _, _ = run(estate, tmp_path, "warm", 5, cold=False)
    cold, _, _ = run(estate, tmp_path, "cold", 30, cold=True)
    assert warm != cold


def test_a_bad_policy_fails_the_same_way(sandbox, tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text(json.dumps({"policies": [{
        "name": "bad", "resource": "aws.apigw-client-certificate",
        "filters": [{"type": "expiring", "dayz": 3}]}]}))
    args = ["run", "-s", str(tmp_path / "out"), str(path)]
    warm = run_cli("custodian", args, sandbox.env, check=False)
    cold = run_cli("custodian", args, sandbox.env, check=False, cold=True)
    assert warm.returncode == cold.returncode != 0
    assert "dayz" in warm.stderr and "dayz" in cold.stderr
    last = [p.stderr.strip().splitlines()[-1].split(": ", 1)[-1] for p in (warm, cold)]
    assert last[0] == last[1]

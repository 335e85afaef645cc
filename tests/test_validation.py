"""Bad policies fail ``custodian validate`` with a message that names the key."""
import pytest

from conftest import run_cli, write_policy


def policy(filters, resource="aws.apigw-client-certificate"):
    return {"name": "p", "resource": resource, "filters": filters}


@pytest.mark.parametrize("filters,words", [
    ([{"type": "expiring", "days": -1}], ["days", "-1"]),
    ([{"type": "expiring", "days": "thirty"}], ["days", "thirty"]),
    ([{"type": "expiring", "dayz": 3}], ["dayz"]),
    ([{"type": "in-use", "state": "no"}], ["state"]),
    ([{"type": "in-use", "stat": False}], ["stat"]),
])
def test_validate_rejects(tmp_path, filters, words):
    path = write_policy(tmp_path, policy(filters))
    proc = run_cli("custodian", ["validate", path], {"PATH": "/usr/bin:/bin"}, check=False)
    assert proc.returncode != 0
    for word in words:
        assert word in proc.stderr + proc.stdout


def test_validate_accepts_the_defaults_and_stage_filter(tmp_path):
    path = write_policy(tmp_path, [
        policy([{"type": "expiring"}, {"type": "in-use"}]),
        dict(policy([{"type": "expiring", "days": 0}], "aws.rest-stage"), name="q"),
    ])
    proc = run_cli("custodian", ["validate", path], {"PATH": "/usr/bin:/bin"})
    assert "valid" in (proc.stderr + proc.stdout).lower()
    assert proc.returncode == 0

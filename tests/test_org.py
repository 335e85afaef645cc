"""``c7n-org run`` across two accounts of the sandbox, as stock c7n-org runs it."""
import json
import os
import sys

import pytest
import yaml

from conftest import make_cert, run_cli, write_policy

ACCOUNTS = {"alpha": "111111111111", "beta": "222222222222"}
SPAWN = ("import multiprocessing, sys; multiprocessing.set_start_method(sys.argv.pop(1)); "
         "from c7n_org.cli import cli; sys.argv[0] = 'c7n-org'; cli()")


@pytest.mark.parametrize("start_method", ["default", "spawn"])
def test_org_run_two_accounts(sandbox, tmp_path, start_method):
    for name, account in ACCOUNTS.items():
        make_cert(sandbox, 3, account=account, description="%s-soon" % name)
        make_cert(sandbox, 300, account=account, description="%s-later" % name)
    config = tmp_path / "accounts.yml"
    config.write_text(yaml.safe_dump({"accounts": [
        {"name": name, "account_id": account, "regions": ["us-east-1"],
         "role": "arn:aws:iam::%s:role/custodian" % account}
        for name, account in ACCOUNTS.items()]}))
    policy = write_policy(tmp_path, {"name": "expiring", "resource": "aws.apigw-client-certificate",
                                     "filters": [{"type": "expiring", "days": 30}]})
    out = tmp_path / "org-out"
    args = ["run", "-c", str(config), "-s", str(out), "-u", policy, "--cache-period", "0"]
    env = dict(sandbox.env, C7N_ORG_PARALLEL="2")
    if start_method == "default":
        run_cli("c7n-org", args, env)
    else:  # the same c7n-org, its workers started by spawn: each one a fresh interpreter
        import subprocess
        proc = subprocess.run([sys.executable, "-c", SPAWN, start_method] + args, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-4000:]
    for name in ACCOUNTS:
        path = out / name / "us-east-1" / "expiring" / "resources.json"
        assert path.exists(), os.listdir(out)
        found = json.loads(path.read_text())
        assert [c["description"] for c in found] == ["%s-soon" % name]

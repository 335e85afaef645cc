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


def accounts_with_a_stage(sandbox, tmp_path):
    """In each account an expiring certificate on one REST stage; the c7n-org accounts file.
    Returns ({name: old certificate}, {name: boto3 session in that account}, config path)."""
    import boto3

    from c7n_apigw_certs.sandbox.seed import create_rest_stage
    old, sessions = {}, {}
    for name, account in ACCOUNTS.items():
        creds = boto3.client("sts").assume_role(
            RoleArn="arn:aws:iam::%s:role/custodian" % account,
            RoleSessionName="seed")["Credentials"]
        sessions[name] = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"], region_name="us-east-1")
        # 10 days: a switch gate of 3 days passes well before expiry (nearer, the rotation
        # fails the run and switches at once: docs/rotation.md)
        old[name] = make_cert(sandbox, 10, account=account)
        apigw = sessions[name].client("apigateway")
        create_rest_stage(apigw, apigw.create_rest_api(name=name)["id"], "prod", old[name])
    config = tmp_path / "accounts.yml"
    config.write_text(yaml.safe_dump({"accounts": [
        {"name": name, "account_id": account, "regions": ["us-east-1"],
         "role": "arn:aws:iam::%s:role/custodian" % account}
        for name, account in ACCOUNTS.items()]}))
    return old, sessions, config


def test_org_rotate_two_accounts(sandbox, tmp_path):
    """The rotate policy, unchanged, through c7n-org: each account rotates its own."""
    old, sessions, config = accounts_with_a_stage(sandbox, tmp_path)
    policy = write_policy(tmp_path, {
        "name": "rotate", "resource": "aws.apigw-client-certificate",
        "filters": [{"type": "expiring", "days": 30}],
        "actions": [{"type": "rotate", "switch-after-days": 0, "delete-after-days": 0,
                     "publish": [{"type": "ssm",
                                  "name": "/trust/{account_id}/{api_id}/{stage_name}"}]}]})
    run_cli("c7n-org", ["run", "-c", str(config), "-s", str(tmp_path / "org-out"), "-u", policy,
                        "--cache-period", "0"], dict(sandbox.env, C7N_ORG_PARALLEL="2"))
    for name, session in sessions.items():
        certs = session.client("apigateway").get_client_certificates()["items"]
        assert [c["tags"]["c7n:rotation:predecessor"] for c in certs] == [old[name]]
        (api,) = session.client("apigateway").get_rest_apis()["items"]
        stage = session.client("apigateway").get_stage(restApiId=api["id"], stageName="prod")
        assert stage["clientCertificateId"] == certs[0]["clientCertificateId"]
        param = session.client("ssm").get_parameter(
            Name="/trust/%s/%s/prod" % (ACCOUNTS[name], api["id"]))["Parameter"]["Value"]
        assert param.strip() == certs[0]["pemEncodedCertificate"].strip()


def test_org_accounts_share_one_trust_object(sandbox, tmp_path):
    """Two accounts under c7n-org write one central S3 object (no {account_id} or {region} in
    the key): each merges its certificates into it, neither drops the other's."""
    from conftest import client
    client("s3").create_bucket(Bucket="central-trust")
    _, sessions, config = accounts_with_a_stage(sandbox, tmp_path)
    policy = write_policy(tmp_path, {
        "name": "rotate", "resource": "aws.apigw-client-certificate",
        "filters": [{"type": "expiring", "days": 30}],
        "actions": [{"type": "rotate", "switch-after-days": 3, "publish": [
            {"type": "s3", "bucket": "central-trust", "key": "apigw/trust.pem"}]}]})
    run_cli("c7n-org", ["run", "-c", str(config), "-s", str(tmp_path / "org-out"), "-u", policy,
                        "--cache-period", "0"], dict(sandbox.env, C7N_ORG_PARALLEL="2"))
    text = client("s3").get_object(Bucket="central-trust", Key="apigw/trust.pem")[
        "Body"].read().decode()
    for name, session in sessions.items():
        certs = session.client("apigateway").get_client_certificates()["items"]
        assert len(certs) == 2  # the old one and its successor
        for cert in certs:
            assert cert["pemEncodedCertificate"].strip() in text, (name, cert)
    assert text.count("BEGIN CERTIFICATE") == 4

"""Rotation benchmark: 50 certificates, each used by 3 REST stages, fully rotated in one
``custodian run`` (switch-after-days 0, delete-after-days 0) under the sandbox's throttle of
10 requests per second with a burst of 40, API Gateway's own limits (docs/aws-behaviour.md,
fact 13), and its CreateDeployment limit of 1 every 5 seconds (fact 24).

    python benchmarks/rotate.py              quota 60 and 120, without redeploy
    python benchmarks/rotate.py --redeploy   quota 120, redeploy: true (about 13 minutes)

Reports the wall time of the run against the lower bound the limits set (API Gateway calls
made / 10 per second; with redeploy, deployments x 5 seconds), the calls made against the
minimum the job needs, and failures.
"""
import argparse
import json
import math
import os
import subprocess
import tempfile
import time

import boto3

from c7n_apigw_certs.sandbox.demo import RunningSandbox, find_command
from c7n_apigw_certs.sandbox.remote import SandboxClient
from c7n_apigw_certs.sandbox.seed import create_rest_stage
from c7n_apigw_certs.rotation.stages import DEPLOY_INTERVAL

CERTS, STAGES_EACH = 50, 3
RATE, BURST = 10, 40


def minimum_calls(certs=CERTS, stages=STAGES_EACH, quota=None, redeploy=False):
    """API Gateway calls the job cannot do without, with the re-checks the safety rules ask:
    the audit (certificates, REST APIs, GetStages per API, v2 APIs); a fresh certificate
    listing; per certificate one Generate, per stage a fresh GetStage and the UpdateStage (and
    with redeploy a TagResource that records the stage as undeployed before it is switched, and
    its CreateDeployment), one TagResource; after each wave of creations one
    certificate listing that shows a concurrent run's successor; fresh stage listings (one per
    REST API, plus the two API listings) before each wave of deletions, and one Delete per
    certificate. Under a quota, successors fit only ``quota - certs`` at a time, so the old
    ones are deleted in that many waves, each early wave found by one refused Generate."""
    audit = 1 + 1 + certs + 1
    waves = 1 if not quota or quota >= 2 * certs else math.ceil(certs / (quota - certs))
    per_cert = 1 + stages * (4 if redeploy else 2) + 1
    rotate = 1 + certs * per_cert + waves + (waves - 1)
    retire = waves * (1 + certs + 1) + certs
    return audit + rotate + retire


def seed(endpoint, control):
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    apigw = session.client("apigateway", region_name="us-east-1", endpoint_url=endpoint)
    session.client("s3", region_name="us-east-1", endpoint_url=endpoint).create_bucket(
        Bucket="trust")
    for i in range(CERTS):
        cert = control.create_certificate(expires_in_days=10, description="c%d" % i)
        api = apigw.create_rest_api(name="api-%d" % i)["id"]
        for stage in ("prod", "staging", "dev")[:STAGES_EACH]:
            create_rest_stage(apigw, api, stage, cert["clientCertificateId"])


def run(quota=60, redeploy=False):
    policy = {"policies": [{
        "name": "rotate", "resource": "aws.apigw-client-certificate",
        "filters": [{"type": "expiring", "days": 30}],
        "actions": [{"type": "rotate", "switch-after-days": 0, "delete-after-days": 0,
                     "redeploy": redeploy,
                     "publish": [{"type": "ssm", "name": "/trust/{api_id}/{stage_name}"}]}]}]}
    with RunningSandbox(seed=None) as sandbox, tempfile.TemporaryDirectory() as tmp:
        endpoint = sandbox.env["AWS_ENDPOINT_URL"]
        control = SandboxClient(endpoint)
        seed(endpoint, control)
        control.switches(quota=quota)
        control.reset_counters()
        control.throttle(rate=RATE, burst=BURST)
        path = os.path.join(tmp, "rotate.yml")
        with open(path, "w") as fh:
            json.dump(policy, fh)
        env = dict(os.environ, HOME=tmp, **sandbox.env)
        started = time.monotonic()
        proc = subprocess.run([find_command("custodian"), "run", "--cache-period", "0",
                               "-s", os.path.join(tmp, "out"), path],
                              env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
        control.throttle()
        rows = control.counters()
        records = json.load(open(os.path.join(tmp, "out", "rotate", "action-rotate")))
        left = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing").client(
            "apigateway", region_name="us-east-1", endpoint_url=endpoint
        ).get_client_certificates(limit=500)["items"]
    calls, deployments = {}, 0
    for row in rows:
        if row["service"].startswith("apigateway"):
            calls[row["outcome"]] = calls.get(row["outcome"], 0) + row["calls"]
            if row["operation"] == "CreateDeployment" and row["outcome"] == "ok":
                deployments += row["calls"]
    ok = calls.get("ok", 0)
    return {
        "certificates": CERTS, "stages": CERTS * STAGES_EACH, "quota": quota,
        "redeploy": redeploy, "exit_code": proc.returncode,
        "wall_s": round(wall, 1),
        "lower_bound_s": round(ok / RATE, 1),
        "lower_bound_with_burst_s": round(max(0, ok - BURST) / RATE, 1),
        "deployments": deployments,
        "deploy_bound_s": (deployments - 1) * DEPLOY_INTERVAL if deployments else 0,
        "api_gateway_calls_ok": ok, "api_gateway_calls_throttled": calls.get("throttled", 0),
        "api_gateway_calls_refused_other": sum(
            n for outcome, n in calls.items() if outcome not in ("ok", "throttled")),
        "minimum_calls": minimum_calls(quota=quota, redeploy=redeploy),
        "failures": sum(1 for r in records if r["c7n:rotation"].get("errors")),
        "deleted": sum(1 for r in records if r["c7n:rotation"].get("deleted")),
        "certificates_left": len(left),
        "stderr_tail": proc.stderr[-600:] if proc.returncode else "",
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redeploy", action="store_true",
                        help="the redeploy run only (quota 120: every successor fits)")
    args = parser.parse_args(argv)
    if args.redeploy:
        print(json.dumps([run(120, redeploy=True)], indent=2))
    else:
        # The default quota of 60 (fact 5), and one raised to 120 so that every successor fits.
        print(json.dumps([run(60), run(120)], indent=2))


if __name__ == "__main__":
    main()

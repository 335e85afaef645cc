"""Migration benchmark: 50 generated certificates, each used by 3 REST stages, migrated to ACM
private certificates in one ``custodian run`` (switch-after-days 0, delete-after-days 0) under
the sandbox's API Gateway throttle of 10 requests per second with a burst of 40 (docs/
aws-behaviour.md, fact 13). Modelled on benchmarks/rotate.py.

    python benchmarks/migrate.py

Reports the wall time against the lower bound API Gateway's rate sets (its calls made / 10 per
second, and less the burst), the API Gateway calls against the minimum derived below, the ACM
and Private CA calls against theirs (ACM has quotas of its own; the sandbox does not throttle
it), failures, and what is left: one private certificate per old one, no old one.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import boto3

from c7n_apigw_certs.sandbox.demo import RunningSandbox, find_command

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rotate import BURST, CERTS, RATE, STAGES_EACH, seed  # noqa: E402

from c7n_apigw_certs.sandbox.remote import SandboxClient  # noqa: E402


def minimum_calls(certs=CERTS, stages=STAGES_EACH):
    """API Gateway calls the migration cannot do without, with the re-checks the safety rules
    ask: the query (certificates, REST APIs, GetStages per API, v2 APIs); the run's fresh
    certificate listing; per certificate one TagResource recording the requested ARN (so that
    no later run searches), per stage a fresh GetStage and the UpdateStage, one TagResource for
    the rest of its state, and its DeleteClientCertificate; one fresh stage listing (the two
    API listings and a GetStages per REST API) before the deletions. No GenerateClientCertificate
    and no concurrent-run listing: ACM's idempotency token settles races (fact 146)."""
    query = 1 + 1 + certs + 1
    run = 1 + certs * (1 + stages * 2 + 1 + 1)
    retire = 1 + certs + 1
    return query + run + retire


def minimum_acm_calls(certs=CERTS):
    """ACM and Private CA: the CA described and its chain read once a run; one ListCertificates
    page (a search by tag, since no old certificate names a successor yet; up to 1000 a page),
    a ListTagsForCertificate per candidate (none: nothing is issued yet), per certificate one
    RequestCertificate, one DescribeCertificate (ISSUED at once) and one ListTagsForCertificate
    (the successor's link checked before it is used)."""
    return {"acm-pca": 2, "acm": 1 + certs * 3}


def run():
    ca_policy = {"type": "migrate", "switch-after-days": 0, "delete-after-days": 0,
                 "domain-name": "{old_cert_id}.bench.internal",
                 "publish": [{"type": "ssm", "name": "/trust/{api_id}/{stage_name}"}]}
    with RunningSandbox(seed=None) as sandbox, tempfile.TemporaryDirectory() as tmp:
        endpoint = sandbox.env["AWS_ENDPOINT_URL"]
        control = SandboxClient(endpoint)
        seed(endpoint, control)
        ca_policy["certificate-authority-arn"] = control.create_private_ca(
            "us-east-1", "Bench Root CA")["arn"]
        policy = {"policies": [{"name": "migrate", "resource": "aws.apigw-client-certificate",
                                "actions": [ca_policy]}]}
        control.reset_counters()
        control.throttle(rate=RATE, burst=BURST)
        path = os.path.join(tmp, "migrate.yml")
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
        records = json.load(open(os.path.join(tmp, "out", "migrate", "action-migrate")))
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
        left = session.client("apigateway", region_name="us-east-1", endpoint_url=endpoint
                              ).get_client_certificates(limit=500)["items"]
        private = session.client("acm", region_name="us-east-1", endpoint_url=endpoint
                                 ).list_certificates()["CertificateSummaryList"]
    calls, other, by_op = {}, {}, {}
    for row in rows:
        if row["service"].startswith("apigateway"):
            calls[row["outcome"]] = calls.get(row["outcome"], 0) + row["calls"]
            if row["outcome"] == "ok":
                by_op[row["operation"]] = by_op.get(row["operation"], 0) + row["calls"]
        elif row["service"] in ("acm", "acm-pca") and row["outcome"] == "ok":
            other[row["service"]] = other.get(row["service"], 0) + row["calls"]
    ok = calls.get("ok", 0)
    return {
        "certificates": CERTS, "stages": CERTS * STAGES_EACH, "exit_code": proc.returncode,
        "wall_s": round(wall, 1),
        "lower_bound_s": round(ok / RATE, 1),
        "lower_bound_with_burst_s": round(max(0, ok - BURST) / RATE, 1),
        "api_gateway_calls_ok": ok, "api_gateway_calls_throttled": calls.get("throttled", 0),
        "api_gateway_calls_by_operation": by_op,
        "minimum_api_gateway_calls": minimum_calls(),
        "acm_calls": other, "minimum_acm_calls": minimum_acm_calls(),
        "failures": sum(1 for r in records if r["c7n:rotation"].get("errors")),
        "deleted": sum(1 for r in records if r["c7n:rotation"].get("deleted")),
        "generated_left": len(left), "private_certificates": len(private),
        "stderr_tail": proc.stderr[-600:] if proc.returncode else "",
    }


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    print(json.dumps([run()], indent=2))


if __name__ == "__main__":
    main()

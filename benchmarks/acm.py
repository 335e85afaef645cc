"""The audit's calls on an estate of generated, imported and private certificates: what
``custodian run policies/expiring.yml`` costs once stages present ACM certificates, against the
minimum the job needs (docs/aws-behaviour.md, fact 105).

    python benchmarks/acm.py [--json FILE] [--rest-apis N] [--imported N] [--private N]
                             [--cas N] [--unrelated N]

The estate (one account and region): ``--rest-apis`` REST APIs of one stage each, on
``--generated`` generated certificates, ``--imported`` imported and ``--private`` private
ACM certificates (spread over ``--cas`` private CAs; a third of them expire in 20 days with
their renewal FAILED, and the last CA expires in 15 days), in turn; plus ``--unrelated`` ACM
certificates no stage presents (an account's load balancers'), which must cost nothing but
their share of ListCertificates pages, and every key type (a quarter of the ACM certificates
are EC_prime256v1).

The minimum, per region: API Gateway as for the generated-only audit (one page of certificates
per 500, of REST APIs per 500, one GetStages per REST API, one page of v2 APIs per 500, one
GetStages per WebSocket API); ACM: ceil(ACM certificates in the account / 1000)
ListCertificates pages (at least one when a stage presents an ACM ARN), one GetCertificate per
imported certificate a stage presents (its PEM and chain), one DescribeCertificate per private
one (renewal and CA are not in the summary), one DescribeCertificateAuthority per CA.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
POLICY = os.path.join(ROOT, "policies", "expiring.yml")
REGION = "us-east-1"
PAGE, ACM_PAGE = 500, 1000


def minimum(rest_apis, generated, imported, private, cas, unrelated, websockets=0):
    apigw = {"GetClientCertificates": max(1, math.ceil(generated / PAGE)),
             "GetRestApis": max(1, math.ceil(rest_apis / PAGE)), "GetStages": rest_apis,
             "GetApis": max(1, math.ceil(websockets / PAGE))}
    acm_total = imported + private + unrelated
    acm = {}
    if imported + private:
        acm["ListCertificates"] = max(1, math.ceil(acm_total / ACM_PAGE))
    if imported:
        acm["GetCertificate"] = imported
    if private:
        acm["DescribeCertificate"] = private
    pca = {"DescribeCertificateAuthority": cas} if private else {}
    return {"apigateway": apigw, "acm": acm, "acm-pca": pca}


def build(control, session, endpoint, args):
    """Certificates from the sandbox's controls (not API calls); stages by signed set-up
    calls. Returns the number of certificates that expire within 30 days, by kind."""
    from c7n_apigw_certs.sandbox.seed import setup_calls
    cas = [control.create_private_ca(REGION, "Bench CA %d" % i)["arn"]
           for i in range(args.cas)]
    presented = []
    for i in range(args.generated):
        presented.append(control.create_certificate(
            region=REGION, description="gen-%d" % i,
            expires_in_days=10 if i % 2 else 200)["clientCertificateId"])
    for i in range(args.imported):
        presented.append(control.create_acm_certificate(
            REGION, "imported", 12 if i % 2 else 300,
            key_type="EC_prime256v1" if i % 4 == 3 else "RSA_2048")["arn"])
    for i in range(args.private):
        arn = control.create_acm_certificate(REGION, "private", 20 if i % 3 == 0 else 300,
                                             ca_arn=cas[i % len(cas)])["arn"]
        if i % 3 == 0:
            control.fail_acm_renewal(arn)
        presented.append(arn)
    if len(cas) > 1:  # the last CA ends within the window: so do its certificates
        control.age_private_ca(cas[-1], 15)
    for _ in range(args.unrelated):
        control.create_acm_certificate(REGION, "imported", 100)
    from c7n_apigw_certs.sandbox.seed import create_rest_stage
    rest = session.client("apigateway", region_name=REGION, endpoint_url=endpoint)
    with setup_calls(rest):
        for a in range(args.rest_apis):
            api = rest.create_rest_api(name="bench-%03d" % a)["id"]
            create_rest_stage(rest, api, "prod", presented[a % len(presented)])
    return presented


def counts(rows):
    found = {}
    for row in rows:
        if row["outcome"] == "ok":
            service = found.setdefault(row["service"], {})
            service[row["operation"]] = service.get(row["operation"], 0) + row["calls"]
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rest-apis", type=int, default=60)
    parser.add_argument("--generated", type=int, default=20)
    parser.add_argument("--imported", type=int, default=20)
    parser.add_argument("--private", type=int, default=20)
    parser.add_argument("--cas", type=int, default=2)
    parser.add_argument("--unrelated", type=int, default=30)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.rest_apis < args.generated + args.imported + args.private:
        parser.error("--rest-apis must be at least the certificates presented, one a stage")
    import boto3
    from c7n_apigw_certs.sandbox.demo import RunningSandbox, find_command
    from c7n_apigw_certs.sandbox.remote import SandboxClient
    with RunningSandbox(seed=None) as sandbox, tempfile.TemporaryDirectory() as tmp:
        endpoint = sandbox.env["AWS_ENDPOINT_URL"]
        control = SandboxClient(endpoint)
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                region_name=REGION)
        build(control, session, endpoint, args)
        control.reset_counters()
        out = os.path.join(tmp, "out")
        proc = subprocess.run([find_command("custodian"), "run", "--cache-period", "0", "-s",
                               out, "--region", REGION, POLICY],
                              env=dict(os.environ, **sandbox.env, HOME=tmp),
                              capture_output=True, text=True)
        made = counts(control.counters())
        with open(os.path.join(out, "apigw-client-certificates-expiring",
                               "resources.json")) as f:
            found = json.load(f)
    need = minimum(args.rest_apis, args.generated, args.imported, args.private, args.cas,
                   args.unrelated)
    result = {"estate": vars(args), "exit_code": proc.returncode, "matched": len(found),
              "matched_by_kind": {}, "calls": {}, "minimum": need, "over_minimum": {}}
    for cert in found:
        key = "%s %s" % (cert["kind"], cert["c7n:condition"])
        result["matched_by_kind"][key] = result["matched_by_kind"].get(key, 0) + 1
    for service in ("apigateway", "apigatewayv2", "acm", "acm-pca"):
        result["calls"][service] = made.get(service, {})
    made_apigw = dict(made.get("apigateway", {}))
    for op, n in made.get("apigatewayv2", {}).items():
        made_apigw[op] = made_apigw.get(op, 0) + n
    for service, ops in (("apigateway", made_apigw), ("acm", made.get("acm", {})),
                         ("acm-pca", made.get("acm-pca", {}))):
        for op in sorted(set(ops) | set(need[service])):
            extra = ops.get(op, 0) - need[service].get(op, 0)
            if extra:
                result["over_minimum"]["%s %s" % (service, op)] = extra
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    if proc.returncode:
        sys.stderr.write(proc.stderr[-2000:])
    return 0 if not proc.returncode and not result["over_minimum"] else 1


if __name__ == "__main__":
    sys.exit(main())

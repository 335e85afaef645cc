"""Audit at scale: what the expiry audit (policies/expiring.yml, through the real ``custodian
run``) costs on a large estate under API Gateway's management throttle of 10 requests per
second with a burst of 40 (docs/aws-behaviour.md, fact 13), and what the same policy costs
through ``c7n-org run`` across many accounts with 1 worker and with 8.

    python benchmarks/audit.py                   the audit (describe path), then c7n-org
    python benchmarks/audit.py --source config   the audit with the stages from AWS Config
                                                 (skipped, with the reason, if the installed
                                                 plugin refuses ``source: config``)
    python benchmarks/audit.py --no-org          the audit only
    python benchmarks/audit.py --no-audit        c7n-org only

The audit's estate: one account and region with 200 REST APIs of 3 stages each, 10 WebSocket
APIs of one stage, 2 HTTP APIs, and 60 certificates (the default quota, fact 5), every stage on
one of 55 of them (5 are used by none). c7n-org's: 20 accounts x 2 regions, each with a smaller
estate of the same shape (``ORG_ESTATE``); the sandbox's throttle is one bucket per account,
across its regions (fact 90). The estate is built before the throttle is turned on,
with every signed seed request marked as set-up (``seed.setup_calls``: exempt from the
``CreateDeployment`` rate), so that seeding spends neither limit.

Reports, per run: calls by service and operation (``ok`` and ``throttled``, from the sandbox's
counters), API Gateway calls against the minimum the audit needs (``minimum_calls``) and, when
more were made, which operations made them; Config calls; wall time against the lower bound
the throttle sets; and whether the audit's output matches the estate. Prints a table and
writes the figures as JSON (``--json``).
"""
import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import boto3
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
POLICY = os.path.join(ROOT, "policies", "expiring.yml")
ACCOUNT = "123456789012"
REGION = "us-east-1"
ORG_ACCOUNTS = 20
ORG_REGIONS = ("us-east-1", "eu-west-1")
ORG_WORKERS = (1, 8)
RATE, BURST = 10, 40
DAYS = 30  # the threshold of policies/expiring.yml
PAGE = 500  # GetClientCertificates, GetRestApis (fact 6) and GetApis, as usage.py asks
CONFIG_PAGE = 100  # SelectResourceConfig's Limit at most (fact 91)
STAGE_NAMES = ("prod", "staging", "dev", "test", "qa", "perf", "demo", "sandbox")


@dataclasses.dataclass(frozen=True)
class Estate:
    """The shape of one account's estate in one region."""
    rest_apis: int = 200
    stages_each: int = 3
    websockets: int = 10
    http_apis: int = 2
    certificates: int = 60
    unused: int = 5  # certificates that no stage uses

    def __post_init__(self):
        stages = self.rest_stages + self.websockets
        if (self.stages_each > len(STAGE_NAMES) or not 0 <= self.unused <= self.certificates
                or (stages and self.unused == self.certificates)):
            raise ValueError("stages need a certificate that is not unused, and an API has at "
                             "most %d stages" % len(STAGE_NAMES))

    @property
    def rest_stages(self):
        return self.rest_apis * self.stages_each

    def describe(self):
        return ("%d REST APIs x %d stages, %d WebSocket APIs, %d HTTP APIs, %d certificates "
                "(%d unused)" % (self.rest_apis, self.stages_each, self.websockets,
                                 self.http_apis, self.certificates, self.unused))


ESTATE = Estate()
# Per account and region; 40 of them make 6,000 REST stages in all.
ORG_ESTATE = Estate(rest_apis=50, stages_each=3, websockets=5, http_apis=1, certificates=30,
                    unused=5)


def expires_in_days(i):
    """Certificate i's days to expiry: -25, -10, 5, 20, 35, ... 365, then again; never within
    a day of the 30-day threshold, so which ones the audit matches does not depend on the
    seconds that pass between seeding and the run."""
    return -25 + 15 * (i % 27)


def certificate_of_stage(estate, j):
    """The index of the certificate that stage j uses (REST stages first, then WebSocket)."""
    return j % (estate.certificates - estate.unused)


def expected(estate):
    """{certificate index: stages that use it} for the certificates the audit must report."""
    counts = {}
    for j in range(estate.rest_stages + estate.websockets):
        i = certificate_of_stage(estate, j)
        counts[i] = counts.get(i, 0) + 1
    return {i: counts.get(i, 0) for i in range(estate.certificates)
            if expires_in_days(i) <= DAYS}


def session_in(endpoint, account=ACCOUNT):
    """A boto3 session in ``account``: the sandbox's root keys for its default account, else an
    assumed role in that account (its keys map to the account: fact 21). The role does not
    exist in the sandbox's IAM, so nothing restricts it (sandbox/iam.py), as in
    tests/test_org.py."""
    base = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                         region_name=REGION)
    if account == ACCOUNT:
        return base
    creds = base.client("sts", endpoint_url=endpoint).assume_role(
        RoleArn="arn:aws:iam::%s:role/custodian" % account, RoleSessionName="bench-seed",
    )["Credentials"]
    return boto3.Session(aws_access_key_id=creds["AccessKeyId"],
                         aws_secret_access_key=creds["SecretAccessKey"],
                         aws_session_token=creds["SessionToken"], region_name=REGION)


def build_estate(endpoint, control, estate, region=REGION, account=ACCOUNT, session=None):
    """Create ``estate`` in one account and region; returns the certificate ids by index.

    Certificates come from the sandbox's control endpoint (as of a past moment, unsigned: not
    an API call). Every signed request is a set-up call. Per REST API: CreateRestApi,
    GetResources, PutMethod and PutIntegration (an HTTP_PROXY integration, for which API
    Gateway presents the certificate: fact 9), one CreateDeployment that creates the first
    stage, CreateStage for the others, and UpdateStage per stage for its certificate."""
    from c7n_apigw_certs.sandbox.seed import setup_calls
    session = session or session_in(endpoint, account)
    certs = [control.create_certificate(
        account=account, region=region, description="bench-%02d" % i,
        expires_in_days=expires_in_days(i))["clientCertificateId"]
        for i in range(estate.certificates)]
    rest = session.client("apigateway", region_name=region, endpoint_url=endpoint)
    v2 = session.client("apigatewayv2", region_name=region, endpoint_url=endpoint)
    with setup_calls(rest), setup_calls(v2):
        j = 0
        for a in range(estate.rest_apis):
            api = rest.create_rest_api(name="rest-%03d" % a)["id"]
            root = rest.get_resources(restApiId=api)["items"][0]["id"]
            rest.put_method(restApiId=api, resourceId=root, httpMethod="GET",
                            authorizationType="NONE")
            rest.put_integration(restApiId=api, resourceId=root, httpMethod="GET",
                                 type="HTTP_PROXY", integrationHttpMethod="GET",
                                 uri="https://backend.example.com/")
            names = STAGE_NAMES[:estate.stages_each]
            deployment = rest.create_deployment(restApiId=api, stageName=names[0])["id"]
            for name in names[1:]:
                rest.create_stage(restApiId=api, stageName=name, deploymentId=deployment)
            for name in names:
                rest.update_stage(restApiId=api, stageName=name, patchOperations=[{
                    "op": "replace", "path": "/clientCertificateId",
                    "value": certs[certificate_of_stage(estate, j)]}])
                j += 1
        for w in range(estate.websockets):
            api = v2.create_api(Name="ws-%02d" % w, ProtocolType="WEBSOCKET",
                                RouteSelectionExpression="$request.body.action")["ApiId"]
            v2.create_stage(ApiId=api, StageName="production",
                            ClientCertificateId=certs[certificate_of_stage(estate, j)])
            j += 1
        for h in range(estate.http_apis):
            api = v2.create_api(Name="http-%02d" % h, ProtocolType="HTTP")["ApiId"]
            v2.create_stage(ApiId=api, StageName="$default")
    return certs


def minimum_calls(estate, regions=1, source="describe"):
    """The calls the audit cannot do without, per service and operation, summed over
    ``regions`` account-regions of ``estate``.

    describe: per region one certificate listing (pages of 500: fact 6), the REST API listing,
    one GetStages per REST API (it does not page: fact 24), the v2 API listing (WebSocket and
    HTTP APIs), one GetStages per WebSocket API (HTTP APIs cannot use certificates: fact 10).
    Nothing else: the stage listings already carry the tags that ``c7n:stages`` reports.

    config: the certificate listing (expiry dates come only from API Gateway: fact 26) and one
    SelectResourceConfig query, 100 a page (fact 91), of the region's stages and APIs (REST and
    v2; an API's item gives its name and its tags, which a stage's owner falls back to; a
    query cannot join, nor select only what a certificate's stage needs). No API Gateway stage
    listing at all."""
    # The stages are listed even with no certificate of API Gateway's: a stage may present an
    # ACM certificate (docs/aws-behaviour.md, fact 94; what ACM costs: benchmarks/acm.py).
    need = {("apigateway", "GetClientCertificates"): regions * max(1, math.ceil(
        estate.certificates / PAGE))}
    if source == "config":
        # One stage a WebSocket and an HTTP API (their $default), and every API.
        items = (estate.rest_stages + estate.rest_apis
                 + 2 * (estate.websockets + estate.http_apis))
        need[("config", "SelectResourceConfig")] = regions * max(
            1, math.ceil(items / CONFIG_PAGE))
        return need
    need[("apigateway", "GetRestApis")] = regions * max(1, math.ceil(estate.rest_apis / PAGE))
    need[("apigateway", "GetStages")] = regions * estate.rest_apis
    need[("apigatewayv2", "GetApis")] = regions * max(
        1, math.ceil((estate.websockets + estate.http_apis) / PAGE))
    need[("apigatewayv2", "GetStages")] = regions * estate.websockets
    return {key: calls for key, calls in need.items() if calls}


def tally(rows):
    """The sandbox's counter rows as {(service, operation): {outcome: calls}}."""
    calls = {}
    for row in rows:
        by_outcome = calls.setdefault((row["service"], row["operation"]), {})
        by_outcome[row["outcome"]] = by_outcome.get(row["outcome"], 0) + row["calls"]
    return calls


def account(calls, need):
    """Calls made against the minimum: totals, and every operation that made more ``ok``
    calls than it needs (or any the minimum does not name), with its excess."""
    def total(services, outcome):
        return sum(n.get(outcome, 0) for (s, _), n in calls.items() if s in services)
    apigw = ("apigateway", "apigatewayv2")
    needed = sum(n for (s, _), n in need.items() if s in apigw)
    excess = {}
    for key, outcomes in sorted(calls.items()):
        if key[0] in apigw + ("config",) and outcomes.get("ok", 0) > need.get(key, 0):
            excess["%s %s" % key] = {"made": outcomes["ok"], "needed": need.get(key, 0)}
    return {
        "api_gateway_ok": total(apigw, "ok"),
        "api_gateway_throttled": total(apigw, "throttled"),
        "api_gateway_minimum": needed,
        "config_calls": sum(sum(n.values()) for (s, _), n in calls.items() if s == "config"),
        "config_minimum": sum(n for (s, _), n in need.items() if s == "config"),
        "over_minimum": excess,
    }


def check_output(found, estate, certs):
    """Differences between the audit's certificates ({id: stages reported}) and what the
    estate holds; an empty list when the audit reported exactly what it should."""
    want = {certs[i]: n for i, n in expected(estate).items()}
    problems = ["missing %s" % c for c in sorted(set(want) - set(found))]
    problems += ["unexpected %s" % c for c in sorted(set(found) - set(want))]
    problems += ["%s: %d stages reported, %d use it" % (c, found[c], want[c])
                 for c in sorted(set(want) & set(found)) if found[c] != want[c]]
    return problems


def read_found(path):
    """{certificate id: number of stages} from a policy's resources.json."""
    with open(path) as fh:
        return {c["clientCertificateId"]: len(c["c7n:stages"]) for c in json.load(fh)}


def policy_data(source="describe"):
    """policies/expiring.yml as shipped, or with ``source`` set on every policy."""
    with open(POLICY) as fh:
        data = yaml.safe_load(fh)
    if source != "describe":
        for p in data["policies"]:
            p["source"] = source
    return data


def write_policy(directory, source="describe"):
    if source == "describe":
        return POLICY
    path = os.path.join(directory, "expiring-%s.yml" % source)
    with open(path, "w") as fh:
        yaml.safe_dump(policy_data(source), fh)
    return path


def refusal(policy_path, env, source="describe"):
    """None if the installed plugin can run the policy, else why not.

    c7n's schema accepts every source c7n knows (``config`` included) on every resource, and a
    resource with no source of that name falls back to c7n's generic one, which for this
    resource (no Config type: fact 26) would select nothing and report no certificate. So the
    resource's own ``source_mapping`` decides first, then ``custodian validate``."""
    from c7n.provider import clouds
    from c7n.resources import load_resources

    from c7n_apigw_certs.sandbox.demo import find_command
    load_resources(("aws.apigw-client-certificate",))
    sources = clouds["aws"].resources.get("apigw-client-certificate").source_mapping
    if source not in sources:
        return "aws.apigw-client-certificate has no %r source; it has: %s" % (
            source, ", ".join(sorted(sources)))
    proc = subprocess.run([find_command("custodian"), "validate", policy_path], env=env,
                          capture_output=True, text=True)
    if proc.returncode == 0:
        return None
    lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    return " / ".join(lines[-3:]) or "exit code %d" % proc.returncode


def skipped(source, why):
    return {"source": source, "skipped": "the installed plugin cannot run source: %s (%s)" % (
        source, why)}


def start_config_recorder(endpoint, session):
    """Record every supported type, as a Config source needs; returns None, or why not (the
    sandbox's Config may have no recorder: then the run shows what the plugin does without)."""
    from c7n_apigw_certs.sandbox.seed import setup_calls
    config = session.client("config", region_name=REGION, endpoint_url=endpoint)
    try:
        with setup_calls(config):
            config.put_configuration_recorder(ConfigurationRecorder={
                "name": "default", "roleARN": "arn:aws:iam::%s:role/config" % ACCOUNT,
                "recordingGroup": {"allSupported": True}})
            config.start_configuration_recorder(ConfigurationRecorderName="default")
    except Exception as e:  # whatever the sandbox answers, the benchmark reports it
        return "%s: %s" % (type(e).__name__, e)
    return None


def run_audit(endpoint, control, env, tmp, estate, certs, source="describe",
              rate=RATE, burst=BURST):
    """``custodian run`` of the policy on an estate already built; the figures."""
    from c7n_apigw_certs.sandbox.demo import find_command
    policy = write_policy(tmp, source)
    env = dict(env, HOME=tmp)
    why = refusal(policy, env, source)
    if why:
        return skipped(source, why)
    name = policy_data(source)["policies"][0]["name"]
    out = os.path.join(tmp, "out-%s" % source)
    control.reset_counters()
    control.throttle(rate=rate, burst=burst)
    started = time.monotonic()
    proc = subprocess.run([find_command("custodian"), "run", "--cache-period", "0", "-s", out,
                           "--region", REGION, policy], env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    control.throttle()
    calls = tally(control.counters())
    need = minimum_calls(estate, source=source)
    resources = os.path.join(out, name, "resources.json")
    found = read_found(resources) if os.path.exists(resources) else {}
    result = {"source": source, "estate": estate.describe(), "exit_code": proc.returncode,
              "wall_s": round(wall, 1)}
    result.update(account(calls, need))
    if rate:  # the calls past the burst, at the throttle's rate
        result["lower_bound_s"] = round(max(0, result["api_gateway_ok"] - burst) / rate, 1)
    result["matched"] = len(found)
    result["output_problems"] = check_output(found, estate, certs)
    result["calls"] = {"%s %s" % key: outcomes for key, outcomes in sorted(calls.items())}
    if proc.returncode:
        result["stderr_tail"] = proc.stderr[-800:]
    return result


def bench_audit(estate=ESTATE, source="describe"):
    from c7n_apigw_certs.sandbox.demo import RunningSandbox
    from c7n_apigw_certs.sandbox.remote import SandboxClient
    with tempfile.TemporaryDirectory() as tmp:  # before building an estate it cannot audit
        why = refusal(write_policy(tmp, source), dict(os.environ, HOME=tmp), source)
    if why:
        return skipped(source, why)
    with RunningSandbox(seed=None) as sandbox, tempfile.TemporaryDirectory() as tmp:
        endpoint = sandbox.env["AWS_ENDPOINT_URL"]
        control = SandboxClient(endpoint)
        session = session_in(endpoint)
        note = start_config_recorder(endpoint, session) if source == "config" else None
        started = time.monotonic()
        certs = build_estate(endpoint, control, estate, session=session)
        seeded = time.monotonic() - started
        result = run_audit(endpoint, control, dict(os.environ, **sandbox.env), tmp, estate,
                           certs, source)
    result["seed_s"] = round(seeded, 1)
    if note:
        result["config_recorder"] = note
    return result


def org_accounts(count=ORG_ACCOUNTS):
    return ["2100000000%02d" % (i + 1) for i in range(count)]


def write_accounts(path, accounts, regions=ORG_REGIONS):
    """c7n-org's accounts file: each account through its ``custodian`` role."""
    with open(path, "w") as fh:
        yaml.safe_dump({"accounts": [
            {"name": "acct-%s" % a[-2:], "account_id": a, "regions": list(regions),
             "role": "arn:aws:iam::%s:role/custodian" % a} for a in accounts]}, fh)


def throttle_bounds(rows, workers, rate=RATE, burst=BURST):
    """The least wall time the throttle allows a c7n-org run. Each account has a bucket of its
    own: its API Gateway calls past the burst take (n - burst) / rate seconds, during which a
    worker is busy with that account. One account after another (1 worker) that is the sum;
    all at once (a worker per account), the largest; with N workers, at least the larger of
    the largest and the sum spread over N."""
    per_account = {}
    for row in rows:
        if row["service"] in ("apigateway", "apigatewayv2") and row["outcome"] == "ok":
            per_account[row["account"]] = per_account.get(row["account"], 0) + row["calls"]
    each = [max(0, n - burst) / rate for n in per_account.values()]
    largest = max(each, default=0)
    return {"lower_bound_s": round(max(largest, sum(each) / workers), 1),
            "lower_bound_serial_s": round(sum(each), 1),
            "lower_bound_parallel_s": round(largest, 1)}


def run_org(control, env, tmp, estate, certs, workers, regions=ORG_REGIONS,
            rate=RATE, burst=BURST):
    """``c7n-org run`` of policies/expiring.yml with ``workers`` processes
    (``C7N_ORG_PARALLEL``: c7n-org 0.6.52's ``run`` has no worker option, fact 92)."""
    from c7n_apigw_certs.sandbox.demo import find_command
    config = os.path.join(tmp, "accounts.yml")
    write_accounts(config, sorted(certs), regions)
    out = os.path.join(tmp, "org-%d" % workers)
    control.reset_counters()
    control.throttle(rate=rate, burst=burst)  # a full bucket for every account
    started = time.monotonic()
    proc = subprocess.run(
        [find_command("c7n-org"), "run", "-c", config, "-s", out, "-u", POLICY,
         "--cache-period", "0"],
        env=dict(env, HOME=tmp, C7N_ORG_PARALLEL=str(workers)), capture_output=True, text=True)
    wall = time.monotonic() - started
    control.throttle()
    rows = control.counters()
    calls = tally(rows)
    need = minimum_calls(estate, regions=len(certs) * len(regions))
    name = policy_data()["policies"][0]["name"]
    problems, matched = [], 0
    for acct in sorted(certs):
        for region in regions:
            path = os.path.join(out, "acct-%s" % acct[-2:], region, name, "resources.json")
            if not os.path.exists(path):
                problems.append("%s %s: no output" % (acct, region))
                continue
            found = read_found(path)
            matched += len(found)
            problems += ["%s %s: %s" % (acct, region, p)
                         for p in check_output(found, estate, certs[acct][region])]
    result = {"workers": workers, "account_regions": len(certs) * len(regions),
              "estate_each": estate.describe(), "exit_code": proc.returncode,
              "wall_s": round(wall, 1)}
    result.update(account(calls, need))
    result.update(throttle_bounds(rows, workers, rate, burst))
    result["matched"] = matched
    result["output_problems"] = problems
    result["calls"] = {"%s %s" % key: outcomes for key, outcomes in sorted(calls.items())}
    if proc.returncode:
        result["stderr_tail"] = proc.stderr[-800:]
    return result


def bench_org(estate=ORG_ESTATE, accounts=ORG_ACCOUNTS, workers=ORG_WORKERS,
              regions=ORG_REGIONS):
    from c7n_apigw_certs.sandbox.demo import RunningSandbox
    from c7n_apigw_certs.sandbox.remote import SandboxClient
    with RunningSandbox(seed=None) as sandbox, tempfile.TemporaryDirectory() as tmp:
        endpoint = sandbox.env["AWS_ENDPOINT_URL"]
        control = SandboxClient(endpoint)
        started = time.monotonic()
        certs = {}
        for acct in org_accounts(accounts):
            session = session_in(endpoint, acct)
            certs[acct] = {region: build_estate(endpoint, control, estate, region, acct, session)
                           for region in regions}
        seeded = time.monotonic() - started
        env = dict(os.environ, **sandbox.env)
        runs = [run_org(control, env, tmp, estate, certs, n, regions) for n in workers]
    return {"seed_s": round(seeded, 1), "runs": runs}


def table(results):
    """The figures as text, one block per run."""
    lines = []

    def block(title, r):
        lines.append(title)
        if r.get("skipped"):
            lines.append("  SKIPPED: " + r["skipped"])
            return
        lines.append("  %-44s %8s %10s" % ("calls by operation", "ok", "throttled"))
        for op, outcomes in r["calls"].items():
            other = {k: v for k, v in outcomes.items() if k not in ("ok", "throttled")}
            lines.append("  %-44s %8d %10d%s" % (
                op, outcomes.get("ok", 0), outcomes.get("throttled", 0),
                "  " + json.dumps(other) if other else ""))
        lines.append("  %-44s %8d %10d" % ("API Gateway, all", r["api_gateway_ok"],
                                            r["api_gateway_throttled"]))
        lines.append("  %-44s %8d" % ("API Gateway, minimum the audit needs",
                                      r["api_gateway_minimum"]))
        lines.append("  %-44s %8d   (minimum %d)" % ("Config calls", r["config_calls"],
                                                      r["config_minimum"]))
        for op, n in r["over_minimum"].items():
            lines.append("  over the minimum: %s made %d, needs %d" % (
                op, n["made"], n["needed"]))
        bound = (" (throttle's lower bound %.1f s)" % r["lower_bound_s"]
                 if "lower_bound_s" in r else "")
        if "lower_bound_serial_s" in r:
            bound = (" (throttle's lower bound %.1f s with %d worker(s); %.1f s one account "
                     "after another, %.1f s all at once)" % (
                         r["lower_bound_s"], r["workers"], r["lower_bound_serial_s"],
                         r["lower_bound_parallel_s"]))
        lines.append("  %-44s %8.1f s%s" % ("wall time", r["wall_s"], bound))
        lines.append("  %-44s %8d   %s" % (
            "certificates reported", r["matched"],
            "as the estate says" if not r["output_problems"] else
            "PROBLEMS: " + "; ".join(r["output_problems"][:5])))
        if r["exit_code"]:
            lines.append("  exit code %d: %s" % (r["exit_code"], r.get("stderr_tail", "")))

    for r in results.get("audit", ()):
        title = "custodian run %s, source %s" % (os.path.relpath(POLICY, ROOT), r["source"])
        if not r.get("skipped"):
            title += ", one account and region: %s; throttle %d/s burst %d (seeded in %s s)" % (
                r["estate"], RATE, BURST, r["seed_s"])
        block(title, r)
    org = results.get("org")
    if org:
        for r in org["runs"]:
            block("c7n-org run, %d worker(s): %d account-regions, each %s; throttle %d/s burst "
                  "%d per account (seeded in %s s)" % (
                      r["workers"], r["account_regions"], r["estate_each"], RATE, BURST,
                      org["seed_s"]), r)
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("describe", "config", "both"), default="describe",
                        help="where the audit's stages come from (default describe)")
    parser.add_argument("--no-audit", action="store_true", help="c7n-org only")
    parser.add_argument("--no-org", action="store_true", help="the audit only")
    parser.add_argument("--workers", type=int, nargs="+", default=list(ORG_WORKERS),
                        help="c7n-org worker counts to run (default 1 8)")
    parser.add_argument("--accounts", type=int, default=ORG_ACCOUNTS)
    parser.add_argument("--org-rest-apis", type=int, default=ORG_ESTATE.rest_apis,
                        help="REST APIs (of %d stages) in each c7n-org account and region "
                        "(default %d)" % (ORG_ESTATE.stages_each, ORG_ESTATE.rest_apis))
    parser.add_argument("--json", default=os.path.join("out", "bench-audit.json"),
                        help="where to write the figures (default out/bench-audit.json)")
    args = parser.parse_args(argv)
    results = {}
    if not args.no_audit:
        sources = ("describe", "config") if args.source == "both" else (args.source,)
        results["audit"] = [bench_audit(source=s) for s in sources]
    if not args.no_org:
        estate = dataclasses.replace(ORG_ESTATE, rest_apis=args.org_rest_apis)
        results["org"] = bench_org(estate, accounts=args.accounts, workers=args.workers)
    print(table(results))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump(results, fh, indent=2)
    print("figures: %s" % args.json)
    failed = [r for r in results.get("audit", []) + results.get("org", {}).get("runs", [])
              if not r.get("skipped") and (r["exit_code"] or r["output_problems"])]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmarks behind the numbers in the closing notes. ``make bench`` runs them all.

- startup: what the .pth hook adds to ``python -c pass`` (median of many runs, A/B with the
  hook file moved aside), and the hook's own import time from ``-X importtime``.
- sandbox: how long ``c7n-apigw-certs sandbox --seed demo`` takes to serve.
- audit: the API calls ``custodian run policies/expiring.yml`` makes on the demo estate,
  against the minimum the job needs.
- rotate (``--rotate``): see benchmarks/rotate.py.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)


def python_pass(runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_startup(runs=61):
    pth = os.path.join(sysconfig.get_paths()["purelib"], "c7n_apigw_certs.pth")
    aside = pth + ".aside"
    python_pass(5)  # warm the page cache
    with_hook = python_pass(runs)
    os.rename(pth, aside)
    try:
        without = python_pass(runs)
    finally:
        os.rename(aside, pth)
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"],
                         capture_output=True, text=True).stderr
    own = sum(int(line.split("|")[0].split(":")[1]) for line in out.splitlines()
              if "c7n_apigw_certs" in line)
    return {"runs": runs, "median_with_hook_ms": round(with_hook * 1000, 2),
            "median_without_hook_ms": round(without * 1000, 2),
            "added_ms": round((with_hook - without) * 1000, 2),
            "hook_import_self_us": own}


def minimum_audit_calls():
    """What the job needs on the demo estate: per region one certificate listing, one REST
    API listing, one GetStages per REST API, one v2 API listing, one GetStages per WebSocket
    API. Derived from the seed's own description of the estate."""
    from c7n_apigw_certs.sandbox import seed
    need = 0
    for region in {r for r, *_ in seed.CERTIFICATES}:
        rest_apis = {a for r, a, *_ in seed.REST_STAGES if r == region}
        websockets = {a for r, a, *_ in seed.WEBSOCKET_STAGES if r == region}
        need += 3 + len(rest_apis) + len(websockets)
    return need


def bench_sandbox_and_audit():
    from c7n_apigw_certs.sandbox.demo import RunningSandbox, find_command
    started = time.monotonic()
    with RunningSandbox(seed="demo") as sandbox:
        ready = time.monotonic() - started
        endpoint = sandbox.env["AWS_ENDPOINT_URL"]
        out = tempfile.mkdtemp()
        try:
            env = dict(os.environ, HOME=out, **sandbox.env)
            cmd = [find_command("custodian"), "run", "--cache-period", "0", "-s", out,
                   "--region", "us-east-1", "--region", "eu-west-1",
                   os.path.join(ROOT, "policies", "expiring.yml")]
            t0 = time.monotonic()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            run_time = time.monotonic() - t0
        finally:
            shutil.rmtree(out)
        with urllib.request.urlopen(endpoint + "/_sandbox/counters") as response:
            rows = json.loads(response.read())["counters"]
    by_op = {}
    for row in rows:
        key = "%s:%s" % (row["service"], row["operation"])
        by_op[key] = by_op.get(key, 0) + row["calls"]
    apigw = sum(n for k, n in by_op.items() if k.startswith("apigateway"))
    return {"sandbox_ready_s": round(ready, 2), "custodian_run_s": round(run_time, 2),
            "api_gateway_calls": apigw, "minimum_calls": minimum_audit_calls(),
            "calls_by_operation": by_op}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=61)
    parser.add_argument("--rotate", action="store_true", help="also the rotation benchmark")
    args = parser.parse_args()
    results = {"startup": bench_startup(args.runs), "audit": bench_sandbox_and_audit()}
    if args.rotate:
        import rotate
        results["rotate"] = [rotate.run(60), rotate.run(120)]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""The ``c7n-apigw-certs`` command: ``sandbox`` (the offline stand-in for AWS), ``demo``,
``iam`` (the IAM policy that policy files need), ``plan`` (read-only: what the next rotation run
would do), ``trust-sync`` (a backend host's trust file kept in step with a bundle), and
``mailer-templates`` (the folder of the c7n-mailer templates this package ships, for
``c7n-mailer --templates``). Each imports what it needs when it runs: c7n only for ``iam``,
``plan`` and ``demo``."""
import argparse
import json
import os
import re
import signal
import sys
import threading
import time


def _export_lines(env):
    return "".join("export %s=%s\n" % (k, v) for k, v in env.items())


def run_sandbox(args):
    try:
        from .sandbox.remote import SandboxClient, environment
        from .sandbox.server import SandboxServer
    except ImportError as e:
        sys.exit("the sandbox needs its extra: pip install 'c7n-apigw-certs[sandbox]' (%s)" % e)
    started = time.monotonic()
    # Before anything is announced: a SIGTERM right after the exports appear must stop it cleanly.
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = SandboxServer(port=args.port).start()
    env = environment(server.endpoint, args.region)
    if args.seed == "demo":
        import boto3
        from .sandbox.seed import seed_demo
        os.environ.update(env)
        control = SandboxClient(server.endpoint)
        seed_demo(lambda region, desc, days: control.create_certificate(
            region=region, description=desc, expires_in_days=days)["clientCertificateId"],
            boto3.Session(), control)
        control.reset_counters()  # the seeding is not the user's traffic
    ready = time.monotonic() - started
    text = _export_lines(env)
    if args.env_file:
        tmp = args.env_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, args.env_file)  # appears whole: a waiting script never reads half
    sys.stdout.write("# c7n-apigw-certs sandbox serving on %s (ready in %.2f s%s)\n"
                     "# point boto3, custodian and c7n-org at it:\n%s"
                     % (server.endpoint, ready, ", demo estate seeded" if args.seed else "", text))
    sys.stdout.flush()
    stop.wait()
    server.stop()


def run_iam(args):
    """Print the policy document on stdout, nothing else; a file or policy that is not valid is
    named on stderr, exit 2. ``--trust-sync SOURCE`` adds what ``trust-sync --from SOURCE``
    reads; alone, the document is only that."""
    from .iam import PolicyFileError, document, merge, policy_resources_of
    from .trust.trust_sync import Source
    if not args.policy_files and not args.trust_sync:
        sys.stderr.write("c7n-apigw-certs iam: give POLICY.yml files, --trust-sync SOURCE, "
                         "or both\n")
        sys.exit(2)
    try:
        found = policy_resources_of(args.policy_files, region=args.region,
                                    account=args.account, for_plan=args.plan) \
            if args.policy_files else {}
        for source in args.trust_sync:
            merge(found, Source(source).iam_resources())
    except PolicyFileError as e:
        sys.stderr.write("c7n-apigw-certs iam: %s\n" % e)
        sys.exit(2)
    except ValueError as e:
        sys.stderr.write("c7n-apigw-certs iam: --trust-sync %s\n" % e)
        sys.exit(2)
    doc = document(found, args.partition, args.region, args.account)
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def mailer_templates():
    """The folder of the shipped c7n-mailer templates (``c7n_apigw_certs/signals/mailer``)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "signals", "mailer")


def _matching(pattern, what):
    """An argparse type: the value if it matches, else a usage error (exit 2)."""
    def check(value):
        if not re.fullmatch(pattern, value):
            raise argparse.ArgumentTypeError("%r is not %s" % (value, what))
        return value
    return check


def main(argv=None):
    parser = argparse.ArgumentParser(prog="c7n-apigw-certs")
    commands = parser.add_subparsers(dest="command", required=True)
    sandbox = commands.add_parser(
        "sandbox", help="serve an emulated AWS account (moto, extended) on 127.0.0.1")
    sandbox.add_argument("--port", type=int, default=5000, help="0 picks a free port")
    sandbox.add_argument("--seed", choices=["demo"], help="seed the demo estate")
    sandbox.add_argument("--region", default="us-east-1", help="region to export")
    sandbox.add_argument("--env-file", help="also write the exports to this file")
    demo = commands.add_parser(
        "demo", help="against the sandbox, with the stock custodian: the audit "
        "(policies/expiring.yml), then a staged rotation (policies/rotate.yml) on days 0, 3, 10")
    demo.add_argument("--policy", default="policies/expiring.yml")
    demo.add_argument("--rotate-policy", default="policies/rotate.yml")
    demo.add_argument("--output-dir", default="out")
    iam = commands.add_parser(
        "iam", help="print the least-privilege IAM policy document that policy files need")
    iam.add_argument("policy_files", nargs="*", metavar="POLICY.yml")
    iam.add_argument("--trust-sync", action="append", default=[], metavar="SOURCE",
                     help="also what `trust-sync --from SOURCE` reads (ssm:NAME or "
                     "s3://BUCKET/KEY); repeatable")
    iam.add_argument("--partition", default="aws",
                     type=_matching(r"aws(-[a-z]+)*", "a partition (aws, aws-cn, aws-us-gov...)"))
    iam.add_argument("--region", default="*", help="default: * (any region)",
                     type=_matching(r"\*|[a-z]{2}(-[a-z]+)+-\d+", "a region or *"))
    iam.add_argument("--account", default="*", help="default: * (any account)",
                     type=_matching(r"\*|\d{12}", "a 12-digit account id or *"))
    iam.add_argument("--plan", action="store_true",
                     help="the document of `c7n-apigw-certs plan` for these files: reads only")
    preview = commands.add_parser(
        "plan", help="read-only: what the next run of the policy's rotate action would do with "
        "each certificate it selects, and why")
    preview.add_argument("policy_file", metavar="POLICY.yml")
    preview.add_argument("-r", "--region", action="append",
                         type=_matching(r"[a-z]{2}(-[a-z]+)+-\d+", "a region"),
                         help="repeat for more regions (default: AWS_REGION, "
                         "AWS_DEFAULT_REGION, else us-east-1)")
    preview.add_argument("--assume", help="a role to assume, as custodian's --assume")
    preview.add_argument("--profile", help="an AWS profile, as custodian's --profile")
    preview.add_argument("--json", action="store_true", help="one JSON list of entries")
    sync = commands.add_parser(
        "trust-sync", help="keep a backend's trust file in step with a published bundle "
        "(from cron, a systemd timer or a sidecar)")
    sync.add_argument("--from", dest="source", required=True, metavar="SOURCE",
                      help="ssm:NAME or s3://BUCKET/KEY")
    sync.add_argument("--to", required=True, metavar="FILE", help="the trust file to maintain")
    sync.add_argument("--reload", metavar="COMMAND",
                      help="shell command run after the file changed, e.g. 'nginx -s reload'; "
                      "if it fails, the old file is put back")
    sync.add_argument("--format", choices=["pem", "nginx-map"], default="pem",
                      help="pem: the bundle as published (default); nginx-map: the "
                      "certificates' SHA-1 fingerprints for nginx's map $ssl_client_fingerprint")
    sync.add_argument("--reload-timeout", type=int, default=60, metavar="SECONDS")
    sync.add_argument("--region", help="the store's region (default: the SDK's)")
    commands.add_parser(
        "mailer-templates", help="print the folder of the shipped c7n-mailer templates "
        "(for c7n-mailer --templates)")
    args = parser.parse_args(argv)
    if args.command == "sandbox":
        run_sandbox(args)
    elif args.command == "demo":
        from .sandbox.demo import run_demo
        run_demo(args.policy, args.output_dir, args.rotate_policy)
    elif args.command == "iam":
        run_iam(args)
    elif args.command == "plan":
        from .rotation.preview import run_plan
        run_plan(args)
    elif args.command == "trust-sync":
        from .trust.trust_sync import main as trust_sync
        trust_sync(args)
    elif args.command == "mailer-templates":
        sys.stdout.write(mailer_templates() + "\n")


if __name__ == "__main__":
    main()

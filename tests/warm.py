"""The installed command lines, started from a warm interpreter: the tests' way to run them fast.

Every ``custodian run`` of the suite used to start a new interpreter, and most of its time went
into importing c7n, boto3 and the plugin before the first call. Here one interpreter per test
worker starts as ``custodian`` starts (``site`` runs the ``.pth`` hook, then c7n's own modules
import and the hook initialises the plugin), imports what every run imports, and then forks once
per command: each command still runs in its own process, from its console script's entry point
(``custodian`` is c7n's ``c7n.cli:main``), with its own arguments, environment, working
directory, standard streams and exit status; only the imports are shared, as ``fork`` shares
them. The clock moves exactly as ``c7n_apigw_certs.sandbox.timeshift`` moves it (it is the same
function).

What this does not carry, the tests that need it run the real console script in a new
interpreter (``tests/conftest.py``, ``run_cli(..., cold=True)``): the ``.pth`` hook in a fresh
process (tests/test_loader.py), ``c7n-org``'s worker processes, and one run that is compared,
file for file, with a warm run of the same policy (tests/test_warm.py).

Protocol: one JSON line per command on stdin; the answer is ``{"pid": N}`` when the command has
started and ``{"rc": N}`` when it has ended.
"""
import gc
import json
import os
import sys

# As a console script starts: its own folder (the venv's bin), not this one, first on the path.
if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    sys.path[0] = os.path.dirname(sys.executable)


def warm_up():
    """What every command imports before its first call, as the console scripts import it."""
    import c7n.cli  # noqa: F401
    import c7n.commands  # noqa: F401
    import c7n.resources.aws  # noqa: F401  (the .pth hook initialises the plugin right after)
    import boto3  # noqa: F401
    import botocore.session  # noqa: F401
    import freezegun  # noqa: F401
    import c7n_apigw_certs.sandbox.timeshift  # noqa: F401
    # What c7n's load_providers("aws") imports for every policy command
    # (c7n/resources/__init__.py): c7n's own modules, none of the plugin's (apigw is not
    # among them: its stages bring the plugin's filters).
    import c7n.resources.securityhub  # noqa: F401
    import c7n.resources.sfn  # noqa: F401
    import c7n.resources.ssm  # noqa: F401
    import cryptography.x509  # noqa: F401  (trust-sync checks the certificates it writes)
    share_botocore_data()
    # Not the plugin's modules (entry.py and what it imports): they import in each command,
    # after its clock is moved, as in a new interpreter (stages.py binds time.sleep and
    # time.monotonic as defaults when it is imported).
    assert "c7n_apigw_certs.entry" not in sys.modules
    late_bound_sleep()


# The services the plugin's filters and actions call, and c7n's own (sts for the account id;
# sqs, sns, lambda, logs for the modes and notify): their models parsed once, before the forks.
SERVICES = ("sts", "apigateway", "apigatewayv2", "acm", "acm-pca", "ssm", "s3", "elbv2",
            "cloudwatch", "events", "config", "securityhub", "sqs", "sns", "iam", "lambda",
            "logs", "cloudformation")


def share_botocore_data():
    """botocore parses its data files (the service models, endpoints, partitions) once per
    session and shares them among that session's clients, read only; a command makes several
    sessions, and a new interpreter parses them again for each. Here every session of this
    process shares one parsed copy, loaded before the forks: the same files, parsed once (about
    half a warm command's time went into ``json.loads``). Called from ``warm_up`` and from the
    tests' own process (tests/conftest.py)."""
    import boto3
    import botocore.loaders
    original = botocore.loaders.Loader.__init__
    if getattr(original, "shared_data", False):
        return
    shared = {}
    loader = botocore.loaders.Loader
    default = [loader.CUSTOMER_DATA_PATH, loader.BUILTIN_DATA_PATH]

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.search_paths == default and self._extras_types == ["sdk"]:
            self._cache = shared  # the default files only (no AWS_DATA_PATH)
    __init__.shared_data = True
    botocore.loaders.Loader.__init__ = __init__
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="x",
                            aws_secret_access_key="x")
    for service in SERVICES:
        session.client(service)
    session.get_available_regions("apigateway")


def freeze_what_lasts():
    """What this process has made so far lives as long as it does: out of the garbage
    collector's sight, so that its collections (and, in a forked command, the pages they would
    copy) walk only what is made later. About half of a warm command's time went into those
    collections. Called before the forks and by each test worker once its server runs
    (tests/conftest.py)."""
    gc.collect()
    gc.freeze()


def late_bound_sleep():
    """A new interpreter runs timeshift before it imports c7n, so a module's ``from time import
    sleep`` already gets timeshift's sleep (``--sandbox-sleep``); here those modules are
    imported first. Each such name now looks ``time.sleep`` up when called, so it is whatever
    timeshift made it in the command's process."""
    import time
    real = time.sleep

    def sleep(seconds):
        return time.sleep(seconds)
    for module in list(sys.modules.values()):
        for name, value in list(getattr(module, "__dict__", {}).items()):
            if value is real and module is not time:
                setattr(module, name, sleep)


def child(request):
    """In the forked process: the command, as its own interpreter would run it."""
    os.setpgid(0, 0)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, fd)
        os.close(out)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", closefd=False, buffering=1)
    sys.stderr = open(2, "w", closefd=False, buffering=1)
    sys.argv = request["argv"]
    code = 1
    try:
        if request["argv"][0] == "timeshift":
            from c7n_apigw_certs.sandbox.timeshift import main
        else:
            from importlib.metadata import entry_points
            (script,) = entry_points(group="console_scripts", name=request["argv"][0])
            main = script.load()
        code = main()
    except SystemExit as exc:
        code = exc.code
    except BaseException:  # as the interpreter would: the traceback on stderr, status 1
        import traceback
        traceback.print_exc()
        code = 1
    finally:
        if isinstance(code, str):
            print(code, file=sys.stderr)
            code = 1
        code = 0 if code is None else code
        try:
            import logging
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve():
    warm_up()
    freeze_what_lasts()
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing of ours ever mixes in the answers
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            answers.close()
            child(request)
        answers.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        answers.write(json.dumps({"rc": os.waitstatus_to_exitcode(status)}) + "\n")


if __name__ == "__main__":
    serve()

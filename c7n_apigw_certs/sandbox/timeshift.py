"""Run an installed console script with its clock moved, as the sandbox's clock is moved:

    python -m c7n_apigw_certs.sandbox.timeshift SECONDS custodian run ...
    python -m c7n_apigw_certs.sandbox.timeshift @2030-06-15T12:00:00+00:00 custodian run ...

A staged rotation waits days between its steps (``switch-after-days``, ``delete-after-days``).
The demo and the tests move the sandbox's clock over HTTP (``controls.Clock``) and run the
command at the same moved time here: the command is the installed entry point itself (c7n's own
``main``), only the process's clock is shifted (freezegun, ticking). ``@INSTANT`` freezes it at
that instant instead (not ticking), as tests do when the sandbox stands still there too: no
wall-clock time then passes between the sandbox's "now" and the command's. Nothing in the
plugin knows about it; against AWS, the days simply pass.

    python -m c7n_apigw_certs.sandbox.timeshift --sandbox-sleep SECONDS|@INSTANT custodian ...

``--sandbox-sleep`` also turns the command's waits (``time.sleep``: the deployment pacing,
c7n's and botocore's retry back-off) into moves of both clocks: the command's clock and the
sandbox's at ``AWS_ENDPOINT_URL`` go on by the seconds asked, at once, and the sandbox's rates
(throttle, CreateDeployment) count them (``controls.Clock.seconds``). The command still waits
exactly as long as its code says, only not on the wall clock: for tests of the logic. Waits in
parallel threads each move the clocks, so time passes faster there than it would.
"""
import datetime
import os
import sys
import threading
import time
from importlib.metadata import entry_points

import freezegun

from .remote import SandboxClient

SANDBOX_SLEEP = "--sandbox-sleep"
# How a new process runs this module (``command``), and how a reader tells such a command line.
PREFIX = [sys.executable, "-m", "c7n_apigw_certs.sandbox.timeshift"]


def command(when, argv, sandbox_sleep=False):
    """The command line that runs ``argv`` (a console script's name and its arguments) with its
    clock at ``when``: seconds on from now, or ``"@INSTANT"``; with ``sandbox_sleep``, its
    waits move both clocks on (``--sandbox-sleep``)."""
    return PREFIX + ([SANDBOX_SLEEP] if sandbox_sleep else []) + [str(when)] + list(argv)


def sandbox_sleep(freezer, sandbox):
    """A ``time.sleep`` that moves ``freezer`` (the command's clock) and ``sandbox`` (a
    ``SandboxClient``) on instead of waiting."""
    real_sleep, lock = time.sleep, threading.Lock()

    def sleep(seconds):
        if seconds <= 0:
            return real_sleep(0)
        with lock:
            freezer.move_to(freezer() + datetime.timedelta(seconds=seconds))
            sandbox.advance(seconds=seconds)
    return sleep


def main():
    argv = sys.argv[1:]
    on_sandbox = argv[0] == SANDBOX_SLEEP
    when, name, args = argv[on_sandbox], argv[on_sandbox + 1], argv[on_sandbox + 2:]
    if when.startswith("@"):
        freezer = freezegun.freeze_time(when[1:], tick=False).start()
    else:
        now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            seconds=float(when))
        freezer = freezegun.freeze_time(now, tick=True).start()
    if on_sandbox:
        time.sleep = sandbox_sleep(freezer, SandboxClient(os.environ["AWS_ENDPOINT_URL"]))
    (script,) = entry_points(group="console_scripts", name=name)
    sys.argv = [name] + args
    sys.exit(script.load()())


if __name__ == "__main__":
    main()

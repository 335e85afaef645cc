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
"""
import datetime
import sys
from importlib.metadata import entry_points

import freezegun


def main():
    when, name, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if when.startswith("@"):
        freezegun.freeze_time(when[1:], tick=False).start()
    else:
        now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            seconds=float(when))
        freezegun.freeze_time(now, tick=True).start()
    (script,) = entry_points(group="console_scripts", name=name)
    sys.argv = [name] + args
    sys.exit(script.load()())


if __name__ == "__main__":
    main()

"""Run an installed console script with its clock moved, for staged rotations:

    python tests/run_at.py SECONDS custodian run ...

The command is the installed entry point itself (c7n's own ``main``); only the process's clock
is shifted (freezegun, ticking), as the sandbox's clock is shifted over HTTP. Test support only.
"""
import datetime
import sys
from importlib.metadata import entry_points

import freezegun


def main():
    offset, name, args = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
    now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)
    freezegun.freeze_time(now, tick=True).start()
    (script,) = entry_points(group="console_scripts", name=name)
    sys.argv = [name] + args
    sys.exit(script.load()())


if __name__ == "__main__":
    main()

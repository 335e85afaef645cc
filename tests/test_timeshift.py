"""sandbox/timeshift.py's ``--sandbox-sleep``: a command's waits move its clock and the
sandbox's instead of passing on the wall clock."""
import datetime
import time

import freezegun

from c7n_apigw_certs.sandbox.timeshift import sandbox_sleep

UTC = datetime.timezone.utc


class Recorder:
    def __init__(self):
        self.advanced = []

    def advance(self, seconds=0):
        self.advanced.append(seconds)


def test_a_wait_moves_both_clocks_by_what_was_asked():
    sandbox = Recorder()
    with freezegun.freeze_time("2030-01-01T00:00:00", tick=False) as freezer:
        sleep = sandbox_sleep(freezer, sandbox)
        before = time.monotonic()
        sleep(5)
        sleep(2.5)
        sleep(0)  # no wait: nothing moves
        assert datetime.datetime.now(UTC) == datetime.datetime(2030, 1, 1, 0, 0, 7, 500000,
                                                               tzinfo=UTC)
        assert time.monotonic() - before == 7.5
    assert sandbox.advanced == [5, 2.5]

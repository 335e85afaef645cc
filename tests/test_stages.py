"""The stage adapters' deployment pacing, on a fake clock."""
from c7n_apigw_certs.rotation.stages import DEPLOY_INTERVAL, Pacer


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_calls_are_spaced_from_the_end_of_the_previous_one():
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    starts = []

    def deploy(duration):
        starts.append(clock.now)
        clock.now += duration  # the call itself takes time (or backs off inside the retry)
        return duration

    assert pacer.call(deploy, 0.4) == 0.4
    pacer.call(deploy, 2.0)
    clock.now += 7  # long enough already: no wait
    pacer.call(deploy, 0.1)
    assert starts[1] - (starts[0] + 0.4) == DEPLOY_INTERVAL
    assert starts[2] - (starts[1] + 2.0) == 7
    assert clock.slept == [DEPLOY_INTERVAL]


def test_a_failed_call_still_counts():
    clock = FakeClock()
    pacer = Pacer(interval=5, clock=clock, sleep=clock.sleep)

    def refused():
        raise RuntimeError("refused")

    try:
        pacer.call(refused)
    except RuntimeError:
        pass
    pacer.call(lambda: None)
    assert clock.slept == [5]

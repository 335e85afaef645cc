"""One clock for the rotation's gates: AWS's, as its answers date them.

Every gate compares a time a run reads from a tag with the time of the run reading it; the
runs may be on different machines (a laptop, a CI runner, a Lambda). Each AWS answer carries an
HTTP ``Date`` header, the service's own time (docs/aws-behaviour.md, fact 125), so a run takes
its "now" from the answers of the calls it makes anyway (no extra call), and refuses to act on
time gates when its own clock is further from AWS's than ``MAX_SKEW``: a clock that far off
says something else on the machine is wrong too. An answer without a ``Date`` (an in-process
mock, a proxy that strips it) leaves the local clock in charge, and the run logs that it is.
"""
import datetime
import email.utils
import time

from dateutil.tz import tzutc

# SigV4 refuses a request dated more than 5 minutes from AWS's time (fact 125): a clock off
# by more cannot sign at all against AWS, and one near that limit is not to be trusted.
MAX_SKEW = datetime.timedelta(minutes=5)


class SkewError(Exception):
    """The local clock is too far from AWS's to compare times other machines wrote."""


class AccountClock:
    """``now()`` from the last AWS answer's ``Date`` plus the (monotonic) time since; the local
    clock where no answer had one. ``watch(client)`` hooks a boto3 client's answers."""

    def __init__(self, local=None, monotonic=time.monotonic):
        self.local = local or (lambda: datetime.datetime.now(tz=tzutc()))
        self.monotonic = monotonic
        self.seen = None  # (AWS's time, monotonic time when it was read, local time then)

    def watch(self, client):
        client.meta.events.register("after-call", self.observe)
        return client

    def observe(self, http_response=None, **kwargs):
        value = getattr(http_response, "headers", {}).get("Date") if http_response else None
        if not value:
            return
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return
        if when.tzinfo is None:
            when = when.replace(tzinfo=tzutc())
        self.seen = (when.astimezone(tzutc()), self.monotonic(), self.local())

    @property
    def source(self):
        return "AWS (the Date of its answers)" if self.seen else "the local clock (no Date seen)"

    def skew(self):
        """The local clock minus AWS's, at the last answer; None without one."""
        if self.seen is None:
            return None
        aws, _, local = self.seen
        return local - aws

    def check(self):
        """Raise ``SkewError`` when the local clock is further than ``MAX_SKEW`` from AWS's."""
        skew = self.skew()
        if skew is not None and abs(skew) > MAX_SKEW:
            raise SkewError(
                "the local clock is %+d seconds from AWS's (the Date of its answers: %s); "
                "refusing to act on time gates beyond %d seconds of difference: set the clock "
                "right (NTP)" % (skew.total_seconds(), self.seen[0].isoformat(),
                                 MAX_SKEW.total_seconds()))

    def now(self):
        if self.seen is None:
            return self.local()
        aws, at, _ = self.seen
        # A Date has whole seconds: AWS's time is at least this, never a second in the future.
        return aws + datetime.timedelta(seconds=max(0.0, self.monotonic() - at))

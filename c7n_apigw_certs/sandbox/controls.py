"""What the sandbox lets a test or a demo control that AWS does not: a clock, faults, a
throttle, call counters, and switches for the behaviours no source settles.

One ``Controls`` object serves a process: the in-process mock and the HTTP server read the same
one, and the server exposes it under ``/_sandbox/`` (see ``server.py``).
"""
import collections
import datetime
import threading
import time

from .certificates import DEFAULT_QUOTA


class Clock:
    """The sandbox's "now": real UTC time plus an offset that tests move forward.

    freezegun and time-machine do not reach a server in another process (fact 22), so the
    server keeps a clock of its own, reachable over HTTP.
    """

    def __init__(self):
        self.offset = datetime.timedelta(0)

    def now(self):
        return datetime.datetime.now(datetime.timezone.utc) + self.offset

    def set(self, when):
        self.offset = when - datetime.datetime.now(datetime.timezone.utc)

    def advance(self, **delta):
        self.offset += datetime.timedelta(**delta)

    def reset(self):
        self.offset = datetime.timedelta(0)


class Throttle:
    """A token bucket per account, as API Gateway's "Total operations" quota: 10 requests per
    second with a burst of 40 in real accounts (fact 13). Off until ``configure()``."""

    def __init__(self):
        self.rate = None
        self.burst = None
        self._buckets = {}
        self._lock = threading.Lock()

    def configure(self, rate=None, burst=None):
        with self._lock:
            self.rate, self.burst = rate, burst if burst is not None else rate
            self._buckets.clear()

    def allow(self, account):
        """Take one token for the account; False when the bucket is empty."""
        with self._lock:
            if not self.rate:
                return True
            now = time.monotonic()
            tokens, last = self._buckets.get(account, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[account] = (tokens, now)
                return False
            self._buckets[account] = (tokens - 1, now)
            return True


class Faults:
    """Failures armed for a named operation, optionally aimed at one resource.

    A fault is a dict: ``operation`` (required, e.g. ``UpdateStage``), ``service``
    (``apigateway``, ``apigatewayv2``, ``ssm``, ``s3``...; any when absent), ``target`` (a string
    or list of strings that must all appear among the request's resource ids: API id, stage name,
    certificate id, parameter name, bucket, key), ``count`` (how many requests fail; default 1,
    ``-1`` for every one), ``code``, ``status`` and ``message`` of the error. The default error is
    a ``BadRequestException`` (400), which no SDK retries, so a fault is seen by the caller.
    """

    DEFAULTS = {"count": 1, "code": "BadRequestException", "status": 400,
                "message": "Fault injected by the c7n-apigw-certs sandbox"}

    def __init__(self):
        self._armed = []
        self._lock = threading.Lock()

    def add(self, fault):
        if not fault.get("operation"):
            raise ValueError("a fault needs an operation")
        entry = dict(self.DEFAULTS, **fault)
        if isinstance(entry.get("target"), str):
            entry["target"] = [entry["target"]]
        with self._lock:
            self._armed.append(entry)
        return entry

    def list(self):
        with self._lock:
            return [dict(f) for f in self._armed]

    def clear(self):
        with self._lock:
            self._armed.clear()

    def take(self, service, operation, resource_ids):
        """The fault this request triggers, if any, spending one of its shots."""
        with self._lock:
            for fault in self._armed:
                if fault["operation"] != operation:
                    continue
                if fault.get("service") not in (None, service):
                    continue
                if not set(fault.get("target") or ()) <= resource_ids:
                    continue
                if fault["count"] > 0:
                    fault["count"] -= 1
                    if fault["count"] == 0:
                        self._armed.remove(fault)
                return fault
        return None


class Counters:
    """Calls per account, region, service and operation, and how many of them were refused."""

    def __init__(self):
        self._calls = collections.Counter()
        self._lock = threading.Lock()

    def add(self, account, region, service, operation, outcome="ok"):
        with self._lock:
            self._calls[(account, region, service, operation, outcome)] += 1

    def rows(self):
        with self._lock:
            items = sorted(self._calls.items())
        return [
            {"account": a, "region": r, "service": s, "operation": o, "outcome": oc, "calls": n}
            for (a, r, s, o, oc), n in items
        ]

    def total(self, service=None, operation=None, outcome=None):
        return sum(
            row["calls"] for row in self.rows()
            if service in (None, row["service"]) and operation in (None, row["operation"])
            and outcome in (None, row["outcome"])
        )

    def reset(self):
        with self._lock:
            self._calls.clear()


class Switches:
    """Behaviours that no source settles (aws-facts.md, facts 7 and 11), and the quota.

    - ``delete_in_use``: ``"allow"`` (default) deletes a certificate that a stage still
      references, as the API documentation implies by listing no in-use check (fact 7);
      ``"refuse"`` answers ``BadRequestException`` instead. Our code must be safe under both.
    - ``needs_deployment``: when true, a stage keeps *presenting* its previous certificate
      until the stage is redeployed (fact 11). What a stage presents is readable at
      ``/_sandbox/presented``; the API itself only shows the configured id, as in AWS.
    - ``quota``: client certificates per account and region (fact 5: 60).
    """

    def __init__(self):
        self.reset()

    def reset(self):
        self.delete_in_use = "allow"
        self.needs_deployment = False
        self.quota = DEFAULT_QUOTA

    def as_dict(self):
        return {"delete_in_use": self.delete_in_use,
                "needs_deployment": self.needs_deployment, "quota": self.quota}

    def update(self, values):
        for key, value in values.items():
            if key not in self.as_dict():
                raise ValueError("unknown switch: %s" % key)
            setattr(self, key, value)


class Controls:
    def __init__(self):
        self.clock = Clock()
        self.throttle = Throttle()
        self.faults = Faults()
        self.counters = Counters()
        self.switches = Switches()

    def reset(self):
        self.clock.reset()
        self.throttle.configure(None)
        self.faults.clear()
        self.counters.reset()
        self.switches.reset()


CONTROLS = Controls()

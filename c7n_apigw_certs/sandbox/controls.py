"""What the sandbox lets a test or a demo control that AWS does not: a clock, faults, a
throttle, the CreateDeployment rate, call counters, and switches for the behaviours no source
settles.

One ``Controls`` object serves a process: the in-process mock and the HTTP server read the same
one, and the server exposes it under ``/_sandbox/`` (see ``server.py``).
"""
import collections
import datetime
import threading
import time

# Standard library only: the package imports this module, and timeshift.py runs the package
# before every shifted command.
DEFAULT_QUOTA = 60  # client certificates per account and region (fact 5)
DEFAULT_DEPLOY_INTERVAL = 5.0
DEFAULT_ACCOUNT = "123456789012"
# What the sandbox's Config can record (config.py).
CONFIG_TYPES = ("AWS::ApiGateway::RestApi", "AWS::ApiGateway::Stage", "AWS::ApiGatewayV2::Api",
                "AWS::ApiGatewayV2::Stage")
# Which types Config's PutEvaluations accepts (config.py, switch config_evaluation_types).
EVALUATION_TYPES = ("recorded", "any")


class Clock:
    """The sandbox's "now": real UTC time plus an offset that tests move forward, or, once
    ``set(when, tick=False)``, a fixed instant that only ``advance()`` moves.

    freezegun and time-machine do not reach a server in another process (docs/aws-behaviour.md,
    fact 22), so the server keeps a clock of its own, reachable over HTTP. A fixed instant lets a
    test create certificates and run ``custodian`` (frozen at the same instant) with no
    wall-clock time between them.
    """

    def __init__(self):
        self.advanced = 0.0
        self.reset()

    def now(self):
        if self.frozen is not None:
            return self.frozen
        return datetime.datetime.now(datetime.timezone.utc) + self.offset

    def set(self, when, tick=True):
        if tick:
            self.frozen = None
            self.offset = when - datetime.datetime.now(datetime.timezone.utc)
        else:
            self.frozen, self.offset = when, datetime.timedelta(0)

    def advance(self, **delta):
        delta = datetime.timedelta(**delta)
        if self.frozen is not None:
            self.frozen += delta
        else:
            self.offset += delta
        self.advanced += max(0.0, delta.total_seconds())

    def seconds(self):
        """The rates' clock (throttle, CreateDeployment): real monotonic seconds plus every
        forward ``advance()``. It never runs backwards, not even when "now" is set back or
        reset, so a window is never stretched. A command whose waits advance the sandbox instead
        of sleeping (``timeshift --sandbox-sleep``) finds the rates as a real wait leaves them."""
        return time.monotonic() + self.advanced

    def reset(self):
        self.offset = datetime.timedelta(0)
        self.frozen = None

    @property
    def ticking(self):
        return self.frozen is None


class Throttle:
    """A token bucket per account, as API Gateway's "Total operations" quota: 10 requests per
    second with a burst of 40 in real accounts (docs/aws-behaviour.md, fact 13). Off until
    ``configure()``. ``clock`` (seconds, monotonic; the sandbox's is ``Clock.seconds``) is
    injectable so that the bucket's arithmetic can be tested without the wall clock."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
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
            now = self.clock()
            tokens, last = self._buckets.get(account, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[account] = (tokens, now)
                return False
            self._buckets[account] = (tokens - 1, now)
            return True


class DeployRate:
    """API Gateway's ``CreateDeployment`` quota: "1 request every 5 seconds per account", not
    adjustable (docs/aws-behaviour.md, fact 24; "Amazon API Gateway quotas"). A deployment is
    accepted when the account's previous accepted one is at least ``interval`` seconds old; a
    refused one does not move the window. REST and WebSocket deployments share the account's
    window. The interval is the switch ``deploy_interval`` (``Switches``; 0 turns it off).
    ``clock`` (seconds, monotonic; the sandbox's is ``Clock.seconds``, as the throttle's) is
    injectable for tests."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._last = {}
        self._lock = threading.Lock()

    def allow(self, account, interval):
        with self._lock:
            if not interval:
                return True
            now = self.clock()
            last = self._last.get(account)
            if last is not None and now - last < interval:
                return False
            self._last[account] = now
            return True

    def reset(self):
        with self._lock:
            self._last.clear()


class Faults:
    """Failures armed for a named operation, optionally aimed at one resource.

    A fault is a dict: ``operation`` (required, e.g. ``UpdateStage``), ``service``
    (``apigateway``, ``apigatewayv2``, ``ssm``, ``s3``...; any when absent), ``target`` (a string
    or list of strings that must all appear among the request's resource ids: API id, stage name,
    certificate id, parameter name, bucket, key; the parts of an ARN in the request count too),
    ``after`` (how many matching requests pass before it fires; default 0), ``count`` (how many
    requests fail; default 1, ``-1`` for every one), and what happens to the request:

    - by default an error: ``code``, ``status`` and ``message``; the default is a
      ``BadRequestException`` (400), which no SDK retries, so a fault is seen by the caller;
    - ``"reset": true``: the connection is closed with no response at all (over HTTP the socket
      is shut down; in process botocore's ``ConnectionClosedError`` is raised), so the SDK raises
      a ``BotoCoreError`` (``ConnectionClosedError``), which it retries unless told not to;
    - ``"hold": true``: the request is answered as usual, but applied only when the sandbox's
      clock is next advanced (``POST /_sandbox/clock`` ``advance_seconds``, as a command run
      with ``timeshift --sandbox-sleep`` does when it sleeps), or after ``HOLD_TIMEOUT`` real
      seconds: a write that lands late, as one from a caller stalled between its read and its
      write. The advance answers once every held request has been applied, so a caller that
      sleeps, then reads, sees it;
    - ``"drop": true``: success is answered but the request is not applied, a lost write.
      Only for writes whose success answer the sandbox can forge: SSM ``PutParameter``
      (``{"Version": current + 1, "Tier": ...}``) and S3 ``PutObject`` (200 with the ``ETag`` of
      the body sent). A read-back shows the old content.

    Every fired fault is counted with outcome ``fault``. A key not named here is refused, so a
    misspelt fault cannot silently do nothing.
    """

    DEFAULTS = {"count": 1, "after": 0, "code": "BadRequestException", "status": 400,
                "message": "Fault injected by the c7n-apigw-certs sandbox"}
    KEYS = {"operation", "service", "target", "count", "after", "code", "status", "message",
            "reset", "drop", "hold"}
    HOLD_TIMEOUT = 120.0
    DROPPABLE = {("ssm", "PutParameter"), ("s3", "PutObject")}

    def __init__(self):
        self._armed = []
        self._held = []
        self._lock = threading.Lock()
        self._local = threading.local()

    def hold(self):
        """Called for a request a ``hold`` fault fired on: wait until released, then let it
        through; ``applied()`` (once it has been) tells the release."""
        entry = {"release": threading.Event(), "done": threading.Event()}
        with self._lock:
            self._held.append(entry)
        entry["release"].wait(self.HOLD_TIMEOUT)
        self._local.entry = entry

    def applied(self):
        """The request of this thread has been answered: a held one is applied now."""
        entry = getattr(self._local, "entry", None)
        if entry is not None:
            self._local.entry = None
            entry["done"].set()

    def release(self):
        """Let every held request through and wait until each is applied; how many."""
        with self._lock:
            held, self._held = self._held, []
        for entry in held:
            entry["release"].set()
        for entry in held:
            entry["done"].wait(self.HOLD_TIMEOUT)
        return len(held)

    def held(self):
        with self._lock:
            return len(self._held)

    def add(self, fault):
        if not fault.get("operation"):
            raise ValueError("a fault needs an operation")
        unknown = set(fault) - self.KEYS
        if unknown:
            raise ValueError("unknown fault key(s): %s; known: %s" % (
                ", ".join(sorted(unknown)), ", ".join(sorted(self.KEYS))))
        for key in ("count", "after", "status"):
            if key in fault and (not isinstance(fault[key], int) or isinstance(fault[key], bool)):
                raise ValueError("%s: a whole number, not %r" % (key, fault[key]))
        if sum(bool(fault.get(k)) for k in ("reset", "drop", "hold")) > 1:
            raise ValueError("a fault is one of reset, drop or hold, not several")
        if fault.get("drop") and not any(
                op == fault["operation"] and fault.get("service") in (None, service)
                for service, op in self.DROPPABLE):
            raise ValueError("drop is supported for %s only" % ", ".join(
                "%s %s" % pair for pair in sorted(self.DROPPABLE)))
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
        self.release()

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
                if fault["after"] > 0:
                    fault["after"] -= 1
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
    """Behaviours that no source settles (docs/aws-behaviour.md, facts 7 and 11), and limits.

    - ``delete_in_use``: ``"allow"`` (default) deletes a certificate that a stage still
      references, as the API documentation implies by listing no in-use check (fact 7);
      ``"refuse"`` answers ``BadRequestException`` instead. Our code must be safe under both.
    - ``needs_deployment``: when true, a stage keeps *presenting* its previous certificate
      until the stage is redeployed (fact 11). What a stage presents is readable at
      ``/_sandbox/presented``; the API itself only shows the configured id, as in AWS. It holds
      for REST and WebSocket stages alike.
    - ``quota``: client certificates per account and region (fact 5: 60).
    - ``deploy_interval``: seconds between two accepted ``CreateDeployment`` calls of an
      account, REST or WebSocket (fact 24: 5, as AWS, the default); 0 turns the limit off.
      Past it, ``TooManyRequestsException`` (429). See ``DeployRate``.
    - ``config_delay``: seconds, on the sandbox clock, between a change and the moment AWS
      Config records it and answers it in queries (fact 26: Config records asynchronously);
      0 by default. See ``config.py``.
    - ``config_types``: the resource types Config's recorder records (its recording group),
      by default the four API Gateway types the plugin reads; a type left out is never
      answered in queries ("resources that are not configured to be recorded", fact 88).
    - ``config_evaluation_types``: which ``ComplianceResourceType`` AWS Config's
      ``PutEvaluations`` accepts, a question the sources disagree on (docs/aws-behaviour.md,
      fact 135): ``"recorded"`` (the default) only the types AWS Config records (botocore's
      ``config`` model, its ``ResourceType`` enum), refusing any other with AWS's
      ``InvalidParameterValueException``; ``"any"`` every type, as c7n's ``config-poll-rule``
      docstring says ("any resource which has a cloudformation type"). See ``config.py``.
    - ``config_v2_api_id``: whether a recorded WebSocket stage names its API in
      ``configuration.apiId`` and a relationship (true, the default, fact 26) or only in its
      ARN (false: AWS Config's published schema lists no ``apiId``, fact 80). Both are tested.
    - ``date_skew``: seconds added to the sandbox's clock in the ``Date`` header of every
      answer over HTTP (fact 125), to stand for a caller whose clock is off; 0 by default.
    - ``date_header``: whether answers carry a ``Date`` at all (true, as AWS's do); false
      stands for a proxy or mock that drops it. Both are tested.
    - ``websocket_acm``: whether a WebSocket stage takes an ACM certificate's ARN
      (``"accept"``) or refuses it (``"refuse"``, the default): no source settles it
      (fact 113). REST stages always take one that qualifies (fact 111).
    - ``acm_in_use_by``: whether ACM lists the stages that present a certificate in its
      ``InUseBy`` and so refuses to delete it (true), or neither (false, the default): fact 115.
    - ``acm_propagation_seconds``: how long, on the sandbox clock, a stage keeps presenting the
      version an ACM renewal or re-import replaced (0, the default: at once). API Gateway
      propagates renewals "without redeployment", in a time no source gives (fact 110).
    - ``trust_store_self_signed``: whether an ELB trust store refuses a CA bundle holding a
      certificate without the CA flag, as API Gateway's generated ones are (``"refuse"``, the
      default) or takes it (``"accept"``): no source settles it (fact 164).
    - ``trust_store_pending_describes``: how many ``DescribeTrustStores`` answer CREATING after
      a create or modify before ACTIVE (0, the default).
    """

    def __init__(self):
        self.reset()

    def reset(self):
        self.delete_in_use = "allow"
        self.needs_deployment = False
        self.quota = DEFAULT_QUOTA
        self.deploy_interval = DEFAULT_DEPLOY_INTERVAL
        self.config_delay = 0.0
        self.config_types = list(CONFIG_TYPES)
        self.config_v2_api_id = True
        self.config_evaluation_types = "recorded"
        self.date_skew = 0.0
        self.date_header = True
        self.websocket_acm = "refuse"
        self.acm_in_use_by = False
        self.acm_propagation_seconds = 0.0
        self.trust_store_self_signed = "refuse"
        self.trust_store_pending_describes = 0

    def as_dict(self):
        return {"delete_in_use": self.delete_in_use,
                "needs_deployment": self.needs_deployment, "quota": self.quota,
                "deploy_interval": self.deploy_interval, "config_delay": self.config_delay,
                "config_types": list(self.config_types),
                "config_v2_api_id": self.config_v2_api_id,
                "config_evaluation_types": self.config_evaluation_types,
                "date_skew": self.date_skew, "date_header": self.date_header,
                "websocket_acm": self.websocket_acm, "acm_in_use_by": self.acm_in_use_by,
                "acm_propagation_seconds": self.acm_propagation_seconds,
                "trust_store_self_signed": self.trust_store_self_signed,
                "trust_store_pending_describes": self.trust_store_pending_describes}

    def update(self, values):
        checked = {}
        for key, value in values.items():
            if key not in self.as_dict():
                raise ValueError("unknown switch: %s" % key)
            checked[key] = self._check(key, value)
        for key, value in checked.items():
            setattr(self, key, value)

    @staticmethod
    def _check(key, value):
        if key == "delete_in_use" and value not in ("allow", "refuse"):
            raise ValueError("delete_in_use: 'allow' or 'refuse', not %r" % (value,))
        if key == "config_evaluation_types" and value not in EVALUATION_TYPES:
            raise ValueError("config_evaluation_types: %s, not %r" % (
                " or ".join(repr(v) for v in EVALUATION_TYPES), value))
        if key in ("websocket_acm", "trust_store_self_signed") and value not in (
                "accept", "refuse"):
            raise ValueError("%s: 'accept' or 'refuse', not %r" % (key, value))
        if key in ("needs_deployment", "config_v2_api_id", "date_header", "acm_in_use_by") and \
                not isinstance(value, bool):
            raise ValueError("%s: true or false, not %r" % (key, value))
        if key == "config_types" and (not isinstance(value, list)
                                      or not set(value) <= set(CONFIG_TYPES)):
            raise ValueError("config_types: a list of %s, not %r" % (
                ", ".join(CONFIG_TYPES), value))
        if key in ("quota", "trust_store_pending_describes") and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValueError("%s: a whole number >= 0, not %r" % (key, value))
        if key == "date_skew":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError("date_skew: seconds, not %r" % (value,))
            value = float(value)
        if key in ("deploy_interval", "config_delay", "acm_propagation_seconds"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError("%s: seconds >= 0, not %r" % (key, value))
            value = float(value)
        return value


class Controls:
    def __init__(self):
        self.clock = Clock()
        self.throttle = Throttle(clock=self.clock.seconds)
        self.deploys = DeployRate(clock=self.clock.seconds)
        self.faults = Faults()
        self.counters = Counters()
        self.switches = Switches()

    def reset(self):
        self.clock.reset()
        self.throttle.configure(None)
        self.deploys.reset()
        self.faults.clear()
        self.counters.reset()
        self.switches.reset()


    # -- ACM and AWS Private CA (acm.py, acmpca.py), imported when first used -------------
    def create_private_ca(self, region, common_name, expires_in_days=3650, parent_arn=None,
                          account=DEFAULT_ACCOUNT):
        """An ACTIVE CA with a real certificate: ROOT without ``parent_arn``, else SUBORDINATE
        signed by the parent. ``{"arn", "certificate_pem", "chain_pem"}``."""
        from . import acmpca
        return acmpca.create_private_ca(region, common_name, expires_in_days, parent_arn,
                                        account)

    def age_private_ca(self, ca_arn, expires_in_days):
        """The CA's certificate re-issued (same key and subject) to end ``expires_in_days``
        after now; negative: EXPIRED."""
        from . import acmpca
        return acmpca.age_private_ca(ca_arn, expires_in_days)

    def create_acm_certificate(self, region, kind, expires_in_days, ca_arn=None,
                               domain="api.example.com", client_auth=True, key_type="RSA_2048",
                               renewal="eligible", account=DEFAULT_ACCOUNT, tags=None):
        """A certificate in ACM: ``kind`` "imported", "private" (issued by ``ca_arn``) or
        "public" (AMAZON_ISSUED, serverAuth only). ``{"arn": ...}``."""
        from . import acm
        return acm.create_acm_certificate(region, kind, expires_in_days, ca_arn, domain,
                                          client_auth, key_type, renewal, account, tags)

    def renew_acm_certificate(self, arn, expires_in_days=None):
        """Same ARN, new key, serial and notAfter (395 days for a private one); RenewalSummary
        SUCCESS. On an imported certificate: its owner re-importing a renewed one."""
        from . import acm
        return acm.renew(arn, expires_in_days)

    def fail_acm_renewal(self, arn, reason="PCA_ACCESS_DENIED"):
        """RenewalSummary FAILED with ``reason`` (an ACM FailureReason); nothing else moves."""
        from . import acm
        return acm.set_renewal(arn, "FAILED", reason)

    def pending_acm_renewal(self, arn):
        """RenewalSummary PENDING_AUTO_RENEWAL."""
        from . import acm
        return acm.set_renewal(arn, "PENDING_AUTO_RENEWAL")

    def revoke_acm_certificate(self, arn, reason="UNSPECIFIED"):
        """Status REVOKED."""
        from . import acm
        return acm.revoke(arn, reason)

    def private_key_pem(self, id_or_arn, region="us-east-1", account=DEFAULT_ACCOUNT):
        """The private key (PKCS#8 PEM) of any certificate the sandbox minted: an ACM ARN, a
        Private CA's ARN, or a generated client certificate's id in ``region``."""
        from . import acm, acmpca, apigateway
        return {"private_key_pem": (acm.private_key_pem(id_or_arn)
                                    or acmpca.private_key_pem(id_or_arn)
                                    or apigateway.private_key_pem(account, region, id_or_arn))}

    def trust_store_bundle(self, arn):
        """The PEM text an ELB trust store verifies against now (``elb.py``), or None."""
        from . import elb
        return {"bundle": elb.trust_store_bundle(arn)}

    def presented(self, region, protocol, api_id, stage, account=DEFAULT_ACCOUNT):
        """What a REST or WebSocket stage (``protocol`` "REST", "WEBSOCKET" or None to find
        out) is configured with and presents now, with the PEM and chain presented."""
        from . import apigateway
        return apigateway.presented(account, region, api_id, stage, protocol)


CONTROLS = Controls()

"""Drive a running sandbox from another process (tests, the demo, benchmarks). Stdlib only."""
import json
import urllib.parse
import urllib.error
import urllib.request

DUMMY_KEY = "testing"
# A request with this header set to "1" is set-up (seeding), exempt from the CreateDeployment
# rate: see gate.py.
SETUP_HEADER = "X-C7n-Sandbox-Setup"
# The tags CloudFormation puts on what a stack creates (docs/aws-behaviour.md, fact 29).
STACK_NAME_TAG = "aws:cloudformation:stack-name"
LOGICAL_ID_TAG = "aws:cloudformation:logical-id"
STACK_ID_TAG = "aws:cloudformation:stack-id"


def stack_tags(stack_id, logical_id):
    """The three tags CloudFormation puts on a resource of the stack ``stack_id``
    (``arn:aws:cloudformation:<region>:<account>:stack/<name>/<uuid>``), e.g. for a resource
    that the sandbox's CloudFormation cannot create (see ``cloudformation.py``)."""
    return {STACK_NAME_TAG: stack_id.split(":", 5)[5].split("/")[1],
            LOGICAL_ID_TAG: logical_id, STACK_ID_TAG: stack_id}


def environment(endpoint, region="us-east-1"):
    """The variables that point boto3, ``custodian`` and ``c7n-org`` at the sandbox.

    The global ``AWS_ENDPOINT_URL`` (not only API Gateway's) keeps c7n's STS call from
    reaching real AWS (fact 22).
    """
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": DUMMY_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }


class SandboxError(Exception):
    """A control request the sandbox refused; the message holds its answer."""


class SandboxClient:
    def __init__(self, endpoint):
        self.endpoint = endpoint.rstrip("/")

    def _call(self, method, name, body=None, query=None):
        url = "%s/_sandbox/%s" % (self.endpoint, name)
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body or {}).encode() if method != "GET" else None
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            raise SandboxError("%s %s: %s %s" % (method, name, e.code, e.read().decode())) from e

    def now(self):
        return self._call("GET", "clock")["now"]

    def set_now(self, iso, tick=True):
        """Move "now" to ``iso``; with ``tick=False`` it stays there until moved again."""
        return self._call("POST", "clock", {"now": iso, "tick": tick})["now"]

    def advance(self, days=0, seconds=0):
        return self._call("POST", "clock", {"advance_seconds": days * 86400 + seconds})["now"]

    def reset_clock(self):
        return self._call("POST", "clock", {})["now"]

    def add_fault(self, operation, **fault):
        """Arm a fault: ``service``, ``target``, ``after``, ``count``, and ``code``/``status``/
        ``message``, or ``reset=True``, or ``drop=True`` (see ``controls.Faults``)."""
        return self._call("POST", "faults", dict(fault, operation=operation))

    def reset_connection(self, operation, **fault):
        """Arm a fault that closes the connection unanswered (see ``controls.Faults``)."""
        return self.add_fault(operation, reset=True, **fault)

    def drop_write(self, operation, **fault):
        """Arm a lost write: success answered, nothing applied (SSM PutParameter, S3
        PutObject)."""
        return self.add_fault(operation, drop=True, **fault)

    def held(self):
        """How many requests a ``hold`` fault keeps until the clock next moves."""
        return self._call("GET", "held")["held"]

    def clear_faults(self):
        return self._call("DELETE", "faults")

    def throttle(self, rate=None, burst=None):
        return self._call("POST", "throttle", {"rate": rate, "burst": burst})

    def counters(self):
        return self._call("GET", "counters")["counters"]

    def reset_counters(self):
        return self._call("DELETE", "counters")

    def switches(self, **values):
        return self._call("POST" if values else "GET", "switches", values)

    def deploy_interval(self, seconds):
        """Seconds between two accepted CreateDeployment calls of an account (5 as AWS; 0:
        no limit)."""
        return self.switches(deploy_interval=seconds)

    def tag(self, arn, tags, account="123456789012", region=None):
        """Put tags on a certificate, REST API or stage, or WebSocket API or stage, ``aws:``
        keys included, as CloudFormation does (callers are refused those: fact 35)."""
        body = {"account": account, "arn": arn, "tags": tags}
        if region:
            body["region"] = region
        return self._call("POST", "tags", body)["tags"]

    def tag_as_stack(self, arn, stack_id, logical_id, account="123456789012", region=None):
        """Tag a resource exactly as CloudFormation tags what the stack ``stack_id`` creates
        (``stack_tags``); returns the resource's tags."""
        return self.tag(arn, stack_tags(stack_id, logical_id), account, region)

    def create_certificate(self, **spec):
        """See ``server.seed_certificate`` for the keys."""
        return self._call("POST", "certificates", spec)

    def presented(self, account, region, api, stage):
        """{"configured": id, "presented": id} of a REST or WebSocket stage."""
        return self._call("GET", "presented", query={
            "account": account, "region": region, "api": api, "stage": stage})

    def presented_certificate(self, account, region, api, stage, protocol=None):
        """What a stage presents now, for a TLS probe: {"configured", "presented",
        "certificate_id_or_arn", "certificate_pem", "chain_pem", "private_key_pem"} (an ACM
        certificate's version and chain, the switch ``acm_propagation_seconds``; a generated
        certificate's PEM and an empty chain). ``protocol``
        "REST" or "WEBSOCKET" if the id could be either."""
        query = {"account": account, "region": region, "api": api, "stage": stage, "pems": "1"}
        if protocol:
            query["protocol"] = protocol
        return self._call("GET", "presented", query=query)

    # -- ACM and AWS Private CA: the arguments of ``controls.Controls``' methods -------------
    def create_private_ca(self, region, common_name, expires_in_days=3650, parent_arn=None,
                          account="123456789012"):
        """{"arn", "certificate_pem", "chain_pem"}: ROOT, or SUBORDINATE of ``parent_arn``."""
        return self._call("POST", "private-ca", {
            "region": region, "common_name": common_name, "expires_in_days": expires_in_days,
            "parent_arn": parent_arn, "account": account})

    def age_private_ca(self, ca_arn, expires_in_days):
        return self._call("POST", "private-ca-age", {"ca_arn": ca_arn,
                                                     "expires_in_days": expires_in_days})

    def create_acm_certificate(self, region, kind, expires_in_days, **options):
        """{"arn"}: ``kind`` "imported", "private" (``ca_arn=``) or "public"; options
        ``ca_arn``, ``domain``, ``client_auth``, ``key_type``, ``renewal``, ``account``,
        ``tags``."""
        return self._call("POST", "acm-certificates", dict(
            options, region=region, kind=kind, expires_in_days=expires_in_days))

    def renew_acm_certificate(self, arn, expires_in_days=None):
        return self._call("POST", "acm-renew", {"arn": arn, "expires_in_days": expires_in_days})

    def fail_acm_renewal(self, arn, reason="PCA_ACCESS_DENIED"):
        return self._call("POST", "acm-fail-renewal", {"arn": arn, "reason": reason})

    def pending_acm_renewal(self, arn):
        return self._call("POST", "acm-pending-renewal", {"arn": arn})

    def revoke_acm_certificate(self, arn, reason="UNSPECIFIED"):
        return self._call("POST", "acm-revoke", {"arn": arn, "reason": reason})

    def trust_store_bundle(self, arn):
        """The PEM text an ELB trust store verifies against now (as last loaded from S3), or
        None for an unknown trust store."""
        return self._call("POST", "trust-store-bundle", {"arn": arn})["bundle"]

    def private_key_pem(self, id_or_arn, region="us-east-1", account="123456789012"):
        """The private key of an ACM certificate, a CA, or a generated certificate (PEM)."""
        return self._call("POST", "private-key", {
            "id_or_arn": id_or_arn, "region": region, "account": account})["private_key_pem"]

    def config_event(self, rule, message_type="ScheduledNotification", account="123456789012",
                     region="us-east-1", **resource):
        """The event AWS Config sends a custom rule's function (``resource_type`` and
        ``resource_id`` for a ``ConfigurationItemChangeNotification``)."""
        return self._call("POST", "config-event", dict(
            rule=rule, message_type=message_type, account=account, region=region, **resource))

    def reset(self):
        return self._call("POST", "reset")

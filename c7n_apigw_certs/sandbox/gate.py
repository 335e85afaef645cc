"""The door every request passes before moto answers it. In order:

1. IAM (``iam.py``): a caller with an assumed role's keys is refused (403/400, outcome
   ``denied``) what the role's policies do not allow.
2. The throttle (API Gateway, REST and WebSocket, per account): 429
   ``TooManyRequestsException``, outcome ``throttled`` (docs/aws-behaviour.md, fact 13).
3. The ``CreateDeployment`` rate (REST and WebSocket, per account, the switch
   ``deploy_interval``): 429 ``TooManyRequestsException``, outcome ``throttled`` (fact 24).
   API Gateway names its rate refusals so, "Too Many Requests" (fact 13; the code, status and
   message as reported in aws/aws-sdk-js#1014; a refused CreateDeployment in
   serverless-components/aws-api-gateway#8).
4. Armed faults (``controls.Faults``): an error, a reset connection, a dropped write, or a
   write held until the sandbox's clock next moves; outcome ``fault``.

Every request is counted, with its outcome (``ok`` when moto answers it).

Set-up calls: a request carrying the header ``X-C7n-Sandbox-Setup: 1`` builds the estate a test
starts from (``seed.py`` sends it while it creates stages, as a stack created long before the
run would have): it is exempt from the ``CreateDeployment`` rate and does not use up the
account's window. Nothing else about it differs.

The server calls ``gate()`` from its WSGI app, the in-process mock from moto's botocore
stubber (``install()``), so both behave alike.
"""
import functools
import hashlib
import json
import re
from urllib.parse import unquote

from botocore.exceptions import ConnectionClosedError, UnknownServiceError
from moto.core.botocore_stubber import BotocoreStubber
from moto.core.request import normalize_request
from moto.core.routing import get_service_router
from moto.iam.models import get_account_id_from
from moto.ssm.models import ssm_backends
from werkzeug.exceptions import NotFound

from . import iam
from .controls import CONTROLS
from .remote import SETUP_HEADER

# Credential=AKID/20261126/us-east-1/apigateway/aws4_request
_SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_THROTTLED = {"apigateway", "apigatewayv2"}
_XML_QUERY = {"sts", "iam", "ec2", "sqs", "elasticloadbalancing"}


class ConnectionReset(Exception):
    """A ``reset`` fault fired: the caller closes the connection without any answer."""


class Call:
    """A signed AWS request as the gate sees it."""

    def __init__(self, request, access_key, account, region, service, operation, params, body):
        self.request = request
        self.access_key, self.account, self.region = access_key, account, region
        self.service, self.operation = service, operation
        self.params, self.body = params, body
        self.setup = request.headers.get(SETUP_HEADER) == "1"

    @property
    def ids(self):
        """The request's resource ids, which a fault's ``target`` is matched against: the
        path's and body's strings, and the parts of an ARN among them (the certificate id of a
        TagResource, say)."""
        ids = {unquote(str(v)) for v in self.params.values() if isinstance(v, str)}
        ids.update(v for v in self.body.values() if isinstance(v, str))
        for value in list(ids):
            if value.startswith("arn:"):
                ids.update(p for p in re.split(r"[:/]", value.split("::", 1)[-1]) if p)
        return frozenset(ids)


# Services whose SigV4 signing name is not the name moto's router knows them by.
_ROUTER_NAMES = {"monitoring": "cloudwatch", "elasticloadbalancing": "elbv2"}


@functools.lru_cache(maxsize=None)
def _router(service):
    return get_service_router(_ROUTER_NAMES.get(service, service))


def describe(request):
    """The ``Call`` of a signed AWS request, or None for an unsigned one."""
    match = _SCOPE.search(request.headers.get("Authorization", ""))
    if not match:
        return None
    access_key, region, service = match.groups()
    if service == "apigateway" and request.path.startswith("/v2/"):
        service = "apigatewayv2"  # both sign as apigateway
    account = get_account_id_from(access_key)
    body = {}
    if request.content_type and "json" in request.content_type:
        try:
            body = json.loads(request.get_data(as_text=True) or "{}")
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
    try:
        operation, params = _router(service).match(request)
    except (NotFound, NotImplementedError, KeyError, UnknownServiceError):
        return Call(request, access_key, account, region, service, "Unknown", {}, body)
    return Call(request, access_key, account, region, service, operation.name, params, body)


def identify(request):
    """(account, region, service, operation, resource ids) of a signed AWS request."""
    call = describe(request)
    if call is None:
        return None
    return call.account, call.region, call.service, call.operation, call.ids


def error_response(service, code, status, message):
    """An error in the shape the service's SDK parses into the named exception class."""
    if service == "s3":
        body = "<Error><Code>%s</Code><Message>%s</Message></Error>" % (code, _xml(message))
        return status, {"Content-Type": "application/xml"}, body
    if service in _XML_QUERY:
        body = ("<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code>"
                "<Message>%s</Message></Error></ErrorResponse>" % (code, _xml(message)))
        return status, {"Content-Type": "text/xml"}, body
    # API Gateway names the error in x-amzn-ErrorType; JSON protocols in __type.
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code + ":"}
    return status, headers, json.dumps({"__type": code, "message": message})


def _xml(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _object_bytes(request):
    """The object a PutObject carries, undoing SigV4's ``aws-chunked`` framing if used."""
    raw = request.get_data()
    if "aws-chunked" not in request.headers.get("Content-Encoding", ""):
        return raw
    data, rest = b"", raw
    while rest:
        line, _, rest = rest.partition(b"\r\n")
        size = int(line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        data, rest = data + rest[:size], rest[size + 2:]
    return data


def dropped(call):
    """The success answer of a write that is not applied (a ``drop`` fault)."""
    if call.service == "s3":
        etag = '"%s"' % hashlib.md5(_object_bytes(call.request)).hexdigest()
        return 200, {"ETag": etag, "Content-Length": "0"}, ""
    # SSM PutParameter: the version the write would have made, and its tier.
    name = call.body.get("Name", "")
    parameters = ssm_backends[call.account][call.region]._parameters
    versions = parameters[name] if name in parameters else []
    current = versions[-1] if versions else None
    answer = {"Version": current.version + 1 if current else 1,
              "Tier": current.tier if current and current.tier == "Advanced" else "Standard"}
    return 200, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(answer)


def gate(request):
    """None to let moto answer, or the (status, headers, body) that answers instead. Raises
    ``ConnectionReset`` when the connection must close unanswered."""
    call = describe(request)
    if call is None:
        return None
    count = CONTROLS.counters.add
    who = (call.account, call.region, call.service, call.operation)
    refusal = iam.authorize(call)
    if refusal is not None:
        count(*who, "denied")
        return error_response(call.service, *refusal)
    if call.service in _THROTTLED and not CONTROLS.throttle.allow(call.account):
        count(*who, "throttled")
        return error_response(call.service, "TooManyRequestsException", 429, "Too Many Requests")
    if (call.service in _THROTTLED and call.operation == "CreateDeployment" and not call.setup
            and not CONTROLS.deploys.allow(call.account, CONTROLS.switches.deploy_interval)):
        count(*who, "throttled")
        return error_response(call.service, "TooManyRequestsException", 429, "Too Many Requests")
    fault = CONTROLS.faults.take(call.service, call.operation, call.ids)
    if fault:
        count(*who, "fault")
        if fault.get("reset"):
            raise ConnectionReset(call.operation)
        if fault.get("drop"):
            return dropped(call)
        if fault.get("hold"):  # applied late, once released (``Faults.hold``)
            CONTROLS.faults.hold()
            return None
        return error_response(call.service, fault["code"], fault["status"], fault["message"])
    count(*who)
    return None


@functools.cache  # once per process: every install patches moto in place
def install():
    """Put the gate in front of moto's in-process mock (``mock_aws``). Idempotent."""
    original = BotocoreStubber.process_request

    def process_request(self, request):
        if hasattr(request.body, "read"):  # a streamed body (S3 PutObject of a file): the gate
            request.body = request.body.read()  # and moto both read it, so keep its bytes
        try:
            refusal = gate(normalize_request(request))
        except ConnectionReset:
            raise ConnectionClosedError(endpoint_url=request.url) from None
        if refusal is not None:
            return refusal
        try:
            return original(self, request)
        finally:
            CONTROLS.faults.applied()

    BotocoreStubber.process_request = process_request

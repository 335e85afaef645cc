"""The door every request passes before moto answers it: it counts the call, throttles
API Gateway, and fires armed faults. The server calls ``gate()`` from its WSGI app, the
in-process mock from moto's botocore stubber (``install()``), so both behave alike.
"""
import functools
import json
import re
from urllib.parse import unquote

from moto.core.botocore_stubber import BotocoreStubber
from moto.core.request import normalize_request
from moto.core.routing import get_service_router
from moto.iam.models import get_account_id_from
from werkzeug.exceptions import NotFound

from .controls import CONTROLS

# Credential=AKID/20261126/us-east-1/apigateway/aws4_request
_SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_THROTTLED = {"apigateway", "apigatewayv2"}
_XML_QUERY = {"sts", "iam", "ec2", "sqs"}


@functools.lru_cache(maxsize=None)
def _router(service):
    return get_service_router(service)


def identify(request):
    """(account, region, service, operation, resource ids) of a signed AWS request."""
    match = _SCOPE.search(request.headers.get("Authorization", ""))
    if not match:
        return None
    access_key, region, service = match.groups()
    if service == "apigateway" and request.path.startswith("/v2/"):
        service = "apigatewayv2"  # both sign as apigateway
    try:
        operation, params = _router(service).match(request)
    except (NotFound, NotImplementedError, KeyError):
        return get_account_id_from(access_key), region, service, "Unknown", frozenset()
    ids = {unquote(str(v)) for v in params.values() if isinstance(v, str)}
    if request.content_type and "json" in request.content_type:
        try:
            body = json.loads(request.get_data(as_text=True) or "{}")
        except ValueError:
            body = {}
        if isinstance(body, dict):
            ids.update(v for v in body.values() if isinstance(v, str))
    return get_account_id_from(access_key), region, service, operation.name, frozenset(ids)


def error_response(service, code, status, message):
    """An error in the shape the service's SDK parses into the named exception class."""
    if service == "s3":
        body = "<Error><Code>%s</Code><Message>%s</Message></Error>" % (code, message)
        return status, {"Content-Type": "application/xml"}, body
    if service in _XML_QUERY:
        body = ("<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code>"
                "<Message>%s</Message></Error></ErrorResponse>" % (code, message))
        return status, {"Content-Type": "text/xml"}, body
    # API Gateway names the error in x-amzn-ErrorType; JSON protocols in __type.
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code + ":"}
    return status, headers, json.dumps({"__type": code, "message": message})


def gate(request):
    """None to let moto answer, or the (status, headers, body) that refuses the request."""
    who = identify(request)
    if who is None:
        return None
    account, region, service, operation, ids = who
    if service in _THROTTLED and not CONTROLS.throttle.allow(account):
        CONTROLS.counters.add(account, region, service, operation, "throttled")
        return error_response(service, "TooManyRequestsException", 429, "Too Many Requests")
    fault = CONTROLS.faults.take(service, operation, ids)
    if fault:
        CONTROLS.counters.add(account, region, service, operation, "fault")
        return error_response(service, fault["code"], fault["status"], fault["message"])
    CONTROLS.counters.add(account, region, service, operation)
    return None


_installed = False


def install():
    """Put the gate in front of moto's in-process mock (``mock_aws``). Idempotent."""
    global _installed
    if _installed:
        return
    _installed = True
    original = BotocoreStubber.process_request

    def process_request(self, request):
        refusal = gate(normalize_request(request))
        return refusal if refusal is not None else original(self, request)

    BotocoreStubber.process_request = process_request

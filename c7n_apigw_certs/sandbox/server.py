"""The sandbox over HTTP on loopback: moto's server behind the gate, plus ``/_sandbox/``
endpoints for the controls, so the real ``custodian`` and ``c7n-org`` reach it through
``AWS_ENDPOINT_URL`` exactly as they would reach AWS.

Control endpoints (JSON in, JSON out):

=====================================  =============================================================
``GET  /_sandbox/clock``               ``{"now": ISO-8601, "ticking": bool}``
``POST /_sandbox/clock``               ``{"now": ISO}`` (ticking from there), ``{"now": ISO,
                                       "tick": false}`` (fixed there until moved), or
                                       ``{"advance_seconds": N}``; ``{}``: real time again
``GET|POST|DELETE /_sandbox/faults``   list, arm one, clear all. A fault: ``operation``,
                                       ``service``, ``target``, ``after``, ``count``, and either
                                       an error (``code``, ``status``, ``message``),
                                       ``"reset": true`` (the connection closes unanswered) or
                                       ``"drop": true`` (success answered, write not applied:
                                       SSM PutParameter, S3 PutObject), ``"hold": true``
                                       (applied at the next clock advance). See
                                       ``controls.Faults``
``GET  /_sandbox/held``                ``{"held": N}``: requests a ``hold`` fault keeps
``POST /_sandbox/throttle``            ``{"rate": 10, "burst": 40}``; ``{}`` turns it off
``GET|DELETE /_sandbox/counters``      rows of calls per account/region/service/operation and
                                       outcome (``ok``, ``denied``, ``throttled``, ``fault``)
``GET|POST /_sandbox/switches``        ``delete_in_use``, ``needs_deployment``, ``quota``,
                                       ``deploy_interval`` (see ``controls.Switches``)
``POST /_sandbox/certificates``        create one as of a past moment (see ``seed_certificate``)
``POST /_sandbox/tags``                ``{"account", "region", "arn", "tags"}``: put tags on a
                                       certificate, REST API, REST stage, WebSocket API or stage
                                       without the callers' rules, ``aws:`` keys included (as
                                       CloudFormation does); answers ``{"arn", "tags"}``
``GET  /_sandbox/presented``           ``?account=&region=&api=&stage=``: what a REST or
                                       WebSocket stage is configured with and presents; with
                                       ``&pems=1`` also ``certificate_id_or_arn``,
                                       ``certificate_pem`` and ``chain_pem``
``POST /_sandbox/private-ca`` ...      ACM and Private CA controls: ``private-ca``,
                                       ``private-ca-age``, ``acm-certificates``, ``acm-renew``,
                                       ``acm-fail-renewal``, ``acm-pending-renewal``,
                                       ``acm-revoke``, ``private-key``, and
                                       ``trust-store-bundle`` (``{"arn"}``: the PEMs an ELB
                                       trust store verifies against): the body is the
                                       arguments of the ``Controls`` method (``ACM_CONTROLS``)
``POST /_sandbox/config-event``        ``{"account", "region", "rule", "message_type",
                                       "resource_type", "resource_id"}``: the event AWS Config
                                       sends a custom rule's function (see ``config.py``)
``POST /_sandbox/reset``               every control and all of moto's state back to new
=====================================  =============================================================

A ``reset`` fault shuts the connection down without a byte of response, so botocore raises
``ConnectionClosedError``.

Every answer's ``Date`` header is the sandbox's clock, as AWS dates its answers with its own
(docs/aws-behaviour.md, fact 125), moved by the switch ``date_skew`` (seconds), or left out
with ``date_header: false`` (``controls.Switches``).
"""
import datetime
import email.utils
import functools
import io
import json
import socket
import struct
import threading

import moto.backends
import moto.core.responses
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app)
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from moto.core.exceptions import JsonRESTError
from moto.core.request import Request

from . import apigateway, config
from .apigateway import create_certificate
from .certificates import CA_KEYS
from .controls import CONTROLS
from .gate import ConnectionReset, gate
from .tags import current_tags, parse, put_tags

CONTROL_PREFIX = "/_sandbox/"


def parse_time(value):
    when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def seed_certificate(spec):
    """Create a certificate from a control request: ``account``, ``region``, ``description``,
    ``tags``, and its age as ``created`` (ISO) or ``expires_in_days`` (negative: expired), and
    optionally ``not_after`` (ISO) for a PEM whose notAfter differs from expirationDate."""
    now = CONTROLS.clock.now()
    if "created" in spec:
        created = parse_time(spec["created"])
    else:
        created = now - datetime.timedelta(days=365 - float(spec.get("expires_in_days", 365)))
    not_after = parse_time(spec["not_after"]) if spec.get("not_after") else None
    return create_certificate(
        spec.get("account", "123456789012"), spec.get("region", "us-east-1"),
        spec.get("description", ""), spec.get("tags"), created, not_after)


def presented(query):
    """What a stage is configured with and presents (the switch ``needs_deployment``); with
    ``pems=1`` also the id or ARN, PEM and chain presented (``apigateway.presented``)."""
    found = apigateway.presented(query["account"], query["region"], query["api"],
                                 query["stage"], query.get("protocol"))
    if query.get("pems") == "1":
        return found
    return {"configured": found["configured"], "presented": found["presented"]}


# ``POST /_sandbox/<name>`` -> the ``Controls`` method it calls with the body as arguments.
ACM_CONTROLS = {
    "private-ca": "create_private_ca", "private-ca-age": "age_private_ca",
    "acm-certificates": "create_acm_certificate", "acm-renew": "renew_acm_certificate",
    "acm-fail-renewal": "fail_acm_renewal", "acm-pending-renewal": "pending_acm_renewal",
    "acm-revoke": "revoke_acm_certificate", "private-key": "private_key_pem",
    "trust-store-bundle": "trust_store_bundle",
}


def seed_tags(spec):
    """Put tags on a resource as CloudFormation would (``aws:`` keys allowed)."""
    account, arn = spec.get("account", "123456789012"), spec.get("arn")
    if not isinstance(arn, str) or not isinstance(spec.get("tags"), dict):
        raise ValueError("tags needs an arn and tags, an object of key to value")
    parsed = parse(arn)
    if parsed is None:
        raise ValueError("not the ARN of a certificate, REST API or stage, or v2 API or stage: "
                         + arn)
    if spec.get("region", parsed[1]) != parsed[1]:
        raise ValueError("region %s differs from the ARN's %s" % (spec["region"], parsed[1]))
    put_tags(account, arn, spec["tags"], caller=False)
    return {"arn": arn, "tags": current_tags(account, arn)}


def _control(method, name, body, query):
    if name == "clock":
        if method == "POST":
            if "now" in body:
                tick = body.get("tick", True)
                if not isinstance(tick, bool):
                    raise ValueError("tick: true or false, not %r" % (tick,))
                CONTROLS.clock.set(parse_time(body["now"]), tick=tick)
            elif "advance_seconds" in body:
                CONTROLS.clock.advance(seconds=float(body["advance_seconds"]))
                CONTROLS.faults.release()  # writes held until the clock moves land now
            else:
                CONTROLS.clock.reset()
        return {"now": CONTROLS.clock.now().isoformat(), "ticking": CONTROLS.clock.ticking}
    if name == "faults":
        if method == "POST":
            CONTROLS.faults.add(body)
        elif method == "DELETE":
            CONTROLS.faults.clear()
        return {"faults": CONTROLS.faults.list()}
    if name == "held":
        return {"held": CONTROLS.faults.held()}
    if name == "throttle":
        CONTROLS.throttle.configure(body.get("rate"), body.get("burst"))
        return {"rate": CONTROLS.throttle.rate, "burst": CONTROLS.throttle.burst}
    if name == "counters":
        if method == "DELETE":
            CONTROLS.counters.reset()
        return {"counters": CONTROLS.counters.rows()}
    if name == "switches":
        if method == "POST":
            CONTROLS.switches.update(body)
        return CONTROLS.switches.as_dict()
    if name == "certificates" and method == "POST":
        return seed_certificate(body).to_json()
    if name == "tags" and method == "POST":
        return seed_tags(body)
    if name == "presented":
        return presented(query)
    if name in ACM_CONTROLS and method == "POST":
        return getattr(CONTROLS, ACM_CONTROLS[name])(**body)
    if name == "config-event" and method == "POST":
        return config.rule_event(**body)
    if name == "reset" and method == "POST":
        CONTROLS.reset()
        moto_api_backend.reset()
        CA_KEYS.rewind()  # no CA is left: the next ones may take the keys again
        return {"reset": True}
    raise KeyError(name)


class SandboxApp:
    """WSGI: control endpoints, else the gate, else moto."""

    def __init__(self):
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.lock = threading.Lock()
        # moto's dispatcher lists its own package folder (an isdir for each of ~150 entries)
        # on every request, to tell a service name from a host; the folder does not change
        # while the server runs, so it is listed once. A fifth of the server's time went there.
        modules = tuple(moto.backends.list_of_moto_modules())
        moto.backends.list_of_moto_modules = lambda: modules
        # And each response lists its class's methods (inspect.getmembers) to find the action's:
        # the classes are complete before the server starts, so each is listed once.
        listed = moto.core.responses.method_names_from_class
        if not hasattr(listed, "cache_info"):
            moto.core.responses.method_names_from_class = functools.cache(listed)

    def control(self, environ, start_response):
        request = Request(environ)
        name = request.path[len(CONTROL_PREFIX):].strip("/")
        try:
            body = json.loads(request.get_data(as_text=True) or "{}")
            with self.lock:
                result = _control(request.method, name, body, request.args)
            response = Response(json.dumps(result, default=str), 200,
                                content_type="application/json")
        except KeyError as e:
            response = Response(json.dumps({"error": "unknown: %s" % e}), 404,
                                content_type="application/json")
        except (ValueError, TypeError) as e:
            response = Response(json.dumps({"error": str(e)}), 400,
                                content_type="application/json")
        except JsonRESTError as e:  # e.g. the quota, while seeding a certificate
            response = Response(json.dumps({"error": e.error_type, "message": e.message}),
                                e.code, content_type="application/json")
        return response(environ, start_response)

    @staticmethod
    def reset_connection(environ):
        """Close the client's connection without answering: shut the socket down, and make its
        final close a TCP reset (SO_LINGER 0)."""
        sock = environ["werkzeug.socket"]
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith(CONTROL_PREFIX):
            return self.control(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length or environ.get("wsgi.input_terminated"):
            raw = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
        else:
            raw = b""
        environ["wsgi.input"] = io.BytesIO(raw)
        try:
            refusal = gate(Request(dict(environ)))
        except ConnectionReset as e:
            self.reset_connection(environ)
            # werkzeug takes a ConnectionError as a connection the client dropped: no answer.
            raise ConnectionResetError("reset fault: %s" % e) from None
        environ["wsgi.input"] = io.BytesIO(raw)
        if refusal is not None:
            status, headers, body = refusal
            return Response(body, status, headers)(environ, start_response)
        try:
            return self.moto(environ, start_response)
        finally:
            CONTROLS.faults.applied()


class SandboxRequestHandler(MotoRequestHandler):
    """Dates every answer by the sandbox's clock (``Date``), not the machine's."""

    def date_time_string(self, timestamp=None):
        when = CONTROLS.clock.now() + datetime.timedelta(seconds=CONTROLS.switches.date_skew)
        return email.utils.format_datetime(when.astimezone(datetime.timezone.utc), usegmt=True)

    def send_header(self, keyword, value):
        if keyword.lower() == "date" and not CONTROLS.switches.date_header:
            return
        super().send_header(keyword, value)


class SandboxServer:
    """A threaded HTTP server on 127.0.0.1; port 0 picks a free one."""

    def __init__(self, port=0, host="127.0.0.1"):
        from . import install
        install()
        self.app = SandboxApp()
        self.server = make_server(host, port, self.app, threaded=True,
                                  request_handler=SandboxRequestHandler)
        self.thread = None

    @property
    def endpoint(self):
        host, port = self.server.server_address[:2]
        return "http://%s:%d" % (host, port)

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        if self.thread:
            self.thread.join()

"""The sandbox over HTTP on loopback: moto's server behind the gate, plus ``/_sandbox/``
endpoints for the controls, so the real ``custodian`` and ``c7n-org`` reach it through
``AWS_ENDPOINT_URL`` exactly as they would reach AWS.

Control endpoints (JSON in, JSON out):

=====================================  =============================================================
``GET  /_sandbox/clock``               ``{"now": ISO-8601}``
``POST /_sandbox/clock``               ``{"now": ISO}`` or ``{"advance_seconds": N}``; ``{}``: reset
``GET|POST|DELETE /_sandbox/faults``   list, arm one (see ``controls.Faults``), clear all
``POST /_sandbox/throttle``            ``{"rate": 10, "burst": 40}``; ``{}`` turns it off
``GET|DELETE /_sandbox/counters``      rows of calls per account/region/service/operation; reset
``GET|POST /_sandbox/switches``        ``delete_in_use``, ``needs_deployment``, ``quota``
``POST /_sandbox/certificates``        create one as of a past moment (see ``create_certificate``)
``GET  /_sandbox/presented``           ``?account=&region=&api=&stage=``: what a REST stage shows
``POST /_sandbox/reset``               every control and all of moto's state back to new
=====================================  =============================================================
"""
import datetime
import io
import json
import threading

from moto.apigateway.models import apigateway_backends
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app)
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from moto.core.exceptions import JsonRESTError
from moto.core.request import Request

from .apigateway import create_certificate
from .controls import CONTROLS
from .gate import gate

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
    api = apigateway_backends[query["account"]][query["region"]].get_rest_api(query["api"])
    stage = api.stages[query["stage"]]
    return {"configured": getattr(stage, "client_certificate_id", None),
            "presented": getattr(stage, "presented_certificate_id", None)}


def _control(method, name, body, query):
    if name == "clock":
        if method == "POST":
            if "now" in body:
                CONTROLS.clock.set(parse_time(body["now"]))
            elif "advance_seconds" in body:
                CONTROLS.clock.advance(seconds=float(body["advance_seconds"]))
            else:
                CONTROLS.clock.reset()
        return {"now": CONTROLS.clock.now().isoformat()}
    if name == "faults":
        if method == "POST":
            CONTROLS.faults.add(body)
        elif method == "DELETE":
            CONTROLS.faults.clear()
        return {"faults": CONTROLS.faults.list()}
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
    if name == "presented":
        return presented(query)
    if name == "reset" and method == "POST":
        CONTROLS.reset()
        moto_api_backend.reset()
        return {"reset": True}
    raise KeyError(name)


class SandboxApp:
    """WSGI: control endpoints, else the gate, else moto."""

    def __init__(self):
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.lock = threading.Lock()

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

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith(CONTROL_PREFIX):
            return self.control(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length or environ.get("wsgi.input_terminated"):
            raw = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
        else:
            raw = b""
        environ["wsgi.input"] = io.BytesIO(raw)
        refusal = gate(Request(dict(environ)))
        environ["wsgi.input"] = io.BytesIO(raw)
        if refusal is not None:
            status, headers, body = refusal
            return Response(body, status, headers)(environ, start_response)
        return self.moto(environ, start_response)


class SandboxServer:
    """A threaded HTTP server on 127.0.0.1; port 0 picks a free one."""

    def __init__(self, port=0, host="127.0.0.1"):
        from . import install
        install()
        self.app = SandboxApp()
        self.server = make_server(host, port, self.app, threaded=True,
                                  request_handler=MotoRequestHandler)
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

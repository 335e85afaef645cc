"""moto's API Gateway, extended with what it lacks (docs/aws-behaviour.md, fact 20).

- Client certificates: Generate, Get (one and all, paged), Update (/description), Delete, and
  tags on the certificate's ARN (fact 4).
- Tags (``tags.py``): GetTags, TagResource and UntagResource on certificates, REST APIs, REST
  stages, WebSocket APIs and WebSocket stages, with API Gateway's rules for callers (no
  ``aws:`` keys, at most 50 tags, key and value lengths: fact 35), also on
  ``GenerateClientCertificate``; moto tags only REST stages and v2 APIs.
- REST stages: ``clientCertificateId`` set and cleared with ``UpdateStage`` (fact 8), returned
  only when set, and kept across ``CreateDeployment`` of the stage (moto rebuilds the stage).
- ``GetRestApis`` and ``GetClientCertificates`` page with ``limit`` (default 25, maximum 500) and
  ``position`` (fact 6); moto ignores both for REST APIs.
- WebSocket stages (``apigatewayv2``): ``UpdateStage``, which moto lacks, for
  ``clientCertificateId`` (fact 10) and the other simple members; ``CreateDeployment``, which
  moto lacks too: with ``stageName`` it deploys that stage (its ``deploymentId`` changes).
- What a stage *presents* (``presented_certificate_id``, read at ``/_sandbox/presented``): the
  certificate of its last deployment under the switch ``needs_deployment``, else the
  configured one (fact 11), for REST and WebSocket stages alike. A stage presents what it is
  created with.
- ACM certificates on stages (facts 110-113): ``UpdateStage`` takes the ARN of an ACM
  certificate of the stage's account and region that is IMPORTED or PRIVATE with the clientAuth
  EKU, and refuses others with ``BadRequestException``; a WebSocket stage (``UpdateStage``,
  ``CreateStage``) only under the switch ``websocket_acm: accept``. ``GetClientCertificates``
  never lists ACM certificates. A stage that presents an ARN presents the certificate's
  *current* version (``presented``): a renewal or re-import reaches it with no redeploy.

``install()`` adds the routes to moto's own url tables, so both ``mock_aws`` (which reads them on
every request) and the server (which reads them when it builds a service's app, on its first
request: fact 22) see them. It must run before the server's first request.
"""
import functools
import json
from urllib.parse import unquote

from moto.apigateway import urls as v1_urls
from moto.apigateway.exceptions import BadRequestException, NotFoundException
from moto.apigateway.models import RestAPI, Stage, apigateway_backends
from moto.apigateway.responses import APIGatewayResponse
from moto.apigatewayv2 import urls as v2_urls
from moto.apigatewayv2.models import Stage as V2Stage
from moto.apigatewayv2.models import apigatewayv2_backends
from moto.apigatewayv2.responses import ApiGatewayV2Response

from . import acm
from .certificates import ClientCertificate, key_pem, new_certificate_id
from .controls import CONTROLS
from .tags import check_caller_tags, current_tags, parse, put_tags, remove_tags

DEFAULT_LIMIT = 25
MAX_LIMIT = 500


class LimitExceededException(BadRequestException):
    """API Gateway answers a full quota with LimitExceededException, HTTP 429 (fact 5)."""
    code = 429

    def __init__(self, message):
        super(BadRequestException, self).__init__("LimitExceededException", message)


class CertificateNotFound(NotFoundException):
    """API Gateway's NotFoundException is HTTP 404 (moto's defaults to 400)."""
    code = 404

    def __init__(self):
        super().__init__("Invalid Client Certificate identifier specified")


def certificates_of(account, region):
    """The certificates of one account and region, kept on moto's backend so that moto's own
    reset clears them too."""
    backend = apigateway_backends[account][region]
    if not hasattr(backend, "sandbox_certificates"):
        backend.sandbox_certificates = {}
    return backend.sandbox_certificates


def create_certificate(account, region, description="", tags=None, created=None, not_after=None):
    """Generate a certificate as of ``created`` (the sandbox clock's now by default).

    The quota (fact 5) applies here, so seeding cannot exceed what AWS allows either.
    """
    store = certificates_of(account, region)
    if len(store) >= CONTROLS.switches.quota:
        raise LimitExceededException(
            "Client certificate limit exceeded: %d of %d" % (len(store), CONTROLS.switches.quota))
    cert = ClientCertificate(
        new_certificate_id(store), description, created or CONTROLS.clock.now(), tags, not_after)
    store[cert.id] = cert
    return cert


def get_certificate(account, region, cert_id):
    cert = certificates_of(account, region).get(cert_id)
    if cert is None:
        raise CertificateNotFound()
    return cert


def check_stage_certificate(account, region, value, websocket=False):
    """Refuse what a stage cannot present: an unknown generated id, or an ACM ARN that does
    not qualify (fact 111); on a WebSocket stage any ACM ARN unless ``websocket_acm`` is
    "accept" (fact 113). Generated ids of WebSocket stages are not checked (as before)."""
    if acm.is_arn(value):
        if websocket and CONTROLS.switches.websocket_acm != "accept":
            raise BadRequestException(
                "ACM certificate ARNs are not supported for WebSocket API stages: %s" % value)
        refusal = acm.refusal_for_stage(value, account, region)
        if refusal:
            raise BadRequestException(refusal)
    elif not websocket:
        get_certificate(account, region, value)


def private_key_pem(account, region, cert_id):
    """The private key of a generated certificate (the sandbox keeps it: fact 2), or None."""
    cert = certificates_of(account, region).get(cert_id)
    return key_pem(cert.key) if cert is not None else None


def presented(account, region, api_id, stage_name, protocol=None):
    """What a stage is configured with and presents (the switch ``needs_deployment``), with
    the presented certificate's PEM, chain and private key: a generated certificate's own PEM
    (no chain), or an ACM certificate's version (``acm.presented_version``) and chain. A REST
    stage if ``api_id`` is a REST API's (or ``protocol`` says "REST"), else a WebSocket
    stage."""
    rest = apigateway_backends[account][region]
    if protocol != "WEBSOCKET" and api_id in rest.apis:
        stage = rest.get_stage(api_id, stage_name)
    else:
        stage = apigatewayv2_backends[account][region].get_stage(api_id, stage_name)
    shown = getattr(stage, "presented_certificate_id", None)
    pem = chain = key = None
    if acm.is_arn(shown):
        pem, chain, key = acm.presented_version(shown)
    elif shown:
        cert = certificates_of(account, region).get(shown)
        if cert is not None:
            pem, chain, key = cert.pem, "", key_pem(cert.key)
    return {"configured": getattr(stage, "client_certificate_id", None), "presented": shown,
            "certificate_id_or_arn": shown, "certificate_pem": pem, "chain_pem": chain,
            "private_key_pem": key}


def delete_certificate(account, region, cert_id):
    """Delete a certificate; under the switch ``delete_in_use: refuse``, not one that a stage
    references (fact 7). Callers: DeleteClientCertificate, and CloudFormation
    (``cloudformation.py``)."""
    cert = get_certificate(account, region, cert_id)
    users = stages_using(account, region, cert.id)
    if users and CONTROLS.switches.delete_in_use == "refuse":
        raise BadRequestException(
            "Client certificate %s is in use by %d stage(s)" % (cert.id, len(users)))
    del certificates_of(account, region)[cert.id]


def stages_using(account, region, cert_id):
    """(kind, api id, stage name) of every REST and WebSocket stage that references the id."""
    found = []
    for api in apigateway_backends[account][region].apis.values():
        for stage in api.stages.values():
            if getattr(stage, "client_certificate_id", None) == cert_id:
                found.append(("REST", api.id, stage.name))
    for api in apigatewayv2_backends[account][region].apis.values():
        for stage in api.stages.values():
            if stage.client_certificate_id == cert_id:
                found.append(("WEBSOCKET", api.api_id, stage.name))
    return found


def page(items, key, limit, position):
    """AWS's paging: ``limit`` items after ``position``; ``position`` is returned only when
    more remain. The token is the last returned id, so deleting earlier items cannot skip any.
    On the wire the list is ``item`` (botocore's model: ``items`` has locationName ``item``)."""
    limit = DEFAULT_LIMIT if limit in (None, "") else int(limit)
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequestException(
            "1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: "
            "Member must have value between 1 and %d" % (limit, MAX_LIMIT))
    ordered = sorted(items, key=key)
    if position:
        ordered = [i for i in ordered if key(i) > position]
    chunk = ordered[:limit]
    out = {"item": chunk}
    if len(ordered) > limit:
        out["position"] = key(chunk[-1])
    return out


def _json(status, data=None):
    """moto takes the status from the headers; the body is JSON, or empty as AWS sends it."""
    headers = {"status": status, "Content-Type": "application/json"}
    return status, headers, "" if data is None else json.dumps(data)


class TagCalls:
    """GetTags, TagResource and UntagResource, REST and WebSocket alike: the rules of fact 35
    for callers and the resources moto does not tag (``tags.py``), moto's own otherwise. Only
    TagResource's answer differs: 204 in v1, 201 with a body in v2 (the APIs' models)."""

    TAGGED = (204, None)

    def _tags_arn(self):
        return unquote(self.path.split("/tags/", 1)[1])

    def get_tags(self):
        if parse(self._tags_arn()) is None:
            return super().get_tags()
        return _json(200, {"tags": current_tags(self.current_account, self._tags_arn())})

    def tag_resource(self):
        if parse(self._tags_arn()) is None:
            return super().tag_resource()
        put_tags(self.current_account, self._tags_arn(), self._json_body().get("tags", {}))
        return _json(*self.TAGGED)

    def untag_resource(self):
        if parse(self._tags_arn()) is None:
            return super().untag_resource()
        remove_tags(self.current_account, self._tags_arn(), self.querystring.get("tagKeys", []))
        return _json(204)


class SandboxAPIGatewayResponse(TagCalls, APIGatewayResponse):

    def _query(self, name):
        return self.querystring.get(name, [None])[0]

    def _json_body(self):
        return json.loads(self.body) if self.body else {}

    def _certificate_id(self):
        return unquote(self.path).rstrip("/").split("/")[-1]

    # -- client certificates -------------------------------------------------------------
    def generate_client_certificate(self):
        body = self._json_body()
        check_caller_tags({}, body.get("tags"))
        cert = create_certificate(
            self.current_account, self.region, body.get("description", ""), body.get("tags"))
        return _json(201, cert.to_json())

    def get_client_certificates(self):
        store = certificates_of(self.current_account, self.region)
        result = page(
            store.values(), lambda c: c.id, self._query("limit"), self._query("position"))
        result["item"] = [c.to_json() for c in result["item"]]
        return _json(200, result)

    def get_client_certificate(self):
        cert = get_certificate(self.current_account, self.region, self._certificate_id())
        return _json(200, cert.to_json())

    def update_client_certificate(self):
        cert = get_certificate(self.current_account, self.region, self._certificate_id())
        for op in self._json_body().get("patchOperations", []):
            if op.get("op") == "replace" and op.get("path") == "/description":
                cert.description = op.get("value") or ""
            else:
                raise BadRequestException(
                    "Invalid patch path '%s' specified for op '%s'. Must be one of: "
                    "[/description]" % (op.get("path"), op.get("op")))
        return _json(200, cert.to_json())

    def delete_client_certificate(self):
        delete_certificate(self.current_account, self.region, self._certificate_id())
        return _json(202)

    # -- REST APIs and stages ----------------------------------------------------------
    def get_rest_apis(self):
        result = page(
            self.backend.list_apis(), lambda a: a.id, self._query("limit"), self._query("position"))
        result["item"] = [a.to_dict() for a in result["item"]]
        return json.dumps(result)

    def update_stage(self):
        """Takes ``/clientCertificateId`` out of the patch (moto drops it: fact 20), applies it,
        and passes the rest on to moto."""
        parts = self.path.split("/")
        api_id, stage_name = parts[2], unquote(parts[4])
        body = self._json_body()
        ours = [op for op in body.get("patchOperations", [])
                if op.get("path") == "/clientCertificateId"]
        rest = [op for op in body.get("patchOperations", []) if op not in ours]
        stage = self.backend.get_stage(api_id, stage_name)
        for op in ours:
            value = op.get("value") or None
            if op.get("op") not in ("replace", "remove"):
                raise BadRequestException(
                    "Invalid patch operation specified. Must be 'add'|'remove'|'replace'")
            if op["op"] == "remove":
                value = None
            if value is not None:
                check_stage_certificate(self.current_account, self.region, value)
            set_stage_certificate(stage, value)
        stage = self.backend.update_stage(api_id, stage_name, rest)
        stage.sandbox_updated = CONTROLS.clock.now()
        return json.dumps(stage.to_json())


def set_stage_certificate(stage, cert_id):
    """Configure a stage's certificate. Whether it is *presented* before a redeploy is not
    settled (fact 11): the ``needs_deployment`` switch picks the outcome."""
    stage.client_certificate_id = cert_id
    if not CONTROLS.switches.needs_deployment:
        stage.presented_certificate_id = cert_id


class SandboxApiGatewayV2Response(TagCalls, ApiGatewayV2Response):
    TAGGED = (201, {})

    UPDATABLE = {
        "clientCertificateId": "client_certificate_id",
        "description": "description",
        "stageVariables": "stage_variables",
        "defaultRouteSettings": "default_route_settings",
        "routeSettings": "route_settings",
        "accessLogSettings": "access_log_settings",
        "autoDeploy": "auto_deploy",
    }

    def update_stage(self):
        """``PATCH /v2/apis/{apiId}/stages/{stageName}``: moto 5.2.5 has no UpdateStage."""
        parts = self.path.split("/")
        api_id, stage_name = parts[3], unquote(parts[5])
        stage = self.apigatewayv2_backend.get_stage(api_id, stage_name)
        body = json.loads(self.body) if self.body else {}
        if body.get("clientCertificateId"):
            check_stage_certificate(self.current_account, self.region,
                                    body["clientCertificateId"], websocket=True)
        for member, attr in self.UPDATABLE.items():
            if member in body:
                setattr(stage, attr, body[member])
        if "clientCertificateId" in body and not CONTROLS.switches.needs_deployment:
            stage.presented_certificate_id = stage.client_certificate_id
        stage.updated = CONTROLS.clock.now().replace(tzinfo=None)
        return _json(200, stage.to_json())

    def create_stage(self):
        """moto's CreateStage, with an ACM ARN held to the switch ``websocket_acm``."""
        body = self._json_body()
        if body.get("clientCertificateId"):
            check_stage_certificate(self.current_account, self.region,
                                    body["clientCertificateId"], websocket=True)
        return super().create_stage()

    def create_deployment(self):
        """``POST /v2/apis/{apiId}/deployments``: moto 5.2.5 has none. With ``stageName`` it
        deploys that stage: the stage's ``deploymentId`` becomes the new one, and the stage
        presents its configured certificate (the switch ``needs_deployment``, fact 11)."""
        api_id = self.path.split("/")[3]
        body = json.loads(self.body) if self.body else {}
        self.apigatewayv2_backend.get_api(api_id)  # NotFound for an unknown API
        deployment_id = new_certificate_id(())
        if body.get("stageName"):
            stage = self.apigatewayv2_backend.get_stage(api_id, body["stageName"])
            stage.sandbox_deployment_id = deployment_id
            stage.presented_certificate_id = stage.client_certificate_id
        return _json(201, {"deploymentId": deployment_id, "deploymentStatus": "DEPLOYED",
                           "autoDeployed": False,
                           "createdDate": CONTROLS.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "description": body.get("description", "")})

    def _json_body(self):
        return json.loads(self.body) if self.body else {}


_V2_ROUTES = {
    "{0}/v2/apis/(?P<api_id>[^/]+)/deployments$": SandboxApiGatewayV2Response.dispatch,
    # A WebSocket stage's ARN, decoded as the server receives it (moto routes APIs' only).
    "{0}/v2/tags/(?P<resource_arn_pt1>[^/]+)/apis/(?P<resource_arn_pt2>[^/]+)/stages/"
    "(?P<stage_name>[^/]+)$": SandboxApiGatewayV2Response.dispatch,
}

_ROUTES = {
    "{0}/clientcertificates$": SandboxAPIGatewayResponse.dispatch,
    "{0}/clientcertificates/(?P<clientcertificate_id>[^/]+)/?$":
        SandboxAPIGatewayResponse.dispatch,
    # An ACM ARN where a certificate id goes (decoded, its slash splits it): NotFound (fact 112).
    "{0}/clientcertificates/arn:(?P<acm_arn>.+)$": SandboxAPIGatewayResponse.dispatch,
    # In server mode the path arrives decoded, so the ARN's slashes are path separators.
    "{0}/tags/arn:(?P<partition>[^/]+):apigateway:(?P<region_name>[^/]+)::/clientcertificates/"
    "(?P<clientcertificate_id>[^/]+)$": SandboxAPIGatewayResponse.dispatch,
    "{0}/tags/arn:(?P<partition>[^/]+):apigateway:(?P<region_name>[^/]+)::/restapis/"
    "(?P<function_id>[^/]+)$": SandboxAPIGatewayResponse.dispatch,
}


def _stage_init(original):
    """Stamp each REST stage with the sandbox clock: moto's has no dates (recorded GetStages
    responses carry createdDate and lastUpdatedDate)."""
    def __init__(self, *args, **kw):
        original(self, *args, **kw)
        self.sandbox_created = self.sandbox_updated = CONTROLS.clock.now()
    return __init__


def _stage_to_json(original):
    """AWS's stage shape (recorded GetStages): ``clientCertificateId`` and ``description`` only
    when set, and the dates as epoch seconds."""
    def to_json(self):
        out = original(self)
        cert_id = getattr(self, "client_certificate_id", None)
        if cert_id:
            out["clientCertificateId"] = cert_id
        if not out.get("description"):
            out.pop("description", None)
        out["createdDate"] = int(self.sandbox_created.timestamp())
        out["lastUpdatedDate"] = int(self.sandbox_updated.timestamp())
        return out
    return to_json


def _create_deployment(original):
    """CreateDeployment to a stage redeploys it: AWS keeps the stage's settings, and a
    redeploy makes the stage present its configured certificate."""
    def create_deployment(self, name, description, stage_variables=None):
        previous = self.stages.get(name) if name else None
        deployment = original(self, name, description, stage_variables)
        if previous is not None:
            stage = self.stages[name]
            stage.client_certificate_id = getattr(previous, "client_certificate_id", None)
            stage.presented_certificate_id = stage.client_certificate_id
            stage.sandbox_created = previous.sandbox_created
        return deployment
    return create_deployment


def _v2_stage_init(original):
    """A WebSocket stage presents the certificate it is created with, and keeps the
    ``deploymentId`` it is created with (moto drops it)."""
    def __init__(self, api, config):
        original(self, api, config)
        self.presented_certificate_id = self.client_certificate_id
        self.sandbox_deployment_id = config.get("deploymentId")
    return __init__


def _v2_stage_to_json(original):
    def to_json(self):
        out = original(self)
        if getattr(self, "sandbox_deployment_id", None):
            out["deploymentId"] = self.sandbox_deployment_id
        return out
    return to_json


@functools.cache  # once per process: every install patches moto in place
def install():
    """Extend moto in this process. Idempotent."""
    for table in (v1_urls.url_paths, v2_urls.url_paths):
        for pattern, handler in list(table.items()):
            if handler == APIGatewayResponse.dispatch:
                table[pattern] = SandboxAPIGatewayResponse.dispatch
            elif handler == ApiGatewayV2Response.dispatch:
                table[pattern] = SandboxApiGatewayV2Response.dispatch
    # Ours go first: moto's generic /tags/{arn} route would otherwise take the certificate's.
    merged = dict(_ROUTES, **v1_urls.url_paths, **_V2_ROUTES)
    v1_urls.url_paths.clear()
    v1_urls.url_paths.update(merged)
    v2_urls.url_paths.update(_V2_ROUTES)
    Stage.__init__ = _stage_init(Stage.__init__)
    Stage.to_json = _stage_to_json(Stage.to_json)
    RestAPI.create_deployment = _create_deployment(RestAPI.create_deployment)
    V2Stage.__init__ = _v2_stage_init(V2Stage.__init__)
    V2Stage.to_json = _v2_stage_to_json(V2Stage.to_json)

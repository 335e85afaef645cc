"""Which REST and WebSocket stages use which client certificate, read from AWS Config
(``source: config``) instead of API Gateway's listings. Enumeration only: no decisions.

AWS Config records ``AWS::ApiGateway::Stage`` and ``AWS::ApiGatewayV2::Stage`` with their
``configuration.clientCertificateId``, and the APIs they belong to (docs/aws-behaviour.md, facts
26 and 80). One paged advanced query (``SelectResourceConfig``, 100 results a page: fact 81)
answers every stage and API of the region, whatever their number, so API Gateway is called once
per region, for the certificates (which Config does not record: fact 26). With ``aggregator``,
``SelectAggregateResourceConfig`` asks an aggregator for the stages of the run's account and
region (fact 82), optionally through a role of the aggregator's account (``aggregator-role``).

The query selects every stage and filters certificate-less ones here: Config's query language
has no test for a property that is absent (fact 81).

Config records changes asynchronously (fact 26): a stage created or switched a few minutes ago
can be missing, or show its previous certificate. So Config serves the audit and the filters;
``rotate`` and ``delete`` list every stage from API Gateway before they change anything.
"""
import json
import logging
import re

from c7n.exceptions import PolicyExecutionError, PolicyValidationError
from c7n.utils import local_session

from . import usage

log = logging.getLogger("custodian.apigw-client-certificate")

REST_API = "AWS::ApiGateway::RestApi"
REST_STAGE = "AWS::ApiGateway::Stage"
V2_API = "AWS::ApiGatewayV2::Api"
V2_STAGE = "AWS::ApiGatewayV2::Stage"
PAGE_SIZE = 100  # Config's largest page (fact 81)
QUERY_KEYS = ("aggregator", "aggregator-region", "aggregator-role")
SELECT = (
    "SELECT resourceId, resourceName, resourceType, accountId, awsRegion, arn, "
    "configurationItemStatus, configuration.id, configuration.name, configuration.apiId, "
    "configuration.protocolType, "
    "configuration.stageName, configuration.clientCertificateId, "
    "configuration.createdDate, configuration.lastUpdatedDate, "
    "configurationItemCaptureTime, tags, relationships "
    "WHERE resourceType IN ('%s', '%s', '%s', '%s')" % (REST_STAGE, V2_STAGE, REST_API, V2_API))
# arn:aws:apigateway:{region}::/restapis/{id}/stages/{name} (fact 26), and a v2 stage's
# arn:aws:apigateway:{region}::/apis/{id}/stages/{name} (API Gateway's ARN format, fact 4)
_REST_STAGE_ARN = re.compile(r"^arn:[^:]+:apigateway:[^:]*::/restapis/([^/]+)/stages/(.+)$")
_V2_STAGE_ARN = re.compile(r"^arn:[^:]+:apigateway:[^:]*::/apis/([^/]+)/stages/(.+)$")
# Items that describe no live resource (fact 88).
GONE = ("ResourceDeleted", "ResourceDeletedNotRecorded", "ResourceNotRecorded")


def options(policy_data):
    """The policy's ``query`` entries, merged: ``aggregator``, ``aggregator-region``,
    ``aggregator-role`` (c7n's convention: a config source reads its options from ``query``)."""
    merged = {}
    for entry in policy_data.get("query") or ():
        merged.update(entry)
    return merged


def validate(policy_data, source_type):
    """PolicyValidationError for a ``query`` this resource does not understand."""
    name = policy_data.get("name")
    found = options(policy_data)
    if not found:
        return
    if source_type != "config":
        raise PolicyValidationError(
            "policy:%s query: only with source: config (%s)" % (name, ", ".join(sorted(found))))
    unknown = sorted(set(found) - set(QUERY_KEYS))
    if unknown:
        raise PolicyValidationError(
            "policy:%s query: unknown key(s) %s; known: %s (the stage query itself is fixed)"
            % (name, ", ".join(unknown), ", ".join(QUERY_KEYS)))
    for key, value in found.items():
        if not isinstance(value, str) or not value:
            raise PolicyValidationError("policy:%s query: %s must be a non-empty string, not %r"
                                        % (name, key, value))
    if not found.get("aggregator") and set(found) & {"aggregator-region", "aggregator-role"}:
        raise PolicyValidationError(
            "policy:%s query: aggregator-region and aggregator-role need an aggregator" % name)
    role = found.get("aggregator-role")
    if role and not role.startswith("arn:"):
        raise PolicyValidationError(
            "policy:%s query: aggregator-role must be a role ARN, not %r" % (name, role))


def iam_resources(policy_data):
    """What the run's own role calls: the account's Config query (no resource-level
    permissions: ``*``); the aggregator's, or, through ``aggregator-role``, only
    ``sts:AssumeRole`` on that role, whose own policy must allow
    ``config:SelectAggregateResourceConfig``."""
    found = options(policy_data)
    if found.get("aggregator-role"):
        return {"sts:AssumeRole": [found["aggregator-role"]]}
    if found.get("aggregator"):
        return {"config:SelectAggregateResourceConfig": ["*"]}
    return {"config:SelectResourceConfig": ["*"]}


def expression(account_id=None, region=None):
    """The query; an aggregator's answer is narrowed to the run's account and region."""
    if account_id is None:
        return SELECT
    return SELECT + " AND accountId = '%s' AND awsRegion = '%s'" % (account_id, region)


def items(session_factory, region, account_id, opts):
    """Every stage and API item of the region (of the run's account, through an aggregator)."""
    session = local_session(session_factory)
    aggregator = opts.get("aggregator")
    if aggregator and not account_id:  # unnarrowed, the organisation's every stage
        raise PolicyExecutionError(
            "source: config with aggregator %s: the run's account id is unknown (STS), so the "
            "query cannot be narrowed to its account" % aggregator)
    if not aggregator:
        client = session.client("config", region_name=region)
        pages = usage.pages(client, "select_resource_config", Expression=expression(),
                            Limit=PAGE_SIZE)
    else:
        where = opts.get("aggregator-region") or region
        if opts.get("aggregator-role"):
            from c7n.credentials import assumed_session
            session = assumed_session(opts["aggregator-role"], "c7n-apigw-certs-config",
                                      session=session, region=where)
        client = session.client("config", region_name=where)
        pages = usage.pages(client, "select_aggregate_resource_config",
                            ConfigurationAggregatorName=aggregator,
                            Expression=expression(account_id, region), Limit=PAGE_SIZE)
    for page in pages:
        for result in page.get("Results", ()):
            yield json.loads(result)


def tag_map(tags):
    """Tags as {key: value}: a query answers a list of ``key``/``value`` (fact 81), a
    configuration item a map."""
    if isinstance(tags, dict):
        return dict(tags)
    return {t.get("key"): t.get("value") for t in tags or () if isinstance(t, dict)}


def stage_of(item):
    """(protocol, API id, stage name) of a stage item, or None. A REST stage's API id is in its
    ARN, its ``resourceId`` (no ``restApiId`` in its configuration); a WebSocket stage's in its
    configuration or its relationships, never in its ``resourceId``, whose format no source
    documents (facts 26, 80)."""
    configuration = item.get("configuration") or {}
    if item.get("resourceType") == REST_STAGE:
        match = (_REST_STAGE_ARN.match(item.get("resourceId") or "")
                 or _REST_STAGE_ARN.match(item.get("arn") or ""))
        if match:
            return usage.REST, match.group(1), configuration.get("stageName") or match.group(2)
        return None
    # A v2 stage's apiId: in its configuration by fact 26, not in the schema (fact 80), so
    # else from its relationship to its API, else from its ARN.
    api_id = configuration.get("apiId") or next((
        r.get("resourceId") for r in item.get("relationships") or ()
        if isinstance(r, dict) and r.get("resourceType") == V2_API), None)
    match = _V2_STAGE_ARN.match(item.get("arn") or "")
    if not api_id and match:
        api_id = match.group(1)
    stage_name = configuration.get("stageName") or (match.group(2) if match else None)
    if api_id and stage_name:
        return usage.WEBSOCKET, api_id, stage_name
    return None


def coverage(apis, stages):
    """{protocol: why Config's view of its stages cannot be trusted}, empty when it can. A
    recorder that leaves a type out answers nothing for it (fact 88): APIs of a protocol with
    no stage item at all, or no API Gateway item at all, mean Config does not record them,
    not that no stage uses a certificate."""
    kinds = {item.get("resourceType") for item in stages}
    if not apis and not stages:
        reason = "AWS Config answered no API Gateway API or stage in this region"
        return {usage.REST: reason, usage.WEBSOCKET: reason}
    unknown = {}
    if any(p == usage.REST for p, _ in apis) and REST_STAGE not in kinds:
        unknown[usage.REST] = "AWS Config records REST APIs here but no REST stage"
    if any(p == usage.WEBSOCKET for p, _ in apis) and V2_STAGE not in kinds:
        unknown[usage.WEBSOCKET] = "AWS Config records WebSocket APIs here but no v2 stage"
    return unknown


def stages_by_certificate(session_factory, region, account_id, opts):
    """({certificate id: [stage entries]}, the newest ``configurationItemCaptureTime`` read,
    ``coverage``'s {protocol: reason} of what Config does not show).

    Each entry is ``usage.stage_entry``'s, plus ``captured``: when Config recorded that stage.
    A stage item that names a certificate but not its API is still a use of the certificate
    (its API id and name unknown): a certificate is never called unused for want of them."""
    apis, stages, newest = {}, [], None
    for item in items(session_factory, region, account_id, opts):
        if item.get("configurationItemStatus") in GONE:
            continue
        captured = item.get("configurationItemCaptureTime")
        if captured and (newest is None or captured > newest):
            newest = captured
        kind, configuration = item.get("resourceType"), item.get("configuration") or {}
        # An API's id and name are in its configuration (fact 80): id / apiId, name.
        if kind == REST_API:
            apis[(usage.REST, configuration.get("id") or item.get("resourceId"))] = item
        elif kind == V2_API:
            if configuration.get("protocolType") not in (None, "WEBSOCKET"):
                continue  # an HTTP API: its stages cannot have a certificate (fact 10)
            apis[(usage.WEBSOCKET, configuration.get("apiId") or item.get("resourceId"))] = item
        else:
            stages.append(item)
    found = {}
    for item in stages:
        cert_id = (item.get("configuration") or {}).get("clientCertificateId")
        if not cert_id:
            continue
        where = stage_of(item)
        if where is None:
            log.warning("AWS Config item %s (%s) names client-certificate:%s but not its API: "
                        "counted as a use of it, API unknown", item.get("resourceId"),
                        item.get("resourceType"), cert_id)
            protocol = usage.REST if item.get("resourceType") == REST_STAGE else \
                usage.WEBSOCKET
            where = (protocol, "", (item.get("configuration") or {}).get("stageName")
                     or item.get("resourceName") or item.get("resourceId") or "?")
        protocol, api_id, stage_name = where
        api = apis.get((protocol, api_id), {})
        api_name = (api.get("configuration") or {}).get("name") or api.get("resourceName", "")
        configuration = item.get("configuration") or {}
        entry = usage.stage_entry(
            protocol, api_id, api_name, stage_name, cert_id,
            tag_map(item.get("tags")), tag_map(api.get("tags")),
            configuration.get("createdDate"), configuration.get("lastUpdatedDate"))
        entry["captured"] = item.get("configurationItemCaptureTime")
        found.setdefault(cert_id, []).append(entry)
    return found, newest, coverage(apis, stages)

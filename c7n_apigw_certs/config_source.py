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

from c7n.exceptions import PolicyValidationError
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
    "SELECT resourceId, resourceName, resourceType, accountId, awsRegion, "
    "configuration.id, configuration.name, configuration.apiId, "
    "configuration.stageName, configuration.clientCertificateId, "
    "configuration.createdDate, configuration.lastUpdatedDate, "
    "configurationItemCaptureTime, tags, relationships "
    "WHERE resourceType IN ('%s', '%s', '%s', '%s')" % (REST_STAGE, V2_STAGE, REST_API, V2_API))
# arn:aws:apigateway:{region}::/restapis/{id}/stages/{name} (fact 26)
_REST_STAGE_ARN = re.compile(r"^arn:[^:]+:apigateway:[^:]*::/restapis/([^/]+)/stages/(.+)$")


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


def permission(policy_data):
    """The Config action this source calls."""
    if options(policy_data).get("aggregator"):
        return "config:SelectAggregateResourceConfig"
    return "config:SelectResourceConfig"


def expression(account_id=None, region=None):
    """The query; an aggregator's answer is narrowed to the run's account and region."""
    if account_id is None:
        return SELECT
    return SELECT + " AND accountId = '%s' AND awsRegion = '%s'" % (account_id, region)


def items(session_factory, region, account_id, opts):
    """Every stage and API item of the region (of the run's account, through an aggregator)."""
    session = local_session(session_factory)
    aggregator = opts.get("aggregator")
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
        match = _REST_STAGE_ARN.match(item.get("resourceId") or "")
        if match:
            return usage.REST, match.group(1), configuration.get("stageName") or match.group(2)
        return None
    # A v2 stage's apiId: in its configuration by fact 26, not in the schema (fact 80), so
    # else from its relationship to its API.
    api_id = configuration.get("apiId") or next((
        r.get("resourceId") for r in item.get("relationships") or ()
        if isinstance(r, dict) and r.get("resourceType") == V2_API), None)
    if api_id and configuration.get("stageName"):
        return usage.WEBSOCKET, api_id, configuration["stageName"]
    return None


def stages_by_certificate(session_factory, region, account_id, opts):
    """({certificate id: [stage entries]}, the newest ``configurationItemCaptureTime`` read).

    Each entry is ``usage.stage_entry``'s, plus ``captured``: when Config recorded that stage."""
    apis, stages, newest = {}, [], None
    for item in items(session_factory, region, account_id, opts):
        captured = item.get("configurationItemCaptureTime")
        if captured and (newest is None or captured > newest):
            newest = captured
        kind, configuration = item.get("resourceType"), item.get("configuration") or {}
        # An API's id and name are in its configuration (fact 80): id / apiId, name.
        if kind == REST_API:
            apis[(usage.REST, configuration.get("id") or item.get("resourceId"))] = item
        elif kind == V2_API:
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
            log.warning("AWS Config item %s (%s) names client-certificate:%s but not its API "
                        "and stage: skipped", item.get("resourceId"), item.get("resourceType"),
                        cert_id)
            continue
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
    return found, newest

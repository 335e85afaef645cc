"""AWS Config in the sandbox: the stages recorded as configuration items, the advanced queries
that read them, and the evaluations that custom rules post (docs/aws-behaviour.md, facts 80-89).

moto's Config records nothing of API Gateway, answers ``SelectResourceConfig`` with canned
results (its parameters are read from the query string, so the JSON body SDKs send is lost),
lacks ``SelectAggregateResourceConfig`` and ``GetComplianceDetailsByConfigRule``, and accepts
``PutEvaluations`` only in ``TestMode`` (fact 33). Here:

- **Recording.** After every API Gateway (REST or v2) or CloudFormation request that is not a
  read, the account and region of the request are observed: each REST API and stage and each
  v2 API and stage becomes a configuration item as Config records it (fact 26, fact 80): REST
  stages ``AWS::ApiGateway::Stage`` with the stage ARN as ``resourceId`` and no ``restApiId`` in
  ``configuration``; WebSocket stages ``AWS::ApiGatewayV2::Stage`` with ``apiId`` and
  ``stageName`` in ``configuration``; ``clientCertificateId`` in lower camel case in both,
  absent when unset. A changed item (configuration, tags, name) is recorded as a new one; a
  deleted resource drops out of queries.
- **Lag.** Config records asynchronously (fact 26). The switch ``config_delay`` (seconds on the
  sandbox clock, 0 by default) holds every change back: an item observed at T is captured, and
  answered, from T + delay (its ``configurationItemCaptureTime``); until then queries answer
  the previous item, or nothing for a new resource.
- **Queries** (fact 81): ``SELECT`` of properties (dotted paths) ``WHERE`` with ``=``, ``IN``,
  ``BETWEEN``, ``AND``, ``OR``, ``NOT`` and parentheses; results are JSON strings holding the
  selected properties, nested as in the item; ``QueryInfo.SelectFields`` names them. Pages of
  ``Limit`` results (at most 100, the default), continued by ``NextToken``.
  ``SelectAggregateResourceConfig`` answers the same over every account and region that the
  named aggregator (``PutConfigurationAggregator``) covers (fact 82).
- **Evaluations** (facts 83, 84): ``PutEvaluations`` with a result token that an event of this
  sandbox carried stores each evaluation under the token's rule, the latest per resource by
  ``OrderingTimestamp``; ``GetComplianceDetailsByConfigRule`` answers them, filtered by
  ``ComplianceTypes``, in pages (``Limit`` at most 100, ``NextToken``). ``TestMode`` stores
  nothing, as in AWS. With the switch ``config_evaluation_types`` at ``"recorded"`` (the
  default) a request that names a ``ComplianceResourceType`` AWS Config does not record (not
  in botocore's ``ResourceType`` enum, e.g. ``AWS::ApiGateway::ClientCertificate``) is
  refused whole, storing nothing, with AWS's ``InvalidParameterValueException`` "The resource
  type ... is invalid. Only the following values are permitted: [...]" (fact 135); at
  ``"any"`` every type is stored, as c7n's docstring says. An ``Annotation`` longer than 256
  characters is refused whole with AWS's ``ValidationException`` (fact 170).
- **Rules** (fact 138): ``DescribeConfigRules`` of a name the region does not have answers
  ``NoSuchConfigRuleException``, as AWS does and c7n's deployer expects (moto answers an empty
  list while the region has no rule at all).
- **Events** (fact 85): ``rule_event()`` (the control ``POST /_sandbox/config-event``) builds
  the event AWS Config sends a custom rule's Lambda function: a ``ScheduledNotification`` for a
  periodic rule, or a ``ConfigurationItemChangeNotification`` carrying the recorded item of one
  resource.

Known differences from AWS: no aggregation authorizations are checked; ``GROUP BY``,
``ORDER BY``, aggregate functions and ``LIKE`` are refused (``InvalidExpressionException``); a
condition on a property an item lacks is false, and so ``NOT`` of it true.
"""
import base64
import datetime
import functools
import hashlib
import json
import re
import threading
import uuid

from moto.apigateway.models import apigateway_backends
from moto.apigateway.responses import APIGatewayResponse
from moto.apigatewayv2.models import apigatewayv2_backends
from moto.apigatewayv2.responses import ApiGatewayV2Response
from moto.cloudformation.responses import CloudFormationResponse
from moto.config.exceptions import (
    InvalidLimitException, InvalidNextTokenException, InvalidParameterValueException,
    InvalidResultTokenException, NoSuchConfigRuleException,
    NoSuchConfigurationAggregatorException, ValidationException)
from moto.config.models import config_backends
from moto.config.responses import ConfigResponse
from moto.core.exceptions import JsonRESTError

from .controls import CONTROLS
from .tags import current_tags

REST_API = "AWS::ApiGateway::RestApi"
REST_STAGE = "AWS::ApiGateway::Stage"
V2_API = "AWS::ApiGatewayV2::Api"
V2_STAGE = "AWS::ApiGatewayV2::Stage"
MAX_LIMIT = 100
COMPLIANCE_TYPES = ("COMPLIANT", "NON_COMPLIANT", "NOT_APPLICABLE", "INSUFFICIENT_DATA")
_LOCK = threading.RLock()


class InvalidExpressionException(JsonRESTError):
    code = 400

    def __init__(self, message):
        super().__init__("InvalidExpressionException", message)


def iso(value):
    """Config's timestamps: ISO-8601, UTC, whole seconds, ``Z``."""
    if isinstance(value, (int, float)):
        value = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return value


def _state(account, region):
    """The recorder's state of one account and region, kept on moto's Config backend so that
    moto's own reset clears it too."""
    backend = config_backends[account][region]
    if not hasattr(backend, "sandbox_history"):
        backend.sandbox_history = {}      # (type, id) -> [(visible from, item or None)]
        backend.sandbox_evaluations = {}  # rule -> {(type, id): evaluation}
        backend.sandbox_tokens = {}       # result token -> rule
        backend.sandbox_rules = set()     # rules that events were sent for
    return backend


# -- recording ------------------------------------------------------------------------------
def _item(account, region, resource_type, resource_id, name, arn, configuration, tags):
    return {
        "version": "1.3",
        "accountId": account,
        "awsRegion": region,
        "availabilityZone": "Not Applicable",
        "resourceType": resource_type,
        "resourceId": resource_id,
        "resourceName": name,
        "arn": arn,
        "configurationItemStatus": "OK",
        "tags": dict(tags or {}),
        "relationships": [],
        "configuration": configuration,
        "supplementaryConfiguration": {},
    }


def _rest_items(account, region):
    backend = apigateway_backends[account][region]
    for api in list(backend.apis.values()):
        api_arn = "arn:aws:apigateway:%s::/restapis/%s" % (region, api.id)
        yield _item(account, region, REST_API, api.id, api.name, api_arn,
                    {"id": api.id, "name": api.name, "description": api.description,
                     "createdDate": iso(api.create_date)}, current_tags(account, api_arn))
        for stage in list(api.stages.values()):
            configuration = {k: iso(v) if k.endswith("Date") else v
                             for k, v in stage.to_json().items()
                             if k != "tags" and v is not None}
            # Fact 26: no restApiId in the configuration; the ARN is the resource id.
            arn = "%s/stages/%s" % (api_arn, stage.name)
            yield _item(account, region, REST_STAGE, arn, stage.name, arn, configuration,
                        current_tags(account, arn))


def _v2_items(account, region):
    backend = apigatewayv2_backends[account][region]
    for api in list(backend.apis.values()):
        api_arn = "arn:aws:apigateway:%s::/apis/%s" % (region, api.api_id)
        yield _item(account, region, V2_API, api.api_id, api.name, api_arn,
                    {"apiId": api.api_id, "name": api.name, "protocolType": api.protocol_type},
                    current_tags(account, api_arn))
        for stage in list(api.stages.values()):
            configuration = {k: v for k, v in stage.to_json().items()
                             if k != "tags" and v is not None}
            arn = "%s/stages/%s" % (api_arn, stage.name)
            # No source documents this type's resourceId (fact 26): the plugin never parses it.
            item = _item(account, region, V2_STAGE, arn, stage.name, arn, configuration,
                         current_tags(account, arn))
            if CONTROLS.switches.config_v2_api_id:  # fact 26; else only the ARN (fact 80)
                configuration["apiId"] = api.api_id
                item["relationships"] = [{"resourceType": V2_API, "resourceId": api.api_id,
                                          "relationshipName": "Is contained in Api"}]
            yield item


def _fingerprint(item):
    return json.dumps([item["resourceName"], item["tags"], item["configuration"]],
                      sort_keys=True, default=str)


def observe(account, region):
    """Record what changed in one account and region since its last observation."""
    now = CONTROLS.clock.now()
    visible = now + datetime.timedelta(seconds=CONTROLS.switches.config_delay)
    try:
        items = [item for item in list(_rest_items(account, region))
                 + list(_v2_items(account, region))
                 if item["resourceType"] in CONTROLS.switches.config_types]
    except (JsonRESTError, KeyError):
        return  # a resource vanished while being read (another request): the next one records
    with _LOCK:
        history = _state(account, region).sandbox_history
        seen = set()
        for item in items:
            key = (item["resourceType"], item["resourceId"])
            seen.add(key)
            entries = history.setdefault(key, [])
            last = entries[-1][1] if entries else None
            if last is not None and _fingerprint(last) == _fingerprint(item):
                continue
            item["configurationItemCaptureTime"] = iso(visible)
            item["configurationItemStatus"] = "OK" if last else "ResourceDiscovered"
            item["configurationStateId"] = str(int(visible.timestamp() * 1000))
            entries.append((visible, item))
        for key, entries in history.items():
            if key not in seen and entries[-1][1] is not None:
                entries.append((visible, None))


def observe_all():
    """Observe every account and region that has API Gateway state."""
    places = {(a, r) for a, r, _ in apigateway_backends.iter_backends()}
    places |= {(a, r) for a, r, _ in apigatewayv2_backends.iter_backends()}
    for account, region in sorted(places):
        observe(account, region)


def recorded(account, region, now=None):
    """The items Config answers for now: the latest visible one of each resource."""
    now = now or CONTROLS.clock.now()
    with _LOCK:
        history = _state(account, region).sandbox_history
        found = []
        for entries in history.values():
            current = None
            for visible, item in entries:
                if visible <= now:
                    current = item
            if current is not None:
                found.append(current)
    return found


def recorded_item(account, region, resource_type, resource_id):
    for item in recorded(account, region):
        if item["resourceType"] == resource_type and item["resourceId"] == resource_id:
            return item
    return None


def _observing(original):
    """moto's call_action, then an observation of the request's account and region when the
    request may have changed something."""
    def call_action(self):
        result = original(self)
        account, region = getattr(self, "current_account", None), getattr(self, "region", None)
        if self.method not in ("GET", "HEAD") and account and region:
            observe(account, region)
        return result
    return call_action


# -- queries -----------------------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:('(?:[^']|'')*')|([(),=*])|([A-Za-z_][A-Za-z0-9_.:\-]*))")
_KEYWORDS = {"SELECT", "WHERE", "AND", "OR", "NOT", "IN", "BETWEEN", "GROUP", "ORDER",
             "BY", "LIKE", "COUNT"}


def tokenize(expression):
    tokens, pos, text = [], 0, expression.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise InvalidExpressionException("Invalid expression near: %s" % text[pos:pos + 20])
        string, symbol, word = match.groups()
        if string is not None:
            tokens.append(("str", string[1:-1].replace("''", "'")))
        elif symbol is not None:
            tokens.append(("sym", symbol))
        elif word.upper() in _KEYWORDS:
            tokens.append(("kw", word.upper()))
        else:
            tokens.append(("name", word))
        pos = match.end()
    return tokens


class Query:
    """``SELECT p, ... [WHERE condition]``: the part of Config's SQL the sandbox answers."""

    def __init__(self, expression):
        self.tokens, self.pos = tokenize(expression), 0
        self.expect("kw", "SELECT")
        self.fields = [self.name()]
        while self.peek() == ("sym", ","):
            self.pos += 1
            self.fields.append(self.name())
        self.where = None
        if self.peek() == ("kw", "WHERE"):
            self.pos += 1
            self.where = self.disjunction()
        if self.pos != len(self.tokens):
            raise InvalidExpressionException(
                "Unsupported or invalid expression at: %s" % (self.tokens[self.pos][1],))

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def expect(self, kind, value=None):
        token = self.peek()
        if token[0] != kind or (value is not None and token[1] != value):
            raise InvalidExpressionException("Expected %s, found %s" % (
                value or kind, token[1]))
        self.pos += 1
        return token[1]

    def name(self):
        return self.expect("name")

    def value(self):
        return self.expect("str")

    def disjunction(self):
        terms = [self.conjunction()]
        while self.peek() == ("kw", "OR"):
            self.pos += 1
            terms.append(self.conjunction())
        return lambda item: any(t(item) for t in terms)

    def conjunction(self):
        terms = [self.negation()]
        while self.peek() == ("kw", "AND"):
            self.pos += 1
            terms.append(self.negation())
        return lambda item: all(t(item) for t in terms)

    def negation(self):
        if self.peek() == ("kw", "NOT"):
            self.pos += 1
            term = self.negation()
            return lambda item: not term(item)
        if self.peek() == ("sym", "("):
            self.pos += 1
            term = self.disjunction()
            self.expect("sym", ")")
            return term
        return self.comparison()

    def comparison(self):
        path = self.name()
        op = self.peek()
        self.pos += 1
        if op == ("sym", "="):
            wanted = {self.value()}
        elif op == ("kw", "IN"):
            self.expect("sym", "(")
            wanted = {self.value()}
            while self.peek() == ("sym", ","):
                self.pos += 1
                wanted.add(self.value())
            self.expect("sym", ")")
        elif op == ("kw", "BETWEEN"):
            low = self.value()
            self.expect("kw", "AND")
            high = self.value()
            return lambda item: any(low <= v <= high for v in values(item, path))
        else:
            raise InvalidExpressionException("Unsupported operator: %s" % (op[1],))
        return lambda item: any(v in wanted for v in values(item, path))

    def matches(self, item):
        return self.where is None or self.where(item)

    def project(self, item):
        result = {}
        for path in self.fields:
            found = lookup(item, path)
            if found is _MISSING:
                continue
            node, parts = result, path.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = found
        return result


_MISSING = object()


def queried(item):
    """An item as queries see it: ``tags`` a list of ``key``/``value`` (fact 81)."""
    view = dict(item)
    view["tags"] = [{"key": k, "value": v} for k, v in sorted(item["tags"].items())]
    return view


def lookup(item, path):
    node = item
    for part in path.split("."):
        if isinstance(node, list):
            node = [n[part] for n in node if isinstance(n, dict) and part in n]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return _MISSING
    return node


def values(item, path):
    found = lookup(item, path)
    if found is _MISSING:
        return []
    return [str(v) for v in (found if isinstance(found, list) else [found])]


def _token_for(expression, offset):
    digest = hashlib.sha256(expression.encode()).hexdigest()[:16]
    return base64.urlsafe_b64encode(("%s:%d" % (digest, offset)).encode()).decode()


def _offset_of(expression, token):
    if not token:
        return 0
    try:
        digest, offset = base64.urlsafe_b64decode(token.encode()).decode().split(":")
        if digest != hashlib.sha256(expression.encode()).hexdigest()[:16]:
            raise ValueError(token)
        return int(offset)
    except (ValueError, UnicodeDecodeError):
        raise InvalidNextTokenException() from None


def _limit(params, default=MAX_LIMIT):
    """A page's size: ``Limit`` (or ``MaxResults``) up to 100; 0 or none, the default (fact
    81: 10 for compliance details; no source gives the default of queries, so 100)."""
    limit = params.get("Limit") or params.get("MaxResults") or 0
    if not isinstance(limit, int) or limit > MAX_LIMIT or limit < 0:
        raise InvalidLimitException(limit)
    return limit or default


def select(items, params):
    """One page of a query over ``items``: the response's body."""
    expression = params.get("Expression") or ""
    query = Query(expression)
    matched = [query.project(view) for view in map(queried, items) if query.matches(view)]
    matched.sort(key=lambda r: json.dumps(r, sort_keys=True))
    start, limit = _offset_of(expression, params.get("NextToken")), _limit(params)
    response = {"Results": [json.dumps(r) for r in matched[start:start + limit]],
                "QueryInfo": {"SelectFields": [{"Name": f} for f in query.fields]}}
    if start + limit < len(matched):
        response["NextToken"] = _token_for(expression, start + limit)
    return response


def aggregated_places(aggregator):
    """The (account, region) pairs an aggregator covers, among those the sandbox has."""
    places = {(a, r) for a, r, _ in apigateway_backends.iter_backends()}
    places |= {(a, r) for a, r, _ in apigatewayv2_backends.iter_backends()}
    covered = set()
    for source in aggregator.account_aggregation_sources or ():
        for account, region in places:
            if account in source.account_ids and (
                    source.all_aws_regions or region in (source.aws_regions or ())):
                covered.add((account, region))
    org = aggregator.organization_aggregation_source
    if org is not None:
        covered |= {(a, r) for a, r in places
                    if org.all_aws_regions or r in (org.aws_regions or ())}
    return sorted(covered)


# -- evaluations -------------------------------------------------------------------------------
def rule_event(account, region, rule, message_type="ScheduledNotification",
               resource_type=None, resource_id=None, rule_parameters=None):
    """The event AWS Config sends a custom rule's Lambda function (fact 85), with a result token
    this sandbox accepts in ``PutEvaluations`` for that rule."""
    observe_all()
    now = iso(CONTROLS.clock.now())
    state = _state(account, region)
    token = uuid.uuid4().hex
    with _LOCK:
        state.sandbox_tokens[token] = rule
        state.sandbox_rules.add(rule)
    if message_type == "ScheduledNotification":
        invoking = {"awsAccountId": account, "notificationCreationTime": now,
                    "messageType": message_type, "recordVersion": "1.0"}
    elif message_type == "ConfigurationItemChangeNotification":
        item = recorded_item(account, region, resource_type, resource_id)
        if item is None:
            raise ValueError("no configuration item of %s %s is recorded in %s/%s (yet)" % (
                resource_type, resource_id, account, region))
        invoking = {"configurationItemDiff": None, "configurationItem": event_item(item),
                    "notificationCreationTime": now, "messageType": message_type,
                    "recordVersion": "1.3"}
    else:
        raise ValueError("message_type: ScheduledNotification or "
                         "ConfigurationItemChangeNotification, not %r" % (message_type,))
    rule_id = "config-rule-" + hashlib.sha256(rule.encode()).hexdigest()[:6]
    return {
        "invokingEvent": json.dumps(invoking),
        "ruleParameters": json.dumps(rule_parameters or {}),
        "resultToken": token,
        "eventLeftScope": False,
        "executionRoleArn": "arn:aws:iam::%s:role/config-role" % account,
        "configRuleArn": "arn:aws:config:%s:%s:config-rule/%s" % (region, account, rule_id),
        "configRuleName": rule,
        "configRuleId": rule_id,
        "accountId": account,
        "version": "1.0",
    }


def event_item(item):
    """A configuration item as events carry it (the developer guide's example events):
    ``awsAccountId`` and ``ARN`` where queries say ``accountId`` and ``arn``, and
    ``configurationItemVersion``; ``tags`` a map."""
    found = {k: v for k, v in item.items() if k not in ("accountId", "arn", "version")}
    found.update(awsAccountId=item["accountId"], ARN=item["arn"],
                 configurationItemVersion=item["version"])
    return found


@functools.cache
def recordable_types():
    """The resource types AWS Config records: botocore's ``config`` model, ``ResourceType``
    (read on first use, not at import)."""
    import botocore.session
    model = botocore.session.get_session().get_service_model("config")
    return tuple(sorted(model.shape_for("ResourceType").enum))


def check_evaluation_types(evaluations):
    """AWS's refusal of a type it does not record (fact 135), unless the switch says any."""
    if CONTROLS.switches.config_evaluation_types == "any":
        return
    permitted = recordable_types()
    for evaluation in evaluations:
        resource_type = evaluation.get("ComplianceResourceType")
        if resource_type not in permitted:
            raise InvalidParameterValueException(
                "The resource type %s is invalid. Only the following values are permitted: "
                "[%s]" % (resource_type, ", ".join(permitted)))


ANNOTATION_LIMIT = 256  # Evaluation.Annotation: StringWithCharLimit256, 1-256 (fact 170)


def check_annotations(evaluations):
    """AWS's constraint on ``Annotation`` (fact 170): at most 256 characters, the request
    refused whole in the form of AWS's validation errors. botocore checks only the minimum, so
    a longer one reaches AWS."""
    for index, evaluation in enumerate(evaluations, start=1):
        value = evaluation.get("Annotation")
        if value is not None and not 1 <= len(value) <= ANNOTATION_LIMIT:
            bound = ("less than or equal to %d" % ANNOTATION_LIMIT if value else
                     "greater than or equal to 1")
            raise ValidationException(
                "1 validation error detected: Value '%s' at 'evaluations.%d.member.annotation' "
                "failed to satisfy constraint: Member must have length %s" % (
                    value, index, bound))


def put_evaluations(account, region, params):
    evaluations = params.get("Evaluations") or []
    if not evaluations:
        raise ValidationException("The Evaluations object in your request cannot be null.")
    check_annotations(evaluations)
    check_evaluation_types(evaluations)
    if params.get("TestMode"):
        return {"FailedEvaluations": []}
    state = _state(account, region)
    with _LOCK:
        rule = state.sandbox_tokens.get(params.get("ResultToken"))
        if rule is None:
            raise InvalidResultTokenException()
        stored = state.sandbox_evaluations.setdefault(rule, {})
        recorded_at = iso(CONTROLS.clock.now())
        for evaluation in evaluations:
            if evaluation.get("ComplianceType") not in COMPLIANCE_TYPES[:3]:
                raise ValidationException("ComplianceType: COMPLIANT, NON_COMPLIANT or "
                                          "NOT_APPLICABLE, not %r" % (
                                              evaluation.get("ComplianceType"),))
            key = (evaluation["ComplianceResourceType"], evaluation["ComplianceResourceId"])
            ordering = iso(_parse_time(evaluation["OrderingTimestamp"]))
            previous = stored.get(key)
            if previous and previous["OrderingTimestamp"] > ordering:
                continue  # an older evaluation does not replace a newer one
            stored[key] = dict(evaluation, OrderingTimestamp=ordering,
                               ResultRecordedTime=recorded_at)
    return {"FailedEvaluations": []}


def _parse_time(value):
    if isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    when = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def compliance_details(account, region, params):
    rule = params.get("ConfigRuleName")
    backend = _state(account, region)
    if rule not in backend.sandbox_rules and rule not in backend.config_rules:
        raise NoSuchConfigRuleException(rule)
    wanted = set(params.get("ComplianceTypes") or COMPLIANCE_TYPES)
    with _LOCK:
        stored = sorted(backend.sandbox_evaluations.get(rule, {}).items())
    results = [{
        "EvaluationResultIdentifier": {
            "EvaluationResultQualifier": {
                "ConfigRuleName": rule, "ResourceType": rtype, "ResourceId": rid},
            "OrderingTimestamp": e["OrderingTimestamp"]},
        "ComplianceType": e["ComplianceType"],
        "ResultRecordedTime": e["ResultRecordedTime"],
        "ConfigRuleInvokedTime": e["OrderingTimestamp"],
        "Annotation": e.get("Annotation", ""),
    } for (rtype, rid), e in stored if e["ComplianceType"] in wanted]
    key = "rule:%s:%s" % (rule, ",".join(sorted(wanted)))
    start, limit = _offset_of(key, params.get("NextToken")), _limit(params, 10)
    response = {"EvaluationResults": results[start:start + limit]}
    if start + limit < len(results):
        response["NextToken"] = _token_for(key, start + limit)
    return response


# -- moto's Config, answered here -----------------------------------------------------------------
def _body(response):
    """The JSON body the SDK sent (moto reads the query string only: fact 33)."""
    try:
        body = json.loads(response.body or "{}")
    except ValueError:
        body = {}
    return body if isinstance(body, dict) else {}


def _select_resource_config(self):
    observe_all()
    return json.dumps(select(recorded(self.current_account, self.region), _body(self)))


def _select_aggregate_resource_config(self):
    params = _body(self)
    name = params.get("ConfigurationAggregatorName")
    aggregator = self.config_backend.config_aggregators.get(name)
    if aggregator is None:
        raise NoSuchConfigurationAggregatorException()
    observe_all()
    items = [i for account, region in aggregated_places(aggregator)
             for i in recorded(account, region)]
    return json.dumps(select(items, params))


def _put_evaluations(self):
    return json.dumps(put_evaluations(self.current_account, self.region, _body(self)))


def _get_compliance_details_by_config_rule(self):
    return json.dumps(compliance_details(self.current_account, self.region, _body(self)))


def _describe_config_rules(original):
    """moto answers an empty list for named rules while the region has no rule at all; AWS
    (and c7n's deployer, which looks a rule up before creating it: ``resource_exists(...,
    NotFound="NoSuchConfigRuleException")`` in c7n/mu.py) refuses an unknown name with
    ``NoSuchConfigRuleException`` (botocore's model lists it for DescribeConfigRules)."""
    def describe_config_rules(self):
        names = _body(self).get("ConfigRuleNames") or self._get_param("ConfigRuleNames") or []
        for name in names:
            if name not in self.config_backend.config_rules:
                raise NoSuchConfigRuleException(name)
        return original(self)
    return describe_config_rules


@functools.cache  # once per process: every install patches moto in place
def install():
    """Answer Config's queries and evaluations here, and observe API Gateway's changes."""
    ConfigResponse.describe_config_rules = _describe_config_rules(
        ConfigResponse.describe_config_rules)
    ConfigResponse.select_resource_config = _select_resource_config
    ConfigResponse.select_aggregate_resource_config = _select_aggregate_resource_config
    ConfigResponse.put_evaluations = _put_evaluations
    ConfigResponse.get_compliance_details_by_config_rule = \
        _get_compliance_details_by_config_rule
    for cls in (APIGatewayResponse, ApiGatewayV2Response, CloudFormationResponse):
        cls.call_action = _observing(cls.call_action)

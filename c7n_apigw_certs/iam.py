"""The IAM policy that a set of policies needs, built from what the code declares:
``c7n-apigw-certs iam POLICY.yml [...]``.

The protocol
------------
Any element of a policy (its resource manager, a filter, an action) may define::

    def iam_resources(self) -> dict[str, list[str]]:
        return {"apigateway:GET": [apigateway_arn("/clientcertificates")], ...}

mapping each IAM action it uses to the ARN patterns it uses that action on. The actions are
exactly those of ``get_permissions()``: ``get_permissions()`` says what, ``iam_resources()`` says
on what (tests/test_iam.py holds every element of this package to it). A pattern uses AWS's
placeholders ``${Partition}``, ``${Region}`` and ``${Account}`` (the notation of the Service
Authorization Reference), which the generator fills from ``--partition``, ``--region`` and
``--account``; ``*`` inside a pattern is IAM's wildcard, and ``"*"`` alone is every resource
(for actions that have no resource-level permissions, e.g. ``tag:GetResources``).
Helpers: ``apigateway_arn(path)`` and ``wildcard(template)`` (a destination template as a pattern).

An element without the method is resolved in this order:

1. ``or``/``and``/``not``: the elements inside it, recursively (c7n's own
   ``Policy.get_permissions()`` does not look inside them);
2. ``FALLBACK``, by class, for c7n's own elements whose calls are known (read in c7n's source);
3. ``"*"`` for every action it declares.

An element whose ``iam_resources()`` leaves out an action that it declares gets ``"*"`` for that
action (with a warning): the document may be wider than needed, never narrower.

The document has one statement per distinct list of resources; each statement's ``Sid`` is
made of its actions (``ApiGatewayGet``, ``SsmGetParameterPutParameter``); statements, actions and
resources are sorted, so the same policies always give the same document. It covers a run in
pull mode, as c7n counts permissions (``Policy.get_permissions()``), plus what a Config-rule
mode's function calls to post its evaluations (``MODE_RESOURCES``); what a Lambda mode needs to
be deployed is not in it. ``sts:GetCallerIdentity``, which ``custodian`` calls to learn the
account, needs no permission (no policy can deny it), so it is not listed.

tests/test_iam.py runs the real ``custodian`` as a role that has nothing but the generated
document, against the sandbox, whose IAM check refuses what a role's policies do not allow
(``sandbox/iam.py``): the audit, and a whole rotation, run without a refusal.

What AWS authorizes, and on what (Service Authorization Reference, "Actions, resources, and
condition keys for Amazon API Gateway Management" and "... Management V2", for Systems Manager,
for Amazon S3; docs/aws-behaviour.md, facts 39-43):

- The API Gateway management actions are the HTTP verbs of its REST API
  (``apigateway:GET|POST|PUT|PATCH|DELETE``, v2 under the same prefix), on resources named by
  their path, with no account: ``arn:${Partition}:apigateway:${Region}::/clientcertificates``,
  ``/clientcertificates/{id}``, ``/restapis``, ``/restapis/{id}/stages``,
  ``/restapis/{id}/stages/{name}``, ``/restapis/{id}/deployments``, and for WebSocket APIs
  ``/apis``, ``/apis/{id}/stages``, ``/apis/{id}/stages/{name}``, ``/apis/{id}/deployments``.
- Tags are a resource of their own, ``arn:${Partition}:apigateway:${Region}::/tags/
  ${UrlEncodedResourceARN}``, and ``apigateway:PUT`` lists it among its resource types.
  ``GenerateClientCertificate`` needs ``apigateway:POST`` and ``apigateway:PUT``; on which
  resource the ``PUT`` of a call that carries ``tags`` is checked is not documented, but AWS's
  refusal of a CreateRestApi with tags names the tags resource of the new resource's URL-encoded
  ARN, its id a wildcard ("not authorized to perform: apigateway:PUT on resource:
  arn:aws:apigateway:us-east-1::/tags/arn%3Aaws%3Aapigateway%3Aus-east-1%3A%3A%2Frestapis%2F*",
  mattclay/aws-terminator pull request 284). Hence ``apigateway:PUT`` on ``/tags/*``, which also
  covers ``TagResource``; ``TagResource`` is checked as ``apigateway:PATCH`` on the tagged
  resource too (fact 136, iann0036/iam-dataset pull request 39), which the tag actions and
  ``rotate`` declare on ``/clientcertificates/*``.
- SSM parameters: ``arn:${Partition}:ssm:${Region}:${Account}:parameter/`` and the name without
  its leading slash; S3: ``arn:${Partition}:s3:::{bucket}/{key}`` (objects) and
  ``arn:${Partition}:s3:::{bucket}`` (``s3:ListBucket``).
- ``tag:GetResources`` has no resource-level permissions (``"*"``); ``sts:GetCallerIdentity``
  needs no permission at all.
"""
import logging
import re
import string

log = logging.getLogger("custodian.apigw-client-certificate.iam")

PARTITION = "${Partition}"
REGION = "${Region}"
ACCOUNT = "${Account}"
EVERYTHING = "*"
VERSION = "2012-10-17"

# Template fields that are known before the run: the rest (certificate, API, stage) match any.
TEMPLATE_PLACEHOLDERS = {"region": REGION, "account_id": ACCOUNT}
# IAM's special characters, when a template holds them literally (IAM policy variables).
LITERAL = {"*": "${*}", "?": "${?}", "$": "${$}"}


def apigateway_arn(path):
    """``arn:${Partition}:apigateway:${Region}::`` + an API Gateway resource path such as
    ``/clientcertificates`` or ``/restapis/*/stages``."""
    return "arn:%s:apigateway:%s::%s" % (PARTITION, REGION, path)


def wildcard(template):
    """A destination template (``/trust/{api_id}/{stage_name}``) as an IAM pattern: each field
    matches anything (``*``), except ``{region}`` and ``{account_id}``, which become
    ``${Region}`` and ``${Account}``. Literal ``*``, ``?`` and ``$`` are escaped for IAM."""
    text = ""
    for literal, field, _, _ in string.Formatter().parse(template):
        text += "".join(LITERAL.get(c, c) for c in literal)
        if field is None:
            continue
        value = TEMPLATE_PLACEHOLDERS.get(field, "*")
        if value == "*" and text.endswith("*") and not text.endswith("${*}"):
            continue  # "**" matches what "*" matches
        text += value
    return text


# c7n's own elements whose calls are known, by class; each action that an element declares
# and this table does not map gets "*".
FALLBACK = {
    # aws.rest-stage (c7n/resources/apigw.py): GetRestApis through its parent rest-api, then
    # GetStages of each REST API. It declares tag:GetResources (universal_taggable), an action
    # that has no resource-level permissions.
    "c7n.resources.apigw.RestStage": {
        "apigateway:GET": [apigateway_arn("/restapis"), apigateway_arn("/restapis/*/stages")],
        "tag:GetResources": [EVERYTHING],
    },
    # aws.apigwv2-stage (c7n/resources/apigw.py, ApiGatewayV2Stage): GetApis through its parent
    # aws.apigwv2, then GetStages of each API; tag:GetResources as above.
    "c7n.resources.apigw.ApiGatewayV2Stage": {
        "apigateway:GET": [apigateway_arn("/apis"), apigateway_arn("/apis/*/stages")],
        "tag:GetResources": [EVERYTHING],
    },
}


class PolicyFileError(Exception):
    """A policy file that cannot be read or is not valid; ``str()`` names the file, and the
    policy when one is at fault."""

    def __init__(self, path, policy, detail):
        self.path, self.policy = path, policy
        detail = " ".join(str(detail).split())
        if policy is not None and "policy:%s" % policy not in detail:
            detail = "policy:%s: %s" % (policy, detail)
        super().__init__("%s: %s" % (path, detail))


def element_resources(element):
    """{action: [patterns]} for one element of a policy (see the module's docstring)."""
    from c7n.filters.core import BooleanGroupFilter

    declared = set(element.get_permissions())
    if hasattr(element, "iam_resources"):
        mapped = {action: list(patterns)
                  for action, patterns in element.iam_resources().items()}
        for action in sorted(declared - set(mapped)):
            log.warning("%s declares %s but its iam_resources() does not map it: '*'",
                        type(element).__name__, action)
    elif isinstance(element, BooleanGroupFilter):
        mapped = {}
        for child in element.filters:
            merge(mapped, element_resources(child))
    else:
        known = FALLBACK.get("%s.%s" % (type(element).__module__, type(element).__qualname__),
                             {})
        mapped = {action: list(known[action]) for action in declared if action in known}
    for action in declared - set(mapped):
        mapped[action] = [EVERYTHING]
    return mapped


def merge(into, resources):
    for action, patterns in resources.items():
        into.setdefault(action, set()).update(patterns)
    return into


# What the function of a Config-rule mode calls besides its policy's elements (c7n's
# ConfigRuleMode and ConfigPollRuleMode, docs/aws-behaviour.md, facts 28 and 86): its
# evaluations, and for a poll rule the earlier ones, to mark those now gone NOT_APPLICABLE.
# Neither has a resource a source here settles: "*".
MODE_RESOURCES = {
    "config-rule": {"config:PutEvaluations": [EVERYTHING]},
    "config-poll-rule": {"config:PutEvaluations": [EVERYTHING],
                         "config:GetComplianceDetailsByConfigRule": [EVERYTHING]},
}


def policy_resources(policy):
    """{action: {patterns}} for one c7n policy: its resource manager, filters and actions,
    and what its mode's function calls (``MODE_RESOURCES``)."""
    manager = policy.resource_manager
    found = {}
    for element in [manager] + list(manager.filters) + list(manager.actions):
        merge(found, element_resources(element))
    merge(found, MODE_RESOURCES.get((policy.data.get("mode") or {}).get("type"), {}))
    return found


def schema_error_policy(error, data):
    """The name of the policy a c7n schema error is about, if it says."""
    path = list(getattr(error, "absolute_path", ()))
    if len(path) > 1 and path[0] == "policies" and isinstance(path[1], int):
        policy = data["policies"][path[1]]
        if isinstance(policy, dict):
            return policy.get("name")
    return None


def load_policies(path, options):
    """The policies of one file, validated by c7n as ``c7n.policy.load`` does (structure,
    resource types, schema, then each policy's own ``validate()``), each failure a
    ``PolicyFileError`` that names the file and the policy."""
    import yaml
    from c7n.exceptions import PolicyValidationError
    from c7n.policy import PolicyCollection
    from c7n.resources import load_resources
    from c7n.schema import validate as schema_validate
    from c7n.structure import StructureParser
    from c7n.utils import load_file

    try:
        data = load_file(path)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise PolicyFileError(path, None, e) from e
    structure = StructureParser()
    try:
        structure.validate(data)
    except PolicyValidationError as e:
        raise PolicyFileError(path, None, e) from e
    rtypes = structure.get_resource_types(data)
    missing = set(load_resources(rtypes))
    for p in data["policies"]:
        for rtype in p["resource"] if isinstance(p["resource"], list) else [p["resource"]]:
            rtype = rtype if "." in rtype else "aws.%s" % rtype
            if rtype in missing:
                raise PolicyFileError(path, p["name"], "unknown resource %s" % rtype)
    errors = schema_validate(data, resource_types=rtypes)
    if errors:
        error = errors[0]
        raise PolicyFileError(path, schema_error_policy(error, data),
                              getattr(error, "message", error))
    collection = PolicyCollection.from_data(data, options)
    for policy in collection:
        try:
            policy.validate()
        except PolicyValidationError as e:
            raise PolicyFileError(path, policy.name, e) from e
    return list(collection)


def fill(pattern, partition, region, account):
    return pattern.replace(PARTITION, partition).replace(REGION, region) \
        .replace(ACCOUNT, account)


def statement_id(actions):
    """``ApiGatewayGet``, ``SsmGetParameterPutParameter``: the statement's actions, by service."""
    services = {"apigateway": "ApiGateway", "securityhub": "SecurityHub"}
    parts, last = [], None
    for action in sorted(actions):
        service, _, name = action.partition(":")
        if service != last:
            parts.append(services.get(service, service.capitalize()))
            last = service
        parts.append(name.capitalize() if name.isupper() else name)  # GET -> Get
    return re.sub("[^A-Za-z0-9]", "", "".join(parts))


def document(resources, partition="aws", region="*", account="*"):
    """The policy document for {action: [patterns]}: placeholders filled, one statement per
    distinct list of resources, everything sorted."""
    by_resources = {}
    for action, patterns in resources.items():
        arns = {fill(p, partition, region, account) for p in patterns}
        key = (EVERYTHING,) if EVERYTHING in arns else tuple(sorted(arns))
        by_resources.setdefault(key, []).append(action)
    statements = [{"Sid": statement_id(actions), "Effect": "Allow",
                   "Action": sorted(actions), "Resource": list(arns)}
                  for arns, actions in by_resources.items()]
    return {"Version": VERSION, "Statement": sorted(statements, key=lambda s: s["Action"])}


def policy_document(policy_files, partition="aws", region="*", account="*"):
    """The IAM policy document that the policies in these files need, loaded and validated by
    c7n. Raises ``PolicyFileError`` naming the file (and policy) that is not valid."""
    return document(policy_resources_of(policy_files, region, account), partition, region,
                    account)


def policy_resources_of(policy_files, region="*", account="*"):
    """{action: {patterns}} that the policies in these files need (see ``policy_document``)."""
    from c7n.config import Config

    import c7n_apigw_certs
    c7n_apigw_certs.initialize()
    if isinstance(policy_files, str):
        policy_files = [policy_files]
    options = Config.empty(region="us-east-1" if region == EVERYTHING else region,
                           account_id=None if account == EVERYTHING else account)
    found = {}
    for path in policy_files:
        for policy in load_policies(path, options):
            merge(found, policy_resources(policy))
    return found

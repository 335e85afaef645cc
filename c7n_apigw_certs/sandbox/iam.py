"""IAM for the calls the plugin makes: an assumed role's keys get only what its policies allow.

Who is checked: a caller whose access key was issued by moto's STS ``AssumeRole`` into a role
that exists in moto's IAM (``iam.create_role``), which is what ``custodian run --assume
ROLE_ARN`` and ``c7n-org`` do. The sandbox's root test keys (``AWS_ACCESS_KEY_ID=testing``), IAM
users' keys, and keys of a role that was assumed but never created in IAM stay unrestricted, so
that tests which do not care about IAM (c7n-org across made-up accounts included) are unchanged.
Only ``apigateway``, ``apigatewayv2``, ``ssm``, ``s3``, ``events`` and ``sqs`` (``events.py``),
``acm`` and ``acm-pca`` are checked; STS, IAM and other
services are not.

What is evaluated: the role's inline policies (``put_role_policy``) and attached managed
policies (their default version), plus the session policy passed to ``AssumeRole``, if any,
which can only narrow what the role allows. An explicit ``Deny`` wins; otherwise an ``Allow``
whose ``Action`` and ``Resource`` match is needed (the IAM User Guide, "Policy evaluation
logic"). ``Action``/``NotAction`` and ``Resource``/``NotResource`` take IAM's wildcards ``*`` and
``?``; actions match case-insensitively, resources case-sensitively (IAM User Guide, "IAM JSON
policy elements: Action / Resource"). ``Condition`` is not evaluated and never widens access: an
``Allow`` with a condition does not match, a ``Deny`` with a condition does. Permissions
boundaries, resource policies (bucket policies) and SCPs are not modelled.

The request's action and resource, as the Service Authorization Reference defines them
(sources in ``target()``):

- API Gateway, REST and WebSocket: ``apigateway:<HTTP method>`` on
  ``arn:aws:apigateway:<region>::<path>``; WebSocket paths lose their ``/v2`` prefix
  (``/apis/{id}/stages/{name}``); tag calls are on ``/tags/<URL-encoded resource ARN>``.
  A REST ``TagResource`` needs two: ``apigateway:PUT`` on that Tags resource *and*
  ``apigateway:PATCH`` on the tagged resource's own ARN (docs/aws-behaviour.md, fact 136),
  checked in that order; a WebSocket ``TagResource`` (POST) and ``UntagResource`` only the
  one, as no source says more.
- SSM: ``ssm:<operation>`` on ``arn:aws:ssm:<region>:<account>:parameter/<name without its
  leading slash>``, a ``name:version`` or ``name:label`` selector dropped; ``GetParameters`` and
  ``DeleteParameters`` need every name; ``GetParametersByPath`` the path;
  ``DescribeParameters`` and unknown operations ``*``.
- ACM: ``acm:<operation>`` on the request's ``CertificateArn`` (the ``certificate*`` resource
  type: DescribeCertificate, GetCertificate, tags, DeleteCertificate, RenewCertificate...);
  ``ListCertificates``, ``RequestCertificate``, a first ``ImportCertificate`` and the account
  configuration on ``*`` (docs/aws-behaviour.md, fact 119).
- AWS Private CA: ``acm-pca:<operation>`` on the request's ``CertificateAuthorityArn`` (or
  ``ResourceArn`` for the policy calls); ``CreateCertificateAuthority`` and
  ``ListCertificateAuthorities`` on ``*`` (fact 119).
- Elastic Load Balancing trust stores: ``elasticloadbalancing:<Action>`` (``_elb_target``);
  refusals 403 ``AccessDenied`` (fact 167).
- S3: ``GetObject``/``HeadObject`` -> ``s3:GetObject``, ``PutObject`` -> ``s3:PutObject``,
  ``DeleteObject`` -> ``s3:DeleteObject`` on ``arn:aws:s3:::bucket/key``; ``ListObjects``,
  ``ListObjectsV2``, ``HeadBucket`` -> ``s3:ListBucket``, ``CreateBucket`` -> ``s3:CreateBucket``
  on ``arn:aws:s3:::bucket``; other operations ``s3:<operation>`` on the object or bucket ARN.

A refusal has AWS's message, ``User: <assumed-role ARN> is not authorized to perform: <action>
on resource: <ARN> because no identity-based policy allows the <action> action`` ("... with an
explicit deny in an identity-based policy" when a Deny matched), with the code and status that
AWS's refusals show in public reports:

- API Gateway, REST and WebSocket: HTTP 403 ``AccessDeniedException`` (aws-amplify/
  amplify-category-api#736 for the message; Open-SL/serverless-permission-generator#12,
  "Status Code: 403; Error Code: AccessDeniedException", for the status).
- SSM, ACM and AWS Private CA: HTTP 400 ``AccessDeniedException``, not 403: they speak JSON
  1.1, whose refusals are 400 (github-aws-runners/terraform-aws-github-runner#1279 shows
  ``httpStatusCode: 400``; aws-samples/aws-workshop-for-kubernetes#250 "Status Code: 400").
- S3: HTTP 403 ``AccessDenied``, the ARN in double quotes (aws-ia/terraform-aws-bedrock#41).
  ``GetObject``/``HeadObject`` of a missing key answers 403 ``AccessDenied`` naming
  ``s3:ListBucket`` on the bucket when the caller may not list it, and 404 ``NoSuchKey`` only
  when it may (docs/aws-behaviour.md, fact 25; S3 API reference, GetObject, "Permissions"; the
  refusal names ListBucket as in trendmicro/cloudone-filestorage-deployment-templates#144).

Credentials that ``AssumeRole`` issues expire ``DurationSeconds`` (default 3600) after the
sandbox's "now", not the real one (moto uses the real clock): a ``custodian`` run whose clock is
moved days ahead together with the sandbox's (sandbox/timeshift.py) gets credentials that are valid
at its own "now", as in AWS, where both clocks agree.
"""
import functools
import collections
import datetime
import json
import re
from urllib.parse import quote, unquote

from moto.iam.models import get_account_id_from, iam_backends
from moto.s3.exceptions import AccessDeniedByLock, MissingBucket
from moto.s3.models import FakeKey, s3_backends
from moto.sts.models import AssumedRole, sts_backends
from moto.utilities.utils import get_partition

from . import events
from .controls import CONTROLS

SERVICES = {"apigateway", "apigatewayv2", "ssm", "s3", "acm", "acm-pca",
            "elasticloadbalancing"} | events.SERVICES
_JSON_11 = {"ssm", "acm", "acm-pca"}  # refusals are 400 AccessDeniedException

Principal = collections.namedtuple("Principal", "arn documents session_documents")
Refusal = collections.namedtuple("Refusal", "code status message")

# S3 operations whose action differs from their name, and the resource they act on.
_S3_ACTIONS = {
    "GetObject": ("s3:GetObject", "object"),
    "HeadObject": ("s3:GetObject", "object"),
    "PutObject": ("s3:PutObject", "object"),
    "DeleteObject": ("s3:DeleteObject", "object"),
    "ListObjects": ("s3:ListBucket", "bucket"),
    "ListObjectsV2": ("s3:ListBucket", "bucket"),
    "HeadBucket": ("s3:ListBucket", "bucket"),
    "CreateBucket": ("s3:CreateBucket", "bucket"),
}
_SSM_BY_NAME = {"GetParameter", "PutParameter", "DeleteParameter", "GetParameterHistory",
                "LabelParameterVersion", "UnlabelParameterVersion"}
_SSM_BY_NAMES = {"GetParameters", "DeleteParameters"}
_SSM_TAGS = {"AddTagsToResource", "RemoveTagsFromResource", "ListTagsForResource"}


def principal(access_key, region):
    """The assumed role behind an access key, or None when the key is unrestricted."""
    account = get_account_id_from(access_key)
    partition = get_partition(region)
    iam = iam_backends[account][partition]
    key = iam.access_keys.get(access_key)
    role_arn = getattr(key, "role_arn", None)
    if not role_arn:
        return None
    role = next((r for r in iam.get_roles() if r.arn == role_arn), None)
    if role is None:
        return None  # assumed but never created: unrestricted, as before IAM was emulated
    session = sts_backends[account][partition].get_assumed_role_from_access_key(access_key)
    documents = list(role.policies.values())
    for policy in role.managed_policies.values():
        documents += [v.document for v in policy.versions
                      if v.version_id == policy.default_version_id]
    session_documents = [session.policy] if session is not None and session.policy else []
    arn = session.arn if session is not None else role_arn
    return Principal(arn, documents, session_documents)


def _pattern(text, case_sensitive):
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(regex + r"\Z", 0 if case_sensitive else re.IGNORECASE)


def _listed(value):
    return [value] if isinstance(value, str) else list(value or ())


def _matches(statement, key, value, case_sensitive):
    """Whether the statement's ``Action``/``NotAction`` (or ``Resource``/``NotResource``) covers
    the value; None when it has neither."""
    if key in statement:
        return any(_pattern(p, case_sensitive).match(value) for p in _listed(statement[key]))
    if "Not" + key in statement:
        return not any(_pattern(p, case_sensitive).match(value)
                       for p in _listed(statement["Not" + key]))
    return None


def _statements(document):
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            document = json.loads(unquote(document))
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else statements


def evaluate(documents, action, resource):
    """``"deny"`` (an explicit Deny matched), ``"allow"``, or ``"implicit"`` (no Allow)."""
    allowed = False
    for document in documents:
        for statement in _statements(document):
            action_hit = _matches(statement, "Action", action, case_sensitive=False)
            resource_hit = _matches(statement, "Resource", resource, case_sensitive=True)
            if not (action_hit and resource_hit):
                continue
            if statement.get("Effect") == "Deny":
                return "deny"  # a condition does not narrow a Deny here: never a silent allow
            if statement.get("Effect") == "Allow" and "Condition" not in statement:
                allowed = True
    return "allow" if allowed else "implicit"


def decide(who, action, resource):
    """The outcome for a principal: the role's policies, narrowed by the session policy."""
    outcome = evaluate(who.documents, action, resource)
    if outcome == "allow" and who.session_documents:
        outcome = evaluate(who.session_documents, action, resource)
    return outcome


def _ssm_resource(region, account, name):
    if name.startswith("arn:"):
        head, _, tail = name.partition(":parameter/")
        return "%s:parameter/%s" % (head, tail.split(":", 1)[0])
    return "arn:aws:ssm:%s:%s:parameter/%s" % (region, account, name.split(":", 1)[0].lstrip("/"))


def target(call):
    """[(action, resource)] the request needs, each of which must be allowed.

    Sources: Service Authorization Reference, "Actions, resources, and condition keys for
    Amazon API Gateway Management" (and "... Management V2"): actions are the HTTP methods, the
    resource types are paths under ``arn:${Partition}:apigateway:${Region}::``; API Gateway
    developer guide, "API Gateway Amazon Resource Name (ARN) reference": ``Tags`` is
    ``arn:partition:apigateway:region::/tags/url-encoded-resource-arn``, as AWS's own refusal of a
    TagResource shows (``... on resource: arn:aws:apigateway:us-east-1::/tags/arn%3Aaws%3A...``,
    mattclay/aws-terminator#284). "Actions ... for AWS Systems Manager": parameter operations on
    the ``parameter`` resource type ``arn:${Partition}:ssm:${Region}:${Account}:parameter/
    ${ParameterNameWithoutLeadingSlash}``. "Actions ... for Amazon S3": ``GetObject`` (also
    HeadObject), ``PutObject`` on ``object``; ``ListBucket`` (ListObjects, ListObjectsV2,
    HeadBucket) and ``CreateBucket`` on ``bucket``.
    """
    region, account = call.region, call.account
    if call.service in ("apigateway", "apigatewayv2"):
        path = call.request.path
        if call.service == "apigatewayv2" and path.startswith("/v2/"):
            path = path[len("/v2"):]
        tagged = None
        if path.startswith("/tags/"):
            tagged = unquote(path[len("/tags/"):]).rstrip("/")
            path = "/tags/" + quote(tagged, safe="")
        path = path.rstrip("/") or "/"
        needed = [("apigateway:" + call.request.method.upper(),
                   "arn:aws:apigateway:%s::%s" % (region, path))]
        if call.service == "apigateway" and call.operation == "TagResource" and tagged:
            # Fact 136: REST TagResource is also checked as PATCH on the tagged resource.
            needed.append(("apigateway:PATCH", tagged))
        return needed
    if call.service == "ssm":
        action, body = "ssm:" + call.operation, call.body
        if call.operation in _SSM_BY_NAME and isinstance(body.get("Name"), str):
            return [(action, _ssm_resource(region, account, body["Name"]))]
        if call.operation in _SSM_BY_NAMES and isinstance(body.get("Names"), list):
            return [(action, _ssm_resource(region, account, n)) for n in body["Names"]]
        if call.operation == "GetParametersByPath" and isinstance(body.get("Path"), str):
            return [(action, _ssm_resource(region, account, body["Path"]))]
        if call.operation in _SSM_TAGS and body.get("ResourceType") == "Parameter":
            return [(action, _ssm_resource(region, account, body.get("ResourceId", "")))]
        return [(action, "*")]
    if call.service == "acm":
        arn = call.body.get("CertificateArn")
        return [("acm:" + call.operation, arn if isinstance(arn, str) and arn else "*")]
    if call.service == "acm-pca":
        arn = call.body.get("CertificateAuthorityArn") or call.body.get("ResourceArn")
        return [("acm-pca:" + call.operation, arn if isinstance(arn, str) and arn else "*")]
    if call.service == "elasticloadbalancing":
        return _elb_target(call)
    if call.service == "s3":
        bucket, key = call.params.get("Bucket"), call.params.get("Key")
        action, kind = _S3_ACTIONS.get(
            call.operation, ("s3:" + call.operation, "object" if key else "bucket"))
        if not bucket:
            return [(action, "*")]
        arn = "arn:aws:s3:::%s" % bucket
        return [(action, "%s/%s" % (arn, key) if kind == "object" and key else arn)]
    return events.target(call)  # EventBridge, SQS


def _elb_target(call):
    """ELB trust stores (docs/aws-behaviour.md, fact 167): ``CreateTrustStore`` on the ARN
    the trust store will have (its id unknown: ``truststore/<name>/*``), ``ModifyTrustStore``
    and ``DeleteTrustStore`` on its ARN, describes and anything else on ``*``."""
    form = call.request.form
    operation = form.get("Action") or call.operation
    action = "elasticloadbalancing:" + operation
    if operation == "CreateTrustStore" and form.get("Name"):
        return [(action, "arn:aws:elasticloadbalancing:%s:%s:truststore/%s/*" % (
            call.region, call.account, form["Name"]))]
    if operation in ("ModifyTrustStore", "DeleteTrustStore") and form.get("TrustStoreArn"):
        return [(action, form["TrustStoreArn"])]
    return [(action, "*")]


def refusal(service, who, action, resource, outcome):
    """AWS's refusal: status, code and message (sources in the module docstring)."""
    why = ("with an explicit deny in an identity-based policy" if outcome == "deny"
           else "because no identity-based policy allows the %s action" % action)
    shown = '"%s"' % resource if service == "s3" else resource
    message = "User: %s is not authorized to perform: %s on resource: %s %s" % (
        who.arn, action, shown, why)
    if service == "s3":
        return Refusal("AccessDenied", 403, message)
    if service in _JSON_11:
        return Refusal("AccessDeniedException", 400, message)
    if service == "elasticloadbalancing":
        return Refusal("AccessDenied", 403, message)
    return Refusal("AccessDeniedException", 403, message)


def _missing_object(call):
    """True when the bucket exists and holds no object under the key (fact 25)."""
    bucket, key = call.params.get("Bucket"), call.params.get("Key")
    backend = s3_backends[call.account][get_partition(call.region)]
    try:
        found = backend.get_bucket(bucket)
    except (MissingBucket, AccessDeniedByLock):  # moto answers these itself
        return False
    return not (key in found.keys and isinstance(found.keys[key], FakeKey))


def authorize(call):
    """None when the call may proceed, else the ``Refusal`` to answer."""
    if call.service not in SERVICES:
        return None
    who = principal(call.access_key, call.region)
    if who is None:
        return None
    for action, resource in target(call):
        outcome = decide(who, action, resource)
        if outcome != "allow":
            return refusal(call.service, who, action, resource, outcome)
    if call.service == "s3" and call.operation in ("GetObject", "HeadObject"):
        bucket_arn = "arn:aws:s3:::%s" % call.params.get("Bucket")
        outcome = decide(who, "s3:ListBucket", bucket_arn)
        if outcome != "allow" and _missing_object(call):
            return refusal("s3", who, "s3:ListBucket", bucket_arn, outcome)
    return None


def _assumed_role_init(original):
    """Expiration on the sandbox's clock (see the module docstring)."""
    def __init__(self, account_id, region_name, access_key, role_session_name, role_arn, policy,
                 duration, external_id):
        original(self, account_id, region_name, access_key, role_session_name, role_arn, policy,
                 duration, external_id)
        self.expiration = (CONTROLS.clock.now().replace(tzinfo=None)
                           + datetime.timedelta(seconds=int(duration)))
    return __init__


@functools.cache  # once per process: every install patches moto in place
def install():
    """Put moto's STS on the sandbox clock. Idempotent."""
    AssumedRole.__init__ = _assumed_role_init(AssumedRole.__init__)

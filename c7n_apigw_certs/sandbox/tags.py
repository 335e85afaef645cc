"""Tags on API Gateway resources: the rules API Gateway applies to callers, and where the tags of
each kind of resource live in the sandbox.

Rules for callers (docs/aws-behaviour.md, fact 35), applied by ``GenerateClientCertificate`` and
``TagResource`` (REST and WebSocket) and answered with ``BadRequestException`` (400):

- a key must not start with ``aws:``, in any case: AWS's message is "Invalid tag key. Tag keys
  cannot start with 'aws:' (case insensitive)" (as reported in serverless/serverless#9223 and
  aws/aws-cdk#23738; the API reference of TagResource and GenerateClientCertificate: "must not
  start with aws:");
- keys of at most 128 characters, values of at most 256 (the same API reference);
- at most 50 tags on a resource, counting the tags it has and the new keys; ``aws:`` tags do not
  count ("Tags with this prefix do not count against your tags-per-resource limit", AWS's tag
  restrictions, e.g. the AWS Batch user guide, "Tag restrictions").

The messages of the last two are ours: no source records API Gateway's.

IAM comes first (``iam.py``): a REST ``TagResource`` reaches these rules only when the caller
may ``apigateway:PUT`` on ``/tags/<URL-encoded ARN>`` *and* ``apigateway:PATCH`` on the tagged
resource's ARN (fact 136).

Tags that only AWS can set (CloudFormation's ``aws:cloudformation:stack-name``,
``aws:cloudformation:logical-id``, ``aws:cloudformation:stack-id``: fact 29) are put on a
resource through the control ``POST /_sandbox/tags`` (``put_tags``), which bypasses the rules,
as CloudFormation does.
"""
import re

from moto.apigateway.exceptions import BadRequestException, NotFoundException
from moto.apigateway.models import apigateway_backends
from moto.apigatewayv2.models import apigatewayv2_backends

MAX_TAGS = 50
MAX_KEY = 128
MAX_VALUE = 256
RESERVED = "aws:"

_ARN = re.compile(r"arn:[^:]+:apigateway:(?P<region>[^:]+)::(?P<path>/.+)$")
_KINDS = [
    ("certificate", re.compile(r"/clientcertificates/(?P<id>[^/]+)$")),
    ("rest-api", re.compile(r"/restapis/(?P<id>[^/]+)$")),
    ("rest-stage", re.compile(r"/restapis/(?P<id>[^/]+)/stages/(?P<stage>[^/]+)$")),
    ("api", re.compile(r"/apis/(?P<id>[^/]+)$")),
    ("stage", re.compile(r"/apis/(?P<id>[^/]+)/stages/(?P<stage>[^/]+)$")),
]


def check_caller_tags(existing, new):
    """Raise ``BadRequestException`` when a caller may not add ``new`` to ``existing`` tags."""
    for key, value in (new or {}).items():
        if key.lower().startswith(RESERVED):
            raise BadRequestException(
                "Invalid tag key. Tag keys cannot start with 'aws:' (case insensitive)")
        if len(key) > MAX_KEY:
            raise BadRequestException(
                "Invalid tag key: %s. Tag keys can be at most %d characters" % (key, MAX_KEY))
        if len(value) > MAX_VALUE:
            raise BadRequestException(
                "Invalid tag value for key %s. Tag values can be at most %d characters"
                % (key, MAX_VALUE))
    counted = {k for k in list(existing or {}) + list(new or {})
               if not k.lower().startswith(RESERVED)}
    if len(counted) > MAX_TAGS:
        raise BadRequestException(
            "Too many tags: a resource can have at most %d tags (%d requested)"
            % (MAX_TAGS, len(counted)))


def parse(arn):
    """(kind, region, match) of an API Gateway ARN that the sandbox keeps tags for, else None."""
    found = _ARN.match(arn or "")
    if not found:
        return None
    for kind, pattern in _KINDS:
        match = pattern.match(found.group("path"))
        if match:
            return kind, found.group("region"), match
    return None


class _Holder:
    """Reads and changes the tags of one resource, wherever the sandbox keeps them."""

    def __init__(self, read, write, remove):
        self.read, self.write, self.remove = read, write, remove


def _dict_holder(thing):
    """A resource whose ``tags`` attribute is a dict (or None)."""
    def write(tags):
        thing.tags = dict(thing.tags or {}, **tags)

    def remove(keys):
        thing.tags = {k: v for k, v in (thing.tags or {}).items() if k not in keys}
    return _Holder(lambda: dict(thing.tags or {}), write, remove)


def _holder(account, arn):
    """The ``_Holder`` of the resource an ARN names; NotFoundException if there is none."""
    from .apigateway import get_certificate
    parsed = parse(arn)
    if parsed is None:
        raise NotFoundException("Invalid resource ARN for tags: %s" % arn)
    kind, region, match = parsed
    if kind == "certificate":
        return _dict_holder(get_certificate(account, region, match.group("id")))
    if kind == "rest-api":
        return _dict_holder(apigateway_backends[account][region].get_rest_api(match.group("id")))
    if kind == "rest-stage":
        return _dict_holder(apigateway_backends[account][region].get_stage(
            match.group("id"), match.group("stage")))
    v2 = apigatewayv2_backends[account][region]
    if kind == "api":
        v2.get_api(match.group("id"))
        return _Holder(lambda: dict(v2.get_tags(arn)), lambda tags: v2.tag_resource(arn, tags),
                       lambda keys: v2.untag_resource(arn, list(keys)))
    # A WebSocket stage: GetStage shows the stage's own tags, GetTags moto's tagger's. Both.
    own = _dict_holder(v2.get_stage(match.group("id"), match.group("stage")))

    def write(tags):
        own.write(tags)
        v2.tag_resource(arn, tags)

    def remove(keys):
        own.remove(keys)
        v2.untag_resource(arn, list(keys))
    return _Holder(lambda: dict(own.read(), **v2.get_tags(arn)), write, remove)


def current_tags(account, arn):
    return _holder(account, arn).read()


def put_tags(account, arn, tags, caller=True):
    """Add tags to the resource an ARN names; ``caller=False`` (the control) skips the rules."""
    holder = _holder(account, arn)
    if caller:
        check_caller_tags(holder.read(), tags)
    holder.write(dict(tags))


def remove_tags(account, arn, keys):
    _holder(account, arn).remove(set(keys))

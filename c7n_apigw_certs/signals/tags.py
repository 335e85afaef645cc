"""c7n's tag workflow on client certificates: ``tag``, ``remove-tag``, ``mark-for-op`` and the
``marked-for-op`` filter, so the usual "mark now, notify, act in N days" policies work.

The actions are c7n's own (``c7n.tags``: values, lookups, ``{now}``, batching, the mark's
``op@date`` format); only the call differs: API Gateway tags one resource at a time, by its ARN
(``TagResource``/``UntagResource`` on ``arn:{partition}:apigateway:{region}::/clientcertificates/
{id}``, docs/aws-behaviour.md, fact 4). ``marked-for-op`` is c7n's ``TagActionFilter`` as is: it
reads the ``Tags`` that the resource's listing already carries.

Failures: each certificate is tagged on its own. One that vanished since the listing is skipped
(logged); any other error is logged with the certificate's id, the other certificates are still
tagged, and the action then fails as c7n's tag actions fail (c7n logs "Exception with tags" and
re-raises: the policy is reported as failed and ``custodian run`` exits 2, fact 53).

Keys the actions refuse at validation, before anything is called:

- ``aws:`` in any case: API Gateway refuses them from callers (facts 35, 60); a policy that
  would fail on every certificate fails at load time instead, naming the key.
- ``c7n:rotation:``: the state of ``rotate`` (``plan.py``). Removing ``c7n:rotation:successor``
  makes the next run generate a second successor; removing ``c7n:rotation:predecessor`` turns
  a published successor that no stage uses yet into a plain unused certificate, which ``delete``
  then removes; writing ``c7n:rotation:retire-after`` moves the delete window. No policy should
  do that in bulk; to end a rotation by hand, untag the certificate with the AWS CLI.
"""
from botocore.exceptions import BotoCoreError, ClientError
from c7n.exceptions import PolicyExecutionError, PolicyValidationError
from c7n.tags import (
    DEFAULT_TAG, RemoveTag, Tag, TagActionFilter, TagDelayedAction, tag_value_schema)
from c7n.utils import type_schema

from ..audit import kinds
from ..rotation.plan import PREFIX as ROTATION_PREFIX
from ..audit.resource import ClientCertificate, certificate_arn
from ..rotation.retire import error_text

RESERVED_PREFIX = "aws:"
MAX_KEY = 128  # characters in an API Gateway tag key (fact 35)
KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_KEY}
CERTIFICATE_PATH = "/clientcertificates/*"


def tags_path():
    """The Tags resource of any client certificate: ``/tags/`` + the certificate's ARN,
    URL-encoded whole (fact 56), its id a wildcard; partition and region stay placeholders."""
    return "/tags/arn%3A${Partition}%3Aapigateway%3A${Region}%3A%3A%2Fclientcertificates%2F*"


def tag_resources():
    """``TagResource``: ``apigateway:PUT`` on the certificate's Tags resource, and
    ``apigateway:PATCH`` on the certificate itself, which a test against AWS found needed
    (fact 136; iann0036/iam-dataset pull request 39). The sandbox checks both."""
    from ..iam import apigateway_arn
    return {"apigateway:PUT": [apigateway_arn(tags_path())],
            "apigateway:PATCH": [apigateway_arn(CERTIFICATE_PATH)]}


def check_keys(element, keys):
    """Refuse, at validation, a key API Gateway refuses or one of the rotation's state tags."""
    policy = element.manager.data.get("name") if element.manager else "?"
    for key in keys:
        if key.lower().startswith(RESERVED_PREFIX):
            raise PolicyValidationError(
                "policy:%s %s: tag key %r: API Gateway refuses keys that start with 'aws:' "
                "(in any case)" % (policy, element.type, key))
        if len(key) > MAX_KEY:
            raise PolicyValidationError(
                "policy:%s %s: tag key %r is longer than API Gateway's %d characters"
                % (policy, element.type, key, MAX_KEY))
        if key.startswith(ROTATION_PREFIX):
            raise PolicyValidationError(
                "policy:%s %s: tag key %r is the state of a rotation (%s*), which only the "
                "rotate action may change" % (policy, element.type, key, ROTATION_PREFIX))


def call_each(action, resource_set, call, **params):
    """``call(resourceArn=..., **params)`` for each certificate, through c7n's retry. A
    certificate that vanished is skipped; other failures are logged with the id and raised
    together once the others are done."""
    region = action.manager.config.region
    failures = []
    for cert in resource_set:
        cert_id = cert["clientCertificateId"]
        refusal = kinds.of(cert).tag_refusal(cert)
        if refusal:
            action.log.warning("client-certificate:%s %s skipped: %s", cert_id, action.type,
                               refusal)
            continue
        try:
            done = action.manager.retry(
                call, resourceArn=certificate_arn(region, cert_id),
                ignore_err_codes=("NotFoundException",), **params)
        except (ClientError, BotoCoreError) as e:
            action.log.error("client-certificate:%s %s failed: %s", cert_id, action.type,
                             error_text(e))
            failures.append("client-certificate:%s %s" % (cert_id, error_text(e)))
            continue
        if done is None:
            action.log.info("client-certificate:%s is gone: %s skipped", cert_id, action.type)
    if failures:
        raise PolicyExecutionError("%s failed for %d certificate(s): %s" % (
            action.type, len(failures), "; ".join(failures)))


@ClientCertificate.action_registry.register("tag")
class TagClientCertificate(Tag):
    """Add or overwrite tags on client certificates (``TagResource`` on each one's ARN).

    c7n's ``tag``: ``tags`` (a mapping) or ``key`` and ``value``; values may use ``{now}``,
    ``{account_id}`` and ``{region}``, or look up a field of the certificate (``type:
    resource``). Keys of at most 128 characters; ``aws:`` keys (API Gateway refuses them) and
    the rotation's ``c7n:rotation:*`` state are refused at validation. A certificate that fails
    (for example one that already has 50 tags) is logged with its id, the others are tagged,
    and the policy then fails.

    :example:

    .. code-block:: yaml

        policies:
          - name: apigw-client-certificates-tag-expiring
            resource: aws.apigw-client-certificate
            filters:
              - type: expiring
                days: 30
            actions:
              - type: tag
                tags:
                  certificate-expires:
                    type: resource
                    key: '"c7n:expires"'
                  certificate-owner-notified: "{now}"
    """

    # One schema of our own: c7n's carries the alias "mark", which is not registered here.
    schema = type_schema(
        "tag",
        tags={"type": "object", "minProperties": 1, "propertyNames": KEY_SCHEMA,
              "additionalProperties": tag_value_schema()},
        key=KEY_SCHEMA, value=tag_value_schema(), tag=KEY_SCHEMA)
    schema_alias = False
    permissions = ("apigateway:PUT", "apigateway:PATCH")

    def iam_resources(self):
        return tag_resources()

    def validate(self):
        super().validate()
        keys = list(self.data.get("tags") or {})
        if "value" in self.data:
            keys.append(self.data.get("key") or self.data.get("tag") or DEFAULT_TAG)
        if not keys:
            raise PolicyValidationError(
                "policy:%s tag: nothing to write: give tags, or key and value"
                % self.manager.data.get("name"))
        check_keys(self, keys)
        return self

    def process_resource_set(self, client, resource_set, tags):
        call_each(self, resource_set, client.tag_resource,
                  tags={t["Key"]: t["Value"] for t in tags})


@ClientCertificate.action_registry.register("remove-tag")
class RemoveTagClientCertificate(RemoveTag):
    """Remove tags from client certificates (``UntagResource`` on each one's ARN).

    c7n's ``remove-tag``: ``tags``, the keys to remove (c7n's ``maid_status`` when left out, the
    default tag of ``mark-for-op``); a key a certificate does not have is no error. The
    rotation's ``c7n:rotation:*`` state is refused at validation: only ``rotate`` may change it.
    A certificate that fails is logged with its id, the others are untagged, and the policy then
    fails.

    :example:

    .. code-block:: yaml

        policies:
          - name: apigw-client-certificates-unmark-used
            resource: aws.apigw-client-certificate
            filters:
              - "tag:apigw-cert-cleanup": present
              - type: in-use
            actions:
              - type: remove-tag
                tags: [apigw-cert-cleanup]
    """

    schema = type_schema(
        "remove-tag", tags={"type": "array", "minItems": 1, "items": KEY_SCHEMA})
    schema_alias = False
    # UntagResource is listed under DELETE and PATCH (fact 40): DELETE on the Tags resource is
    # what the request is; PATCH on the certificate as for TagResource (unverified for untag).
    permissions = ("apigateway:DELETE", "apigateway:PATCH")

    def iam_resources(self):
        from ..iam import apigateway_arn
        return {"apigateway:DELETE": [apigateway_arn(tags_path())],
                "apigateway:PATCH": [apigateway_arn(CERTIFICATE_PATH)]}

    def validate(self):
        super().validate()
        check_keys(self, self.data.get("tags", ()))
        return self

    def process_resource_set(self, client, resource_set, tag_keys):
        call_each(self, resource_set, client.untag_resource, tagKeys=list(tag_keys))


@ClientCertificate.action_registry.register("mark-for-op")
class MarkClientCertificateForOp(TagDelayedAction):
    """Tag client certificates for an action in the future, which ``marked-for-op`` then
    selects: c7n's ``mark-for-op``: ``op``, an action of this resource such as ``delete`` or
    ``rotate``; ``days`` and ``hours`` from now (0 when left out: give one, as c7n warns);
    ``tag``, default ``maid_status``; ``msg``, whose end must stay ``{op}@{action_date}``;
    ``tz``, default ``utc``. The tag's value ends in ``op@YYYY/MM/DD``, due from the start of
    that day, or with ``hours`` in ``op@YYYY/MM/DD HHMM UTC``, due from that minute. Marking
    again moves the date: filter out what is already marked. The tag's key is held to the
    rules of ``tag``.

    :example:

    .. code-block:: yaml

        policies:
          - name: apigw-client-certificates-mark-unused
            resource: aws.apigw-client-certificate
            filters:
              - type: in-use
                state: false
              - "tag:apigw-cert-cleanup": absent
            actions:
              - type: mark-for-op
                tag: apigw-cert-cleanup
                op: delete
                days: 14
    """

    schema_alias = False

    def iam_resources(self):
        return tag_resources()

    def validate(self):
        super().validate()
        check_keys(self, [self.data.get("tag", DEFAULT_TAG)])
        return self

    def process_resource_set(self, client, resource_set, tags):
        call_each(self, resource_set, client.tag_resource,
                  tags={t["Key"]: t["Value"] for t in tags})


# c7n's own filter, as is: "op@date" in the tag, read from the listing's Tags.
ClientCertificate.filter_registry.register("marked-for-op", TagActionFilter)

"""Who owns a certificate or a stage: a template (CloudFormation, CDK, SAM; Terraform, Pulumi
and others when a policy names the tags that mark them), or nobody. Pure: from tags that the
listings already carry, at no extra call.

- CloudFormation tags every taggable resource it creates with ``aws:cloudformation:stack-name``,
  ``aws:cloudformation:logical-id`` and ``aws:cloudformation:stack-id`` (CDK and SAM deploy
  through CloudFormation): docs/aws-behaviour.md, fact 29. Nobody else may set ``aws:`` keys
  (fact 35), so the tags are proof.
- Terraform, Pulumi and the like leave no tag of their own (fact 30), unless their provider's
  default tags set one: a policy names those tags (``owner-tags``: ``{ManagedBy: terraform}``;
  a value of ``null`` matches any value).
- A stage is owned if its own tags say so, or its API's: CloudFormation tags a REST API and a
  stage that it creates, but a stage made by an ``AWS::ApiGateway::Deployment``'s
  ``StageName`` carries no tags of its own, and API Gateway does not list inherited tags
  (fact 35).
"""
STACK = "aws:cloudformation:stack-name"
LOGICAL_ID = "aws:cloudformation:logical-id"
STACK_ID = "aws:cloudformation:stack-id"
CLOUDFORMATION = "cloudformation"

OWNER_TAGS_SCHEMA = {
    "type": "object",
    "additionalProperties": {"type": ["string", "null"]},
}


def owner(tags, owner_tags=None):
    """The owner that these tags name, or None: ``{"tool", "stack", "logical-id"}`` for
    CloudFormation, ``{"tool": "tag", "tag": "Key=Value"}`` for a policy's marker tag."""
    tags = tags or {}
    if tags.get(STACK):
        found = {"tool": CLOUDFORMATION, "stack": tags[STACK]}
        if tags.get(LOGICAL_ID):
            found["logical-id"] = tags[LOGICAL_ID]
        return found
    for key, value in sorted((owner_tags or {}).items()):
        if key in tags and (value is None or tags[key] == value):
            return {"tool": "tag", "tag": "%s=%s" % (key, tags[key])}
    return None


def stage_owner(stage, owner_tags=None):
    """A stage entry's owner (``usage.stage_entry``): its own tags first, then its API's."""
    found = owner(stage.get("tags"), owner_tags)
    if found is None:
        found = owner(stage.get("apiTags"), owner_tags)
        if found is not None:
            found = dict(found, via="api")
    return found


def describe(found):
    """``stack orders-prod (logical id ProdStage)`` or ``tag ManagedBy=terraform``."""
    if found is None:
        return "no template"
    if found["tool"] == CLOUDFORMATION:
        text = "stack %s" % found["stack"]
        if found.get("logical-id"):
            text += " (logical id %s%s)" % (found["logical-id"],
                                            ", of its API" if found.get("via") else "")
        return text
    return "tag %s" % found["tag"]


def annotate(cert, owner_tags=None):
    """``c7n:owner`` on the certificate and ``owner`` on each of its ``c7n:stages`` entries;
    returns whether the certificate or any of its stages is owned."""
    cert["c7n:owner"] = owner(cert.get("tags"), owner_tags)
    owned = cert["c7n:owner"] is not None
    for stage in cert.get("c7n:stages") or ():
        stage["owner"] = stage_owner(stage, owner_tags)
        owned = owned or stage["owner"] is not None
    return owned

"""AWS Config evaluations that name the certificate: c7n's ``config-poll-rule`` and
``config-rule`` modes, registered again under their own names by subclasses whose
NON_COMPLIANT ``Annotation`` says which certificate the stage presents and why.

c7n 0.9.53 writes the annotation from the policy's name only ("The resource is not compliant
with policy:NAME.", docs/aws-behaviour.md, fact 137). A mode of a new name would not do: c7n's
deployer creates a Config rule only for the mode names ``config-rule`` and ``config-poll-rule``
(``PolicyLambda.get_events``, ``ConfigRule.get_rule_params``), so a ``config-poll-rule``
policy must keep that name. c7n finds a policy's mode class by name in its ``execution``
registry, each time (``Policy.get_execution_mode``), and a later ``register`` of a name
replaces the class. So the plugin registers these subclasses under c7n's names when c7n loads
a resource it extends (``aws.rest-stage``, ``aws.apigwv2-stage``) or its own: in the Lambda
function the plugin's handler initializes the plugin before c7n loads the policy's resource
(``handler.py``), so the function runs these classes from c7n's archive, and ``custodian
run`` deploys the rule exactly as before (deployment is c7n's ``LambdaMode.provision``,
inherited unchanged).

Only the policies on those resources are touched: for any other resource each method hands
over to c7n's own, unchanged. On ours the evaluations are c7n's (types, ids, compliance,
ordering, the NOT_APPLICABLE of resources gone), and only the NON_COMPLIANT annotation
differs: it names each certificate (API Gateway's id or the ACM ARN), its kind, its expiry date
and days left, or its condition (expired, renewal-failed...), within AWS Config's 256
characters (``ANNOTATION_LIMIT``, fact 170), shortened rather than refused. A resource that
carries no certificate annotation (a policy without the ``expiring`` filter) keeps c7n's text.

A poll rule on ``aws.apigw-client-certificate`` posts ``AWS::ApiGateway::ClientCertificate``,
which AWS Config may refuse (fact 135): the refusal is logged by name, with what to use
instead, before c7n's "error during policy execution".
"""
import json
import logging

from .. import RESOURCE_TYPE
from ..audit.filters import CONDITION, CONDITION_DETAIL, DAYS_LEFT, DEFAULT_DAYS, EXPIRED, EXPIRES

log = logging.getLogger("custodian.apigw-client-certificate")

# botocore's config model: Evaluation.Annotation is StringWithCharLimit256, 1-256 characters
# (docs/aws-behaviour.md, fact 170). botocore checks only the minimum before sending.
ANNOTATION_LIMIT = 256
ELLIPSIS = "..."
STAGE_CERTIFICATE = "c7n:client-certificate"  # filters.StageCertificateExpiring.annotation_key
OURS = ("aws.rest-stage", "aws.apigwv2-stage", RESOURCE_TYPE, "rest-stage", "apigwv2-stage",
        RESOURCE_TYPE.split(".", 1)[1])
# What a certificate's condition says beyond its date (kinds.py): "expires" and "expired" are
# the date itself.
PLAIN = ("expires", "expired")


def is_ours(policy):
    return policy.resource_type in OURS


def certificate_of(resource):
    """The certificate a resource's annotation describes: a stage's ``c7n:client-certificate``
    (the ``expiring`` filter on a stage), or the certificate resource itself once ``expiring``
    annotated it; None otherwise."""
    cert = resource.get(STAGE_CERTIFICATE)
    if isinstance(cert, dict):
        return cert
    if EXPIRES in resource and "clientCertificateId" in resource:
        return resource
    return None


def describe(cert, window=None):
    """One certificate for a person: id or ARN, kind, expiry date, days left, condition."""
    kind = cert.get("kind") or "generated"
    expires, days = cert.get(EXPIRES), cert.get(DAYS_LEFT)
    date = expires[:10] if isinstance(expires, str) else None
    condition = cert.get(CONDITION)
    if date is None:
        when = "expiry unknown"
    elif cert.get(EXPIRED) or (days is not None and days < 0):
        when = "EXPIRED %s" % date + (", %d day(s) ago" % -days if days and days < 0 else "")
    else:
        when = "expires %s" % date + (", %d day(s) left" % days if days is not None else "")
        if window is not None and condition in PLAIN:
            when += " (window: %d days)" % window
    text = "%s (%s): %s" % (cert.get("clientCertificateId"), kind, when)
    if condition and condition not in PLAIN:
        detail = cert.get(CONDITION_DETAIL)
        text += "; %s" % condition + (": %s" % detail if detail and detail != condition else "")
    return text


def urgency(cert):
    """Broken or unknown first, then the fewest days left."""
    days = cert.get(DAYS_LEFT)
    return (days is not None, days if days is not None else 0)


def parent(resource):
    return resource.get("c7n:parent-id") or resource.get("ApiId") or resource.get("restApiId")


def fit(head, parts, limit=ANNOTATION_LIMIT):
    """``head`` then as many ``parts`` as fit in ``limit`` characters (the most urgent first),
    saying how many were left out; a first part longer than the room is cut with an ellipsis.
    Never empty, never longer than ``limit``."""
    for shown in range(len(parts), 0, -1):
        left = len(parts) - shown
        text = head + "; ".join(parts[:shown]) + (" (+%d more)" % left if left else "")
        if len(text) <= limit:
            return text
    left = len(parts) - 1
    tail = " (+%d more)" % left if left else ""
    return (head + parts[0])[:limit - len(ELLIPSIS) - len(tail)] + ELLIPSIS + tail


def window_of(policy_data):
    """The ``days`` of the policy's top-level ``expiring`` filter, or None."""
    for f in policy_data.get("filters") or ():
        if isinstance(f, dict) and f.get("type") == "expiring":
            return f.get("days", DEFAULT_DAYS)
    return None


def annotation(resources, window=None, limit=ANNOTATION_LIMIT):
    """The NON_COMPLIANT annotation of one evaluation (one resource id: several WebSocket
    stages of one name share it, fact 137), or None when no resource names a certificate."""
    found = sorted(((r, c) for r in resources for c in [certificate_of(r)] if c),
                   key=lambda rc: urgency(rc[1]))
    if not found:
        return None
    if len(resources) > 1:
        head = "%d stages of this name: " % len(resources)
        parts = ["api %s presents %s" % (parent(r), describe(c)) for r, c in found]
    elif STAGE_CERTIFICATE in found[0][0]:
        head, parts = "Stage presents client certificate ", [describe(found[0][1], window)]
    else:
        head, parts = "Client certificate ", [describe(found[0][1], window)]
    return fit(head, parts, limit)


def refused_type(error):
    """AWS's refusal of an unrecorded type (fact 135), or None."""
    response = getattr(error, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    message = response.get("Error", {}).get("Message", "")
    if code == "InvalidParameterValueException" and "The resource type" in message:
        return message
    return None


def log_refusal(policy, resource_type, rule, error):
    message = refused_type(error)
    if message is None:
        return
    log.error(
        "policy:%s AWS Config refused the evaluations of %s (rule %s): it accepts only types it "
        "records, and client certificates are not one (docs/aws-behaviour.md, fact 135); "
        "Config shows no result for this rule. Evaluate the stages that present the "
        "certificates instead: policies/config-poll-rule.yml. AWS said: %s",
        policy.name, resource_type, rule, message[:300])


def _modes():
    """The two subclasses, built on first use (c7n.policy is imported by then)."""
    from botocore.exceptions import ClientError
    from c7n import utils
    from c7n.policy import ConfigPollRuleMode, ConfigRuleMode, PullMode

    class CertificateConfigPollRuleMode(ConfigPollRuleMode):
        __doc__ = ConfigPollRuleMode.__doc__ + """
    c7n-apigw-certs: on aws.rest-stage, aws.apigwv2-stage and aws.apigw-client-certificate,
    each NON_COMPLIANT evaluation's Annotation names the certificate, its kind, its expiry
    and days left or its condition (at most 256 characters).
    """

        def put_evaluations(self, client, token, evaluations):
            try:
                return super().put_evaluations(client, token, evaluations)
            except ClientError as error:
                if is_ours(self.policy):
                    log_refusal(self.policy, evaluations[0]["ComplianceResourceType"],
                                getattr(self, "_rule", None), error)
                raise

        def run(self, event, lambda_context):
            if not is_ours(self.policy):
                return super().run(event, lambda_context)
            # c7n 0.9.53's ConfigPollRuleMode.run, keeping each matched resource (not only its
            # id) so that its evaluation can name the certificate.
            cfg_event = json.loads(event['invokingEvent'])
            model = self.policy.resource_manager.resource_type
            resource_type = model.cfn_type
            resource_id = model.config_id or model.id
            client = self._get_client()
            token = event.get('resultToken')
            cfg_rule_name = self._rule = event['configRuleName']
            ordering_ts = cfg_event['notificationCreationTime']
            policy_data = self.policy.data.copy()
            policy_data.pop("filters", None)

            matched = {}
            for r in PullMode.run(self):
                matched.setdefault(r[resource_id], []).append(r)
            unmatched = set()
            for r in self.policy.resource_manager.get_resource_manager(
                    self.policy.resource_type, policy_data).resources():
                if r[resource_id] not in matched:
                    unmatched.add(r[resource_id])

            fallback = 'The resource is not compliant with policy:%s.' % self.policy.name
            non_compliant_evals = [dict(
                ComplianceResourceType=resource_type,
                ComplianceResourceId=rid,
                ComplianceType='NON_COMPLIANT',
                OrderingTimestamp=ordering_ts,
                Annotation=annotation(found, window_of(self.policy.data)) or fallback)
                for rid, found in matched.items()]
            compliant_evals = [dict(
                ComplianceResourceType=resource_type,
                ComplianceResourceId=rid,
                ComplianceType='COMPLIANT',
                OrderingTimestamp=ordering_ts,
                Annotation='The resource is compliant with policy:%s.' % self.policy.name)
                for rid in unmatched]
            evaluations = non_compliant_evals + compliant_evals
            evaluations += self.get_obsolete_evaluations(
                client, cfg_rule_name, ordering_ts, evaluations)
            if evaluations and token:
                self.put_evaluations(client, token, evaluations)
            return list(matched)

    class CertificateConfigRuleMode(ConfigRuleMode):
        __doc__ = ConfigRuleMode.__doc__ + """
    c7n-apigw-certs: on aws.rest-stage and aws.apigwv2-stage, a NON_COMPLIANT evaluation's
    Annotation names the certificate the stage presents, its kind, its expiry and days left
    or its condition (at most 256 characters).
    """

        def run(self, event, lambda_context):
            if not is_ours(self.policy):
                return super().run(event, lambda_context)
            # c7n 0.9.53's ConfigRuleMode.run, with the matched stage's certificate named.
            self.cfg_event = json.loads(event['invokingEvent'])
            cfg_item = self.cfg_event['configurationItem']
            evaluation = None
            resources = []
            if event.get('eventLeftScope') or cfg_item['configurationItemStatus'] in (
                    "ResourceDeleted", "ResourceNotRecorded", "ResourceDeletedNotRecorded"):
                evaluation = {'annotation': 'The rule does not apply.',
                              'compliance_type': 'NOT_APPLICABLE'}
            if evaluation is None:
                resources = super(ConfigRuleMode, self).run(event, lambda_context)
                match = self.policy.data['mode'].get('match-compliant', False)
                self.policy.log.info(
                    "found resources:%d match-compliant:%s", len(resources or ()), match)
                if (match and resources) or (not match and not resources):
                    evaluation = {
                        'compliance_type': 'COMPLIANT',
                        'annotation': 'The resource is compliant with policy:%s.' % (
                            self.policy.name)}
                else:
                    evaluation = {
                        'compliance_type': 'NON_COMPLIANT',
                        'annotation': annotation(resources or [], window_of(self.policy.data))
                        or 'Resource is not compliant with policy:%s' % self.policy.name}
            client = utils.local_session(self.policy.session_factory).client('config')
            client.put_evaluations(
                Evaluations=[{
                    'ComplianceResourceType': cfg_item['resourceType'],
                    'ComplianceResourceId': cfg_item['resourceId'],
                    'ComplianceType': evaluation['compliance_type'],
                    'Annotation': evaluation['annotation'],
                    'OrderingTimestamp': cfg_item['configurationItemCaptureTime']}],
                ResultToken=event.get('resultToken', 'No token found.'))
            return resources

    return CertificateConfigPollRuleMode, CertificateConfigRuleMode


_registered = None


def register():
    """Register the subclasses under c7n's names (once). Safe to call again."""
    global _registered
    if _registered is not None:
        return _registered
    from c7n.policy import execution
    poll, change = _modes()
    execution.register("config-poll-rule", poll)
    execution.register("config-rule", change)
    _registered = (poll, change)
    return _registered

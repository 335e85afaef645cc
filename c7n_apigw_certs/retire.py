"""Deleting certificates, only when fresh listings say no stage uses them: the ``delete`` action,
and the helpers ``rotate`` uses for its last step.

Whether ``DeleteClientCertificate`` refuses a certificate that a stage references is not
documented (aws-facts.md, fact 7), so we never rely on it: every deletion follows a fresh
listing of every REST and WebSocket stage of the region, made in the same run after all of its
changes.
"""
from botocore.exceptions import ClientError
from c7n.actions import BaseAction
from c7n.utils import local_session, type_schema

from . import usage
from .resource import ClientCertificate


class ActionFailed(Exception):
    """Raised at the end of a run that could not handle some certificates, after the others
    were handled, so ``custodian run`` exits non-zero and a pipeline sees it."""


def stage_labels(stages):
    return ", ".join("stage:%s/%s" % (s["apiId"], s["stageName"]) for s in stages)


def still_used(log, cert_id, fresh):
    """Why not to delete, logged, when the fresh listings show a stage using the certificate."""
    users = fresh.get(cert_id)
    if not users:
        return None
    reason = "used by %s" % stage_labels(users)
    log.warning("client-certificate:%s is %s: not deleted", cert_id, reason)
    return reason


def delete_certificate(client, retry, cert_id):
    """Delete; a certificate already gone is not an error (c7n's retry ignores the code and
    answers None). True if it existed."""
    return retry(client.delete_client_certificate, clientCertificateId=cert_id,
                 ignore_err_codes=("NotFoundException",)) is not None


@ClientCertificate.action_registry.register("delete")
class DeleteClientCertificate(BaseAction):
    """Delete client certificates that no REST or WebSocket stage uses.

    Right before deleting, the stages of the region are listed afresh; a certificate that a
    stage uses is not deleted, and the stages are logged. Each certificate records the outcome
    under ``c7n:deleted`` (true, or why not).

    :example:

    .. code-block:: yaml

        policies:
          - name: apigw-client-certificates-delete-unused-expired
            resource: aws.apigw-client-certificate
            filters:
              - type: in-use
                state: false
              - type: expiring
                days: 0
            actions:
              - type: delete
    """

    schema = type_schema("delete")
    permissions = ("apigateway:GET", "apigateway:DELETE")

    def process(self, resources):
        region = self.manager.config.region
        client = local_session(self.manager.session_factory).client(
            "apigateway", region_name=region)
        fresh = usage.stages_by_certificate(self.manager.session_factory, region)
        failures = []
        for cert in resources:
            cert_id = cert["clientCertificateId"]
            reason = still_used(self.log, cert_id, fresh)
            if reason:
                cert["c7n:deleted"] = reason
                continue
            try:
                existed = delete_certificate(client, self.manager.retry, cert_id)
            except ClientError as e:
                cert["c7n:deleted"] = "failed: %s" % e
                failures.append("client-certificate:%s %s" % (cert_id, e))
                self.log.error("client-certificate:%s delete failed: %s", cert_id, e)
                continue
            cert["c7n:deleted"] = True if existed else "already gone"
            self.log.info("client-certificate:%s deleted", cert_id)
        if failures:
            raise ActionFailed("delete failed for %d certificate(s): %s" % (
                len(failures), "; ".join(failures)))
        return resources

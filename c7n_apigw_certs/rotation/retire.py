"""Deleting certificates, only when fresh listings say no stage uses them and no rotation needs
them: the ``Retirer`` that ``rotate`` (its last step, and successors orphaned by a race) and
``delete`` share, and the ``delete`` action.

Whether ``DeleteClientCertificate`` refuses a certificate that a stage references is not
documented (docs/aws-behaviour.md, fact 7), so we never rely on it: every deletion follows a
fresh listing of every REST and WebSocket stage of the region, made in the same run after all of
its changes.
"""

from botocore.exceptions import BotoCoreError, ClientError
from c7n.actions import BaseAction
from c7n.exceptions import PolicyExecutionError
from c7n.utils import local_session, type_schema

from ..audit import kinds, owners, usage
from .clock import AccountClock, SkewError
from ..trust.bundles import BundleError
from .plan import PREDECESSOR, StateError, delete_blocker
from ..audit.resource import ClientCertificate
from ..trust.stores import StoreError

# What an AWS call, a store or a state tag can raise for one certificate: caught per
# certificate, logged with its id, and reported at the end of the run.
FAILURES = (ClientError, BotoCoreError, StoreError, BundleError, StateError)


def stage_labels(stages):
    return ", ".join("stage:%s/%s" % (s["apiId"], s["stageName"]) for s in stages)


def error_text(error):
    if isinstance(error, (StoreError, StateError)):
        return str(error)
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        return "%s: %s" % (err.get("Code"), err.get("Message", ""))
    return "%s: %s" % (type(error).__name__, error)


class Retirer:
    """Fresh stage listings, then deletions that they allow. One per action run."""

    def __init__(self, manager, client, log):
        self.manager, self.client, self.log = manager, client, log
        self.fresh = None

    def refresh(self):
        """List every stage of the region now; what was listed before is no proof."""
        self.fresh = usage.stages_by_certificate(
            self.manager.session_factory, self.manager.config.region)
        return self.fresh

    def in_use(self, cert_id):
        """Why not to delete, logged, when the fresh listings show a stage using it."""
        users = self.fresh.get(cert_id)
        if not users:
            return None
        reason = "used by %s" % stage_labels(users)
        self.log.warning("client-certificate:%s is %s: not deleted", cert_id, reason)
        return reason

    def delete(self, cert_id):
        """Delete; a certificate already gone is not an error (c7n's retry ignores the code and
        answers None). True if it existed."""
        return self.manager.retry(
            self.client.delete_client_certificate, clientCertificateId=cert_id,
            ignore_err_codes=("NotFoundException",)) is not None


@ClientCertificate.action_registry.register("delete")
class DeleteClientCertificate(BaseAction):
    """Delete client certificates that no REST or WebSocket stage uses and no rotation needs.

    Right before deleting, the certificates and the stages of the region are listed afresh. A
    certificate is not deleted, and the reason is logged and recorded under ``c7n:deleted``,
    when a stage uses it, when it is the successor of a rotation that is unfinished, or when it
    is the old certificate of a rotation whose stages are not switched (or not deployed) yet or
    whose ``delete-after-days`` window has not passed, and when a template owns it
    (CloudFormation's tags, or the policy's ``owner-tags``: see ``template-owned``): remove it
    from the template instead. An ACM certificate that a stage presents is never deleted
    (``c7n:deleted`` says why). ``c7n:deleted`` is true otherwise.

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

    schema = type_schema("delete", **{"owner-tags": owners.OWNER_TAGS_SCHEMA})
    permissions = ("apigateway:GET", "apigateway:DELETE")

    def iam_resources(self):
        from ..iam import apigateway_arn
        return {"apigateway:GET": [apigateway_arn(p) for p in usage.LISTING_PATHS],
                "apigateway:DELETE": [apigateway_arn("/clientcertificates/*")]}

    def process(self, resources):
        clock = AccountClock()  # the delete window is compared on AWS's time, as rotate's
        client = clock.watch(local_session(self.manager.session_factory).client(
            "apigateway", region_name=self.manager.config.region))
        retirer = Retirer(self.manager, client, self.log)
        failures = []
        try:
            listing = usage.certificates(client)
            retirer.refresh()
        except FAILURES as e:
            raise PolicyExecutionError("delete: the fresh listings failed, nothing deleted: %s"
                                       % error_text(e)) from e
        try:
            clock.check()
        except SkewError as e:
            raise PolicyExecutionError("delete: nothing deleted: %s" % e) from e
        now = clock.now()
        for cert in resources:
            cert_id = cert["clientCertificateId"]
            refusal = kinds.of(cert).delete_refusal(cert)
            if refusal:  # an ACM certificate: never deleted (docs/aws-behaviour.md, fact 109)
                cert["c7n:deleted"] = refusal
                self.log.warning("client-certificate:%s is %s: not deleted", cert_id, refusal)
                continue
            try:
                cert["c7n:deleted"] = self.delete_one(retirer, listing, cert_id, now)
            except FAILURES as e:
                cert["c7n:deleted"] = "failed: %s" % error_text(e)
                failures.append("client-certificate:%s %s" % (cert_id, error_text(e)))
                self.log.error("client-certificate:%s delete failed: %s", cert_id,
                               error_text(e))
        if failures:
            raise PolicyExecutionError("delete failed for %d certificate(s): %s" % (
                len(failures), "; ".join(failures)))
        return resources

    def delete_one(self, retirer, listing, cert_id, now):
        current = listing.get(cert_id)
        if current is None:
            return "already gone"
        reason = retirer.in_use(cert_id) or self.owned(current) or \
            self.rotation_blocker(listing, current, retirer, now)
        if reason:
            return reason
        retirer.delete(cert_id)
        self.log.info("client-certificate:%s deleted", cert_id)
        return True

    def owned(self, cert):
        """A certificate a template owns is never deleted behind it: CloudFormation's next
        update would fail, Terraform would make a new one (docs/aws-behaviour.md, 29-30)."""
        found = owners.owner(cert.get("tags"), self.data.get("owner-tags"))
        if found is None:
            return None
        reason = "owned by %s: remove it from the template instead" % owners.describe(found)
        self.log.warning("client-certificate:%s is %s: not deleted",
                         cert["clientCertificateId"], reason)
        return reason

    def rotation_blocker(self, listing, cert, retirer, now):
        tags = cert.get("tags", {})
        predecessor = listing.get(tags.get(PREDECESSOR))
        pred_state = None if predecessor is None else (
            predecessor.get("tags", {}), bool(retirer.fresh.get(tags[PREDECESSOR])))
        reason = delete_blocker(tags, pred_state, now)
        if reason:
            self.log.warning("client-certificate:%s is %s: not deleted",
                             cert["clientCertificateId"], reason)
        return reason

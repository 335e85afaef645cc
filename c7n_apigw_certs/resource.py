"""The resource ``aws.apigw-client-certificate``: every client certificate of a region, each
with the stages that use it.

Unlike c7n's ``aws.rest-client-certificate`` (docs/aws-behaviour.md, fact 15) it knows where each
certificate is used, has its ARN (fact 4), and reports readable fields.
"""
import datetime

from c7n import query
from c7n.manager import resources
from c7n.utils import get_partition
from dateutil.tz import tzutc

from . import owners, report, usage

STAGES = "c7n:stages"


def certificate_arn(region, cert_id):
    return "arn:%s:apigateway:%s::/clientcertificates/%s" % (
        get_partition(region), region, cert_id)


class DescribeClientCertificate(query.DescribeSource):

    def augment(self, resources):
        """Tags in c7n's shape, and the stages that use each certificate. The stages are listed
        once for the whole region, and only if there is a certificate to annotate."""
        if not resources:
            return resources
        from .filters import days_left, effective_expiry  # the filters import this module
        now = datetime.datetime.now(tz=tzutc())
        region = self.manager.config.region
        users = usage.stages_by_certificate(
            self.manager.session_factory, self.manager.config.region)
        # Kept for the actions of this run: rotate must know every stage behind a shared
        # trust bundle, including stages of certificates the filters did not select.
        self.manager.stages_by_certificate = users
        for r in resources:
            r["Tags"] = [{"Key": k, "Value": v} for k, v in r.get("tags", {}).items()]
            r[STAGES] = users.get(r["clientCertificateId"], [])
            owners.annotate(r)  # CloudFormation's own tags; a policy's marker tags: the filters
            # The report's plain columns, as of the listing; the expiring filter rewrites them
            # with its own values (report.py).
            expires, _ = effective_expiry(r)
            report.annotate(r, expires, days_left(expires, now), expires <= now, r[STAGES],
                            region)
        return resources


@resources.register("apigw-client-certificate")
class ClientCertificate(query.QueryResourceManager):
    """API Gateway client certificates, with the REST and WebSocket stages that use them.

    Each certificate carries ``c7n:stages``: one entry per stage that references it, with
    ``protocol`` (``REST`` or ``WEBSOCKET``), ``apiId``, ``apiName``, ``stageName`` and a
    ``label`` for reports. The audit needs only ``apigateway:GET``.

    :example:

    .. code-block:: yaml

        policies:
          - name: apigw-client-certificates-in-use
            resource: aws.apigw-client-certificate
            filters:
              - type: in-use
    """

    class resource_type(query.TypeInfo):
        service = "apigateway"
        # GetClientCertificates pages of at most 500 (fact 6): the fewest calls.
        enum_spec = ("get_client_certificates", "items", {"limit": usage.PAGE_SIZE})
        id = "clientCertificateId"
        name = "clientCertificateId"
        date = "createdDate"
        arn_type = "clientcertificates"
        cfn_type = "AWS::ApiGateway::ClientCertificate"
        permissions_enum = ("apigateway:GET",)
        # Plain keys that the listing and the expiring filter write (report.py): c7n heads
        # each column with its expression, so these read as headers.
        default_report_fields = report.FIELDS

    source_mapping = {"describe": DescribeClientCertificate}

    def validate(self):
        """In a Lambda mode, the handler and package that load the plugin there (handler.py)."""
        from .handler import complete_mode
        complete_mode(self.ctx.policy)

    def resources(self, query=None, augment=True):
        """c7n runs no action for a policy that matched nothing (``PullMode.run``), so an
        action that must also act on the absence of matches, ``post-finding`` archiving the
        findings of certificates that were rotated away, is given its turn here
        (``on_no_match``). Nothing happens with ``--dryrun``."""
        found = super().resources(query, augment)
        if not found and not self.config.get("dryrun"):
            for action in self.actions:
                if hasattr(action, "on_no_match"):
                    action.on_no_match()
        return found

    def iam_resources(self):
        """``apigateway:GET`` on the certificate listing, and on the REST and WebSocket stage
        listings that ``c7n:stages`` comes from (``usage.py``; see ``iam.py``)."""
        from .iam import apigateway_arn
        return {"apigateway:GET": [apigateway_arn(p) for p in usage.LISTING_PATHS]}

    def get_arns(self, resources):
        """``arn:{partition}:apigateway:{region}::/clientcertificates/{id}`` (fact 4): no
        account in API Gateway ARNs, which c7n's generic ARN would add."""
        return [certificate_arn(self.config.region, r["clientCertificateId"])
                for r in resources]

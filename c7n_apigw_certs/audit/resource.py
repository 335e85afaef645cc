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

from . import acm, config_source, kinds, owners, report, usage

STAGES = "c7n:stages"
STAGES_SOURCE = "c7n:stages-source"


def certificate_arn(region, cert_id):
    return "arn:%s:apigateway:%s::/clientcertificates/%s" % (
        get_partition(region), region, cert_id)


class DescribeClientCertificate(query.DescribeSource):

    def get_permissions(self):
        """API Gateway's listings, and ACM's and ACM PCA's reads of the certificates stages
        present (``acm.py``)."""
        return super().get_permissions() + sorted(acm.IAM_RESOURCES)

    def augment(self, resources):
        """Tags in c7n's shape, and the stages that use each certificate; then every ACM
        certificate that a stage presents (``acm.py``), which API Gateway does not list (fact
        97). The stages are listed once for the whole region, even with no certificate of API
        Gateway's: a stage may present an ACM certificate."""
        from .filters import report_columns  # the filters import this module
        now = datetime.datetime.now(tz=tzutc())
        region = self.manager.config.region
        users, origin = self.stage_users()
        # With a view of the stages that may be incomplete (``source: config``), a certificate
        # no stage was seen on has unknown stages (None), not none ([]).
        unseen = None if origin and origin.get("incomplete") else []
        for r in resources:
            r["kind"] = kinds.Generated.name
            r[STAGES] = users.get(r["clientCertificateId"], unseen)
        resources = list(resources) + acm.Reader(
            self.manager.session_factory, region, self.manager.config.account_id).records(users)
        for r in resources:
            r["Tags"] = [{"Key": k, "Value": v} for k, v in r.get("tags", {}).items()]
            if origin:
                r[STAGES_SOURCE] = dict(origin)
            owners.annotate(r)  # CloudFormation's own tags; a policy's marker tags: the filters
            # The report's plain columns, as of the listing; the expiring filter rewrites them
            # with its own values (report.py).
            report_columns(r, now, region)
        return resources

    def stage_users(self):
        """({certificate id: stages}, None): API Gateway's listings, made now."""
        users = usage.stages_by_certificate(
            self.manager.session_factory, self.manager.config.region)
        # Kept for the actions of this run: rotate must know every stage behind a shared
        # trust bundle, including stages of certificates the filters did not select.
        self.manager.stages_by_certificate = users
        return users, None


class ConfigClientCertificate(DescribeClientCertificate):
    """``source: config``: the certificates from API Gateway (Config does not record them), the
    stages that use them from AWS Config (``config_source.py``), optionally through an
    aggregator (``query: [{aggregator: NAME}]``)."""

    def get_permissions(self):
        return super().get_permissions() + sorted(config_source.iam_resources(
            self.manager.data))

    def stage_users(self):
        """({certificate id: stages}, the ``c7n:stages-source`` annotation) from AWS Config.

        Config lags behind API Gateway (docs/aws-behaviour.md, fact 26), so nothing is kept
        for the actions: ``rotate`` and ``delete`` list every stage from API Gateway before
        they switch or delete (``rotate.Rotation.execute``, ``retire.Retirer``)."""
        opts = config_source.options(self.manager.data)
        region = self.manager.config.region
        users, newest, unknown = config_source.stages_by_certificate(
            self.manager.session_factory, region, self.manager.config.account_id, opts)
        self.manager.stages_by_certificate = None
        origin = {"source": "config", "aggregator": opts.get("aggregator"),
                  "captured": newest, "incomplete": dict(sorted(unknown.items()))}
        for protocol, reason in sorted(unknown.items()):
            config_source.log.warning(
                "stages of %s from AWS Config: %s stages unknown (%s): a certificate seen on "
                "no stage has c7n:stages null, which in-use matches neither way; record "
                "AWS::ApiGateway::Stage and AWS::ApiGatewayV2::Stage, or use the default "
                "source", region, protocol, reason)
        config_source.log.info(
            "stages of %s from AWS Config%s: %d stage(s) with a client certificate, newest "
            "item captured %s; Config records changes with a delay, so a stage changed since "
            "then may be missing or out of date (rotate and delete list stages from API "
            "Gateway)", region, " (aggregator %s)" % opts["aggregator"] if opts.get(
                "aggregator") else "", sum(len(v) for v in users.values()), newest or "never")
        return users, origin


@resources.register("apigw-client-certificate")
class ClientCertificate(query.QueryResourceManager):
    """API Gateway client certificates, with the REST and WebSocket stages that use them.

    Each certificate carries ``c7n:stages``: one entry per stage that references it, with
    ``protocol`` (``REST`` or ``WEBSOCKET``), ``apiId``, ``apiName``, ``stageName`` and a
    ``label`` for reports. The audit needs only ``apigateway:GET``.

    With ``source: config`` the stages come from AWS Config (one query per region, or an
    aggregator's: ``query: [{aggregator: NAME}]``), and each certificate carries
    ``c7n:stages-source``: ``source``, ``aggregator`` and ``captured``, the newest capture time
    of what Config answered. Config lags behind changes; ``rotate`` and ``delete`` still list
    every stage from API Gateway before they act.

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

    source_mapping = {"describe": DescribeClientCertificate, "config": ConfigClientCertificate}

    def validate(self):
        """``query`` only with ``source: config``, and only its options (``config_source``); in
        a Lambda mode, the handler and package that load the plugin there (handler.py)."""
        config_source.validate(self.data, self.source_type)
        from ..handler import complete_mode
        complete_mode(self.ctx.policy)
        return self

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
        listings that ``c7n:stages`` comes from (``usage.py``; see ``iam.py``); with ``source:
        config``, the Config query instead of the stage listings (no resource-level
        permissions: ``*``)."""
        from ..iam import apigateway_arn
        if self.source_type == "config":
            return dict(config_source.iam_resources(self.data), **acm.IAM_RESOURCES,
                        **{"apigateway:GET": [apigateway_arn(p)
                                              for p in usage.CERTIFICATE_PATHS]})
        return dict(acm.IAM_RESOURCES,
                    **{"apigateway:GET": [apigateway_arn(p) for p in usage.LISTING_PATHS]})

    def get_arns(self, resources):
        """``arn:{partition}:apigateway:{region}::/clientcertificates/{id}`` (fact 4): no
        account in API Gateway ARNs, which c7n's generic ARN would add; an ACM certificate's
        own ARN (``kinds.py``)."""
        return [kinds.of(r).arn(r, self.config.region) for r in resources]

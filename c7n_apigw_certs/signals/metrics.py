"""The ``put-expiry-metric`` action: each certificate's days to expiry as a CloudWatch metric,
as ACM publishes ``DaysToExpiry`` for its own certificates (docs/aws-behaviour.md, facts 14 and
32), so that CloudWatch alarms can watch API Gateway client certificates too.

The value is the ``expiring`` filter's own ``c7n:days-left`` (``filters.annotate_expiry``): the
earlier of ``expirationDate`` and the PEM's notAfter, in whole days rounded up, negative once
expired. Unlike ACM's, the metric goes on after expiry: an expired certificate that a stage still
presents is the worst case, and it stays below any alarm's threshold instead of falling silent.
"""
import datetime

from botocore.exceptions import BotoCoreError, ClientError
from c7n.actions import BaseAction
from c7n.exceptions import PolicyExecutionError, PolicyValidationError
from c7n.utils import chunks, local_session, type_schema
from dateutil.tz import tzutc

from ..audit.filters import CONDITION, CONDITION_DETAIL, DAYS_LEFT, annotate_expiry
from ..audit.resource import ClientCertificate
from ..rotation.retire import error_text

DEFAULT_NAMESPACE = "C7N/APIGatewayClientCertificates"
DEFAULT_METRIC_NAME = "DaysToExpiry"
# PutMetricData takes at most 1000 metrics a request (and 1 MB): CloudWatch API reference,
# "PutMetricData". c7n's own metrics output (c7n/output.py, Metrics.BUFFER_SIZE) still sends 20,
# the limit of earlier versions of that page.
MAX_DATA = 1000
UNIT = "Count"  # CloudWatch has no unit of days; AWS/Transfer's DaysUntilExpiry uses Count
RESERVED_PREFIX = "AWS/"  # "Namespaces that begin with AWS/ are reserved" (PutMetricData)
# Printable ASCII (CloudWatch refuses control characters), a namespace not starting with ":"
# (botocore's cloudwatch model: pattern "[^:].*"), 1 to 255 characters.
NAMESPACE_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 255,
                    "pattern": "^[ -9;-~][ -~]*$"}
METRIC_NAME_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 255,
                      "pattern": "^[ -~]+$"}


@ClientCertificate.action_registry.register("put-expiry-metric")
class PutExpiryMetric(BaseAction):
    """Publish each certificate's days to expiry to CloudWatch, one value per certificate and
    run, for alarms (ACM's ``DaysToExpiry``, for API Gateway client certificates).

    ``namespace`` (default ``C7N/APIGatewayClientCertificates``; not ``AWS/...``, which AWS
    reserves) and ``metric-name`` (default ``DaysToExpiry``) name the metric. The value goes to
    the certificate's own region's CloudWatch, unit ``Count``, as three datapoints:

    - dimensions ``ClientCertificateId`` and ``Region``: this certificate;
    - dimension ``Region`` alone: every certificate of the region, so that one alarm on its
      ``Minimum`` watches them all, including successors that a rotation creates later (a
      successor has a new id, so an alarm on one certificate's id goes silent once it is
      replaced);
    - dimensions ``Region`` and ``Condition`` (``c7n:condition``): expired, revoked, a failed
      ACM renewal, ... each apart. A certificate whose expiry cannot be known (an ACM
      certificate that cannot be read) sends none; the run's log names it.

    The value is ``c7n:days-left`` as the ``expiring`` filter computes it (the earlier of
    ``expirationDate`` and the PEM's notAfter; whole days, rounded up), and it goes negative
    once the certificate has expired, where ACM's metric stops. Which certificates are
    published is the policy's filters' choice: with ``in-use``, only those a stage presents.

    The datapoints are stamped with the time the days were counted and sent 1000 to a request
    (CloudWatch's limit). A request that fails after c7n's retries is logged with every
    certificate it carried; the other requests are still sent, then the run fails with
    ``PolicyExecutionError``. Under ``--dryrun`` nothing is sent. Run the policy as often as the
    alarm's period (twice a day for a one-day period).

    :example:

    .. code-block:: yaml

        policies:
          - name: apigw-client-certificates-expiry-metric
            resource: aws.apigw-client-certificate
            filters:
              - type: in-use
            actions:
              - type: put-expiry-metric
                namespace: C7N/APIGatewayClientCertificates
                metric-name: DaysToExpiry
    """

    schema = type_schema("put-expiry-metric", namespace=NAMESPACE_SCHEMA,
                         **{"metric-name": METRIC_NAME_SCHEMA})
    permissions = ("cloudwatch:PutMetricData",)

    def iam_resources(self):
        """PutMetricData has no resource-level permissions: ``*`` (a policy may still narrow
        it with the condition key ``cloudwatch:namespace``)."""
        return {"cloudwatch:PutMetricData": ["*"]}

    def validate(self):
        namespace = self.data.get("namespace", DEFAULT_NAMESPACE)
        if namespace.startswith(RESERVED_PREFIX):
            raise PolicyValidationError(
                "policy:%s put-expiry-metric.namespace: %r: namespaces that begin with %s are "
                "reserved for AWS" % (self.manager.data.get("name") if self.manager else "?",
                                      namespace, RESERVED_PREFIX))
        return self

    def process(self, resources):
        if not resources:
            return None
        now = datetime.datetime.now(tz=tzutc())
        region = self.manager.config.region
        namespace = self.data.get("namespace", DEFAULT_NAMESPACE)
        client = local_session(self.manager.session_factory).client(
            "cloudwatch", region_name=region)
        per_request = MAX_DATA // 3  # three datapoints a certificate
        unsent, errors = 0, []
        for batch in chunks(resources, per_request):
            data = [datum for cert in batch for datum in self.data_of(cert, region, now)]
            try:
                self.manager.retry(client.put_metric_data, Namespace=namespace, MetricData=data)
            except (ClientError, BotoCoreError) as e:
                unsent += len(batch)
                errors.append(error_text(e))
                self.log.error(
                    "put-expiry-metric: PutMetricData failed, no datapoint for %d certificate(s) "
                    "(%s): %s", len(batch), ", ".join(
                        "client-certificate:%s" % c["clientCertificateId"] for c in batch),
                    error_text(e))
        self.log.info("put-expiry-metric: %s %s sent for %d certificate(s) in %s", namespace,
                      self.data.get("metric-name", DEFAULT_METRIC_NAME), len(resources) - unsent,
                      region)
        if errors:
            # Each failed request's certificates are in its log line above.
            raise PolicyExecutionError(
                "put-expiry-metric: %d of %d certificate(s) have no datapoint (%d failed "
                "request(s)): %s" % (unsent, len(resources), len(errors), "; ".join(errors)))
        return None

    def data_of(self, cert, region, now):
        """The certificate's three datapoints: by id and region, by region alone, and by
        region and condition (``c7n:condition``: ``expired``, ``revoked``, ``renewal-failed``,
        ``ca-expires``...), so that an alarm can tell them apart. A certificate whose expiry
        cannot be known (``unknown``) has no days to send: none, and a warning naming it."""
        annotate_expiry(cert, now)
        if cert[DAYS_LEFT] is None:
            self.log.warning("put-expiry-metric: client-certificate:%s is %s (%s): no "
                             "datapoint", cert["clientCertificateId"], cert[CONDITION],
                             cert[CONDITION_DETAIL])
            return []
        datum = {"MetricName": self.data.get("metric-name", DEFAULT_METRIC_NAME),
                 "Timestamp": now, "Value": float(cert[DAYS_LEFT]), "Unit": UNIT}
        return [
            dict(datum, Dimensions=[{"Name": "ClientCertificateId",
                                     "Value": cert["clientCertificateId"]},
                                    {"Name": "Region", "Value": region}]),
            dict(datum, Dimensions=[{"Name": "Region", "Value": region}]),
            dict(datum, Dimensions=[{"Name": "Region", "Value": region},
                                    {"Name": "Condition", "Value": cert[CONDITION]}]),
        ]

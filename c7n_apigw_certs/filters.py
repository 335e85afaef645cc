"""Decisions about certificates: ``expiring`` and ``in-use``. No API calls of their own, except
the rest-stage ``expiring``, which must list the certificates its stages reference.
"""
import datetime
import logging
import math

from c7n.filters import Filter, ValueFilter
from c7n.utils import local_session, type_schema
from dateutil.tz import tzutc

from . import owners, pem, report
from .resource import STAGES, ClientCertificate
from .usage import PAGE_SIZE, pages

log = logging.getLogger("custodian.apigw-client-certificate")

EXPIRES = "c7n:expires"
DAYS_LEFT = "c7n:days-left"
EXPIRED = "c7n:expired"
EXPIRY_SOURCE = "c7n:expiry-source"
DEFAULT_DAYS = 30


# (certificate id, PEM) whose PEM did not parse, already logged by this process: the listing
# (report.py's columns) and the expiring filter both read the PEM, one warning is enough.
_WARNED = set()


def pem_not_after(cert):
    """The PEM's notAfter, or None (with a warning naming the certificate) if it does not parse.
    Read with the standard library (``pem.py``): a Lambda mode cannot carry ``cryptography``
    (docs/aws-behaviour.md, fact 34)."""
    name = "client-certificate:%s" % cert.get("clientCertificateId")
    try:
        return pem.not_after(cert.get("pemEncodedCertificate"), name)
    except pem.CertificateError as e:
        text = cert.get("pemEncodedCertificate")
        key = (cert.get("clientCertificateId"), text if isinstance(text, str) else None)
        if key not in _WARNED:
            _WARNED.add(key)
            log.warning("%s: using expirationDate, not pemEncodedCertificate", e)
        return None


def as_utc(value):
    if isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value, tz=tzutc())
    return value if value.tzinfo else value.replace(tzinfo=tzutc())


def effective_expiry(cert):
    """The earlier of ``expirationDate`` and the PEM's notAfter, and which one it was: the PEM is
    what a backend checks, so it is trusted over the API's date."""
    listed = as_utc(cert["expirationDate"])
    not_after = pem_not_after(cert)
    if not_after is not None and not_after < listed:
        return not_after, "pem"
    return listed, "expirationDate"


def days_left(expires, now):
    """Days until expiry, rounded up: 5 means "within 5 days", 0 "expired within the last
    day", -3 "expired 3 days ago"."""
    return math.ceil((expires - now).total_seconds() / 86400)


def annotate_expiry(cert, now):
    """Write the expiry annotations on a certificate (once) and return its expiry."""
    if EXPIRES not in cert:
        expires, source = effective_expiry(cert)
        cert[EXPIRES] = expires.isoformat()
        cert[EXPIRY_SOURCE] = source
        cert[DAYS_LEFT] = days_left(expires, now)
        cert[EXPIRED] = expires <= now
        if STAGES in cert:  # a listed certificate resource: its report's columns too
            report.annotate(cert, expires, cert[DAYS_LEFT], cert[EXPIRED], cert[STAGES])
    return cert[EXPIRES]


class ExpiringBase(Filter):
    """Matches what expires within ``days`` days (inclusive) or has expired. The threshold is
    c7n's own ``value_type: expiration`` arithmetic (docs/aws-behaviour.md, fact 16)."""

    schema = type_schema("expiring", days={"type": "integer", "minimum": 0})
    permissions = ("apigateway:GET",)

    def iam_resources(self):
        """The certificate listing: the resource's, or (on a stage) the filter's own."""
        from .iam import apigateway_arn
        from .usage import CERTIFICATE_PATHS
        return {"apigateway:GET": [apigateway_arn(p) for p in CERTIFICATE_PATHS]}

    def threshold(self):
        """A value filter on ``c7n:expires``, silent: its match is ours to report."""
        matcher = ValueFilter({
            "type": "value", "key": '"%s"' % EXPIRES, "value_type": "expiration",
            "op": "lte", "value": self.data.get("days", DEFAULT_DAYS),
        }, self.manager)
        matcher.annotate = False
        return matcher


@ClientCertificate.filter_registry.register("expiring")
class ClientCertificateExpiring(ExpiringBase):
    """Client certificates that expire within ``days`` days (default 30), or have expired.

    The expiry is the earlier of ``expirationDate`` and the notAfter of the certificate's own
    PEM, which is what a backend checks. Each match is annotated with ``c7n:expires`` (ISO-8601),
    ``c7n:days-left`` (whole days, negative once expired), ``c7n:expired`` (boolean) and
    ``c7n:expiry-source`` (``pem`` or ``expirationDate``). A PEM that does not parse is logged
    with the certificate's id, and ``expirationDate`` is used.

    :example:

    .. code-block:: yaml

        policies:
          - name: apigw-client-certificates-expiring
            resource: aws.apigw-client-certificate
            filters:
              - type: expiring
                days: 30
    """

    def process(self, resources, event=None):
        now = datetime.datetime.now(tz=tzutc())
        threshold = self.threshold()
        for r in resources:
            annotate_expiry(r, now)
        return [r for r in resources if threshold(r)]


class StageCertificateExpiring(ExpiringBase):
    """REST stages whose client certificate expires within ``days`` days (default 30), or has
    expired; stages without a certificate never match.

    Each match carries ``c7n:client-certificate``: the certificate's id, description and the
    expiry annotations of the certificate resource's ``expiring`` filter. The certificates are
    listed once per run (``apigateway:GET``).

    :example:

    .. code-block:: yaml

        policies:
          - name: rest-stages-with-expiring-client-certificate
            resource: aws.rest-stage
            filters:
              - type: expiring
                days: 14
    """

    annotation_key = "c7n:client-certificate"
    certificate_key = "clientCertificateId"

    def label(self, stage):
        return "stage:%s/%s" % (stage.get("restApiId"), stage.get("stageName"))

    def validate(self):
        """On c7n's own resource, in a Lambda mode: the handler and package that load the
        plugin there (handler.py)."""
        from .handler import complete_mode
        complete_mode(self.manager.ctx.policy)
        return self

    def process(self, resources, event=None):
        key = self.certificate_key
        wanted = {r[key] for r in resources if r.get(key)}
        if not wanted:
            return []
        client = local_session(self.manager.session_factory).client(
            "apigateway", region_name=self.manager.config.region)
        certs = {
            c["clientCertificateId"]: c
            for page in pages(client, "get_client_certificates", limit=PAGE_SIZE)
            for c in page.get("items", ())
            if c["clientCertificateId"] in wanted
        }
        now = datetime.datetime.now(tz=tzutc())
        threshold = self.threshold()
        matched = []
        for stage in resources:
            cert_id = stage.get(key)
            if not cert_id:
                continue
            cert = certs.get(cert_id)
            if cert is None:
                self.log.warning("%s references client-certificate:%s, which does not exist",
                                 self.label(stage), cert_id)
                continue
            annotate_expiry(cert, now)
            if threshold(cert):
                stage[self.annotation_key] = {
                    k: cert.get(k) for k in (
                        "clientCertificateId", "description", EXPIRES, DAYS_LEFT, EXPIRED,
                        EXPIRY_SOURCE)}
                matched.append(stage)
        return matched


class WebSocketStageCertificateExpiring(StageCertificateExpiring):
    """WebSocket stages (c7n's ``aws.apigwv2-stage``) whose client certificate expires within
    ``days`` days (default 30), or has expired; stages without a certificate, and HTTP API
    stages (which cannot have one), never match.

    Each match carries ``c7n:client-certificate`` as on ``aws.rest-stage``. The certificates
    are listed once per run (``apigateway:GET``).

    :example:

    .. code-block:: yaml

        policies:
          - name: websocket-stages-with-expiring-client-certificate
            resource: aws.apigwv2-stage
            filters:
              - type: expiring
                days: 14
    """

    certificate_key = "ClientCertificateId"

    def label(self, stage):
        return "stage:%s/%s" % (stage.get("c7n:parent-id") or stage.get("ApiId"),
                                stage.get("StageName"))


@ClientCertificate.filter_registry.register("in-use")
class ClientCertificateInUse(Filter):
    """Certificates that a REST or WebSocket stage uses (``state: true``, the default) or that
    no stage uses (``state: false``, for clean-up), from the resource's ``c7n:stages``.

    :example:

    .. code-block:: yaml

        policies:
          - name: apigw-client-certificates-unused
            resource: aws.apigw-client-certificate
            filters:
              - type: in-use
                state: false
    """

    schema = type_schema("in-use", state={"type": "boolean"})
    permissions = ("apigateway:GET",)

    def iam_resources(self):
        """The stage listings that the resource's ``c7n:stages`` comes from."""
        from .iam import apigateway_arn
        from .usage import STAGE_PATHS
        return {"apigateway:GET": [apigateway_arn(p) for p in STAGE_PATHS]}

    def process(self, resources, event=None):
        """A certificate whose stages are unknown (``c7n:stages`` null: ``source: config``
        with a view Config does not complete) matches neither way: in use is not proven, and
        unused even less."""
        state = self.data.get("state", True)
        unknown = [r["clientCertificateId"] for r in resources if r.get(STAGES) is None]
        if unknown:
            self.log.warning("in-use: the stages of %s are unknown (see c7n:stages-source): "
                             "matched neither way", ", ".join(
                                 "client-certificate:%s" % i for i in unknown))
        return [r for r in resources
                if r.get(STAGES) is not None and bool(r[STAGES]) == state]


@ClientCertificate.filter_registry.register("template-owned")
class TemplateOwned(Filter):
    """Certificates that a template owns, or that a stage a template owns uses (``state:
    true``, the default), or neither (``state: false``).

    CloudFormation (and so CDK and SAM) tags what it creates with ``aws:cloudformation:*``
    keys, which the listings already carry: no extra call. Terraform, Pulumi and others leave
    no mark unless their default tags set one: name those tags in ``owner-tags`` (a value of
    ``null`` matches any value). A stage counts as owned when its own tags or its API's say so.
    Each certificate is annotated with ``c7n:owner`` and each ``c7n:stages`` entry with
    ``owner`` (``tool``, and ``stack`` and ``logical-id``, or ``tag``).

    :example:

    .. code-block:: yaml

        policies:
          - name: apigw-client-certificates-owned-by-templates
            resource: aws.apigw-client-certificate
            filters:
              - type: template-owned
                owner-tags:
                  ManagedBy: terraform
    """

    schema = type_schema("template-owned", state={"type": "boolean"},
                         **{"owner-tags": owners.OWNER_TAGS_SCHEMA})
    permissions = ("apigateway:GET",)

    def iam_resources(self):
        """The listings that the resource's tags and ``c7n:stages`` come from."""
        from .iam import apigateway_arn
        from .usage import LISTING_PATHS
        return {"apigateway:GET": [apigateway_arn(p) for p in LISTING_PATHS]}

    def process(self, resources, event=None):
        state = self.data.get("state", True)
        return [r for r in resources
                if owners.annotate(r, self.data.get("owner-tags")) == state]


STAGE_FILTERS = {"rest-stage": StageCertificateExpiring,
                 "apigwv2-stage": WebSocketStageCertificateExpiring}


def register_stage_filters(stage_class):
    """Add ``expiring`` to c7n's ``aws.rest-stage`` or ``aws.apigwv2-stage`` without replacing
    anything of c7n's."""
    ours = STAGE_FILTERS[stage_class.type]
    registry = stage_class.filter_registry
    existing = registry.get("expiring")
    if existing is None:
        registry.register("expiring", ours)
    elif existing is not ours:
        log.warning("aws.%s already has an 'expiring' filter (%s): not replaced",
                    stage_class.type, existing)

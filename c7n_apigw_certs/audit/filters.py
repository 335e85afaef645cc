"""Decisions about certificates: ``expiring`` and ``in-use``. No API calls of their own, except
the rest-stage ``expiring``, which must list the certificates its stages reference.
"""
import datetime
import logging

from c7n.filters import Filter, ValueFilter
from c7n.utils import local_session, type_schema
from dateutil.tz import tzutc

from . import acm, kinds, owners, report
# The dates of each kind of certificate live with its adapter (kinds.py); kept here by name.
from .kinds import MATCH_ALWAYS, as_utc, days_left, effective_expiry, pem_not_after  # noqa: F401
from .resource import STAGES, ClientCertificate
from .usage import PAGE_SIZE, pages

log = logging.getLogger("custodian.apigw-client-certificate")

EXPIRES = "c7n:expires"
DAYS_LEFT = "c7n:days-left"
EXPIRED = "c7n:expired"
EXPIRY_SOURCE = "c7n:expiry-source"
CONDITION = "c7n:condition"
CONDITION_DETAIL = "c7n:condition-detail"
DEFAULT_DAYS = 30


def annotate_expiry(cert, now):
    """Write the expiry annotations on a certificate (once), as its kind decides
    (``kinds.py``), and return its expiry (ISO-8601, or None when it cannot be known)."""
    if EXPIRES not in cert:
        verdict = kinds.of(cert).expiry(cert, now)
        known = verdict.expires is not None
        cert[EXPIRES] = verdict.expires.isoformat() if known else None
        cert[EXPIRY_SOURCE] = verdict.source
        cert[DAYS_LEFT] = days_left(verdict.expires, now) if known else None
        cert[EXPIRED] = verdict.expires <= now if known else None
        cert[CONDITION] = verdict.condition
        cert[CONDITION_DETAIL] = verdict.detail
        if STAGES in cert:  # a listed certificate resource: its report's columns too
            report.annotate(cert, verdict.expires, cert[DAYS_LEFT], cert[EXPIRED],
                            cert[STAGES], condition=verdict.condition)
    return cert[EXPIRES]


def report_columns(cert, now, region):
    """The report's plain columns as of the listing (``report.py``), from the certificate's
    kind; the ``c7n:`` annotations stay the filter's to write."""
    verdict = kinds.of(cert).expiry(cert, now)
    known = verdict.expires is not None
    report.annotate(cert, verdict.expires, days_left(verdict.expires, now) if known else None,
                    verdict.expires <= now if known else None, cert.get(STAGES), region,
                    condition=verdict.condition)


def matches(cert, threshold):
    """Within the window, or broken or unknown whatever the window (``kinds.MATCH_ALWAYS``)."""
    return cert[CONDITION] in MATCH_ALWAYS or threshold(cert)


class ExpiringBase(Filter):
    """Matches what expires within ``days`` days (inclusive) or has expired. The threshold is
    c7n's own ``value_type: expiration`` arithmetic (docs/aws-behaviour.md, fact 16)."""

    schema = type_schema("expiring", days={"type": "integer", "minimum": 0})
    permissions = ("apigateway:GET",)

    def iam_resources(self):
        """The certificate listing: the resource's, or (on a stage) the filter's own."""
        from ..iam import apigateway_arn
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
        return [r for r in resources if matches(r, threshold)]


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
    permissions = ("apigateway:GET",) + tuple(sorted(acm.IAM_RESOURCES))

    def iam_resources(self):
        """The certificate listing, and ACM's reads of the ACM certificates stages present."""
        return dict(super().iam_resources(), **acm.IAM_RESOURCES)

    def label(self, stage):
        return "stage:%s/%s" % (stage.get("restApiId"), stage.get("stageName"))

    def validate(self):
        """On c7n's own resource, in a Lambda mode: the handler and package that load the
        plugin there (handler.py)."""
        from ..handler import complete_mode
        complete_mode(self.manager.ctx.policy)
        return self

    def process(self, resources, event=None):
        key = self.certificate_key
        wanted = {r[key] for r in resources if r.get(key)}
        if not wanted:
            return []
        region = self.manager.config.region
        certs = {}
        if any(not acm.is_acm_arn(w) for w in wanted):
            client = local_session(self.manager.session_factory).client(
                "apigateway", region_name=region)
            certs = {
                c["clientCertificateId"]: c
                for page in pages(client, "get_client_certificates", limit=PAGE_SIZE)
                for c in page.get("items", ())
                if c["clientCertificateId"] in wanted
            }
        # ACM certificates (fact 94): read as the resource reads them, only those referenced.
        certs.update((r["clientCertificateId"], r) for r in acm.Reader(
            self.manager.session_factory, region, self.manager.config.account_id).records(
                {w: [] for w in wanted if acm.is_acm_arn(w)}))
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
            if matches(cert, threshold):
                stage[self.annotation_key] = {
                    k: cert.get(k) for k in (
                        "clientCertificateId", "kind", "description", EXPIRES, DAYS_LEFT,
                        EXPIRED, EXPIRY_SOURCE, CONDITION, CONDITION_DETAIL)}
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
        from ..iam import apigateway_arn
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


@ClientCertificate.filter_registry.register("kind")
class ClientCertificateKind(Filter):
    """Certificates of the given kinds (``kinds.py``): ``generated`` (API Gateway's own),
    ``acm-imported``, ``acm-private``, ``acm-public``, ``acm-unknown`` (an ACM certificate a
    stage presents that cannot be read). No API call: the listing says each one's kind.

    A policy whose ``kind`` filters select no generated certificate cannot ``rotate``,
    ``delete`` or tag anything (those act on API Gateway's own certificates only): refused
    at load time.

    :example:

    .. code-block:: yaml

        policies:
          - name: acm-client-certificates-expiring
            resource: aws.apigw-client-certificate
            filters:
              - type: kind
                kinds: [acm-imported, acm-private]
              - type: expiring
                days: 30
    """

    schema = type_schema("kind", required=["kinds"], kinds={
        "type": "array", "minItems": 1, "uniqueItems": True,
        "items": {"enum": sorted(kinds.ADAPTERS)}})
    permissions = ("apigateway:GET",)
    # Actions that only ever change API Gateway's own certificates.
    GENERATED_ONLY = ("rotate", "delete", "tag", "remove-tag", "mark-for-op")

    def iam_resources(self):
        from ..iam import apigateway_arn
        from .usage import CERTIFICATE_PATHS
        return {"apigateway:GET": [apigateway_arn(p) for p in CERTIFICATE_PATHS]}

    def validate(self):
        from c7n.exceptions import PolicyValidationError
        policy = self.manager.data if self.manager else {}
        if kinds.Generated.name in self.data["kinds"]:
            return self
        acting = [a.get("type") if isinstance(a, dict) else a
                  for a in policy.get("actions") or ()]
        refused = [a for a in acting if a in self.GENERATED_ONLY]
        if refused:
            raise PolicyValidationError(
                "policy:%s kind %s selects no generated certificate, and %s act(s) only on "
                "API Gateway's own: nothing could be done (see each kind's actions in "
                "kinds.py)" % (policy.get("name"), ", ".join(self.data["kinds"]),
                               ", ".join(refused)))
        return self

    def process(self, resources, event=None):
        wanted = set(self.data["kinds"])
        return [r for r in resources if kinds.of(r).name in wanted]


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
        from ..iam import apigateway_arn
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

"""One adapter per kind of certificate a stage presents, as ``stages.py`` has one per kind of
stage: API Gateway-generated, imported into ACM, private (ACM with AWS Private CA), and the two
that cannot authenticate API Gateway or cannot be read. They differ in where their facts come
from (API Gateway's listing, or ACM and ACM PCA: ``acm.py``) and in what the actions may do to
them; the filters and actions ask the certificate's adapter (``of(cert)``) and never test its
kind themselves.

Each adapter answers:

- ``expiry(cert, now)``: a ``Verdict``: when a stage presenting it breaks if nobody acts
  (``expires``, None when it cannot be known), which date that is (``source``), and why
  (``condition``, with a ``detail`` for people);
- ``arn(cert, region)``: its ARN (API Gateway's form for its own, fact 4; the id for ACM's);
- ``delete_refusal(cert)``, ``tag_refusal(cert)``: why ``delete`` must not delete it, or the
  tag actions (API Gateway's ``TagResource``) not tag it, or None;
- ``rotate_step(cert, now)``: None when ``rotate`` rotates it (generated certificates), else a
  ``Refusal``: a failure of that certificate with what to do instead, or a report only.

Conditions (``c7n:condition``): ``expires`` (its own notAfter binds), ``ca-expires`` (a private
certificate that ACM renews: its CA's notAfter binds), ``renewal-ineligible``,
``renewal-failed``, ``renewal-pending``, ``ca-inactive`` (a private
certificate's own notAfter binds, because ACM will not renew it in time); broken now, whatever
the window: ``expired``, ``revoked``, ``inactive`` (an ACM status other than ISSUED),
``ca-expired``, ``no-client-auth`` (a public ACM certificate: fact 95); and ``unknown``,
``ca-unknown`` (not readable: fact 108). The broken and unknown ones are ``MATCH_ALWAYS``.
"""
import dataclasses
import datetime
import logging
import math

from dateutil.parser import parse as parse_date
from dateutil.tz import tzutc

from . import pem

log = logging.getLogger("custodian.apigw-client-certificate")

ACM = "c7n:acm"
UNKNOWN = "c7n:unknown"

BROKEN = ("expired", "revoked", "inactive", "ca-expired", "no-client-auth")
UNKNOWNS = ("unknown", "ca-unknown")
MATCH_ALWAYS = BROKEN + UNKNOWNS
RENEWAL_AT_RISK = ("renewal-ineligible", "renewal-failed", "renewal-pending", "ca-inactive")


@dataclasses.dataclass(frozen=True)
class Verdict:
    expires: datetime.datetime | None
    source: str | None
    condition: str
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class Refusal:
    """What ``rotate`` does instead of rotating: ``fail`` the certificate with ``message``, or
    only report it (``fail`` false), as a problem (``problem``: a warning) or not."""
    message: str
    fail: bool = True
    problem: bool = True


# -- dates ------------------------------------------------------------------------------------
# (certificate id, PEM) whose PEM did not parse, already logged by this process: the listing
# (report.py's columns) and the expiring filter both read the PEM, one warning is enough.
_WARNED = set()


def as_utc(value):
    if isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value, tz=tzutc())
    if isinstance(value, str):
        value = parse_date(value)
    return value if value.tzinfo else value.replace(tzinfo=tzutc())


def days_left(expires, now):
    """Days until expiry, rounded up: 5 means "within 5 days", 0 "expired within the last
    day", -3 "expired 3 days ago"."""
    return math.ceil((expires - now).total_seconds() / 86400)


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


def effective_expiry(cert):
    """The earlier of ``expirationDate`` and the PEM's notAfter, and which one it was: the PEM is
    what a backend checks, so it is trusted over the API's date."""
    listed = as_utc(cert["expirationDate"])
    not_after = pem_not_after(cert)
    if not_after is not None and not_after < listed:
        return not_after, "pem"
    return listed, "expirationDate"


def earliest(*candidates):
    """The (date, source) that comes first among those with a date."""
    return min(((as_utc(d), s) for d, s in candidates if d is not None), key=lambda c: c[0])


# -- the adapters ----------------------------------------------------------------------------
NEVER_DELETED = ("an ACM certificate (%s): this plugin never deletes one (ACM's other users, "
                 "load balancers and CloudFront, share the account's ACM): remove it in ACM if "
                 "nothing uses it")


class Generated:
    """API Gateway's own certificate: self-signed, 365 days, never renewed; ``rotate``
    replaces it (rotate.py)."""
    name = "generated"

    def arn(self, cert, region):
        from .resource import certificate_arn
        return certificate_arn(region, cert["clientCertificateId"])

    def tag_refusal(self, cert):
        return None

    def expiry(self, cert, now):
        expires, source = effective_expiry(cert)
        return Verdict(expires, source, "expired" if expires <= now else "expires")

    def delete_refusal(self, cert):
        return None

    def rotate_step(self, cert, now):
        return None


class Acm:
    """What every ACM certificate shares: its ARN is its id; it is not API Gateway's to tag
    or delete."""

    def arn(self, cert, region):
        return cert["clientCertificateId"]

    def tag_refusal(self, cert):
        return ("an ACM certificate (%s): its tags are ACM's (aws acm add-tags-to-certificate), "
                "not API Gateway's: not tagged" % self.name)

    def delete_refusal(self, cert):
        return NEVER_DELETED % self.name


class AcmImported(Acm):
    """Imported into ACM: ACM never renews it (fact 102); it lapses at the earliest notAfter of
    ACM's NotAfter, its PEM and its chain (fact 106)."""
    name = "acm-imported"

    def status_verdict(self, acm, expires, source, now):
        status = acm.get("Status")
        if status == "REVOKED":
            return Verdict(min(expires, now), source, "revoked",
                           "ACM status REVOKED%s" % (" at %s" % acm["RevokedAt"]
                                                     if acm.get("RevokedAt") else ""))
        if status == "EXPIRED" or expires <= now:
            return Verdict(expires, source, "expired", "ACM status %s" % status)
        if status != "ISSUED":
            return Verdict(min(expires, now), source, "inactive", "ACM status %s" % status)
        return None

    def expiry(self, cert, now):
        acm = cert[ACM]
        expires, source = earliest((acm.get("NotAfter"), "notAfter"),
                                   (pem_not_after(cert) if cert.get("pemEncodedCertificate")
                                    else None, "pem"),
                                   (acm.get("ChainNotAfter"), "chain"))
        return self.status_verdict(acm, expires, source, now) or Verdict(
            expires, source, "expires", "imported: ACM never renews it")

    def rotate_step(self, cert, now):
        return Refusal(
            "acm-imported: ACM never renews an imported certificate and rotate does not "
            "replace one: re-import the renewed certificate under the same ARN (aws acm "
            "import-certificate --certificate-arn %s ...; the stages present it without a "
            "change), or move the stages to a private certificate that ACM renews (the "
            "migration)" % cert["clientCertificateId"])


class AcmPrivate(AcmImported):
    """Issued by AWS Private CA through ACM: ACM renews it 60 days ahead (fact 102), unless it
    is ineligible, its renewal failed or is still pending, or its CA cannot issue; and it
    ends with its CA's certificate whatever ACM does (fact 104)."""
    name = "acm-private"

    def renewal_risk(self, acm, authority):
        """(condition, detail) when ACM will not surely renew it, else None."""
        if acm.get("RenewalEligibility") == "INELIGIBLE":
            return "renewal-ineligible", "ACM renewal INELIGIBLE"
        status = acm.get("RenewalStatus")
        if status == "FAILED":
            return "renewal-failed", "ACM renewal FAILED%s" % (
                " (%s)" % acm["RenewalStatusReason"] if acm.get("RenewalStatusReason") else "")
        if status in ("PENDING_AUTO_RENEWAL", "PENDING_VALIDATION"):
            return "renewal-pending", "ACM renewal %s" % status
        if authority.get("Status") not in (None, "ACTIVE"):
            return "ca-inactive", "its CA is %s: ACM cannot renew it" % authority["Status"]
        return None

    def expiry(self, cert, now):
        acm = cert[ACM]
        authority = acm.get("CertificateAuthority") or {}
        own = as_utc(acm["NotAfter"])
        broken = self.status_verdict(acm, own, "notAfter", now)
        if broken:
            return broken
        if acm.get("DescribeError"):  # listed, but neither its renewal nor its CA is known
            return Verdict(own, "notAfter", "ca-unknown", acm["DescribeError"])
        if authority.get("Error") or not authority.get("NotAfter"):
            return Verdict(own, "notAfter", "ca-unknown", authority.get(
                "Error", "no CA named (CertificateAuthorityArn)"))
        ca_after = as_utc(authority["NotAfter"])
        if authority.get("Status") == "EXPIRED" or ca_after <= now:
            return Verdict(ca_after, "ca", "ca-expired",
                           "CA %s expired on %s" % (authority["Arn"], ca_after.isoformat()))
        risk = self.renewal_risk(acm, authority)
        if risk and own <= ca_after:
            return Verdict(own, "notAfter", *risk)
        detail = "ACM renews it; its CA %s expires on %s" % (authority["Arn"],
                                                             ca_after.isoformat())
        if not acm.get("RenewalStatus"):
            detail += " (no renewal summary yet)"
        return Verdict(ca_after, "ca", "ca-expires", detail)

    def rotate_step(self, cert, now):
        verdict = self.expiry(cert, now)
        if verdict.condition == "ca-expires":
            return Refusal("acm-private: ACM renews it; nothing to rotate", fail=False,
                           problem=False)
        return Refusal("acm-private: ACM renews it, rotate does not; %s: %s" % (
            verdict.condition, verdict.detail), fail=False)


class AcmPublic(AcmImported):
    """Issued by ACM for the public: no clientAuth since June 2025 (fact 95)."""
    name = "acm-public"

    def expiry(self, cert, now):
        acm = cert[ACM]
        expires = as_utc(acm["NotAfter"])
        return self.status_verdict(acm, expires, "notAfter", now) or Verdict(
            min(expires, now), "notAfter", "no-client-auth",
            "a public ACM certificate cannot authenticate API Gateway to a backend")

    def rotate_step(self, cert, now):
        return Refusal("acm-public: a public ACM certificate has no clientAuth: move the "
                       "stages to an imported or a private certificate")


class AcmUnknown(Acm):
    """An ACM ARN a stage references that cannot be read (fact 108)."""
    name = "acm-unknown"

    def expiry(self, cert, now):
        return Verdict(None, None, "unknown", cert.get(UNKNOWN) or "ACM answered no type")

    def rotate_step(self, cert, now):
        return Refusal("acm-unknown: cannot be read (%s): nothing is changed" % (
            cert.get(UNKNOWN) or "ACM answered no type"))


ADAPTERS = {cls.name: cls() for cls in (Generated, AcmImported, AcmPrivate, AcmPublic,
                                        AcmUnknown)}


def of(cert):
    """The certificate's adapter; a record without ``kind`` is API Gateway's own."""
    return ADAPTERS[cert.get("kind") or Generated.name]

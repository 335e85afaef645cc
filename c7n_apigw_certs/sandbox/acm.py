"""ACM, as stages that present ACM certificates meet it (docs/aws-behaviour.md, facts 110-118).

moto's ACM keeps certificates, tags and ARNs; the sandbox replaces what a stage's audit reads:

- Real certificates of three kinds. PRIVATE: requested with a ``CertificateAuthorityArn`` and
  really signed by that sandbox CA (``acmpca.py``), with the clientAuth EKU, ISSUED at once,
  395 days (fact 116); a CA that is missing, not ACTIVE or ending too early gives a FAILED
  certificate with Private CA's ``FailureReason``. IMPORTED: the PEM, key and chain given.
  AMAZON_ISSUED: signed by the sandbox's stand-in for Amazon's public CA, serverAuth only (since
  June 2025 public certificates carry no clientAuth: fact 111), PENDING_VALIDATION until
  ``moto.settings.ACM_VALIDATION_WAIT`` seconds of the sandbox clock have passed.
- ``DescribeCertificate``: Type, Status on the sandbox clock (EXPIRED past notAfter), Serial,
  NotBefore/NotAfter, KeyAlgorithm, KeyUsages and ExtendedKeyUsages read from the certificate,
  RenewalEligibility, RenewalSummary once a renewal was attempted, CertificateAuthorityArn,
  FailureReason, RevokedAt, InUseBy (the switch ``acm_in_use_by``: fact 115).
- ``GetCertificate``: the current version's PEM and its chain (for a private certificate its
  CA's certificate and the chain above it; moto adds a fixed Amazon root to every chain).
- ``ListCertificates``: pages (``MaxItems`` 1-1000, ``NextToken``), ``CertificateStatuses``, and
  ``Includes`` (keyTypes, by default RSA_1024 and RSA_2048 only: fact 114; extendedKeyUsage;
  keyUsage), with the summary's members.
- ``RenewCertificate`` of an eligible private certificate; ``DeleteCertificate`` refused with
  ``ResourceInUseException`` when a stage uses it, under ``acm_in_use_by``.

The controls (``controls.py``, also over HTTP) make certificates of each kind at any age, renew
one (same ARN, new serial and notAfter), make a renewal fail or pend, revoke one, and give the
private key of any of them (``private_key_pem``).
"""
import base64
import datetime
import functools
import re
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from moto import settings
from moto.acm import urls
from moto.acm.exceptions import AWSError, AWSValidationException, CertificateNotFound
from moto.acm.models import CertBundle, acm_backends
from moto.acm.responses import AWSCertificateManagerResponse
from moto.core.responses import ActionResult, EmptyResult

from . import acmpca
from .certificates import KEY_TYPES, key_pem, key_type_of, load_private_key, pooled_key
from .controls import CONTROLS

# One RequestCertificate at a time: an idempotency token is one request to ACM ("ACM recognizes
# that you are requesting only one certificate", docs/aws-behaviour.md fact 146), so two
# concurrent calls with one token must not both pass moto's check-then-set.
_REQUEST_LOCK = threading.Lock()

PRIVATE_DAYS = 395  # 13 months (fact 116)
PUBLIC_DAYS = 198  # ACM's public certificates (ACM user guide, "ACM certificate")
DEFAULT_KEY_TYPES = ("RSA_1024", "RSA_2048")  # ListCertificates without Includes.keyTypes
MAX_ITEMS = 1000
PRIVATE_KEY_TYPES = ("RSA_2048", "EC_prime256v1", "EC_secp384r1")  # fact 116
KINDS = {"imported": "IMPORTED", "private": "PRIVATE", "public": "AMAZON_ISSUED"}
RENEWAL_STATUSES = ("PENDING_AUTO_RENEWAL", "PENDING_VALIDATION", "SUCCESS", "FAILED")
FAILURE_REASONS = (
    "NO_AVAILABLE_CONTACTS", "ADDITIONAL_VERIFICATION_REQUIRED", "DOMAIN_NOT_ALLOWED",
    "INVALID_PUBLIC_DOMAIN", "DOMAIN_VALIDATION_DENIED", "CAA_ERROR", "PCA_LIMIT_EXCEEDED",
    "PCA_INVALID_ARN", "PCA_INVALID_STATE", "PCA_REQUEST_FAILED",
    "PCA_NAME_CONSTRAINTS_VALIDATION", "PCA_RESOURCE_NOT_FOUND", "PCA_INVALID_ARGS",
    "PCA_INVALID_DURATION", "PCA_ACCESS_DENIED", "SLR_NOT_FOUND", "OTHER")

_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "TLS_WEB_SERVER_AUTHENTICATION",
    ExtendedKeyUsageOID.CLIENT_AUTH: "TLS_WEB_CLIENT_AUTHENTICATION",
    ExtendedKeyUsageOID.CODE_SIGNING: "CODE_SIGNING",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "EMAIL_PROTECTION",
    ExtendedKeyUsageOID.TIME_STAMPING: "TIME_STAMPING",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSP_SIGNING",
}
_EKU_FILTER_NAMES = {v: k for k, v in _EKU_NAMES.items()}
_KEY_USAGES = (("digital_signature", "DIGITAL_SIGNATURE"),
               ("content_commitment", "NON_REPUDIATION"),
               ("key_encipherment", "KEY_ENCIPHERMENT"),
               ("data_encipherment", "DATA_ENCIPHERMENT"),
               ("key_agreement", "KEY_AGREEMENT"), ("key_cert_sign", "CERTIFICATE_SIGNING"),
               ("crl_sign", "CRL_SIGNING"))
_KEY_USAGE_FILTER = {"DIGITAL_SIGNATURE", "NON_REPUDIATION", "KEY_ENCIPHERMENT",
                     "DATA_ENCIPHERMENT", "KEY_AGREEMENT", "CERTIFICATE_SIGNING", "CRL_SIGNING"}


class ResourceInUseException(AWSError):
    TYPE = "ResourceInUseException"


class RequestInProgressException(AWSError):
    TYPE = "RequestInProgressException"


def now():
    return CONTROLS.clock.now()


def naive(when):
    return when.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def epoch(when):
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def parse_arn(arn):
    """(region, account) of ``arn:aws:acm:<region>:<account>:certificate/<id>``, or None."""
    parts = (arn or "").split(":", 5)
    if len(parts) != 6 or parts[2] != "acm" or not parts[5].startswith("certificate/"):
        return None
    return parts[3], parts[4]


def find(arn):
    """The certificate behind an ACM ARN, whatever its account and region, or None."""
    where = parse_arn(arn)
    if where is None:
        return None
    region, account = where
    return acm_backends[account][region]._certificates.get(arn)


# -- issuers outside Private CA -----------------------------------------------------------
@functools.cache
def _outside_root(common_name):
    """A self-signed root of the process, for imported certificates (the customer's own PKI)
    and for public ones (the stand-in for Amazon's public CA), each with a key of its own (not
    the pool's, which leaves share). Kept across resets."""
    key = KEY_TYPES["RSA_2048"]()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=365 * 40))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256()))
    return key, cert


IMPORT_ISSUER = "Example Corp PKI Root (sandbox)"
PUBLIC_ISSUER = "Amazon RSA 2048 M03 (sandbox)"


def outside_root_pem(common_name=IMPORT_ISSUER):
    """The root that signs imported (default) or public certificates, as PEM."""
    return _outside_root(common_name)[1].public_bytes(serialization.Encoding.PEM).decode()


def _leaf(issuer_key, issuer_name, key, domain, not_before, not_after, usages):
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
        .issuer_name(issuer_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=True,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM))


def outside_leaf(common_name, key, domain, not_before, not_after, client_auth=True):
    """(PEM, chain PEM) of a leaf signed by an outside root."""
    root_key, root = _outside_root(common_name)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH]
    if client_auth:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    return (_leaf(root_key, root.subject, key, domain, not_before, not_after, usages),
            outside_root_pem(common_name).encode())


# -- the certificate ------------------------------------------------------------------------
class SandboxCertificate(CertBundle):
    """moto's certificate with the sandbox's clock, chain and renewal state."""

    def __init__(self, account_id, region, certificate, private_key, chain=None,
                 cert_type="IMPORTED", status="ISSUED", ca_arn=None, arn=None,
                 renewal="INELIGIBLE", check_dates=True, options=None):
        self.check_dates = check_dates
        super().__init__(account_id, certificate, private_key, chain=chain, region=region,
                         arn=arn, cert_type=cert_type, cert_status=status,
                         cert_authority_arn=ca_arn, cert_options=options)
        self.created_at = naive(now())
        self.chain = chain or b""
        self.renewal_eligibility = renewal
        self.renewal_summary = None
        self.failure_reason = None
        self.revoked_at = None
        self.revocation_reason = None
        # Who signs its next version (``renew``): ("pca", CA ARN) or ("outside", root name).
        self.signer = ("pca", ca_arn) if ca_arn else ("outside", IMPORT_ISSUER)

    def validate_pk(self):
        """As moto's: the key must be a PEM private key. The sandbox's keys repeat (a small
        pool, ``certificates.pooled_key``), so each is parsed and checked once per process."""
        try:
            return load_private_key(bytes(self.key))
        except Exception:
            raise AWSValidationException(
                "The private key is not PEM-encoded or is not valid.") from None

    # moto checks dates against the real clock; the sandbox, against its own.
    def validate_certificate(self):
        try:
            cert = x509.load_pem_x509_certificate(self.cert)
        except ValueError:
            raise AWSValidationException(
                "The certificate is not PEM-encoded or is not valid.") from None
        if self.check_dates and cert.not_valid_after_utc < now():
            raise AWSValidationException("The certificate has expired, is not valid.")
        if self.check_dates and cert.not_valid_before_utc > now():
            raise AWSValidationException(
                "The certificate is not in effect yet, is not valid.")
        return cert

    def validate_chain(self):
        try:
            x509.load_pem_x509_certificates(self.chain)
        except ValueError:
            raise AWSValidationException(
                "The certificate chain is not PEM-encoded or is not valid.") from None

    # Status on the sandbox clock.
    @property
    def status(self):
        stored = self._status
        if stored == "PENDING_VALIDATION" and self.type == "AMAZON_ISSUED" and (
                epoch(now()) - epoch(self.created_at) > settings.ACM_VALIDATION_WAIT):
            self._status = stored = "ISSUED"
        if stored == "ISSUED" and self._cert.not_valid_after_utc <= now():
            return "EXPIRED"
        return stored

    @status.setter
    def status(self, value):
        self._status = value

    def check(self):
        """moto's check moves the status by the real clock; ``status`` does it here."""

    @property
    def key_type(self):
        return key_type_of(self._key)

    def usages(self):
        """(key usage names, [(extended key usage name, OID)]) read from the certificate."""
        names, extended = [], []
        try:
            ku = self._cert.extensions.get_extension_for_class(x509.KeyUsage).value
            names = [name for attr, name in _KEY_USAGES if getattr(ku, attr)]
        except x509.ExtensionNotFound:
            pass
        try:
            eku = self._cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            extended = [(_EKU_NAMES.get(oid, "CUSTOM"), oid.dotted_string) for oid in eku]
        except x509.ExtensionNotFound:
            pass
        return names, extended

    def has_client_auth(self):
        return any(oid == ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string
                   for _, oid in self.usages()[1])

    def stage_users(self):
        """The ARNs of the stages that reference the certificate, under ``acm_in_use_by``."""
        if not CONTROLS.switches.acm_in_use_by:
            return []
        from .apigateway import stages_using
        region = self.arn.split(":")[3]
        account = self.arn.split(":")[4]
        paths = {"REST": "/restapis/%s/stages/%s", "WEBSOCKET": "/apis/%s/stages/%s"}
        return ["arn:aws:apigateway:%s::%s" % (region, paths[kind] % (api, stage))
                for kind, api, stage in stages_using(account, region, self.arn)]

    def serial_text(self):
        text = "%x" % self._cert.serial_number
        text = ("0" + text) if len(text) % 2 else text
        return ":".join(text[i:i + 2] for i in range(0, len(text), 2))

    def summary(self):
        """The members of ``ListCertificates``' CertificateSummary (fact 114)."""
        key_usages, extended = self.usages()
        out = {
            "CertificateArn": self.arn, "DomainName": self.common_name,
            "SubjectAlternativeNameSummaries": self.sans or [self.common_name],
            "HasAdditionalSubjectAlternativeNames": False,
            "Status": self.status, "Type": self.type, "KeyAlgorithm": self.key_type,
            "KeyUsages": key_usages, "ExtendedKeyUsages": [name for name, _ in extended],
            "InUse": bool(self.stage_users()),
            "Exported": False, "RenewalEligibility": self.renewal_eligibility,
            "NotBefore": epoch(self._cert.not_valid_before_utc),
            "NotAfter": epoch(self._cert.not_valid_after_utc),
        }
        out.update(self._dates())
        return out

    def _dates(self):
        if self.type == "IMPORTED":
            out = {"ImportedAt": epoch(self.created_at)}
        else:
            out = {"CreatedAt": epoch(self.created_at)}
            if self._status != "FAILED":
                out["IssuedAt"] = epoch(self.issued_at)
        if self.revoked_at is not None:
            out["RevokedAt"] = epoch(self.revoked_at)
        return out

    @property
    def issued_at(self):
        return getattr(self, "sandbox_issued_at", None) or self.created_at

    def describe(self):
        key_usages, extended = self.usages()
        cert = self._cert
        detail = {
            "CertificateArn": self.arn, "DomainName": self.common_name,
            "SubjectAlternativeNames": self.sans or [self.common_name],
            "Serial": self.serial_text(), "Subject": cert.subject.rfc4514_string(),
            "Issuer": self.issuer_common_name, "Status": self.status,
            "NotBefore": epoch(cert.not_valid_before_utc),
            "NotAfter": epoch(cert.not_valid_after_utc),
            "KeyAlgorithm": self.key_type,
            "SignatureAlgorithm": cert.signature_hash_algorithm.name.upper() + "WITH" + (
                "RSA" if self.key_type.startswith("RSA") else "ECDSA"),
            "InUseBy": self.stage_users(), "Type": self.type,
            "KeyUsages": [{"Name": name} for name in key_usages],
            "ExtendedKeyUsages": [{"Name": name, "OID": oid} for name, oid in extended],
            "RenewalEligibility": self.renewal_eligibility,
            "Options": self.cert_options,
        }
        detail.update(self._dates())
        if self.cert_authority_arn:
            detail["CertificateAuthorityArn"] = self.cert_authority_arn
        if self.failure_reason:
            detail["FailureReason"] = self.failure_reason
        if self.revocation_reason:
            detail["RevocationReason"] = self.revocation_reason
        if self.type == "AMAZON_ISSUED":
            detail["DomainValidationOptions"] = self._validation_options()
        if self.renewal_summary:
            detail["RenewalSummary"] = dict(self.renewal_summary)
        return {"Certificate": detail}

    def _validation_options(self, status=None):
        status = status or ("SUCCESS" if self.status in ("ISSUED", "EXPIRED")
                            else "PENDING_VALIDATION")
        return [{"DomainName": self.common_name, "ValidationDomain": self.common_name,
                 "ValidationStatus": status, "ValidationMethod": "DNS"}]

    def chain_pem(self):
        """The chain ``GetCertificate`` answers: for a private certificate from its CA now."""
        if self.type == "PRIVATE":
            ca = acmpca.find_ca(self.cert_authority_arn)
            return "".join(acmpca.full_chain(ca)) if ca is not None else ""
        return self.chain.decode() if self.chain else ""

    def certificate_pem(self):
        return self.cert.decode()

    def private_key_pem(self):
        return key_pem(self._key)

    def replace_version(self, pem, key, chain=None):
        """A new version under the same ARN (a renewal or a re-import). The version it replaces
        is kept, with the moment it was replaced, for ``presented_version``."""
        self.previous = (self.certificate_pem(), self.chain_pem(), self.private_key_pem(),
                         now())
        self.cert = pem
        self._cert = x509.load_pem_x509_certificate(pem)
        self._key = key
        self.key = key_pem(key).encode()
        if chain is not None:
            self.chain = chain
        self.sandbox_issued_at = naive(now())


# -- making certificates ----------------------------------------------------------------------
def _private_failure(ca, region, account, not_after):
    """Why Private CA would refuse to sign, as ACM's FailureReason (fact 116), or None."""
    if ca is None:
        return "PCA_RESOURCE_NOT_FOUND"
    if ca.region_name != region:
        return "PCA_INVALID_ARN"
    if not acmpca.usable(ca):
        return "PCA_INVALID_STATE"
    if acmpca.not_after(ca) < not_after:
        return "PCA_INVALID_DURATION"
    return None


def issue_private(account, region, ca_arn, domain="api.example.com", key_type="RSA_2048",
                  expires_in_days=PRIVATE_DAYS, renewal="ELIGIBLE", tags=None):
    """A PRIVATE certificate signed by the CA, or FAILED with Private CA's reason."""
    if key_type not in PRIVATE_KEY_TYPES:
        raise AWSValidationException("KeyAlgorithm %s is not supported for private "
                                     "certificates" % key_type)
    key = pooled_key(key_type)
    start = now()
    end = start + datetime.timedelta(days=float(expires_in_days))
    ca = acmpca.find_ca(ca_arn)
    reason = _private_failure(ca, region, account, end)
    if reason:
        # A FAILED request holds no issued certificate; a placeholder keeps moto's shape.
        pem, _ = outside_leaf(IMPORT_ISSUER, key, domain, start, start + datetime.timedelta(
            days=1))
        cert = SandboxCertificate(account, region, pem, key_pem(key).encode(),
                                  cert_type="PRIVATE", status="FAILED", ca_arn=ca_arn,
                                  renewal="INELIGIBLE", check_dates=False)
        cert.failure_reason = reason
    else:
        pem = acmpca.issue_end_entity(ca, key.public_key(), domain, start - acmpca.BACKDATE,
                                      end)
        cert = SandboxCertificate(account, region, pem, key_pem(key).encode(),
                                  cert_type="PRIVATE", ca_arn=ca_arn, renewal=renewal,
                                  check_dates=False)
    return _store(account, region, cert, tags)


def issue_public(account, region, domain="api.example.com", key_type="RSA_2048",
                 expires_in_days=PUBLIC_DAYS, status="PENDING_VALIDATION", tags=None):
    """An AMAZON_ISSUED certificate: serverAuth only (fact 111)."""
    key = pooled_key(key_type)
    start = now()
    pem, chain = outside_leaf(PUBLIC_ISSUER, key, domain, start - datetime.timedelta(hours=1),
                              start + datetime.timedelta(days=float(expires_in_days)),
                              client_auth=False)
    cert = SandboxCertificate(account, region, pem, key_pem(key).encode(), chain,
                              cert_type="AMAZON_ISSUED", status=status, renewal="ELIGIBLE",
                              check_dates=False)
    cert.signer = ("outside", PUBLIC_ISSUER)
    return _store(account, region, cert, tags)


def import_certificate(account, region, pem, key_bytes, chain=None, arn=None, tags=None,
                       check_dates=True):
    """ImportCertificate: a new ARN, or a new version under ``arn`` (a re-import)."""
    backend = acm_backends[account][region]
    if arn is not None:
        current = backend._certificates.get(arn)
        if current is None:
            raise CertificateNotFound(arn=arn, account_id=account)
        if current.type != "IMPORTED":
            raise AWSValidationException(
                "Certificate %s was not imported: only imported certificates can be "
                "re-imported" % arn)
    cert = SandboxCertificate(account, region, pem, key_bytes, chain, cert_type="IMPORTED",
                              arn=arn, check_dates=check_dates)
    if arn is not None:
        cert.tags = current.tags
    return _store(account, region, cert, tags)


def _store(account, region, cert, tags):
    acm_backends[account][region]._certificates[cert.arn] = cert
    if tags:
        cert.tags.add(tags)
    return cert


def create_acm_certificate(region, kind, expires_in_days, ca_arn=None,
                           domain="api.example.com", client_auth=True, key_type="RSA_2048",
                           renewal="eligible", account="123456789012", tags=None):
    """The control: a certificate of ``kind`` ("imported", "private" or "public") that ends
    ``expires_in_days`` after the sandbox's now (negative: expired). Issued long enough ago to
    be valid from a year before its end at most. Returns ``{"arn": ...}``."""
    if kind not in KINDS:
        raise ValueError("kind: one of %s, not %r" % (", ".join(KINDS), kind))
    if renewal not in ("eligible", "ineligible"):
        raise ValueError("renewal: 'eligible' or 'ineligible', not %r" % (renewal,))
    days = float(expires_in_days)
    tag_list = [{"Key": k, "Value": v} for k, v in (tags or {}).items()]
    start = now()
    end = start + datetime.timedelta(days=days)
    not_before = min(start, end) - datetime.timedelta(days=30)
    if kind == "private":
        if not ca_arn:
            raise ValueError("a private certificate needs ca_arn")
        ca = acmpca.find_ca(ca_arn)
        if ca is None or ca.certificate is None:
            raise ValueError("no CA: %s" % ca_arn)
        key = pooled_key(key_type)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH]
        if client_auth:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        pem = _leaf(ca.key, ca.issuer, key, domain, not_before, end, usages)
        cert = SandboxCertificate(account, region, pem, key_pem(key).encode(),
                                  cert_type="PRIVATE", ca_arn=ca_arn,
                                  renewal=renewal.upper(), check_dates=False)
        cert.created_at = naive(not_before)
        _store(account, region, cert, tag_list)
    elif kind == "public":
        key = pooled_key(key_type)
        root_key, root = _outside_root(PUBLIC_ISSUER)
        pem = _leaf(root_key, root.subject, key, domain, not_before, end,
                    [ExtendedKeyUsageOID.SERVER_AUTH])
        cert = SandboxCertificate(account, region, pem, key_pem(key).encode(),
                                  outside_root_pem(PUBLIC_ISSUER).encode(),
                                  cert_type="AMAZON_ISSUED", renewal=renewal.upper(),
                                  check_dates=False)
        cert.signer = ("outside", PUBLIC_ISSUER)
        cert.created_at = naive(not_before)
        _store(account, region, cert, tag_list)
    else:
        key = pooled_key(key_type)
        if ca_arn:
            ca = acmpca.find_ca(ca_arn)
            if ca is None:
                raise ValueError("no CA: %s" % ca_arn)
            usages = [ExtendedKeyUsageOID.SERVER_AUTH] + (
                [ExtendedKeyUsageOID.CLIENT_AUTH] if client_auth else [])
            pem = _leaf(ca.key, ca.issuer, key, domain, not_before, end, usages)
            chain = "".join(acmpca.full_chain(ca)).encode()
        else:
            pem, chain = outside_leaf(IMPORT_ISSUER, key, domain, not_before, end, client_auth)
        cert = import_certificate(account, region, pem, key_pem(key).encode(), chain,
                                  tags=tag_list, check_dates=False)
        if ca_arn:
            cert.signer = ("pca", ca_arn)
        cert.created_at = naive(not_before)
    return {"arn": cert.arn}


def _certificate(arn):
    cert = find(arn)
    if cert is None:
        raise ValueError("no ACM certificate: %s" % arn)
    return cert


def renew(arn, expires_in_days=None):
    """A new version under the same ARN: new key, serial and notAfter (395 days ahead by
    default for a private certificate, 198 for a public one, a year for an imported one, which
    is its owner re-importing: ImportedAt moves), signed by the same issuer, with the same
    extended key usages; RenewalSummary SUCCESS for a managed one."""
    cert = _certificate(arn)
    start = now()
    default = {"PRIVATE": PRIVATE_DAYS, "AMAZON_ISSUED": PUBLIC_DAYS, "IMPORTED": 365}
    end = start + datetime.timedelta(days=float(
        default[cert.type] if expires_in_days is None else expires_in_days))
    kind, name = cert.signer
    if kind == "pca":
        ca = acmpca.find_ca(name)
        if not acmpca.usable(ca):
            raise ValueError("the CA %s cannot sign (missing, not ACTIVE or expired): use "
                             "fail_acm_renewal" % name)
        signer, issuer = ca.key, ca.issuer
    else:
        signer, root = _outside_root(name)
        issuer = root.subject
    usages = [x509.ObjectIdentifier(oid) for _, oid in cert.usages()[1]] or [
        ExtendedKeyUsageOID.SERVER_AUTH]
    key = pooled_key(cert.key_type)
    cert.replace_version(_leaf(signer, issuer, key, cert.common_name,
                               start - acmpca.BACKDATE, end, usages), key)
    if cert.type == "IMPORTED":
        cert.created_at = naive(start)
    cert.status = "ISSUED"
    cert.failure_reason = None
    if cert.type != "IMPORTED":
        cert.renewal_summary = {"RenewalStatus": "SUCCESS", "UpdatedAt": epoch(start),
                                "DomainValidationOptions": cert._validation_options("SUCCESS")}
    return describe_short(cert)


def set_renewal(arn, renewal_status, reason=None):
    """RenewalSummary as ACM shows a renewal in progress or failed; the certificate itself
    stays what it was."""
    cert = _certificate(arn)
    if renewal_status not in RENEWAL_STATUSES:
        raise ValueError("renewal status: one of %s" % ", ".join(RENEWAL_STATUSES))
    if reason is not None and reason not in FAILURE_REASONS:
        raise ValueError("reason: one of %s, not %r" % (", ".join(FAILURE_REASONS), reason))
    summary = {"RenewalStatus": renewal_status, "UpdatedAt": epoch(now()),
               "DomainValidationOptions": cert._validation_options(
                   "SUCCESS" if renewal_status != "FAILED" else "FAILED")}
    if reason:
        summary["RenewalStatusReason"] = reason
    cert.renewal_summary = summary
    return describe_short(cert)


def revoke(arn, reason="UNSPECIFIED"):
    cert = _certificate(arn)
    cert.status = "REVOKED"
    cert.revoked_at = naive(now())
    cert.revocation_reason = reason
    return describe_short(cert)


def describe_short(cert):
    return {"arn": cert.arn, "serial": cert.serial_text(), "status": cert.status,
            "not_after": cert._cert.not_valid_after_utc.isoformat(),
            "renewal_summary": cert.renewal_summary}


# -- the API ----------------------------------------------------------------------------------
def _decode(value, what):
    if value is None:
        return None
    try:
        return base64.standard_b64decode(value)
    except (ValueError, TypeError):
        raise AWSValidationException(
            "The %s is not PEM-encoded or is not valid." % what) from None


class SandboxACMResponse(AWSCertificateManagerResponse):

    def _certificate(self):
        arn = self._get_param("CertificateArn")
        if arn is None:
            raise AWSValidationException(
                "A required parameter for the specified action is not supplied.")
        return self.acm_backend.get_certificate(arn)

    def import_certificate(self):
        cert = import_certificate(
            self.current_account, self.region,
            _decode(self._get_param("Certificate"), "certificate"),
            _decode(self._get_param("PrivateKey"), "private key"),
            _decode(self._get_param("CertificateChain"), "certificate chain"),
            self._get_param("CertificateArn"), self._get_param("Tags"))
        return ActionResult(result={"CertificateArn": cert.arn})

    def request_certificate(self):
        with _REQUEST_LOCK:
            return self._request_certificate()

    def _request_certificate(self):
        token = self._get_param("IdempotencyToken")
        tags = self._get_param("Tags")
        backend = self.acm_backend
        if token is not None:
            arn = backend._get_arn_from_idempotency_token(token)
            if arn and arn in backend._certificates and backend._certificates[arn].tags.equals(
                    tags):
                return ActionResult(result={"CertificateArn": arn})
        domain = self._get_param("DomainName")
        key_type = self._get_param("KeyAlgorithm") or "RSA_2048"
        ca_arn = self._get_param("CertificateAuthorityArn")
        if ca_arn:
            cert = issue_private(self.current_account, self.region, ca_arn, domain, key_type,
                                 tags=tags)
        else:
            cert = issue_public(self.current_account, self.region, domain, key_type, tags=tags)
        if self._get_param("Options"):
            cert.cert_options.update(self._get_param("Options"))
        if token is not None:
            backend._set_idempotency_token_arn(token, cert.arn)
        return ActionResult(result={"CertificateArn": cert.arn})

    def describe_certificate(self):
        return ActionResult(result=self._certificate().describe())

    def get_certificate(self):
        cert = self._certificate()
        if cert.status in ("PENDING_VALIDATION", "FAILED", "VALIDATION_TIMED_OUT"):
            raise RequestInProgressException(
                "Certificate arn: %s is in state %s" % (cert.arn, cert.status))
        out = {"Certificate": cert.certificate_pem()}
        chain = cert.chain_pem()
        if chain:
            out["CertificateChain"] = chain
        return ActionResult(result=out)

    def list_certificates(self):
        statuses = self._get_param("CertificateStatuses") or []
        includes = self._get_param("Includes") or {}
        key_types = includes.get("keyTypes") or DEFAULT_KEY_TYPES
        ekus = includes.get("extendedKeyUsage") or []
        key_usages = includes.get("keyUsage") or []
        limit = self._get_param("MaxItems")
        limit = MAX_ITEMS if limit is None else int(limit)
        if not 1 <= limit <= MAX_ITEMS:
            raise AWSValidationException(
                "1 validation error detected: Value '%d' at 'maxItems' failed to satisfy "
                "constraint: Member must have value between 1 and %d" % (limit, MAX_ITEMS))
        found = []
        for cert in sorted(self.acm_backend._certificates.values(), key=lambda c: c.arn):
            summary = cert.summary()
            if statuses and summary["Status"] not in statuses:
                continue
            if summary["KeyAlgorithm"] not in key_types:
                continue
            if ekus and not set(ekus) & set(summary["ExtendedKeyUsages"]):
                continue
            if key_usages and not set(key_usages) & set(summary["KeyUsages"]):
                continue
            found.append(summary)
        token = self._get_param("NextToken")
        if token:
            after = base64.urlsafe_b64decode(token.encode()).decode()
            found = [s for s in found if s["CertificateArn"] > after]
        page = found[:limit]
        result = {"CertificateSummaryList": page}
        if len(found) > limit:
            result["NextToken"] = base64.urlsafe_b64encode(
                page[-1]["CertificateArn"].encode()).decode()
        return ActionResult(result=result)

    def delete_certificate(self):
        cert = self._certificate()
        users = cert.stage_users()
        if users:
            raise ResourceInUseException(
                "Certificate %s is in use by %s" % (cert.arn, ", ".join(users)))
        self.acm_backend.delete_certificate(cert.arn)
        return EmptyResult()

    def renew_certificate(self):
        cert = self._certificate()
        if cert.type != "PRIVATE" or cert.renewal_eligibility != "ELIGIBLE":
            raise AWSValidationException(
                "Certificate %s is not eligible for renewal" % cert.arn)
        ca = acmpca.find_ca(cert.cert_authority_arn)
        if not acmpca.usable(ca):
            set_renewal(cert.arn, "FAILED", "PCA_INVALID_STATE")
        else:
            renew(cert.arn)
        return EmptyResult()


def private_key_pem(arn):
    cert = find(arn)
    return cert.private_key_pem() if cert is not None else None


def is_arn(value):
    return bool(value) and re.match(r"arn:[^:]+:acm:", value) is not None


def refusal_for_stage(arn, account, region):
    """Why a stage of ``account`` and ``region`` cannot present the certificate ``arn`` (fact
    111), or None."""
    where = parse_arn(arn)
    if where is None:
        return "Invalid certificate ARN specified: %s" % arn
    if where != (region, account):
        return ("ACM certificate %s is not in the API's account and Region (%s, %s)"
                % (arn, account, region))
    cert = find(arn)
    if cert is None:
        return "ACM certificate %s not found" % arn
    if cert.type == "AMAZON_ISSUED":
        return ("ACM certificate %s is a public (AMAZON_ISSUED) certificate: backend "
                "authentication needs an imported or private certificate" % arn)
    if not cert.has_client_auth():
        return ("ACM certificate %s has no clientAuth (TLS_WEB_CLIENT_AUTHENTICATION) "
                "extended key usage" % arn)
    return None


def presented_version(arn):
    """(certificate PEM, chain PEM, private key PEM) of the version a stage presents: the
    current one, or the one it replaced while the switch ``acm_propagation_seconds`` has not
    passed since the replacement on the sandbox clock (fact 110: propagation time
    unverified). (None, None, None) for an unknown ARN."""
    cert = find(arn)
    if cert is None:
        return None, None, None
    previous = getattr(cert, "previous", None)
    delay = datetime.timedelta(seconds=CONTROLS.switches.acm_propagation_seconds)
    if previous is not None and now() < previous[3] + delay:
        return previous[:3]
    return cert.certificate_pem(), cert.chain_pem(), cert.private_key_pem()


@functools.cache  # once per process: every install patches moto in place
def install():
    """Extend moto's ACM in this process. Idempotent."""
    for pattern, handler in list(urls.url_paths.items()):
        if handler == AWSCertificateManagerResponse.dispatch:
            urls.url_paths[pattern] = SandboxACMResponse.dispatch
    acmpca.install()


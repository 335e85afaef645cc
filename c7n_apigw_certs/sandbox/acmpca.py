"""AWS Private CA, as the stages' ACM certificates need it (docs/aws-behaviour.md, facts 116-118).

moto's Private CA keeps a CA's key and certificate; the sandbox adds:

- ``create_private_ca()`` (a control): a CA that is ACTIVE at once, with a real certificate: a
  ROOT signs itself, a SUBORDINATE is signed by its parent (CA flag, path length 0 under a
  parent, key usages keyCertSign and cRLSign), valid from an hour before the sandbox's "now"
  (as Private CA backdates: fact 116) for ``expires_in_days``.
- ``age_private_ca()`` (a control): the CA's certificate re-issued with the same key and subject
  and a new notAfter, so what it signed still verifies; a notAfter in the past makes it EXPIRED.
- ``DescribeCertificateAuthority`` and ``ListCertificateAuthorities`` answer ``EXPIRED`` once the
  CA's notAfter has passed on the sandbox clock (moto keeps ACTIVE), and dates on that clock.
- ``GetCertificateAuthorityCertificate``: the CA's certificate and the chain above it up to the
  root, without the CA's own certificate, none for a root (fact 117); moto base64-decodes the
  PEM chain it was given.
- ``IssueCertificate`` honours ``Validity`` (DAYS, MONTHS, YEARS, END_DATE, ABSOLUTE) from the
  sandbox clock; moto signs for 365 days from the real clock.
- ``issue_end_entity()``: a leaf signed by the CA with the end-entity template's extensions
  (digitalSignature, keyEncipherment; serverAuth and clientAuth), which ACM's private
  certificates use (``acm.py``).

Not behaviour, cost: moto generates a new RSA-2048 key for each CA, and decrypts and checks it
again on every signature (its ``key`` property); here a new CA takes the next key of
``certificates.CA_KEYS`` (never another live CA's), and each key is loaded once per process
(``certificates.load_private_key``). Together they took a sixth of the test suite's time.
"""
import datetime
import functools
import json
import types

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from moto.acmpca import models, urls
from moto.acmpca.exceptions import InvalidStateException, ResourceNotFoundException
from moto.acmpca.models import CertificateAuthority, acmpca_backends
from moto.acmpca.responses import ACMPCAResponse

from .certificates import CA_KEYS, load_private_key
from .controls import CONTROLS

DEFAULT_CA_DAYS = 3650
BACKDATE = datetime.timedelta(minutes=60)
ROOT_TEMPLATE = "arn:aws:acm-pca:::template/RootCACertificate/V1"


def parse_ca_arn(arn):
    """(region, account) of ``arn:aws:acm-pca:<region>:<account>:certificate-authority/<id>``,
    or None."""
    parts = (arn or "").split(":", 5)
    if len(parts) != 6 or parts[2] != "acm-pca" or not parts[5].startswith(
            "certificate-authority/"):
        return None
    return parts[3], parts[4]


def find_ca(arn):
    """The CA behind an ARN (any account and region the sandbox holds), or None."""
    where = parse_ca_arn(arn)
    if where is None:
        return None
    region, account = where
    return acmpca_backends[account][region].certificate_authorities.get(arn)


def now():
    return CONTROLS.clock.now()


def not_after(ca):
    cert = ca.certificate
    return cert.not_valid_after_utc if cert is not None else None


def status(ca):
    """The CA's status on the sandbox clock: an ACTIVE CA past its notAfter is EXPIRED."""
    if ca.status == "ACTIVE" and ca.certificate is not None and not_after(ca) <= now():
        return "EXPIRED"
    return ca.status


def usable(ca):
    """Whether the CA can sign now: ACTIVE on the sandbox clock."""
    return ca is not None and status(ca) == "ACTIVE"


def parent_of(ca):
    return find_ca(getattr(ca, "sandbox_parent", None))


def chain_above(ca):
    """The PEM certificates above the CA, nearest first, up to the root: for a CA the sandbox
    made, from the parents' current certificates; else the chain imported with it."""
    if getattr(ca, "sandbox_parent", None) is None:
        chain = ca.certificate_chain
        return [chain.decode() if isinstance(chain, bytes) else chain] if chain else []
    found, parent = [], parent_of(ca)
    while parent is not None:
        found.append(parent.certificate_bytes.decode())
        parent = parent_of(parent)
    return found


def full_chain(ca):
    """The CA's certificate followed by the chain above it: what a leaf it signed chains to."""
    return [ca.certificate_bytes.decode()] + chain_above(ca)


def _ca_certificate(ca, not_before, not_after_, parent=None, serial=None):
    subject = ca.issuer  # moto's name of the CA, from its configuration's Subject
    signer = parent.key if parent is not None else ca.key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(parent.issuer if parent is not None else subject)
        .public_key(ca.key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after_)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0 if parent else None),
                       critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca.key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            signer.public_key()), critical=False)
    )
    return builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def create_private_ca(region, common_name, expires_in_days=DEFAULT_CA_DAYS, parent_arn=None,
                      account="123456789012"):
    """An ACTIVE CA with a real certificate: ROOT without a parent, else SUBORDINATE signed by
    the parent (which must be ACTIVE). Returns its ARN, certificate and chain (PEM)."""
    parent = None
    if parent_arn:
        parent = find_ca(parent_arn)
        if not usable(parent):
            raise ValueError("parent CA %s: not found or not ACTIVE" % parent_arn)
    backend = acmpca_backends[account][region]
    arn = backend.create_certificate_authority(
        certificate_authority_configuration={
            "KeyAlgorithm": "RSA_2048", "SigningAlgorithm": "SHA256WITHRSA",
            "Subject": {"CommonName": common_name}},
        revocation_configuration=None,
        certificate_authority_type="SUBORDINATE" if parent else "ROOT",
        security_standard=None, tags=None)
    ca = backend.certificate_authorities[arn]
    ca.usage_mode = "GENERAL_PURPOSE"  # Private CA's default; moto's is SHORT_LIVED_CERTIFICATE
    ca.sandbox_parent = parent.arn if parent else None
    start = now()
    ca.created_at = start.timestamp()
    pem = _ca_certificate(ca, start - BACKDATE,
                          start + datetime.timedelta(days=float(expires_in_days)), parent)
    ca.import_certificate_authority_certificate(pem, None)
    ca.updated_at = start.timestamp()
    return describe_pems(ca)


def describe_pems(ca):
    return {"arn": ca.arn, "certificate_pem": ca.certificate_bytes.decode(),
            "chain_pem": "".join(chain_above(ca))}


def age_private_ca(ca_arn, expires_in_days):
    """Re-issue the CA's certificate (same key and subject, new serial) to end
    ``expires_in_days`` after the sandbox's now; negative: it has expired."""
    ca = find_ca(ca_arn)
    if ca is None or ca.certificate is None:
        raise ValueError("no CA with a certificate: %s" % ca_arn)
    end = now() + datetime.timedelta(days=float(expires_in_days))
    start = min(ca.certificate.not_valid_before_utc, end - datetime.timedelta(days=1))
    ca.certificate_bytes = _ca_certificate(ca, start, end, parent_of(ca))
    ca.updated_at = now().timestamp()
    return describe_pems(ca)


def issue_end_entity(ca, public_key, common_name, not_before, not_after_, client_auth=True):
    """A leaf signed by the CA: Private CA's end-entity template (fact 116); without
    ``client_auth`` only serverAuth."""
    usages = [ExtendedKeyUsageOID.SERVER_AUTH]
    if client_auth:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after_)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=True,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _validity_end(validity, start):
    """The notAfter of Private CA's ``Validity`` ({Type, Value}) from ``start``."""
    kind, value = validity.get("Type"), validity.get("Value")
    if kind == "DAYS":
        return start + datetime.timedelta(days=value)
    if kind == "MONTHS":
        return start + datetime.timedelta(days=30.4375 * value)
    if kind == "YEARS":
        return start + datetime.timedelta(days=365.25 * value)
    if kind == "ABSOLUTE":
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    if kind == "END_DATE":  # YYYYMMDDHHMMSS
        return datetime.datetime.strptime(str(value), "%Y%m%d%H%M%S").replace(
            tzinfo=datetime.timezone.utc)
    raise ValueError("Validity Type %r" % kind)


def _generate_cert(original):
    """moto signs for 365 days of the real clock; the sandbox uses its clock and the request's
    ``Validity`` (``SandboxACMPCAResponse.issue_certificate`` leaves it on the CA)."""
    def generate_cert(self, subject, public_key, extensions):
        start = now()
        validity = getattr(self, "sandbox_validity", None)
        end = _validity_end(validity, start) if validity else start + datetime.timedelta(
            days=365)
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(self.issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(start - BACKDATE).not_valid_after(end))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical)
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    return generate_cert


def _to_json(original):
    def to_json(self):
        out = original(self)
        out["Status"] = status(self)
        return out
    return to_json


class SandboxACMPCAResponse(ACMPCAResponse):

    def _params(self):
        return json.loads(self.body) if self.body else {}

    def get_certificate_authority_certificate(self):
        arn = self._params().get("CertificateAuthorityArn")
        ca = self.acmpca_backend.describe_certificate_authority(arn)
        if ca.certificate is None:
            raise InvalidStateException(arn)
        out = {"Certificate": ca.certificate_bytes.decode()}
        above = chain_above(ca)
        if above:
            out["CertificateChain"] = "".join(above)
        return json.dumps(out)

    def issue_certificate(self):
        params = self._params()
        arn = params.get("CertificateAuthorityArn")
        ca = self.acmpca_backend.describe_certificate_authority(arn)
        if status(ca) != "ACTIVE" and params.get("TemplateArn") != ROOT_TEMPLATE:
            raise InvalidStateException(arn)
        ca.sandbox_validity = params.get("Validity")
        try:
            return super().issue_certificate()
        finally:
            ca.sandbox_validity = None


class _CAKeys(types.ModuleType):
    """cryptography's ``rsa`` module as moto's Private CA module sees it: the same, except that
    the RSA-2048 key moto makes for a new CA is the next of ``CA_KEYS``."""

    def __init__(self):
        super().__init__(rsa.__name__)

    def __getattr__(self, name):
        return getattr(rsa, name)

    @staticmethod
    def generate_private_key(public_exponent, key_size, backend=None):
        if (public_exponent, key_size) == (65537, 2048):
            return CA_KEYS.take()
        return rsa.generate_private_key(public_exponent, key_size)


def _loaded_key(self):
    """The CA's private key, loaded once per process (moto's ``key`` loads it on each use)."""
    return load_private_key(self.private_bytes, self.password)


def ca_not_found(arn):
    return ResourceNotFoundException(arn)


@functools.cache  # once per process: every install patches moto in place
def install():
    """Extend moto's Private CA in this process. Idempotent."""
    for pattern, handler in list(urls.url_paths.items()):
        if handler == ACMPCAResponse.dispatch:
            urls.url_paths[pattern] = SandboxACMPCAResponse.dispatch
    CertificateAuthority.generate_cert = _generate_cert(CertificateAuthority.generate_cert)
    CertificateAuthority.to_json = _to_json(CertificateAuthority.to_json)
    CertificateAuthority.key = property(_loaded_key)
    models.rsa = _CAKeys()


def private_key_pem(arn):
    """The CA's private key (PKCS#8 PEM), or None."""
    from .certificates import key_pem
    ca = find_ca(arn)
    return key_pem(ca.key) if ca is not None else None

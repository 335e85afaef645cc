"""Elastic Load Balancing trust stores, which moto 5.2.5 lacks (docs/aws-behaviour.md, facts
162-169).

- ``CreateTrustStore`` and ``ModifyTrustStore`` read the CA bundle from S3 *when called*
  (bucket, key and, if given, the object version; fact 162): a later S3 write reaches the trust
  store only through another ``ModifyTrustStore``. A missing object is
  ``CaCertificatesBundleNotFound``; a bundle that breaks a rule is
  ``InvalidCaCertificatesBundle`` and the trust store keeps what it had: not PEM certificates,
  more than 25 certificates, one over 16 KB, subjects over 10,000 bytes in all (fact 163), and,
  under the switch ``trust_store_self_signed: refuse`` (the default), a certificate without
  the CA flag, such as every API Gateway certificate (fact 164, unverified: the switch's
  ``accept`` takes it).
- ``DescribeTrustStores`` (by ARN or name, paged): Status CREATING for the next
  ``trust_store_pending_describes`` describes after a create or modify (switch, default 0),
  then ACTIVE; ``NumberOfCaCertificates``. ``DeleteTrustStore``. 20 trust stores per account
  and region (``TooManyTrustStores``).
- ``trust_store_bundle(arn)`` (a control): the PEMs the trust store verifies against now, for a
  load balancer stand-in.
"""
import functools
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from moto.core.responses import ActionResult, EmptyResult
from moto.elbv2.exceptions import ELBClientError
from moto.elbv2.models import elbv2_backends
from moto.elbv2.responses import ELBV2Response
from moto.s3.models import s3_backends
from moto.utilities.utils import get_partition

from .controls import CONTROLS

MAX_TRUST_STORES = 20
MAX_CERTIFICATES = 25
MAX_CERTIFICATE_BYTES = 16 * 1024
MAX_SUBJECT_BYTES = 10000


class TrustStore:
    def __init__(self, account, region, name, pems):
        self.name = name
        self.arn = "arn:%s:elasticloadbalancing:%s:%s:truststore/%s/%s" % (
            get_partition(region), region, account, name, secrets.token_hex(8))
        self.pems = pems
        self.pending = CONTROLS.switches.trust_store_pending_describes

    def describe(self):
        """The status answered once: CREATING while describes are pending, then ACTIVE."""
        status = "CREATING" if self.pending > 0 else "ACTIVE"
        self.pending = max(0, self.pending - 1)
        return {"Name": self.name, "TrustStoreArn": self.arn, "Status": status,
                "NumberOfCaCertificates": len(self.pems), "TotalRevokedEntries": 0}

    def describe_static(self):
        """What Create and Modify answer: the status, without using up a pending describe."""
        return {"Name": self.name, "TrustStoreArn": self.arn,
                "Status": "CREATING" if self.pending > 0 else "ACTIVE",
                "NumberOfCaCertificates": len(self.pems), "TotalRevokedEntries": 0}

    def load(self, pems):
        self.pems = pems
        self.pending = CONTROLS.switches.trust_store_pending_describes


def trust_stores(account, region):
    backend = elbv2_backends[account][region]
    if not hasattr(backend, "sandbox_trust_stores"):
        backend.sandbox_trust_stores = {}
    return backend.sandbox_trust_stores


def invalid(message):
    return ELBClientError("InvalidCaCertificatesBundle", message)


def check_bundle(data):
    """The PEMs of a CA bundle, or ``InvalidCaCertificatesBundle`` saying which rule it breaks
    (fact 163; the CA flag under ``trust_store_self_signed``, fact 164)."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise invalid("The CA certificates bundle is not a list of PEM certificates") from None
    if len(certs) > MAX_CERTIFICATES:
        raise invalid("The CA certificates bundle holds %d certificates, more than %d"
                      % (len(certs), MAX_CERTIFICATES))
    subjects = 0
    for cert in certs:
        der = cert.public_bytes(serialization.Encoding.DER)
        if len(der) > MAX_CERTIFICATE_BYTES:
            raise invalid("A CA certificate is over %d bytes" % MAX_CERTIFICATE_BYTES)
        subjects += len(cert.subject.public_bytes())
        if CONTROLS.switches.trust_store_self_signed == "refuse" and not _is_ca(cert):
            raise invalid("Certificate %s (serial %x) is not a CA certificate (no basic "
                          "constraints CA:TRUE)" % (cert.subject.rfc4514_string(),
                                                    cert.serial_number))
    if subjects > MAX_SUBJECT_BYTES:
        raise invalid("The CA certificates' subjects total %d bytes, more than %d"
                      % (subjects, MAX_SUBJECT_BYTES))
    return [c.public_bytes(serialization.Encoding.PEM).decode() for c in certs]


def _is_ca(cert):
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def read_bundle(account, region, bucket, key, version=None):
    """The bundle's bytes as S3 holds them now (that version, if given)."""
    backend = s3_backends[account][get_partition(region)]
    try:
        found = backend.get_object(bucket, key, version_id=version)
    except Exception:  # moto's MissingBucket and the like: the bundle is not found
        found = None
    if found is None:
        raise ELBClientError("CaCertificatesBundleNotFound",
                             "The CA certificates bundle s3://%s/%s%s does not exist" % (
                                 bucket, key, " (version %s)" % version if version else ""))
    return found.value


def find(account, region, arn):
    for store in trust_stores(account, region).values():
        if store.arn == arn:
            return store
    raise ELBClientError("TrustStoreNotFound", "The specified trust store does not exist.")


def trust_store_bundle(arn):
    """The PEM text a trust store verifies against now (the load balancer stand-in's), or
    None."""
    parts = arn.split(":")
    if len(parts) < 6:
        return None
    try:
        return "".join(find(parts[4], parts[3], arn).pems)
    except ELBClientError:
        return None


# -- the API (methods added to moto's ELBV2Response) -------------------------------------------
def _bundle_params(self):
    return (self._get_param("CaCertificatesBundleS3Bucket"),
            self._get_param("CaCertificatesBundleS3Key"),
            self._get_param("CaCertificatesBundleS3ObjectVersion"))


def create_trust_store(self):
    account, region = self.current_account, self.region
    stores = trust_stores(account, region)
    name = self._get_param("Name")
    if name in stores:
        raise ELBClientError("DuplicateTrustStoreName",
                             "A trust store with the name '%s' already exists" % name)
    if len(stores) >= MAX_TRUST_STORES:
        raise ELBClientError("TooManyTrustStores", "You've reached the limit on the number "
                             "of trust stores for your AWS account (%d)" % MAX_TRUST_STORES)
    pems = check_bundle(read_bundle(account, region, *_bundle_params(self)))
    store = stores[name] = TrustStore(account, region, name, pems)
    return ActionResult({"TrustStores": [store.describe_static()]})


def modify_trust_store(self):
    account, region = self.current_account, self.region
    store = find(account, region, self._get_param("TrustStoreArn"))
    store.load(check_bundle(read_bundle(account, region, *_bundle_params(self))))
    return ActionResult({"TrustStores": [store.describe_static()]})


def describe_trust_stores(self):
    stores = list(trust_stores(self.current_account, self.region).values())
    arns = self._get_param("TrustStoreArns", [])
    names = self._get_param("Names", [])
    if arns:
        stores = [find(self.current_account, self.region, arn) for arn in arns]
    if names:
        missing = set(names) - {s.name for s in stores}
        if missing:
            raise ELBClientError("TrustStoreNotFound",
                                 "The specified trust store does not exist.")
        stores = [s for s in stores if s.name in names]
    stores.sort(key=lambda s: s.name)
    size = int(self._get_param("PageSize") or 400)
    marker = self._get_param("Marker")
    if marker:
        stores = [s for s in stores if s.name > marker]
    result = {"TrustStores": [s.describe() for s in stores[:size]]}
    if len(stores) > size:
        result["NextMarker"] = stores[size - 1].name
    return ActionResult(result)


def delete_trust_store(self):
    store = find(self.current_account, self.region, self._get_param("TrustStoreArn"))
    del trust_stores(self.current_account, self.region)[store.name]
    return EmptyResult()


@functools.cache  # once per process: every install patches moto in place
def install():
    """Add trust stores to moto's ELBv2 in this process. Idempotent."""
    for name, method in (("create_trust_store", create_trust_store),
                         ("modify_trust_store", modify_trust_store),
                         ("describe_trust_stores", describe_trust_stores),
                         ("delete_trust_store", delete_trust_store)):
        setattr(ELBV2Response, name, method)

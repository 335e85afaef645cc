"""Client certificates as API Gateway makes them: real X.509, 365 days, ids of 6 characters.

Sources (docs/aws-behaviour.md):
- fact 1: self-signed, subject ``C=US, L=Seattle, CN=ApiGateway``, RSA-2048, SHA-256, no
  extensions, valid for exactly 365 days. The PEMs recorded in tests/data/placebo show the same
  (X.509 v3, a 64-bit serial, no extensions).
- fact 3: the fields, ``\\r\\n`` line endings in the PEM, ``tags`` absent when there are none.
- fact 4: the ARN ``arn:{partition}:apigateway:{region}::/clientcertificates/{id}``, whose
  tags ``apigateway.py`` serves.
- fact 5: 60 certificates per account and region.

Known difference from AWS: RSA key generation costs ~50 ms, so certificates share keys drawn
from a small pool per key type (``KEY_POOL_SIZE``; ACM's certificates draw from it too). Each
certificate is still its own X.509 certificate with its own serial and validity; only the public
key may repeat. AWS keeps the private key (fact 2); the sandbox keeps it too, on the certificate
(``ClientCertificate.key``), so that a TLS probe can present what a stage presents
(``controls.private_key_pem``).

A private CA's key, unlike a certificate's, is never shared with another CA of the sandbox:
two CAs with one key would verify each other's certificates wherever their names match.
``CA_KEYS`` hands each new CA the next key of a sequence, and only a reset of the whole sandbox
(``server.py``, ``POST /_sandbox/reset``: no CA is left) starts the sequence again, so that a
test's CAs reuse the keys an earlier test's CAs had instead of generating their own. A PEM key
is parsed (and, for RSA, checked) once per process: ``load_private_key``.
"""
import datetime
import functools
import random
import secrets
import string
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from .controls import DEFAULT_QUOTA  # noqa: F401  (the quota is a switch; defined there)

VALIDITY = datetime.timedelta(days=365)
KEY_POOL_SIZE = 4
ID_ALPHABET = string.ascii_lowercase + string.digits

_SUBJECT = x509.Name([
    x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
    x509.NameAttribute(NameOID.LOCALITY_NAME, "Seattle"),
    x509.NameAttribute(NameOID.COMMON_NAME, "ApiGateway"),
])
# ACM's key algorithm names (docs/aws-behaviour.md, fact 114) and how to make such a key.
KEY_TYPES = {
    "RSA_1024": lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
    "RSA_2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "RSA_3072": lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072),
    "RSA_4096": lambda: rsa.generate_private_key(public_exponent=65537, key_size=4096),
    "EC_prime256v1": lambda: ec.generate_private_key(ec.SECP256R1()),
    "EC_secp384r1": lambda: ec.generate_private_key(ec.SECP384R1()),
    "EC_secp521r1": lambda: ec.generate_private_key(ec.SECP521R1()),
}
_EC_NAMES = {"secp256r1": "EC_prime256v1", "secp384r1": "EC_secp384r1",
             "secp521r1": "EC_secp521r1"}
_keys = {}
_keys_lock = threading.Lock()


def pooled_key(key_type="RSA_2048"):
    """A key of the ACM key type, generated on first need, up to KEY_POOL_SIZE distinct keys
    per type."""
    if key_type not in KEY_TYPES:
        raise ValueError("key type: one of %s, not %r" % (", ".join(KEY_TYPES), key_type))
    with _keys_lock:
        pool = _keys.setdefault(key_type, [])
        if len(pool) < KEY_POOL_SIZE:
            pool.append(KEY_TYPES[key_type]())
            return pool[-1]
        return random.choice(pool)


class KeySequence:
    """Keys of one type, each handed out once until ``rewind()``; generated on first need."""

    def __init__(self, key_type="RSA_2048"):
        self.make = KEY_TYPES[key_type]
        self._keys = []
        self._next = 0
        self._lock = threading.Lock()

    def take(self):
        with self._lock:
            if self._next == len(self._keys):
                self._keys.append(self.make())
            self._next += 1
            return self._keys[self._next - 1]

    def rewind(self):
        """Every key handed out so far is free again: call only when none is in use."""
        with self._lock:
            self._next = 0


CA_KEYS = KeySequence("RSA_2048")  # moto's Private CA makes RSA-2048 keys only (acmpca.py)


@functools.lru_cache(maxsize=256)
def load_private_key(pem, password=None):
    """``serialization.load_pem_private_key``, once per PEM (bytes) and password: the loaded
    key is immutable, and loading an RSA key checks it, which costs about as much as a
    signature. Raises as that function raises, and caches no failure."""
    return serialization.load_pem_private_key(pem, password=password)


def key_type_of(key):
    """ACM's name for a key's algorithm and size (``RSA_2048``, ``EC_prime256v1``...)."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return _EC_NAMES.get(key.curve.name, "EC_" + key.curve.name)
    return "RSA_%d" % key.key_size


def key_pem(key):
    """A private key as unencrypted PKCS#8 PEM text."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def make_pem(not_before, not_after, key=None):
    """A self-signed PEM like API Gateway's, with ``\\r\\n`` line endings (fact 3), signed by
    ``key`` (a pooled RSA-2048 key by default)."""
    key = key or pooled_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_SUBJECT)
        .issuer_name(_SUBJECT)
        .public_key(key.public_key())
        .serial_number(secrets.randbits(63) | (1 << 63))
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return pem.strip().replace("\n", "\r\n")


def new_certificate_id(taken):
    while True:
        cid = "".join(secrets.choice(ID_ALPHABET) for _ in range(6))
        if cid not in taken:
            return cid


class ClientCertificate:
    """One certificate. ``not_after`` may differ from ``expiration`` only when a test asks."""

    def __init__(self, cert_id, description, created, tags=None, not_after=None):
        self.id = cert_id
        self.description = description or ""
        self.created = created.replace(microsecond=0)
        self.expiration = self.created + VALIDITY
        self.tags = dict(tags or {})
        self.key = pooled_key()
        self.pem = make_pem(self.created, not_after or self.expiration, self.key)

    def to_json(self):
        """The wire shape: dates as epoch seconds; ``tags`` absent when empty (fact 3), and so,
        like every unset member in API Gateway's JSON, ``description``."""
        out = {
            "clientCertificateId": self.id,
            "pemEncodedCertificate": self.pem,
            "createdDate": int(self.created.timestamp()),
            "expirationDate": int(self.expiration.timestamp()),
        }
        if self.description:
            out["description"] = self.description
        if self.tags:
            out["tags"] = dict(self.tags)
        return out

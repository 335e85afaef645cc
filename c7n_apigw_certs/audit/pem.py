"""The validity of a PEM certificate, read with the standard library only.

The Lambda archive that c7n builds for a policy cannot carry ``cryptography`` (its X.509 code
needs a compiled module: docs/aws-behaviour.md, fact 34), and the Lambda Python runtime does not
provide it (fact 27). What the filters need from a PEM is its validity, which sits at a fixed
place in the DER encoding (RFC 5280, 4.1)::

    Certificate    ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    TBSCertificate ::= SEQUENCE { version [0] EXPLICIT OPTIONAL, serialNumber INTEGER,
                                  signature AlgorithmIdentifier, issuer Name,
                                  validity Validity, ... }
    Validity       ::= SEQUENCE { notBefore Time, notAfter Time }
    Time           ::= CHOICE { utcTime UTCTime, generalTime GeneralizedTime }

so a minimal DER reader (tag, length, value) walks to it. The times follow RFC 5280, 4.1.2.5
(fact 73): UTCTime ``YYMMDDHHMMSSZ`` through 2049 (``YY`` >= 50 is 19YY, below 50 is 20YY),
GeneralizedTime ``YYYYMMDDHHMMSSZ`` from 2050 on, always in UTC ("Z") with seconds and without
fractions. Anything else is refused, never guessed.

Nothing is verified: no signature, no chain. The filters only read the date a backend checks.
"""
import base64
import binascii
import datetime
import re

_PEM = re.compile(
    r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)

SEQUENCE = 0x30
INTEGER = 0x02
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
VERSION = 0xA0  # [0] EXPLICIT, constructed


class CertificateError(ValueError):
    """A PEM certificate that cannot be read; the message names it."""


def validity(pem, name="certificate"):
    """(notBefore, notAfter) of the first certificate in ``pem``, as aware UTC datetimes.
    ``name`` labels the errors (``client-certificate:abc123``)."""
    der = _der(pem, name)
    try:
        cert = _element(der, 0, SEQUENCE)
        if cert.end != len(der):
            raise ValueError("%d byte(s) after the certificate" % (len(der) - cert.end))
        tbs = _element(der, cert.start, SEQUENCE)
        position = tbs.start
        if _tag(der, position) == VERSION:
            position = _element(der, position, VERSION).end
        position = _element(der, position, INTEGER).end       # serialNumber
        position = _element(der, position, SEQUENCE).end      # signature AlgorithmIdentifier
        position = _element(der, position, SEQUENCE).end      # issuer Name
        dates = _element(der, position, SEQUENCE)             # validity
        if dates.end > tbs.end:
            raise ValueError("validity runs past tbsCertificate")
        not_before, after = _time(der, dates.start)
        not_after, after = _time(der, after)
        if after != dates.end:
            raise ValueError("validity holds more than notBefore and notAfter")
    except ValueError as e:
        raise CertificateError("%s: not an X.509 certificate: %s" % (name, e)) from None
    return not_before, not_after


def not_after(pem, name="certificate"):
    """The notAfter of the first certificate in ``pem`` (see ``validity``)."""
    return validity(pem, name)[1]


def _der(pem, name):
    if not isinstance(pem, str):
        raise CertificateError("%s: no PEM (%s)" % (name, type(pem).__name__))
    match = _PEM.search(pem)
    if match is None:
        raise CertificateError(
            "%s: not a PEM certificate: no BEGIN/END CERTIFICATE block" % name)
    body = "".join(match.group(1).split())
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as e:
        raise CertificateError("%s: the PEM's base64 does not decode: %s" % (name, e)) from None


class _Span:
    __slots__ = ("start", "end")

    def __init__(self, start, end):
        self.start, self.end = start, end


def _tag(der, position):
    if position >= len(der):
        raise ValueError("truncated at byte %d" % position)
    return der[position]


def _element(der, position, expected):
    """The span of the value of the DER element at ``position``, which must have tag
    ``expected``; the element ends where its value does. Definite lengths only, as DER
    requires."""
    tag = _tag(der, position)
    if tag != expected:
        raise ValueError("byte %d: tag 0x%02x where 0x%02x belongs" % (position, tag, expected))
    first = _tag(der, position + 1)
    start = position + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise ValueError("byte %d: unsupported length form 0x%02x" % (position + 1, first))
        if start + count > len(der):
            raise ValueError("truncated at byte %d" % start)
        length = int.from_bytes(der[start:start + count], "big")
        start += count
    end = start + length
    if end > len(der):
        raise ValueError("byte %d: a length of %d runs past the end (%d bytes)"
                         % (position, length, len(der)))
    return _Span(start, end)


def _time(der, position):
    """A UTCTime or GeneralizedTime as RFC 5280 4.1.2.5 allows it, and the position after."""
    tag = _tag(der, position)
    if tag not in (UTC_TIME, GENERALIZED_TIME):
        raise ValueError("byte %d: tag 0x%02x is not a UTCTime or GeneralizedTime"
                         % (position, tag))
    span = _element(der, position, tag)
    text = der[span.start:span.end].decode("ascii", "replace")
    digits = 12 if tag == UTC_TIME else 14
    if len(text) != digits + 1 or not text[:digits].isdigit() or text[-1] != "Z":
        raise ValueError("%s %r is not %s" % (
            "UTCTime" if tag == UTC_TIME else "GeneralizedTime", text,
            "YYMMDDHHMMSSZ" if tag == UTC_TIME else "YYYYMMDDHHMMSSZ"))
    if tag == UTC_TIME:
        year = int(text[:2])
        year += 1900 if year >= 50 else 2000
        rest = text[2:12]
    else:
        year = int(text[:4])
        rest = text[4:14]
    month, day, hour, minute, second = (int(rest[i:i + 2]) for i in range(0, 10, 2))
    try:
        moment = datetime.datetime(year, month, day, hour, minute, second,
                                   tzinfo=datetime.timezone.utc)
    except ValueError as e:
        raise ValueError("time %r: %s" % (text, e)) from None
    return moment, span.end

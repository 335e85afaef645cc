"""pem.py, the standard-library reader of a certificate's validity, against what cryptography
mints and reads: both time formats (fact 73), AWS's own recorded PEMs, and malformed input."""
import base64
import datetime
import json
import logging
import pathlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from c7n_apigw_certs.audit import pem
from c7n_apigw_certs.audit.filters import effective_expiry
from c7n_apigw_certs.sandbox.certificates import make_pem

UTC = datetime.timezone.utc
PLACEBO = pathlib.Path(__file__).parent / "data" / "placebo"
NAME = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "test")])


def minted(not_before, not_after, version=x509.Version.v3):
    """A certificate that cryptography signs; cryptography picks the time format (UTCTime
    through 2049, GeneralizedTime from 2050 on) as RFC 5280 says."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (x509.CertificateBuilder().subject_name(NAME).issuer_name(NAME)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after))
    builder._version = version  # no public way to mint a v1 certificate (no [0] version)
    cert = builder.sign(key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def der_of(text):
    return base64.b64decode("".join(text.strip().splitlines()[1:-1]))


def pem_of(der):
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "\n".join(["-----BEGIN CERTIFICATE-----"] + lines + ["-----END CERTIFICATE-----"])


@pytest.mark.parametrize("not_before,not_after,tags", [
    # UTCTime both ends
    (datetime.datetime(2026, 11, 27, 6, 0, 0), datetime.datetime(2027, 11, 27, 6, 0, 0),
     (0x17, 0x17)),
    # last second of UTCTime, then the first of GeneralizedTime
    (datetime.datetime(2049, 12, 31, 23, 59, 58), datetime.datetime(2049, 12, 31, 23, 59, 59),
     (0x17, 0x17)),
    (datetime.datetime(2049, 12, 31, 23, 59, 59), datetime.datetime(2050, 1, 1, 0, 0, 0),
     (0x17, 0x18)),
    # notAfter far out: GeneralizedTime
    (datetime.datetime(2026, 1, 1), datetime.datetime(9999, 12, 31, 23, 59, 59), (0x17, 0x18)),
    # UTCTime's 19YY half (cryptography mints nothing before 1950)
    (datetime.datetime(1950, 1, 1), datetime.datetime(1999, 12, 31, 23, 59, 59), (0x17, 0x17)),
])
def test_reads_what_cryptography_mints(not_before, not_after, tags):
    text = minted(not_before, not_after)
    theirs = x509.load_pem_x509_certificate(text.encode())
    assert pem.validity(text) == (theirs.not_valid_before_utc, theirs.not_valid_after_utc)
    assert pem.not_after(text) == not_after.replace(tzinfo=UTC)
    # the encoding really is the one the case names: the tag bytes of the two times
    der = der_of(text)
    assert tuple(der[i] for i in _time_offsets(der)) == tags


def _time_offsets(der):
    """Offsets of the two time tags, found the long way (a 13- or 15-byte time element
    after a SEQUENCE header), to check the parametrisation above independently."""
    found = []
    for i in range(len(der) - 2):
        if der[i] in (0x17, 0x18) and der[i + 1] == (13 if der[i] == 0x17 else 15):
            found.append(i)
    return found[:2]


def test_reads_the_sandbox_pems_with_crlf():
    text = make_pem(datetime.datetime(2026, 3, 1, 8, 30, 5, tzinfo=UTC),
                    datetime.datetime(2027, 3, 1, 8, 30, 5, tzinfo=UTC))
    assert "\r\n" in text
    assert pem.validity(text) == (datetime.datetime(2026, 3, 1, 8, 30, 5, tzinfo=UTC),
                                  datetime.datetime(2027, 3, 1, 8, 30, 5, tzinfo=UTC))


def test_reads_api_gateways_recorded_pems_as_cryptography_does():
    pems = []
    for path in PLACEBO.glob("*/apigateway.GetClientCertificates_1.json"):
        for item in json.loads(path.read_text())["data"]["items"]:
            pems.append(item["pemEncodedCertificate"])
    assert len(pems) >= 3
    for text in pems:
        theirs = x509.load_pem_x509_certificate(text.encode())
        assert pem.validity(text) == (theirs.not_valid_before_utc, theirs.not_valid_after_utc)


def test_v1_certificate_without_version_field():
    text = minted(datetime.datetime(2026, 1, 1), datetime.datetime(2027, 1, 1),
                  version=x509.Version.v1)
    assert pem.not_after(text) == datetime.datetime(2027, 1, 1, tzinfo=UTC)


def test_first_certificate_of_a_bundle():
    first = minted(datetime.datetime(2026, 1, 1), datetime.datetime(2027, 1, 1))
    second = minted(datetime.datetime(2026, 1, 1), datetime.datetime(2031, 1, 1))
    assert pem.not_after(first + "\n" + second) == datetime.datetime(2027, 1, 1, tzinfo=UTC)


GOOD = minted(datetime.datetime(2026, 1, 1), datetime.datetime(2027, 1, 1))
GOOD_DER = der_of(GOOD)
NOT_AFTER = GOOD_DER.index(b"270101000000Z")


def patched(offset, new):
    return pem_of(GOOD_DER[:offset] + new + GOOD_DER[offset + len(new):])


@pytest.mark.parametrize("text,message", [
    (None, "no PEM (NoneType)"),
    ("", "no BEGIN/END CERTIFICATE block"),
    ("-----BEGIN CERTIFICATE-----\r\nnot a cert\r\n", "no BEGIN/END CERTIFICATE block"),
    ("-----BEGIN CERTIFICATE-----\nnot*base64\n-----END CERTIFICATE-----", "base64"),
    (pem_of(b"\x30\x03\x02\x01\x01"), "tag 0x02 where 0x30 belongs"),
    (pem_of(GOOD_DER[:200]), "runs past the end"),
    (pem_of(GOOD_DER + b"\x00"), "1 byte(s) after the certificate"),
    (patched(NOT_AFTER, b"271301000000Z"), "month must be in 1..12"),
    (patched(NOT_AFTER, b"2701010000000"), "is not YYMMDDHHMMSSZ"),         # no Z
    (patched(NOT_AFTER - 2, b"\x18"), "is not YYYYMMDDHHMMSSZ"),            # wrong length
    (patched(NOT_AFTER - 2, b"\x04"), "not a UTCTime or GeneralizedTime"),
])
def test_malformed_input_is_an_error_naming_the_certificate(text, message):
    with pytest.raises(pem.CertificateError) as caught:
        pem.not_after(text, "client-certificate:bad001")
    assert str(caught.value).startswith("client-certificate:bad001: ")
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_generalized_time_with_fractions_is_refused():
    # RFC 5280 4.1.2.5.2: GeneralizedTime MUST NOT include fractional seconds
    text = minted(datetime.datetime(2026, 1, 1), datetime.datetime(2051, 1, 1))
    der = der_of(text)
    i = der.index(b"20510101000000Z")
    assert der[i - 2:i] == b"\x18\x0f"
    # same length, so every enclosing length still holds: "2051010100000.Z" is 15 bytes
    text = pem_of(der[:i] + b"2051010100000.Z" + der[i + 15:])
    with pytest.raises(pem.CertificateError, match="is not YYYYMMDDHHMMSSZ"):
        pem.not_after(text, "client-certificate:frac01")


def test_filter_warns_per_certificate_and_the_others_still_read(caplog):
    now = datetime.datetime(2026, 6, 1, tzinfo=UTC)
    certs = [{"clientCertificateId": cid, "expirationDate": now + datetime.timedelta(days=90),
              "pemEncodedCertificate": make_pem(now, now + datetime.timedelta(days=days))}
             for cid, days in (("good01", 10), ("good02", 20))]
    certs.insert(1, {"clientCertificateId": "bad002", "expirationDate": now,
                     "pemEncodedCertificate": patched(NOT_AFTER, b"271301000000Z")})
    with caplog.at_level(logging.WARNING):
        results = [effective_expiry(c) for c in certs]
    assert results == [(now + datetime.timedelta(days=10), "pem"), (now, "expirationDate"),
                       (now + datetime.timedelta(days=20), "pem")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("client-certificate:bad002: not an X.509 certificate")
    assert "using expirationDate" in warnings[0]

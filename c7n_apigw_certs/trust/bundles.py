"""PEM bundles: the text a trust store holds, as the ordered list of certificates in it.

A bundle is what backends trust (docs/aws-behaviour.md, fact 2). Several writers share one
bundle when its name has no certificate or stage in it (one central object written by many
regions and accounts), so a writer never rebuilds a bundle from its own view: it merges its
change into what the bundle already holds (``merge``), and it refuses content it does not
understand rather than overwrite it (``split`` raises ``BundleError``).

Pure functions on text, no AWS calls, and no X.509 parsing: a certificate is identified by its
base64 text (``key``), which is all a trust store compares, and the module needs nothing beyond
the standard library (the Lambda archive cannot carry ``cryptography``, fact 34).
"""
import base64
import binascii
import re

BEGIN = "-----BEGIN CERTIFICATE-----"
END = "-----END CERTIFICATE-----"
_BLOCK = re.compile(re.escape(BEGIN) + r"(.*?)" + re.escape(END), re.S)
_ARMOUR = re.compile(r"-----BEGIN ([^-\r\n]{1,64})-----")
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]+")


class BundleError(ValueError):
    """Content that is not a sequence of PEM CERTIFICATE blocks. The message says where and
    what, never the content itself: a mistaken name could point at a secret."""


def _line(text, offset):
    return text.count("\n", 0, offset) + 1


def _outside(text, start, end):
    """A BundleError for the first non-blank text between two blocks."""
    stray = text[start:end]
    offset = start + len(stray) - len(stray.lstrip())
    armour = _ARMOUR.match(text, offset)
    what = ("a %s block" % armour.group(1)) if armour else "text outside any CERTIFICATE block"
    if armour and armour.group(1) == "CERTIFICATE":
        what = "a CERTIFICATE block without its END line"
    return BundleError("not a PEM certificate bundle: line %d holds %s" % (
        _line(text, offset), what))


def split(text):
    """The PEM blocks in order, each from its BEGIN line to its END line. Line endings inside a
    block are kept as they are (API Gateway's PEMs use ``\\r\\n``, fact 3). None, "" or blank
    text is an empty bundle; anything else that is not certificates raises ``BundleError``."""
    if not text:
        return []
    pems, position = [], 0
    for match in _BLOCK.finditer(text):
        if text[position:match.start()].strip():
            raise _outside(text, position, match.start())
        body = match.group(1)
        if not body.strip() or not _BASE64.fullmatch(body):
            raise BundleError("not a PEM certificate bundle: the block at line %d is not base64" %
                              _line(text, match.start()))
        try:
            base64.b64decode("".join(body.split()), validate=True)
        except binascii.Error as e:
            raise BundleError("not a PEM certificate bundle: the block at line %d does not "
                              "decode (%s)" % (_line(text, match.start()), e)) from e
        pems.append(match.group(0))
        position = match.end()
    if text[position:].strip():
        raise _outside(text, position, len(text))
    return pems


def key(pem):
    """The identity of a PEM: its text without any whitespace, so that the same certificate
    with ``\\r\\n`` or ``\\n``, re-wrapped or re-indented, is one certificate."""
    return "".join(pem.split())


def join(pems):
    """One PEM after another, each ending in a newline, in the order given."""
    return "".join(pem.strip() + "\n" for pem in pems)


def one(pem):
    """The single certificate in ``pem``; ``BundleError`` if it holds none or several."""
    found = split(pem)
    if len(found) != 1:
        raise BundleError("expected one PEM certificate, found %d" % len(found))
    return found[0]


def merge(text, add=(), remove=()):
    """``text`` with ``add`` appended and ``remove`` dropped, matched by ``key``.

    Existing certificates keep their order (a duplicate is kept once); an added certificate
    already present is not added again, so merging twice changes nothing. A certificate both
    added and removed stays: trusting one certificate too many for a while is harmless, and
    dropping one a backend needs is an outage."""
    add = [one(pem) for pem in add]
    keep = {key(pem) for pem in add}
    drop = {key(one(pem)) for pem in remove} - keep
    merged, seen = [], set()
    for pem in split(text) + add:
        k = key(pem)
        if k not in seen and k not in drop:
            seen.add(k)
            merged.append(pem)
    return join(merged)


def keys(text):
    """The identities of the certificates in ``text``, in order."""
    return [key(pem) for pem in split(text)]


def holds(text, pem):
    """Whether the bundle ``text`` holds the certificate ``pem``."""
    return key(pem) in keys(text)


def size(text):
    """Bytes of ``text`` as stored (UTF-8): what a store's limit counts."""
    return len((text or "").encode("utf-8"))

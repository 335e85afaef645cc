"""bundles: PEM bundle text as an ordered list of certificates (pure functions, no AWS)."""
import datetime

import pytest

from c7n_apigw_certs.trust import bundles
from c7n_apigw_certs.sandbox.certificates import make_pem

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def pems():
    """Four real X.509 PEMs as API Gateway gives them (``\\r\\n`` line endings)."""
    return [make_pem(START, START + datetime.timedelta(days=365)) for _ in range(4)]


def unix(pem):
    return pem.replace("\r\n", "\n")


def rewrapped(pem, width=76):
    """The same certificate with its base64 wrapped at another width."""
    lines = pem.strip().splitlines()
    body = "".join(lines[1:-1])
    return "\n".join([lines[0]] + [body[i:i + width] for i in range(0, len(body), width)]
                     + [lines[-1]])


def test_split_gives_the_blocks_in_order_with_their_line_endings(pems):
    a, b, c = pems[:3]
    found = bundles.split(bundles.join([a, b, c]))
    assert found == [a, b, c]
    assert all("\r\n" in pem for pem in found)  # API Gateway's line endings are kept
    assert bundles.split("\n\n" + a + "\n\n\n" + unix(b) + "\n  \n") == [a, unix(b)]


@pytest.mark.parametrize("empty", [None, "", " \r\n\n\t"])
def test_split_of_nothing_is_an_empty_bundle(empty):
    assert bundles.split(empty) == []
    assert bundles.merge(empty) == ""


def test_key_ignores_whitespace_and_line_endings(pems):
    a, b = pems[:2]
    assert bundles.key(a) == bundles.key(unix(a)) == bundles.key(rewrapped(a)) \
        == bundles.key("  " + a + "\n\n")
    assert bundles.key(a) != bundles.key(b)
    assert bundles.holds(bundles.join([unix(b), rewrapped(a)]), a)
    assert not bundles.holds(bundles.join([b]), a)


def test_join_ends_each_pem_in_one_newline(pems):
    a, b = pems[:2]
    assert bundles.join([a, "\n" + b + "\r\n"]) == a + "\n" + b + "\n"
    assert bundles.join([]) == ""


def test_merge_keeps_existing_order_and_appends_what_is_new(pems):
    a, b, c, d = pems
    merged = bundles.merge(bundles.join([c, a]), add=[b, unix(a), d])
    assert bundles.split(merged) == [c, a, b, d]


def test_merge_removes_only_what_it_is_asked_to(pems):
    a, b, c, d = pems
    merged = bundles.merge(bundles.join([a, b, c]), remove=[unix(b), d])
    assert bundles.split(merged) == [a, c]


def test_merge_is_idempotent(pems):
    a, b, c, d = pems
    once = bundles.merge(bundles.join([a, b]), add=[c], remove=[b])
    assert bundles.merge(once, add=[c], remove=[b]) == once
    assert bundles.merge(once) == once
    assert bundles.split(once) == [a, c]


def test_merge_into_nothing_and_duplicates(pems):
    a, b = pems[:2]
    assert bundles.merge(None, add=[a]) == bundles.join([a])
    assert bundles.split(bundles.merge(bundles.join([a, b, unix(a)]))) == [a, b]


def test_a_certificate_both_added_and_removed_stays_trusted(pems):
    a, b = pems[:2]
    assert bundles.split(bundles.merge(bundles.join([a]), add=[b], remove=[b, a])) == [b]


def test_size_counts_utf8_bytes(pems):
    assert bundles.size(bundles.join(pems[:2])) == len(bundles.join(pems[:2]))
    assert bundles.size("\u00e9") == 2
    assert bundles.size(None) == 0


SECRET = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"


@pytest.mark.parametrize("junk, where", [
    ("hello world\n", "line 1 holds text outside any CERTIFICATE block"),
    ("# our bundle\n{a}", "line 1 holds text outside any CERTIFICATE block"),
    ("{a}\ntrailing\n", "line {n} holds text outside any CERTIFICATE block"),
    ("{a}\n-----BEGIN PRIVATE KEY-----\n" + SECRET + "\n-----END PRIVATE KEY-----\n",
     "line {n} holds a PRIVATE KEY block"),
    ("-----BEGIN CERTIFICATE-----\n" + SECRET + "\n", "a CERTIFICATE block without its END"),
    ("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n", "not base64"),
    ("-----BEGIN CERTIFICATE-----\nMIIB\nA\n-----END CERTIFICATE-----\n", "does not decode"),
    ("-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n", "not base64"),
])
def test_content_that_is_not_a_certificate_bundle_is_refused(pems, junk, where):
    text = junk.format(a=pems[0])
    with pytest.raises(bundles.BundleError) as e:
        bundles.split(text)
    assert where.format(n=pems[0].count("\n") + 2) in str(e.value)
    assert SECRET not in str(e.value)  # a mistaken name may point at a secret
    assert isinstance(e.value, ValueError)
    with pytest.raises(bundles.BundleError):
        bundles.merge(text, add=[pems[1]])


def test_merge_refuses_anything_but_one_certificate_to_add_or_remove(pems):
    a, b = pems[:2]
    for bad in ("junk", bundles.join([a, b]), ""):
        with pytest.raises(bundles.BundleError):
            bundles.merge(bundles.join([a]), add=[bad])
        with pytest.raises(bundles.BundleError):
            bundles.merge(bundles.join([a]), remove=[bad])

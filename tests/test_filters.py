"""The expiry decisions, called directly with time frozen."""
import datetime
import logging

import pytest
from freezegun import freeze_time

from c7n_apigw_certs.audit.filters import days_left, effective_expiry, pem_not_after
from c7n_apigw_certs.audit.resource import ClientCertificate
from c7n_apigw_certs.sandbox.certificates import make_pem

NOW = datetime.datetime(2026, 6, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def cert(expires, pem_not_after_=None, cert_id="abc123"):
    created = expires - datetime.timedelta(days=365)
    return {"clientCertificateId": cert_id, "expirationDate": expires,
            "createdDate": created,
            "pemEncodedCertificate": make_pem(created, pem_not_after_ or expires)}


def expiring(days):
    from c7n.config import Config
    from c7n.policy import Policy
    p = Policy({"name": "t", "resource": "aws.apigw-client-certificate",
                "filters": [{"type": "expiring", "days": days}]},
               Config.empty(region="us-east-1", account_id="123456789012"))
    return p.resource_manager.filters[0]


@pytest.mark.parametrize("delta,matched", [
    (datetime.timedelta(days=30), True),                        # exactly `days`: inclusive
    (datetime.timedelta(days=30, seconds=1), False),
    (datetime.timedelta(days=29, hours=23), True),
    (datetime.timedelta(days=31), False),
    (datetime.timedelta(seconds=0), True),                      # expiring this instant
    (-datetime.timedelta(days=400), True),                      # long expired
])
def test_threshold_both_sides(delta, matched):
    resource = cert(NOW + delta)  # PEMs are made outside frozen time: cryptography checks types
    with freeze_time(NOW):
        result = expiring(30).process([resource])
    assert bool(result) is matched


def test_days_zero_matches_only_expired():
    soon, gone = cert(NOW + datetime.timedelta(hours=1)), cert(NOW - datetime.timedelta(hours=1))
    with freeze_time(NOW):
        assert expiring(0).process([soon]) == []
        (matched,) = expiring(0).process([gone])
    assert matched["c7n:expired"] is True and matched["c7n:days-left"] == 0


def test_days_left_rounds_up():
    assert days_left(NOW + datetime.timedelta(days=4, hours=23), NOW) == 5
    assert days_left(NOW - datetime.timedelta(days=3, seconds=5), NOW) == -3
    assert days_left(NOW - datetime.timedelta(hours=2), NOW) == 0


def test_pem_earlier_wins():
    early = NOW + datetime.timedelta(days=3)
    expires, source = effective_expiry(cert(NOW + datetime.timedelta(days=100), early))
    assert (expires, source) == (early, "pem")
    expires, source = effective_expiry(cert(NOW + datetime.timedelta(days=100)))
    assert source == "expirationDate" and expires == NOW + datetime.timedelta(days=100)


def test_unparseable_pem_is_a_warning_naming_the_certificate(caplog):
    bad = cert(NOW, cert_id="zz9bad")
    bad["pemEncodedCertificate"] = "-----BEGIN CERTIFICATE-----\r\nnot a cert\r\n"
    with caplog.at_level(logging.WARNING):
        assert pem_not_after(bad) is None
        expires, source = effective_expiry(bad)
    assert source == "expirationDate" and expires == NOW
    assert "client-certificate:zz9bad" in caplog.text


def test_missing_pem_is_a_warning_too(caplog):
    bare = {"clientCertificateId": "nopem1", "expirationDate": NOW}
    with caplog.at_level(logging.WARNING):
        assert effective_expiry(bare) == (NOW, "expirationDate")
    assert "client-certificate:nopem1" in caplog.text


def test_in_use_state():
    f = ClientCertificate.filter_registry.get("in-use")
    used, unused = {"c7n:stages": [{"apiId": "a"}]}, {"c7n:stages": []}
    assert f({"type": "in-use"}, None).process([used, unused]) == [used]
    assert f({"type": "in-use", "state": False}, None).process([used, unused]) == [unused]

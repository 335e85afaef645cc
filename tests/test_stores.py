"""stores: merged, size-checked, conditional writes to SSM and S3, in-process under moto.

Another writer (another run sharing the bundle) is simulated by wrapping the store's client so
that a write of its own lands right before or after ours; failures come from the sandbox's
faults (errors, reset connections, dropped writes), its IAM (an assumed role's policy), its SSM
tiers, or a wrapped call that raises.
"""
import datetime
import functools
import hashlib
import json
import logging
import pickle

import boto3
import pytest
from botocore.exceptions import (
    ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError)
from c7n.query import QueryResourceManager
from c7n.utils import reset_session_cache
from moto import mock_aws

from c7n_apigw_certs.trust import bundles, stores
from c7n_apigw_certs import sandbox
from c7n_apigw_certs.trust.publish import Location
from c7n_apigw_certs.sandbox import gate
from c7n_apigw_certs.sandbox.certificates import make_pem
from c7n_apigw_certs.sandbox.controls import CONTROLS
from c7n_apigw_certs.trust.stores import S3Store, Snapshot, SsmStore, StoreError, Stores

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's
BUCKET = "trust-bundles"
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
SSM = {"type": "ssm", "name": "/trust/shared"}
S3 = {"type": "s3", "bucket": BUCKET, "key": "shared/trust.pem"}
KINDS = {"ssm": SSM, "s3": S3}
# Another writer of the same bundle: an S3 object is shared across regions, a parameter is not.
OTHER_REGION = {"ssm": REGION, "s3": "eu-west-1"}


@pytest.fixture(scope="module")
def pems():
    """Real X.509 PEMs as API Gateway gives them (``\\r\\n`` line endings)."""
    return [make_pem(START, START + datetime.timedelta(days=365)) for _ in range(10)]


def _rewinding(normalize):
    """The in-process gate reads a streamed request body (S3 PutObject) before moto does and
    leaves it at its end, so moto stores an empty object; rewind it. (Reported to the sandbox's
    owner; harmless once the gate rewinds it itself.)"""
    def wrapper(request):
        try:
            return normalize(request)
        finally:
            if hasattr(getattr(request, "body", None), "seek"):
                request.body.seek(0)
    return wrapper


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # would send mock calls out (fact 22)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # no SDK retries: we see what the sandbox says
    sandbox.install()
    if hasattr(gate, "normalize_request"):
        monkeypatch.setattr(gate, "normalize_request", _rewinding(gate.normalize_request))
    CONTROLS.reset()
    reset_session_cache()
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        yield
    CONTROLS.reset()
    reset_session_cache()


class Recorder:
    """c7n's retry, recording the name of every call made through it."""

    def __init__(self):
        self.calls, self.params = [], []

    def __call__(self, fn, *args, **kw):
        self.calls.append(fn.__name__)
        self.params.append(kw)
        return QueryResourceManager.retry(fn, *args, **kw)


def make_stores(region=REGION, retry=None):
    return Stores(lambda: boto3.Session(region_name=region), region,
                  retry or QueryResourceManager.retry)


def location(kind, **extra):
    return Location(dict(KINDS[kind], **extra), {})


def put(loc, text):
    """Write as a plain client would: unconditionally, no merge."""
    if loc.type == "ssm":
        boto3.client("ssm", region_name=REGION).put_parameter(
            Name=loc.parts[0], Value=text, Type="String", Overwrite=True)
    else:
        boto3.client("s3", region_name=REGION).put_object(
            Bucket=loc.parts[0], Key=loc.parts[1],
            Body=text if isinstance(text, bytes) else text.encode("utf-8"))


def get(loc):
    if loc.type == "ssm":
        return boto3.client("ssm", region_name=REGION).get_parameter(
            Name=loc.parts[0])["Parameter"]["Value"]
    return boto3.client("s3", region_name=REGION).get_object(
        Bucket=loc.parts[0], Key=loc.parts[1])["Body"].read().decode("utf-8")


def intercept(store_set, loc, operation, before=None, after=None, instead=None, times=1):
    """Wrap one operation of the client behind ``loc``: ``before``/``after`` run around the
    next ``times`` calls (another writer's write), ``instead`` replaces them."""
    adapter = store_set.adapter(loc)
    real_client = adapter.client
    left = [times]

    class Wrapped:
        def __getattr__(self, name):
            real = getattr(real_client, name)
            if name != operation:
                return real

            @functools.wraps(real)
            def call(**kw):
                if not left[0]:
                    return real(**kw)
                left[0] -= 1
                if before:
                    before()
                answer = instead(**kw) if instead else real(**kw)
                if after:
                    after()
                return answer
            return call

    adapter.client = Wrapped()
    return adapter


@pytest.mark.parametrize("kind", ["ssm", "s3"])
def test_update_keeps_what_another_writer_put_there(aws, pems, kind):
    theirs, old, new = pems[:3]
    loc = location(kind)
    put(loc, bundles.join([theirs, old]))
    stored = make_stores().update(loc, add=[new, old])
    assert bundles.split(stored) == [theirs, old, new]
    assert get(loc) == stored


@pytest.mark.parametrize("kind", ["ssm", "s3"])
def test_update_removes_only_what_it_is_asked_to(aws, pems, kind):
    theirs, old, new = pems[:3]
    loc = location(kind)
    put(loc, bundles.join([theirs, old, new]))
    stored = make_stores().update(loc, remove=[old.replace("\r\n", "\n")])
    assert bundles.split(get(loc)) == [theirs, new] == bundles.split(stored)


@pytest.mark.parametrize("kind", ["ssm", "s3"])
def test_update_creates_a_missing_location(aws, pems, kind):
    loc = location(kind)
    assert make_stores().read(loc) == Snapshot(None, None)
    assert make_stores().update(loc, add=[pems[0]]) == bundles.join([pems[0]])
    assert get(loc) == bundles.join([pems[0]])
    if kind == "s3":
        head = boto3.client("s3", region_name=REGION).head_object(Bucket=BUCKET, Key=loc.parts[1])
        assert head["ContentType"] == "application/x-pem-file"
    else:
        found = boto3.client("ssm", region_name=REGION).describe_parameters()["Parameters"]
        assert [(p["Name"], p["Type"], p["Tier"]) for p in found] == [
            ("/trust/shared", "String", "Standard")]


@pytest.mark.parametrize("kind", ["ssm", "s3"])
def test_update_without_a_change_writes_nothing(aws, pems, kind):
    loc = location(kind)
    text = "\n" + pems[0] + "\n\n" + pems[1].replace("\r\n", "\n") + "\n"
    put(loc, text)
    retry = Recorder()
    assert make_stores(retry=retry).update(loc, add=[pems[1]]) == text
    assert retry.calls == ["get_parameter" if kind == "ssm" else "get_object"]
    assert get(loc) == text


def test_removing_the_last_certificate_leaves_it_as_it_is(aws, pems, caplog):
    loc = location("ssm")
    put(loc, bundles.join([pems[0]]))
    assert make_stores().update(loc, remove=[pems[0]]) == bundles.join([pems[0]])
    assert "would leave it empty" in caplog.text
    assert boto3.client("ssm", region_name=REGION).get_parameter(
        Name=loc.parts[0])["Parameter"]["Version"] == 1


@pytest.mark.parametrize("kind", ["ssm", "s3"])
def test_every_call_goes_through_the_callers_retry(aws, pems, kind):
    loc = location(kind)
    put(loc, bundles.join([pems[0]]))
    before = CONTROLS.counters.total(service=kind)
    retry = Recorder()
    make_stores(retry=retry).update(loc, add=[pems[1]])
    if kind == "ssm":
        assert retry.calls == ["get_parameter", "put_parameter", "get_parameter"]
    else:
        assert retry.calls == ["get_object", "put_object", "get_object"]
    assert CONTROLS.counters.total(service=kind) - before == len(retry.calls)


@pytest.mark.parametrize("existing", [True, False], ids=["replace", "create"])
def test_s3_conditional_write_loses_nothing_to_a_concurrent_writer(aws, pems, existing, caplog):
    """Another region's run writes between our read and our write: S3 refuses our write (412)
    and we merge again on top of theirs."""
    base, theirs, ours = pems[:3]
    loc = location("s3")
    if existing:
        put(loc, bundles.join([base]))
    mine, other = make_stores(), make_stores(region="eu-west-1")
    intercept(mine, loc, "put_object", before=lambda: other.update(loc, add=[theirs]))
    caplog.set_level(logging.INFO, "custodian.apigw-client-certificate")
    stored = mine.update(loc, add=[ours])
    expected = ([base] if existing else []) + [theirs, ours]
    assert bundles.split(stored) == expected == bundles.split(get(loc))
    assert "another writer changed it first (PreconditionFailed)" in caplog.text


def test_s3_gives_up_after_bounded_attempts_and_drops_nothing(aws, pems):
    base, ours = pems[:2]
    others = pems[2:5]
    loc = location("s3")
    put(loc, bundles.join([base]))
    mine, other = make_stores(), make_stores(region="eu-west-1")
    queue = list(others)
    intercept(mine, loc, "put_object", before=lambda: other.update(loc, add=[queue.pop(0)]),
              times=stores.ATTEMPTS)
    with pytest.raises(StoreError) as e:
        mine.update(loc, add=[ours])
    assert str(e.value) == ("s3:%s/shared/trust.pem: other writers kept changing it: gave up "
                            "after 3 attempts" % BUCKET)
    assert e.value.location == loc
    assert bundles.split(get(loc)) == [base] + others


def test_ssm_recovers_the_versions_an_intervening_writer_made(aws, pems, caplog):
    """SSM cannot refuse a stale write: ours replaced theirs, so their certificates are read
    from the version they made and written again with ours."""
    base, theirs, ours = pems[:3]
    loc = location("ssm")
    put(loc, bundles.join([base]))
    mine, other = make_stores(), make_stores()  # a parameter is regional: the same region
    intercept(mine, loc, "put_parameter", before=lambda: other.update(loc, add=[theirs]))
    stored = mine.update(loc, add=[ours])
    assert bundles.split(stored) == [base, ours, theirs] == bundles.split(get(loc))
    history = boto3.client("ssm", region_name=REGION).get_parameter_history(
        Name=loc.parts[0])["Parameters"]
    assert [bundles.split(v["Value"]) for v in history] == [
        [base], [base, theirs], [base, ours], [base, ours, theirs]]
    assert "other writers made version(s) 2-2 between our read (version 1) and our write " \
           "(version 3); recovering their certificates" in caplog.text


def test_ssm_recovery_never_brings_back_what_we_remove(aws, pems):
    base, old, theirs, ours = pems[:4]
    loc = location("ssm")
    put(loc, bundles.join([base, old]))
    mine, other = make_stores(), make_stores()
    intercept(mine, loc, "put_parameter", before=lambda: other.update(loc, add=[theirs]))
    stored = mine.update(loc, add=[ours], remove=[old])
    assert bundles.split(stored) == [base, ours, theirs]


@pytest.mark.parametrize("kind", ["ssm", "s3"])
def test_a_later_writer_that_drops_our_change_makes_us_merge_again(aws, pems, kind):
    """A writer that read before us (and writes without merging) lands right after us: the
    read-back shows a newer version without our certificate, so we merge again."""
    base, stale, ours = pems[:3]
    loc = location(kind)
    put(loc, bundles.join([base]))
    mine = make_stores()
    intercept(mine, loc, "put_%s" % ("parameter" if kind == "ssm" else "object"),
              after=lambda: put(loc, bundles.join([base, stale])))
    stored = mine.update(loc, add=[ours])
    assert bundles.split(stored) == [base, stale, ours] == bundles.split(get(loc))


@pytest.mark.parametrize("kind", ["ssm", "s3"])
def test_a_later_writer_that_keeps_our_change_is_accepted(aws, pems, kind):
    base, later, ours = pems[:3]
    loc = location(kind)
    put(loc, bundles.join([base]))
    mine, other = make_stores(), make_stores(region=OTHER_REGION[kind])
    retry = Recorder()
    mine.retry = retry
    intercept(mine, loc, "put_%s" % ("parameter" if kind == "ssm" else "object"),
              after=lambda: other.update(loc, add=[later]))
    assert bundles.split(mine.update(loc, add=[ours])) == [base, ours, later]
    assert [c for c in retry.calls if c.startswith("put")] == [retry.calls[1]]  # one write


@pytest.mark.parametrize("kind", ["ssm", "s3"])
def test_a_write_that_is_silently_lost_raises(aws, pems, kind):
    """The sandbox answers success but does not apply the write: the read-back shows it."""
    loc = location(kind)
    put(loc, bundles.join([pems[0]]))
    before = make_stores().read(loc).token
    CONTROLS.faults.add({"operation": "PutParameter" if kind == "ssm" else "PutObject",
                         "service": kind, "drop": True})
    with pytest.raises(StoreError) as e:
        make_stores().update(loc, add=[pems[1]])
    wrote = "version 2" if kind == "ssm" else 'ETag "%s"' % hashlib.md5(
        bundles.join(pems[:2]).encode()).hexdigest()
    read = "version 1" if kind == "ssm" else "ETag " + before
    assert str(e.value) == (
        "%s: did not read back as written: wrote %s with 2 certificate(s), read back %s, "
        "which lacks 1 of them and holds 0 others" % (loc.label, wrote, read))
    assert get(loc) == bundles.join([pems[0]])


def test_ssm_too_large_for_standard_is_refused_before_any_write(aws, pems):
    loc = location("ssm")
    put(loc, bundles.join(pems[:3]))
    size = bundles.size(bundles.join(pems[:4]))
    assert 4096 < size <= 8192
    retry = Recorder()
    for call in (make_stores(retry=retry).plan, make_stores(retry=retry).update):
        with pytest.raises(StoreError) as e:
            call(loc, add=[pems[3]])
        assert str(e.value) == (
            "ssm:/trust/shared: the bundle would be %d bytes (4 certificates), over the limit "
            "of a Standard parameter (4096 bytes, docs/aws-behaviour.md, fact 23): set 'tier: "
            "Advanced' (8192 bytes) or use a per-stage name ({api_id}/{stage_name} in 'name'); "
            "nothing was written" % size)
    assert retry.calls == ["get_parameter", "get_parameter"]
    assert get(loc) == bundles.join(pems[:3])


@pytest.mark.parametrize("tier", ["Advanced", "Intelligent-Tiering"])
def test_ssm_advanced_tier_allows_a_larger_bundle_and_is_sent(aws, pems, tier):
    loc = location("ssm", tier=tier)
    put(loc, bundles.join(pems[:3]))
    retry = Recorder()
    stored = make_stores(retry=retry).update(loc, add=[pems[3]])
    assert bundles.split(stored) == pems[:4]
    assert retry.params[retry.calls.index("put_parameter")]["Tier"] == tier
    found = boto3.client("ssm", region_name=REGION).describe_parameters()["Parameters"]
    assert found[0]["Tier"] == "Advanced"  # Intelligent-Tiering picks it when needed (fact 23)
    with pytest.raises(StoreError) as e:
        make_stores().update(loc, add=pems[4:8])
    assert "(8 certificates), over the limit of an %s parameter (8192 bytes, " \
           "docs/aws-behaviour.md, fact 23): use a per-stage name" % tier in str(e.value)
    assert "tier: Advanced" not in str(e.value)


def test_s3_has_no_size_limit(aws, pems):
    loc = location("s3")
    assert bundles.split(make_stores().update(loc, add=pems)) == pems


def test_s3_access_denied_names_the_missing_list_permission(aws, pems):
    """Without s3:ListBucket, a missing key is AccessDenied, not NoSuchKey (fact 25)."""
    loc = location("s3")
    CONTROLS.faults.add({"operation": "GetObject", "service": "s3", "code": "AccessDenied",
                         "status": 403, "message": "Access Denied", "target": [BUCKET]})
    with pytest.raises(StoreError) as e:
        make_stores().update(loc, add=[pems[0]])
    message = str(e.value)
    assert message.startswith("s3:%s/shared/trust.pem: AccessDenied reading the object. " % BUCKET)
    assert "s3:ListBucket on the bucket (arn:aws:s3:::%s)" % BUCKET in message
    assert "fact 25" in message
    assert e.value.location == loc


def test_s3_body_that_is_not_utf8_is_refused(aws, pems):
    loc = location("s3")
    put(loc, b"\xff\xfe-----BEGIN CERTIFICATE-----")
    with pytest.raises(StoreError) as e:
        make_stores().update(loc, add=[pems[0]])
    assert str(e.value).startswith(loc.label + ": the object is not UTF-8 text")
    assert "refusing to overwrite" in str(e.value)
    found = boto3.client("s3", region_name=REGION).get_object(Bucket=BUCKET, Key=loc.parts[1])
    assert found["Body"].read() == b"\xff\xfe-----BEGIN CERTIFICATE-----"


@pytest.mark.parametrize("kind, junk", [
    ("ssm", "https://example.com/trust.pem"),
    ("s3", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n-----END PRIVATE KEY-----\n"),
])
def test_content_that_is_not_a_bundle_is_never_overwritten(aws, pems, kind, junk):
    loc = location(kind)
    put(loc, junk)
    for call in (make_stores().read, functools.partial(make_stores().update, add=[pems[0]])):
        with pytest.raises(StoreError) as e:
            call(loc)
        assert str(e.value).startswith(loc.label + ": not a PEM certificate bundle: line 1")
        assert str(e.value).endswith("refusing to overwrite content that is not a PEM bundle")
        assert "MIIEvQ" not in str(e.value)
    assert get(loc) == junk


def test_a_certificate_to_add_that_is_not_one_is_a_store_error(aws, pems):
    loc = location("ssm")
    with pytest.raises(StoreError) as e:
        make_stores().update(loc, add=[bundles.join(pems[:2])])
    assert str(e.value) == ("ssm:/trust/shared: a certificate to add or remove: expected one PEM "
                            "certificate, found 2")


@pytest.mark.parametrize("kind, operation, error", [
    ("ssm", "get_parameter", EndpointConnectionError(endpoint_url="https://ssm")),
    ("ssm", "put_parameter", ConnectionClosedError(endpoint_url="https://ssm")),
    ("s3", "get_object", ReadTimeoutError(endpoint_url="https://s3")),
    ("s3", "put_object", ConnectionClosedError(endpoint_url="https://s3")),
])
def test_botocore_errors_become_store_errors(aws, pems, kind, operation, error):
    loc = location(kind)
    mine = make_stores()

    def fail(**kw):
        raise error
    intercept(mine, loc, operation, instead=fail)
    with pytest.raises(StoreError) as e:
        mine.update(loc, add=[pems[0]])
    assert str(e.value) == "%s: %s: %s" % (loc.label, type(error).__name__, error)
    assert e.value.__cause__ is error


def test_a_reset_connection_becomes_a_store_error(aws, pems):
    loc = location("s3")
    CONTROLS.faults.add({"operation": "GetObject", "service": "s3", "reset": True})
    with pytest.raises(StoreError) as e:
        make_stores().update(loc, add=[pems[0]])
    assert str(e.value).startswith(loc.label + ": ConnectionClosedError: ")
    assert isinstance(e.value.__cause__, ConnectionClosedError)


def test_client_errors_become_store_errors(aws, pems):
    loc = location("ssm")
    CONTROLS.faults.add({"operation": "PutParameter", "service": "ssm", "target": "/trust/shared"})
    with pytest.raises(StoreError) as e:
        make_stores().update(loc, add=[pems[0]])
    assert str(e.value).startswith(
        "ssm:/trust/shared: An error occurred (BadRequestException) when calling the "
        "PutParameter operation")


def test_one_failing_location_does_not_stop_the_others(aws, pems):
    old, new = pems[:2]
    places = [location("ssm", name="/trust/a"), location("s3", key="b.pem"),
              location("ssm", name="/trust/c"), location("s3", key="d.pem")]
    for place in places:
        put(place, bundles.join([old]))
    CONTROLS.faults.add({"operation": "PutObject", "service": "s3", "target": "b.pem"})
    CONTROLS.faults.add({"operation": "GetParameter", "service": "ssm", "target": "/trust/c",
                         "code": "AccessDeniedException"})
    store_set, failed = make_stores(), {}
    for place in places:
        try:
            store_set.update(place, add=[new])
        except StoreError as e:
            failed[e.location.label] = str(e)
    assert sorted(failed) == ["s3:%s/b.pem" % BUCKET, "ssm:/trust/c"]
    assert all(message.startswith(label + ": ") for label, message in failed.items())
    assert [bundles.split(get(p)) for p in places] == [
        [old, new], [old], [old], [old, new]]


def test_stores_make_one_client_per_service(aws):
    store_set = make_stores()
    a, b = store_set.adapter(location("ssm")), store_set.adapter(location("ssm", name="/x"))
    assert a is b and isinstance(a, SsmStore)
    assert isinstance(store_set.adapter(location("s3")), S3Store)
    assert stores.STORES == {"ssm": SsmStore, "s3": S3Store,
                             "elb-trust-store": stores.ElbTrustStore}


def test_read_gives_the_text_and_the_token_of_a_conditional_write(aws, pems):
    ssm_loc, s3_loc = location("ssm"), location("s3")
    put(ssm_loc, bundles.join([pems[0]]))
    put(ssm_loc, bundles.join([pems[1]]))
    put(s3_loc, bundles.join([pems[0]]))
    store_set = make_stores()
    assert store_set.read(ssm_loc) == Snapshot(bundles.join([pems[1]]), 2)
    etag = boto3.client("s3", region_name=REGION).head_object(
        Bucket=BUCKET, Key=s3_loc.parts[1])["ETag"]
    assert store_set.read(s3_loc) == Snapshot(bundles.join([pems[0]]), etag)


def test_permissions_and_iam_resources():
    assert SsmStore.permissions == ("ssm:GetParameter", "ssm:PutParameter")
    assert S3Store.permissions == ("s3:GetObject", "s3:PutObject", "s3:ListBucket")
    arn = "arn:${Partition}:ssm:${Region}:${Account}:parameter/trust/*/*"
    assert SsmStore.iam_resources({"type": "ssm", "name": "/trust/{api_id}/{stage_name}"}) == {
        "ssm:GetParameter": [arn], "ssm:PutParameter": [arn]}
    assert SsmStore.iam_resources({"type": "ssm", "name": "trust-{region}-{account_id}"}) == {
        action: ["arn:${Partition}:ssm:${Region}:${Account}:parameter/trust-${Region}-${Account}"]
        for action in SsmStore.permissions}
    obj = "arn:${Partition}:s3:::trust-${Account}/${Region}/*-*.pem"
    assert S3Store.iam_resources({"type": "s3", "bucket": "trust-{account_id}",
                                  "key": "{region}/{cert_id}-{old_cert_id}.pem"}) == {
        "s3:GetObject": [obj], "s3:PutObject": [obj],
        "s3:ListBucket": ["arn:${Partition}:s3:::trust-${Account}"]}


def test_ssm_parameter_already_advanced_is_written_as_advanced(aws, pems, caplog):
    """An Advanced parameter cannot go back to Standard (fact 46; the sandbox refuses it as AWS
    does): written as Advanced, which it already is."""
    loc = location("ssm")
    boto3.client("ssm", region_name=REGION).put_parameter(
        Name=loc.parts[0], Value=bundles.join([pems[0]]), Type="String", Tier="Advanced")
    retry = Recorder()
    assert bundles.split(make_stores(retry=retry).update(loc, add=[pems[1]])) == pems[:2]
    assert [kw["Tier"] for name, kw in zip(retry.calls, retry.params, strict=True)
            if name == "put_parameter"] == ["Standard", "Advanced"]
    assert "already Advanced and cannot be downgraded to Standard" in caplog.text
    found = boto3.client("ssm", region_name=REGION).describe_parameters()["Parameters"]
    assert found[0]["Tier"] == "Advanced"


def test_ssm_other_validation_errors_are_not_retried_as_advanced(aws, pems):
    loc = location("ssm")
    refusal = ClientError({"Error": {"Code": "ValidationException", "Message": (
        "Standard tier parameters support a maximum parameter value of 4096 characters. To "
        "create a larger parameter value, upgrade the parameter to use the advanced-parameter "
        "tier.")}}, "PutParameter")
    calls = []

    def refuse(**kw):
        calls.append(kw["Tier"])
        raise refusal
    mine = make_stores()
    intercept(mine, loc, "put_parameter", instead=refuse, times=2)
    with pytest.raises(StoreError) as e:
        mine.update(loc, add=[pems[0]])
    assert calls == ["Standard"]  # never upgraded (and billed) without the policy saying so
    assert "maximum parameter value of 4096 characters" in str(e.value)


def test_s3_object_deleted_between_read_and_write_is_made_again(aws, pems):
    """If-Match on a key deleted since our read answers 404 (fact 49): read again, create."""
    base, ours = pems[:2]
    loc = location("s3")
    put(loc, bundles.join([base]))
    mine = make_stores()
    intercept(mine, loc, "put_object", before=lambda: boto3.client(
        "s3", region_name=REGION).delete_object(Bucket=BUCKET, Key=loc.parts[1]))
    assert mine.update(loc, add=[ours]) == bundles.join([ours]) == get(loc)


def test_store_error_crosses_process_boundaries(aws):
    error = pickle.loads(pickle.dumps(StoreError(location("ssm"), "did not read back")))
    assert str(error) == "ssm:/trust/shared: did not read back"
    assert error.location == location("ssm")


def role_stores(name, grants):
    """Stores whose calls carry the keys of an assumed role granted ``{action: [ARN]}``: the
    sandbox checks them against its policy as IAM would."""
    iam = boto3.client("iam", region_name=REGION)
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"AWS": ACCOUNT}}]}))
    iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": arns}
                      for action, arns in grants.items()]}))
    creds = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn="arn:aws:iam::%s:role/%s" % (ACCOUNT, name),
        RoleSessionName="stores")["Credentials"]
    reset_session_cache()  # c7n caches one session a thread
    return Stores(lambda: boto3.Session(
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"], region_name=REGION),
        REGION, QueryResourceManager.retry)


def concrete(resources):
    return {action: [arn.replace("${Partition}", "aws").replace("${Region}", REGION)
                     .replace("${Account}", ACCOUNT) for arn in arns]
            for action, arns in resources.items()}


@pytest.mark.parametrize("dest", [
    {"type": "ssm", "name": "/trust/{region}/{api_id}"},
    {"type": "ssm", "name": "trust-{account_id}-{stage_name}", "tier": "Advanced"},
    {"type": "s3", "bucket": BUCKET, "key": "{account_id}/{cert_id}-{old_cert_id}.pem"},
], ids=["ssm-path", "ssm-flat", "s3"])
def test_iam_resources_grant_enough(aws, pems, dest):
    """A role granted exactly ``permissions`` on ``iam_resources`` can create, update and
    verify a bundle: what the policy generator prints is enough."""
    kind = stores.STORES[dest["type"]]
    grants = concrete(kind.iam_resources(dest))
    assert sorted(grants) == sorted(kind.permissions)
    loc = Location(dest, {"region": REGION, "account_id": ACCOUNT, "api_id": "a1b2c3",
                          "stage_name": "prod", "cert_id": "new123", "old_cert_id": "old123"})
    mine = role_stores("publisher", grants)
    assert mine.update(loc, add=[pems[0]]) == bundles.join([pems[0]])
    assert mine.update(loc, add=[pems[1]]) == bundles.join(pems[:2]) == get(loc)


def test_s3_without_list_bucket_a_missing_key_is_access_denied(aws, pems):
    """The sandbox answers as S3 does without s3:ListBucket (fact 25): the error says which
    permission to add."""
    loc = location("s3")
    grants = concrete(S3Store.iam_resources(S3))
    del grants["s3:ListBucket"]
    with pytest.raises(StoreError) as e:
        role_stores("no-list", grants).update(loc, add=[pems[0]])
    message = str(e.value)
    assert message.startswith("s3:%s/shared/trust.pem: AccessDenied reading the object. " % BUCKET)
    assert "grant s3:ListBucket on the bucket (arn:aws:s3:::%s)" % BUCKET in message
    assert "not authorized to perform: s3:ListBucket" in message  # AWS's own message, whole

"""Trust stores: the places a rotation writes PEM bundles to, one adapter per kind.

A bundle whose name has no certificate or stage in it is shared: one S3 object or SSM parameter
written by the runs of many regions and accounts (c7n-org). So no run rebuilds a bundle from its
own view. ``Stores.update`` reads what the location holds, keeps every certificate in it, adds
what this run needs, drops only what this run explicitly retires, checks the size against the
store's limit before writing, writes conditionally where the store can, and reads back.

Two writers must not lose each other's certificates:

- S3 writes are conditional (``IfMatch`` the ETag read, ``IfNoneMatch='*'`` when creating):
  412 ``PreconditionFailed`` or 409 ``ConditionalRequestConflict`` means another writer won,
  and we read, merge and write again (docs/aws-behaviour.md, fact 49).
- SSM has no conditional write, but versions are numbered: ``PutParameter`` answers the version
  it made. A version other than the one read plus one means other writers landed in between and
  ours replaced theirs, so their certificates are read back from those versions
  (``GetParameter`` of ``name:version``, fact 48) and written again with ours.
- Either way, a read-back that shows a newer version than ours is a later writer: if our
  certificates did not survive it, merge again.

A few attempts, then a ``StoreError``. Trusting a certificate too many for a while is harmless;
dropping one a backend needs is an outage, so every doubt resolves towards keeping a PEM.

Every failure is a ``StoreError`` whose message starts with the location's label, so the caller
can say which bundle of which certificate failed and go on with the others. Throttling is
retried by c7n's retry (``retry``, e.g. ``manager.retry``), never here.
"""
import logging
import time
from collections import namedtuple
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError
from c7n.utils import local_session

from . import bundles
from ..clients import client
from ..iam import wildcard

log = logging.getLogger("custodian.apigw-client-certificate")

Snapshot = namedtuple("Snapshot", "text token")
Snapshot.__doc__ = """What a location held when read: ``text`` None when it does not exist;
``token`` what a conditional write compares (S3: the ETag; SSM: the version number)."""

ATTEMPTS = 3
# Bytes a parameter's value may hold, by tier (docs/aws-behaviour.md, fact 23). Intelligent-
# Tiering picks Advanced when the value needs it, so it allows what Advanced allows.
TIERS = {"Standard": 4096, "Advanced": 8192, "Intelligent-Tiering": 8192}
DEFAULT_TIER = "Standard"


class StoreError(Exception):
    """A location that could not be read, planned or written; ``str()`` starts with its label."""

    def __init__(self, location, message):
        super().__init__("%s: %s" % (location.label, message))
        self.location, self.message = location, message

    def __reduce__(self):  # so that it crosses process boundaries (c7n-org workers) intact
        return type(self), (self.location, self.message)


class Conflict(Exception):
    """Another writer changed the location between our read and our write."""


def _code(error):
    return error.response.get("Error", {}).get("Code", "")


def _unchanged(snapshot, text):
    return bundles.keys(text) == bundles.keys(snapshot.text)


def _count(text, pems, held):
    """How many of ``pems`` ``text`` holds (``held``) or lacks."""
    return sum(bundles.holds(text, pem) == held for pem in pems)


def _listed(pem, pems):
    return bundles.key(pem) in {bundles.key(p) for p in pems}


def _applied(text, add, remove):
    return not _count(text, add, False) and not _count(text, remove, True)


class SsmStore:
    """SSM parameters: a ``String`` in the tier the destination names (``tier``)."""

    service = "ssm"
    permissions = ("ssm:GetParameter", "ssm:PutParameter")

    def __init__(self, client, retry):
        self.client = client
        self.retry = retry

    @staticmethod
    def iam_resources(dest):
        name = wildcard(dest["name"])
        arn = "arn:${Partition}:ssm:${Region}:${Account}:parameter/" + name.lstrip("/")
        return {action: [arn] for action in SsmStore.permissions}

    @staticmethod
    def tier(location):
        return location.dest.get("tier", DEFAULT_TIER)

    def limit(self, location):
        return TIERS[self.tier(location)]

    def advice(self, location):
        """The limit, and what a policy can do about it."""
        tier = self.tier(location)
        limit = "%s parameter (%d bytes, docs/aws-behaviour.md, fact 23)" % (tier, TIERS[tier])
        where = "a per-stage name ({api_id}/{stage_name} in 'name')"
        if TIERS[tier] < TIERS["Advanced"]:
            return "a %s: set 'tier: Advanced' (%d bytes) or use %s" % (
                limit, TIERS["Advanced"], where)
        return "an %s: use %s" % (limit, where)

    def read(self, location, version=None):
        name = location.parts[0]
        selector = name if version is None else "%s:%d" % (name, version)
        try:
            found = self.retry(self.client.get_parameter, Name=selector)["Parameter"]
        except ClientError as e:
            if _code(e) == "ParameterNotFound" and version is None:
                return Snapshot(None, None)
            raise
        return Snapshot(found["Value"], found["Version"])

    def write(self, location, text, snapshot):
        """Write; the version made. SSM cannot refuse a write made on a stale read: see
        ``overwritten`` for what makes up for it."""
        try:
            return self.put(location, text, self.tier(location))
        except ClientError as e:
            if _code(e) == "TooManyUpdates":  # another writer is writing it right now
                raise Conflict("another writer was updating it (TooManyUpdates)") from e
            if not self.downgrade(e, location):
                raise
            # Already Advanced (someone made it so, and pays for it): it cannot go back to
            # Standard, and keeping it Advanced costs nothing more (fact 46).
            log.warning("%s: the parameter is already Advanced and cannot be downgraded to %s; "
                        "written as Advanced", location.label, self.tier(location))
            return self.put(location, text, "Advanced")

    def put(self, location, text, tier):
        return self.retry(self.client.put_parameter, Name=location.parts[0], Value=text,
                          Type="String", Overwrite=True, Tier=tier)["Version"]

    def downgrade(self, error, location):
        """Whether ``error`` is SSM refusing to move an Advanced parameter to a lower tier. Its
        code is only ValidationException, so the message tells; our value already fits the tier
        asked for, so no size error is mistaken for it and upgraded without consent."""
        return (_code(error) == "ValidationException" and self.tier(location) != "Advanced"
                and "downgrade" in error.response["Error"].get("Message", "").lower())

    def overwritten(self, location, snapshot, token):
        """The versions other writers made between our read and our write (ours replaced them):
        version numbers grow by one a write, so any gap is theirs. A parameter deleted and made
        again in between restarts at 1, so then every version before ours is theirs."""
        base = snapshot.token or 0
        first = base + 1 if token > base else 1
        if token != first:
            log.warning("%s: other writers made version(s) %d-%d between our read (version %s) "
                        "and our write (version %d); recovering their certificates",
                        location.label, first, token - 1, snapshot.token, token)
        texts = []
        for version in range(first, token):
            try:
                texts.append(self.read(location, version).text)
            except ClientError as e:
                raise StoreError(location, (
                    "our write (version %d) replaced version %d of another writer, which cannot "
                    "be read back to recover its certificates (%s); they may be missing until "
                    "that writer runs again") % (token, version, e)) from e
        return texts

    @staticmethod
    def version(token):
        return "version %s" % token

    @staticmethod
    def landed(back, token, snapshot):
        """"ours", "newer" (a later writer) or "lost" for the version read back."""
        if back.token == token:
            return "ours"
        return "newer" if back.token is not None and back.token > token else "lost"


class S3Store:
    """S3 objects, written with conditions so that a concurrent writer's change is refused,
    not lost."""

    service = "s3"
    permissions = ("s3:GetObject", "s3:PutObject", "s3:ListBucket")

    def __init__(self, client, retry):
        self.client = client
        self.retry = retry

    @staticmethod
    def iam_resources(dest):
        bucket = wildcard(dest["bucket"])
        obj = "arn:${Partition}:s3:::%s/%s" % (bucket, wildcard(dest["key"]))
        return {"s3:GetObject": [obj], "s3:PutObject": [obj],
                "s3:ListBucket": ["arn:${Partition}:s3:::%s" % bucket]}

    def limit(self, location):
        return None

    def advice(self, location):
        return ""

    def read(self, location):
        bucket, key = location.parts
        try:
            found = self.retry(self.client.get_object, Bucket=bucket, Key=key)
        except ClientError as e:
            if _code(e) in ("NoSuchKey", "404"):
                return Snapshot(None, None)
            if _code(e) in ("AccessDenied", "403"):
                raise StoreError(location, (
                    "AccessDenied reading the object. Without s3:ListBucket on bucket %s, S3 "
                    "answers AccessDenied instead of NoSuchKey for a key that does not exist "
                    "(docs/aws-behaviour.md, fact 25): grant s3:ListBucket on the bucket "
                    "(arn:aws:s3:::%s) as well as s3:GetObject on the key (%s)") % (
                        bucket, bucket, e)) from e
            raise
        body = found["Body"].read()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise StoreError(location, "the object is not UTF-8 text (%s); refusing to "
                             "overwrite content that is not a PEM bundle" % e) from e
        return Snapshot(text, found["ETag"])

    def write(self, location, text, snapshot):
        """Write only over the version read (``IfMatch``), or only if there is still none
        (``IfNoneMatch``); ``Conflict`` if another writer changed it first. The new ETag."""
        bucket, key = location.parts
        condition = {"IfMatch": snapshot.token} if snapshot.text is not None else \
            {"IfNoneMatch": "*"}
        try:
            answer = self.retry(
                self.client.put_object, Bucket=bucket, Key=key, Body=text.encode("utf-8"),
                ContentType="application/x-pem-file", **condition)
        except ClientError as e:
            # 412: changed since read; 409: a concurrent conditional write; 404 (If-Match): it
            # was deleted since read (docs/aws-behaviour.md, fact 49).
            if _code(e) in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey",
                            "412", "409", "404"):
                raise Conflict("another writer changed it first (%s)" % _code(e)) from e
            raise
        return answer["ETag"]

    def overwritten(self, location, snapshot, token):
        return []  # a conditional write never replaces what it did not read

    @staticmethod
    def version(token):
        return "ETag %s" % token

    @staticmethod
    def landed(back, token, snapshot):
        if back.token == token:
            return "ours"
        if back.text is None or back.token == snapshot.token:
            return "lost"  # the version we wrote over is back, or nothing is there
        return "newer"


class ElbTrustStore(S3Store):
    """An Elastic Load Balancing trust store fed from an S3 CA bundle (docs/aws-behaviour.md,
    facts 162-169). The bundle is the S3 object, merged and written as ``S3Store`` writes it;
    a written version reaches the load balancer only through ``ModifyTrustStore`` with that
    object version (fact 162), and only once ``DescribeTrustStores`` answers ACTIVE with as many
    CA certificates as the bundle holds is it trusted (``write``). A bundle the trust store
    refuses (``InvalidCaCertificatesBundle``: an API Gateway certificate, self-signed without
    the CA flag, may be refused: fact 164) is put back as it was in S3 and fails that
    certificate before any stage moves, saying the load balancer needs a CA. The trust store
    must exist (the load balancer's listener names it); the bucket must be versioned.

    A bundle written to S3 that the trust store did not load (a run that stopped in between)
    is loaded by the next run: ``in_sync`` compares the trust store with the object."""

    service = "s3"
    extra_service = "elbv2"
    permissions = ("s3:GetObject", "s3:PutObject", "s3:ListBucket",
                   "elasticloadbalancing:DescribeTrustStores",
                   "elasticloadbalancing:ModifyTrustStore")
    ACTIVE_CHECKS = 30
    ACTIVE_WAIT = 2.0  # seconds between two DescribeTrustStores while CREATING
    CA_CERTIFICATES = 25  # per trust store (fact 163)

    def __init__(self, client, retry, elb=None):
        super().__init__(client, retry)
        self.elb = elb
        self.sleep = time.sleep

    @staticmethod
    def iam_resources(dest):
        bucket = wildcard(dest["bucket"])
        obj = "arn:${Partition}:s3:::%s/%s" % (bucket, wildcard(dest["key"]))
        store = "arn:${Partition}:elasticloadbalancing:${Region}:${Account}:truststore/%s/*" % (
            wildcard(dest["trust_store"]))
        return {"s3:GetObject": [obj], "s3:PutObject": [obj],
                "s3:ListBucket": ["arn:${Partition}:s3:::%s" % bucket],
                "elasticloadbalancing:ModifyTrustStore": [store],
                "elasticloadbalancing:DescribeTrustStores": ["*"]}

    def read(self, location):
        return super().read(_s3_location(location))

    def refusal(self, location, text):
        count = len(bundles.split(text))
        if count > self.CA_CERTIFICATES:
            return ("the bundle would hold %d CA certificates, over the %d a trust store takes "
                    "(docs/aws-behaviour.md, fact 163); nothing was written" % (
                        count, self.CA_CERTIFICATES))
        return None

    def _trust_store(self, location):
        name = location.parts[0]
        try:
            found = self.retry(self.elb.describe_trust_stores, Names=[name])["TrustStores"]
        except ClientError as e:
            if _code(e) == "TrustStoreNotFound":
                raise StoreError(location, "no trust store named %s in this region: create it "
                                 "with the load balancer's mutual-TLS listener first" % name
                                 ) from e
            raise
        return found[0]

    def in_sync(self, location, snapshot):
        """Whether the trust store is ACTIVE with as many CA certificates as the object."""
        found = self._trust_store(location)
        return found["Status"] == "ACTIVE" and found["NumberOfCaCertificates"] == len(
            bundles.split(snapshot.text))

    def sync(self, location, snapshot):
        """Load the object as it is into the trust store (a run stopped before it did)."""
        log.info("%s: the trust store does not hold the bundle in S3; loading it", location.label)
        self._load(location, snapshot.text, None, snapshot)

    def write(self, location, text, snapshot):
        s3 = _s3_location(location)
        bucket, key = s3.parts
        condition = {"IfMatch": snapshot.token} if snapshot.text is not None else \
            {"IfNoneMatch": "*"}
        try:
            answer = self.retry(
                self.client.put_object, Bucket=bucket, Key=key, Body=text.encode("utf-8"),
                ContentType="application/x-pem-file", **condition)
        except ClientError as e:
            if _code(e) in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey",
                            "412", "409", "404"):
                raise Conflict("another writer changed it first (%s)" % _code(e)) from e
            raise
        self._load(location, text, answer, snapshot)
        return answer["ETag"]

    def _load(self, location, text, answer, snapshot):
        """ModifyTrustStore with the version written, then wait for ACTIVE with it."""
        store = self._trust_store(location)
        _, bucket, key = location.parts
        version = (answer or {}).get("VersionId")
        kw = {"CaCertificatesBundleS3ObjectVersion": version} if version else {}
        try:
            self.retry(self.elb.modify_trust_store, TrustStoreArn=store["TrustStoreArn"],
                       CaCertificatesBundleS3Bucket=bucket, CaCertificatesBundleS3Key=key, **kw)
        except ClientError as e:
            if _code(e) != "InvalidCaCertificatesBundle" or answer is None:
                raise
            self._put_back(location, snapshot, answer)
            raise StoreError(location, (
                "the load balancer's trust store refused the bundle (%s). An Application Load "
                "Balancer verifies client certificates against CA certificates, and API "
                "Gateway's generated certificates are self-signed without the CA flag "
                "(docs/aws-behaviour.md, facts 1, 164): this load balancer needs a CA. Migrate "
                "the stages behind it to a private certificate (ACM with AWS Private CA) and "
                "publish the CA's chain instead. The S3 bundle was put back as it was; no "
                "stage was switched") % e.response["Error"].get("Message", e)) from e
        wanted = len(bundles.split(text))
        for check in range(self.ACTIVE_CHECKS):
            found = self._trust_store(location)
            if found["Status"] == "ACTIVE" and found["NumberOfCaCertificates"] == wanted:
                return
            if check + 1 < self.ACTIVE_CHECKS:
                self.sleep(self.ACTIVE_WAIT)
        raise StoreError(location, "the trust store is not ACTIVE with the new bundle after %d "
                         "checks (%s, %d CA certificates); no stage is switched to a certificate"
                         " it may not trust yet" % (self.ACTIVE_CHECKS, found["Status"],
                                                    found["NumberOfCaCertificates"]))

    def _put_back(self, location, snapshot, answer):
        """Restore the object the trust store refused, so S3 and the trust store agree."""
        bucket, key = _s3_location(location).parts
        if snapshot.text is None:  # nothing to put back; the next run fails the same way
            return
        self.retry(self.client.put_object, Bucket=bucket, Key=key,
                   Body=snapshot.text.encode("utf-8"), ContentType="application/x-pem-file",
                   IfMatch=answer["ETag"])


def _s3_location(location):
    """The S3 object of an ELB trust store destination, as an S3Store location."""
    from .publish import Location
    _, bucket, key = location.parts
    return Location({"type": "s3", "bucket": bucket, "key": key}, {})


STORES = {"ssm": SsmStore, "s3": S3Store, "elb-trust-store": ElbTrustStore}


class Stores:
    """Reads, plans and updates bundles in every kind of store; one client per service, made
    on first use."""

    def __init__(self, session_factory, region, retry):
        self.session_factory = session_factory
        self.region = region
        self.retry = retry
        self.adapters = {}

    def adapter(self, location):
        if location.type not in self.adapters:
            kind = STORES[location.type]
            session = local_session(self.session_factory)
            clients = [client(session, kind.service, self.region)]
            if getattr(kind, "extra_service", None):
                clients.append(client(session, kind.extra_service, self.region))
            self.adapters[location.type] = kind(clients[0], self.retry, *clients[1:])
        return self.adapters[location.type]

    @contextmanager
    def attributed(self, location):
        """Any failure below as a StoreError that names the location."""
        try:
            yield
        except StoreError:
            raise
        except ClientError as e:
            raise StoreError(location, str(e)) from e
        except BotoCoreError as e:
            raise StoreError(location, "%s: %s" % (type(e).__name__, e)) from e
        except bundles.BundleError as e:
            raise StoreError(location, "%s; refusing to overwrite content that is not a PEM "
                             "bundle" % e) from e

    def read(self, location):
        """What the location holds now, checked to be a PEM bundle."""
        with self.attributed(location):
            return self._read(location)

    def _read(self, location):
        snapshot = self.adapter(location).read(location)
        bundles.split(snapshot.text)
        return snapshot

    def plan(self, location, add=(), remove=()):
        """The bundle an update would write, without writing: read, merge, size check. Lets the
        caller check every location of a certificate before it writes any."""
        with self.attributed(location):
            add, remove = self._certificates(location, add, remove)
            return self._merge(location, self._read(location), add, remove)

    def update(self, location, add=(), remove=()):
        """Merge ``add``/``remove`` into the location, write it unless nothing changes, read it
        back and verify; the content now stored."""
        with self.attributed(location):
            add, remove = self._certificates(location, add, remove)
            return self._update(location, add, remove)

    def _certificates(self, location, add, remove):
        try:
            return [bundles.one(p) for p in add], [bundles.one(p) for p in remove]
        except bundles.BundleError as e:
            raise StoreError(location, "a certificate to add or remove: %s" % e) from e

    def _merge(self, location, snapshot, add, remove):
        text = bundles.merge(snapshot.text, add, remove)
        if not text and bundles.split(snapshot.text):
            # An empty bundle is never what a rotation means (and SSM cannot store one): the
            # certificates asked to go stay, trusted but retired, until one is added.
            log.warning("%s: removing its last certificate(s) would leave it empty; "
                        "left as it is", location.label)
            return snapshot.text
        if _unchanged(snapshot, text):
            return text  # nothing will be written, so nothing to fit
        refusal = getattr(self.adapter(location), "refusal", None)
        message = refusal(location, text) if refusal else None
        if message:
            raise StoreError(location, message)
        limit = self.adapter(location).limit(location)
        if limit is not None and bundles.size(text) > limit:
            raise StoreError(location, (
                "the bundle would be %d bytes (%d certificates), over the limit of %s; nothing "
                "was written") % (bundles.size(text), len(bundles.split(text)),
                                  self.adapter(location).advice(location)))
        return text

    def _update(self, location, add, remove):
        store = self.adapter(location)
        recovered, pending = [], 0
        for attempt in range(1, ATTEMPTS + 1):
            snapshot = self._read(location)
            wanted = add + recovered
            text = self._merge(location, snapshot, wanted, remove)
            if _unchanged(snapshot, text):
                if snapshot.text and not getattr(store, "in_sync", lambda *a: True)(
                        location, snapshot):
                    store.sync(location, snapshot)
                return snapshot.text or ""
            try:
                token = store.write(location, text, snapshot)
            except Conflict as e:
                log.info("%s: %s; reading it again (attempt %d of %d)",
                         location.label, e, attempt, ATTEMPTS)
                continue
            lost = [pem for pem in self._theirs(location, store, snapshot, token)
                    if not bundles.holds(text, pem) and not _listed(pem, remove)
                    and not _listed(pem, recovered)]
            if lost:
                recovered += lost
                pending = len(lost)
                continue
            pending = 0
            back = self._read(location)
            landed = store.landed(back, token, snapshot)
            if landed == "ours" and bundles.keys(back.text) == bundles.keys(text):
                log.info("%s: wrote %d certificate(s) (+%d -%d, %d recovered), %s",
                         location.label, len(bundles.split(text)), len(add), len(remove),
                         len(recovered), store.version(token))
                return text
            if landed == "newer":
                if _applied(back.text, wanted, remove):
                    return back.text
                log.info("%s: a later writer replaced our version without our change; "
                         "merging again (attempt %d of %d)", location.label, attempt, ATTEMPTS)
                continue
            raise StoreError(location, (
                "did not read back as written: wrote %s with %d certificate(s), read back %s, "
                "which lacks %d of them and holds %d others") % (
                    store.version(token), len(bundles.split(text)), store.version(back.token),
                    _count(back.text, bundles.split(text), False),
                    _count(text, bundles.split(back.text), False)))
        raise StoreError(location, "other writers kept changing it: gave up after %d attempts%s" % (
            ATTEMPTS, "; %d certificate(s) of another writer that our last write replaced may be "
            "missing until that writer runs again" % pending if pending else ""))

    @staticmethod
    def _theirs(location, store, snapshot, token):
        """The certificates in the versions of other writers that our write replaced."""
        try:
            return [pem for text in store.overwritten(location, snapshot, token)
                    for pem in bundles.split(text)]
        except bundles.BundleError as e:
            raise StoreError(location, "our write replaced another writer's version, which is "
                             "not a PEM bundle: %s" % e) from e

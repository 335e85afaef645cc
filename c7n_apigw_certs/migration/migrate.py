"""The ``migrate`` action: stages move from API Gateway's generated certificates to private
certificates that ACM issues from AWS Private CA and renews by itself, in the rotation's order.

A migration is a rotation (``rotate.py``) with another source of successors and another trust
payload, so it runs the rotation's own plan and executors: ``plan.next_step`` on the same state
tags, ``Trust`` (merged, size-checked, read back), ``Switcher`` (each stage re-read right before
its switch, and read back), ``HandOver`` for stages a template owns, ``Retirement`` after fresh
listings. What differs lives here:

- ``PrivateCertificates``: the successor of each old certificate is one ACM private certificate
  (``RequestCertificate`` with the policy's CA), tagged with the old certificate's id in the
  request itself, requested with an idempotency token derived from the old certificate (two runs
  racing within ACM's hour get the same ARN: docs/aws-behaviour.md, fact 146) and found by that
  tag when the old certificate's ``successor`` tag is missing (fact 147); waited for until
  ``ISSUED``.
- ``Authority``: the CA, read once a run and refused before anything changes when it is not
  ``ACTIVE``, in short-lived certificate mode, in another region or account, or expiring before
  the certificate it would issue now (facts 148, 149); its certificate and chain
  (``GetCertificateAuthorityCertificate``) are what every bundle must trust: the successor's
  "PEM" in the run's listing is that chain, so ``Trust`` publishes it next to the old PEM.

After the migration a renewal changes nothing the plugin wrote: the ARN on the stage stays,
and the bundle trusts the CA, not the certificate (fact 145).
"""
import hashlib
import re

from botocore.waiter import WaiterModel, create_waiter_with_client
from c7n.exceptions import PolicyValidationError
from c7n.utils import type_schema

from ..audit import acm, owners
from ..clients import client
from ..trust import bundles
from ..rotation import plan
from ..rotation.plan import PREDECESSOR, SUCCESSOR, Failed, stamp
from ..trust.publish import CERT_FIELDS, check_template, dest_fields, template_fields
from ..audit.resource import ClientCertificate
from ..rotation.retire import FAILURES, error_text
from ..rotation.rotate import MAX_TAGS, RECORD, RotateClientCertificate, Rotation, copied_tags

CA_ARN = re.compile(r"^arn:(?P<partition>aws[a-z-]*):acm-pca:(?P<region>[a-z0-9-]+):"
                    r"(?P<account>\d{12}):certificate-authority/[0-9a-f-]{36}$")
DOMAIN_FIELDS = {"old_cert_id", "region", "account_id"}
# A DNS name as ACM's DomainName takes it: 253 characters, labels of 1-63 (fact 150).
DOMAIN = re.compile(r"^(?=.{1,253}$)(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*"
                    r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
KEY_ALGORITHMS = ("RSA_2048", "RSA_3072", "RSA_4096", "EC_prime256v1", "EC_secp384r1",
                  "EC_secp521r1")
PRIVATE_DAYS = 395  # what ACM issues a private certificate for: 13 months (fact 116)
GENERATED = "generated"
# Until ACM has issued: a botocore waiter on DescribeCertificate's Status (no sleep loop of our
# own). ACM issues private certificates at once or nearly (fact 153); a minute at most here.
WAITER = WaiterModel({"version": 2, "waiters": {"PrivateCertificateIssued": {
    "operation": "DescribeCertificate", "delay": 2, "maxAttempts": 30, "acceptors": [
        {"matcher": "path", "argument": "Certificate.Status", "expected": "ISSUED",
         "state": "success"},
        {"matcher": "path", "argument": "Certificate.Status", "expected": "PENDING_VALIDATION",
         "state": "retry"},
        {"matcher": "path", "argument": "Certificate.Status", "expected": "FAILED",
         "state": "failure"},
        {"matcher": "error", "expected": "ResourceNotFoundException", "state": "failure"}]}}})


def idempotency_token(region, old_id, ca_arn):
    """The same for every run that migrates this certificate with this CA: ``\\w{1,32}``."""
    digest = hashlib.sha256(("%s %s %s" % (region, old_id, ca_arn)).encode()).hexdigest()
    return "c7n" + digest[:29]


def parse_ca_arn(arn):
    match = CA_ARN.match(arn or "")
    return match.groupdict() if match else None


@ClientCertificate.action_registry.register("migrate")
class MigrateClientCertificate(RotateClientCertificate):
    r"""Move stages from generated certificates to ACM private certificates, in the rotation's
    safe order, so that nobody rotates them again: ACM renews a private certificate by itself
    and the backends trust its CA.

    For each generated certificate a stage uses: (1) one private certificate is requested from
    ACM with ``certificate-authority-arn`` (``domain-name`` rendered with ``{old_cert_id}``,
    ``{region}``, ``{account_id}``; ``key-algorithm``, default ``RSA_2048``), tagged
    ``c7n:rotation:predecessor`` with the old id and the old certificate's own tags, exactly one
    even when runs race; (2) the CA's certificate and chain are merged into every ``publish``
    destination of every stage on the old certificate, next to its PEM; (3) after
    ``switch-after-days`` every stage is switched to the ACM ARN (stages a template owns are
    handed over with the ARN); (4) after ``delete-after-days`` the old certificate is dropped from
    the bundles and deleted once nothing uses it. The CA's chain stays, and the ACM certificate
    is never deleted. State is the rotation's (tags on the old certificate), so a migration
    resumes across runs; options as ``rotate``'s, without ``description``, and the destination
    names cannot use ``{cert_id}`` (a bundle trusts the CA, not one certificate).

    Refused before anything changes: a CA that is not ``ACTIVE``, in short-lived certificate
    mode, in another region or account, or expiring before the certificate it would issue; a
    domain name that does not render to a DNS name; a bundle that could not hold the chain.
    ACM certificates are never migrated (they are skipped and say so).

    :example:

    .. code-block:: yaml

        policies:
          - name: apigw-client-certificates-migrate
            resource: aws.apigw-client-certificate
            actions:
              - type: migrate
                certificate-authority-arn: "arn:aws:acm-pca:us-east-1:123456789012:\
                  certificate-authority/11111111-2222-3333-4444-555555555555"
                domain-name: "{old_cert_id}.backend-clients.internal"
                publish:
                  - type: ssm
                    name: "/apigw/client-certs/{api_id}/{stage_name}"
                switch-after-days: 3
                delete-after-days: 7
    """

    schema = type_schema(
        "migrate",
        required=["publish", "switch-after-days", "certificate-authority-arn", "domain-name"],
        **{
            "certificate-authority-arn": {"type": "string", "pattern": CA_ARN.pattern},
            "domain-name": {"type": "string", "minLength": 1, "maxLength": 253},
            "key-algorithm": {"enum": list(KEY_ALGORITHMS)},
            "publish": RotateClientCertificate.schema["properties"]["publish"],
            "switch-after-days": {"type": "number", "minimum": 0},
            "delete-after-days": {"type": "number", "minimum": 0},
            "redeploy": {"type": "boolean"},
            "owner-tags": RotateClientCertificate.schema["properties"]["owner-tags"],
            "switch-owned": {"type": "boolean"},
        })

    def iam_resources(self):
        """The rotation's, without ``GenerateClientCertificate`` (POST /clientcertificates),
        with ACM's and Private CA's calls on what they act on (facts 119, 151)."""
        out = super().iam_resources()
        generate = [arn for arn in out["apigateway:POST"] if arn.endswith("/clientcertificates")]
        out["apigateway:POST"] = [a for a in out["apigateway:POST"] if a not in generate]
        if not out["apigateway:POST"]:
            del out["apigateway:POST"]
        certificates = ["arn:${Partition}:acm:${Region}:${Account}:certificate/*"]
        ca = ["arn:${Partition}:" + self.data["certificate-authority-arn"].split(":", 2)[2]
              if parse_ca_arn(self.data.get("certificate-authority-arn")) else "*"]
        out.update({
            "acm:RequestCertificate": ["*"],  # no resource type (fact 119); tags in the call
            "acm:DescribeCertificate": certificates,
            "acm:ListTagsForCertificate": certificates,
            "acm:ListCertificates": ["*"],
            "acm-pca:DescribeCertificateAuthority": ca,
            "acm-pca:GetCertificateAuthorityCertificate": ca,
        })
        return out

    def validate(self):
        name = self.manager.data.get("name") if self.manager else "?"
        super().validate()
        for index, dest in enumerate(self.data.get("publish", ())):
            used = dest_fields(dest) & CERT_FIELDS
            if used:
                raise PolicyValidationError(
                    "policy:%s migrate.publish[%d] (%s) uses %s: a migration's bundle trusts "
                    "the CA and every certificate it issues, so its name cannot depend on one "
                    "certificate" % (name, index, dest["type"], ", ".join(
                        "{%s}" % f for f in sorted(used))))
        check_template("policy:%s migrate.domain-name" % name, self.data["domain-name"],
                       DOMAIN_FIELDS)
        sample = self.data["domain-name"].format(
            old_cert_id="abc123defg", region="us-east-1", account_id="123456789012")
        if not DOMAIN.match(sample):
            raise PolicyValidationError(
                "policy:%s migrate.domain-name %r does not render to a DNS name (for example "
                "%r): lower-case letters, digits, hyphens and dots, at most 253 characters"
                % (name, self.data["domain-name"], sample))
        return self

    def process(self, resources):
        """Only generated certificates migrate; an ACM certificate (``kind`` other than
        ``generated``) is left alone and says why."""
        for r in resources:
            if r.get("kind", GENERATED) != GENERATED:
                r[RECORD] = {"skipped": "an ACM certificate (%s): not migrated" % r["kind"]}
                self.log.info("client-certificate:%s is an ACM certificate (%s): not migrated",
                              r["clientCertificateId"], r["kind"])
        return super().process(resources)

    def executor(self, resources):
        return Migration(self, [r for r in resources if r.get("kind", GENERATED) == GENERATED])


class Migration(Rotation):
    """A rotation run whose successors are ACM private certificates of one CA."""

    def successor_source(self, session, region):
        self.authority = Authority(self, client(session, "acm-pca", region))
        return PrivateCertificates(self, client(session, "acm", region),
                                   self.authority)

    def execute(self):
        """The CA first: a CA that cannot issue (or would not last) stops every certificate
        before anything is requested, published or switched."""
        if not self.resources:  # only ACM certificates: nothing to read or change
            return
        for cert in self.resources:
            cert[RECORD] = {}
        try:
            self.authority.check()
        except (Failed,) + FAILURES as e:
            for cert in self.resources:
                self.failed(cert, Failed("certificate authority %s: %s" % (
                    self.authority.arn, e if isinstance(e, Failed) else error_text(e))))
            return
        super().execute()

    def uses_account_id(self):
        return super().uses_account_id() or \
            "account_id" in template_fields(self.action.data["domain-name"])


class Authority:
    """The policy's CA: checked once a run, and the PEMs a backend needs to trust what it
    issues (its certificate and the chain above it, as Private CA gives them)."""

    def __init__(self, run, client):
        self.run, self.client = run, client
        self.arn = run.action.data["certificate-authority-arn"]
        self.pems, self.not_after = [], None

    def check(self):
        run = self.run
        where = parse_ca_arn(self.arn)
        region, account = run.manager.config.region, run.fields["account_id"]
        if where["region"] != region:
            raise Failed("is in %s, the stages in %s: ACM issues only from a CA of its own "
                         "region" % (where["region"], region))
        if account and where["account"] != account:
            raise Failed("belongs to account %s, not %s: issuing from another account's CA "
                         "needs a resource policy this action does not check; not supported"
                         % (where["account"], account))
        ca = run.manager.retry(self.client.describe_certificate_authority,
                               CertificateAuthorityArn=self.arn)["CertificateAuthority"]
        if ca.get("Status") != "ACTIVE":
            raise Failed("is %s, not ACTIVE: it cannot issue" % ca.get("Status"))
        if ca.get("UsageMode") == "SHORT_LIVED_CERTIFICATE":
            raise Failed("is in short-lived certificate mode: ACM cannot issue from it")
        self.not_after = plan.utc(ca["NotAfter"])
        ends = run.now + plan.days(PRIVATE_DAYS)
        if self.not_after < ends:
            raise Failed("expires at %s, before the private certificate it would issue now "
                         "(until %s) and before ACM would renew it: renew the CA first" % (
                             stamp(self.not_after), stamp(ends)))
        got = run.manager.retry(self.client.get_certificate_authority_certificate,
                                CertificateAuthorityArn=self.arn)
        self.pems = bundles.split(got["Certificate"]) + bundles.split(
            got.get("CertificateChain") or "")
        run.log.info("certificate authority %s: ACTIVE until %s, chain of %d certificate(s)",
                     self.arn, stamp(self.not_after), len(self.pems))

    @property
    def bundle(self):
        return bundles.join(self.pems)


class PrivateCertificates:
    """Exactly one ACM private certificate per old certificate: the migration's successors.

    The old certificate's ``successor`` tag names the ARN once a run has requested it (written
    right after the request); before that, or if that write was lost, one ``ListCertificates``
    of the run and ``ListTagsForCertificate`` on the candidates (those of the rendered domain
    name) find it by its ``predecessor`` tag. A request carries an idempotency token derived
    from the old certificate and the CA, so two runs at the same moment get one certificate.
    Every successor is checked before use: PRIVATE, issued by the policy's CA, tagged with this
    old certificate; anything else stops that certificate and changes nothing."""

    def __init__(self, run, client, authority):
        self.run, self.client, self.authority, self.log = run, client, authority, run.log
        self.chosen = {}     # old id -> ARN
        self.orphans = []    # never any: an ACM certificate is not deleted by this action
        self.found = None    # {old id: [(created, ARN)]}: the run's one search, if needed

    def wave(self, queue):
        ready = []
        for cert in queue:
            try:
                if self.find(cert) is None and self.needs_one(cert):
                    self.request(cert)
            except (Failed,) + FAILURES as e:
                self.run.failed(cert, e)
                self.run.flush(cert)
                continue
            ready.append(cert)
        return ready, []

    def verified(self):
        """({old id: ARN}, {ARN: old id}) of the successors this run checked (``adopt``): what
        trust is computed from (``rotate.Trust``)."""
        return dict(self.chosen), {arn: old for old, arn in self.chosen.items()}

    def doubt(self, old, candidate):
        """Why a generated certificate is not a successor that a rotation made for ``old``,
        or None: the rotation's own rule (``plan.successor_doubt``), so that a certificate
        still being rotated into is not migrated under its predecessor's stages."""
        owner_tags = self.run.hand_over.owner_tags
        return plan.successor_doubt(
            old, candidate, self.run.stage_map.get(candidate["clientCertificateId"], ()),
            lambda stage: owners.stage_owner(stage, owner_tags) is not None)

    def needs_one(self, cert):
        old_id = cert["clientCertificateId"]
        old = self.run.listing.get(old_id)
        if old is None:
            return False
        step = plan.next_step(old.get("tags", {}), None, len(self.run.stage_map.get(old_id, ())),
                              self.run.now, self.run.options)
        return step.name == plan.GENERATE

    def domain(self, old_id):
        name = self.run.action.data["domain-name"].format(old_cert_id=old_id.lower(),
                                                          **self.run.fields)
        if not DOMAIN.match(name):
            raise Failed("domain-name renders to %r, not a DNS name" % name)
        return name

    def find(self, cert):
        old_id = cert["clientCertificateId"]
        old = self.run.listing.get(old_id)
        if old is None:
            return None
        arn = old.get("tags", {}).get(SUCCESSOR)
        if arn and not acm.is_acm_arn(arn):
            raise Failed("its rotation to client-certificate:%s is under way: finish it (or "
                         "remove tag %s) before migrating" % (arn, SUCCESSOR))
        if not arn:
            found = sorted(self.search().get(old_id, ()))
            if not found:  # its state, before any of it steers the migration
                plan.check_state(old.get("tags", {}), old_id, plan.created(old),
                                 self.run.now, None, self.run.stage_certs())
                return None
            arn = found[0][1]
            for _, extra in found[1:]:
                self.log.warning("client-certificate:%s has another private certificate %s "
                                 "tagged as its successor: not used", old_id, extra)
            self.run.mark(old_id, {SUCCESSOR: arn})
        self.adopt(cert, arn)
        plan.check_state(old.get("tags", {}), old_id, plan.created(old), self.run.now, arn,
                         self.run.stage_certs())
        return arn

    def search(self):
        """{old id: [(created, ARN)]}: private certificates of the policy's CA whose domain is
        one this run would request, tagged with their predecessor. Once a run."""
        if self.found is not None:
            return self.found
        domains = {}
        for cert in self.run.resources:
            old_id = cert["clientCertificateId"]
            if old_id in self.run.listing:
                try:
                    domains.setdefault(self.domain(old_id), set()).add(old_id)
                except Failed:
                    continue
        found = {}
        key = self.run.action.data.get("key-algorithm", "RSA_2048")
        for page in acm.pages(self.client, "list_certificates", Includes={"keyTypes": [key]},
                              CertificateStatuses=["PENDING_VALIDATION", "ISSUED"]):
            for summary in page.get("CertificateSummaryList", ()):
                if summary.get("DomainName") not in domains or \
                        summary.get("Type", "PRIVATE") != "PRIVATE":
                    continue
                arn = summary["CertificateArn"]
                tags = self.tags(arn)
                old_id = tags.get(PREDECESSOR)
                if old_id in domains[summary["DomainName"]]:
                    found.setdefault(old_id, []).append((str(summary.get("CreatedAt")), arn))
        self.found = found
        return found

    def describe(self, arn):
        return self.run.manager.retry(self.client.describe_certificate,
                                      CertificateArn=arn)["Certificate"]

    def tags(self, arn):
        answer = self.run.manager.retry(self.client.list_tags_for_certificate,
                                        CertificateArn=arn)
        return {t["Key"]: t.get("Value", "") for t in answer.get("Tags", ())}

    def request(self, cert):
        """Check that every bundle can hold the chain, then request, record, and wait."""
        run, old_id = self.run, cert["clientCertificateId"]
        old = run.listing[old_id]
        domain = self.domain(old_id)
        places, _ = run.places(old_id, "", run.stage_map.get(old_id, []))
        for place in places:  # refused here, before ACM issues anything
            run.stores.plan(place, add=[old["pemEncodedCertificate"]] + self.authority.pems)
        tags = copied_tags(old.get("tags", {}), self.log, old_id, run.hand_over.owner_tags)
        if len(tags) > MAX_TAGS:
            raise Failed("request: %d tags, ACM takes %d" % (len(tags), MAX_TAGS))
        try:
            arn = run.manager.retry(
                self.client.request_certificate, DomainName=domain,
                CertificateAuthorityArn=self.authority.arn,
                KeyAlgorithm=run.action.data.get("key-algorithm", "RSA_2048"),
                IdempotencyToken=idempotency_token(run.manager.config.region, old_id,
                                                   self.authority.arn),
                Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())])["CertificateArn"]
        except FAILURES as e:
            raise Failed("request private certificate: %s" % error_text(e)) from e
        self.log.info("client-certificate:%s successor %s requested from %s", old_id, arn,
                      self.authority.arn)
        run.mark(old_id, {SUCCESSOR: arn})
        run.persist(old_id)  # at once: the next run finds it with no search
        self.adopt(cert, arn)

    def adopt(self, cert, arn):
        """Go on with ``arn`` once ACM has issued it, it is what it must be, and it is
        entered in the run's listing with the CA chain as what trusting it takes."""
        run, old_id = self.run, cert["clientCertificateId"]
        try:
            detail = self.describe(arn)
            if detail.get("Status") != "ISSUED":
                create_waiter_with_client("PrivateCertificateIssued", WAITER, self.client).wait(
                    CertificateArn=arn)
                detail = self.describe(arn)
        except FAILURES as e:
            raise Failed("successor %s not issued: %s" % (arn, error_text(e))) from e
        wrong = []
        if detail.get("Type") != "PRIVATE":
            wrong.append("type %s" % detail.get("Type"))
        if detail.get("CertificateAuthorityArn") != self.authority.arn:
            wrong.append("issued by %s" % detail.get("CertificateAuthorityArn"))
        if not wrong and self.tags(arn).get(PREDECESSOR) != old_id:
            wrong.append("not tagged %s=%s" % (PREDECESSOR, old_id))
        if wrong:
            raise Failed("successor %s (tag %s) is not this migration's: %s; nothing changed"
                         % (arn, SUCCESSOR, ", ".join(wrong)))
        run.listing[arn] = {
            "clientCertificateId": arn, "pemEncodedCertificate": self.authority.bundle,
            "tags": {PREDECESSOR: old_id}, "createdDate": detail.get("CreatedAt"),
            "expirationDate": detail.get("NotAfter")}
        self.chosen[old_id] = arn
        cert[RECORD]["successor"] = arn

"""The ACM certificates that stages present: which ones, and what ACM and AWS Private CA say of
them. Enumeration only: no decisions (those are ``kinds.py``'s).

A stage's ``clientCertificateId`` is either an API Gateway certificate id or an ACM certificate
ARN (docs/aws-behaviour.md, fact 94). Only the ARNs that at least one stage references are read,
never the rest of the account's ACM (load balancers', CloudFront's). The calls, per region, are
the fewest ACM allows (fact 105):

- ``ListCertificates`` pages of 1000 with every key type asked for (by default ACM lists only
  RSA_1024 and RSA_2048: fact 98); nothing at all when no stage references an ACM ARN;
- ``GetCertificate`` for each referenced imported certificate: its PEM and chain, whose own
  notAfters may come first (fact 106);
- ``DescribeCertificate`` for each referenced private certificate (renewal and CA are not in
  the summary: fact 99), and for an ARN the listing did not answer (to tell why);
- ``DescribeCertificateAuthority`` once per CA those private certificates name.

Every call goes through c7n's retry. An ARN that cannot be read (fact 108) becomes a record of
kind ``acm-unknown`` with the reason: never dropped, never healthy.
"""
import logging
import re

from botocore.exceptions import BotoCoreError, ClientError
from c7n.utils import local_session

from . import pem
from ..clients import client
from .usage import pages, retry

log = logging.getLogger("custodian.apigw-client-certificate")

# Every key type ListCertificates knows (fact 98).
KEY_TYPES = ("RSA_1024", "RSA_2048", "RSA_3072", "RSA_4096", "EC_prime256v1", "EC_secp384r1",
             "EC_secp521r1")
LIST_PAGE = 1000  # ListCertificates' MaxItems at most (fact 99)
ACM_ARN = re.compile(r"^arn:(?P<partition>[^:]+):acm:(?P<region>[^:]*):(?P<account>[^:]*):"
                     r"certificate/.+$")
_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
# What the plugin keeps of ACM's answers, under ``c7n:acm``.
SUMMARY_KEYS = ("Status", "Type", "KeyAlgorithm", "RenewalEligibility", "InUse", "NotBefore",
                "NotAfter", "CreatedAt", "ImportedAt", "IssuedAt", "RevokedAt", "DomainName",
                "ExtendedKeyUsages")
DETAIL_KEYS = SUMMARY_KEYS + ("Serial", "CertificateAuthorityArn", "FailureReason")
ACM_ERRORS = (ClientError, BotoCoreError)

ACM = "c7n:acm"
UNKNOWN = "c7n:unknown"

# What reading the referenced certificates calls, on what (fact 107). A CA may be another
# account's, shared with this one (DescribeCertificateAuthority answers "one that has been
# shared with you"): any account.
IAM_RESOURCES = {
    "acm:ListCertificates": ["*"],
    "acm:DescribeCertificate": ["arn:${Partition}:acm:${Region}:${Account}:certificate/*"],
    "acm:GetCertificate": ["arn:${Partition}:acm:${Region}:${Account}:certificate/*"],
    "acm-pca:DescribeCertificateAuthority": [
        "arn:${Partition}:acm-pca:${Region}:*:certificate-authority/*"],
}


def is_acm_arn(value):
    """True for an ACM certificate ARN (fact 94); an API Gateway id is never one."""
    return isinstance(value, str) and ACM_ARN.match(value) is not None


def certificate_id(arn):
    """The last part of an ACM ARN (its UUID), for labels."""
    return arn.rsplit("/", 1)[-1]


def error_code(error):
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        return "%s: %s" % (err.get("Code"), err.get("Message", ""))
    return "%s: %s" % (type(error).__name__, error)


def iso(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def facts(answer, keys):
    """The keys of an ACM answer the plugin keeps, dates as ISO-8601 text."""
    found = {k: iso(answer[k]) for k in keys if answer.get(k) is not None}
    renewal = answer.get("RenewalSummary")
    if renewal:
        found["RenewalStatus"] = renewal.get("RenewalStatus")
        found["RenewalStatusReason"] = renewal.get("RenewalStatusReason")
        found["RenewalUpdatedAt"] = iso(renewal.get("UpdatedAt"))
    return found


def chain_not_after(chain, name):
    """The earliest notAfter of the certificates in a PEM chain, or None (a chain that does not
    parse is logged and ignored: ACM's NotAfter still counts)."""
    earliest = None
    for n, block in enumerate(_PEM_BLOCK.findall(chain or ""), 1):
        try:
            when = pem.not_after(block, "%s chain certificate %d" % (name, n))
        except pem.CertificateError as e:
            log.warning("%s: ignored", e)
            continue
        earliest = when if earliest is None or when < earliest else earliest
    return earliest


class Reader:
    """One region's ACM and AWS Private CA, read for the ARNs that stages reference."""

    def __init__(self, session_factory, region, account_id=None):
        self.session_factory, self.region = session_factory, region
        self.account_id = account_id or ""
        self.acm = self.pca = None

    def clients(self):
        """The ACM and ACM PCA clients, made when a stage first presents an ACM ARN."""
        if self.acm is None:
            session = local_session(self.session_factory)
            self.acm = client(session, "acm", self.region)
            self.pca = client(session, "acm-pca", self.region)

    def records(self, users):
        """One record per ACM ARN in ``users`` ({certificate id or ARN: stages}), in the
        resource's shape (``clientCertificateId`` is the ARN)."""
        referenced = sorted(arn for arn in users if is_acm_arn(arn))
        if not referenced:
            return []
        self.clients()
        summaries = self.summaries(referenced)
        found = [self.record(arn, summaries.get(arn)) for arn in referenced]
        self.add_authorities(found)
        for record in found:
            record["c7n:stages"] = users[record["clientCertificateId"]]
        return found

    def summaries(self, referenced):
        """{ARN: CertificateSummary} of the referenced ARNs, from ListCertificates with every
        key type. A listing that fails is logged: each ARN is then described instead."""
        wanted, found = set(referenced), {}
        try:
            for page in pages(self.acm, "list_certificates", Includes={"keyTypes": list(
                    KEY_TYPES)}, PaginationConfig={"PageSize": LIST_PAGE}):
                for summary in page.get("CertificateSummaryList", ()):
                    if summary.get("CertificateArn") in wanted:
                        found[summary["CertificateArn"]] = summary
        except ACM_ERRORS as e:
            log.warning("acm ListCertificates in %s failed (%s): each of the %d ACM "
                        "certificate(s) that stages present is described instead",
                        self.region, error_code(e), len(referenced))
        return found

    def record(self, arn, summary):
        where = ACM_ARN.match(arn)
        if where.group("region") != self.region:
            return unknown(arn, "in region %s, not the stage's region %s: a stage presents "
                           "only a certificate of its own region" % (where.group("region"),
                                                                     self.region))
        if self.account_id and where.group("account") != self.account_id:
            return unknown(arn, "in account %s, not this account (%s): not readable here"
                           % (where.group("account"), self.account_id))
        known = facts(summary, SUMMARY_KEYS) if summary else None
        if known is None or known.get("Type") == "PRIVATE":
            try:
                detail = retry(self.acm.describe_certificate, CertificateArn=arn)["Certificate"]
            except ACM_ERRORS as e:
                why = "DescribeCertificate: %s" % error_code(e)
                if known is None:
                    return unknown(arn, why)
                known["DescribeError"] = why  # listed, but no renewal or CA to go on
                log.warning("acm-certificate:%s is listed but cannot be described (%s): its "
                            "renewal and CA are reported as unknown", arn, why)
            else:
                known = facts(detail, DETAIL_KEYS)
        record = acm_record(arn, known)
        if known.get("Type") == "IMPORTED":
            self.add_pem(record)
        return record

    def add_pem(self, record):
        """An imported certificate's PEM (``pemEncodedCertificate``) and the earliest notAfter
        of its chain (``c7n:acm.ChainNotAfter``). A failure is logged: NotAfter still counts."""
        arn = record["clientCertificateId"]
        try:
            answer = retry(self.acm.get_certificate, CertificateArn=arn)
        except ACM_ERRORS as e:
            log.warning("acm-certificate:%s GetCertificate failed (%s): its PEM and chain are "
                        "not checked, ACM's NotAfter is used", arn, error_code(e))
            record[ACM]["PemError"] = error_code(e)
            return
        record["pemEncodedCertificate"] = answer.get("Certificate")
        earliest = chain_not_after(answer.get("CertificateChain"), "acm-certificate:%s" % arn)
        if earliest is not None:
            record[ACM]["ChainNotAfter"] = earliest.isoformat()

    def add_authorities(self, records):
        """``c7n:acm.CertificateAuthority`` on each private certificate: one
        DescribeCertificateAuthority per CA, whatever the number of its certificates."""
        by_ca = {}
        for record in records:
            ca = (record.get(ACM) or {}).get("CertificateAuthorityArn")
            if ca:
                by_ca.setdefault(ca, []).append(record)
        for ca_arn, mine in sorted(by_ca.items()):
            try:
                answer = retry(self.pca.describe_certificate_authority,
                               CertificateAuthorityArn=ca_arn)["CertificateAuthority"]
                authority = {"Arn": ca_arn, "Status": answer.get("Status"),
                             "Type": answer.get("Type"),
                             "NotBefore": iso(answer.get("NotBefore")),
                             "NotAfter": iso(answer.get("NotAfter"))}
            except ACM_ERRORS as e:
                authority = {"Arn": ca_arn, "Error": "DescribeCertificateAuthority: %s"
                             % error_code(e)}
                log.warning("acm-pca:%s cannot be read (%s): the %d certificate(s) it issued "
                            "are reported with their CA unknown", ca_arn, error_code(e),
                            len(mine))
            for record in mine:
                record[ACM]["CertificateAuthority"] = authority


KIND_OF_TYPE = {"IMPORTED": "acm-imported", "PRIVATE": "acm-private",
                "AMAZON_ISSUED": "acm-public"}


def acm_record(arn, known):
    """A record in the resource's shape: the ARN as id, ACM's facts under ``c7n:acm``."""
    return {
        "clientCertificateId": arn,
        "certificateArn": arn,
        "kind": KIND_OF_TYPE.get(known.get("Type"), "acm-unknown"),
        "description": known.get("DomainName", ""),
        "createdDate": known.get("ImportedAt") or known.get("CreatedAt"),
        "expirationDate": known.get("NotAfter"),
        "tags": {},
        ACM: known,
    }


def unknown(arn, reason):
    """A referenced ARN that cannot be read: reported, with why (fact 108)."""
    log.warning("acm-certificate:%s cannot be read: %s; its stages are reported as unknown",
                arn, reason)
    return {"clientCertificateId": arn, "certificateArn": arn, "kind": "acm-unknown",
            "description": "", "tags": {}, ACM: None, UNKNOWN: reason}

"""What ``custodian report`` shows of a certificate: plain columns a person reads.

c7n's report (``c7n/reports/csvout.py``, ``Formatter``) names each default column by the very
JMESPath expression that reads it (docs/aws-behaviour.md, fact 66): a column over the
annotation ``c7n:days-left`` is headed ``"c7n:days-left"``. So each certificate carries a few
plain keys, written when it is listed and again by the ``expiring`` filter (whose values they
then are), and ``resource_type.default_report_fields`` names them: the headers are the keys.

=============  ===========================================================================
``id``         the certificate's id; an ACM certificate's is ``acm:`` and the start of the
               ARN's UUID (the ARN is ``clientCertificateId`` and ``certificateArn``)
``kind``       ``generated``, ``acm-imported``, ``acm-private``, ``acm-public`` or
               ``acm-unknown`` (``kinds.py``)
``expires``    the effective expiry, ``YYYY-MM-DD HH:MM`` UTC: the earlier of
               ``expirationDate`` and the PEM's notAfter (as ``c7n:expires``)
``days_left``  whole days to that expiry, rounded up, negative once expired (``c7n:days-left``)
``expired``    true once expired (``c7n:expired``); in the JSON only, ``condition`` says more
``condition``  why and when it breaks (``c7n:condition``): ``expires``, ``ca-expires``,
               ``renewal-failed``, ``expired``, ``revoked``, ``unknown``, ... (``kinds.py``)
``stages``     one line per stage that presents it: ``REST orders-api/prod``,
               ``WS live-updates/production``; a line longer than ``STAGE_WIDTH`` wraps
``Region``     the region it was listed in; with several regions c7n's own ``Region`` column
               (the same values) takes this one's place instead of adding a second
=============  ===========================================================================

The values are those of the run that wrote ``resources.json``: ``custodian report`` shows that
run, it does not count the days again. With every column, a certificate with a description
up to ``DESCRIPTION_FIT`` characters and stage lines up to ``STAGE_WIDTH`` fits a terminal of
``FIT_COLUMNS`` columns in ``--format grid`` (tests/test_report.py); a longer description
widens the table by its excess.
"""
import re

ID = "id"
EXPIRES = "expires"
DAYS_LEFT = "days_left"
EXPIRED = "expired"
KIND = "kind"
CONDITION = "condition"
STAGES = "stages"
REGION = "Region"  # c7n's own header for the region (Formatter, include_region)

# The report's columns, in order (``ClientCertificate.resource_type.default_report_fields``).
FIELDS = (ID, KIND, "description", EXPIRES, DAYS_LEFT, CONDITION, STAGES, REGION)

# 140 columns since the report shows each certificate's kind and condition (an ACM row is the
# widest): with them, 120 left a description too little room to read.
FIT_COLUMNS = 140
DESCRIPTION_FIT = 18
STAGE_WIDTH = 27
PROTOCOLS = {"REST": "REST", "WEBSOCKET": "WS"}


def stage_lines(stages):
    """``REST orders-api/prod``, one stage a line, sorted; lines wrap at ``STAGE_WIDTH``."""
    lines = []
    for stage in sorted(stages, key=lambda s: (s["protocol"], s["apiName"], s["stageName"])):
        text = "%s %s/%s" % (PROTOCOLS.get(stage["protocol"], stage["protocol"]),
                             stage["apiName"], stage["stageName"])
        lines.extend(wrap(text))
    return "\n".join(lines)


def wrap(text, width=STAGE_WIDTH, indent="  "):
    """Lines of at most ``width``, broken after a space, a hyphen or a "/" (API names are
    often hyphenated, and "/" parts API and stage); a piece longer than a line is cut."""
    lines, line = [], ""
    for piece in re.split(r"(?<=[ /-])", text):
        while len(piece) > width - len(indent):  # no break in it: cut it
            if line.strip():
                lines.append(line.rstrip())
                line = indent
            room = width - len(line)
            lines.append(line + piece[:room])
            piece, line = piece[room:], indent
        if line.strip() and len(line) + len(piece.rstrip()) > width:
            lines.append(line.rstrip())
            line = indent
        line += piece
    lines.append(line.rstrip())
    return lines


ACM_ID_CHARS = 6


def short_id(cert_id):
    """An API Gateway id as it is; an ACM ARN as ``acm:`` and the first ``ACM_ID_CHARS``
    characters of its UUID, which tell a region's certificates apart and fit the grid (the
    whole ARN is ``clientCertificateId`` in the JSON)."""
    if cert_id.startswith("arn:"):
        return "acm:" + cert_id.rsplit("/", 1)[-1][:ACM_ID_CHARS]
    return cert_id


def annotate(cert, expires, days_left, expired, stages, region=None, condition=None):
    """Write the report's keys on a certificate from its expiry (an aware datetime, or None
    when it cannot be known) and the stages that use it (``c7n:stages``); ``region`` is set
    once, when it is listed."""
    cert[ID] = short_id(cert["clientCertificateId"])
    cert[KIND] = cert.get(KIND) or "generated"
    cert[EXPIRES] = expires.strftime("%Y-%m-%d %H:%M") if expires is not None else "unknown"
    cert[DAYS_LEFT] = days_left
    cert[EXPIRED] = expired
    cert[CONDITION] = condition
    cert[STAGES] = "unknown" if stages is None else stage_lines(stages)
    if region is not None:
        cert[REGION] = region
    return cert

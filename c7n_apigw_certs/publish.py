"""Trust destinations: where a rotation writes the PEM bundle that backends trust.

A backend trusts API Gateway by trusting the certificate's PEM (aws-facts.md, fact 2), so the
successor must be in every backend's bundle before any stage presents it, and the old one must
stay until no stage presents it. Each destination renders its name from a template; a name that
depends on a stage (``{api_id}``, ``{stage_name}``) is one location per stage.

Every write is read back and compared before the rotation moves on.
"""
import string

from botocore.exceptions import ClientError
from c7n.exceptions import PolicyValidationError
from c7n.utils import local_session

FIELDS = {"cert_id", "old_cert_id", "api_id", "stage_name", "region", "account_id"}
STAGE_FIELDS = {"api_id", "stage_name"}
CERT_FIELDS = {"cert_id", "old_cert_id"}

DESTINATION_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {
        "type": {"enum": ["ssm", "s3"]},
        "name": {"type": "string", "minLength": 1},
        "bucket": {"type": "string", "minLength": 1},
        "key": {"type": "string", "minLength": 1},
    },
}
REQUIRED = {"ssm": ("name",), "s3": ("bucket", "key")}
PERMISSIONS = {"ssm": ("ssm:PutParameter", "ssm:GetParameter"),
               "s3": ("s3:PutObject", "s3:GetObject")}


class PublishError(Exception):
    """A write that did not read back as written."""


def template_fields(template):
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def check_template(where, template, known):
    """A policy error naming the place, if the template is malformed or uses unknown fields."""
    try:
        unknown = template_fields(template) - known
    except ValueError as e:
        raise PolicyValidationError("%s: %s" % (where, e)) from e
    if unknown:
        raise PolicyValidationError("%s uses unknown template field(s) %s; known: %s" % (
            where, ", ".join(sorted(unknown)), ", ".join(sorted(known))))


def validate_destinations(destinations, policy_name):
    """The checks a JSON schema cannot say clearly: per-type keys and template fields."""
    for index, dest in enumerate(destinations):
        where = "policy:%s rotate.publish[%d] (%s)" % (policy_name, index, dest["type"])
        for key in REQUIRED[dest["type"]]:
            if key not in dest:
                raise PolicyValidationError("%s needs '%s'" % (where, key))
        for key in ("name", "bucket", "key"):
            if key in dest and key not in REQUIRED[dest["type"]]:
                raise PolicyValidationError(
                    "%s does not take '%s' (it takes %s)" % (
                        where, key, ", ".join(REQUIRED[dest["type"]])))
            if key in dest:
                check_template("%s '%s'" % (where, key), dest[key], FIELDS)


def permissions(destinations):
    perms = set()
    for dest in destinations:
        perms.update(PERMISSIONS[dest["type"]])
    return sorted(perms)


def bundle(*pems):
    """One PEM after another, each ending in a newline, in the order given (successor first)."""
    return "".join(pem.strip() + "\n" for pem in pems)


def dest_fields(dest):
    return set().union(*(template_fields(dest[k]) for k in REQUIRED[dest["type"]]))


def is_shared(dest):
    """Whether stages of other certificates can render to the same place: a name with neither
    a certificate id nor both stage fields, such as ``/trust/{api_id}`` or ``/trust/{region}``.
    Such a bundle must keep trusting every certificate that any stage behind it presents."""
    fields = dest_fields(dest)
    return not (fields & CERT_FIELDS or STAGE_FIELDS <= fields)


def render(dest, fields, stage=None):
    values = dict(fields, api_id="", stage_name="")
    if stage is not None:
        values.update(api_id=stage["apiId"], stage_name=stage["stageName"])
    return Location(dest, values)


class Location:
    """One rendered place: an SSM parameter, or an S3 object."""

    def __init__(self, dest, fields):
        self.dest = dest
        self.type = dest["type"]
        self.parts = tuple(dest[k].format(**fields) for k in REQUIRED[self.type])

    @property
    def label(self):
        return "%s:%s" % (self.type, "/".join(self.parts) if self.type == "s3" else self.parts[0])

    def __eq__(self, other):
        return (self.type, self.parts) == (other.type, other.parts)

    def __hash__(self):
        return hash((self.type, self.parts))


def locations(destinations, fields, stages):
    """{Location: [the given stages behind it]}: a template with a stage field renders once per
    stage; one without, once."""
    found = {}
    for dest in destinations:
        per_stage = bool(dest_fields(dest) & STAGE_FIELDS)
        for stage in (stages if per_stage else [None]):
            found.setdefault(render(dest, fields, stage), []).extend(
                [stage] if stage else stages)
    return found


class Publisher:
    """Writes and reads back bundles; one client per service, made on first use."""

    def __init__(self, session_factory, region):
        self.session = local_session(session_factory)
        self.region = region
        self.clients = {}
        self.verified = {}  # Location -> content read back in this run

    def client(self, service):
        if service not in self.clients:
            self.clients[service] = self.session.client(service, region_name=self.region)
        return self.clients[service]

    def read(self, location):
        try:
            if location.type == "ssm":
                return self.client("ssm").get_parameter(
                    Name=location.parts[0])["Parameter"]["Value"]
            body = self.client("s3").get_object(Bucket=location.parts[0], Key=location.parts[1])
            return body["Body"].read().decode("utf-8")
        except ClientError as e:
            if e.response["Error"]["Code"] in ("ParameterNotFound", "NoSuchKey", "404"):
                return None
            raise

    def write(self, location, content):
        """Write, read back, compare. Raises PublishError on a mismatch."""
        if location.type == "ssm":
            self.client("ssm").put_parameter(
                Name=location.parts[0], Value=content, Type="String", Overwrite=True)
        else:
            self.client("s3").put_object(
                Bucket=location.parts[0], Key=location.parts[1], Body=content.encode("utf-8"),
                ContentType="application/x-pem-file")
        found = self.read(location)
        if found != content:
            raise PublishError("%s did not read back as written" % location.label)
        self.verified[location] = content

    def current(self, location):
        """The content as of this run: what this run verified, else a fresh read."""
        if location not in self.verified:
            self.verified[location] = self.read(location)
        return self.verified[location]

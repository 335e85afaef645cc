"""Trust destinations: where a rotation writes the PEM bundles that backends trust, and which
certificates each bundle must hold. Pure: the stores (``stores.py``) read and write.

A backend trusts API Gateway by trusting the certificate's PEM (docs/aws-behaviour.md, fact 2),
so the successor must be in every backend's bundle before any stage presents it, and the old one
must stay until no stage presents it. Each destination renders its name from a template; a name
that depends on a stage (``{api_id}``, ``{stage_name}``) is one location per stage.

Bundles are merged, never rebuilt: a write keeps every PEM the location already holds (another
region, another account, another tool may have put it there), adds what the stages behind it
need, and removes only the PEMs of certificates the run itself retired.
"""
import string

from c7n.exceptions import PolicyValidationError

from .stores import TIERS

FIELDS = {"cert_id", "old_cert_id", "api_id", "stage_name", "region", "account_id"}
STAGE_FIELDS = {"api_id", "stage_name"}
CERT_FIELDS = {"cert_id", "old_cert_id"}

DESTINATION_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {
        "type": {"enum": ["ssm", "s3", "elb-trust-store"]},
        "name": {"type": "string", "minLength": 1},
        "tier": {"enum": sorted(TIERS)},  # SSM tiers and their sizes: stores.TIERS
        "bucket": {"type": "string", "minLength": 1},
        "key": {"type": "string", "minLength": 1},
        # An ELB trust store's name, fed from the S3 object bucket/key (stores.ElbTrustStore).
        "trust_store": {"type": "string", "minLength": 1},
    },
}
REQUIRED = {"ssm": ("name",), "s3": ("bucket", "key"),
            "elb-trust-store": ("trust_store", "bucket", "key")}
OPTIONAL = {"ssm": ("tier",), "s3": (), "elb-trust-store": ()}


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
        kind = dest["type"]
        where = "policy:%s rotate.publish[%d] (%s)" % (policy_name, index, kind)
        for key in REQUIRED[kind]:
            if key not in dest:
                raise PolicyValidationError("%s needs '%s'" % (where, key))
        for key in set(dest) - {"type"} - set(REQUIRED[kind]) - set(OPTIONAL[kind]):
            raise PolicyValidationError("%s does not take '%s' (it takes %s)" % (
                where, key, ", ".join(REQUIRED[kind] + OPTIONAL[kind])))
        for key in REQUIRED[kind]:
            check_template("%s '%s'" % (where, key), dest[key], FIELDS)


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
    """One rendered place: an SSM parameter, an S3 object, or an ELB trust store and its S3
    object."""

    def __init__(self, dest, fields):
        self.dest = dest
        self.type = dest["type"]
        self.parts = tuple(dest[k].format(**fields) for k in REQUIRED[self.type])

    @property
    def label(self):
        if self.type == "elb-trust-store":
            return "elb-trust-store:%s (s3://%s/%s)" % self.parts
        return "%s:%s" % (self.type, "/".join(self.parts) if self.type == "s3" else self.parts[0])

    def __eq__(self, other):
        return (self.type, self.parts) == (other.type, other.parts)

    def __hash__(self):
        return hash((self.type, self.parts))

    def __repr__(self):
        return "Location(%s)" % self.label


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


def stages_behind(place, stages, stage_map, fields):
    """Every stage whose bundle is this place: the given ones, or, for a name that stages of
    other certificates share, every stage of the region that renders to it."""
    if not is_shared(place.dest):
        return stages
    return [stage for users in stage_map.values() for stage in users
            if render(place.dest, fields, stage) == place]


def trusted_ids(stages, listing, successors, predecessors=None):
    """The certificates the given stages may present, in a stable order: each stage's own, its
    successor once generated (``successors``: {id: successor id}), and its predecessor while
    that still exists, since a stage may present it until redeployed (facts 11, 31).
    ``predecessors``: {id: predecessor id}, the pairs the rotation verified; without it, what
    the certificates' ``predecessor`` tags say."""
    ids = []
    for stage in sorted(stages, key=lambda s: (s["apiId"], s["stageName"])):
        cert_id = stage["clientCertificateId"]
        predecessor = predecessors.get(cert_id) if predecessors is not None else \
            listing.get(cert_id, {}).get("tags", {}).get("c7n:rotation:predecessor")
        for candidate in (successors.get(cert_id), cert_id, predecessor):
            if candidate in listing and candidate not in ids:
                ids.append(candidate)
    return ids

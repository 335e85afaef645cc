"""The package held to its conventions: documentation that loads, exact permissions, names
that match their schemas, policy files that validate."""
import inspect
import pathlib
import re

import pytest
import yaml
from c7n.config import Config
from c7n.policy import Policy
from c7n.resources import load_resources
from c7n.schema import generate, validate

import c7n_apigw_certs

ROOT = pathlib.Path(__file__).resolve().parents[1]
ALLOWED_PERMISSIONS = re.compile(
    r"^(apigateway:(GET|POST|PATCH|PUT|DELETE)|ssm:\w+|s3:\w+|cloudwatch:PutMetricData"
    r"|events:PutEvents|securityhub:(BatchImportFindings|GetFindings)"
    # the reads of the ACM certificates stages present (acm.py); the one ACM write is the
    # migration's request of a private certificate (migrate.py)
    r"|acm:(ListCertificates|DescribeCertificate|GetCertificate|ListTagsForCertificate"
    r"|RequestCertificate)"
    r"|acm-pca:(DescribeCertificateAuthority|GetCertificateAuthorityCertificate))$")


def our_elements():
    """(registry name, class) of every resource, filter and action this package registers."""
    load_resources(("aws.apigw-client-certificate", "aws.rest-stage", "aws.apigwv2-stage"))
    from c7n.provider import resources
    found = []
    for rtype, rclass in resources("aws").items():
        if rclass.__module__.startswith("c7n_apigw_certs"):
            found.append((rtype, rclass))
        for registry in (rclass.filter_registry, rclass.action_registry):
            for name, element in registry.items():
                if element.__module__.startswith("c7n_apigw_certs"):
                    found.append(("%s.%s" % (rtype, name), element))
    # Sorted: the registries' order depends on what loaded first, and every pytest-xdist worker
    # must collect the same cases in the same order.
    return sorted(found, key=lambda pair: pair[0])


ELEMENTS = our_elements()
IDS = [name for name, _ in ELEMENTS]


def test_elements_found():
    assert "aws.apigw-client-certificate" in IDS
    assert {"aws.apigw-client-certificate.expiring", "aws.apigw-client-certificate.in-use",
            "aws.rest-stage.expiring", "aws.apigwv2-stage.expiring"} <= set(IDS)


def example_policies(element):
    doc = inspect.getdoc(element) or ""
    assert ":example:" in doc, "no :example: in the docstring"
    block = doc.split(".. code-block:: yaml", 1)[1]
    return yaml.safe_load(block)["policies"]


@pytest.mark.parametrize("name,element", ELEMENTS, ids=IDS)
def test_docstring_example_loads(name, element):
    data = {"policies": example_policies(element)}
    schema = generate()
    assert validate(data, schema) == []
    for p in data["policies"]:
        Policy(p, Config.empty(region="us-east-1", account_id="123456789012")).validate()
        if "." in name.split("aws.", 1)[1]:  # a filter or action: its example uses it
            used = [f.get("type") for f in p.get("filters", []) + p.get("actions", [])
                    if isinstance(f, dict)]
            assert name.rsplit(".", 1)[1] in used


def configured(name, element):
    """The element as its own docstring example configures it."""
    policy = Policy(example_policies(element)[0],
                    Config.empty(region="us-east-1", account_id="123456789012"))
    manager = policy.resource_manager
    if name.count(".") == 1:
        return manager
    for candidate in manager.filters + manager.actions:
        if isinstance(candidate, element):
            return candidate
    raise AssertionError("%s's example does not use it" % name)


@pytest.mark.parametrize("name,element", ELEMENTS, ids=IDS)
def test_permissions_are_exact(name, element):
    perms = configured(name, element).get_permissions()
    assert perms, "%s declares no permissions" % name
    for perm in perms:
        assert ALLOWED_PERMISSIONS.match(perm), perm


def test_rotate_permissions_follow_its_configuration():
    (_, rotate), = [(n, e) for n, e in ELEMENTS if n.endswith(".rotate")]
    perms = set(configured("aws.apigw-client-certificate.rotate", rotate).get_permissions())
    assert perms == {"apigateway:GET", "apigateway:POST", "apigateway:PUT", "apigateway:PATCH",
                     "apigateway:DELETE", "ssm:PutParameter", "ssm:GetParameter",
                     "s3:PutObject", "s3:GetObject", "s3:ListBucket"}
    # s3:ListBucket: without it a missing key reads as AccessDenied, not NoSuchKey (fact 25)


SCHEMED = [(n, e) for n, e in ELEMENTS if hasattr(e, "schema")]


@pytest.mark.parametrize("name,element", SCHEMED, ids=[n for n, _ in SCHEMED])
def test_registered_name_matches_schema_type(name, element):
    assert element.schema["properties"]["type"]["enum"] == [name.rsplit(".", 1)[1]]
    assert element.schema.get("additionalProperties") is False


@pytest.mark.parametrize("path", sorted((ROOT / "policies").glob("*.yml")), ids=lambda p: p.name)
def test_policy_files_validate(path):
    data = yaml.safe_load(path.read_text())
    assert validate(data, generate()) == []
    for p in data["policies"]:
        assert p["resource"] in (c7n_apigw_certs.RESOURCE_TYPE, "aws.rest-stage",
                                 "aws.apigwv2-stage")
        Policy(p, Config.empty(region="us-east-1", account_id="123456789012")).validate()

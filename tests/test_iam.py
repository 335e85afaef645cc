"""``c7n-apigw-certs iam``: the IAM policy document that policy files need, and the protocol
behind it (every element of this package maps its permissions to resources)."""
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import pytest
import yaml
from c7n.config import Config
from c7n.policy import Policy
from conftest import (
    ACCOUNT, REGION, api_calls, assume_role_allowed, client, custodian_run, make_acm_cert,
    make_cert, make_rest_stage, make_websocket_stage, run_cli)
from test_conventions import ELEMENTS, IDS, configured

from c7n_apigw_certs import iam

ROOT = pathlib.Path(__file__).resolve().parents[1]
POLICIES = sorted((ROOT / "policies").glob("*.yml"))
GET = "apigateway:GET"


def apigw(*paths, partition="aws", region="*"):
    return ["arn:%s:apigateway:%s::%s" % (partition, region, p) for p in paths]


# What the audit reads: certificates, REST APIs and their stages, WebSocket APIs and theirs.
AUDIT = apigw("/apis", "/apis/*/stages", "/clientcertificates", "/restapis",
              "/restapis/*/stages")


def statement(sid, actions, resources):
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def acm_reads(partition="aws", region="*", account="*", list_sid="AcmListCertificates"):
    """What reading the ACM certificates that stages present needs (acm.IAM_RESOURCES): the
    certificates scoped to the account, a CA of any account (one may be shared)."""
    found = [
        statement("AcmpcaDescribeCertificateAuthority", ["acm-pca:DescribeCertificateAuthority"],
                  ["arn:%s:acm-pca:%s:*:certificate-authority/*" % (partition, region)]),
        statement("AcmDescribeCertificateGetCertificate",
                  ["acm:DescribeCertificate", "acm:GetCertificate"],
                  ["arn:%s:acm:%s:%s:certificate/*" % (partition, region, account)])]
    if list_sid:
        found.append(statement(list_sid, ["acm:ListCertificates"], ["*"]))
    return found


def document(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def run_iam(*args, check=True):
    """The installed command, as a user runs it; stdout must be the document and nothing else."""
    proc = run_cli("c7n-apigw-certs", ["iam"] + [str(a) for a in args], dict(os.environ),
                   check=check)
    if proc.returncode == 0:
        return json.loads(proc.stdout), proc
    return None, proc


def write_policies(tmp_path, policies, name="policy.yml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"policies": policies}))
    return path


REST_STAGE_EXPIRING = {"name": "stages-expiring", "resource": "aws.rest-stage",
                       "filters": [{"type": "expiring", "days": 14}]}


# -- the documents ----------------------------------------------------------------------------
def test_expiring_policy_file():
    doc, proc = run_iam(ROOT / "policies" / "expiring.yml")
    assert doc == document(*acm_reads(), statement("ApiGatewayGet", [GET], AUDIT))
    assert proc.stdout.startswith("{") and proc.stdout.endswith("}\n")


def test_unused_policy_file():
    doc, _ = run_iam(ROOT / "policies" / "unused.yml")
    assert doc == document(*acm_reads(), statement("ApiGatewayGet", [GET], AUDIT))


def test_rest_stage_with_expiring(tmp_path):
    """c7n's rest-stage from the fallback table (its listings; tag:GetResources has no
    resource-level permissions), our filter's certificate listing and ACM reads."""
    doc, _ = run_iam(write_policies(tmp_path, [REST_STAGE_EXPIRING]))
    assert doc == document(
        *acm_reads(list_sid=None),
        statement("AcmListCertificatesTagGetResources", ["acm:ListCertificates",
                                                         "tag:GetResources"], ["*"]),
        statement("ApiGatewayGet", [GET],
                  apigw("/clientcertificates", "/restapis", "/restapis/*/stages")))


def test_partition_region_and_account(tmp_path):
    doc, _ = run_iam(ROOT / "policies" / "expiring.yml", "--partition", "aws-cn",
                     "--region", "cn-north-1", "--account", "123456789012")
    assert doc == document(*acm_reads("aws-cn", "cn-north-1", "123456789012"), statement(
        "ApiGatewayGet", [GET], apigw(
            "/apis", "/apis/*/stages", "/clientcertificates", "/restapis",
            "/restapis/*/stages", partition="aws-cn", region="cn-north-1")))


def test_placeholders_filled_and_statements_grouped():
    ssm = "arn:${Partition}:ssm:${Region}:${Account}:parameter/trust/*"
    doc = iam.document({
        "ssm:PutParameter": [ssm], "ssm:GetParameter": [ssm],
        GET: [iam.apigateway_arn("/restapis"), iam.apigateway_arn("/clientcertificates")],
        "apigateway:PATCH": [iam.apigateway_arn("/restapis/*/stages/*")],
    }, partition="aws-us-gov", region="us-gov-west-1", account="123456789012")
    assert doc == document(
        statement("ApiGatewayGet", [GET], apigw(
            "/clientcertificates", "/restapis", partition="aws-us-gov", region="us-gov-west-1")),
        statement("ApiGatewayPatch", ["apigateway:PATCH"], apigw(
            "/restapis/*/stages/*", partition="aws-us-gov", region="us-gov-west-1")),
        statement("SsmGetParameterPutParameter", ["ssm:GetParameter", "ssm:PutParameter"],
                  ["arn:aws-us-gov:ssm:us-gov-west-1:123456789012:parameter/trust/*"]))


def test_every_resource_is_absorbed_by_a_star():
    doc = iam.document({GET: [iam.apigateway_arn("/restapis"), "*"]})
    assert doc["Statement"] == [statement("ApiGatewayGet", [GET], ["*"])]


def test_files_are_merged(tmp_path):
    doc, _ = run_iam(ROOT / "policies" / "expiring.yml", ROOT / "policies" / "unused.yml",
                     write_policies(tmp_path, [REST_STAGE_EXPIRING]))
    assert doc == document(*acm_reads(list_sid=None),
                           statement("AcmListCertificatesTagGetResources",
                                     ["acm:ListCertificates", "tag:GetResources"], ["*"]),
                           statement("ApiGatewayGet", [GET], AUDIT))


def test_filters_inside_or_and_not_count(tmp_path):
    """c7n's Policy.get_permissions() does not look inside boolean filters; the document does."""
    doc, _ = run_iam(write_policies(tmp_path, [{
        "name": "nested", "resource": "aws.rest-stage",
        "filters": [{"or": [{"not": [{"type": "expiring", "days": 3}]},
                            {"stageName": "prod"}]}]}]))
    get, = [s for s in doc["Statement"] if s["Action"] == [GET]]
    assert get["Resource"] == apigw("/clientcertificates", "/restapis", "/restapis/*/stages")


def test_unknown_c7n_element_gets_every_resource(tmp_path):
    """c7n's own rest-stage ``update`` is not in the table: its action on "*"."""
    doc, _ = run_iam(write_policies(tmp_path, [dict(REST_STAGE_EXPIRING, actions=[{
        "type": "update",
        "patch": [{"op": "replace", "path": "/tracingEnabled", "value": "true"}]}])]))
    assert statement("AcmListCertificatesApiGatewayPatchTagGetResources",
                     ["acm:ListCertificates", "apigateway:PATCH", "tag:GetResources"],
                     ["*"]) in doc["Statement"]


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_policy_files_need_exactly_what_c7n_counts(path):
    """Each action c7n counts for the policy, and what a Config-rule mode's function calls
    (``iam.MODE_RESOURCES``), no other, each with resources, none twice."""
    doc = iam.policy_document([str(path)])
    options = Config.empty(region="us-east-1", account_id="123456789012")
    data = yaml.safe_load(path.read_text())["policies"]
    wanted = set().union(*(Policy(p, options).get_permissions() for p in data), *(
        iam.MODE_RESOURCES.get((p.get("mode") or {}).get("type"), {}) for p in data))
    actions = [a for s in doc["Statement"] for a in s["Action"]]
    assert sorted(actions) == sorted(wanted)
    assert all(s["Resource"] for s in doc["Statement"])
    assert json.loads(json.dumps(doc)) == doc


def test_same_input_same_document(tmp_path):
    files = [str(ROOT / "policies" / "rotate.yml"), str(write_policies(tmp_path, [
        REST_STAGE_EXPIRING]))]
    first = json.dumps(iam.policy_document(files))
    assert json.dumps(iam.policy_document(list(reversed(files)))) == first


# -- errors: stderr names the file and the policy, exit 2, nothing on stdout -----------------
def assert_refused(proc, *named):
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    for text in named:
        assert text in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_resource(tmp_path):
    path = write_policies(tmp_path, [{"name": "nope", "resource": "aws.no-such-thing"}])
    _, proc = run_iam(path, check=False)
    assert_refused(proc, str(path), "policy:nope", "unknown resource aws.no-such-thing")


def test_invalid_schema(tmp_path):
    path = write_policies(tmp_path, [{"name": "typo", "resource": "aws.apigw-client-certificate",
                                      "filters": [{"type": "expiring", "dayz": 3}]}])
    _, proc = run_iam(path, check=False)
    assert_refused(proc, str(path), "policy:typo", "dayz")


def test_invalid_element_configuration(tmp_path):
    path = write_policies(tmp_path, [{
        "name": "bad-template", "resource": "aws.apigw-client-certificate",
        "actions": [{"type": "rotate", "switch-after-days": 1,
                     "publish": [{"type": "ssm", "name": "/trust/{nope}"}]}]}])
    _, proc = run_iam(path, check=False)
    assert_refused(proc, str(path), "policy:bad-template", "nope")


def test_the_bad_file_among_several_is_named(tmp_path):
    bad = write_policies(tmp_path, [{"name": "p"}], name="bad.yml")
    _, proc = run_iam(ROOT / "policies" / "expiring.yml", bad, check=False)
    assert_refused(proc, str(bad))
    assert "expiring.yml" not in proc.stderr


def test_missing_file(tmp_path):
    _, proc = run_iam(tmp_path / "missing.yml", check=False)
    assert_refused(proc, str(tmp_path / "missing.yml"))


def test_file_that_is_not_yaml(tmp_path):
    path = tmp_path / "broken.yml"
    path.write_text("policies: [\n")
    _, proc = run_iam(path, check=False)
    assert_refused(proc, str(path))


@pytest.mark.parametrize("option", [["--account", "12345"], ["--region", "mars"],
                                    ["--partition", "azure"]], ids=lambda o: o[0])
def test_malformed_options(option):
    _, proc = run_iam(ROOT / "policies" / "expiring.yml", *option, check=False)
    assert_refused(proc, option[1])


# -- helpers ------------------------------------------------------------------------------
def test_apigateway_arn():
    assert iam.apigateway_arn("/restapis/*/stages") == \
        "arn:${Partition}:apigateway:${Region}::/restapis/*/stages"


@pytest.mark.parametrize("template,pattern", [
    ("/apigw/client-certs/{api_id}/{stage_name}", "/apigw/client-certs/*/*"),
    ("/trust/{region}/{account_id}/{cert_id}", "/trust/${Region}/${Account}/*"),
    ("apigw/{api_id}{stage_name}.pem", "apigw/*.pem"),
    ("{old_cert_id}", "*"),
    ("odd*name?${cert_id}", "odd${*}name${?}${$}*"),
    ("{{braces}}-{api_id}", "{braces}-*"),
    ("static", "static"),
])
def test_wildcard(template, pattern):
    assert iam.wildcard(template) == pattern


def test_command_does_not_import_c7n_before_it_needs_it():
    """``c7n-apigw-certs sandbox`` pays nothing for the iam command."""
    code = "import sys, c7n_apigw_certs.cli; print('c7n' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


# -- the protocol: every element of this package maps exactly its permissions -------------
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


@pytest.mark.parametrize("name,element", ELEMENTS, ids=IDS)
def test_element_maps_its_permissions_to_resources(name, element):
    configured_element = configured(name, element)
    assert hasattr(configured_element, "iam_resources"), "%s has no iam_resources()" % name
    resources = configured_element.iam_resources()
    assert set(resources) == set(configured_element.get_permissions())
    for action, patterns in resources.items():
        assert patterns, "%s maps %s to no resource" % (name, action)
        for pattern in patterns:
            assert pattern == "*" or pattern.startswith("arn:${Partition}:"), pattern
            assert set(PLACEHOLDER.findall(pattern)) <= {"Partition", "Region", "Account",
                                                         "*", "?", "$"}, pattern


# -- enough: the real custodian, as a role that has only the document, against the sandbox --
BUCKET = "trust-bundles"


def generated(*files):
    """The installed command's document for ``files`` in this account and region. It depends
    only on what the files say, so a worker runs the command once per distinct content (the
    parametrised cases below share the documents their collection generated)."""
    contents = tuple((pathlib.Path(f).suffix, pathlib.Path(f).read_text()) for f in files)
    if contents not in _GENERATED:
        _GENERATED[contents], _ = run_iam(*files, "--region", REGION, "--account", ACCOUNT)
    return json.loads(json.dumps(_GENERATED[contents]))  # a copy: callers may change theirs


_GENERATED = {}


def test_the_audit_runs_under_the_document(sandbox, tmp_path):
    cert = make_cert(sandbox, 5)
    make_rest_stage(cert)
    make_websocket_stage(cert)
    role = assume_role_allowed(generated(ROOT / "policies" / "expiring.yml"))
    found, _ = custodian_run(sandbox, tmp_path, str(ROOT / "policies" / "expiring.yml"),
                             extra=["--assume", role])
    assert [(r["clientCertificateId"], len(r["c7n:stages"])) for r in found[REGION]] == \
        [(cert, 2)]
    assert api_calls(sandbox, outcome="denied") == {}


def test_the_sandbox_refuses_what_the_document_leaves_out(sandbox, tmp_path):
    """The check above means something: without the WebSocket stages the audit is refused."""
    cert = make_cert(sandbox, 5)
    make_websocket_stage(cert)
    doc = generated(ROOT / "policies" / "expiring.yml")
    for s in doc["Statement"]:
        s["Resource"] = [r for r in s["Resource"] if not r.endswith("/apis/*/stages")]
    custodian_run(sandbox, tmp_path, str(ROOT / "policies" / "expiring.yml"),
                  extra=["--assume", assume_role_allowed(doc)], check=False)
    assert api_calls(sandbox, outcome="denied")


def test_a_whole_rotation_runs_under_the_document(sandbox, tmp_path):
    """Successor (created with tags), trust in SSM and S3, switch and redeploy of a REST and a
    WebSocket stage, retirement: one run, nothing refused."""
    sandbox.deploy_interval(0)  # what is checked here is IAM, not the deployment rate
    client("s3").create_bucket(Bucket=BUCKET)
    old = make_cert(sandbox, 10, tags={"team": "payments"})
    api = make_rest_stage(old)
    ws = make_websocket_stage(old)
    policy = write_policies(tmp_path, [{
        "name": "rotate", "resource": "aws.apigw-client-certificate",
        "filters": [{"type": "expiring", "days": 30}],
        "actions": [{"type": "rotate", "switch-after-days": 0, "delete-after-days": 0,
                     "redeploy": True, "publish": [
                         {"type": "ssm", "name": "/trust/{api_id}/{stage_name}"},
                         {"type": "s3", "bucket": BUCKET, "key": "trust/{region}.pem"}]}]}])
    role = assume_role_allowed(generated(policy))
    custodian_run(sandbox, tmp_path, str(policy), extra=["--assume", role])
    assert api_calls(sandbox, outcome="denied") == {}
    assert old not in {c["clientCertificateId"] for c in
                       client("apigateway").get_client_certificates()["items"]}
    assert client("apigateway").get_stage(restApiId=api, stageName="prod").get(
        "clientCertificateId") not in (None, old)
    assert client("apigatewayv2").get_stage(ApiId=ws, StageName="live").get(
        "ClientCertificateId") not in (None, old)


def test_the_rotation_tags_under_the_document_with_both_tag_checks(sandbox, tmp_path):
    """The rotation tags its certificates (its state, the copied tags) as TagResource, which the
    sandbox checks as PUT on /tags/<ARN> and PATCH on the certificate (fact 136). Under the
    generated document it runs; less the PATCH on certificates (the stages' PATCH kept) or less
    the PUT statement, it fails, naming what is missing on which certificate."""
    sandbox.deploy_interval(0)
    path = policy_path(tmp_path, "rotate")
    document = generated(path)
    old, _ = rotation_estate(sandbox)
    custodian_run(sandbox, tmp_path, str(path), extra=["--assume", assume_role_allowed(
        document)])
    assert api_calls(sandbox, outcome="denied") == {}
    assert api_calls(sandbox, "apigateway")["TagResource"] >= 1
    (successor,) = [c for c in client("apigateway").get_client_certificates()["items"]
                    if c.get("description") != "unused"]
    assert successor["tags"]["team"] == "payments"

    less_patch = json.loads(json.dumps(document))
    (patch,) = [s for s in less_patch["Statement"] if "apigateway:PATCH" in s["Action"]]
    certificates = [r for r in patch["Resource"] if r.endswith("/clientcertificates/*")]
    assert certificates and len(patch["Resource"]) > 1  # the stages' PATCH stays
    patch["Resource"] = [r for r in patch["Resource"] if r not in certificates]
    less_put = without(document, "apigateway:PUT")
    on_certificate = "apigateway:PATCH on resource: arn:aws:apigateway:%s::/clientcertificates/" % (
        REGION)
    on_tags = ("apigateway:PUT on resource: arn:aws:apigateway:%s::/tags/arn%%3Aaws%%3Aapigateway"
               "%%3A%s%%3A%%3A%%2Fclientcertificates%%2F" % (REGION, REGION))
    for role, doc, needed in (("less-patch", less_patch, on_certificate),
                              ("less-put", less_put, on_tags)):
        old, _ = rotation_estate(sandbox)
        _, proc = custodian_run(sandbox, tmp_path, str(path), check=False,
                                extra=["--assume", assume_role_allowed(doc, role)])
        assert proc.returncode != 0
        assert needed in proc.stderr, proc.stderr[-3000:]


def rotation_estate(sandbox):
    """One expiring certificate on a REST and a WebSocket stage; a second, unused one; and
    stages on a healthy imported and a healthy private ACM certificate, which every policy of
    this resource reads (ListCertificates, GetCertificate, DescribeCertificate,
    DescribeCertificateAuthority) and none acts on."""
    client("s3").create_bucket(Bucket=BUCKET)
    old = make_cert(sandbox, 10, tags={"team": "payments"})
    make_rest_stage(old)
    make_websocket_stage(old)
    make_rest_stage(make_acm_cert(sandbox, "imported", 300), "imported-api")
    make_rest_stage(make_acm_cert(sandbox, "private", 300), "private-api")
    return old, make_cert(sandbox, 10, description="unused")


ROTATE = {"name": "rotate", "resource": "aws.apigw-client-certificate",
          "filters": [{"type": "expiring", "days": 30}, {"type": "in-use"}],
          "actions": [{"type": "rotate", "switch-after-days": 0, "delete-after-days": 0,
                       "redeploy": True, "publish": [
                           {"type": "ssm", "name": "/trust/{api_id}/{stage_name}"},
                           {"type": "s3", "bucket": BUCKET, "key": "trust/{region}.pem"}]}]}
DELETE = {"name": "delete", "resource": "aws.apigw-client-certificate",
          "filters": [{"type": "in-use", "state": False}], "actions": [{"type": "delete"}]}
POLICIES_UNDER_TEST = {"audit": None, "rotate": ROTATE, "delete": DELETE}


def without(document, action):
    """The document less one action, wherever it stands."""
    doc = json.loads(json.dumps(document))
    for s in doc["Statement"]:
        s["Action"] = [a for a in s["Action"] if a != action]
    doc["Statement"] = [s for s in doc["Statement"] if s["Action"]] or [
        {"Effect": "Allow", "Action": ["sts:GetCallerIdentity"], "Resource": ["*"]}]
    return doc


def policy_path(tmp_path, name):
    if name == "audit":
        return ROOT / "policies" / "expiring.yml"
    return write_policies(tmp_path, [POLICIES_UNDER_TEST[name]], name="%s.yml" % name)


def each_action():
    """(policy, action) for every action of every generated document, known without running:
    the documents depend only on the policies."""
    cases = []
    for name in POLICIES_UNDER_TEST:
        with tempfile.TemporaryDirectory() as tmp:
            doc = generated(policy_path(pathlib.Path(tmp), name))
        for action in sorted({a for s in doc["Statement"] for a in s["Action"]}):
            cases.append((name, action))
    return cases


@pytest.mark.parametrize("name,action", each_action(), ids=lambda v: str(v))
def test_less_any_one_action_the_run_fails_naming_it(sandbox, tmp_path, name, action):
    """Under exactly the generated document the run succeeds (above); under the document less
    one action it fails, and what it prints names that action."""
    sandbox.deploy_interval(0)
    rotation_estate(sandbox)
    path = policy_path(tmp_path, name)
    doc = without(generated(path), action)
    _, proc = custodian_run(sandbox, tmp_path, str(path),
                            extra=["--assume", assume_role_allowed(doc)], check=False)
    if action.startswith(("acm:", "acm-pca:")):
        # A refused ACM read does not stop the audit: what it could not read is reported
        # unknown (never healthy), and the log names the refused action.
        assert action in proc.stderr, proc.stderr[-3000:]
        return
    assert proc.returncode != 0, "%s ran without %s" % (name, action)
    assert action in proc.stderr, proc.stderr[-3000:]


@pytest.mark.parametrize("name", sorted(POLICIES_UNDER_TEST))
def test_under_exactly_the_document_nothing_is_refused(sandbox, tmp_path, name):
    sandbox.deploy_interval(0)
    old, unused = rotation_estate(sandbox)
    path = policy_path(tmp_path, name)
    custodian_run(sandbox, tmp_path, str(path), extra=["--assume", assume_role_allowed(
        generated(path))])
    assert api_calls(sandbox, outcome="denied") == {}
    left = {c["clientCertificateId"] for c in client("apigateway").get_client_certificates()[
        "items"]}
    assert (old in left) == (name != "rotate") and (unused in left) == (name != "delete")


def test_the_iam_page_shows_what_the_command_prints():
    """The IAM page's document for policies/rotate.yml is the command's output, verbatim."""
    text = (ROOT / "docs" / "iam.md").read_text()
    block = text.split("<!-- iam: policies/rotate.yml -->", 1)[1].split("```json\n", 1)[1]
    shown = block.split("```", 1)[0]
    doc, proc = run_iam(ROOT / "policies" / "rotate.yml")
    assert shown == proc.stdout

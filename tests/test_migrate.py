"""The migrate action through the real ``custodian`` against the sandbox: generated certificates
to ACM private certificates in the rotation's order, with what every stage presents verified
against its bundles as a TLS backend would (the presented leaf chains up to a certificate the
bundle holds), after every run."""
import json
import os
import subprocess

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from conftest import (
    ACCOUNT, BIN, REGION, api_calls, client, custodian_run, make_cert, make_rest_stage,
    make_websocket_stage, write_policy)

BUCKET = "trust-bundles"
SSM_NAME = "/apigw/client-certs/{api_id}/{stage_name}"
S3_KEY = "apigw/{api_id}/{stage_name}.pem"
PREDECESSOR = "c7n:rotation:predecessor"
SUCCESSOR = "c7n:rotation:successor"
DOMAIN = "{old_cert_id}.clients.example.internal"


def migrate_policy(ca_arn, switch=3, delete=7, extra=None, publish=None, name="migrate"):
    action = {"type": "migrate", "certificate-authority-arn": ca_arn, "domain-name": DOMAIN,
              "publish": publish or [{"type": "ssm", "name": SSM_NAME},
                                     {"type": "s3", "bucket": BUCKET, "key": S3_KEY}],
              "switch-after-days": switch}
    if delete is not None:
        action["delete-after-days"] = delete
    action.update(extra or {})
    return {"name": name, "resource": "aws.apigw-client-certificate", "actions": [action]}


@pytest.fixture
def estate(sandbox):
    """A root CA and its subordinate (the issuing CA); two generated certificates: one used by
    three REST stages of two APIs and a WebSocket stage, one by one REST stage; an unused one."""
    sandbox.switches(websocket_acm="accept")
    client("s3").create_bucket(Bucket=BUCKET)
    root = sandbox.create_private_ca(REGION, "Example Root CA", account=ACCOUNT)
    sub = sandbox.create_private_ca(REGION, "Example Issuing CA", expires_in_days=1800,
                                    parent_arn=root["arn"], account=ACCOUNT)
    old = make_cert(sandbox, 20, description="old", tags={"team": "payments"})
    api_a = make_rest_stage(old, "a", "prod")
    make_rest_stage(old, "a", "staging", api_id=api_a)
    api_b = make_rest_stage(old, "b", "prod")
    ws = make_websocket_stage(old)
    second = make_cert(sandbox, 20, description="second")
    api_c = make_rest_stage(second, "c", "prod")
    unused = make_cert(sandbox, 20, description="unused")
    return {"ca": sub["arn"], "root": root, "sub": sub, "old": old, "second": second,
            "unused": unused,
            "stages": {(api_a, "prod"): old, (api_a, "staging"): old, (api_b, "prod"): old,
                       (ws, "live"): old, (api_c, "prod"): second},
            "ws": {(ws, "live")}}


# -- what a backend would accept ------------------------------------------------------------
def trusts(bundle, leaf_pem):
    """Whether a trust store holding ``bundle`` accepts ``leaf_pem``: the very certificate (a
    pinned, self-signed generated one), or a chain of signatures, each checked, from the leaf
    to a self-signed certificate in the bundle."""
    store = x509.load_pem_x509_certificates(bundle.encode()) if bundle.strip() else []
    current = x509.load_pem_x509_certificate(leaf_pem.encode())
    if current in store:
        return True
    for _ in range(6):
        issuer = None
        for candidate in store:
            if candidate.subject != current.issuer or candidate == current:
                continue
            try:
                current.verify_directly_issued_by(candidate)
            except (InvalidSignature, ValueError, TypeError):
                continue
            issuer = candidate
            break
        if issuer is None:
            return False
        if issuer.subject == issuer.issuer:
            return True
        current = issuer
    return False


def bundles(api, stage):
    out = []
    try:
        out.append(client("ssm").get_parameter(
            Name=SSM_NAME.format(api_id=api, stage_name=stage))["Parameter"]["Value"])
    except client("ssm").exceptions.ParameterNotFound:
        out.append(None)
    try:
        out.append(client("s3").get_object(Bucket=BUCKET, Key=S3_KEY.format(
            api_id=api, stage_name=stage))["Body"].read().decode())
    except client("s3").exceptions.NoSuchKey:
        out.append(None)
    return out


def generated():
    pages = client("apigateway").get_paginator("get_client_certificates").paginate()
    return {c["clientCertificateId"]: c for p in pages for c in p["items"]}


def private_certificates():
    """{ARN: tags} of the ACM private certificates."""
    acm = client("acm")
    found = {}
    for page in acm.get_paginator("list_certificates").paginate():
        for summary in page["CertificateSummaryList"]:
            arn = summary["CertificateArn"]
            if acm.describe_certificate(CertificateArn=arn)["Certificate"]["Type"] == "PRIVATE":
                found[arn] = {t["Key"]: t["Value"] for t in acm.list_tags_for_certificate(
                    CertificateArn=arn).get("Tags", [])}
    return found


def check_invariants(sandbox, estate):
    """Every stage presents a certificate that exists and that each of its bundles trusts (a
    stage with no bundle yet still presents its old certificate); at most one private
    certificate per old one. Returns {stage: configured id or ARN}."""
    certs, private = generated(), private_certificates()
    predecessors = [tags.get(PREDECESSOR) for tags in private.values()]
    assert len(predecessors) == len(set(predecessors)), "two private certificates of one"
    configured = {}
    for (api, stage), old in estate["stages"].items():
        protocol = "WEBSOCKET" if (api, stage) in estate["ws"] else "REST"
        shown = sandbox.presented_certificate(ACCOUNT, REGION, api, stage, protocol)
        configured[(api, stage)] = shown["configured"]
        presented = shown["certificate_id_or_arn"]
        assert presented in certs or presented in private, "%s/%s presents deleted %s" % (
            api, stage, presented)
        for text in bundles(api, stage):
            if text is None:
                assert presented == old, "%s/%s presents %s unpublished" % (api, stage, presented)
                continue
            assert trusts(text, shown["certificate_pem"]), \
                "%s/%s presents %s, which its bundle does not trust" % (api, stage, presented)
    return configured, private


def successor(private, old):
    (arn,) = [a for a, tags in private.items() if tags.get(PREDECESSOR) == old]
    return arn


def records(tmp_path, name="migrate"):
    path = tmp_path / "out" / name / "action-migrate"
    return {r["clientCertificateId"]: r["c7n:rotation"] for r in json.loads(path.read_text())}


def assert_complete(sandbox, estate):
    configured, private = check_invariants(sandbox, estate)
    certs = generated()
    assert estate["old"] not in certs and estate["second"] not in certs
    assert estate["unused"] in certs  # no stage: not migrated, not deleted
    for (api, stage), old in estate["stages"].items():
        arn = successor(private, old)
        assert configured[(api, stage)] == arn
        for text in bundles(api, stage):  # the old PEM is gone, the CA chain stays
            held = x509.load_pem_x509_certificates(text.encode())
            assert [c.subject.rfc4514_string() for c in held] == [
                "CN=Example Issuing CA", "CN=Example Root CA"]
    assert len(private) == 2
    assert private[successor(private, estate["old"])]["team"] == "payments"
    return private


# -- the tests ----------------------------------------------------------------------------
def test_staged_migration_across_simulated_days(sandbox, estate, tmp_path):
    policy = migrate_policy(estate["ca"], switch=3, delete=7)
    custodian_run(sandbox, tmp_path, policy)  # day 0: private certificates and trust only
    configured, private = check_invariants(sandbox, estate)
    assert set(configured.values()) == {estate["old"], estate["second"]}
    assert len(private) == 2
    arn = successor(private, estate["old"])
    acm = client("acm").describe_certificate(CertificateArn=arn)["Certificate"]
    assert acm["Status"] == "ISSUED" and acm["CertificateAuthorityArn"] == estate["ca"]
    assert acm["DomainName"] == DOMAIN.format(old_cert_id=estate["old"])
    tags = client("apigateway").get_tags(resourceArn="arn:aws:apigateway:%s::/clientcertificates/"
                                         "%s" % (REGION, estate["old"]))["tags"]
    assert tags[SUCCESSOR] == arn
    for (api, stage), old in estate["stages"].items():
        for text in bundles(api, stage):
            assert estate["sub"]["certificate_pem"].strip() in text
            assert estate["root"]["certificate_pem"].strip() in text
            assert generated()[old]["pemEncodedCertificate"].strip() in text
    record = records(tmp_path)[estate["old"]]
    assert record["successor"] == arn and record["waiting"].startswith("switch at ")
    assert records(tmp_path)[estate["unused"]]["skipped"] == "used by no stage"

    sandbox.advance(days=1)
    custodian_run(sandbox, tmp_path, policy, days=1)  # too early to switch
    assert set(check_invariants(sandbox, estate)[0].values()) == {estate["old"],
                                                                   estate["second"]}
    sandbox.advance(days=2)
    custodian_run(sandbox, tmp_path, policy, days=3)  # day 3: switched, old still trusted
    configured, private = check_invariants(sandbox, estate)
    assert set(configured.values()) == set(private)
    assert estate["old"] in generated()
    assert sorted(records(tmp_path)[estate["old"]]["switched"]) == sorted(
        "stage:%s/%s" % s for s, old in estate["stages"].items() if old == estate["old"])

    sandbox.advance(days=7)
    custodian_run(sandbox, tmp_path, policy, days=10)  # day 10: the old ones retired
    private = assert_complete(sandbox, estate)

    # A renewal: same ARN, new serial; every bundle still trusts it with no write and no run.
    before = {s: sandbox.presented_certificate(ACCOUNT, REGION, *s)["certificate_pem"]
              for s in estate["stages"]}
    sandbox.reset_counters()
    for arn in private:
        sandbox.renew_acm_certificate(arn)
    for (api, stage) in estate["stages"]:
        shown = sandbox.presented_certificate(ACCOUNT, REGION, api, stage)
        assert shown["certificate_pem"] != before[(api, stage)]  # the renewed version
        assert all(trusts(text, shown["certificate_pem"]) for text in bundles(api, stage))
    # ... and the migration's next run finds nothing to do: no write of any kind.
    sandbox.advance(days=1)
    sandbox.reset_counters()
    custodian_run(sandbox, tmp_path, policy, days=11)
    writes = {op for op in api_calls(sandbox) if not op.startswith(("Get", "List", "Describe"))}
    assert writes == set(), writes
    found = records(tmp_path)
    assert {i: r["skipped"] for i, r in found.items()} == dict(
        {arn: "an ACM certificate (acm-private): not migrated" for arn in private},
        **{estate["unused"]: "used by no stage"})


def test_negative_control_a_bundle_without_the_chain_is_not_trusted(sandbox, estate):
    """The check above can fail: a bundle with the old PEM only, or the root only (the
    subordinate missing), does not trust a private certificate the subordinate issued."""
    from conftest import make_acm_cert
    arn = make_acm_cert(sandbox, "private", 300, ca_arn=estate["ca"])
    leaf = client("acm").get_certificate(CertificateArn=arn)["Certificate"]
    old_pem = generated()[estate["old"]]["pemEncodedCertificate"]
    assert not trusts(old_pem, leaf)
    assert not trusts(estate["root"]["certificate_pem"], leaf)
    assert trusts(estate["sub"]["certificate_pem"] + estate["root"]["certificate_pem"], leaf)
    assert trusts(old_pem, old_pem)


def test_migration_in_one_run(sandbox, estate, tmp_path):
    custodian_run(sandbox, tmp_path, migrate_policy(estate["ca"], switch=0, delete=0))
    assert_complete(sandbox, estate)
    record = records(tmp_path)[estate["old"]]
    assert record["deleted"] is True and len(record["switched"]) == 4
    assert api_calls(sandbox, "acm")["RequestCertificate"] == 2


def test_two_migrations_started_together_leave_one_each(sandbox, estate, tmp_path):
    policy = migrate_policy(estate["ca"], switch=3, delete=7)
    procs = []
    for n in range(2):
        out = tmp_path / ("out%d" % n)
        path = write_policy(tmp_path, policy, name="p%d.yml" % n)
        procs.append(subprocess.Popen(
            [os.path.join(BIN, "custodian"), "run", "--cache-period", "0", "-s", str(out),
             "--region", REGION, path], env=sandbox.env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    _, private = check_invariants(sandbox, estate)
    assert sorted(tags[PREDECESSOR] for tags in private.values()) == sorted(
        [estate["old"], estate["second"]])


FAULTS = [
    {"operation": "DescribeCertificateAuthority", "service": "acm-pca"},
    {"operation": "GetCertificateAuthorityCertificate", "service": "acm-pca"},
    {"operation": "ListCertificates", "service": "acm"},
    {"operation": "RequestCertificate", "service": "acm"},
    {"operation": "DescribeCertificate", "service": "acm"},
    {"operation": "ListTagsForCertificate", "service": "acm"},
    {"operation": "TagResource"},  # dies between requesting and recording it: found by tag
    {"operation": "PutParameter", "service": "ssm"},
    {"operation": "PutObject", "service": "s3"},
    {"operation": "GetStage", "service": "apigateway"},
    {"operation": "UpdateStage", "target": "staging"},
    {"operation": "UpdateStage", "service": "apigatewayv2"},
    {"operation": "GetStages", "service": "apigateway", "after": 3},  # the retire listing
    {"operation": "DeleteClientCertificate"},
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: "%s-%s-%d" % (
    f.get("service", "apigw"), f["operation"], f.get("after", 0)))
def test_a_fault_on_any_call_then_a_rerun_completes(sandbox, estate, tmp_path, fault):
    sandbox.add_fault(**fault)
    policy = migrate_policy(estate["ca"], switch=0, delete=0)
    _, proc = custodian_run(sandbox, tmp_path, policy, check=False)
    assert proc.returncode != 0, "the fault on %s did not fail the run" % fault["operation"]
    assert "client-certificate:" in proc.stderr
    check_invariants(sandbox, estate)  # no stage on an untrusted or deleted certificate
    sandbox.clear_faults()
    custodian_run(sandbox, tmp_path, policy)
    assert_complete(sandbox, estate)
    # One request per old certificate, ever: a rerun finds what the failed run requested
    # (by the old certificate's tag, or by the ACM tag when that write was lost).
    assert api_calls(sandbox, "acm").get("RequestCertificate", 0) == 2


# -- refused before anything changes ----------------------------------------------------------
def nothing_changed(sandbox, estate):
    calls = api_calls(sandbox)
    for op in ("RequestCertificate", "PutParameter", "PutObject", "UpdateStage",
               "DeleteClientCertificate", "TagResource"):
        assert op not in calls, op
    configured, private = check_invariants(sandbox, estate)
    assert private == {} and configured == estate["stages"]


@pytest.mark.parametrize("case", ["expired", "expires-too-soon", "other-region",
                                  "other-account"])
def test_a_ca_that_cannot_work_is_refused_before_anything_changes(sandbox, estate, tmp_path,
                                                                    case):
    ca = estate["ca"]
    if case == "expired":
        sandbox.age_private_ca(ca, -1)
        expected = "not ACTIVE"
    elif case == "expires-too-soon":  # before the 395 days of the certificate it would issue
        sandbox.age_private_ca(ca, 200)
        expected = "before the private certificate it would issue"
    elif case == "other-region":
        ca = sandbox.create_private_ca("eu-west-1", "Elsewhere", account=ACCOUNT)["arn"]
        expected = "is in eu-west-1, the stages in %s" % REGION
    else:
        ca = sandbox.create_private_ca(REGION, "Theirs", account="210987654321")["arn"]
        expected = "belongs to account 210987654321"
    sandbox.reset_counters()
    _, proc = custodian_run(sandbox, tmp_path, migrate_policy(ca, switch=0, delete=0),
                            check=False)
    assert proc.returncode != 0
    assert expected in proc.stderr
    assert "client-certificate:%s" % estate["old"] in proc.stderr
    assert "client-certificate:%s" % estate["second"] in proc.stderr
    nothing_changed(sandbox, estate)


def test_a_bundle_that_could_not_hold_the_chain_is_refused_first(sandbox, estate, tmp_path):
    """A Standard SSM parameter (4 KB) already nearly full behind one stage of the first
    certificate: that certificate requests nothing and changes nothing; the second migrates."""
    (api, stage) = sorted(s for s, old in estate["stages"].items() if old == estate["old"])[0]
    others = [make_cert(sandbox, 300, description="other %d" % n) for n in range(2)]
    held = [generated()[i]["pemEncodedCertificate"].strip() + "\n"
            for i in [estate["old"]] + others]  # about 3.3 KB: no room for two CAs more
    name = SSM_NAME.format(api_id=api, stage_name=stage)
    client("ssm").put_parameter(Name=name, Type="String", Value="".join(held))
    before = client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
    sandbox.reset_counters()
    _, proc = custodian_run(sandbox, tmp_path, migrate_policy(estate["ca"], switch=0,
                                                              delete=0), check=False)
    assert proc.returncode != 0
    assert "client-certificate:%s" % estate["old"] in proc.stderr
    assert client("ssm").get_parameter(Name=name)["Parameter"]["Value"] == before
    _, private = check_invariants(sandbox, estate)
    assert [tags[PREDECESSOR] for tags in private.values()] == [estate["second"]]
    assert estate["second"] not in generated()  # the other certificate went all the way


@pytest.mark.parametrize("change, expected", [
    ({"domain-name": "{old_cert_id}_x.internal"}, "does not render to a DNS name"),
    ({"domain-name": "{cert}.internal"}, "unknown template field"),
    ({"publish": [{"type": "ssm", "name": "/trust/{cert_id}"}]}, "uses {cert_id}"),
    ({"certificate-authority-arn": "arn:aws:acm:us-east-1:123456789012:certificate/x"},
     "does not match"),
])
def test_bad_configuration_is_refused_at_load(sandbox, tmp_path, change, expected):
    policy = migrate_policy("arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/"
                            "11111111-2222-3333-4444-555555555555")
    policy["actions"][0].update(change)
    proc = subprocess.run([os.path.join(BIN, "custodian"), "validate",
                           write_policy(tmp_path, policy)], env=sandbox.env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert expected in proc.stderr + proc.stdout


# -- the shipped policy, and its IAM ----------------------------------------------------------
SHIPPED_CA = ("arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/"
              "11111111-2222-3333-4444-555555555555")


def shipped(tmp_path, ca_arn):
    """policies/migrate.yml as shipped, but for the CA ARN, which every user must set."""
    import pathlib
    text = (pathlib.Path(__file__).resolve().parents[1] / "policies" / "migrate.yml").read_text()
    assert SHIPPED_CA in text
    path = tmp_path / "migrate.yml"
    path.write_text(text.replace(SHIPPED_CA, ca_arn))
    return str(path)


def shipped_estate(sandbox):
    client("s3").create_bucket(Bucket="my-trust-bundles")
    ca = sandbox.create_private_ca(REGION, "Shipped Root CA", account=ACCOUNT)["arn"]
    old = make_cert(sandbox, 20, description="shipped", tags={"team": "payments"})
    api = make_rest_stage(old, "shipped", "prod")
    return ca, old, api


def test_the_shipped_migrate_policy_under_its_generated_iam(sandbox, tmp_path):
    """policies/migrate.yml staged over ten days as a role that has nothing but what
    ``c7n-apigw-certs iam`` prints for it; nothing refused; the stage ends on the private
    certificate, its bundle holding the CA only."""
    from conftest import assume_role_allowed
    from test_iam import generated as document
    ca, old, api = shipped_estate(sandbox)
    path = shipped(tmp_path, ca)
    role = ["--assume", assume_role_allowed(document(path))]
    custodian_run(sandbox, tmp_path, path, extra=role)
    sandbox.advance(days=3)
    custodian_run(sandbox, tmp_path, path, extra=role, days=3)
    sandbox.advance(days=7)
    custodian_run(sandbox, tmp_path, path, extra=role, days=10)
    (arn,) = private_certificates()
    assert client("apigateway").get_stage(restApiId=api, stageName="prod")[
        "clientCertificateId"] == arn
    assert old not in generated()
    value = client("ssm").get_parameter(Name="/apigw/client-certs/%s/prod" % api)[
        "Parameter"]["Value"]
    leaf = sandbox.presented_certificate(ACCOUNT, REGION, api, "prod")["certificate_pem"]
    assert trusts(value, leaf) and len(x509.load_pem_x509_certificates(value.encode())) == 1
    assert api_calls(sandbox, outcome="denied") == {}


def migration_actions():
    """The actions of the shipped policy's generated document (with any CA ARN: the document
    names it, the actions are the same)."""
    import pathlib
    import tempfile

    from test_iam import run_iam
    with tempfile.TemporaryDirectory() as tmp:
        doc, _ = run_iam(shipped(pathlib.Path(tmp), SHIPPED_CA))
    # acm:GetCertificate is the resource's read of imported certificates (the audit's, fact
    # 106): this estate has none, so no run here can need it.
    return sorted({a for s in doc["Statement"] for a in s["Action"]} - {"acm:GetCertificate"})


@pytest.mark.parametrize("action", migration_actions())
def test_less_any_one_action_the_migration_fails_naming_it(sandbox, tmp_path, action):
    """One run that does everything (switch and delete at 0 days) under the document less
    one action: it fails, and what it prints names the action."""
    from conftest import assume_role_allowed
    from test_iam import generated as document
    from test_iam import without
    ca, old, api = shipped_estate(sandbox)
    path = shipped(tmp_path, ca)
    text = open(path).read().replace("switch-after-days: 3", "switch-after-days: 0").replace(
        "delete-after-days: 7", "delete-after-days: 0")
    open(path, "w").write(text)
    doc = without(document(path), action)
    _, proc = custodian_run(sandbox, tmp_path, path,
                            extra=["--assume", assume_role_allowed(doc)], check=False)
    assert proc.returncode != 0, "the migration ran without %s" % action
    assert action in proc.stderr, proc.stderr[-3000:]

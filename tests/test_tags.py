"""The tag workflow (``tag``, ``remove-tag``, ``mark-for-op``, ``marked-for-op``) through the real
``custodian`` against the sandbox, the tags read back with boto3."""
import datetime
import pathlib
import re

import pytest
from c7n.config import Config
from c7n.exceptions import PolicyValidationError
from c7n.policy import Policy
from c7n.resources import load_resources
from conftest import (
    ACCOUNT, REGION, api_calls, assume_role_allowed, client, custodian_run, make_cert,
    make_rest_stage, write_policy)

from c7n_apigw_certs import iam
from c7n_apigw_certs.audit.resource import certificate_arn

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "policies" / "tag-workflow.yml"
RESOURCE = "aws.apigw-client-certificate"
CLEANUP = "apigw-cert-cleanup"


def tags_of(cert_id):
    """The certificate's tags as API Gateway answers them now, or None once it is gone."""
    found = {c["clientCertificateId"]: c for c in
             client("apigateway").get_client_certificates(limit=500)["items"]}
    if cert_id not in found:
        return None
    return found[cert_id].get("tags", {})


def policy(actions, filters=(), name="tags"):
    return {"name": name, "resource": RESOURCE, "filters": list(filters), "actions": actions}


def only(*cert_ids):
    """A filter that selects exactly these certificates."""
    return {"type": "value", "key": "clientCertificateId", "op": "in", "value": list(cert_ids)}


def run_frozen(control, tmp_path, data, at, check=True):
    """``custodian run`` with its clock frozen at ``at`` (the sandbox's set there too)."""
    control.set_now(at.isoformat(), tick=False)
    return custodian_run(control, tmp_path, data, check=check, at=at)


# -- tag, remove-tag --------------------------------------------------------------------------
def test_tag_adds_to_what_is_there(sandbox, tmp_path):
    one = make_cert(sandbox, 100, tags={"team": "payments"})
    two = make_cert(sandbox, 100)
    other = make_cert(sandbox, 100, tags={"team": "orders"})
    custodian_run(sandbox, tmp_path, policy(
        [{"type": "tag", "tags": {"owner": "platform", "region-seen": "{region}"}}],
        [only(one, two)]))
    assert tags_of(one) == {"team": "payments", "owner": "platform", "region-seen": REGION}
    assert tags_of(two) == {"owner": "platform", "region-seen": REGION}
    assert tags_of(other) == {"team": "orders"}
    # One TagResource per certificate, on its ARN.
    assert api_calls(sandbox, "apigateway")["TagResource"] == 2
    # c7n's tag filters see them on the next run (the listing's Tags).
    found, _ = custodian_run(sandbox, tmp_path, {
        "name": "owned", "resource": RESOURCE, "filters": [{"tag:owner": "platform"}]})
    assert sorted(r["clientCertificateId"] for r in found[REGION]) == sorted([one, two])


def test_tag_key_and_value_and_a_value_from_the_certificate(sandbox, tmp_path):
    cert = make_cert(sandbox, 10, description="orders-prod")
    custodian_run(sandbox, tmp_path, policy(
        [{"type": "tag", "key": "what", "value": "client certificate"},
         {"type": "tag", "tags": {"certificate-name": {"type": "resource",
                                                       "key": "description"}}}]))
    assert tags_of(cert) == {"what": "client certificate", "certificate-name": "orders-prod"}


def test_remove_tag(sandbox, tmp_path):
    cert = make_cert(sandbox, 100, tags={"a": "1", "b": "2", "keep": "3"})
    other = make_cert(sandbox, 100, tags={"a": "1"})
    custodian_run(sandbox, tmp_path, policy(
        [{"type": "remove-tag", "tags": ["a", "b", "never-there"]}], [only(cert)]))
    assert tags_of(cert) == {"keep": "3"}
    assert tags_of(other) == {"a": "1"}
    assert api_calls(sandbox, "apigateway")["UntagResource"] == 1


# -- mark-for-op, marked-for-op -----------------------------------------------------------
AT = datetime.datetime(2030, 6, 15, 12, 0, tzinfo=datetime.timezone.utc)
MARK = policy([{"type": "mark-for-op", "tag": CLEANUP, "op": "delete", "days": 14}],
              [{"type": "in-use", "state": False}], name="mark")
DELETE_MARKED = policy([{"type": "delete"}],
                       [{"type": "marked-for-op", "tag": CLEANUP, "op": "delete"}],
                       name="delete-marked")


def test_mark_then_act_on_the_day_and_not_before(sandbox, tmp_path):
    """Both clocks frozen: marked at noon on June 15th for 14 days, the mark is due from
    midnight (UTC) of June 29th: one second before, nothing; at midnight, the delete."""
    sandbox.set_now(AT.isoformat(), tick=False)
    unused = make_cert(sandbox, 200)
    used = make_cert(sandbox, 200)
    make_rest_stage(used)
    run_frozen(sandbox, tmp_path, MARK, AT)
    assert tags_of(unused) == {
        CLEANUP: "Resource does not meet policy: delete@2030/06/29"}
    assert tags_of(used) == {}

    found, _ = run_frozen(sandbox, tmp_path, DELETE_MARKED,
                          datetime.datetime(2030, 6, 28, 23, 59, 59, tzinfo=datetime.timezone.utc))
    assert found.get(REGION, []) == []
    assert tags_of(unused) is not None

    found, _ = run_frozen(sandbox, tmp_path, DELETE_MARKED,
                          datetime.datetime(2030, 6, 29, tzinfo=datetime.timezone.utc))
    assert [r["clientCertificateId"] for r in found[REGION]] == [unused]
    assert tags_of(unused) is None
    assert tags_of(used) == {}


def test_mark_moves_with_the_clocks(sandbox, tmp_path):
    """The same workflow on ticking clocks moved together (the sandbox's and custodian's)."""
    unused = make_cert(sandbox, 200)
    custodian_run(sandbox, tmp_path, MARK)
    value = tags_of(unused)[CLEANUP]
    assert re.fullmatch(r"Resource does not meet policy: delete@\d{4}/\d\d/\d\d", value)
    found, _ = custodian_run(sandbox, tmp_path, DELETE_MARKED)
    assert found.get(REGION, []) == [] and tags_of(unused) is not None
    sandbox.advance(days=14)
    found, _ = custodian_run(sandbox, tmp_path, DELETE_MARKED, days=14)
    assert [r["clientCertificateId"] for r in found[REGION]] == [unused]
    assert tags_of(unused) is None


def test_marked_for_op_needs_its_op(sandbox, tmp_path):
    """A mark for another op is not selected; the date alone is not enough."""
    sandbox.set_now(AT.isoformat(), tick=False)
    cert = make_cert(sandbox, 200)
    run_frozen(sandbox, tmp_path, policy(
        [{"type": "mark-for-op", "tag": CLEANUP, "op": "rotate", "days": 1}]), AT)
    found, _ = run_frozen(sandbox, tmp_path, DELETE_MARKED, AT + datetime.timedelta(days=30))
    assert found.get(REGION, []) == [] and tags_of(cert) is not None


# -- failures stay with their certificate ---------------------------------------------------
def mark_dates(days):
    """The date a mark made ``days`` ahead in the last ten minutes carries (one, or two when a
    run crossed midnight UTC)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {(now + datetime.timedelta(days=days, seconds=s)).strftime("%Y/%m/%d")
            for s in (-600, 0)}


@pytest.mark.parametrize("action,operation", [
    ({"type": "tag", "tags": {"owner": "platform"}}, "TagResource"),
    ({"type": "mark-for-op", "tag": CLEANUP, "op": "delete", "days": 3}, "TagResource"),
    ({"type": "remove-tag", "tags": ["owner"]}, "UntagResource"),
], ids=lambda v: v if isinstance(v, str) else v["type"])
def test_a_failure_on_one_certificate_leaves_the_others_done(sandbox, tmp_path, action,
                                                             operation):
    first, failing, last = (make_cert(sandbox, 100, tags={"owner": "someone"})
                            for _ in range(3))
    sandbox.add_fault(operation, service="apigateway", target=failing,
                      message="injected refusal")
    _, proc = custodian_run(sandbox, tmp_path, policy([action]), check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "client-certificate:%s %s failed: BadRequestException: injected refusal" % (
        failing, action["type"]) in proc.stderr
    assert "failed for 1 certificate(s)" in proc.stderr
    assert tags_of(failing) == {"owner": "someone"}
    for cert in (first, last):
        tags = tags_of(cert)
        if action["type"] == "tag":
            assert tags == {"owner": "platform"}
        elif action["type"] == "remove-tag":
            assert tags == {}
        else:
            assert tags[CLEANUP].endswith(tuple("delete@%s" % d for d in mark_dates(3)))
    assert sandbox.clear_faults() == {"faults": []}  # the fault was met


def test_fifty_tags_refused_by_api_gateway(sandbox, tmp_path):
    """A certificate with 50 tags takes no more (fact 35): that one is logged, the other
    tagged."""
    full = make_cert(sandbox, 100, tags={"k%02d" % i: "v" for i in range(50)})
    room = make_cert(sandbox, 100)
    _, proc = custodian_run(sandbox, tmp_path, policy([{"type": "tag", "key": "new",
                                                        "value": "x"}]), check=False)
    assert proc.returncode == 2
    assert re.search(r"client-certificate:%s tag failed: BadRequestException: .*50" % full,
                     proc.stderr)
    assert "new" not in tags_of(full) and len(tags_of(full)) == 50
    assert tags_of(room) == {"new": "x"}


def test_a_certificate_gone_since_the_listing_is_skipped(sandbox, tmp_path):
    """Deleted between the listing and the call: API Gateway's NotFoundException is logged as
    skipped, not a failure (armed as a fault: the sandbox cannot delete mid-run)."""
    gone, kept = make_cert(sandbox, 100), make_cert(sandbox, 100)
    sandbox.add_fault("TagResource", service="apigateway", target=gone,
                      code="NotFoundException", status=404, message="Invalid certificate")
    _, proc = custodian_run(sandbox, tmp_path, policy([{"type": "tag", "key": "a",
                                                        "value": "b"}]))
    assert "client-certificate:%s is gone: tag skipped" % gone in proc.stderr
    assert tags_of(kept) == {"a": "b"}


# -- keys refused at validation ----------------------------------------------------------
def load(actions):
    load_resources((RESOURCE,))
    return Policy(policy(actions), Config.empty(region=REGION, account_id=ACCOUNT))


@pytest.mark.parametrize("action,named", [
    ({"type": "tag", "tags": {"aws:owner": "me"}}, "'aws:owner'"),
    ({"type": "tag", "tags": {"AWS:Owner": "me"}}, "'AWS:Owner'"),
    ({"type": "tag", "key": "Aws:x", "value": "y"}, "'Aws:x'"),
    ({"type": "mark-for-op", "tag": "aws:cleanup", "op": "delete", "days": 1}, "'aws:cleanup'"),
], ids=["tags", "upper-case", "key", "mark-for-op"])
def test_aws_keys_refused_at_validation(action, named):
    with pytest.raises(PolicyValidationError, match="policy:tags %s: tag key %s: API Gateway "
                       "refuses keys that start with 'aws:'" % (action["type"], named)):
        load([action]).validate()


@pytest.mark.parametrize("action", [
    {"type": "remove-tag", "tags": ["c7n:rotation:successor"]},
    {"type": "remove-tag", "tags": ["team", "c7n:rotation:predecessor"]},
    {"type": "tag", "tags": {"c7n:rotation:retire-after": "2020-01-01T00:00:00Z"}},
    {"type": "mark-for-op", "tag": "c7n:rotation:switched-at", "op": "delete"},
], ids=lambda a: a["type"])
def test_rotation_state_refused_at_validation(action):
    with pytest.raises(PolicyValidationError, match="is the state of a rotation "
                       r"\(c7n:rotation:\*\), which only the rotate action may change"):
        load([action]).validate()


def test_other_c7n_keys_and_long_keys():
    load([{"type": "remove-tag", "tags": ["c7n:other", "maid_status"]}]).validate()
    with pytest.raises(PolicyValidationError, match="longer than API Gateway's 128"):
        load([{"type": "mark-for-op", "tag": "k" * 129, "op": "delete"}]).validate()


def test_tag_with_nothing_to_write_is_refused():
    with pytest.raises(PolicyValidationError, match="nothing to write"):
        load([{"type": "tag"}]).validate()


def test_an_aws_key_stops_the_run_before_any_call(sandbox, tmp_path):
    cert = make_cert(sandbox, 100)
    sandbox.reset_counters()
    _, proc = custodian_run(sandbox, tmp_path, policy(
        [{"type": "tag", "tags": {"aws:owner": "me"}}]), check=False)
    assert proc.returncode != 0
    assert "API Gateway refuses keys that start with 'aws:'" in proc.stderr
    assert api_calls(sandbox, "apigateway") == {}
    assert tags_of(cert) == {}


# -- the shipped policy file ---------------------------------------------------------------
def test_the_workflow_policy_file(sandbox, tmp_path):
    unused = make_cert(sandbox, 200, description="unused")
    revived = make_cert(sandbox, 200, description="revived")
    used = make_cert(sandbox, 200, description="used")
    make_rest_stage(used, "orders")
    expiring = make_cert(sandbox, 10, description="expiring")
    make_rest_stage(expiring, "payments")
    successor = make_cert(sandbox, 365, description="successor",
                          tags={"c7n:rotation:predecessor": expiring})
    owned = make_cert(sandbox, 200, description="owned")
    inherited = make_cert(sandbox, 365, description="inherited",
                          tags={"certificate-expires": "2026-01-01T00:00:00+00:00"})
    make_rest_stage(inherited, "shipping")  # a successor that rotate switched the stage to
    sandbox.tag_as_stack(certificate_arn(REGION, owned), "arn:aws:cloudformation:us-east-1:"
                         "123456789012:stack/orders/1", "OrdersCert")

    found, _ = custodian_run(sandbox, tmp_path, str(WORKFLOW))
    marked = {c for c in (unused, revived, used, expiring, successor, owned)
              if CLEANUP in tags_of(c)}
    assert marked == {unused, revived}
    assert re.fullmatch(r"unused client certificate to be deleted: delete@\d{4}/\d\d/\d\d",
                        tags_of(unused)[CLEANUP])
    expires = {r["clientCertificateId"]: r["c7n:expires"] for r in found[REGION]
               if "c7n:expires" in r}
    assert set(expires) == {expiring}
    assert tags_of(expiring) == {"certificate-expires": expires[expiring]}
    assert tags_of(inherited) == {}

    # A stage takes the revived certificate up again before the day comes.
    make_rest_stage(revived, "inventory")
    sandbox.advance(days=14)
    custodian_run(sandbox, tmp_path, str(WORKFLOW), days=14)
    assert tags_of(unused) is None
    assert tags_of(revived) == {}
    for cert in (used, successor, owned):
        assert tags_of(cert) is not None and CLEANUP not in tags_of(cert)


# -- IAM: the generated document is enough, and each action in it is needed -----------------
ROLE = "c7n-apigw-certs-tags"


def workflow_document():
    return iam.policy_document([str(WORKFLOW)], region=REGION, account=ACCOUNT)


def test_the_workflow_runs_under_its_generated_document(sandbox, tmp_path):
    """Mark, tag, unmark and delete as a role that has exactly the document: nothing refused.
    The tags are on the certificate's Tags resource, ``/tags/`` + its ARN URL-encoded."""
    unused = make_cert(sandbox, 200)
    revived = make_cert(sandbox, 200)
    expiring = make_cert(sandbox, 10)
    make_rest_stage(expiring)
    role = assume_role_allowed(workflow_document(), ROLE)
    custodian_run(sandbox, tmp_path, str(WORKFLOW), extra=["--assume", role])
    assert CLEANUP in tags_of(unused) and "certificate-expires" in tags_of(expiring)
    make_rest_stage(revived)
    sandbox.advance(days=14)
    custodian_run(sandbox, tmp_path, str(WORKFLOW), extra=["--assume", role], days=14)
    assert tags_of(unused) is None and tags_of(revived) == {}
    assert api_calls(sandbox, outcome="denied") == {}
    assert {"TagResource", "UntagResource", "DeleteClientCertificate"} <= set(
        api_calls(sandbox, "apigateway"))


@pytest.mark.parametrize("action,verb", [
    ({"type": "tag", "key": "owner", "value": "platform"}, "apigateway:PUT"),
    ({"type": "tag", "key": "owner", "value": "platform"}, "apigateway:PATCH"),
    ({"type": "remove-tag", "tags": ["owner"]}, "apigateway:DELETE"),
], ids=lambda v: v if isinstance(v, str) else v["type"])
def test_without_its_verb_the_action_is_refused(sandbox, tmp_path, action, verb):
    cert = make_cert(sandbox, 100, tags={"owner": "someone"})
    path = write_policy(tmp_path, policy([action]), name="one.yml")
    doc = iam.policy_document([path], region=REGION, account=ACCOUNT)
    assert verb in {a for s in doc["Statement"] for a in s["Action"]}
    for s in doc["Statement"]:
        s["Action"] = [a for a in s["Action"] if a != verb]
    doc["Statement"] = [s for s in doc["Statement"] if s["Action"]]
    _, proc = custodian_run(sandbox, tmp_path, path, check=False,
                            extra=["--assume", assume_role_allowed(doc, ROLE)])
    assert proc.returncode == 2
    assert "client-certificate:%s %s failed: AccessDeniedException" % (
        cert, action["type"]) in proc.stderr
    assert verb in proc.stderr
    assert tags_of(cert) == {"owner": "someone"}

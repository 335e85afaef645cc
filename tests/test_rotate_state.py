"""Rotation state that no later run can misread (issue 15), through the real ``custodian``
against the sandbox, several certificates at once, the safety invariants checked after every
run (``Estate.check``: every stage presents a certificate that exists and that every bundle
behind it holds)."""
import subprocess
import threading
import time

import pytest

from conftest import (
    ACCOUNT, REGION, client, custodian_run, make_cert, make_rest_stage, write_policy)
from test_rotate_safety import (
    BUCKET, PER_STAGE, S3_KEY, SSM_NAME, Estate, certificates, read_bundle, records, rotate,
    successors_of)

from c7n_apigw_certs.rotation import plan
from c7n_apigw_certs.sandbox import timeshift

UNDEPLOYED = "c7n:rotation:undeployed"
SWITCHED_STAGES = "c7n:rotation:switched"
SSM_ONLY = [{"type": "ssm", "name": SSM_NAME}]
S3_ONLY = [{"type": "s3", "bucket": BUCKET, "key": S3_KEY}]


@pytest.fixture
def estate(sandbox):
    return Estate(sandbox)


def rest_stage(estate, old):
    (stage,) = [s for s in estate.stages[old] if s[0] == "REST"]
    return stage


def tags(cert_id):
    return certificates()[cert_id].get("tags", {})


# -- 1. an undeployed stage is honoured by a policy without redeploy ------------------------
def test_a_policy_without_redeploy_keeps_an_undeployed_stages_certificate(sandbox, estate,
                                                                           tmp_path):
    """redeploy: true switches all three certificates' stages; one CreateDeployment fails. A
    policy without redeploy then retires the other two but not that one: its old certificate
    stays, and in its bundles, and the run fails saying why; a redeploying run finishes it."""
    first, second, third = estate.olds
    sandbox.switches(needs_deployment=True)
    _, api, _ = rest_stage(estate, second)
    sandbox.add_fault("CreateDeployment", service="apigateway", target=api)
    _, proc = custodian_run(sandbox, tmp_path, rotate(delete=0, redeploy=True), check=False)
    assert proc.returncode != 0
    assert tags(second)[UNDEPLOYED] == "%s/prod" % api
    estate.check()

    _, proc = custodian_run(sandbox, tmp_path, rotate(delete=0), check=False)
    assert proc.returncode != 0
    assert "this policy does not redeploy" in proc.stderr and "%s/prod" % api in proc.stderr
    assert second in certificates()  # kept: its stage still presents it
    assert records(tmp_path)[second]["undeployed"] == "%s/prod" % api
    state = estate.check()  # the bundles still hold it: the stage presents it
    assert sandbox.presented(ACCOUNT, REGION, api, "prod")["presented"] == second
    for old in (first, third):
        estate.assert_done(old, state)

    custodian_run(sandbox, tmp_path, rotate(delete=0, redeploy=True))
    state = estate.check()
    for old in estate.olds:
        estate.assert_done(old, state)


# -- 2. trust per destination --------------------------------------------------------------
@pytest.mark.parametrize("order", ["ssm-first", "s3-first"])
def test_two_policies_with_different_destinations_and_gates_converge(sandbox, estate, tmp_path,
                                                                     order):
    """Policy A publishes to SSM and waits 3 days; policy B to S3 and waits 5. Whichever runs
    first, no stage switches before both destinations hold the successor and both gates have
    passed, and at the end every bundle of both holds what the stages present."""
    a = rotate(switch=3, delete=None, publish=SSM_ONLY, name="a")
    b = rotate(switch=5, delete=None, publish=S3_ONLY, name="b")
    both = [a, b] if order == "ssm-first" else [b, a]
    for policy in both:
        custodian_run(sandbox, tmp_path, policy)
        estate.check()
    sandbox.advance(days=3)
    for policy in both:  # A's own gate has passed, B's has not: nobody switches
        custodian_run(sandbox, tmp_path, policy, days=3)
        state = estate.check()
        for old in estate.olds:
            assert set(state[old][1]) == {old}, (policy["name"], state[old])
    assert records(tmp_path, "a" if both[-1] is a else "b")[estate.olds[0]][
        "waiting"].startswith("switch at ")
    sandbox.advance(days=2)
    for policy in both:
        custodian_run(sandbox, tmp_path, policy, days=5)
        state = estate.check()
    for old in estate.olds:
        new = state[old][0]
        assert new != old and set(state[old][1]) == {new}
        pem = certificates()[new]["pemEncodedCertificate"].strip()
        for stage in estate.stages[old]:
            for place in estate.places(stage):
                assert pem in read_bundle(place), place


def test_a_destination_added_mid_rotation_gets_its_own_gate(sandbox, estate, tmp_path):
    """The policy gains an S3 destination on day 2: it is published then, and the stages wait
    for its own 3 days (day 5), not the first destination's (day 3)."""
    custodian_run(sandbox, tmp_path, rotate(switch=3, delete=None, publish=SSM_ONLY))
    sandbox.advance(days=2)
    custodian_run(sandbox, tmp_path, rotate(switch=3, delete=None), days=2)  # SSM and S3 now
    estate.check()
    sandbox.advance(days=1)
    custodian_run(sandbox, tmp_path, rotate(switch=3, delete=None), days=3)
    state = estate.check()
    assert all(set(state[old][1]) == {old} for old in estate.olds)
    assert records(tmp_path)[estate.olds[0]]["waiting"].startswith("switch at ")
    sandbox.advance(days=2)
    custodian_run(sandbox, tmp_path, rotate(switch=3, delete=None), days=5)
    state = estate.check()
    assert all(set(state[old][1]) == {state[old][0]} != {old} for old in estate.olds)


# -- 3. expiry beats every gate ------------------------------------------------------------
def test_a_late_stage_is_reported_before_expiry_and_switched_at_once(sandbox, estate, tmp_path):
    """Day 3 the stages switch; day 8 a stage is added on the old certificate, which expires on
    day 10, so its gate (day 11) is past the expiry. That run fails naming the stage and the
    date, and publishes its trust; the next run (day 9) switches it at once. The other
    certificates are untouched by its failure."""
    policy = rotate(switch=3, delete=None)
    custodian_run(sandbox, tmp_path, policy)
    sandbox.advance(days=3)
    custodian_run(sandbox, tmp_path, policy, days=3)
    first = estate.olds[0]
    late_api = make_rest_stage(first, "late", "prod")
    estate.stages[first].append(("REST", late_api, "prod"))
    sandbox.advance(days=5)
    _, proc = custodian_run(sandbox, tmp_path, policy, check=False, days=8)
    assert proc.returncode != 0
    expires = plan.stamp(certificates()[first]["expirationDate"])
    assert "expires at %s" % expires in proc.stderr
    assert "stage:%s/prod" % late_api in proc.stderr.split("expires at")[-1]
    record = records(tmp_path)[first]
    assert record["expiring"]["not-switched"] == ["stage:%s/prod" % late_api]
    state = estate.check()
    assert estate.current(("REST", late_api, "prod")) == first
    for old in estate.olds[1:]:
        assert not records(tmp_path)[old].get("errors")

    sandbox.advance(days=1)
    _, proc = custodian_run(sandbox, tmp_path, policy, check=False, days=9)
    assert proc.returncode != 0 and "switched at once: stage:%s/prod" % late_api in proc.stderr
    state = estate.check()
    assert estate.current(("REST", late_api, "prod")) == state[first][0] != first

    custodian_run(sandbox, tmp_path, policy, days=9)  # nothing left on it: quiet again
    estate.check()


# -- 4. state written as it happens ----------------------------------------------------------
def test_a_lost_tag_write_cannot_shorten_a_late_stages_gate(sandbox, estate, tmp_path):
    """Day 4, after the switch: a late stage is found and the write of its gate fails. Its
    trust is not published either (the gate is written first), so the next run (day 5)
    publishes it then, and it switches 3 days after that, never at once."""
    policy = rotate(switch=3, delete=None)
    custodian_run(sandbox, tmp_path, policy)
    sandbox.advance(days=3)
    custodian_run(sandbox, tmp_path, policy, days=3)
    first = estate.olds[0]
    late_api = make_rest_stage(first, "late", "prod")
    estate.stages[first].append(("REST", late_api, "prod"))
    sandbox.advance(days=1)
    sandbox.add_fault("TagResource", service="apigateway", target=first, count=1)
    _, proc = custodian_run(sandbox, tmp_path, policy, check=False, days=4)
    assert proc.returncode != 0 and "client-certificate:%s tag:" % first in proc.stderr
    assert read_bundle(("ssm", SSM_NAME.format(api_id=late_api, stage_name="prod"))) is None
    assert plan.LATE not in tags(first)
    estate.check()

    sandbox.advance(days=1)
    custodian_run(sandbox, tmp_path, policy, days=5)
    assert estate.current(("REST", late_api, "prod")) == first  # not after 1 day
    late = plan.tag_time(tags(first), plan.LATE)
    assert records(tmp_path)[first]["waiting"] == "switch at %s" % plan.stamp(late + plan.days(3))
    assert late > plan.tag_time(tags(first), plan.SWITCHED)
    estate.check()
    sandbox.advance(days=3)
    custodian_run(sandbox, tmp_path, policy, days=8)
    state = estate.check()
    assert estate.current(("REST", late_api, "prod")) == state[first][0] != first


def test_a_revert_on_a_twenty_stage_certificate_is_reported_not_switched_again(sandbox,
                                                                                tmp_path):
    """Twenty stages: the list of those switched outgrows a tag value and is kept as digests.
    A stage put back on the old certificate is reported, and left there."""
    client("s3").create_bucket(Bucket=BUCKET)
    old = make_cert(sandbox, 10, description="big")
    other = make_cert(sandbox, 10, description="small")
    other_api = make_rest_stage(other, "small", "prod")
    apis = [make_rest_stage(old, "api-%02d" % i, "prod") for i in range(20)]
    policy = rotate(switch=0, delete=None, publish=SSM_ONLY)
    custodian_run(sandbox, tmp_path, policy)
    value = tags(old)[SWITCHED_STAGES]
    assert value.startswith("#") and len(value) <= 256  # 20 labels would be 299 characters
    apigw = client("apigateway")
    new = successors_of(certificates(), old)[0]
    apigw.update_stage(restApiId=apis[7], stageName="prod", patchOperations=[
        {"op": "replace", "path": "/clientCertificateId", "value": old}])
    _, proc = custodian_run(sandbox, tmp_path, policy, check=False)
    assert proc.returncode != 0 and "moved back" in proc.stderr
    assert records(tmp_path)[old]["reverted"] == ["stage:%s/prod" % apis[7]]
    on = {api: apigw.get_stage(restApiId=api, stageName="prod")["clientCertificateId"]
          for api in apis}
    assert on[apis[7]] == old  # not switched again
    assert {c for a, c in on.items() if a != apis[7]} == {new}
    assert apigw.get_stage(restApiId=other_api, stageName="prod")["clientCertificateId"] == \
        successors_of(certificates(), other)[0]


def in_listing_order(apis):
    """REST API ids in the order the rotation comes to their stages: ``GetRestApis``'s."""
    listed = [api["id"] for api in client("apigateway").get_rest_apis(limit=500)["items"]]
    return sorted(apis, key=listed.index)


def test_a_failed_deployment_leaves_the_later_stages_for_the_next_run(sandbox, tmp_path):
    """The certificate stops at the first stage whose deployment fails: that stage is switched
    and listed undeployed, the stages after it stay on the old certificate, unlisted, and a
    later run switches them. (What made the two-runs test below fail when the failing stage was
    not the last one listed: no record was lost, the stages after it were never switched.)"""
    client("s3").create_bucket(Bucket=BUCKET)
    old = make_cert(sandbox, 10, description="c")
    apis = in_listing_order([make_rest_stage(old, "api-%d" % j, "prod") for j in range(3)])
    sandbox.switches(needs_deployment=True, deploy_interval=0)
    sandbox.add_fault("CreateDeployment", service="apigateway", target=apis[0], count=1)
    policy = rotate(switch=0, delete=None, redeploy=True, publish=SSM_ONLY)
    _, proc = custodian_run(sandbox, tmp_path, policy, check=False)
    assert proc.returncode != 0 and "deploy stage:%s/prod" % apis[0] in proc.stderr
    (new,) = successors_of(certificates(), old)
    apigw, found = client("apigateway"), tags(old)
    on = {api: apigw.get_stage(restApiId=api, stageName="prod")["clientCertificateId"]
          for api in apis}
    assert on == {apis[0]: new, apis[1]: old, apis[2]: old}
    assert plan.labels(found, SWITCHED_STAGES) == ["%s/prod" % apis[0]]
    assert plan.labels(found, UNDEPLOYED) == ["%s/prod" % apis[0]]
    custodian_run(sandbox, tmp_path, policy)
    found = tags(old)
    for api in apis:
        assert apigw.get_stage(restApiId=api, stageName="prod")["clientCertificateId"] == new
        assert plan.has_label(found, SWITCHED_STAGES, "%s/prod" % api)
        assert sandbox.presented(ACCOUNT, REGION, api, "prod")["presented"] == new
    assert plan.labels(found, UNDEPLOYED) == []


def test_two_runs_at_once_leave_every_record_intact(sandbox, tmp_path):
    """Two ``custodian run`` processes at once, redeploying; deployments of two stages always
    fail. Whichever run switched a stage, the certificate's tags name every stage on the
    successor as switched, and every stage not presenting it as undeployed."""
    client("s3").create_bucket(Bucket=BUCKET)
    olds, stages = [], {}
    for i in range(2):
        old = make_cert(sandbox, 10, description="c%d" % i)
        olds.append(old)
        stages[old] = [make_rest_stage(old, "api-%d-%d" % (i, j), "prod") for j in range(3)]
    sandbox.switches(needs_deployment=True, deploy_interval=0)
    # A run stops a certificate at its first failed deployment (docs/rotation.md, "What
    # happens on each kind of failure"), so the stage that fails must be the last the runs
    # come to: they go through the stages in the order the API listing gives the APIs, not
    # the order they were made in (random ids: the last made was first one time in three).
    failing = [in_listing_order(stages[old])[-1] for old in olds]
    for api in failing:
        sandbox.add_fault("CreateDeployment", service="apigateway", target=api, count=-1)
    policy = rotate(switch=1, delete=None, redeploy=True, publish=SSM_ONLY)
    custodian_run(sandbox, tmp_path, policy)  # successors and trust: no race to generate
    sandbox.advance(days=1)
    path = write_policy(tmp_path, policy)
    procs = [subprocess.Popen(
        timeshift.command(86400, ["custodian", "run", "--cache-period", "0", "-s",
                                  str(tmp_path / ("r%d" % n)), path], sandbox_sleep=True),
        env=sandbox.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for n in range(2)]
    errors = "\n".join(proc.communicate(timeout=300)[1][-3000:] for proc in procs)
    apigw = client("apigateway")
    for old in olds:
        found = tags(old)
        (new,) = successors_of(certificates(), old)
        for api in stages[old]:
            label = "%s/prod" % api
            on = apigw.get_stage(restApiId=api, stageName="prod")["clientCertificateId"]
            assert on == new, (label, on, new, errors)  # first: a stage left behind says so
            assert plan.has_label(found, SWITCHED_STAGES, label), (label, found, errors)
            shown = sandbox.presented(ACCOUNT, REGION, api, "prod")
            if api in failing:
                assert shown["presented"] == old
                assert plan.has_label(found, UNDEPLOYED, label), (label, found)
            else:
                assert shown["presented"] == new
        assert not [x for x in plan.labels(found, UNDEPLOYED)
                    if x not in ["%s/prod" % a for a in failing]]


def switch_under_a_stale_write(sandbox, tmp_path, policy, real_waits):
    """Day 1: the run switches three stages while another writer's TagResource, merged from
    the tags as they were before the run wrote them, is held by the sandbox until its clock
    next moves (a ``hold`` fault): a write that lands after the run's read-backs, as another
    run's does when that machine stalls between its read and its write (fact 120). With
    ``real_waits`` the run's own wait does not move the sandbox's clock: the write lands after
    the run. Returns (old, its successor, the APIs, the run's stderr) once it has landed."""
    client("s3").create_bucket(Bucket=BUCKET)
    old = make_cert(sandbox, 10, description="c")
    apis = [make_rest_stage(old, "api-%d" % j, "prod") for j in range(3)]
    custodian_run(sandbox, tmp_path, policy)
    sandbox.advance(days=1)
    stale = {SWITCHED_STAGES: tags(old).get(SWITCHED_STAGES, "")}  # read before the run writes
    sandbox.add_fault("TagResource", service="apigateway", target=old, hold=True)
    arn = "arn:aws:apigateway:%s::/clientcertificates/%s" % (REGION, old)
    writer = threading.Thread(target=client("apigateway").tag_resource,
                              kwargs={"resourceArn": arn, "tags": stale})
    writer.start()
    while not sandbox.held():
        time.sleep(0.05)
    _, proc = custodian_run(sandbox, tmp_path, policy, days=1, real_waits=real_waits)
    sandbox.advance(seconds=1)  # lands now if the run did not move the clock
    writer.join(30)
    (new,) = successors_of(certificates(), old)
    return old, new, apis, proc.stderr


def test_a_stale_tag_write_after_the_run_is_caught_by_its_last_check(sandbox, tmp_path):
    """The run waits once after its last write and reads again (``Rotation.settle``): the stale
    write has landed by then, and the run writes its entries again. (Without that check the
    entries were lost: the negative control is the test below, whose stale write lands after
    the check.)"""
    policy = rotate(switch=1, delete=1, publish=SSM_ONLY)
    old, new, apis, stderr = switch_under_a_stale_write(sandbox, tmp_path, policy, False)
    found = tags(old)
    for api in apis:
        assert plan.has_label(found, SWITCHED_STAGES, "%s/prod" % api), found
    assert "another writer dropped this run's stage-list entries" in stderr


def test_a_record_lost_to_a_stale_write_stops_the_next_run_safely(sandbox, tmp_path):
    """A stale write that lands even after the run's last check (a writer stalled longer than
    ``SETTLE_SECONDS``) drops the stages this run switched from ``switched``. The next run then
    does not take the successor the stages present for one this rotation made (a stage it
    "never switched" presents it), so it stops the certificate on its state: nothing is
    switched, generated or deleted, and every stage keeps a certificate its bundle holds."""
    policy = rotate(switch=1, delete=1, publish=SSM_ONLY)
    old, new, apis, _ = switch_under_a_stale_write(sandbox, tmp_path, policy, True)
    assert plan.labels(tags(old), SWITCHED_STAGES) == []  # lost

    sandbox.advance(days=2)  # the old certificate is due for deletion by now
    _, proc = custodian_run(sandbox, tmp_path, policy, check=False, days=3)
    assert proc.returncode != 0
    assert "not adopted as the successor" in proc.stderr and "never switched" in proc.stderr
    certs = certificates()
    assert set(certs) == {old, new}  # nothing deleted, nothing generated
    pem = certs[new]["pemEncodedCertificate"].strip()
    apigw = client("apigateway")
    for api in apis:
        assert apigw.get_stage(restApiId=api, stageName="prod")["clientCertificateId"] == new
        assert pem in read_bundle(("ssm", SSM_NAME.format(api_id=api, stage_name="prod")))


# -- 5. one clock: AWS's ---------------------------------------------------------------------
def frozen_run(sandbox, tmp_path, policy, at, check=True):
    """``custodian run`` frozen at the instant ``at`` (ISO), as the sandbox stands there; its
    waits move both clocks on instead of waiting (timeshift --sandbox-sleep)."""
    return custodian_run(sandbox, tmp_path, policy, check=check, at=at)[1]


AT = "2026-11-20T12:00:00+00:00"


@pytest.mark.parametrize("skew,acts", [(3600, False), (-3600, False), (120, True)])
def test_a_local_clock_far_from_aws_refuses_to_act(sandbox, tmp_path, skew, acts):
    """The sandbox dates its answers ``skew`` seconds from the run's clock: beyond 5 minutes
    the run changes nothing and fails saying so; within, it rotates."""
    sandbox.set_now(AT, tick=False)
    estate = Estate(sandbox, count=2)
    sandbox.switches(date_skew=skew)
    proc = frozen_run(sandbox, tmp_path, rotate(switch=0, delete=None), AT, check=False)
    if acts:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert all(successors_of(certificates(), old) for old in estate.olds)
        return
    assert proc.returncode != 0 and "from AWS's" in proc.stderr
    assert "%+d seconds" % -skew in proc.stderr
    assert len(certificates()) == 2  # nothing generated, published or switched
    assert client("ssm").describe_parameters()["Parameters"] == []


@pytest.mark.parametrize("skew,switched", [(0, False), (200, True)])
def test_gates_use_the_time_aws_dates_its_answers_with(sandbox, tmp_path, skew, switched):
    """switch-after-days 0.002 (172.8 s). The second run's own clock stands where the first
    one's did; AWS's is 200 s later (within the skew limit): the gate has passed by AWS's time
    and the stages switch. With no skew (the control) they wait."""
    sandbox.set_now(AT, tick=False)
    estate = Estate(sandbox, count=2)
    policy = rotate(switch=0.002, delete=None)
    frozen_run(sandbox, tmp_path, policy, AT)
    sandbox.switches(date_skew=skew)
    frozen_run(sandbox, tmp_path, policy, AT)
    state = estate.check()
    for old in estate.olds:
        assert (set(state[old][1]) == {state[old][0]} != {old}) is switched
        if not switched:
            assert records(tmp_path)[old]["waiting"].startswith("switch at ")


def test_without_a_date_header_the_local_clock_is_used(sandbox, tmp_path):
    sandbox.switches(date_header=False)
    estate = Estate(sandbox, count=2)
    custodian_run(sandbox, tmp_path, rotate(switch=0, delete=None, publish=PER_STAGE))
    state = estate.check()
    assert all(set(state[old][1]) == {state[old][0]} != {old} for old in estate.olds)


def test_delete_refuses_a_local_clock_far_from_aws(sandbox, tmp_path):
    """``delete`` compares the delete window with AWS's time too: far off, nothing is deleted;
    the same policy deletes once the clocks agree (the control)."""
    unused = make_cert(sandbox, -1, description="expired")
    policy = {"name": "delete", "resource": "aws.apigw-client-certificate",
              "actions": [{"type": "delete"}]}
    sandbox.switches(date_skew=-3600)
    _, proc = custodian_run(sandbox, tmp_path, policy, check=False)
    assert proc.returncode != 0 and "nothing deleted" in proc.stderr
    assert "+3600 seconds from AWS's" in proc.stderr
    assert unused in certificates()
    sandbox.switches(date_skew=0)
    custodian_run(sandbox, tmp_path, policy)
    assert unused not in certificates()

"""Rotation under the conditions of a real account, through the real ``custodian``: several
certificates at once with a fault on each kind of call, shared trust objects across regions,
the SSM size limits, deployments that fail, two runs racing, and ``delete`` beside a rotation.

After every run the safety invariants are checked: no stage references a deleted certificate,
at most one successor per certificate, and every bundle holds what its stage presents."""
import json
import subprocess

import pytest

from conftest import (
    ACCOUNT, BIN, REGION, client, custodian_run, make_cert, make_rest_stage,
    make_websocket_stage, write_policy)

BUCKET = "trust-bundles"
SSM_NAME = "/apigw/client-certs/{api_id}/{stage_name}"
S3_KEY = "apigw/{api_id}/{stage_name}.pem"
PREDECESSOR = "c7n:rotation:predecessor"
PER_STAGE = [{"type": "ssm", "name": SSM_NAME}, {"type": "s3", "bucket": BUCKET, "key": S3_KEY}]


def rotate(switch=0, delete=0, publish=None, name="rotate", **extra):
    action = dict({"type": "rotate", "publish": publish or PER_STAGE, "switch-after-days": switch},
                  **extra)
    if delete is not None:
        action["delete-after-days"] = delete
    return {"name": name, "resource": "aws.apigw-client-certificate",
            "filters": [{"type": "expiring", "days": 30}], "actions": [action]}


def records(tmp_path, policy="rotate", region=None):
    base = tmp_path / "out" / region if region else tmp_path / "out"
    data = json.loads((base / policy / "action-rotate").read_text())
    return {r["clientCertificateId"]: r["c7n:rotation"] for r in data}


def certificates(region=REGION):
    pages = client("apigateway", region).get_paginator("get_client_certificates").paginate()
    return {c["clientCertificateId"]: c for p in pages for c in p["items"]}


def successors_of(certs, old):
    return [c for c, v in certs.items() if v.get("tags", {}).get(PREDECESSOR) == old]


def read_bundle(place):
    kind, name = place
    try:
        if kind == "ssm":
            return client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
        return client("s3").get_object(Bucket=BUCKET, Key=name)["Body"].read().decode()
    except (client("ssm").exceptions.ParameterNotFound, client("s3").exceptions.NoSuchKey):
        return None


class Estate:
    """Expiring certificates, each used by its own REST stage (and the first also by a
    WebSocket stage), one SSM parameter and one S3 object per stage."""

    def __init__(self, sandbox, count=3):
        client("s3").create_bucket(Bucket=BUCKET)
        self.sandbox = sandbox
        self.olds, self.stages = [], {}
        for i in range(count):
            old = make_cert(sandbox, 10, description="cert-%d" % i, tags={"team": "t%d" % i})
            api = make_rest_stage(old, "api-%d" % i, "prod")
            self.olds.append(old)
            self.stages[old] = [("REST", api, "prod")]
        ws = make_websocket_stage(self.olds[0], "ws", "live")
        self.stages[self.olds[0]].append(("WEBSOCKET", ws, "live"))

    def places(self, stage):
        _, api, name = stage
        return [("ssm", SSM_NAME.format(api_id=api, stage_name=name)),
                ("s3", S3_KEY.format(api_id=api, stage_name=name))]

    def current(self, stage):
        protocol, api, name = stage
        if protocol == "REST":
            return client("apigateway").get_stage(restApiId=api, stageName=name).get(
                "clientCertificateId")
        return client("apigatewayv2").get_stage(ApiId=api, StageName=name).get(
            "ClientCertificateId")

    def check(self, successors=1):
        """The invariants; returns {old: (successor or None, [stage certificates])}. Right
        after a race, a losing successor may wait for a later run (``successors=2``), but no
        certificate's stages are ever split between two successors."""
        certs = certificates()
        state = {}
        for old, stage_list in self.stages.items():
            found = sorted(successors_of(certs, old))
            assert len(found) <= successors, "%s has successors %s" % (old, found)
            used = {self.current(stage) for stage in stage_list} & set(found)
            assert len(used) <= 1, "%s's stages use two successors %s" % (old, used)
            on = [self.current(stage) for stage in stage_list]
            for stage, cert_id in zip(stage_list, on, strict=True):
                assert cert_id in certs, "%s references deleted %s" % (stage, cert_id)
                presented = cert_id
                if stage[0] == "REST":
                    presented = self.sandbox.presented(
                        ACCOUNT, REGION, stage[1], stage[2])["presented"] or cert_id
                for place in self.places(stage):
                    text = read_bundle(place)
                    if text is None:
                        assert presented == old, "%s presents unpublished %s" % (stage, presented)
                        continue
                    assert certs[presented]["pemEncodedCertificate"].strip() in text, \
                        "%s of %s lacks the presented %s" % (place, stage, presented)
            state[old] = ((sorted(used) or found or [None])[0], on)
        return state

    def assert_done(self, old, state):
        new, on = state[old]
        assert new is not None and set(on) == {new}
        assert old not in certificates()
        new_pem = certificates()[new]["pemEncodedCertificate"].strip()
        for stage in self.stages[old]:
            for place in self.places(stage):
                assert read_bundle(place) == new_pem + "\n"


@pytest.fixture
def estate(sandbox):
    return Estate(sandbox)


FAULTS = {
    "GetStage": lambda e, b: {"operation": "GetStage", "service": "apigateway",
                              "target": e.stages[b][0][1]},
    "GetParameter": lambda e, b: {"operation": "GetParameter", "service": "ssm",
                                  "target": e.places(e.stages[b][0])[0][1]},
    "GetObject": lambda e, b: {"operation": "GetObject", "service": "s3",
                               "target": e.places(e.stages[b][0])[1][1]},
    "PutParameter": lambda e, b: {"operation": "PutParameter", "service": "ssm",
                                  "target": e.places(e.stages[b][0])[0][1]},
    "PutObject": lambda e, b: {"operation": "PutObject", "service": "s3",
                               "target": e.places(e.stages[b][0])[1][1]},
    "read-back mismatch": lambda e, b: {"operation": "PutParameter", "service": "ssm",
                                        "target": e.places(e.stages[b][0])[0][1],
                                        "drop": True},
    "TagResource": lambda e, b: {"operation": "TagResource", "service": "apigateway",
                                 "target": b},
    "connection reset": lambda e, b: {"operation": "UpdateStage", "service": "apigateway",
                                      "target": e.stages[b][0][1], "reset": True,
                                      "count": 20},
    "throttled": lambda e, b: {"operation": "GetStage", "service": "apigateway",
                               "target": e.stages[b][0][1], "code": "TooManyRequestsException",
                               "status": 429, "count": 3},
}


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_a_fault_stays_with_its_certificate(sandbox, estate, tmp_path, kind):
    """Three certificates rotate together; a fault aimed at the second one's resources stops
    only it: the others complete, its state is safe, and a rerun completes it."""
    first, second, third = estate.olds
    sandbox.add_fault(**FAULTS[kind](estate, second))
    _, proc = custodian_run(sandbox, tmp_path, rotate(), check=False)
    state = estate.check()
    estate.assert_done(first, state)
    estate.assert_done(third, state)
    if kind == "throttled":  # c7n's retry backs off: nothing fails
        assert proc.returncode == 0, proc.stderr[-2000:]
        estate.assert_done(second, state)
        return
    assert proc.returncode != 0
    assert "PolicyExecutionError" in proc.stderr or "rotate failed" in proc.stderr
    assert "client-certificate:%s" % second in proc.stderr
    assert "client-certificate:%s" % first not in proc.stderr.split("rotate failed")[-1]
    assert second in certificates()
    assert records(tmp_path)[second]["errors"]
    assert not records(tmp_path)[first].get("errors")

    sandbox.clear_faults()
    custodian_run(sandbox, tmp_path, rotate())
    state = estate.check()
    for old in estate.olds:
        estate.assert_done(old, state)


def test_a_failed_fresh_listing_deletes_nothing_and_loses_nothing(sandbox, estate, tmp_path):
    """The fresh stage listing made before deletions fails (the second GetApis of the run, the
    first being the audit's): the stages were switched and that is recorded in the tags, no
    certificate is deleted, every certificate's record is written, and the run fails."""
    sandbox.add_fault("GetApis", service="apigatewayv2", after=1, count=1)
    _, proc = custodian_run(sandbox, tmp_path, rotate(), check=False)
    assert proc.returncode != 0
    done = records(tmp_path)
    state = estate.check()
    for old in estate.olds:
        assert old in certificates()
        assert "fresh stage listing" in " ".join(done[old]["errors"])
        assert set(state[old][1]) == {state[old][0]}  # switched, and it was kept
        assert "c7n:rotation:switched-at" in certificates()[old]["tags"]
    sandbox.clear_faults()
    custodian_run(sandbox, tmp_path, rotate())
    state = estate.check()
    for old in estate.olds:
        estate.assert_done(old, state)


def test_shared_trust_object_keeps_every_region(sandbox, tmp_path):
    """One S3 key for the whole estate, written by two regions in one run: each region adds
    its own, neither drops the other's (the bundle is merged, never rebuilt)."""
    client("s3").create_bucket(Bucket=BUCKET)
    olds = {}
    for region in ("us-east-1", "eu-west-1"):
        olds[region] = make_cert(sandbox, 10, region=region, description=region)
        make_rest_stage(olds[region], "api", "prod", region=region)
    healthy = make_cert(sandbox, 300, region="eu-west-1", description="healthy")
    make_rest_stage(healthy, "other", "prod", region="eu-west-1")
    publish = [{"type": "s3", "bucket": BUCKET, "key": "trust/all.pem"}]
    custodian_run(sandbox, tmp_path, rotate(switch=3, delete=7, publish=publish),
                  regions=("us-east-1", "eu-west-1"))
    text = client("s3").get_object(Bucket=BUCKET, Key="trust/all.pem")["Body"].read().decode()
    for region, old in olds.items():
        certs = certificates(region)
        (new,) = successors_of(certs, old)
        for cert_id in (old, new):
            assert certs[cert_id]["pemEncodedCertificate"].strip() in text, (region, cert_id)
    assert certificates("eu-west-1")[healthy]["pemEncodedCertificate"].strip() in text
    assert text.count("BEGIN CERTIFICATE") == 5


def test_ssm_size_is_checked_before_any_stage_moves(sandbox, tmp_path):
    """A shared parameter for the region must hold every certificate its stages present: four
    PEMs do not fit a Standard parameter (4 KB). The run fails those certificates, naming the
    parameter and the size, before any stage is switched; ``tier: Advanced`` fits them."""
    olds = [make_cert(sandbox, 10, description="c%d" % i) for i in range(2)]
    for i, old in enumerate(olds):
        make_rest_stage(old, "api-%d" % i, "prod")
    publish = [{"type": "ssm", "name": "/trust/{region}"}]
    _, proc = custodian_run(sandbox, tmp_path, rotate(publish=publish), check=False)
    assert proc.returncode != 0
    assert "ssm:/trust/us-east-1" in proc.stderr and "4096" in proc.stderr
    assert "bytes" in proc.stderr
    apigw = client("apigateway")
    for i, old in enumerate(olds):
        api = [a["id"] for a in apigw.get_rest_apis()["items"] if a["name"] == "api-%d" % i][0]
        assert apigw.get_stage(restApiId=api, stageName="prod")["clientCertificateId"] == old
    with pytest.raises(client("ssm").exceptions.ParameterNotFound):
        client("ssm").get_parameter(Name="/trust/us-east-1")

    advanced = [{"type": "ssm", "name": "/trust/{region}", "tier": "Advanced"}]
    custodian_run(sandbox, tmp_path, rotate(publish=advanced, delete=None))
    value = client("ssm").get_parameter(Name="/trust/us-east-1")["Parameter"]["Value"]
    assert value.count("BEGIN CERTIFICATE") == 4  # both old, both successors: 4.4 KB
    assert len(value.encode()) > 4096
    assert client("ssm").describe_parameters()["Parameters"][0]["Tier"] == "Advanced"


def test_failed_deployment_keeps_the_old_certificate_until_deployed(sandbox, tmp_path):
    """redeploy: true, and the stage presents only what was deployed. CreateDeployment fails
    after UpdateStage landed: the stage is recorded as undeployed, the old certificate stays
    trusted and is not deleted; the next run deploys it and only then retires."""
    client("s3").create_bucket(Bucket=BUCKET)
    olds = [make_cert(sandbox, 10, description="c%d" % i) for i in range(3)]
    apis = [make_rest_stage(old, "api-%d" % i, "prod") for i, old in enumerate(olds)]
    sandbox.switches(needs_deployment=True)  # from now on a stage presents what was deployed
    sandbox.add_fault("CreateDeployment", service="apigateway", target=apis[1])
    policy = rotate(redeploy=True)
    _, proc = custodian_run(sandbox, tmp_path, policy, check=False)
    assert proc.returncode != 0 and "CreateDeployment" not in proc.stdout
    record = records(tmp_path)[olds[1]]
    assert record["undeployed"] == "%s/prod" % apis[1]
    certs = certificates()
    assert olds[1] in certs  # still presented: never deleted before its deployment
    (new,) = successors_of(certs, olds[1])
    assert certs[olds[1]]["tags"]["c7n:rotation:undeployed"] == "%s/prod" % apis[1]
    shown = sandbox.presented(ACCOUNT, REGION, apis[1], "prod")
    assert shown == {"configured": new, "presented": olds[1]}
    text = read_bundle(("ssm", SSM_NAME.format(api_id=apis[1], stage_name="prod")))
    assert certs[olds[1]]["pemEncodedCertificate"].strip() in text
    for i in (0, 2):
        assert olds[i] not in certs
        assert sandbox.presented(ACCOUNT, REGION, apis[i], "prod")["presented"] == \
            successors_of(certs, olds[i])[0]

    # A delete policy between the runs leaves the undeployed rotation alone.
    delete = {"name": "delete", "resource": "aws.apigw-client-certificate",
              "filters": [{"type": "value", "key": "clientCertificateId", "value": olds[1]}],
              "actions": [{"type": "delete"}]}
    custodian_run(sandbox, tmp_path, delete)
    assert olds[1] in certificates()

    custodian_run(sandbox, tmp_path, policy)
    assert sandbox.presented(ACCOUNT, REGION, apis[1], "prod")["presented"] == new
    assert olds[1] not in certificates()
    assert records(tmp_path)[olds[1]]["deployed"] == ["stage:%s/prod" % apis[1]]


def test_two_runs_at_once_leave_exactly_one_successor(sandbox, estate, tmp_path):
    """Two ``custodian run`` processes started together on the same account, then one more:
    exactly one successor per certificate, no orphan, every rotation complete."""
    policy = write_policy(tmp_path, rotate(switch=0, delete=None))
    procs = []
    for n in range(2):
        out = tmp_path / ("race-%d" % n)
        procs.append(subprocess.Popen(
            [BIN + "/custodian", "run", "--cache-period", "0", "-s", str(out), policy],
            env=sandbox.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        proc.communicate(timeout=300)
    estate.check(successors=2)  # whatever the race did, the invariants hold
    # One more run, a day later: a successor that lost the race is deleted once a day old
    # (a run still going could have found it: it is never deleted by the run that made it).
    sandbox.advance(days=1)
    custodian_run(sandbox, tmp_path, rotate(switch=0, delete=None), days=1)
    certs = certificates()
    for old in estate.olds:
        found = successors_of(certs, old)
        assert len(found) == 1, (old, found)
    assert len(certs) == 2 * len(estate.olds)  # no orphan: old + successor each
    state = estate.check()
    for old in estate.olds:
        assert set(state[old][1]) == {state[old][0]}


def made_by_a_run(sandbox, old, days, description):
    """A successor of ``old`` as a run makes one: its predecessor and origin tags set when it
    is created, the origin dated at its creation."""
    from c7n_apigw_certs.rotation.plan import ORIGIN, created, origin
    certs = certificates()
    when = created({"createdDate": certs[old]["createdDate"]})
    cert = sandbox.create_certificate(region=REGION, description=description,
                                      expires_in_days=days, account=ACCOUNT,
                                      tags={PREDECESSOR: old})
    new, made = cert["clientCertificateId"], created(cert)
    client("apigateway").tag_resource(
        resourceArn="arn:aws:apigateway:%s::/clientcertificates/%s" % (REGION, new),
        tags={ORIGIN: origin(old, when, made)})
    return new


def test_an_unused_extra_successor_is_deleted(sandbox, estate, tmp_path):
    """Successors of one certificate exist from a race: the oldest is used; another that no
    stage uses is deleted after the fresh listing once it is a day old; a younger one could be
    a run's that is still going, and is kept for now."""
    first = estate.olds[0]
    kept = made_by_a_run(sandbox, first, 363, "older")
    extra = made_by_a_run(sandbox, first, 364, "newer")
    young = made_by_a_run(sandbox, first, 365, "youngest")
    custodian_run(sandbox, tmp_path, rotate(switch=0, delete=None))
    assert set(successors_of(certificates(), first)) == {kept, young}
    assert records(tmp_path)[first]["orphans-deleted"] == [extra]
    assert records(tmp_path)[first]["orphans-kept"] == [young]  # may be another run's
    assert {estate.current(stage) for stage in estate.stages[first]} == {kept}
    sandbox.advance(days=1)
    custodian_run(sandbox, tmp_path, rotate(switch=0, delete=None), days=1)
    assert successors_of(certificates(), first) == [kept]  # a day later, deleted
    assert set(estate.check()[first][1]) == {kept}


def test_delete_leaves_rotations_alone(sandbox, estate, tmp_path):
    """Day 0 of a staged rotation: the successors are published but unused, the old ones in
    use. A delete policy on every certificate deletes neither, and says why."""
    custodian_run(sandbox, tmp_path, rotate(switch=3, delete=7))
    delete = {"name": "delete", "resource": "aws.apigw-client-certificate",
              "actions": [{"type": "delete"}]}
    _, proc = custodian_run(sandbox, tmp_path, delete)
    assert len(certificates()) == 6
    for old in estate.olds:
        assert "client-certificate:%s is used by" % old in proc.stderr
        (new,) = successors_of(certificates(), old)
        assert "client-certificate:%s is successor of %s, whose rotation is unfinished" % (
            new, old) in proc.stderr

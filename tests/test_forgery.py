"""Forged rotation tags, as someone who may only tag certificates would write them, against the
real ``custodian`` with several certificates at once: no forged tag moves a stage onto another
team's certificate, adds its PEM to a bundle, or changes it; a state tag this action could not
have written stops only its own certificate (``StateError``), and the log names the tag. Then
``c7n-apigw-certs plan`` on a staged rotation over simulated days: on each day it prints what
the run that follows does, forged tags included, and it runs under its own IAM document."""
import datetime
import json
import os
import re
import shutil

import pytest

from conftest import (
    ACCOUNT, BIN, REGION, api_calls, assume_role_allowed, client, custodian_run, make_cert,
    make_rest_stage, run_at, run_cli, write_policy)

BUCKET = "trust-bundles"
SSM_NAME = "/apigw/client-certs/{api_id}/{stage_name}"
S3_KEY = "apigw/{api_id}/{stage_name}.pem"
PREDECESSOR = "c7n:rotation:predecessor"
SUCCESSOR = "c7n:rotation:successor"
ORIGIN = "c7n:rotation:origin"
OTHER_BUNDLE = "/other-team/{api}/prod"
NOW = r" \(now [^)]*\)"


def rotate(switch=0, delete=0):
    """The victim team's rotation: only its certificates (tag team=victim) are selected; the
    other team's are in the region's listing, where a forged tag points at them."""
    return {"name": "rotate", "resource": "aws.apigw-client-certificate",
            "filters": [{"type": "expiring", "days": 30}, {"tag:team": "victim"}],
            "actions": [{"type": "rotate", "switch-after-days": switch,
                         "delete-after-days": delete,
                         "publish": [{"type": "ssm", "name": SSM_NAME},
                                     {"type": "s3", "bucket": BUCKET, "key": S3_KEY}]}]}


def certificates():
    pages = client("apigateway").get_paginator("get_client_certificates").paginate()
    return {c["clientCertificateId"]: c for p in pages for c in p["items"]}


def stage_cert(api):
    return client("apigateway").get_stage(restApiId=api, stageName="prod").get(
        "clientCertificateId")


def stamp(when):
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def bundle(api):
    """The victim's SSM bundle of a stage, or None before its first publication."""
    try:
        return client("ssm").get_parameter(
            Name=SSM_NAME.format(api_id=api, stage_name="prod"))["Parameter"]["Value"]
    except client("ssm").exceptions.ParameterNotFound:
        return None


def pem(certs, cert_id):
    return certs[cert_id]["pemEncodedCertificate"].strip()


class Teams:
    """Victim certificates A1..A5, each on its own REST stage, expiring in 10 days; the other
    team's certificates, healthy, each on its own stage with its own trust bundle; and the
    forgeries, one per victim certificate."""

    def __init__(self, sandbox):
        client("s3").create_bucket(Bucket=BUCKET)
        self.victims, self.apis, self.others = {}, {}, {}
        for n in range(1, 6):
            cert = make_cert(sandbox, 10, description="victim %d" % n, tags={"team": "victim"})
            self.victims[n], self.apis[cert] = cert, make_rest_stage(cert, "victim-%d" % n)
        created = {n: certificates()[c]["createdDate"] for n, c in self.victims.items()}
        # B1: the forgery: one tag on a healthy certificate that another stage presents.
        self.other(sandbox, 1, 300, {PREDECESSOR: self.victims[1]})
        # B2: an informed forger: the origin marker too, on a certificate older than A2.
        self.other(sandbox, 2, 365, {PREDECESSOR: self.victims[2], ORIGIN: "%s %s %s" % (
            self.victims[2], stamp(created[2]), stamp(created[2]))},
            created=created[2] - datetime.timedelta(days=1))
        # B3: named as A3's successor on A3 itself.
        self.other(sandbox, 3, 300, {})
        self.tag(self.victims[3], {SUCCESSOR: self.others[3]})
        # A4: a switch "in the future"; A5: a delete window "past" on a certificate in use.
        future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)
        self.tag(self.victims[4], {"c7n:rotation:switched-at": stamp(future)})
        self.tag(self.victims[5], {"c7n:rotation:retire-after": stamp(
            future - datetime.timedelta(days=3))})
        self.before = self.snapshot()

    def other(self, sandbox, n, days, tags, created=None):
        spec = {"expires_in_days": days} if created is None else {"created": created.isoformat()}
        cert = sandbox.create_certificate(region=REGION, description="other %d" % n,
                                          tags=dict(tags, team="other"), account=ACCOUNT,
                                          **spec)["clientCertificateId"]
        api = make_rest_stage(cert, "other-%d" % n)
        client("ssm").put_parameter(Name=OTHER_BUNDLE.format(api=api), Type="String",
                                    Value=certificates()[cert]["pemEncodedCertificate"])
        self.others[n], self.apis[cert] = cert, api

    def tag(self, cert, tags):
        client("apigateway").tag_resource(
            resourceArn="arn:aws:apigateway:%s::/clientcertificates/%s" % (REGION, cert),
            tags=tags)

    def snapshot(self):
        """The other team's certificates as read back: tags, description, stage, bundle."""
        certs = certificates()
        return {cert: (certs[cert].get("tags"), certs[cert]["description"],
                       stage_cert(self.apis[cert]), client("ssm").get_parameter(
                           Name=OTHER_BUNDLE.format(api=self.apis[cert]))["Parameter"]["Value"])
                for cert in self.others.values()}

    def check(self):
        """Every stage presents a certificate that exists and that its bundle (if published)
        holds; no victim bundle holds another team's PEM; the other team's are unchanged."""
        certs = certificates()
        for cert, api in self.apis.items():
            on = stage_cert(api)
            assert on in certs, "stage %s references deleted %s" % (api, on)
            if cert in self.victims.values():
                text = bundle(api)
                assert text is None and on == cert or pem(certs, on) in text
                for other in self.others.values():
                    assert text is None or pem(certs, other) not in text
        assert self.snapshot() == self.before
        return certs


@pytest.fixture
def teams(sandbox):
    return Teams(sandbox)


def records(tmp_path):
    data = json.loads((tmp_path / "out" / "rotate" / "action-rotate").read_text())
    return {r["clientCertificateId"]: r["c7n:rotation"] for r in data}


def own_successor(certs, old):
    (new,) = [c for c, v in certs.items() if v.get("tags", {}).get(ORIGIN, "").startswith(
        old + " ") and v["description"].startswith("Rotated from")]
    return new


def test_forged_tags_steer_nothing(sandbox, teams, tmp_path):
    _, proc = custodian_run(sandbox, tmp_path, rotate(), check=False)
    certs = teams.check()
    done = records(tmp_path)
    a, b = teams.victims, teams.others
    # A1-A3 rotated to successors of their own: the stage moved, the old one deleted.
    for n in (1, 2, 3):
        new = own_successor(certs, a[n])
        assert new not in b.values()
        assert stage_cert(teams.apis[a[n]]) == new and a[n] not in certs
        assert bundle(teams.apis[a[n]]) == pem(certs, new) + "\n"
        assert done[a[n]]["successor"] == new and done[a[n]]["deleted"] is True
        assert done[a[n]]["steps"] == ["generate", "publish", "switch", "retire"]
    # Each forgery is named in the log (both certificates and the tag) and recorded.
    for n, claim, tag, why in (
            (1, (b[1], PREDECESSOR), PREDECESSOR, "stage:%s/prod presents it" % teams.apis[b[1]]),
            (2, (b[2], PREDECESSOR), PREDECESSOR, "before client-certificate:%s" % a[2]),
            (3, (a[3], SUCCESSOR), SUCCESSOR, "its %s is None" % PREDECESSOR)):
        line = "client-certificate:%s not adopted as the successor of client-certificate:%s " \
            "(named by the tag %s of %s): tag %s: " % (b[n], a[n], claim[1], claim[0], tag)
        assert line in proc.stderr
        (entry,) = done[a[n]]["distrusted"]
        assert entry["certificate"] == b[n] and why in entry["reason"], entry
    # A4 and A5 stop on their state, untouched, and the run fails naming the tags; A1-A3 went
    # on regardless.
    assert proc.returncode != 0
    for n, tag in ((4, "c7n:rotation:switched-at"), (5, "c7n:rotation:retire-after")):
        assert a[n] in certs and stage_cert(teams.apis[a[n]]) == a[n]
        assert not [c for c, v in certs.items() if v.get("tags", {}).get(PREDECESSOR) == a[n]
                    and v["description"].startswith("Rotated")]
        assert "client-certificate:%s rotation failed: tag %s" % (a[n], tag) in proc.stderr
        assert done[a[n]]["errors"] and "successor" not in done[a[n]]
        assert bundle(teams.apis[a[n]]) is None
    assert "in the future" in done[a[4]]["errors"][0]
    assert "no successor that this rotation made exists" in done[a[5]]["errors"][0]


def test_without_the_checks_the_forgery_would_have_worked(sandbox, teams, tmp_path):
    """Negative control: the same forged tag, with the origin marker the checks want and the
    other team's stage gone (moved to a third certificate): then the candidate agrees in every
    way the listings can show, and is adopted. The checks are what stopped the forgery above,
    not something else of the estate."""
    a1, b1 = teams.victims[1], teams.others[1]
    certs = certificates()
    spare = make_cert(sandbox, 300, description="spare")
    client("apigateway").update_stage(restApiId=teams.apis[b1], stageName="prod",
                                      patchOperations=[{"op": "replace",
                                                        "path": "/clientCertificateId",
                                                        "value": spare}])
    made = certs[b1]["createdDate"]
    teams.tag(b1, {ORIGIN: "%s %s %s" % (a1, stamp(certs[a1]["createdDate"]), stamp(made))})
    custodian_run(sandbox, tmp_path, rotate(), check=False)
    assert stage_cert(teams.apis[a1]) == b1  # the full forgery that remains (see the docs)
    assert records(tmp_path)[a1]["successor"] == b1


# -- plan --------------------------------------------------------------------------------
def plan_at(sandbox, instant, policy):
    proc = run_at(instant, "c7n-apigw-certs", ["plan", policy, "-r", REGION, "--json"],
                  sandbox.env, check=False)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return {e["certificate"]: e for e in json.loads(proc.stdout)}


def run_rotation_at(sandbox, instant, policy, tmp_path):
    out = tmp_path / "out"
    shutil.rmtree(out, ignore_errors=True)
    return run_at(instant, "custodian", ["run", "--cache-period", "0", "-s", str(out), policy],
                  sandbox.env, check=False)


def test_plan_says_what_each_following_run_does(sandbox, teams, tmp_path):
    """A staged rotation (switch after 3 days, delete 7 after), days 0, 1, 3 and 10: the plan
    printed just before each run names the steps that run then records, its waits and
    errors, and the forged tags it distrusts; the plan itself changes nothing."""
    policy = write_policy(tmp_path, rotate(switch=3, delete=7))
    a = teams.victims
    start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    for day in (0, 1, 3, 10):
        # Both at one instant (the sandbox's now that day), as two runs a moment apart would
        # be but for the seconds between them.
        at = (start + datetime.timedelta(days=day)).isoformat()
        sandbox.set_now(at, tick=False)
        instant = "@" + at
        before = certificates()
        planned = plan_at(sandbox, instant, policy)
        assert certificates() == before  # read-only
        run_rotation_at(sandbox, instant, policy, tmp_path)
        done = records(tmp_path)
        assert set(planned) == set(done)
        for cert, record in done.items():
            entry = planned[cert]
            assert entry["steps"] == record.get("steps", []), (day, cert, entry, record)
            if "waiting" in record:
                assert entry["reason"] == record["waiting"]
            assert bool(entry["error"]) == bool(record.get("errors")), (day, entry, record)
            if entry["error"]:  # the same, but for the time each ran at
                assert [re.sub(NOW, "", e) for e in record["errors"]] == [
                    re.sub(NOW, "", entry["error"])]
            assert entry["distrusted"] == record.get("distrusted", [])
        teams.check()
        if day == 0:
            assert planned[a[1]]["steps"] == ["generate", "publish", "wait"]
            assert planned[a[1]]["gates"]["switch"] == done[a[1]]["waiting"][len("switch at "):]
            assert [d["certificate"] for d in planned[a[1]]["distrusted"]] == \
                [teams.others[1]]
            assert "in the future" in planned[a[4]]["error"]
            assert sorted(planned[a[1]]["trust"]) == sorted([
                "ssm:" + SSM_NAME.format(api_id=teams.apis[a[1]], stage_name="prod"),
                "s3:%s/%s" % (BUCKET, S3_KEY.format(api_id=teams.apis[a[1]],
                                                    stage_name="prod"))])
        if day == 3:
            assert planned[a[1]]["steps"] == ["switch", "wait"]
            assert planned[a[1]]["stages"]["switch"] == ["stage:%s/prod" % teams.apis[a[1]]]
        if day == 10:
            assert planned[a[1]]["steps"] == ["retire"]
            assert a[1] not in certificates()
    # The text form names the same things for a person.
    plain = run_at(instant, "c7n-apigw-certs", ["plan", policy, "-r", REGION], sandbox.env,
                   check=False).stdout
    assert "client-certificate:%s (us-east-1, policy rotate): next run: stops" % a[4] in plain
    assert "error: tag c7n:rotation:switched-at" in plain


def test_plan_runs_under_its_own_document(sandbox, teams, tmp_path):
    """``iam --plan``: read actions only; the plan runs under exactly that document with
    nothing refused and only read calls made; without a listing path it is refused (the
    enforcement is real)."""
    policy = write_policy(tmp_path, rotate(switch=3, delete=7))
    doc = json.loads(run_cli("c7n-apigw-certs", ["iam", "--plan", policy, "--region", REGION,
                                                 "--account", ACCOUNT], sandbox.env).stdout)
    actions = {a for s in doc["Statement"] for a in s["Action"]}
    # the audit's own reads come with the query: ACM's for stages on ACM certificates (acm.py)
    assert actions <= {"apigateway:GET", "tag:GetResources", "sts:GetCallerIdentity",
                       "acm:ListCertificates", "acm:DescribeCertificate", "acm:GetCertificate",
                       "acm-pca:DescribeCertificateAuthority"}, actions
    assert "apigateway:GET" in actions
    full = json.loads(run_cli("c7n-apigw-certs", ["iam", policy], sandbox.env).stdout)
    assert {"apigateway:POST", "ssm:PutParameter"} <= {
        a for s in full["Statement"] for a in s["Action"]}  # the run's own needs writes
    role = assume_role_allowed(doc)
    sandbox.reset_counters()
    proc = run_cli("c7n-apigw-certs", ["plan", policy, "-r", REGION, "--json", "--assume", role],
                   sandbox.env, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]  # A4 and A5: their state stops them
    entries = json.loads(proc.stdout)
    assert len(entries) == 5 and [e for e in entries if e["steps"][:1] == ["generate"]]
    assert api_calls(sandbox, outcome="denied") == {}
    made = set(api_calls(sandbox))
    assert made and all(op.startswith(("Get", "List", "AssumeRole")) for op in made), made

    doc["Statement"] = [dict(s, Resource=[r for r in s["Resource"]
                                          if not r.endswith("/restapis/*/stages")])
                        for s in doc["Statement"]]
    narrow = assume_role_allowed(doc, role="narrow")
    run_cli("c7n-apigw-certs", ["plan", policy, "-r", REGION, "--assume", narrow],
            sandbox.env, check=False)
    assert api_calls(sandbox, outcome="denied")



def test_plan_under_c7n_org_run_script(sandbox, tmp_path):
    """``c7n-org run-script`` runs ``plan`` once per account and region with that account's
    credentials in the environment, its output in OUT/<account>/<region>/stdout."""
    from test_org import ACCOUNTS, accounts_with_a_stage
    old, _, config = accounts_with_a_stage(sandbox, tmp_path)
    policy = write_policy(tmp_path, {
        "name": "rotate", "resource": "aws.apigw-client-certificate",
        "filters": [{"type": "expiring", "days": 30}],
        "actions": [{"type": "rotate", "switch-after-days": 1, "publish": [
            {"type": "ssm", "name": "/trust/{account_id}/{api_id}/{stage_name}"}]}]})
    out = tmp_path / "org-out"
    run_cli("c7n-org", ["run-script", "-c", str(config), "-s", str(out), "-r", REGION, "--",
                        os.path.join(BIN, "c7n-apigw-certs"), "plan", policy, "--json"],
            dict(sandbox.env, C7N_ORG_PARALLEL="2"))
    for name in ACCOUNTS:
        (entry,) = json.loads((out / name / REGION / "stdout").read_text())
        assert entry["certificate"] == old[name]
        assert entry["steps"] == ["generate", "publish", "wait"]
        assert entry["trust"][0].startswith("ssm:/trust/%s/" % ACCOUNTS[name])

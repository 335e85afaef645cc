"""The TLS probe: real handshakes, with what a stage presents and the key the sandbox kept, to
nginx with ``ssl_verify_client on`` and to the Python stand-in; accepted and refused counted."""
import os

import boto3
import pytest
from conftest import REGION, client, make_cert, make_rest_stage, make_websocket_stage

from c7n_apigw_certs.trust import bundles, trust_sync
from c7n_apigw_certs.sandbox import probe

NGINX = probe.nginx_binary()


def needs_nginx():
    """Outside CI a missing nginx skips with the reason; in CI (CI=true) it must be there."""
    if NGINX:
        return
    if os.environ.get("CI") == "true":
        pytest.fail("nginx is not installed, and CI must run the TLS proof (.ci/run installs "
                    "it: apt-get install -y nginx)")
    pytest.skip("nginx is not installed (apt-get install -y nginx): the TLS proof against "
                "nginx cannot run here")


def pem_of(cert_id):
    return client("apigateway").get_client_certificate(
        clientCertificateId=cert_id)["pemEncodedCertificate"]


def switch(api_id, cert_id, stage="prod"):
    client("apigateway").update_stage(restApiId=api_id, stageName=stage, patchOperations=[
        {"op": "replace", "path": "/clientCertificateId", "value": cert_id}])


def test_only_stages_with_an_http_integration_are_probed(sandbox):
    cert = make_cert(sandbox, 30)
    rest = make_rest_stage(cert)
    bare = client("apigateway").create_rest_api(name="no-integration")["id"]
    ws = make_websocket_stage(cert)
    stages = probe.http_stages(boto3.Session(), [REGION])
    assert [(s.protocol, s.api_id, s.name) for s in stages] == [("REST", rest, "prod")]
    assert bare != rest and ws
    v2 = client("apigatewayv2")
    v2.create_integration(ApiId=ws, IntegrationType="HTTP_PROXY", IntegrationMethod="POST",
                          IntegrationUri="https://backend.example.com/")
    stages = probe.http_stages(boto3.Session(), [REGION])
    assert sorted((s.protocol, s.api_id) for s in stages) == [("REST", rest), ("WEBSOCKET", ws)]


def setup_stage(sandbox, tmp_path):
    old, new = make_cert(sandbox, 30), make_cert(sandbox, 300)
    api = make_rest_stage(old)
    (stage,) = probe.http_stages(boto3.Session(), [REGION])
    return old, new, api, stage


def nginx_probe(sandbox, tmp_path, stage, trust, mode):
    nginx = probe.Nginx(tmp_path / "nginx", {stage.label: str(trust)}, mode=mode).start()
    run = probe.Probe(sandbox, boto3.Session(), [stage],
                      lambda s: nginx.address(s.label), str(tmp_path))
    return nginx, run


def reload(nginx):
    assert os.system(nginx.reload_command) == 0


def test_nginx_verify_trusts_one_of_two_api_gateway_certificates(sandbox, tmp_path):
    """The finding the probe exists for: a PEM bundle with the old and the new certificate
    does not carry a rotation through nginx. Every API Gateway certificate is self-signed with
    the same subject, and OpenSSL verifies a client against the first certificate of that name
    in the file (fact 156): the successor, in the file, is refused until the old one is gone."""
    needs_nginx()
    old, new, api, stage = setup_stage(sandbox, tmp_path)
    trust = tmp_path / "trust.pem"
    trust.write_text(bundles.join([pem_of(old), pem_of(new)]))
    nginx, run = nginx_probe(sandbox, tmp_path, stage, trust, "verify")
    try:
        run.phase = "old presented, both in the file"
        (first,) = run.round()
        assert (first.certificate, first.outcome) == (old, probe.ACCEPTED)
        assert first.detail.startswith("SUCCESS ")

        switch(api, new)
        run.phase = "new presented, both in the file"
        (second,) = run.round()
        assert (second.certificate, second.outcome, second.detail) == (
            new, probe.REFUSED, "nginx: 400 The SSL certificate error")
        assert "(18:self-signed certificate)" in nginx.log()

        trust.write_text(bundles.join([pem_of(new)]))
        reload(nginx)
        run.phase = "new alone in the file"
        assert wait_for(run, probe.ACCEPTED).certificate == new
    finally:
        nginx.stop()
    assert run.figures()["new presented, both in the file"] == {
        "requests": 1, "accepted": 0, "refused": 1, "expired": 0, "errors": 0}


def test_nginx_pinned_accepts_every_certificate_of_the_map(sandbox, tmp_path):
    """The configuration that carries a rotation: the fingerprints trust-sync writes
    (``--format nginx-map``), with ``ssl_verify_client optional_no_ca``."""
    needs_nginx()
    old, new, api, stage = setup_stage(sandbox, tmp_path)
    trust = tmp_path / "trust.map"
    trust.write_bytes(trust_sync.as_nginx_map(bundles.join([pem_of(old)])))
    nginx, run = nginx_probe(sandbox, tmp_path, stage, trust, "pinned")
    try:
        assert [(r.certificate, r.outcome) for r in run.round()] == [(old, probe.ACCEPTED)]
        switch(api, new)
        refused = run.round()[0]  # not in the map yet
        assert (refused.certificate, refused.outcome) == (new, probe.REFUSED)
        trust.write_bytes(trust_sync.as_nginx_map(bundles.join([pem_of(old), pem_of(new)])))
        reload(nginx)
        assert wait_for(run, probe.ACCEPTED).certificate == new
        switch(api, old)  # both in the map: the old one too
        assert [(r.certificate, r.outcome) for r in run.round()] == [(old, probe.ACCEPTED)]
    finally:
        nginx.stop()


def wait_for(run, outcome, rounds=50):
    """nginx reloads asynchronously: the first requests may still reach an old worker."""
    for _ in range(rounds):
        (result,) = run.round()
        if result.outcome == outcome:
            return result
    raise AssertionError("no %s request in %d rounds: %s" % (outcome, rounds, result))


def test_the_stand_in_verifies_against_its_bundle(sandbox, tmp_path):
    old, new = make_cert(sandbox, 30), make_cert(sandbox, 300)
    api = make_rest_stage(old)
    (stage,) = probe.http_stages(boto3.Session(), [REGION])
    with probe.TlsServer(pem_of(old)) as server:
        run = probe.Probe(sandbox, boto3.Session(), [stage], lambda s: server.address,
                          str(tmp_path))
        assert run.round()[0].outcome == probe.ACCEPTED
        switch(api, new)
        refused = run.round()[0]
        assert (refused.certificate, refused.outcome) == (new, probe.REFUSED)
        assert refused.detail.startswith(("TLS alert", "connection closed"))
        server.load(pem_of(new))
        assert run.round()[0].outcome == probe.ACCEPTED


def test_a_stage_presents_its_last_deployment(sandbox, tmp_path):
    """needs_deployment: after a switch the stage still presents the old certificate, and the
    probe presents what the stage presents, not what it is configured with."""
    old, new = make_cert(sandbox, 30), make_cert(sandbox, 300)
    api = make_rest_stage(old)
    sandbox.switches(needs_deployment=True)
    (stage,) = probe.http_stages(boto3.Session(), [REGION])
    with probe.TlsServer(pem_of(old)) as server:
        run = probe.Probe(sandbox, boto3.Session(), [stage], lambda s: server.address,
                          str(tmp_path))
        switch(api, new)
        assert [(r.certificate, r.outcome) for r in run.round()] == [(old, probe.ACCEPTED)]
        sandbox.deploy_interval(0)
        client("apigateway").create_deployment(restApiId=api, stageName="prod")
        assert [(r.certificate, r.outcome) for r in run.round()] == [(new, probe.REFUSED)]


def test_a_private_certificate_is_verified_through_its_chain(sandbox, tmp_path):
    """The migration's case (issue 17): a stage on an ACM private certificate issued by a
    subordinate CA presents it with its chain, and nginx in ``verify`` mode trusting only the
    root accepts it; one of another root is refused. Two such certificates do not collide as
    API Gateway's do: the file holds the CA, not the certificates."""
    needs_nginx()
    from conftest import make_acm_cert
    root = sandbox.create_private_ca(REGION, "Backend Root CA")
    issuing = sandbox.create_private_ca(REGION, "Backend Issuing CA", parent_arn=root["arn"])
    ours = make_acm_cert(sandbox, "private", 300, ca_arn=issuing["arn"])
    theirs = make_acm_cert(sandbox, "private", 300)  # a root of its own
    api = make_rest_stage(ours)
    (stage,) = probe.http_stages(boto3.Session(), [REGION])
    trust = tmp_path / "ca.pem"
    trust.write_text(root["certificate_pem"].strip() + "\n")
    nginx, run = nginx_probe(sandbox, tmp_path, stage, trust, "verify")
    try:
        assert [(r.certificate, r.outcome) for r in run.round()] == [(ours, probe.ACCEPTED)]
        switch(api, theirs)
        assert [(r.certificate, r.outcome) for r in run.round()] == [(theirs, probe.REFUSED)]
    finally:
        nginx.stop()


SENT = "2026/12/03 12:54:20 [notice] 9400#9400: signal process started\n"
TAKEN = ("2026/12/03 12:54:20 [notice] 9001#9001: signal 1 (SIGHUP) received from 9400, "
         "reconfiguring\n2026/12/03 12:54:20 [notice] 9001#9001: reconfiguring\n")
STARTED = ("2026/12/03 12:54:20 [notice] 9001#9001: start worker processes\n"
           "2026/12/03 12:54:20 [notice] 9001#9001: start worker process 9376\n")
REQUEST = ("2026/12/03 12:54:22 [info] 9376#9376: *%d client SSL certificate verify error: "
           "(10:certificate has expired) while reading client request headers\n")
PROCESS = "2026/12/03 12:54:22 [notice] 9001#9001: worker process %d exited with code 0\n"


def settles(tmp_path, logged, line=None, timeout=3):
    """Whether ``Nginx.settle`` finds the reloads done, with ``logged`` in the log since the
    reload began, while a line (``line % n``) is added every 20 ms."""
    import threading
    nginx = probe.Nginx.__new__(probe.Nginx)
    nginx.prefix = str(tmp_path)
    log = tmp_path / "error.log"
    log.write_text("before\n")
    since = len(log.read_text())
    with open(log, "a") as fh:
        fh.write(logged)
    stop = threading.Event()

    def more():
        n = 0
        while line and not stop.wait(0.02):
            n += 1
            with open(log, "a") as fh:
                fh.write(line % n)
    writer = threading.Thread(target=more)
    writer.start()
    try:
        return nginx.settle(since, timeout=timeout, quiet=0.3, coalesced=1.0)
    finally:
        stop.set()
        writer.join()


def test_a_reload_settles_while_requests_go_on(tmp_path):
    """nginx has started its new workers, and the probe's requests go on logging one line
    each: the reload has settled."""
    assert settles(tmp_path, SENT + TAKEN + STARTED, REQUEST)


def test_lines_of_the_processes_that_go_on_do_not_settle(tmp_path):
    """Negative control: workers still coming and going."""
    assert not settles(tmp_path, SENT + TAKEN + STARTED, PROCESS, timeout=1.2)


@pytest.mark.parametrize("logged", [SENT, SENT + TAKEN, SENT + TAKEN + STARTED + SENT + TAKEN],
                         ids=["not-taken", "no-new-workers", "workers-before-the-last-signal"])
def test_a_reload_the_master_has_not_acted_on_has_not_settled(tmp_path, logged):
    """The signal's command has returned but the master has not taken it, or has not started
    workers since the last it took: a request now may reach an old worker."""
    assert not settles(tmp_path, logged, timeout=1.2)


def test_two_signals_taken_as_one_settle_once_quiet(tmp_path):
    """Two reloads signalled together, one reconfiguration: settled after ``coalesced``."""
    assert settles(tmp_path, SENT + SENT + TAKEN + STARTED)

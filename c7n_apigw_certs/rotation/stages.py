"""One adapter per kind of stage that presents a client certificate: REST (``apigateway``) and
WebSocket (``apigatewayv2``). They differ in client and field names only; ``rotate`` talks to
both through ``current()``, ``switch()`` and ``deploy()``.

Every call goes through c7n's retry (``TooManyRequestsException`` backs off). Deployments are
also paced: ``CreateDeployment`` is limited to 1 request every 5 seconds per account
(docs/aws-behaviour.md, fact 24), far below the 10 a second of the other calls, so a run that
redeploys many stages waits its turn instead of being refused and backing off.
"""
import threading
import time

from ..audit.usage import REST, WEBSOCKET
from ..clients import client

DEPLOY_INTERVAL = 5.0  # seconds between CreateDeployment calls of one account (fact 24)


def stage_label(stage):
    return "stage:%s/%s" % (stage["apiId"], stage["stageName"])


class Pacer:
    """At most one call per ``interval`` seconds from this process, counted from the end of the
    previous call (by then API Gateway has counted it, so the next one is never early). Not a
    retry: the limit is documented, so waiting for it is cheaper than being refused and backing
    off."""

    def __init__(self, interval=DEPLOY_INTERVAL, clock=time.monotonic, sleep=time.sleep):
        self.interval, self.clock, self.sleep = interval, clock, sleep
        self.last = None
        self.lock = threading.Lock()

    def call(self, fn, *args, **kw):
        with self.lock:
            if self.last is not None:
                delay = self.last + self.interval - self.clock()
                if delay > 0:
                    self.sleep(delay)
            try:
                return fn(*args, **kw)
            finally:
                self.last = self.clock()


class RestStages:
    protocol = REST
    service = "apigateway"
    # IAM: API Gateway's management actions are HTTP verbs on resource paths (fact 39).
    paths = {"apigateway:GET": ("/restapis/*/stages/*",),
             "apigateway:PATCH": ("/restapis/*/stages/*",),
             "apigateway:POST": ("/restapis/*/deployments",)}

    def __init__(self, client, retry, pacer):
        self.client, self.retry, self.pacer = client, retry, pacer

    def current(self, stage):
        """The stage's certificate as API Gateway says it is now."""
        return self.retry(self.client.get_stage, restApiId=stage["apiId"],
                          stageName=stage["stageName"]).get("clientCertificateId")

    def switch(self, stage, cert_id):
        self.retry(self.client.update_stage, restApiId=stage["apiId"],
                   stageName=stage["stageName"], patchOperations=[
                       {"op": "replace", "path": "/clientCertificateId", "value": cert_id}])

    def deploy(self, stage, description):
        self.pacer.call(self.retry, self.client.create_deployment, restApiId=stage["apiId"],
                        stageName=stage["stageName"], description=description)


class WebSocketStages:
    protocol = WEBSOCKET
    service = "apigatewayv2"
    paths = {"apigateway:GET": ("/apis/*/stages/*",),
             "apigateway:PATCH": ("/apis/*/stages/*",),
             "apigateway:POST": ("/apis/*/deployments",)}

    def __init__(self, client, retry, pacer):
        self.client, self.retry, self.pacer = client, retry, pacer

    def current(self, stage):
        return self.retry(self.client.get_stage, ApiId=stage["apiId"],
                          StageName=stage["stageName"]).get("ClientCertificateId")

    def switch(self, stage, cert_id):
        self.retry(self.client.update_stage, ApiId=stage["apiId"],
                   StageName=stage["stageName"], ClientCertificateId=cert_id)

    def deploy(self, stage, description):
        self.pacer.call(self.retry, self.client.create_deployment, ApiId=stage["apiId"],
                        StageName=stage["stageName"], Description=description)


ADAPTERS = (RestStages, WebSocketStages)


def adapters(session, region, retry):
    """{protocol: adapter} sharing one deployment pacer (the limit is per account)."""
    pacer = Pacer()
    return {cls.protocol: cls(client(session, cls.service, region), retry, pacer)
            for cls in ADAPTERS}

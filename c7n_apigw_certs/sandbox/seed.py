"""The demo estate: a small, realistic account across two regions.

us-east-1
  orders-api        REST       prod -> ``orders-prod`` (expired 3 days ago); staging -> shared
  payments-api      REST       prod -> ``shared-backend`` (expires in 5 days)
  inventory-api     REST       prod -> ``shared-backend``
  live-updates      WEBSOCKET  production -> ``live-updates`` (expires in 20 days), an HTTP
                               integration
  public-http-api   HTTP       (HTTP APIs cannot use client certificates)
  certificates      ``reporting`` (expires in 200 days, healthy, used by reporting-api/prod),
                    ``legacy-unused`` (expires in 90 days, used by no stage)
  S3 bucket         ``my-trust-bundles`` (policies/rotate.yml publishes trust bundles there)
eu-west-1
  eu-orders-api     REST       prod -> ``eu-orders`` (expires in 12 days);
                               staging -> ``eu-staging`` (expires in 300 days)
"""
import contextlib

import boto3

from .remote import SETUP_HEADER

DEMO_ACCOUNT = "123456789012"

# (region, description, days until expiry)
CERTIFICATES = [
    ("us-east-1", "orders-prod", -3),
    ("us-east-1", "shared-backend", 5),
    ("us-east-1", "live-updates", 20),
    ("us-east-1", "reporting", 200),
    ("us-east-1", "legacy-unused", 90),
    ("eu-west-1", "eu-orders", 12),
    ("eu-west-1", "eu-staging", 300),
]
# (region, api name, stage name, certificate description)
REST_STAGES = [
    ("us-east-1", "orders-api", "prod", "orders-prod"),
    ("us-east-1", "orders-api", "staging", "shared-backend"),
    ("us-east-1", "payments-api", "prod", "shared-backend"),
    ("us-east-1", "inventory-api", "prod", "shared-backend"),
    ("us-east-1", "reporting-api", "prod", "reporting"),
    ("eu-west-1", "eu-orders-api", "prod", "eu-orders"),
    ("eu-west-1", "eu-orders-api", "staging", "eu-staging"),
]
WEBSOCKET_STAGES = [("us-east-1", "live-updates", "production", "live-updates")]
HTTP_APIS = [("us-east-1", "public-http-api")]
# Where policies/rotate.yml publishes the trust bundles (its ``s3`` destination).
TRUST_BUCKET = ("us-east-1", "my-trust-bundles")


@contextlib.contextmanager
def setup_calls(client):
    """Mark the client's requests as set-up while the ``with`` lasts: the estate a test starts
    from, made as if long before the run, is exempt from the CreateDeployment rate (gate.py)."""
    def mark(request, **kw):
        request.headers[SETUP_HEADER] = "1"
    client.meta.events.register("before-sign", mark)
    try:
        yield client
    finally:
        client.meta.events.unregister("before-sign", mark)


def create_rest_stage(client, api_id, stage_name, cert_id):
    """A stage whose root GET proxies to an HTTP backend: the integration type for which API
    Gateway presents the client certificate (docs/aws-behaviour.md, fact 9). Its deployment is a
    set-up call (``setup_calls``): seeding is not held to the CreateDeployment rate."""
    root = client.get_resources(restApiId=api_id)["items"][0]["id"]
    if stage_name not in {s["stageName"] for s in client.get_stages(restApiId=api_id)["item"]}:
        try:
            client.put_method(restApiId=api_id, resourceId=root, httpMethod="GET",
                              authorizationType="NONE")
            client.put_integration(
                restApiId=api_id, resourceId=root, httpMethod="GET", type="HTTP_PROXY",
                integrationHttpMethod="GET", uri="https://backend.example.com/")
        except client.exceptions.ConflictException:
            pass  # the API's second stage: the method exists already
        with setup_calls(client):
            client.create_deployment(restApiId=api_id, stageName=stage_name)
    client.update_stage(restApiId=api_id, stageName=stage_name, patchOperations=[
        {"op": "replace", "path": "/clientCertificateId", "value": cert_id}])


def seed_demo(make_certificate, session=None):
    """Build the estate. ``make_certificate(region, description, expires_in_days)`` returns a
    certificate id: the sandbox's in-process function or its HTTP control, whichever is at hand.
    Returns {description: certificate id}."""
    session = session or boto3.Session()
    ids = {desc: make_certificate(region, desc, days) for region, desc, days in CERTIFICATES}
    apis = {}
    for region, api_name, stage_name, cert in REST_STAGES:
        client = session.client("apigateway", region_name=region)
        if (region, api_name) not in apis:
            apis[region, api_name] = client.create_rest_api(name=api_name)["id"]
        create_rest_stage(client, apis[region, api_name], stage_name, ids[cert])
    for region, api_name, stage_name, cert in WEBSOCKET_STAGES:
        client = session.client("apigatewayv2", region_name=region)
        api_id = client.create_api(Name=api_name, ProtocolType="WEBSOCKET",
                                   RouteSelectionExpression="$request.body.action")["ApiId"]
        # An HTTP integration: the kind to which a stage presents its certificate (fact 9).
        client.create_integration(ApiId=api_id, IntegrationType="HTTP_PROXY",
                                  IntegrationMethod="POST",
                                  IntegrationUri="https://backend.example.com/updates")
        client.create_stage(ApiId=api_id, StageName=stage_name, ClientCertificateId=ids[cert])
    for region, api_name in HTTP_APIS:
        client = session.client("apigatewayv2", region_name=region)
        api_id = client.create_api(Name=api_name, ProtocolType="HTTP")["ApiId"]
        client.create_stage(ApiId=api_id, StageName="$default")
    region, bucket = TRUST_BUCKET
    session.client("s3", region_name=region).create_bucket(Bucket=bucket)
    return ids

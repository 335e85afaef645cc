"""Which REST and WebSocket stages use which client certificate. Enumeration only: no decisions.

The cost is the least the job allows (docs/aws-behaviour.md, facts 10 and 13): one paged
``GetRestApis`` (500 a page), one ``GetStages`` per REST API, one paged ``GetApis``, and one
``GetStages`` per WebSocket API. HTTP APIs cannot use client certificates (fact 10), so their
stages are not read. Every call goes through c7n's retry, which backs off on
``TooManyRequestsException``.
"""
import logging

from c7n.query import QueryResourceManager, RetryPageIterator
from c7n.utils import local_session

from ..clients import client

log = logging.getLogger("custodian.apigw-client-certificate")

REST = "REST"
WEBSOCKET = "WEBSOCKET"
PAGE_SIZE = 500
retry = QueryResourceManager.retry
# What the listings read, as IAM resource paths (apigateway:GET; docs/aws-behaviour.md, fact 39).
CERTIFICATE_PATHS = ("/clientcertificates",)
STAGE_PATHS = ("/restapis", "/restapis/*/stages", "/apis", "/apis/*/stages")
LISTING_PATHS = CERTIFICATE_PATHS + STAGE_PATHS


def pages(client, operation, **params):
    paginator = client.get_paginator(operation)
    paginator.PAGE_ITERATOR_CLS = RetryPageIterator
    return paginator.paginate(**params)


def certificates(client):
    """{id: certificate} of the region, as API Gateway lists them now (500 a page: fact 6)."""
    return {c["clientCertificateId"]: c
            for page in pages(client, "get_client_certificates", limit=PAGE_SIZE)
            for c in page.get("items", ())}


def stage_entry(protocol, api_id, api_name, stage_name, cert_id, tags=None, api_tags=None,
                created=None, updated=None):
    """One stage that references a certificate. Its tags and its API's, as the listings give
    them, tell who owns it (``owners.py``); its dates tell a stage that moved back after a
    switch from one that came later (``rotate.py``)."""
    return {
        "protocol": protocol,
        "apiId": api_id,
        "apiName": api_name,
        "stageName": stage_name,
        "clientCertificateId": cert_id,
        "label": "%s %s (%s) / %s" % (protocol, api_name, api_id, stage_name),
        "tags": tags or {},
        "apiTags": api_tags or {},
        "createdDate": created,
        "lastUpdatedDate": updated,
    }


def rest_stages(client):
    """Every REST stage that has a certificate. An API deleted mid-listing is skipped."""
    for page in pages(client, "get_rest_apis", limit=PAGE_SIZE):
        for api in page.get("items", ()):
            try:
                stages = retry(client.get_stages, restApiId=api["id"])["item"]
            except client.exceptions.NotFoundException:
                log.info("rest-api:%s vanished while listing its stages", api["id"])
                continue
            for stage in stages:
                if stage.get("clientCertificateId"):
                    yield stage_entry(REST, api["id"], api.get("name", ""),
                                      stage["stageName"], stage["clientCertificateId"],
                                      stage.get("tags"), api.get("tags"),
                                      stage.get("createdDate"), stage.get("lastUpdatedDate"))


def websocket_stages(client):
    """Every WebSocket stage that has a certificate (API Gateway v2)."""
    for page in pages(client, "get_apis", MaxResults=str(PAGE_SIZE)):
        for api in page.get("Items", ()):
            if api.get("ProtocolType") != WEBSOCKET:
                continue
            try:
                for stage_page in pages(client, "get_stages", ApiId=api["ApiId"]):
                    for stage in stage_page.get("Items", ()):
                        if stage.get("ClientCertificateId"):
                            yield stage_entry(WEBSOCKET, api["ApiId"], api.get("Name", ""),
                                              stage["StageName"], stage["ClientCertificateId"],
                                              stage.get("Tags"), api.get("Tags"),
                                              stage.get("CreatedDate"),
                                              stage.get("LastUpdatedDate"))
            except client.exceptions.NotFoundException:
                log.info("apigwv2:%s vanished while listing its stages", api["ApiId"])


def all_stages(session_factory, region):
    """Fresh listings of every stage that references a certificate, REST and WebSocket."""
    session = local_session(session_factory)
    yield from rest_stages(client(session, "apigateway", region))
    yield from websocket_stages(client(session, "apigatewayv2", region))


def stages_by_certificate(session_factory, region):
    """{certificate id: [stage entries]} for one region."""
    found = {}
    for stage in all_stages(session_factory, region):
        found.setdefault(stage["clientCertificateId"], []).append(stage)
    return found

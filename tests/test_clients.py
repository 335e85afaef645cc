"""clients.client: one boto3 client per session, service and region (c7n_apigw_certs/clients.py)."""
import gc

import boto3

from c7n_apigw_certs import clients


def session():
    return boto3.Session(aws_access_key_id="x", aws_secret_access_key="x",
                         region_name="us-east-1")


def test_one_client_per_session_service_and_region():
    first, second = session(), session()
    made = clients.client(first, "apigateway", "us-east-1")
    assert clients.client(first, "apigateway", "us-east-1") is made
    assert made.meta.region_name == "us-east-1"
    others = [clients.client(first, "apigateway", "eu-west-1"),
              clients.client(first, "apigatewayv2", "us-east-1"),
              clients.client(second, "apigateway", "us-east-1")]
    assert len({id(c) for c in [made] + others}) == 4
    assert others[0].meta.region_name == "eu-west-1"
    assert others[1].meta.service_model.service_name == "apigatewayv2"


def test_a_session_gone_takes_its_clients_with_it():
    gone = session()
    clients.client(gone, "ssm", "us-east-1")
    held = len(clients._made)
    del gone
    gc.collect()
    assert len(clients._made) == held - 1

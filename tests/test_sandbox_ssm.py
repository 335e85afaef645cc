"""SSM Parameter Store's value sizes per tier in the sandbox (fact 23; moto enforces none)."""
import pytest

from c7n_apigw_certs.sandbox.ssm import (
    NO_DOWNGRADE, TOO_BIG, TOO_BIG_FOR_STANDARD, resolve_tier)
from conftest import client

FITS = "x" * 4096
OVER = "x" * 4097
ADVANCED_MAX = "x" * 8192


def put(name, value, **kw):
    return client("ssm").put_parameter(Name=name, Value=value, Type="String", **kw)


def refused(name, value, **kw):
    ssm = client("ssm")
    with pytest.raises(ssm.exceptions.ClientError) as err:
        put(name, value, **kw)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return err.value.response["Error"]["Message"]


def tier(name):
    (found,) = client("ssm").describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"]
    return found["Tier"]


def test_standard_holds_4096_bytes(sandbox):
    assert put("/certs/fits", FITS)["Tier"] == "Standard"
    assert refused("/certs/over", OVER) == TOO_BIG_FOR_STANDARD
    assert refused("/certs/over", OVER, Tier="Standard") == TOO_BIG_FOR_STANDARD
    assert TOO_BIG_FOR_STANDARD.startswith(
        "Standard tier parameters support a maximum parameter value of 4096 characters.")


def test_bytes_not_characters(sandbox):
    """4 KB: a value of 2049 two-byte characters is 4098 bytes, over the Standard limit."""
    assert refused("/certs/wide", "é" * 2049) == TOO_BIG_FOR_STANDARD
    assert put("/certs/wide", "é" * 2048)["Tier"] == "Standard"


def test_advanced_holds_8192_bytes(sandbox):
    assert put("/certs/big", ADVANCED_MAX, Tier="Advanced")["Tier"] == "Advanced"
    assert refused("/certs/bigger", ADVANCED_MAX + "x", Tier="Advanced") == TOO_BIG
    assert client("ssm").get_parameter(Name="/certs/big")["Parameter"]["Value"] == ADVANCED_MAX


def test_intelligent_tiering_picks_the_tier(sandbox):
    assert put("/certs/small", "pem", Tier="Intelligent-Tiering")["Tier"] == "Standard"
    assert tier("/certs/small") == "Standard"
    assert put("/certs/large", OVER, Tier="Intelligent-Tiering")["Tier"] == "Advanced"
    assert tier("/certs/large") == "Advanced"
    assert refused("/certs/huge", ADVANCED_MAX + "x", Tier="Intelligent-Tiering") == TOO_BIG
    # grows past Standard on overwrite: upgraded; shrinks again: stays Advanced
    put("/certs/small", OVER, Tier="Intelligent-Tiering", Overwrite=True)
    assert tier("/certs/small") == "Advanced"
    assert put("/certs/small", "pem", Tier="Intelligent-Tiering", Overwrite=True)["Tier"] == \
        "Advanced"


def test_overwrite_without_tier_keeps_the_tier(sandbox):
    put("/certs/a", "pem", Tier="Advanced")
    assert put("/certs/a", OVER, Overwrite=True)["Tier"] == "Advanced"
    put("/certs/b", "pem")
    assert refused("/certs/b", OVER, Overwrite=True) == TOO_BIG_FOR_STANDARD
    assert client("ssm").get_parameter(Name="/certs/b")["Parameter"]["Value"] == "pem"


def test_advanced_cannot_go_back_to_standard(sandbox):
    put("/certs/a", OVER, Tier="Advanced")
    assert refused("/certs/a", "pem", Tier="Standard", Overwrite=True) == NO_DOWNGRADE
    assert NO_DOWNGRADE.startswith("This parameter uses the advanced-parameter tier. You can't "
                                   "downgrade a parameter")
    assert tier("/certs/a") == "Advanced"


def test_existing_parameter_without_overwrite_is_moto_s_answer(sandbox):
    put("/certs/a", "pem")
    ssm = client("ssm")
    with pytest.raises(ssm.exceptions.ParameterAlreadyExists):
        put("/certs/a", OVER)


@pytest.mark.parametrize("value,requested,current,expected", [
    ("x", None, None, "Standard"),
    ("x", None, "Advanced", "Advanced"),
    (OVER, "Advanced", None, "Advanced"),
    (OVER, "Intelligent-Tiering", None, "Advanced"),
    (FITS, "Intelligent-Tiering", None, "Standard"),
    ("x", "Intelligent-Tiering", "Advanced", "Advanced"),
    ("x", "Standard", "Standard", "Standard"),
])
def test_resolve_tier(value, requested, current, expected):
    assert resolve_tier(value, requested, current) == expected

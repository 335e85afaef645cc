"""``custodian report`` on certificates, through the real CLI after a sandbox ``custodian run``:
plain headers, the effective expiry, readable stages, a region column, a grid that fits a
terminal of ``report.FIT_COLUMNS`` columns."""
import csv
import datetime
import io
import json
import pathlib

import pytest
from conftest import REGION, make_cert, make_rest_stage, make_websocket_stage, run_cli, write_policy
from test_metrics import AT, cert_at, run_frozen

from c7n_apigw_certs.audit import report

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPIRING = str(ROOT / "policies" / "expiring.yml")
WEST = "eu-west-1"
HEADERS = ["id", "kind", "description", "expires", "days_left", "condition", "stages", "Region"]
DAY = datetime.timedelta(days=1)


@pytest.fixture
def sandbox(sandbox):
    """Standing still at AT, where ``run_frozen`` runs custodian: days are exact."""
    sandbox.set_now(AT.isoformat(), tick=False)
    return sandbox


@pytest.fixture
def estate(sandbox):
    """Certificates expired, near, within the window and far; REST stages of three APIs on one,
    a WebSocket stage on another; one whose PEM expires before its expirationDate."""
    certs = {
        "expired": cert_at(sandbox, "orders-prod", AT - 3 * DAY),
        "near": cert_at(sandbox, "shared-backend", AT + 5 * DAY - datetime.timedelta(hours=2)),
        "ws": cert_at(sandbox, "live-updates", AT + 20 * DAY),
        "pem": cert_at(sandbox, "pem-says-sooner", AT + 200 * DAY,
                       not_after=(AT + 12 * DAY).isoformat()),
        "far": cert_at(sandbox, "reporting", AT + 200 * DAY),
    }
    make_rest_stage(certs["expired"], "orders-api")
    orders = make_rest_stage(certs["near"], "orders-api", "staging")
    make_rest_stage(certs["near"], "payments-api")
    make_rest_stage(certs["near"], "inventory-and-fulfilment-api", "production")
    make_websocket_stage(certs["ws"], "live-updates", "production")
    make_rest_stage(certs["far"], "reports-api")
    certs["orders-api"] = orders
    return certs


def report_of(sandbox, tmp_path, policy, fmt, regions=(REGION,), extra=()):
    args = ["report", "-s", str(tmp_path / "out"), "--format", fmt] + list(extra)
    for region in regions:
        args += ["--region", region]
    return run_cli("custodian", args + [policy], sandbox.env).stdout


def csv_rows(text):
    header, *rows = csv.reader(io.StringIO(text))
    return header, {row[0]: dict(zip(header, row, strict=True)) for row in rows}


def test_csv_has_plain_headers_and_the_effective_expiry(sandbox, tmp_path, estate):
    found, _ = run_frozen(sandbox, tmp_path, EXPIRING)
    header, rows = csv_rows(report_of(sandbox, tmp_path, EXPIRING, "csv"))
    assert header == HEADERS
    assert set(rows) == {estate[k] for k in ("expired", "near", "ws", "pem")}
    assert rows[estate["expired"]] == {
        "id": estate["expired"], "kind": "generated", "description": "orders-prod",
        "expires": "2030-06-12 12:00",
        # c7n's csv quotes a leading "-" so that no spreadsheet reads a formula (fact 66)
        "days_left": "'-3", "condition": "expired", "stages": "REST orders-api/prod",
        "Region": REGION}
    assert rows[estate["near"]] == {
        "id": estate["near"], "kind": "generated", "description": "shared-backend",
        "expires": "2030-06-20 10:00", "days_left": "5", "condition": "expires",
        # one line a stage, sorted; a line over STAGE_WIDTH wraps, indented
        "stages": "REST inventory-and-\n  fulfilment-api/production\nREST orders-api/staging\n"
                  "REST payments-api/prod",
        "Region": REGION}
    assert rows[estate["ws"]]["stages"] == "WS live-updates/production"
    assert rows[estate["ws"]]["days_left"] == "20"
    # The PEM's notAfter, not expirationDate (200 days away): what the filter used.
    assert rows[estate["pem"]]["expires"] == "2030-06-27 12:00"
    assert rows[estate["pem"]]["stages"] == ""
    # The report's columns are the filter's own annotations.
    for cert in found[REGION]:
        row = rows[cert["clientCertificateId"]]
        assert row["days_left"].lstrip("'") == str(cert["c7n:days-left"])
        assert row["condition"] == cert["c7n:condition"]
        assert row["expires"] == cert["c7n:expires"][:16].replace("T", " ")


def test_grid_fits_the_terminal(sandbox, tmp_path, estate):
    run_frozen(sandbox, tmp_path, EXPIRING)
    grid = report_of(sandbox, tmp_path, EXPIRING, "grid")
    lines = grid.rstrip("\n").splitlines()
    widest = max(len(line) for line in lines)
    assert widest <= report.FIT_COLUMNS, "\n" + grid
    header = [cell.strip() for cell in lines[1].strip("|").split("|")]
    assert header == HEADERS
    assert "| REST orders-api/staging" in grid and "| WS live-updates/production" in grid
    # A description up to DESCRIPTION_FIT characters still fits.
    cert_at(sandbox, "d" * report.DESCRIPTION_FIT, AT + 2 * DAY)
    run_frozen(sandbox, tmp_path, EXPIRING)
    grid = report_of(sandbox, tmp_path, EXPIRING, "grid")
    assert max(len(line) for line in grid.splitlines()) <= report.FIT_COLUMNS, "\n" + grid


def test_json_records_carry_the_plain_keys(sandbox, tmp_path, estate):
    run_frozen(sandbox, tmp_path, EXPIRING)
    records = json.loads(report_of(sandbox, tmp_path, EXPIRING, "json"))
    by_id = {r["id"]: r for r in records}
    assert set(by_id) == {estate[k] for k in ("expired", "near", "ws", "pem")}
    near = by_id[estate["near"]]
    assert (near["expires"], near["days_left"], near["expired"], near["Region"]) == (
        "2030-06-20 10:00", 5, False, REGION)
    assert near["stages"].splitlines()[-1] == "REST payments-api/prod"
    assert near["c7n:stages"][0]["apiId"]  # the structured stages stay for programs


def test_two_regions_one_region_column(sandbox, tmp_path, estate):
    """With several regions c7n adds its own ``Region`` column: it takes this one's place, so
    there is still one, last, with each certificate's region."""
    west = cert_at(sandbox, "eu-orders", AT + 12 * DAY, region=WEST)
    make_rest_stage(west, "eu-orders-api", region=WEST)
    run_frozen(sandbox, tmp_path, EXPIRING, regions=(REGION, WEST))
    header, rows = csv_rows(report_of(sandbox, tmp_path, EXPIRING, "csv",
                                      regions=(REGION, WEST)))
    assert header == HEADERS
    assert rows[west]["Region"] == WEST and rows[west]["stages"] == "REST eu-orders-api/prod"
    assert rows[estate["near"]]["Region"] == REGION
    grid = report_of(sandbox, tmp_path, EXPIRING, "grid", regions=(REGION, WEST))
    assert max(len(line) for line in grid.splitlines()) <= report.FIT_COLUMNS, "\n" + grid


def test_without_the_expiring_filter_the_expiry_is_still_the_effective_one(
        sandbox, tmp_path, estate):
    """policies/unused.yml has no expiring filter: the columns come from the listing."""
    unused = str(ROOT / "policies" / "unused.yml")
    run_frozen(sandbox, tmp_path, unused)
    header, rows = csv_rows(report_of(sandbox, tmp_path, unused, "csv"))
    assert header == HEADERS
    assert rows == {estate["pem"]: {
        "id": estate["pem"], "kind": "generated", "description": "pem-says-sooner",
        "expires": "2030-06-27 12:00", "days_left": "12", "condition": "expires", "stages": "",
        "Region": REGION}}


def test_c7n_report_options_still_work(sandbox, tmp_path, estate):
    """``--field HEADER=EXPR`` adds a column; ``--no-default-fields`` keeps only those."""
    run_frozen(sandbox, tmp_path, EXPIRING)
    header, rows = csv_rows(report_of(
        sandbox, tmp_path, EXPIRING, "csv",
        extra=["--no-default-fields", "--field", "id=id", "--field",
               "listed expiry=expirationDate"]))
    assert header == ["id", "listed expiry"]
    assert rows[estate["pem"]]["listed expiry"].startswith("2031-01-01")


def test_a_policy_of_another_resource_is_untouched(sandbox, tmp_path, estate):
    """The rest-stage ``expiring`` filter reads certificates too; its records keep their
    own shape (no report keys leak onto stages)."""
    policy = {"name": "stages", "resource": "aws.rest-stage",
              "filters": [{"type": "expiring", "days": 10}]}
    found, _ = run_frozen(sandbox, tmp_path, write_policy(tmp_path, policy))
    assert {s["stageName"] for s in found[REGION]} == {"prod", "staging", "production"}
    for stage in found[REGION]:
        assert not (set(report.FIELDS) - {"description", "kind"}) & set(
            stage["c7n:client-certificate"])


def test_a_pem_that_does_not_parse_is_reported_once(caplog):
    """The listing (for these columns) and the expiring filter both read the PEM: one warning
    a certificate, not two."""
    from c7n_apigw_certs.audit.filters import annotate_expiry, effective_expiry
    cert = {"clientCertificateId": "once01", "pemEncodedCertificate": "not a PEM",
            "expirationDate": AT + 3 * DAY, "c7n:stages": []}
    with caplog.at_level("WARNING"):
        expires, source = effective_expiry(cert)  # the listing
        annotate_expiry(cert, AT)  # the filter
    assert (expires, source) == (AT + 3 * DAY, "expirationDate")
    assert caplog.text.count("client-certificate:once01") == 1
    assert "using expirationDate, not pemEncodedCertificate" in caplog.text
    assert cert["days_left"] == 3 and cert["expires"] == "2030-06-18 12:00"


def test_c7n_org_report_has_one_region_column(sandbox, tmp_path):
    """c7n-org's report puts Account, Region and Policy first; its Region and this one merge."""
    import yaml
    sandbox.reset_clock()  # c7n-org runs on the real clock
    accounts = {"alpha": "111111111111", "beta": "222222222222"}
    ids = {name: make_cert(sandbox, 4, account=account, description=name)
           for name, account in accounts.items()}
    config = tmp_path / "accounts.yml"
    config.write_text(yaml.safe_dump({"accounts": [
        {"name": name, "account_id": account, "regions": [REGION],
         "role": "arn:aws:iam::%s:role/custodian" % account}
        for name, account in accounts.items()]}))
    args = ["-c", str(config), "-s", str(tmp_path / "org-out"), "-u", EXPIRING]
    run_cli("c7n-org", ["run", "--cache-period", "0"] + args, sandbox.env)
    header, *rows = csv.reader(io.StringIO(run_cli("c7n-org", ["report"] + args,
                                                   sandbox.env).stdout))
    assert header == ["Account", "Region", "Policy"] + [h for h in HEADERS if h != "Region"]
    assert sorted((row[0], row[1], row[3]) for row in rows) == [
        ("alpha", REGION, ids["alpha"]), ("beta", REGION, ids["beta"])]

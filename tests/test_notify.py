"""policies/notify.yml through the real ``custodian`` against the sandbox, and the shipped
c7n-mailer template rendered by c7n-mailer itself: the message is read from the sandbox's SQS
queue with c7n-mailer's own receiver, decoded by its own processor, and rendered by its own
e-mail code (``get_mimetext_message``, which calls ``get_rendered_jinja``) with the folder that
``c7n-apigw-certs mailer-templates`` prints among its ``templates_folders``."""
import datetime
import logging
import os
import pathlib
import subprocess

import pytest
from c7n.resources import load_resources
from c7n.schema import generate, validate
from c7n_mailer.sqs_queue_processor import MailerSqsQueueIterator, MailerSqsQueueProcessor
from c7n_mailer.utils_email import get_mimetext_message
from conftest import (
    ACCOUNT, BIN, REGION, api_calls, assume_role_allowed, client, make_rest_stage,
    make_websocket_stage, run_cli)
from test_metrics import AT, cert_at, run_frozen

from c7n_apigw_certs import iam
from c7n_apigw_certs.cli import mailer_templates

ROOT = pathlib.Path(__file__).resolve().parents[1]
POLICY_FILE = ROOT / "policies" / "notify.yml"
QUEUE = "c7n-mailer"
TEMPLATE = "apigw-client-certificate-expiry"
DAY = datetime.timedelta(days=1)
log = logging.getLogger("test_notify")


@pytest.fixture
def sandbox(sandbox):
    """conftest's sandbox standing still at AT (as custodian in ``run_frozen``), with the
    policy's queue."""
    sandbox.set_now(AT.isoformat(), tick=False)
    sandbox.queue_url = client("sqs").create_queue(QueueName=QUEUE)["QueueUrl"]
    return sandbox


def folders():
    """c7n-mailer's own default folders (its cli.py), plus the one our command prints, as
    ``c7n-mailer --templates "$(c7n-apigw-certs mailer-templates)"`` would give them."""
    import c7n_mailer
    printed = run_cli("c7n-apigw-certs", ["mailer-templates"], os.environ).stdout.strip()
    module_dir = os.path.dirname(os.path.abspath(c7n_mailer.__file__))
    return [os.path.join(module_dir, "msg-templates"),
            os.path.join(module_dir, "..", "msg-templates"), os.path.abspath("."), printed]


def mailer_config():
    return {"queue_url": "unused", "from_address": "custodian@example.com", "region": REGION,
            "templates_folders": folders()}


def received(queue_url):
    """Every message on the queue, received and decoded as c7n-mailer's SQS processor does:
    (raw SQS message, decoded message)."""
    processor = MailerSqsQueueProcessor(mailer_config(), None, log)
    decoded = []
    processor.handle_targets = lambda message, *_, **__: decoded.append(message)
    found = []
    iterator = MailerSqsQueueIterator(client("sqs"), queue_url, log, timeout=0)
    iterator.msg_attributes = ["mtype", "recipient"]  # as MailerSqsQueueProcessor.run sets
    for raw in iterator:
        processor.process_sqs_message(raw)
        found.append((raw, decoded[-1]))
        iterator.ack(raw)
    return found


def render(message):
    """The mail c7n-mailer would send for the message: (subject, content type, text)."""
    mime = get_mimetext_message(mailer_config(), log, message, message["resources"],
                                ["platform-team@example.com"])
    return mime["Subject"], mime.get_content_type(), \
        mime.get_payload(decode=True).decode("utf-8")


@pytest.fixture
def estate(sandbox):
    """Certificates on both sides of the 30-day window, REST and WebSocket stages, one stage
    owned by a CloudFormation stack, one certificate no stage uses."""
    certs = {
        "expired": cert_at(sandbox, "orders-prod", AT - 3 * DAY),
        "near": cert_at(sandbox, "shared-backend", AT + 5 * DAY),
        "ws": cert_at(sandbox, "live-updates", AT + 20 * DAY),
        "far": cert_at(sandbox, "reporting", AT + 200 * DAY),
        "unused": cert_at(sandbox, "legacy-unused", AT + 2 * DAY),
    }
    apis = {"orders": make_rest_stage(certs["expired"], api_name="orders-api")}
    make_rest_stage(certs["near"], stage="staging", api_id=apis["orders"])
    apis["payments"] = make_rest_stage(certs["near"], api_name="payments-api")
    apis["chat"] = make_websocket_stage(certs["near"], api_name="chat", stage="production")
    apis["live"] = make_websocket_stage(certs["ws"], api_name="live-updates", stage="live")
    make_rest_stage(certs["far"], api_name="reporting-api")
    sandbox.tag_as_stack(
        "arn:aws:apigateway:%s::/restapis/%s/stages/prod" % (REGION, apis["payments"]),
        "arn:aws:cloudformation:%s:%s:stack/payments/1" % (REGION, ACCOUNT), "ProdStage")
    return certs, apis


def test_the_shipped_policy_mail_rendered_by_c7n_mailer(sandbox, tmp_path, estate):
    certs, apis = estate
    sandbox.reset_counters()
    found, proc = run_frozen(sandbox, tmp_path, str(POLICY_FILE))
    assert {r["clientCertificateId"] for r in found[REGION]} == {
        certs["expired"], certs["near"], certs["ws"]}
    assert api_calls(sandbox, "sqs") == {"SendMessage": 1}  # one message for the three
    ((raw, message),) = received(sandbox.queue_url)
    assert raw["MessageAttributes"]["mtype"]["StringValue"] == "maidmsg/1.0"
    assert message["action"]["template"] == TEMPLATE
    assert message["action"]["to"] == ["platform-team@example.com"]
    assert message["policy"]["name"] == "apigw-client-certificates-notify"

    subject, content_type, text = render(message)
    assert subject == "[custodian %s] API Gateway client certificates expire soon in %s" % (
        ACCOUNT, REGION)
    assert content_type == "text/plain"
    lines = [line.rstrip() for line in text.splitlines()]
    assert "API Gateway client certificates that expire soon: 3 in account" in lines[0]
    assert lines[0].endswith("region us-east-1, 1 already expired.")
    # Soonest first: each certificate, its days, effective expiry, owner and every stage.
    expected = [
        'Certificate %s "orders-prod"' % certs["expired"],
        "  EXPIRED 3 day(s) ago, on %s" % (AT - 3 * DAY).isoformat(),
        "  owner: no template",
        "  presented by 1 stage(s):",
        "    - REST orders-api (%s) / stage prod" % apis["orders"],
        "",
        'Certificate %s "shared-backend"' % certs["near"],
        "  expires in 5 day(s), on %s" % (AT + 5 * DAY).isoformat(),
        "  owner: no template",
        "  presented by 3 stage(s):",
    ]
    start = lines.index(expected[0])
    assert lines[start:start + len(expected)] == expected
    stages = lines[start + len(expected):start + len(expected) + 3]
    assert sorted(stages) == sorted([
        "    - REST orders-api (%s) / stage staging" % apis["orders"],
        "    - REST payments-api (%s) / stage prod, owned by CloudFormation stack payments "
        "(logical id ProdStage)" % apis["payments"],
        "    - WebSocket chat (%s) / stage production" % apis["chat"],
    ])
    assert 'Certificate %s "live-updates"' % certs["ws"] in lines
    assert "    - WebSocket live-updates (%s) / stage live" % apis["live"] in lines
    assert "  expires in 20 day(s), on %s" % (AT + 20 * DAY).isoformat() in lines
    for left_out in ("reporting", "legacy-unused", certs["far"], certs["unused"]):
        assert left_out not in text
    # What to do next: the rotate policy, in its order.
    after = lines[lines.index("What to do next"):]
    assert "  custodian run -s out --region us-east-1 policies/rotate.yml" in after
    steps = [line for line in after if line[:5] in ("  1. ", "  2. ", "  3. ", "  4. ")]
    assert [s[:4] for s in steps] == ["  1.", "  2.", "  3.", "  4."]
    assert "generates a successor" in steps[0] and "publishes" in steps[1]
    assert "switches every stage" in steps[2] and "deletes the old certificate" in steps[3]
    assert text.rstrip().endswith("(%s UTC)." % message_start(message))
    assert "policy apigw-client-certificates-notify" in text


def message_start(message):
    return datetime.datetime.utcfromtimestamp(message["execution_start"]).isoformat()


def test_c7n_mailer_replay_prints_the_mail(sandbox, tmp_path, estate):
    """What the policy file says a user can run: ``c7n-mailer-replay -T -t "$(c7n-apigw-certs
    mailer-templates)"`` on the raw message prints the mail."""
    certs, _ = estate
    run_frozen(sandbox, tmp_path, str(POLICY_FILE))
    ((raw, _),) = received(sandbox.queue_url)
    (tmp_path / "message.b64").write_text(raw["Body"])
    (tmp_path / "mailer.yml").write_text(
        "queue_url: %s\nfrom_address: custodian@example.com\nregion: %s\n"
        % (sandbox.queue_url, REGION))
    proc = subprocess.run(
        [os.path.join(BIN, "c7n-mailer-replay"), "-c", str(tmp_path / "mailer.yml"), "-T",
         "-t", mailer_templates(), str(tmp_path / "message.b64")],
        env=sandbox.env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "API Gateway client certificates that expire soon: 3" in proc.stdout
    assert 'Certificate %s "orders-prod"' % certs["expired"] in proc.stdout
    assert "What to do next" in proc.stdout


def test_the_command_prints_the_installed_folder():
    printed = run_cli("c7n-apigw-certs", ["mailer-templates"], os.environ).stdout
    assert printed == mailer_templates() + "\n"
    assert os.path.isfile(os.path.join(printed.strip(), TEMPLATE + ".j2"))


def test_dryrun_sends_nothing(sandbox, tmp_path, estate):
    sandbox.reset_counters()
    found, _ = run_frozen(sandbox, tmp_path, str(POLICY_FILE), extra=["--dryrun"])
    assert len(found[REGION]) == 3
    assert api_calls(sandbox, "sqs") == {}
    assert received(sandbox.queue_url) == []


def test_nothing_expiring_no_message(sandbox, tmp_path):
    make_rest_stage(cert_at(sandbox, "far", AT + 200 * DAY))
    sandbox.reset_counters()
    run_frozen(sandbox, tmp_path, str(POLICY_FILE))
    assert api_calls(sandbox, "sqs") == {}


# -- configuration and IAM -----------------------------------------------------------------
NOTIFY = {"type": "notify", "template": TEMPLATE, "to": ["a@example.com"],
          "transport": {"type": "sqs", "queue": "q"}}


@pytest.mark.parametrize("drop", ["to", "transport"])
def test_notify_needs_to_and_transport(drop):
    load_resources(("aws.apigw-client-certificate",))
    action = {k: v for k, v in NOTIFY.items() if k != drop}
    policy = {"name": "n", "resource": "aws.apigw-client-certificate", "actions": [action]}
    assert validate({"policies": [dict(policy, actions=[NOTIFY])]}, generate()) == []
    (error, _) = validate({"policies": [policy]}, generate())
    assert "is not valid under any of the given schemas" in str(error)


def test_the_shipped_policy_needs_send_message():
    doc = iam.policy_document([str(POLICY_FILE)], region=REGION, account=ACCOUNT)
    assert {"Sid": "AcmListCertificatesSqsSendMessage", "Effect": "Allow",
            "Action": ["acm:ListCertificates", "sqs:SendMessage"],
            "Resource": ["*"]} in doc["Statement"]
    assert sorted(a for s in doc["Statement"] for a in s["Action"]) == [
        "acm-pca:DescribeCertificateAuthority", "acm:DescribeCertificate", "acm:GetCertificate",
        "acm:ListCertificates", "apigateway:GET", "sqs:SendMessage"]


def test_runs_under_the_generated_document_and_not_without_send_message(
        sandbox, tmp_path, estate):
    """As a role with exactly the generated document, the message is sent; without
    sqs:SendMessage the sandbox refuses it, naming the action, and nothing is queued."""
    doc = iam.policy_document([str(POLICY_FILE)], region=REGION, account=ACCOUNT)
    role = assume_role_allowed(doc)
    run_frozen(sandbox, tmp_path, str(POLICY_FILE), extra=["--assume", role])
    assert len(received(sandbox.queue_url)) == 1

    narrowed = dict(doc, Statement=[dict(s, Action=[a for a in s["Action"]
                                                    if a != "sqs:SendMessage"])
                                    for s in doc["Statement"]])
    role = assume_role_allowed(narrowed, role="without-send-message")
    _, proc = run_frozen(sandbox, tmp_path, str(POLICY_FILE), extra=["--assume", role],
                         check=False)
    assert proc.returncode != 0
    assert "not authorized to perform: sqs:SendMessage on resource: arn:aws:sqs:%s:%s:%s" % (
        REGION, ACCOUNT, QUEUE) in proc.stderr
    assert received(sandbox.queue_url) == []


def notify_policy(filters):
    return {"name": "notify", "resource": "aws.apigw-client-certificate", "filters": filters,
            "actions": [dict(NOTIFY, transport={"type": "sqs", "queue": QUEUE})]}


def test_the_pem_expiry_and_a_policy_without_the_expiring_filter(sandbox, tmp_path):
    """A PEM whose notAfter is earlier than its expirationDate: the mail gives the PEM's date
    and says so. Without the expiring filter the mail still renders, with expirationDate and
    a hint, instead of failing in c7n-mailer."""
    cert = cert_at(sandbox, "pem-early", AT + 200 * DAY,
                   not_after=(AT + 10 * DAY).isoformat())
    make_rest_stage(cert, api_name="pem-api")
    run_frozen(sandbox, tmp_path, notify_policy([{"type": "expiring", "days": 30}]))
    ((_, message),) = received(sandbox.queue_url)
    _, _, text = render(message)
    assert "  expires in 10 day(s), on %s (the PEM's notAfter, earlier than its " \
        "expirationDate)" % (AT + 10 * DAY).isoformat() in text

    run_frozen(sandbox, tmp_path, notify_policy([{"type": "in-use"}]))
    ((_, message),) = received(sandbox.queue_url)
    _, _, text = render(message)
    assert 'Certificate %s "pem-early"' % cert in text
    assert "(put the expiring filter before notify for the days left)" in text
    assert "    - REST pem-api (" in text


def test_missing_or_null_annotations_render_without_bad_advice():
    """A message whose resources lack annotations (another plugin's policy, an older run):
    a null c7n:days-left does not break the sort, and a certificate whose stages were not
    listed is not called unused (that advice would delete a certificate in use)."""
    resources = [
        {"clientCertificateId": "nulls1", "c7n:days-left": None, "expirationDate": "2030-01-01"},
        {"clientCertificateId": "nostg1", "c7n:days-left": 4, "c7n:expired": False,
         "c7n:expires": "2030-01-05T00:00:00+00:00"},
        {"clientCertificateId": "today1", "c7n:days-left": 0, "c7n:expired": True,
         "c7n:expires": "2030-01-01T00:00:00+00:00", "c7n:stages": []},
    ]
    message = {"action": {"template": TEMPLATE, "template_format": "plain", "subject": "s",
                          "to": ["platform-team@example.com"]},
               "policy": {"name": "p", "resource": "aws.apigw-client-certificate"},
               "account": "acct", "account_id": ACCOUNT, "region": REGION,
               "execution_start": 0, "resources": resources}
    _, _, text = render(message)
    assert text.index("today1") < text.index("nostg1") < text.index("nulls1")
    nulls, nostg, today = (text.split("Certificate %s" % i, 1)[1].split("Certificate", 1)[0]
                           for i in ("nulls1", "nostg1", "today1"))
    assert "put the expiring filter before notify" in nulls
    assert "its stages are unknown here" in nostg and "delete it" not in nostg
    assert "EXPIRED today" in today and "no stage presents it" in today

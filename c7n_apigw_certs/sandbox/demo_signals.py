"""The signals part of ``c7n-apigw-certs demo``: each shipped signal policy run with the stock
``custodian`` on the demo estate, and its output read back as the people who act on it see it.

Each ``show_*`` prints the command a user types, runs it, and prints what arrived: the metric
CloudWatch holds, the event an EventBridge rule delivered to its queue, the mail c7n-mailer
renders from the notify message (``c7n-mailer-replay``, c7n-mailer's own command).
"""
import base64
import datetime
import json
import os
import subprocess
import tempfile
import zlib

import boto3

from ..audit.report import short_id
from .demo import find_command, indent

MAIL_QUEUE = ("us-east-1", "c7n-mailer")  # the queue policies/notify.yml names
EVENT_RULE = "apigw-client-certificate-expiry"


class Signals:
    """The signal policies on one running sandbox. ``run(policy, out)`` runs ``custodian``
    (given by the demo) and returns the output directory."""

    def __init__(self, env, run, regions):
        self.env, self.run, self.regions = env, run, regions
        self.session = boto3.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                     aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])

    def client(self, service, region):
        return self.session.client(service, region_name=region,
                                   endpoint_url=self.env["AWS_ENDPOINT_URL"])

    def prepare(self):
        """What the account would already have: the mailer's queue, and a rule that sends the
        expiry events to a queue in each region (a chat integration would sit there)."""
        region, name = MAIL_QUEUE
        self.mail_queue = self.client("sqs", region).create_queue(QueueName=name)["QueueUrl"]
        self.event_queues = {}
        for region in self.regions:
            sqs, events = self.client("sqs", region), self.client("events", region)
            url = sqs.create_queue(QueueName="certificate-events")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"]["QueueArn"]
            events.put_rule(Name=EVENT_RULE, EventPattern=json.dumps({
                "source": ["c7n-apigw-certs"],
                "detail-type": ["API Gateway Client Certificate Approaching Expiration"]}))
            events.put_targets(Rule=EVENT_RULE, Targets=[{"Id": "queue", "Arn": arn}])
            self.event_queues[region] = url

    def show_report(self, policy, out):
        """``custodian report`` on the audit's output (the audit ran just before)."""
        cmd = ["report", "-s", out] + [a for r in self.regions for a in ("--region", r)] + [
            "--format", "grid", policy]
        print("$ custodian " + " ".join(cmd))
        proc = subprocess.run([find_command("custodian")] + cmd, env=self.env,
                              capture_output=True, text=True)
        print(proc.stdout.rstrip() if proc.returncode == 0 else
              "custodian report failed:\n" + proc.stderr[-2000:])

    def show_findings(self, policy, out, day=0):
        self.run(policy, out, day)
        print("Security Hub findings (GetFindings), by record state:")
        for region in self.regions:
            pages = self.client("securityhub", region).get_paginator("get_findings").paginate(
                Filters={"GeneratorId": [{"Value": "apigw-client-certificates-findings",
                                          "Comparison": "EQUALS"}]})
            found = [f for page in pages for f in page["Findings"]]
            for finding in sorted(found, key=lambda f: (f["RecordState"], f["Id"])):
                other = finding["Resources"][0].get("Details", {}).get("Other", {})
                when = ("days left %s" if finding["RecordState"] == "ACTIVE" else
                        "(days left %s when posted)") % other.get("daysLeft")
                print("  %-10s %-8s %-13s %s %-16s %s, %s stage(s)" % (
                    region, finding["RecordState"], finding["Severity"]["Label"],
                    short_id(other.get("clientCertificateId", "")),
                    other.get("description", ""), when,
                    other.get("stageCount")))

    def show_metric(self, policy, out):
        self.run(policy, out)
        print("CloudWatch, C7N/APIGatewayClientCertificates DaysToExpiry (latest datapoint):")
        for region in self.regions:
            cloudwatch = self.client("cloudwatch", region)
            metrics = cloudwatch.list_metrics(Namespace="C7N/APIGatewayClientCertificates",
                                              MetricName="DaysToExpiry")["Metrics"]
            seen = set()
            for metric in sorted(metrics, key=lambda m: sorted(
                    (d["Name"], d["Value"]) for d in m["Dimensions"])):
                dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
                if tuple(sorted(dims.items())) in seen:  # moto may list a series twice
                    continue
                seen.add(tuple(sorted(dims.items())))
                value = latest(cloudwatch, metric)
                if "ClientCertificateId" in dims:
                    label = short_id(dims["ClientCertificateId"])
                elif "Condition" in dims:
                    label = "(condition %s)" % dims["Condition"]
                else:
                    label = "(all: alarm on Minimum)"
                print("  %-10s %-28s %s" % (region, label, value))

    def show_event(self, policy, out):
        self.run(policy, out)
        events = [json.loads(m["Body"]) for region in self.regions
                  for m in drain(self.client("sqs", region), self.event_queues[region])]
        print("EventBridge: %d event(s) reached the rule's queue; the most urgent:" % len(events))
        if events:
            first = min(events, key=lambda e: e["detail"]["DaysToExpiry"])
            print(indent(json.dumps(first, indent=2), 4))

    def show_mail(self, policy, out):
        self.run(policy, out)
        messages = drain(self.client("sqs", MAIL_QUEUE[0]), self.mail_queue)
        print("c7n-mailer: %d message(s) on its queue (one per region); the longest, as "
              "c7n-mailer-replay renders it:" % len(messages))
        if not messages:
            return
        messages.sort(key=lambda m: -len(decoded(m["Body"])["resources"]))
        with tempfile.TemporaryDirectory() as tmp:
            message = os.path.join(tmp, "message.b64")
            config = os.path.join(tmp, "mailer.yml")
            with open(message, "w") as fh:
                fh.write(messages[0]["Body"])
            with open(config, "w") as fh:
                fh.write("queue_url: %s\nfrom_address: custodian@example.com\nregion: %s\n"
                         % (self.mail_queue, MAIL_QUEUE[0]))
            templates = subprocess.run(
                [find_command("c7n-apigw-certs"), "mailer-templates"], capture_output=True,
                text=True, check=True).stdout.strip()
            print('$ c7n-mailer-replay -c mailer.yml -T -t "$(c7n-apigw-certs '
                  'mailer-templates)" message.b64')
            proc = subprocess.run([find_command("c7n-mailer-replay"), "-c", config, "-T", "-t",
                                   templates, message], env=self.env, capture_output=True,
                                  text=True, cwd=tmp)
        print(indent(proc.stdout.strip() if proc.returncode == 0 else
                     "c7n-mailer-replay failed:\n" + proc.stderr[-2000:], 4))


def latest(cloudwatch, metric):
    now = datetime.datetime.now(datetime.timezone.utc)
    points = cloudwatch.get_metric_statistics(
        Namespace=metric["Namespace"], MetricName=metric["MetricName"],
        Dimensions=metric["Dimensions"], StartTime=now - datetime.timedelta(days=1),
        EndTime=now + datetime.timedelta(minutes=5), Period=86400,
        Statistics=["Minimum"])["Datapoints"]
    return "%g" % min(p["Minimum"] for p in points) if points else "-"


def decoded(body):
    """A notify message as c7n sends it: base64 of zlib of JSON (docs/aws-behaviour.md, fact
    71)."""
    return json.loads(zlib.decompress(base64.b64decode(body)))


def drain(sqs, url):
    """Every message on the queue, deleted once read."""
    found = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                    MessageAttributeNames=["All"]).get("Messages", [])
        if not batch:
            return found
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        found += batch


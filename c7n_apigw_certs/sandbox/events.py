"""moto's EventBridge and SQS, as the signals use them: a failure of one entry of a
``PutEvents``, and IAM for ``events:PutEvents`` and SQS calls.

moto 5.2.5 already delivers a ``PutEvents`` entry to the SQS targets of every rule of the bus
whose pattern matches (``moto/events/models.py``, ``Rule.send_to_targets``), as the JSON event
EventBridge builds (``source``, ``detail-type``, ``resources``, ``detail``...): tests read
events from a queue as a user's rule would receive them (docs/aws-behaviour.md, fact 70).

What it lacks:

- **The event's ``account``.** A rule's target receives the whole event (``version``, ``id``,
  ``detail-type``, ``source``, ``account``, ``time``, ``region``, ``resources``, ``detail``:
  the EventBridge user guide, "Amazon EventBridge events"), but moto's default input template
  (``EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE``) leaves ``account`` out, though its
  paths map names it: the template gains it (fact 70).

- **One entry failing while the others go through.** AWS answers 200 with ``FailedEntryCount``
  and, for each failed entry, ``ErrorCode`` and ``ErrorMessage`` in its place of ``Entries``
  (the API reference, "PutEventsResultEntry": retryable ``InternalFailure`` and
  ``ThrottlingException``, and non-retryable codes such as ``AccessDeniedException`` or
  ``NotAuthorizedForSourceException``; fact 68). moto fails entries only for a missing field
  or malformed JSON. Here a fault armed for the operation ``PutEventsEntry`` (service
  ``events``) fails one entry: its ``target`` is matched against the entry's ``Resources``
  (and the parts of each ARN), ``Source``, ``DetailType`` and ``EventBusName``; its ``code``
  and ``message`` become the entry's ``ErrorCode`` and ``ErrorMessage``; its ``count`` and
  ``after`` count entries. The failed entry is not delivered. It is counted as
  ``events``/``PutEventsEntry`` with outcome ``fault``.
- **IAM.** ``target()`` names what a request is authorized as (Service Authorization
  Reference, "Actions, resources, and condition keys for Amazon EventBridge" and "... for
  Amazon SQS"; fact 69): ``PutEvents`` needs ``events:PutEvents`` on the ``event-bus`` of each
  entry, ``arn:aws:events:<region>:<account>:event-bus/<name>`` (``default`` when the entry
  names none; an ARN as given); an SQS call on a queue needs ``sqs:<operation>`` on
  ``arn:aws:sqs:<region>:<account>:<queue name>``, the account and name read from the queue's
  URL.
"""
import functools
import re
from urllib.parse import urlparse

from moto.events.models import EventsBackend
from moto.events.utils import EventTemplateParser

from .controls import CONTROLS

ENTRY_OPERATION = "PutEventsEntry"
SERVICES = {"events", "sqs"}
DEFAULT_BUS = "default"
# moto's default input template, with the account that AWS delivers too.
EVENT_TEMPLATE = ('{"version": "0", "id": "<id>", "detail-type": "<detail-type>", '
                  '"source": "<source>", "account": "<account>", "time": <time>, '
                  '"region": "<region>", "resources": <resources>, "detail": <detail>}')


def entry_ids(entry):
    """What a ``PutEventsEntry`` fault's ``target`` is matched against (see the docstring)."""
    ids = {entry.get(k) for k in ("Source", "DetailType", "EventBusName")}
    for arn in entry.get("Resources") or ():
        ids.add(arn)
        ids.update(p for p in re.split(r"[:/]", arn.split("::", 1)[-1]) if p)
    return frozenset(i for i in ids if isinstance(i, str))


def _put_events(original):
    def put_events(self, events):
        results, passed = [], []
        for event in events:
            fault = CONTROLS.faults.take("events", ENTRY_OPERATION, entry_ids(event))
            if fault:
                CONTROLS.counters.add(self.account_id, self.region_name, "events",
                                      ENTRY_OPERATION, "fault")
                results.append({"ErrorCode": fault["code"], "ErrorMessage": fault["message"]})
            else:
                results.append(None)
                passed.append(event)
        answered = iter(original(self, passed) if passed else ())
        return [r if r is not None else next(answered) for r in results]
    return put_events


def bus_arn(region, account, name):
    if name.startswith("arn:"):
        return name
    return "arn:aws:events:%s:%s:event-bus/%s" % (region, account, name)


def queue_arn(region, url):
    """``arn:aws:sqs:<region>:<account>:<name>`` of a queue URL
    (``https://sqs.<region>.amazonaws.com/<account>/<name>``, or the endpoint's own host)."""
    parts = [p for p in urlparse(url).path.split("/") if p]
    if len(parts) != 2:
        return "*"
    return "arn:aws:sqs:%s:%s:%s" % (region, parts[0], parts[1])


def target(call):
    """[(action, resource)] an EventBridge or SQS request needs (sources in the docstring)."""
    if call.service == "events":
        action = "events:" + call.operation
        if call.operation == "PutEvents":
            entries = call.body.get("Entries")
            entries = entries if isinstance(entries, list) else []
            names = sorted({e.get("EventBusName") or DEFAULT_BUS for e in entries
                            if isinstance(e, dict)}) or [DEFAULT_BUS]
            return [(action, bus_arn(call.region, call.account, n)) for n in names]
        return [(action, "*")]
    if call.service == "sqs":
        url = call.body.get("QueueUrl") or call.request.values.get("QueueUrl")
        return [("sqs:" + call.operation, queue_arn(call.region, url) if url else "*")]
    return []


@functools.cache  # once per process: every install patches moto in place
def install():
    """Extend moto's EventBridge in this process. Idempotent."""
    EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = EVENT_TEMPLATE
    EventsBackend.put_events = _put_events(EventsBackend.put_events)

"""Lambda modes in the sandbox: what ``custodian run`` deployed, and the events that invoke it.

Deploying needs nothing beyond moto: every call c7n makes to deploy a ``periodic`` policy
(Lambda ``GetFunction``, ``CreateFunction``, ``GetFunctionConfiguration``, ``AddPermission``;
EventBridge ``DescribeRule``, ``PutRule``, ``ListTargetsByRule``, ``PutTargets``) is moto's own,
behind the gate like every other call (docs/aws-behaviour.md, fact 76). moto keeps a function's
code but does not run it without Docker, and does not fire schedules. So the tests run the
function themselves, from what this module reads back:

- ``deployed_function``: the function's configuration and its archive, the exact bytes that
  ``custodian run`` uploaded (moto answers ``Code.Location`` with a placeholder, so the archive
  is read from moto's backend: in-process only, where the tests' server runs);
- ``scheduled_event``: the event EventBridge sends to a rule's targets on its schedule
  (fact 77).
"""
import datetime
import uuid

from moto.awslambda.models import lambda_backends
from moto.events.models import events_backends

from .controls import CONTROLS


def deployed_function(account, region, name):
    """(configuration, archive bytes) of the function ``name`` as moto holds it."""
    function = lambda_backends[account][region].get_function(name)
    return function.get_configuration(), function.code_bytes


def scheduled_event(account, region, rule):
    """The "Scheduled Event" that EventBridge sends when ``rule`` (a schedule rule that must
    exist) fires, at the sandbox's now: ``detail`` is empty, ``resources`` holds the rule's ARN.
    """
    found = events_backends[account][region].describe_rule(rule, None)  # the default bus
    if not found.scheduled_expression:
        raise ValueError("rule %s has no schedule" % rule)
    now = CONTROLS.clock.now().astimezone(datetime.timezone.utc)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [found.arn],
        "detail": {},
    }

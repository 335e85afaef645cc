"""The sandbox: moto extended with API Gateway client certificates, served on loopback.

In-process (unit tests)::

    from c7n_apigw_certs import sandbox
    sandbox.install()
    with moto.mock_aws():
        sandbox.CONTROLS.clock.advance(days=3)
        ...

Over HTTP (the real ``custodian`` and ``c7n-org``): ``c7n-apigw-certs sandbox --seed demo``,
or ``SandboxServer(port=0).start()`` in a test; ``remote.SandboxClient`` drives its controls.

Where each behaviour lives: ``apigateway.py`` (client certificates, stages, deployments, what a
stage presents), ``acm.py`` and ``acmpca.py`` (ACM certificates and the private CAs that issue
them, real chains, renewals), ``cloudformation.py`` (stacks that own REST and WebSocket APIs,
stages and certificates, tagged as CloudFormation tags them), ``tags.py`` (API Gateway's tag
rules), ``ssm.py`` (Parameter Store's value sizes per tier), ``events.py`` (a failed PutEvents
entry; IAM for EventBridge and SQS), ``securityhub.py`` (findings as a provider meets them),
``config.py`` (AWS Config: stages recorded with a delay, advanced queries, evaluations of
custom rules), ``iam.py`` (assumed roles held to their policies), ``gate.py`` (the order in
which IAM, the throttle, the deployment rate and faults apply), ``controls.py`` (clock,
throttle, deployment rate, faults, counters, switches), ``server.py`` (the HTTP endpoints of
the controls).
"""
from .controls import CONTROLS  # noqa: F401


def install():
    """Extend moto in this process: the certificate API, the stage fields, CloudFormation for
    them, SSM's value sizes, EventBridge's entries, Security Hub's findings, AWS Config's
    recording, queries and evaluations, the gate (IAM, throttle, deployment rate, faults,
    counters)."""
    from . import (acm, apigateway, cloudformation, config, elb, events, gate, iam,
                   securityhub, ssm)
    acm.install()
    elb.install()
    apigateway.install()
    events.install()
    cloudformation.install()
    config.install()
    ssm.install()
    securityhub.install()
    iam.install()
    gate.install()

"""The sandbox: moto extended with API Gateway client certificates, served on loopback.

In-process (unit tests)::

    from c7n_apigw_certs import sandbox
    sandbox.install()
    with moto.mock_aws():
        sandbox.CONTROLS.clock.advance(days=3)
        ...

Over HTTP (the real ``custodian`` and ``c7n-org``): ``c7n-apigw-certs sandbox --seed demo``,
or ``SandboxServer(port=0).start()`` in a test; ``remote.SandboxClient`` drives its controls.
"""
from .controls import CONTROLS  # noqa: F401


def install():
    """Extend moto in this process: the certificate API, the stage fields, the gate."""
    from . import apigateway, gate
    apigateway.install()
    gate.install()

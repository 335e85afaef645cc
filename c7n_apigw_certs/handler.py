"""Lambda modes (``periodic``, ``schedule``, ``config-poll-rule``, ``config-rule``, ...): the
function's entry point, and the two mode settings that make c7n's archive carry the plugin.

In a Lambda function no ``.pth`` file runs (docs/aws-behaviour.md, fact 19), so nothing makes
the plugin known to c7n: c7n's own handler, ``custodian_policy.run``, fails with "Invalid
resource" (fact 27). So a policy in a Lambda mode needs

- ``handler: c7n_apigw_certs.handler.run``, this module's ``run``: it activates the plugin,
  then hands the event to c7n's ``dispatch_event``, whatever the mode (fact 34);
- ``packages: [c7n_apigw_certs]``, so that c7n's archive holds the plugin next to ``c7n``
  (fact 27). The plugin needs nothing else that the Lambda runtime lacks: PEMs are read with
  the standard library (``pem.py``).

``complete_mode`` adds both when a policy is validated (``custodian run``, ``c7n-org run``,
``custodian validate`` validate every policy before anything is deployed), the way c7n itself
completes a mode's ``role`` into an ARN: a policy does not have to say them.

Nothing heavy at import: ``c7n.handler`` (which sets the root logger to DEBUG on import) is
imported only inside ``run``.
"""
HANDLER = "c7n_apigw_certs.handler.run"
PACKAGE = "c7n_apigw_certs"
C7N_HANDLER = "custodian_policy.run"  # c7n's default (c7n/mu.py, PolicyLambda.handler)


def run(event, context):
    """The Lambda function's handler: the plugin first, then c7n's dispatch of the event."""
    from c7n_apigw_certs import initialize
    initialize()
    from c7n.handler import dispatch_event
    return dispatch_event(event, context)


def complete_mode(policy):
    """Give a Lambda-mode ``policy`` this module's handler and the plugin's package, unless it
    names them. A policy that names c7n's default handler is refused: that function could never
    find the resource. Another handler is the user's (one that wraps ``run``, say) and is left
    alone. Idempotent; pull-mode policies are not touched."""
    from c7n.exceptions import PolicyValidationError
    from c7n.policy import LambdaMode

    if not isinstance(policy.get_execution_mode(), LambdaMode):
        return
    mode = policy.data["mode"]
    if mode.setdefault("handler", HANDLER) == C7N_HANDLER:
        raise PolicyValidationError(
            "policy:%s mode.handler: %s cannot load the c7n-apigw-certs plugin in Lambda (no "
            ".pth file runs there): remove handler, or set it to %s" % (
                policy.name, C7N_HANDLER, HANDLER))
    packages = mode.setdefault("packages", [])
    if PACKAGE not in packages:
        packages.append(PACKAGE)

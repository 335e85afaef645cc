"""c7n-apigw-certs: API Gateway client certificates in Cloud Custodian.

Importing this package does nothing but define ``initialize()``: it is imported at the start of
every Python process by the .pth hook (``_loader.py``), so it must stay cheap.
"""
RESOURCE_TYPE = "aws.apigw-client-certificate"
# The entry module imports the resource, then its filters and actions (see entry.py).
RESOURCE_PATH = "c7n_apigw_certs.entry.ClientCertificate"

_initialized = False


def initialize():
    """Make the plugin known to c7n in this process. Idempotent; touches no cloud.

    - ``aws.apigw-client-certificate`` goes into c7n's resource map, so c7n imports
      ``resource.py`` only when a policy, ``schema`` or ``validate`` asks for it (fact 17).
    - The ``expiring`` filter joins c7n's ``aws.rest-stage`` and ``aws.apigwv2-stage`` when
      c7n loads those classes, and the Config rule modes that name the certificate in their
      evaluations replace c7n's under the same names (``config_modes.py``).
    """
    global _initialized
    if _initialized:
        return
    _initialized = True
    from c7n.resources.aws import AWS
    from c7n.resources.resource_map import ResourceMap

    if ResourceMap.setdefault(RESOURCE_TYPE, RESOURCE_PATH) != RESOURCE_PATH:
        raise RuntimeError("%s is already registered as %s: refusing to replace it"
                           % (RESOURCE_TYPE, ResourceMap[RESOURCE_TYPE]))
    AWS.resources.subscribe(_on_resource_loaded)
    import sys
    apigw = sys.modules.get("c7n.resources.apigw")
    if apigw is not None:  # loaded before us (an in-process caller): extend it now
        _on_resource_loaded(AWS.resources, apigw.RestStage)
        _on_resource_loaded(AWS.resources, apigw.ApiGatewayV2Stage)


STAGE_TYPES = ("rest-stage", "apigwv2-stage")


def _on_resource_loaded(registry, resource_class):
    """c7n notifies each resource class it loads; ours extend c7n's stage resources. Either
    kind, stages or certificates, also brings the plugin's Config rule modes (config_modes.py:
    c7n's ``config-poll-rule`` and ``config-rule`` whose annotations name the certificate)."""
    kind = getattr(resource_class, "type", None)
    if kind in STAGE_TYPES and resource_class.__module__ == "c7n.resources.apigw":
        from .audit.filters import register_stage_filters
        register_stage_filters(resource_class)
    elif kind != RESOURCE_TYPE.split(".", 1)[1]:
        return
    from .signals.config_modes import register
    register()

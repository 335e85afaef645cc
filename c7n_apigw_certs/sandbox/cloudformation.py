"""CloudFormation in the sandbox: stacks that own REST APIs, stages and client certificates, as
CloudFormation, CDK (which deploys CloudFormation) and SAM (after its transform) make them.

moto 5.2.5's CloudFormation creates ``AWS::ApiGateway::RestApi``, ``Resource``, ``Method`` and
``Deployment``, and nothing else of API Gateway. This module adds, as moto
``CloudFormationModel`` subclasses (moto finds a type's class through
``parsing.get_model_map()``, built from ``CloudFormationModel.__subclasses__()``):

- ``AWS::ApiGateway::ClientCertificate`` (``Description``, ``Tags``; Ref: the id): made with
  ``apigateway.create_certificate``, so the quota applies (fact 5); deleted with
  ``apigateway.delete_certificate``, so the switch ``delete_in_use`` applies (fact 7).
- ``AWS::ApiGateway::Stage`` (``RestApiId``, ``StageName``, ``DeploymentId``, ``Description``,
  ``ClientCertificateId``, ``Variables``, ``CacheClusterEnabled``, ``CacheClusterSize``,
  ``TracingEnabled``, ``Tags``; Ref: the stage name).
- ``AWS::ApiGatewayV2::Api`` (``Name``, ``ProtocolType``, ``RouteSelectionExpression``,
  ``Description``, ``Version``, ``ApiKeySelectionExpression``, ``DisableExecuteApiEndpoint``,
  ``DisableSchemaValidation``, ``Tags``; Ref: the API id; GetAtt ``ApiId``, ``ApiEndpoint``) and
  ``AWS::ApiGatewayV2::Stage`` (``ApiId``, ``StageName``, ``DeploymentId``, ``Description``,
  ``ClientCertificateId``, ``StageVariables``, ``AutoDeploy``, ``Tags``; Ref: the stage name):
  moto has no CloudFormation for API Gateway V2 at all. No routes or integrations.

and changes moto's own classes where CloudFormation behaves otherwise:

- ``AWS::ApiGateway::RestApi``: takes ``Tags``, is updated in place (``Name``,
  ``Description``, ``Tags``; moto has no update, and loses track of the API when a template
  changes it) and is deleted with its stack (moto leaves it).
- ``AWS::ApiGateway::Deployment``: its Ref is the deployment id (moto's Ref gives no id); an
  update changes its ``Description`` in place. ``AWS::ApiGateway::Method``: an update puts the
  method and its integration again. (moto has no update for either: the stack then forgets the
  resource, and a Ref to it resolves to nothing.)
- A stack update applies changes first and deletes what left the template last, in reverse
  order of their references, as CloudFormation's clean-up phase does (moto deletes first: a
  certificate removed from the template together with the stage's reference to it would be
  deleted while still in use). ``DeletionPolicy: Retain`` (or ``RetainExceptOnCreate``) keeps a
  resource that leaves the template (moto keeps one only when the stack is deleted, and then
  only for ``Retain``): "This capability also applies to stack update operations that lead to
  resources being deleted from stacks" (CloudFormation template reference, "DeletionPolicy
  attribute"). Change sets (``cdk deploy``) take the same path as ``UpdateStack``.

Tags (fact 29): every resource above that a stack creates carries ``aws:cloudformation:
stack-name``, ``aws:cloudformation:logical-id`` and ``aws:cloudformation:stack-id``, and the
stack's own tags ("In addition to any tags you define, CloudFormation automatically creates the
following stack-level tags with the aws: prefix"; "The propagation of stack-level tags to
resources ... varies by resource type": CloudFormation template reference, "CloudFormation
resource tagging"; that API Gateway's get them is our reading, not stated there). They
are set internally, past the rule that refuses callers ``aws:`` keys (fact 35); the template's
own ``Tags`` are held to the callers' rules, as the API that CloudFormation calls would hold
them. A template's ``Tags`` change touches only the keys the template set: a tag put on by
someone else (our rotation's state tags) stays (*unverified*: no source says; of the two
readings, the one that never erases another tool's tags). A stage that
``AWS::ApiGateway::Deployment`` makes with its ``StageName`` is not a resource of the stack and
gets no tags (*unverified*: no source says whether CloudFormation tags it).

An update that touches a stage (its template entry or a parameter it references changed)
applies the template's ``ClientCertificateId`` again: a stage switched outside the stack goes
back to the template's certificate (fact 29); without ``ClientCertificateId`` the stage is left
with none. Whether the stage *presents* the new one before a redeploy follows the switch
``needs_deployment`` (fact 11); a change of ``DeploymentId`` is a redeploy.

Deployments made by a stack are exempt from the ``CreateDeployment`` rate (switch
``deploy_interval``, fact 24), and from the throttle and counters: CloudFormation's calls reach
moto's backends directly, not through the gate (``gate.py``). In AWS they are calls in the
account and count against its quotas, and CloudFormation retries them; here, a test that creates
a stack and then deploys would otherwise fail or pass by how fast the machine is. A test of the
rate makes its own deployments.

A resource that API Gateway refuses (the certificate quota, an unknown certificate id, an
``aws:`` tag in the template) fails the stack, not the call: ``CreateStack`` answers, the stack
is ``ROLLBACK_COMPLETE`` with what it made deleted (``Retain`` kept), and its events carry the
error (``CREATE_FAILED``, "<code>: <message>"), as in AWS. moto cannot roll an update back: a
failed update answers too, but leaves the stack ``UPDATE_ROLLBACK_FAILED`` with the changes made
before the failure in place (AWS would be ``UPDATE_ROLLBACK_COMPLETE``, nothing changed).

What moto's CloudFormation cannot represent (and so neither can the sandbox): the rollback of an
update (above); stack tags changed by an update do not reach the resources; drift detection;
``Transform`` (a SAM template must be given transformed, e.g. what ``aws cloudformation
get-template --template-stage Processed`` returns for a real stack); ``UpdateReplacePolicy``;
a ``Deployment``'s ``StageName`` changed by an update; types moto does not know
(``AWS::ApiGateway::Account``, V2 routes, integrations and deployments...) are skipped with a
warning, and a Ref to one resolves to nothing; asynchronous stacks (every stack call is
complete when it answers). For resources that a stack cannot make here, ``tag_as_stack`` (in
process) or ``SandboxClient.tag_as_stack`` (over HTTP) tags them exactly as CloudFormation
would.

``rest_api_template`` and ``websocket_api_template`` build templates for tests.
"""
import functools
import json

from moto.apigateway.exceptions import NotFoundException
from moto.apigateway.models import Deployment, Method, RestAPI, apigateway_backends
from moto.apigatewayv2.exceptions import ApiNotFound, StageNotFound
from moto.apigatewayv2.models import apigatewayv2_backends
from moto.cloudformation import parsing
from moto.cloudformation.models import Stack, cloudformation_backends
from moto.core.common_models import CloudFormationModel
from moto.core.exceptions import JsonRESTError
from moto.utilities.utils import get_partition

from . import acm
from .apigateway import (
    CertificateNotFound, check_stage_certificate, create_certificate, delete_certificate,
    get_certificate, set_stage_certificate)
from .controls import CONTROLS
from .remote import LOGICAL_ID_TAG, STACK_ID_TAG, STACK_NAME_TAG, stack_tags  # noqa: F401
from .tags import RESERVED, check_caller_tags, current_tags, put_tags, remove_tags

RETAINED = ("Retain", "RetainExceptOnCreate")
DEFAULT_BACKEND = "https://backend.example.com/"


def _arn(region, path):
    return "arn:%s:apigateway:%s::%s" % (get_partition(region), region, path)


def tag_as_stack(account, arn, stack_id, logical_id):
    """Tag a resource exactly as the stack ``stack_id`` would tag one of its own (for what the
    sandbox's CloudFormation cannot create); returns its tags. Over HTTP:
    ``SandboxClient.tag_as_stack``."""
    put_tags(account, arn, stack_tags(stack_id, logical_id), caller=False)
    return current_tags(account, arn)


def _template_tags(value):
    """A template's ``Tags``: a list of ``{Key, Value}`` (REST) or a map (V2)."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return {t["Key"]: str(t["Value"]) for t in value or ()}


def _check_tags(cloudformation_json):
    """Refuse the template's ``Tags`` as the API refuses a caller's (fact 35), before anything
    is made."""
    check_caller_tags({}, _template_tags(cloudformation_json.get("Properties", {}).get("Tags")))


def _stack_level_tags(account, region, stack_id):
    """The stack's own tags (they propagate to its resources), without ``aws:`` ones."""
    stack = cloudformation_backends[account][region].stacks.get(stack_id)
    return {k: v for k, v in (getattr(stack, "tags", None) or {}).items()
            if not k.lower().startswith(RESERVED)}


class _Owned:
    """What a stack needs to remember about a resource it made: where, and the tags its
    template set (an update changes only those)."""

    def _own(self, account, region, stack_id, logical_id, cloudformation_json):
        self.account, self.region = account, region
        self.stack_id, self.logical_id = stack_id, logical_id
        self.template_tags = {}
        self._tag(cloudformation_json, created=True)

    def _tag(self, cloudformation_json, created=False):
        """Apply the template's tags: on creation with the stack's and CloudFormation's own; on
        update, the keys the template dropped are removed and nothing else is touched."""
        wanted = _template_tags(cloudformation_json.get("Properties", {}).get("Tags"))
        where = self.arn
        check_caller_tags({k: v for k, v in current_tags(self.account, where).items()
                           if k not in self.template_tags}, wanted)
        dropped = set(self.template_tags) - set(wanted)
        if dropped:
            remove_tags(self.account, where, dropped)
        tags = dict(wanted)
        if created:
            tags = dict(_stack_level_tags(self.account, self.region, self.stack_id), **tags)
            tags.update(stack_tags(self.stack_id, self.logical_id))
        if tags:
            put_tags(self.account, where, tags, caller=False)
        self.template_tags = wanted


class StackClientCertificate(CloudFormationModel, _Owned):
    """``AWS::ApiGateway::ClientCertificate``."""

    def __init__(self, cert_id):
        self.cert_id = cert_id

    @property
    def arn(self):
        return _arn(self.region, "/clientcertificates/" + self.cert_id)

    @property
    def physical_resource_id(self):
        return self.cert_id

    @staticmethod
    def cloudformation_name_type():
        return ""

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGateway::ClientCertificate"

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr == "ClientCertificateId"

    def get_cfn_attribute(self, attribute_name):
        if attribute_name == "ClientCertificateId":
            return self.cert_id
        raise parsing.UnformattedGetAttTemplateException()

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        _check_tags(cloudformation_json)
        props = cloudformation_json.get("Properties", {})
        cert = create_certificate(account_id, region_name, props.get("Description", ""))
        model = cls(cert.id)
        model._own(account_id, region_name, kwargs["StackId"], kwargs["LogicalId"],
                   cloudformation_json)
        return model

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        model = original_resource
        cert = get_certificate(account_id, region_name, model.cert_id)
        cert.description = cloudformation_json.get("Properties", {}).get("Description", "")
        model._tag(cloudformation_json)
        return model

    def delete(self, account_id, region_name):
        try:
            delete_certificate(account_id, region_name, self.cert_id)
        except CertificateNotFound:
            pass  # deleted outside the stack: CloudFormation takes it as deleted


class _StackStage(_Owned):
    """What a REST and a WebSocket stage of a stack share: the stage name as Ref, no
    attributes, its API's id in ``API_ID`` (the property naming it), its ARN under ``PATH``.
    Not a CloudFormationModel itself: moto maps every subclass of that to a resource type."""

    API_ID = PATH = None
    WEBSOCKET = False

    def __init__(self, api_id, name):
        self.api_id, self.name = api_id, name

    @property
    def arn(self):
        return _arn(self.region, self.PATH % (self.api_id, self.name))

    @property
    def physical_resource_id(self):
        return self.name

    @staticmethod
    def cloudformation_name_type():
        return "StageName"

    @classmethod
    def has_cfn_attr(cls, attr):
        return False

    @classmethod
    def template_certificate(cls, props, account_id, region_name):
        """The template's ``ClientCertificateId``, which must exist, or None: a generated id,
        or an ACM ARN that the stage can present (``apigateway.check_stage_certificate``)."""
        cert_id = props.get("ClientCertificateId") or None
        if cert_id and acm.is_arn(cert_id):
            check_stage_certificate(account_id, region_name, cert_id, websocket=cls.WEBSOCKET)
        elif cert_id:
            get_certificate(account_id, region_name, cert_id)
        return cert_id

    @classmethod
    def replaced(cls, model, new_resource_name, cloudformation_json):
        """A new API or stage name replaces the stage: the replacement, else None."""
        props = cloudformation_json.get("Properties", {})
        if (props[cls.API_ID], new_resource_name) != (model.api_id, model.name):
            return _replace(cls, model, new_resource_name, cloudformation_json)
        return None


class StackRestStage(_StackStage, CloudFormationModel):
    """``AWS::ApiGateway::Stage``."""

    API_ID, PATH = "RestApiId", "/restapis/%s/stages/%s"

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGateway::Stage"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        _check_tags(cloudformation_json)
        props = cloudformation_json.get("Properties", {})
        cert_id = cls.template_certificate(props, account_id, region_name)
        stage = apigateway_backends[account_id][region_name].create_stage(
            props["RestApiId"], resource_name, props.get("DeploymentId"),
            variables=props.get("Variables"), description=props.get("Description", ""),
            cacheClusterEnabled=props.get("CacheClusterEnabled"),
            cacheClusterSize=props.get("CacheClusterSize"),
            tracing_enabled=props.get("TracingEnabled"))
        stage.client_certificate_id = stage.presented_certificate_id = cert_id
        model = cls(props["RestApiId"], resource_name)
        model._own(account_id, region_name, kwargs["StackId"], kwargs["LogicalId"],
                   cloudformation_json)
        return model

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        model = original_resource
        props = cloudformation_json.get("Properties", {})
        replacement = cls.replaced(model, new_resource_name, cloudformation_json)
        if replacement is not None:
            return replacement
        backend = apigateway_backends[account_id][region_name]
        stage = backend.get_stage(model.api_id, model.name)
        cert_id = cls.template_certificate(props, account_id, region_name)
        redeployed = props.get("DeploymentId") != stage.deployment_id
        stage.deployment_id = props.get("DeploymentId")
        stage.description = props.get("Description", "")
        stage.variables = props.get("Variables") or {}
        set_stage_certificate(stage, cert_id)  # the template's value, again (fact 29)
        if redeployed:
            stage.presented_certificate_id = cert_id
        stage.sandbox_updated = CONTROLS.clock.now()
        model._tag(cloudformation_json)
        return model

    def delete(self, account_id, region_name):
        try:
            apigateway_backends[account_id][region_name].delete_stage(self.api_id, self.name)
        except NotFoundException:
            pass  # gone with its API, or outside the stack


class StackWebSocketApi(CloudFormationModel, _Owned):
    """``AWS::ApiGatewayV2::Api``, as far as our code reads it (no routes, integrations,
    OpenAPI ``Body``)."""

    MEMBERS = {"Name": "name", "Description": "description",
               "RouteSelectionExpression": "route_selection_expression",
               "ApiKeySelectionExpression": "api_key_selection_expression",
               "DisableExecuteApiEndpoint": "disable_execute_api_endpoint",
               "DisableSchemaValidation": "disable_schema_validation", "Version": "version"}

    def __init__(self, api_id):
        self.api_id = api_id

    @property
    def arn(self):
        return _arn(self.region, "/apis/" + self.api_id)

    @property
    def physical_resource_id(self):
        return self.api_id

    @staticmethod
    def cloudformation_name_type():
        return "Name"

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGatewayV2::Api"

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr in ("ApiId", "ApiEndpoint")

    def get_cfn_attribute(self, attribute_name):
        api = apigatewayv2_backends[self.account][self.region].get_api(self.api_id)
        if attribute_name == "ApiId":
            return api.api_id
        if attribute_name == "ApiEndpoint":
            return api.api_endpoint
        raise parsing.UnformattedGetAttTemplateException()

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        _check_tags(cloudformation_json)
        props = cloudformation_json.get("Properties", {})
        api = apigatewayv2_backends[account_id][region_name].create_api(
            api_key_selection_expression=props.get("ApiKeySelectionExpression"),
            cors_configuration=props.get("CorsConfiguration"),
            description=props.get("Description"),
            disable_schema_validation=props.get("DisableSchemaValidation"),
            disable_execute_api_endpoint=props.get("DisableExecuteApiEndpoint"),
            name=resource_name, protocol_type=props.get("ProtocolType"),
            route_selection_expression=props.get("RouteSelectionExpression"),
            tags={}, version=props.get("Version"))
        model = cls(api.api_id)
        model._own(account_id, region_name, kwargs["StackId"], kwargs["LogicalId"],
                   cloudformation_json)
        return model

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        model = original_resource
        props = dict(cloudformation_json.get("Properties", {}), Name=new_resource_name)
        api = apigatewayv2_backends[account_id][region_name].get_api(model.api_id)
        for prop, attr in cls.MEMBERS.items():
            if prop in props:
                setattr(api, attr, props[prop])
        model._tag(cloudformation_json)
        return model

    def delete(self, account_id, region_name):
        apigatewayv2_backends[account_id][region_name].delete_api(self.api_id)


class StackWebSocketStage(_StackStage, CloudFormationModel):
    """``AWS::ApiGatewayV2::Stage``."""

    API_ID, PATH = "ApiId", "/apis/%s/stages/%s"
    WEBSOCKET = True
    MEMBERS = {"Description": "description", "StageVariables": "stage_variables",
               "AutoDeploy": "auto_deploy", "AccessLogSettings": "access_log_settings",
               "RouteSettings": "route_settings"}

    @staticmethod
    def cloudformation_type():
        return "AWS::ApiGatewayV2::Stage"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        _check_tags(cloudformation_json)
        props = cloudformation_json.get("Properties", {})
        cert_id = cls.template_certificate(props, account_id, region_name)
        config = {"stageName": resource_name, "clientCertificateId": cert_id,
                  "deploymentId": props.get("DeploymentId")}
        for prop in ("Description", "StageVariables", "AutoDeploy", "DefaultRouteSettings",
                     "RouteSettings", "AccessLogSettings"):
            if prop in props:
                config[prop[0].lower() + prop[1:]] = props[prop]
        apigatewayv2_backends[account_id][region_name].create_stage(props["ApiId"], config)
        model = cls(props["ApiId"], resource_name)
        model._own(account_id, region_name, kwargs["StackId"], kwargs["LogicalId"],
                   cloudformation_json)
        return model

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name,
                                        cloudformation_json, account_id, region_name):
        model = original_resource
        props = cloudformation_json.get("Properties", {})
        replacement = cls.replaced(model, new_resource_name, cloudformation_json)
        if replacement is not None:
            return replacement
        stage = apigatewayv2_backends[account_id][region_name].get_stage(model.api_id,
                                                                         model.name)
        cert_id = cls.template_certificate(props, account_id, region_name)
        for prop, attr in cls.MEMBERS.items():
            if prop in props:
                setattr(stage, attr, props[prop])
        stage.client_certificate_id = cert_id  # the template's value, again (facts 10, 29)
        redeployed = props.get("DeploymentId") != getattr(stage, "sandbox_deployment_id", None)
        stage.sandbox_deployment_id = props.get("DeploymentId")
        if redeployed or not CONTROLS.switches.needs_deployment:
            stage.presented_certificate_id = cert_id
        stage.updated = CONTROLS.clock.now().replace(tzinfo=None)
        model._tag(cloudformation_json)
        return model

    def delete(self, account_id, region_name):
        try:
            apigatewayv2_backends[account_id][region_name].delete_stage(self.api_id, self.name)
        except (ApiNotFound, StageNotFound):
            pass  # gone with its API, or outside the stack


def _replace(cls, old, new_name, cloudformation_json):
    """A change that needs a new physical resource (a stage's API or name): make the new one,
    then delete the old (CloudFormation deletes it in the update's clean-up)."""
    new = cls.create_from_cloudformation_json(
        new_name, cloudformation_json, old.account, old.region, StackId=old.stack_id,
        LogicalId=old.logical_id)
    old.delete(old.account, old.region)
    return new


# -- moto's REST API, Deployment and Method, as CloudFormation has them ------------------

def _rest_api_create(original):
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        _check_tags(cloudformation_json)
        api = original(resource_name, cloudformation_json, account_id, region_name, **kwargs)
        owner = _RestApiOwner(api)
        owner._own(account_id, region_name, kwargs["StackId"], kwargs["LogicalId"],
                   cloudformation_json)
        api.sandbox_stack = owner
        return api
    return classmethod(create_from_cloudformation_json)


class _RestApiOwner(_Owned):
    """The stack's memory of a REST API it made (moto's RestAPI itself is the model)."""

    def __init__(self, api):
        self.api_id = api.id

    @property
    def arn(self):
        return _arn(self.region, "/restapis/" + self.api_id)


def _rest_api_update(cls, original_resource, new_resource_name, cloudformation_json,
                     account_id, region_name):
    """In place, as CloudFormation updates ``Name``, ``Description`` and ``Tags``."""
    props = cloudformation_json.get("Properties", {})
    original_resource.name = props.get("Name", original_resource.name)
    original_resource.description = props.get("Description", "")
    owner = getattr(original_resource, "sandbox_stack", None)
    if owner is not None:
        owner._tag(cloudformation_json)
    return original_resource


def _rest_api_delete(cls, resource_name, cloudformation_json, account_id, region_name):
    apigateway_backends[account_id][region_name].apis.pop(resource_name, None)


def _deployment_update(cls, original_resource, new_resource_name, cloudformation_json,
                       account_id, region_name):
    original_resource.description = cloudformation_json.get("Properties", {}).get(
        "Description", "")
    return original_resource


def _method_update(cls, original_resource, new_resource_name, cloudformation_json, account_id,
                   region_name):
    """Put the method and its integration again (moto's PutMethod replaces)."""
    return cls.create_from_cloudformation_json(
        new_resource_name, cloudformation_json, account_id, region_name)


# -- stack updates in CloudFormation's order --------------------------------------------------

def _update_then_clean_up(original):
    """moto's ``ResourceMap.update``, with what left the template deleted last (after the
    changes that may stop referencing it), dependents first, and kept under ``Retain``."""
    def update(self, template, parameters=None):
        resources = template["Resources"]
        removed = {name: body for name, body in self._resource_json_map.items()
                   if name not in resources}
        original(self, dict(template, Resources=dict(resources, **removed)), parameters)
        self._template, self._resource_json_map = template, resources
        for name in _dependents_first(removed):
            resource = self._parsed_resources.pop(name, None)
            if resource is not None and removed[name].get("DeletionPolicy") not in RETAINED:
                self._delete_resource(resource, removed[name])
    return update


def _dependents_first(bodies):
    """Names of ``bodies`` ordered so that each comes before whatever it references."""
    refs = {name: set(parsing.get_references_from_template(body)) | set(
        [body["DependsOn"]] if isinstance(body.get("DependsOn"), str)
        else body.get("DependsOn", [])) for name, body in bodies.items()}
    for name, body in bodies.items():
        refs[name] |= {ref[0] if isinstance(ref, list) else str(ref).split(".")[0]
                       for ref in _get_atts(body)}
    order, pending = [], set(bodies)
    while pending:
        free = sorted(n for n in pending if not any(n in refs[o] for o in pending if o != n))
        free = free or sorted(pending)  # a cycle: any order
        order.append(free[0])
        pending.discard(free[0])
    return order


def _get_atts(body):
    if isinstance(body, dict):
        for key, value in body.items():
            if key == "Fn::GetAtt":
                yield value
            else:
                yield from _get_atts(value)
    elif isinstance(body, list):
        for item in body:
            yield from _get_atts(item)


# -- failures: the stack fails, not the call ---------------------------------------------------

def _reason(error):
    return "%s: %s" % (error.error_type, error.message)


def _create_or_roll_back(original):
    def create_resources(self):
        try:
            original(self)
        except JsonRESTError as error:  # API Gateway's refusals; template errors pass
            self._add_stack_event("CREATE_FAILED", resource_status_reason=_reason(error))
            self._add_stack_event("ROLLBACK_IN_PROGRESS", resource_status_reason=_reason(error))
            self.resource_map.delete()
            self._add_stack_event("ROLLBACK_COMPLETE")
            self.status = "ROLLBACK_COMPLETE"
    return create_resources


def _update_or_fail(original):
    def update(self, *args, **kwargs):
        try:
            original(self, *args, **kwargs)
        except JsonRESTError as error:
            self._add_stack_event("UPDATE_FAILED", resource_status_reason=_reason(error))
            self._add_stack_event("UPDATE_ROLLBACK_FAILED", resource_status_reason=(
                "the sandbox cannot roll an update back; " + _reason(error)))
            self.status = "UPDATE_ROLLBACK_FAILED"
    return update


@functools.cache  # once per process: every install patches moto in place
def install():
    """Register the models with moto's CloudFormation and patch what it gets wrong.
    Idempotent; ``sandbox.install()`` calls it."""
    RestAPI.create_from_cloudformation_json = _rest_api_create(
        RestAPI.create_from_cloudformation_json)
    RestAPI.update_from_cloudformation_json = classmethod(_rest_api_update)
    RestAPI.delete_from_cloudformation_json = classmethod(_rest_api_delete)
    Deployment.physical_resource_id = property(lambda self: self.id)
    Deployment.update_from_cloudformation_json = classmethod(_deployment_update)
    Method.update_from_cloudformation_json = classmethod(_method_update)
    parsing.ResourceMap.update = _update_then_clean_up(parsing.ResourceMap.update)
    Stack.create_resources = _create_or_roll_back(Stack.create_resources)
    Stack.update = _update_or_fail(Stack.update)
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()  # the classes above may have been defined after the first look-up


# -- templates for tests ----------------------------------------------------------------------

CERTIFICATE = "ClientCertificate"  # logical ids of the templates below
PARAMETER = "ClientCertificateId"


def _certificate_part(certificate, description, retain):
    """(resources, parameters, the stage's ClientCertificateId) for ``certificate``: "own", an
    existing id, or None."""
    if certificate == "own":
        resource = {"Type": "AWS::ApiGateway::ClientCertificate",
                    "Properties": {"Description": description}}
        if retain:
            resource["DeletionPolicy"] = "Retain"
        return {CERTIFICATE: resource}, {}, {"Ref": CERTIFICATE}
    if certificate:
        return {}, {PARAMETER: {"Type": "String", "Default": certificate}}, {"Ref": PARAMETER}
    return {}, {}, None


def rest_api_template(api_name, stage_name="prod", certificate="own",
                      backend_url=DEFAULT_BACKEND, stage_description="",
                      certificate_description="", retain_certificate=False, tags=None):
    """A REST API whose root ``GET`` proxies (``HTTP_PROXY``, the integration type for which
    API Gateway presents the certificate: fact 9) to ``backend_url``, deployed to the stage
    ``stage_name``. ``certificate``: ``"own"`` (an ``AWS::ApiGateway::ClientCertificate`` of the
    template, the stage's ``ClientCertificateId`` a Ref to it; ``retain_certificate`` gives it
    ``DeletionPolicy: Retain``), an existing certificate id (the parameter
    ``ClientCertificateId``, with that id as default: update the stack with another value to
    move the stage), or None (no certificate). ``tags`` ({key: value}) go on the API and the
    stage. Logical ids: ``RestApi``, ``RootGet``, ``Deployment``, ``Stage``,
    ``ClientCertificate``.
    """
    resources, parameters, cert_ref = _certificate_part(
        certificate, certificate_description, retain_certificate)
    tag_list = [{"Key": k, "Value": v} for k, v in (tags or {}).items()]
    stage = {"RestApiId": {"Ref": "RestApi"}, "StageName": stage_name,
             "DeploymentId": {"Ref": "Deployment"}, "Description": stage_description}
    if cert_ref:
        stage["ClientCertificateId"] = cert_ref
    if tag_list:
        stage["Tags"] = tag_list
    resources.update({
        "RestApi": {"Type": "AWS::ApiGateway::RestApi",
                    "Properties": dict({"Name": api_name}, **({"Tags": tag_list}
                                                               if tag_list else {}))},
        "RootGet": {"Type": "AWS::ApiGateway::Method", "Properties": {
            "RestApiId": {"Ref": "RestApi"},
            "ResourceId": {"Fn::GetAtt": ["RestApi", "RootResourceId"]},
            "HttpMethod": "GET", "AuthorizationType": "NONE",
            "Integration": {"Type": "HTTP_PROXY", "IntegrationHttpMethod": "GET",
                            "Uri": backend_url}}},
        "Deployment": {"Type": "AWS::ApiGateway::Deployment", "DependsOn": "RootGet",
                       "Properties": {"RestApiId": {"Ref": "RestApi"}}},
        "Stage": {"Type": "AWS::ApiGateway::Stage", "Properties": stage},
    })
    template = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}
    if parameters:
        template["Parameters"] = parameters
    return template


def websocket_api_template(api_name, stage_name="live", certificate="own",
                           stage_description="", certificate_description="",
                           retain_certificate=False, tags=None):
    """A WebSocket API (``AWS::ApiGatewayV2::Api``) and its stage, ``certificate`` as in
    ``rest_api_template``. Logical ids: ``WebSocketApi``, ``WebSocketStage``,
    ``ClientCertificate``."""
    resources, parameters, cert_ref = _certificate_part(
        certificate, certificate_description, retain_certificate)
    stage = {"ApiId": {"Ref": "WebSocketApi"}, "StageName": stage_name,
             "Description": stage_description}
    if cert_ref:
        stage["ClientCertificateId"] = cert_ref
    api = {"Name": api_name, "ProtocolType": "WEBSOCKET",
           "RouteSelectionExpression": "$request.body.action"}
    if tags:
        api["Tags"] = stage["Tags"] = dict(tags)
    resources.update({
        "WebSocketApi": {"Type": "AWS::ApiGatewayV2::Api", "Properties": api},
        "WebSocketStage": {"Type": "AWS::ApiGatewayV2::Stage", "Properties": stage},
    })
    template = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}
    if parameters:
        template["Parameters"] = parameters
    return template


def template_body(template):
    """The ``TemplateBody`` string of a template dict."""
    return json.dumps(template)

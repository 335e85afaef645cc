"""moto's SSM Parameter Store, with the value sizes of its tiers (docs/aws-behaviour.md, facts 23
and 33: moto enforces none).

``PutParameter`` resolves the tier, then checks the value's size against it:

- no ``Tier``: a new parameter gets the default tier (``Standard``); an overwrite keeps the
  parameter's tier (moto's behaviour, kept);
- ``Intelligent-Tiering``: ``Standard`` when the value fits, else ``Advanced``; an
  ``Advanced`` parameter stays ``Advanced`` ("Intelligent-Tiering" in the PutParameter API
  reference: the tier is chosen from the value and the parameter's use);
- ``Standard`` over an ``Advanced`` parameter is refused: AWS's ValidationException "This
  parameter uses the advanced-parameter tier. You can't downgrade a parameter from the
  advanced-parameter tier to the standard-parameter tier. If necessary, you can delete the
  advanced parameter and recreate it as a standard parameter." (quoted in
  terraform-provider-aws, ``internal/service/ssm/parameter.go``, which forces a new parameter
  for that reason);
- a ``Standard`` value over 4096 bytes is refused with AWS's ValidationException "Standard tier
  parameters support a maximum parameter value of 4096 characters. To create a larger parameter
  value, upgrade the parameter to use the advanced-parameter tier. For more information, see
  https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-
  parameters.html" (quoted in hashicorp/terraform-provider-aws#18521 and
  github-aws-runners/terraform-aws-github-runner#3815);
- any value over 8192 bytes is refused (ValidationException), with the message one report
  quotes (docs/aws-behaviour.md, fact 45).

Bytes, not characters: the quotas page and the PutParameter API reference give the limits as
"4 KB" and "8 KB", while the error message says "characters"; counting UTF-8 bytes is the
stricter reading (a value the sandbox accepts is accepted by AWS under either), and for the
ASCII PEMs this project stores the two are the same.
"""
import functools
from moto.ssm.exceptions import ValidationException
from moto.ssm.models import SimpleSystemManagerBackend

STANDARD, ADVANCED, INTELLIGENT = "Standard", "Advanced", "Intelligent-Tiering"
STANDARD_MAX = 4096
ADVANCED_MAX = 8192

TOO_BIG_FOR_STANDARD = (
    "Standard tier parameters support a maximum parameter value of 4096 characters. To create a "
    "larger parameter value, upgrade the parameter to use the advanced-parameter tier. For more "
    "information, see https://docs.aws.amazon.com/systems-manager/latest/userguide/"
    "parameter-store-advanced-parameters.html")
TOO_BIG = ("The specified parameter value is too large. Advanced-tier parameters support a "
           "maximum parameter value of 8192 characters.")
NO_DOWNGRADE = (
    "This parameter uses the advanced-parameter tier. You can't downgrade a parameter from the "
    "advanced-parameter tier to the standard-parameter tier. If necessary, you can delete the "
    "advanced parameter and recreate it as a standard parameter.")


def resolve_tier(value, requested, current, default=STANDARD):
    """The tier a PutParameter stores, or ValidationException (sources in the docstring).
    ``current`` is the existing parameter's tier, None for a new parameter."""
    size = len((value or "").encode("utf-8"))
    if requested is None:
        tier = current or default
    elif requested == INTELLIGENT:
        tier = ADVANCED if size > STANDARD_MAX or current == ADVANCED else STANDARD
    else:
        tier = requested
    if tier == STANDARD and current == ADVANCED:
        raise ValidationException(NO_DOWNGRADE)
    if size > ADVANCED_MAX:
        raise ValidationException(TOO_BIG)
    if tier == STANDARD and size > STANDARD_MAX:
        raise ValidationException(TOO_BIG_FOR_STANDARD)
    return tier


def _put_parameter(original):
    def put_parameter(self, name, description, value, parameter_type, allowed_pattern, keyid,
                      overwrite, tags, data_type, tier, policies):
        versions = self._parameters[name] if name in self._parameters else []
        if not versions or overwrite:  # else moto answers ParameterAlreadyExists
            tier = resolve_tier(value, tier, versions[-1].tier if versions else None,
                                self.default_parameter_tier)
        return original(self, name, description, value, parameter_type, allowed_pattern, keyid,
                        overwrite, tags, data_type, tier, policies)
    return put_parameter


@functools.cache  # once per process: every install patches moto in place
def install():
    """Extend moto's SSM in this process. Idempotent."""
    SimpleSystemManagerBackend.put_parameter = _put_parameter(
        SimpleSystemManagerBackend.put_parameter)

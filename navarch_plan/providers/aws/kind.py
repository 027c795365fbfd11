"""The `aws` provider type: EC2's options, tag rules and defaults, known without
importing boto3."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from navarch_plan.model import Consistency, RateLimit
from navarch_plan.providers.base import BuildContext, LabelRules, Provider
from navarch_plan.providers.declared import SPOT_AND_ON_DEMAND, DeclaredType

__all__ = ["AWS", "TAG_RULES"]

#: The config schema's shared rule for region and zone names.
_LOCATION = {"$ref": "#/$defs/location"}

OPTIONS = {
    "required": ["region", "image_id"],
    "properties": {
        "region": _LOCATION,  # the region whose clients are made first
        "regions": {"description": "more regions to list (the candidates' are added)",
                    "type": "array", "items": _LOCATION},
        "image_id": {"type": "string", "pattern": "^ami-[0-9a-f]+$"},
        "key_name": {"type": "string", "minLength": 1},
        "endpoint_url": {"type": "string", "pattern": "^https?://"},
        "subnet_id": {"type": "string", "minLength": 1},
        "security_group_ids": {"type": "array", "items": {"type": "string"}},
    },
}

# EC2 tags: keys 1-128 characters, values up to 256; the `aws:` prefix is AWS's own.
TAG_RULES = LabelRules(
    key_pattern=r".+", max_key=128, max_value=256, reserved_prefixes=("aws:",),
    words="EC2's tag rules (keys 1-128 characters, not starting with 'aws:'; values at "
          "most 256)")


def build(name: str, options: Mapping[str, Any], env: Mapping[str, str],
          context: BuildContext) -> Provider:
    """Credentials come from boto3's usual chain (environment, profile, instance role),
    never from the config. Every region a candidate names is listed."""
    from navarch_plan.providers.aws.provider import AwsProvider

    return AwsProvider(
        name, options["region"], image_id=options["image_id"],
        key_name=options.get("key_name", ""),
        regions=tuple(sorted({*options.get("regions", ()), *context.regions})),
        endpoint_url=options.get("endpoint_url") or None,
        subnet_id=options.get("subnet_id", ""),
        security_group_ids=tuple(options.get("security_group_ids", ())),
        clock=context.clock)


AWS = DeclaredType(
    name="aws", title="Amazon EC2", factory=build, options_schema=OPTIONS,
    label_rules=TAG_RULES,
    # EC2 is eventually consistent for minutes after a launch (terraform-provider-aws
    # waits 2 minutes for the same thing; we allow 3); big GPU instances can take ten
    # minutes and more to boot; RunInstances with the same ClientToken returns the
    # original instance, so a lost launch reply is settled by sending it again.
    consistency=Consistency(window=180.0, boot_timeout=1200.0, idempotent_launch=True),
    # EC2's token buckets: RunInstances refills two per second (after a burst we do not
    # rely on); describe calls twenty per second.
    rate_limit=RateLimit(launches_per_second=2.0, calls_per_second=20.0),
    purchase_models=SPOT_AND_ON_DEMAND,
)

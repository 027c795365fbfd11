"""The `aws` provider type: EC2's options, tag rules and defaults, known without
importing boto3."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from navarch_plan.model import Consistency, RateLimit
from navarch_plan.providers.aws.launch import (
    LAUNCH_OPTIONS,
    REGION_SCOPED,
    missing_scope,
)
from navarch_plan.providers.base import (
    BuildContext,
    LabelRules,
    NodeFacts,
    NodeProblem,
    Provider,
)
from navarch_plan.providers.declared import SPOT_RESERVED_ON_DEMAND, DeclaredType

__all__ = ["AWS", "TAG_RULES"]

#: The config schema's shared rule for region and zone names.
_LOCATION = {"$ref": "#/$defs/location"}


def _per_location(value: dict[str, Any], keys: str) -> dict[str, Any]:
    """One value for every region, or a map from region (or zone) to its own value. One
    schema for both (string/array keywords ignore objects and the other way round), so an
    error names the bad entry instead of "not of type string"."""
    return {**value, "description": f"one value, or one per {keys}",
            "type": [value["type"], "object"], "propertyNames": _LOCATION,
            "minProperties": 1, "additionalProperties": value}


_IMAGE = {"type": "string", "pattern": r"^(ami-[0-9a-f]+|resolve:ssm:/\S+)$",
          "patternErrorMessage": "an AMI id (ami-0123abcd...) or resolve:ssm:/PARAMETER"}
_SUBNET = {"type": "string", "pattern": r"^subnet-[0-9a-f]+$",
           "patternErrorMessage": "a subnet id (subnet-0123abcd...)"}
_GROUPS = {"type": "array", "minItems": 1,
           "items": {"type": "string", "pattern": r"^sg-[0-9a-f]+$",
                     "patternErrorMessage": "a security group id (sg-0123abcd...)"}}

OPTIONS = {
    "required": ["region"],
    "properties": {
        "region": _LOCATION,  # the region whose clients are made first
        "regions": {"description": "more regions to list (the candidates' are added)",
                    "type": "array", "items": _LOCATION},
        "image_id": _per_location(_IMAGE, "region"),
        "key_name": {"type": "string", "minLength": 1},
        "endpoint_url": {"type": "string", "pattern": "^https?://",
                         "patternErrorMessage": "an http:// or https:// URL"},
        "subnet_id": _per_location(_SUBNET, "region or zone"),
        "security_group_ids": _per_location(_GROUPS, "region"),
        # gp2/gp3 take 1-16384 GiB, standard 1-1024; EC2 also refuses less than the
        # AMI's snapshot. st1/sc1 cannot boot; io1/io2 need an IOPS figure (not offered).
        "root_volume_gb": {"type": "integer", "minimum": 1, "maximum": 16384},
        "root_volume_type": {"enum": ["gp3", "gp2", "standard"]},
        "iam_instance_profile": {
            "description": "an instance profile's name or ARN",
            "type": "string",
            "pattern": r"^(arn:aws[a-z-]*:iam::[0-9]{12}:instance-profile/\S+|[\w+=,.@-]{1,128})$",
            "patternErrorMessage": (
                "an instance profile's name (letters, digits and +=,.@_-, at most 128) or "
                "ARN (arn:aws:iam::ACCOUNT:instance-profile/NAME)")},
    },
}


#: A capacity reservation's id, or the ARN of a resource group of reservations.
RESERVATION = re.compile(r"cr-[0-9a-f]{8,17}|arn:aws[a-z-]*:resource-groups:[a-z0-9-]+:"
                         r"[0-9]{12}:group/[\w.+=@-]{1,300}")


def reservation_ids(options: Mapping[str, Any], node: NodeFacts) -> Iterator[NodeProblem]:
    """EC2 launches into a capacity reservation by id or by reservation group ARN."""
    if node.reservation and not RESERVATION.fullmatch(node.reservation):
        yield NodeProblem(f"{node.reservation!r} is not an EC2 capacity reservation id "
                          "(cr-...) or reservation group ARN (arn:aws:resource-groups:...)",
                          field="reservation")


def region_scoped_values(options: Mapping[str, Any], node: NodeFacts
                         ) -> Iterator[NodeProblem]:
    """Each region-scoped option given per region (or zone) has a value where this
    candidate may launch: said at load, not by EC2 after a failover reached it."""
    for option, why in REGION_SCOPED.items():
        lacking = missing_scope(option, options.get(option), node.region, node.zone)
        if lacking:
            yield NodeProblem(f"{option} has no value for {lacking}, where this node may "
                              f"launch ({why})", option=option)


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

    launch = {key: options[key] for key in (*LAUNCH_OPTIONS, "subnet_id",
                                            "security_group_ids") if key in options}
    return AwsProvider(
        name, options["region"], key_name=options.get("key_name", ""),
        regions=tuple(sorted({*options.get("regions", ()), *context.regions})),
        endpoint_url=options.get("endpoint_url") or None, clock=context.clock,
        spot_prices=context.spot_prices, **launch)


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
    node_checks=(region_scoped_values, reservation_ids),
    launch_options=LAUNCH_OPTIONS,
    purchase_models=SPOT_RESERVED_ON_DEMAND,
    placement_groups=True,
)

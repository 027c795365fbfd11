"""The RunInstances parameters for one ProvisionRequest: tags, placement, key pair, user
data, subnet, security groups, root volume, instance profile, spot and reservation.
Apart from provider.py because it only assembles a request (its one lookup, the AMI and
its root device, goes through RegionImages' cache); launch.py holds the pure pieces
the `aws` type shares with config checks, and this module needs boto3's images."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from navarch_plan.errors import InvalidRequestError
from navarch_plan.model import ProvisionRequest
from navarch_plan.providers.aws.catalog import SPOT_MARKET
from navarch_plan.providers.aws.images import RegionImages
from navarch_plan.providers.aws.launch import (
    block_device_mappings,
    capacity_reservation,
    client_token,
    instance_profile,
    value_for,
)
from navarch_plan.providers.aws.placement_groups import placement

__all__ = ["run_instances_params"]


def run_instances_params(req: ProvisionRequest, region: str, settings: Mapping[str, Any],
                         key_name: str, images: RegionImages) -> dict[str, Any]:
    """`settings`: the launch options with the pool's overrides laid over them;
    `key_name`: the provider's key pair, used when the request names none."""
    tags = [{"Key": k, "Value": v} for k, v in req.labels.items() if k != "Name"]
    tags.append({"Key": "Name", "Value": req.name})
    image = _image_for(settings["image_id"], region, images)
    params: dict[str, Any] = {
        "ImageId": image, "InstanceType": req.instance_type,
        "MinCount": 1, "MaxCount": 1, "ClientToken": client_token(req, region),
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}],
    }
    if req.placement_group:
        params["Placement"] = placement(req.placement_group, req.zone)
    elif req.zone:
        params["Placement"] = {"AvailabilityZone": req.zone}
    if key := (req.ssh_key_names[0] if req.ssh_key_names else key_name):
        params["KeyName"] = key
    if req.user_data:
        params["UserData"] = req.user_data  # botocore base64-encodes it
    if subnet := value_for(settings["subnet_id"], region, req.zone):
        params["SubnetId"] = subnet
    if groups := value_for(settings["security_group_ids"], region):
        params["SecurityGroupIds"] = list(groups)
    if settings["root_volume_gb"] is not None or settings["root_volume_type"]:
        params["BlockDeviceMappings"] = block_device_mappings(
            images.root_device(image, region), settings["root_volume_gb"],
            settings["root_volume_type"])
    if settings["iam_instance_profile"]:
        params["IamInstanceProfile"] = instance_profile(settings["iam_instance_profile"])
    if req.purchase == "spot":
        params["InstanceMarketOptions"] = SPOT_MARKET
    if req.reservation:
        params["CapacityReservationSpecification"] = capacity_reservation(req.reservation)
    return params


def _image_for(image_id: str | Mapping[str, str], region: str, images: RegionImages) -> str:
    image = value_for(image_id, region)
    if not image:
        raise InvalidRequestError(f"no image_id configured for region {region}",
                                  provider=images.provider, region=region,
                                  code="NoImageForRegion")
    return images.ami(image, region)

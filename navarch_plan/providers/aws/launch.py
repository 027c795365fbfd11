"""What one EC2 launch is made of, before any call: per-region values, the root volume,
the instance profile. Pure (no boto3): the `aws` type checks configs with the same
functions the provider uses to build RunInstances, so a config that loads launches."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from navarch_plan.model import ProvisionRequest

__all__ = ["DEFAULT_IMAGE", "LAUNCH_OPTIONS", "REGION_SCOPED", "SSM_PREFIX",
           "block_device_mappings", "capacity_reservation", "client_token", "instance_profile",
           "missing_scope", "value_for"]

#: EC2's own syntax for "the AMI id this SSM parameter holds in the launch's region"
#: (RunInstances and launch templates accept it): navarch resolves it itself, per region,
#: so it knows the AMI (and its root device) before launching.
SSM_PREFIX = "resolve:ssm:"

#: With no image_id: AWS's Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04),
#: whose public SSM parameter names the newest one in every region: NVIDIA driver, CUDA,
#: EFA, Docker with the NVIDIA container toolkit, for G4dn/G5/G6/P4d/P4de/P5/P5e.
DEFAULT_IMAGE = (SSM_PREFIX + "/aws/service/deeplearning/ami/x86_64/"
                 "base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id")

#: Options a pool may set for its own nodes (`launch:`), over the provider's.
LAUNCH_OPTIONS = frozenset({"image_id", "root_volume_gb", "root_volume_type",
                            "iam_instance_profile"})

#: Options whose ids belong to one region (subnets: to one zone), and why, for messages.
REGION_SCOPED: Mapping[str, str] = {
    "image_id": "an AMI id belongs to one region",
    "subnet_id": "a subnet belongs to one zone of one region",
    "security_group_ids": "security groups belong to one region",
}


def value_for(option: Any, region: str, zone: str = "") -> Any:
    """The most specific value of a per-region option for a launch: the zone's, else the
    region's; a plain value (not a mapping) holds everywhere. None when a mapping has
    neither."""
    if not isinstance(option, Mapping):
        return option
    if zone and zone in option:
        return option[zone]
    return option.get(region)


def missing_scope(option: str, value: Any, region: str, zone: str) -> str | None:
    """The words for what a per-region `value` of `option` lacks for this launch, or None
    when it has a value there (or is not a mapping)."""
    if value is None or value_for(value, region, zone) is not None:
        return None
    if option == "subnet_id" and zone:
        return f"zone {zone} or region {region}"
    return f"region {region}"


def block_device_mappings(root_device: str, size_gb: int | None,
                          volume_type: str | None) -> list[dict[str, Any]]:
    """The root volume's mapping: its device name is the AMI's (`/dev/sda1` on Ubuntu,
    `/dev/xvda` on Amazon Linux); a mapping under another name would add a second disk
    and leave the root as it was. gp3 unless told (SkyPilot's default disk tier); the
    volume goes with the instance, so nothing is left to bill."""
    ebs: dict[str, Any] = {"VolumeType": volume_type or "gp3", "DeleteOnTermination": True}
    if size_gb is not None:
        ebs["VolumeSize"] = int(size_gb)
    return [{"DeviceName": root_device, "Ebs": ebs}]


def instance_profile(value: str) -> dict[str, str]:
    """RunInstances' IamInstanceProfile: an ARN as `Arn`, anything else as `Name`."""
    return {"Arn": value} if value.startswith("arn:") else {"Name": value}


def capacity_reservation(reservation: str) -> dict[str, Any]:
    """RunInstances' CapacityReservationSpecification targeting one reservation: a
    reservation group by its ARN, else a capacity reservation by its id (cr-...)."""
    key = ("CapacityReservationResourceGroupArn" if reservation.startswith("arn:")
           else "CapacityReservationId")
    return {"CapacityReservationTarget": {key: reservation}}


def client_token(req: ProvisionRequest, region: str) -> str:
    """Deterministic RunInstances token (<= 64 ASCII chars) for this request.

    A retry of the same request gets the same token, so EC2 returns the first launch instead
    of making a second. Zone, type and region are part of it so that a failover attempt under
    the same name is a new request, not an IdempotentParameterMismatch.
    """
    basis = "\0".join((req.name, region, req.zone, req.instance_type, req.idempotency_key))
    return "navarch-" + hashlib.sha256(basis.encode()).hexdigest()[:48]

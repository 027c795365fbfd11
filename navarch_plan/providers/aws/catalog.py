"""EC2 tables: the GPU instance types navarch knows, EC2 states, EC2 error codes.

The GPU types come from the package catalog (`navarch_plan/data/catalog.json`, whose `aws`
table says where its prices come from and when they were taken). Shapes (GPU model, GPU
count, vCPUs, memory) match EC2's DescribeInstanceTypes (checked against the copy of that
data moto ships). GPU memory is the per-GPU figure NVIDIA markets.

Prices are APPROXIMATE Linux on-demand list prices in us-east-1, USD per hour. Other regions
cost more, and AWS changes prices: use these numbers to rank offers and to estimate a plan's
hourly cost, never as a bill. `None` means no reliable on-demand price is known.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from navarch_plan.catalog.facts import cloud_table
from navarch_plan.errors import (
    AuthError,
    CapacityError,
    DuplicateLaunchError,
    InvalidRequestError,
    NotFoundError,
    NotOfferedError,
    ProviderError,
    QuotaError,
    RateLimitError,
)
from navarch_plan.model import InstanceType, NodeStatus

__all__ = ["CONFIG_GAPS", "EC2_STATUS", "ERROR_CLASSES", "FAMILY_QUOTAS", "GPU_TYPES",
           "GpuShape", "SPOT_MARKET", "cloud_word", "offers", "quota_group", "same_quota"]

#: RunInstances' InstanceMarketOptions for a spot launch (spot_policy): a one-time
#: request (no persistent request relaunching behind navarch's back) whose instance is
#: terminated, not stopped, when EC2 takes it back; navarch's next plan recreates it.
SPOT_MARKET = {"MarketType": "spot",
               "SpotOptions": {"SpotInstanceType": "one-time",
                               "InstanceInterruptionBehavior": "terminate"}}
#: StateReason.Code of an instance EC2 took back from spot.
SPOT_TERMINATION = "Server.SpotInstanceTermination"


def cloud_word(instance: Mapping[str, Any]) -> str:
    """EC2's word for an instance's status: its state name, or, for a spot instance EC2
    interrupted, the reason code, which tells the planner it was preempted."""
    code = (instance.get("StateReason") or {}).get("Code", "")
    return code if code == SPOT_TERMINATION else str(instance["State"]["Name"])


@dataclass(frozen=True)
class GpuShape:
    gpu_type: str
    gpu_count: int
    gpu_memory_gb: int
    vcpus: int
    memory_gb: float
    price_per_hr: float | None


# The GPU table lives in the package's catalog (navarch_plan/data/catalog.json, the one
# source of truth); this view keeps the shape provider.py has always read.
GPU_TYPES: Mapping[str, GpuShape] = MappingProxyType({
    name: GpuShape(f.gpu_type, f.gpu_count, f.gpu_memory_gb, f.vcpus, f.memory_gb,
                   f.price_per_hr)
    for name, f in cloud_table("aws").types.items()
})

EC2_STATUS: Mapping[str, NodeStatus] = MappingProxyType({
    "pending": NodeStatus.PROVISIONING,
    "running": NodeStatus.RUNNING,
    "shutting-down": NodeStatus.TERMINATING,
    # A stopped instance still exists (its EBS volumes bill) and was stopped by someone's
    # choice: never replaced for it, which would also delete its root volume.
    "stopping": NodeStatus.STOPPED,
    "stopped": NodeStatus.STOPPED,
    "terminated": NodeStatus.TERMINATED,
})

# EC2 error codes with a meaning of their own. Codes not listed here are classified by their
# HTTP status (5xx: TransientError, else InvalidRequestError). Checked before the status,
# because EC2 sends InsufficientInstanceCapacity as an HTTP 500.
ERROR_CLASSES: tuple[tuple[frozenset[str], type[ProviderError]], ...] = (
    # The token was used before with other parameters: that launch happened.
    (frozenset({"IdempotentParameterMismatch"}), DuplicateLaunchError),
    # Unsupported: the type is not sold in that zone at all; failover moves on.
    (frozenset({"Unsupported"}), NotOfferedError),
    (frozenset({"InsufficientInstanceCapacity", "InsufficientHostCapacity",
                "InsufficientReservedInstanceCapacity",
                # A spot launch whose price cap is under the spot price: no spot there now.
                "SpotMaxPriceTooLow",
                # The targeted capacity reservation is full: the on-demand fallback follows.
                "ReservationCapacityExceeded"}), CapacityError),
    (frozenset({"InstanceLimitExceeded", "VcpuLimitExceeded",
                "MaxSpotInstanceCountExceeded"}), QuotaError),
    (frozenset({"AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId",
                "SignatureDoesNotMatch", "ExpiredToken"}), AuthError),
    (frozenset({"InvalidInstanceID.NotFound"}), NotFoundError),
    (frozenset({"RequestLimitExceeded", "Throttling"}), RateLimitError),
    # A region-scoped id the config gives that this region lacks: the config's gap.
    (frozenset({"InvalidAMIID.NotFound", "InvalidGroup.NotFound",
                "InvalidSubnetID.NotFound"}), InvalidRequestError),
)

#: The option whose value a "not found" code says this region lacks. AMIs and security
#: groups belong to one region, subnets to one zone.
CONFIG_GAPS: Mapping[str, str] = MappingProxyType({
    "InvalidAMIID.NotFound": "image_id",
    "InvalidGroup.NotFound": "security_group_ids",
    "InvalidSubnetID.NotFound": "subnet_id",
})

#: Quota codes that count vCPUs per group of instance families, per region:
#: "Running On-Demand P instances", "... G and VT instances", "... Standard (A, C, D, H,
#: I, M, R, T, Z) instances", and the same groups for Spot requests.
FAMILY_QUOTAS = frozenset({"VcpuLimitExceeded", "MaxSpotInstanceCountExceeded"})

# Family prefix (the letters before the generation digit) -> its vCPU quota group.
_QUOTA_GROUPS = {"p": "P", "g": "G and VT", "vt": "G and VT", "f": "F", "inf": "Inf",
                 "trn": "Trn", "x": "X", "dl": "DL", "hpc": "HPC"}


def quota_group(instance_type: str) -> str:
    """The EC2 vCPU quota group of an instance type (`p5.48xlarge` -> "P")."""
    family = re.match(r"[a-z]*", instance_type)
    return _QUOTA_GROUPS.get(family.group() if family else "", "Standard")


def same_quota(instance_type: str) -> frozenset[str]:
    """The catalog's types that one vCPU quota covers with `instance_type`: what an
    exhausted quota rules out in that region, and no more."""
    group = quota_group(instance_type)
    return frozenset({instance_type, *(t for t in GPU_TYPES if quota_group(t) == group)})


def offers(regions: tuple[str, ...], purchase: tuple[str, ...],
           spot: Mapping[str, Mapping[tuple[str, str], float]]) -> list[InstanceType]:
    """The GPU table as offers in `regions`; `spot`: type -> {(region, zone): price}.
    EC2 has no cheap "is there capacity" call, so every offer says available."""
    return [InstanceType(name=name, gpu_count=s.gpu_count, gpu_type=s.gpu_type,
                         memory_gb=s.memory_gb, vcpus=s.vcpus, price_per_hr=s.price_per_hr,
                         regions=regions, purchase=purchase, spot_prices=spot.get(name, {}))
            for name, s in GPU_TYPES.items()]

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

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from navarch_plan.catalog.facts import cloud_table
from navarch_plan.errors import (
    AuthError,
    CapacityError,
    DuplicateLaunchError,
    NotFoundError,
    ProviderError,
    QuotaError,
    RateLimitError,
)
from navarch_plan.model import NodeStatus

__all__ = ["EC2_STATUS", "ERROR_CLASSES", "GPU_TYPES", "GpuShape", "SPOT_MARKET",
           "cloud_word"]

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
    (frozenset({"InsufficientInstanceCapacity", "InsufficientHostCapacity",
                "InsufficientReservedInstanceCapacity",
                # A spot launch whose price cap is under the spot price: no spot there now.
                "SpotMaxPriceTooLow",
                "Unsupported"}), CapacityError),  # Unsupported: type not offered in that AZ
    (frozenset({"InstanceLimitExceeded", "VcpuLimitExceeded",
                "MaxSpotInstanceCountExceeded"}), QuotaError),
    (frozenset({"AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId",
                "SignatureDoesNotMatch", "ExpiredToken"}), AuthError),
    (frozenset({"InvalidInstanceID.NotFound", "InvalidAMIID.NotFound"}), NotFoundError),
    (frozenset({"RequestLimitExceeded", "Throttling"}), RateLimitError),
)

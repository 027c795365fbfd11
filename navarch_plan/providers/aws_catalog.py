"""EC2 tables: the GPU instance types navarch knows, EC2 states, EC2 error codes.

Shapes (GPU model, GPU count, vCPUs, memory) match EC2's DescribeInstanceTypes (checked
against the copy of that data moto ships). GPU memory is the per-GPU figure NVIDIA markets.

Prices are APPROXIMATE Linux on-demand list prices in us-east-1, USD per hour, as known when
this table was written (P4/P5 after AWS's June 2025 price cut). Other regions cost more, and
AWS changes prices: use these numbers to rank offers and to estimate a plan's hourly cost,
never as a bill. `None` means no reliable on-demand price is known (the type is mostly sold
through Capacity Blocks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from navarch_plan.errors import (
    AuthError,
    CapacityError,
    NotFoundError,
    ProviderError,
    QuotaError,
    RateLimitError,
)
from navarch_plan.model import NodeStatus

__all__ = ["EC2_STATUS", "ERROR_CLASSES", "GPU_TYPES", "GpuShape"]


@dataclass(frozen=True)
class GpuShape:
    gpu_type: str
    gpu_count: int
    gpu_memory_gb: int
    vcpus: int
    memory_gb: float
    price_per_hr: float | None


def _g(gpu: str, count: int, gpu_mem: int, vcpus: int, mem: float,
       price: float | None) -> GpuShape:
    return GpuShape(gpu, count, gpu_mem, vcpus, mem, price)


# The g5 (A10G) and g6 (L4) families share their sizes: (suffix, GPUs, vCPUs, memory GiB).
_G_SIZES = (
    ("xlarge", 1, 4, 16), ("2xlarge", 1, 8, 32), ("4xlarge", 1, 16, 64),
    ("8xlarge", 1, 32, 128), ("16xlarge", 1, 64, 256), ("12xlarge", 4, 48, 192),
    ("24xlarge", 4, 96, 384), ("48xlarge", 8, 192, 768),
)
_G5_PRICES = (1.006, 1.212, 1.624, 2.448, 4.096, 5.672, 8.144, 16.288)
_G6_PRICES = (0.8048, 0.9776, 1.3232, 2.0144, 3.3968, 4.6016, 6.6752, 13.3504)


def _family(prefix: str, gpu: str, gpu_mem: int,
            prices: tuple[float, ...]) -> dict[str, GpuShape]:
    return {f"{prefix}.{suffix}": _g(gpu, count, gpu_mem, vcpus, mem, price)
            for (suffix, count, vcpus, mem), price in zip(_G_SIZES, prices, strict=True)}


GPU_TYPES: Mapping[str, GpuShape] = MappingProxyType({
    "p6-b200.48xlarge": _g("B200", 8, 180, 192, 2048, 113.93),
    "p5e.48xlarge": _g("H200", 8, 141, 192, 2048, None),
    "p5.48xlarge": _g("H100", 8, 80, 192, 2048, 55.04),
    # p4d and p4de differ only in GPU memory; both are "A100" so an `A100:8` filter finds both.
    "p4de.24xlarge": _g("A100", 8, 80, 96, 1152, 27.45),
    "p4d.24xlarge": _g("A100", 8, 40, 96, 1152, 21.96),
    **_family("g5", "A10G", 24, _G5_PRICES),
    **_family("g6", "L4", 24, _G6_PRICES),
    "g4dn.xlarge": _g("T4", 1, 16, 4, 16, 0.526),
})

EC2_STATUS: Mapping[str, NodeStatus] = MappingProxyType({
    "pending": NodeStatus.PROVISIONING,
    "running": NodeStatus.RUNNING,
    "shutting-down": NodeStatus.TERMINATING,
    "stopping": NodeStatus.TERMINATING,
    # A stopped instance holds no GPU and will not come back by itself: treat it as gone.
    "stopped": NodeStatus.TERMINATED,
    "terminated": NodeStatus.TERMINATED,
})

# EC2 error codes with a meaning of their own. Codes not listed here are classified by their
# HTTP status (5xx: TransientError, else InvalidRequestError). Checked before the status,
# because EC2 sends InsufficientInstanceCapacity as an HTTP 500.
ERROR_CLASSES: tuple[tuple[frozenset[str], type[ProviderError]], ...] = (
    (frozenset({"InsufficientInstanceCapacity", "InsufficientHostCapacity",
                "InsufficientReservedInstanceCapacity",
                "Unsupported"}), CapacityError),  # Unsupported: type not offered in that AZ
    (frozenset({"InstanceLimitExceeded", "VcpuLimitExceeded",
                "MaxSpotInstanceCountExceeded"}), QuotaError),
    (frozenset({"AuthFailure", "UnauthorizedOperation", "InvalidClientTokenId",
                "SignatureDoesNotMatch", "ExpiredToken"}), AuthError),
    (frozenset({"InvalidInstanceID.NotFound", "InvalidAMIID.NotFound"}), NotFoundError),
    (frozenset({"RequestLimitExceeded", "Throttling"}), RateLimitError),
)

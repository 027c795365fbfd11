"""Static Compute Engine GPU facts: machine types, accelerator names, prices, regions.

Kept apart from gcp.py so the tables can be read and corrected without touching client
code, and because they are pure data (no google.cloud import: `navarch instance-types`
and the planner may use them without the SDK installed).

Prices are approximate on-demand list prices in us-central1, USD per hour, as known when
this was written; other regions cost more or less. They feed cost estimates and the
`cost` strategy, never billing. `None` means "not known well enough to state".
Region lists are approximate too: a region is listed when at least one of its zones
offered the type; zone-level availability is only known by trying (a stock-out is a
CapacityError, and the pool moves on).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from navarch_plan.model import InstanceType, NodeStatus

__all__ = [
    "BUILTIN_GPU_FAMILIES",
    "CAPACITY_CODES",
    "MACHINE_TYPES",
    "GpuMachineType",
    "accelerator_short_name",
    "boot_disk_type",
    "gpu_info",
    "has_builtin_gpus",
    "instance_types",
    "node_status",
    "parse_instance_type",
    "region_of",
    "sanitize_labels",
]


@dataclass(frozen=True)
class GpuMachineType:
    name: str
    gpu_count: int
    gpu_type: str
    vcpus: int
    memory_gb: float
    price_per_hr: float | None
    regions: tuple[str, ...]


# Accelerator-optimized families: the GPUs come with the machine type, and the API
# rejects guest_accelerators for them.
BUILTIN_GPU_FAMILIES = ("a2", "a3", "a4", "a4x", "g2", "g4")

_A2_HIGH_REGIONS = ("us-central1", "us-east1", "us-west1", "us-west3", "us-west4",
                    "europe-west4", "asia-northeast1", "asia-northeast3", "asia-southeast1")
_A2_ULTRA_REGIONS = ("us-central1", "us-east4", "us-east5", "europe-west4", "asia-southeast1")
_A3_HIGH_REGIONS = ("us-central1", "us-east4", "us-east5", "us-west1", "us-west4",
                    "europe-west1", "europe-west4", "asia-northeast1", "asia-southeast1")
_A3_MEGA_REGIONS = ("us-central1", "us-east4", "us-east5", "us-west1", "europe-west1",
                    "europe-west4", "asia-northeast1", "asia-southeast1")
_A3_ULTRA_REGIONS = ("us-central1", "us-east4", "europe-west1", "asia-south1")
_A4_REGIONS = ("us-central1", "europe-west4")
_G2_REGIONS = ("us-central1", "us-east1", "us-east4", "us-west1", "us-west4", "europe-west1",
               "europe-west4", "asia-east1", "asia-northeast1", "asia-southeast1")
_N1_T4_REGIONS = ("us-central1", "us-east1", "us-east4", "us-west1", "europe-west4",
                  "asia-east1", "asia-southeast1")
_N1_V100_REGIONS = ("us-central1", "us-west1", "europe-west4", "asia-east1")

_M = GpuMachineType
_TABLE: tuple[GpuMachineType, ...] = (
    # A2 Standard: A100 40GB.
    _M("a2-highgpu-1g", 1, "A100", 12, 85, 3.67, _A2_HIGH_REGIONS),
    _M("a2-highgpu-2g", 2, "A100", 24, 170, 7.35, _A2_HIGH_REGIONS),
    _M("a2-highgpu-4g", 4, "A100", 48, 340, 14.69, _A2_HIGH_REGIONS),
    _M("a2-highgpu-8g", 8, "A100", 96, 680, 29.39, _A2_HIGH_REGIONS),
    _M("a2-megagpu-16g", 16, "A100", 96, 1360, 55.74, _A2_HIGH_REGIONS),
    # A2 Ultra: A100 80GB. Named "A100" like the 40GB part (as the AWS catalog does for
    # p4d/p4de), so an `A100:8` request finds both; the type name tells them apart.
    _M("a2-ultragpu-1g", 1, "A100", 12, 170, 5.07, _A2_ULTRA_REGIONS),
    _M("a2-ultragpu-2g", 2, "A100", 24, 340, 10.14, _A2_ULTRA_REGIONS),
    _M("a2-ultragpu-4g", 4, "A100", 48, 680, 20.27, _A2_ULTRA_REGIONS),
    _M("a2-ultragpu-8g", 8, "A100", 96, 1360, 40.55, _A2_ULTRA_REGIONS),
    # A3 High / Mega: H100 80GB. Sub-8 A3 High prices are pro rata (less certain).
    _M("a3-highgpu-1g", 1, "H100", 26, 234, 11.06, _A3_HIGH_REGIONS),
    _M("a3-highgpu-2g", 2, "H100", 52, 468, 22.12, _A3_HIGH_REGIONS),
    _M("a3-highgpu-4g", 4, "H100", 104, 936, 44.25, _A3_HIGH_REGIONS),
    _M("a3-highgpu-8g", 8, "H100", 208, 1872, 88.25, _A3_HIGH_REGIONS),
    _M("a3-megagpu-8g", 8, "H100", 208, 1872, 92.0, _A3_MEGA_REGIONS),
    # A3 Ultra: H200 141GB. A4: B200 (price not known well enough to state).
    _M("a3-ultragpu-8g", 8, "H200", 224, 2952, 84.81, _A3_ULTRA_REGIONS),
    _M("a4-highgpu-8g", 8, "B200", 224, 3968, None, _A4_REGIONS),
    # G2: L4 24GB.
    _M("g2-standard-4", 1, "L4", 4, 16, 0.71, _G2_REGIONS),
    _M("g2-standard-8", 1, "L4", 8, 32, 0.85, _G2_REGIONS),
    _M("g2-standard-12", 1, "L4", 12, 48, 1.00, _G2_REGIONS),
    _M("g2-standard-16", 1, "L4", 16, 64, 1.15, _G2_REGIONS),
    _M("g2-standard-24", 2, "L4", 24, 96, 2.00, _G2_REGIONS),
    _M("g2-standard-32", 1, "L4", 32, 128, 1.73, _G2_REGIONS),
    _M("g2-standard-48", 4, "L4", 48, 192, 4.00, _G2_REGIONS),
    _M("g2-standard-96", 8, "L4", 96, 384, 8.00, _G2_REGIONS),
    # N1 with attached GPUs, in the `machine+accelerator:count` syntax provision accepts.
    _M("n1-standard-8+nvidia-tesla-t4:1", 1, "T4", 8, 30, 0.73, _N1_T4_REGIONS),
    _M("n1-standard-8+nvidia-tesla-v100:1", 1, "V100", 8, 30, 2.86, _N1_V100_REGIONS),
)
MACHINE_TYPES: dict[str, GpuMachineType] = {m.name: m for m in _TABLE}

# Compute accelerator type names -> the short GPU names navarch uses everywhere.
_ACCELERATORS = {
    "nvidia-tesla-t4": "T4",
    "nvidia-tesla-p4": "P4",
    "nvidia-tesla-p100": "P100",
    "nvidia-tesla-v100": "V100",
    "nvidia-l4": "L4",
    "nvidia-tesla-a100": "A100",
    "nvidia-a100-80gb": "A100",
    "nvidia-h100-80gb": "H100",
    "nvidia-h100-mega-80gb": "H100",
    "nvidia-h200-141gb": "H200",
    "nvidia-b200": "B200",
    "nvidia-gb200": "GB200",
}

_TYPE_SYNTAX = re.compile(r"^([a-z][a-z0-9-]*)(?:\+([a-z][a-z0-9-]*)(?::(\d+))?)?$")


def accelerator_short_name(accelerator_type: str) -> str:
    """`.../acceleratorTypes/nvidia-tesla-t4` -> `T4`; unknown names pass through."""
    base = accelerator_type.rsplit("/", 1)[-1]
    return _ACCELERATORS.get(base, base)


def has_builtin_gpus(machine_type: str) -> bool:
    return machine_type.split("-", 1)[0] in BUILTIN_GPU_FAMILIES


def parse_instance_type(instance_type: str) -> tuple[str, str, int]:
    """`n1-standard-8+nvidia-tesla-t4:1` -> ("n1-standard-8", "nvidia-tesla-t4", 1).

    A plain machine type gives ("a3-highgpu-8g", "", 0). Raises ValueError on bad syntax,
    a zero count, or an accelerator on a family that has its GPUs built in.
    """
    m = _TYPE_SYNTAX.match(instance_type.strip())
    if not m:
        raise ValueError(f"bad GCP instance type {instance_type!r} "
                         "(expected MACHINE_TYPE or MACHINE_TYPE+ACCELERATOR:COUNT)")
    machine, accel, count = m.group(1), m.group(2) or "", m.group(3)
    if not accel:
        return machine, "", 0
    if has_builtin_gpus(machine):
        raise ValueError(f"{machine} has its GPUs built in; drop '+{accel}'")
    n = int(count) if count is not None else 1
    if n < 1:
        raise ValueError(f"accelerator count must be at least 1 in {instance_type!r}")
    return machine, accel, n


def boot_disk_type(machine_type: str) -> str:
    # A3 Ultra and A4 attach only Hyperdisk; the other GPU families (and N1) take
    # pd-balanced. pd-standard, the API's default, is refused by A3 and G2.
    if machine_type.startswith(("a3-ultragpu", "a4-", "a4x-")):
        return "hyperdisk-balanced"
    return "pd-balanced"


def instance_types() -> list[InstanceType]:
    return [
        InstanceType(name=m.name, gpu_count=m.gpu_count, gpu_type=m.gpu_type,
                     memory_gb=m.memory_gb, vcpus=m.vcpus, price_per_hr=m.price_per_hr,
                     regions=m.regions, available=True)
        for m in _TABLE
    ]


_STATUS = {
    "PROVISIONING": NodeStatus.PROVISIONING, "STAGING": NodeStatus.PROVISIONING,
    "PENDING": NodeStatus.PROVISIONING, "RUNNING": NodeStatus.RUNNING,
    "REPAIRING": NodeStatus.UNHEALTHY, "STOPPING": NodeStatus.TERMINATING,
    "SUSPENDING": NodeStatus.TERMINATING, "PENDING_STOP": NodeStatus.TERMINATING,
    "DEPROVISIONING": NodeStatus.TERMINATING, "STOPPED": NodeStatus.TERMINATED,
    "SUSPENDED": NodeStatus.TERMINATED, "TERMINATED": NodeStatus.TERMINATED,
}

# Operation error codes that mean "no capacity for this type in this zone/region now".
CAPACITY_CODES = frozenset({
    "ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    "RESOURCE_POOL_EXHAUSTED", "REGION_RESOURCE_POOL_EXHAUSTED", "GPU_STOCKOUT",
})

_LABEL_BAD = re.compile(r"[^a-z0-9_-]")


def node_status(gce_status: str) -> NodeStatus:
    # An unknown (newer) status is not treated as broken, so it never triggers a replace.
    return _STATUS.get(gce_status, NodeStatus.PROVISIONING)


def region_of(zone: str) -> str:
    """`us-central1-a` -> `us-central1`."""
    return zone.rsplit("-", 1)[0] if "-" in zone else zone


def _label(text: str) -> str:
    return _LABEL_BAD.sub("_", text.lower())[:63]


def sanitize_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Fit labels to GCP's rules: lowercase letters, digits, '_' and '-', at most 63
    characters, keys starting with a letter. Lossy for other input (`Team` -> `team`)."""
    out: dict[str, str] = {}
    for key, value in labels.items():
        k = _label(key)
        if not k or not k[0].isalpha():
            k = ("l" + k)[:63]
        out[k] = _label(str(value))
    return out


def gpu_info(machine: str, accels: Sequence[tuple[str, int]]) -> tuple[str, int, str]:
    """(navarch instance type, GPU count, GPU type) of a machine type and its
    (accelerator type, count) pairs as an instance reports them."""
    spec = MACHINE_TYPES.get(machine)
    if spec is not None and has_builtin_gpus(machine):
        return machine, spec.gpu_count, spec.gpu_type
    if not accels:
        return machine, 0, ""
    count = sum(n for _, n in accels)
    base = accels[0][0].rsplit("/", 1)[-1]
    if has_builtin_gpus(machine):  # an A/G type missing from our table
        return machine, count, accelerator_short_name(base)
    # The same syntax provision accepts, so the planner compares like with like.
    return f"{machine}+{base}:{count}", count, accelerator_short_name(base)

"""Static Compute Engine facts: GPU machine types, accelerator names, statuses, label rules.

Kept apart from provider.py so the tables can be read and corrected without touching client
code, and because they are pure data (no google.cloud import: `navarch instance-types`
and the planner may use them without the SDK installed). The machine types, prices and
regions come from the package catalog (`navarch_plan/data/catalog.json`, whose `gcp`
table says where its prices come from and when they were taken).

Prices are approximate on-demand list prices in us-central1, USD per hour; other regions
cost more or less. They feed cost estimates and the `cost` strategy, never billing. `None`
means "not known well enough to state". Region lists are approximate too: a region is
listed when at least one of its zones offered the type; zone-level availability is only
known by trying (a stock-out is a CapacityError, and the pool moves on).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from navarch_plan.catalog.facts import cloud_offers, cloud_table
from navarch_plan.model import InstanceType, NodeStatus

__all__ = [
    "BUILTIN_GPU_FAMILIES",
    "CAPACITY_CODES",
    "MACHINE_TYPES",
    "GpuMachineType",
    "accelerator_short_name",
    "boot_disk_type",
    "reservation_full",
    "gpu_info",
    "has_builtin_gpus",
    "instance_types",
    "node_status",
    "not_offered",
    "parse_instance_type",
    "quota_scope",
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

# The GPU table lives in the package's catalog (navarch_plan/data/catalog.json, the one
# source of truth); this view keeps the shape provider.py and gpu_info() have always read.
_TABLE: tuple[GpuMachineType, ...] = tuple(
    GpuMachineType(name, f.gpu_count, f.gpu_type, f.vcpus, f.memory_gb, f.price_per_hr,
                   f.regions)
    for name, f in cloud_table("gcp").types.items()
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


# The accelerator each family with built-in GPUs carries (longest prefix first).
_BUILTIN_ACCELERATOR = (
    ("a2-ultragpu", "nvidia-a100-80gb"), ("a2-", "nvidia-tesla-a100"),
    ("a3-megagpu", "nvidia-h100-mega-80gb"), ("a3-ultragpu", "nvidia-h200-141gb"),
    ("a3-", "nvidia-h100-80gb"), ("a4x-", "nvidia-gb200"), ("a4-", "nvidia-b200"),
    ("g2-", "nvidia-l4"),
)

# GCE's GPU quota metrics name the model (NVIDIA_H100_GPUS, PREEMPTIBLE_NVIDIA_A100_80GB_GPUS,
# COMMITTED_..., or compute.googleapis.com/nvidia_l4_gpus): model token -> accelerator.
_QUOTA_METRIC = re.compile(r"\b(?:PREEMPTIBLE_|COMMITTED_)?NVIDIA_([A-Z0-9_]+?)_GPUS\b")
_QUOTA_ACCELERATOR = {
    "T4": "nvidia-tesla-t4", "P4": "nvidia-tesla-p4", "P100": "nvidia-tesla-p100",
    "V100": "nvidia-tesla-v100", "L4": "nvidia-l4", "A100": "nvidia-tesla-a100",
    "A100_80GB": "nvidia-a100-80gb", "H100": "nvidia-h100-80gb",
    "H100_MEGA": "nvidia-h100-mega-80gb", "H200": "nvidia-h200-141gb", "B200": "nvidia-b200",
    "GB200": "nvidia-gb200",
}
# 400 "Invalid value for field 'resource.machineType': '...'. Machine type with name 'X'
# does not exist in zone 'Z'." (or the same of an accelerator type); a 404 naming a zone's
# machine or accelerator type is the same fact.
_NOT_IN_ZONE = re.compile(r"does not exist in zone|/(machineTypes|acceleratorTypes)/\S+' was "
                          r"not found")


def accelerator_of(instance_type: str) -> str:
    """The accelerator type an instance type carries (`a3-highgpu-8g` ->
    `nvidia-h100-80gb`; `n1-standard-8+nvidia-tesla-t4:1` -> `nvidia-tesla-t4`); "" for
    none or bad syntax."""
    try:
        machine, accel, _ = parse_instance_type(instance_type)
    except ValueError:
        return ""
    return accel or next((a for prefix, a in _BUILTIN_ACCELERATOR
                          if machine.startswith(prefix)), "")


def quota_scope(text: str, instance_type: str = "") -> tuple[bool, frozenset[str] | None]:
    """(provider_wide, instance_types) of an exhausted quota, from its names in `text`.
    GPUS_ALL_REGIONS is project-wide (SkyPilot's rule too); a GPU model's quota covers the
    types carrying that model (the catalog's, and `instance_type` when it does) in the
    region; any other quota (CPUS, INSTANCES, ...) every type there (None)."""
    names = text.upper().replace("-", "_")
    if "GPUS_ALL_REGIONS" in names:
        return True, None
    accels = {_QUOTA_ACCELERATOR.get(m.group(1), "") for m in _QUOTA_METRIC.finditer(names)}
    accels.discard("")
    if not accels:
        return False, None
    names_of = [*MACHINE_TYPES, instance_type] if instance_type else list(MACHINE_TYPES)
    return False, frozenset(n for n in names_of if accelerator_of(n) in accels)


#: A specific reservation with no room left (the wording gcloud users report): capacity,
#: so the on-demand fallback follows, although GCE answers 400.
_RESERVATION_FULL = re.compile(r"reservations? .*do(es)? not have (enough|available) resources")


def reservation_full(message: str) -> bool:
    return _RESERVATION_FULL.search(message) is not None


def not_offered(status: int, message: str) -> bool:
    """Whether GCE's answer says the zone does not sell the machine or accelerator type
    (SkyPilot blocks the zone on the same message): the next zone may."""
    return status in (400, 404) and _NOT_IN_ZONE.search(message) is not None


def boot_disk_type(machine_type: str) -> str:
    # A3 Ultra and A4 attach only Hyperdisk; the other GPU families (and N1) take
    # pd-balanced. pd-standard, the API's default, is refused by A3 and G2.
    if machine_type.startswith(("a3-ultragpu", "a4-", "a4x-")):
        return "hyperdisk-balanced"
    return "pd-balanced"


def instance_types() -> list[InstanceType]:
    return cloud_offers("gcp")


# A stopped or suspended VM still exists (TERMINATED is GCE's word for stopped), and
# REPAIRING is one GCE is bringing back: none of them is replaced for its status.
_STATUS = {
    "PROVISIONING": NodeStatus.PROVISIONING, "STAGING": NodeStatus.PROVISIONING,
    "PENDING": NodeStatus.PROVISIONING, "REPAIRING": NodeStatus.PROVISIONING,
    "RUNNING": NodeStatus.RUNNING,
    "STOPPING": NodeStatus.STOPPED, "SUSPENDING": NodeStatus.STOPPED,
    "PENDING_STOP": NodeStatus.STOPPED, "DEPROVISIONING": NodeStatus.STOPPED,
    "STOPPED": NodeStatus.STOPPED, "SUSPENDED": NodeStatus.STOPPED,
    "TERMINATED": NodeStatus.STOPPED,
}

# Operation error codes that mean "no capacity for this type in this zone/region now".
CAPACITY_CODES = frozenset({
    "ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    "RESOURCE_POOL_EXHAUSTED", "REGION_RESOURCE_POOL_EXHAUSTED", "GPU_STOCKOUT",
})

_LABEL_BAD = re.compile(r"[^a-z0-9_-]")


def node_status(gce_status: str) -> NodeStatus:
    """An unknown (newer) word is `unknown`: never acted on for it."""
    return _STATUS.get(gce_status, NodeStatus.UNKNOWN)


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

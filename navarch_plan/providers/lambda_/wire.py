"""Lambda Cloud's replies read as navarch's model: an instance as a Node, an
`/instance-types` entry as an InstanceType. Apart from provider.py because it is pure
mapping over the documented JSON (no HTTP), the part that changes when the API's
shapes do."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from navarch_plan.catalog.facts import ON_DEMAND
from navarch_plan.catalog.gpu_names import parse_gpu_description
from navarch_plan.errors import TransientError
from navarch_plan.model import InstanceType, Node, NodeStatus

__all__ = ["node_from_wire", "offer_from_wire"]

# `restarting` is an instance coming back up; a word not listed here is `unknown`, which
# navarch never acts on (it used to read as unhealthy, and replaced whole fleets).
_STATUS = {"booting": NodeStatus.PROVISIONING, "active": NodeStatus.RUNNING,
           "restarting": NodeStatus.PROVISIONING,
           "unhealthy": NodeStatus.UNHEALTHY, "terminating": NodeStatus.TERMINATING,
           "terminated": NodeStatus.TERMINATED, "preempted": NodeStatus.TERMINATED}


def node_from_wire(provider: str, item: Any) -> Node:
    """One entry of `GET /instances` (or the `data` of `GET /instances/{id}`)."""
    if not isinstance(item, Mapping) or not item.get("id"):
        raise TransientError("an instance in the reply has no id", provider=provider,
                             code="bad-response")
    itype = item.get("instance_type") or {}
    specs = itype.get("specs") or {}
    raw_status = str(item.get("status", ""))
    return Node(
        id=str(item["id"]), provider=provider,
        region=str((item.get("region") or {}).get("name", "")),
        instance_type=str(itype.get("name", "")), zone="",
        status=_STATUS.get(raw_status, NodeStatus.UNKNOWN), cloud_status=raw_status,
        name=str(item.get("name") or ""), ip_address=str(item.get("ip") or ""),
        gpu_count=int(specs.get("gpus") or 0),
        gpu_type=parse_gpu_description(itype.get("gpu_description")).model,
        labels={str(t["key"]): str(t.get("value", ""))
                for t in item.get("tags") or [] if isinstance(t, Mapping) and "key" in t})


def offer_from_wire(key: str, entry: Any) -> InstanceType:
    """One `GET /instance-types` entry; `regions` are those with capacity now."""
    entry = entry if isinstance(entry, Mapping) else {}
    itype = entry.get("instance_type") or {}
    specs = itype.get("specs") or {}
    regions = tuple(str(r.get("name", "")) for r in
                    entry.get("regions_with_capacity_available") or [])
    cents = itype.get("price_cents_per_hour")
    gpu = parse_gpu_description(itype.get("gpu_description") or itype.get("description"))
    return InstanceType(
        name=str(itype.get("name") or key), gpu_count=int(specs.get("gpus") or 0),
        gpu_type=gpu.model, gpu_memory_gb=gpu.memory_gb,
        memory_gb=float(specs.get("memory_gib") or 0), vcpus=int(specs.get("vcpus") or 0),
        price_per_hr=None if cents is None else cents / 100,
        regions=regions, available=bool(regions), purchase=(ON_DEMAND,),
        capacity_live=True)

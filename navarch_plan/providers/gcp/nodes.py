"""A Compute Engine instance read as navarch's Node, and the labels Google's own
services keep on it. Apart from provider.py because it is pure mapping over the
API's Instance message and the node id (no calls), shared by get, list and insert."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from navarch_plan.errors import InvalidRequestError
from navarch_plan.model import Node
from navarch_plan.providers.gcp import catalog
from navarch_plan.providers.gcp.faults import gce_error
from navarch_plan.providers.gcp.kind import LABEL_RULES

__all__ = ["google_labels", "node_from_instance", "scope_name", "split_node_id"]

#: Label key prefixes of Google's own services (kind.LABEL_RULES).
_GOOGLE = LABEL_RULES.reserved_prefixes


def scope_name(scope: str) -> str:
    """`zones/us-central1-a` (or a URL ending so) -> `us-central1-a`."""
    return scope.rstrip("/").rsplit("/", 1)[-1]


def _ip_of(inst: Any) -> str:
    for nic in inst.network_interfaces:
        for ac in nic.access_configs:
            if ac.nat_i_p:
                return ac.nat_i_p
    return inst.network_interfaces[0].network_i_p if inst.network_interfaces else ""


def node_from_instance(provider: str, inst: Any) -> Node:
    """The node's id is `ZONE/NAME`, what every per-instance call is addressed by."""
    zone = inst.zone.rsplit("/", 1)[-1]
    machine = inst.machine_type.rsplit("/", 1)[-1]
    accels = [(a.accelerator_type, a.accelerator_count) for a in inst.guest_accelerators]
    itype, gpu_count, gpu_type = catalog.gpu_info(machine, accels)
    return Node(
        id=f"{zone}/{inst.name}", provider=provider, region=catalog.region_of(zone),
        zone=zone, name=inst.name, instance_type=itype,
        status=catalog.node_status(inst.status), cloud_status=inst.status,
        ip_address=_ip_of(inst), gpu_count=gpu_count, gpu_type=gpu_type,
        # Google's own labels are not the node's: never drift, never removed.
        labels={k: v for k, v in inst.labels.items() if not k.startswith(_GOOGLE)},
    )


def google_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels Google's own services put on an instance: navarch neither shows them
    as the node's (so they are never drift) nor removes them."""
    return {k: v for k, v in labels.items() if k.startswith(_GOOGLE)}


def split_node_id(provider: str, node_id: str) -> tuple[str, str]:
    """`ZONE/NAME` -> (zone, name); anything else is an invalid request."""
    zone, _, name = node_id.partition("/")
    if not zone or not name or "/" in name:
        raise gce_error(provider, InvalidRequestError, f"bad GCP node id {node_id!r} "
                        "(expected ZONE/INSTANCE_NAME)", "", "INVALID_NODE_ID")
    return zone, name

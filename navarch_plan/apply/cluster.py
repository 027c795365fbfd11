"""`placement: cluster` keeps a pool's nodes in one zone through an apply. Once one of a
pool's nodes runs somewhere (recorded before the run, or launched in it), the pool's
other launches go only there: a failover never splits the pool, since nodes in two
zones (two placement groups) cannot talk at cluster speed. A node that finds no room
there fails, saying why, rather than land apart. Shared by every launch of one apply."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from navarch_plan.config.desired import DesiredNode, Placement
from navarch_plan.model import Node
from navarch_plan.state.model import NodeRecord

__all__ = ["ClusterZones"]

#: (provider, region, zone) where a cluster pool's nodes run; zone "" when unknown.
Where = tuple[str, str, str]


class ClusterZones:
    def __init__(self, pins: Mapping[str, Where] | None = None) -> None:
        self._pins = dict(pins or {})
        self._lock = threading.Lock()

    @classmethod
    def from_state(cls, records: Mapping[str, NodeRecord],
                   desired: Mapping[str, DesiredNode]) -> ClusterZones:
        """Pins from the cluster nodes state holds that the config still accepts as
        they are (a node about to be replaced for its spec pins nothing)."""
        pins: dict[str, Where] = {}
        for address, record in sorted(records.items()):
            node = desired.get(address)
            if node is not None and record.spec.get("placement") == "cluster" \
                    and record.spec_hash in node.accepted_hashes():
                pins.setdefault(node.group, (record.provider, record.region, record.zone))
        return cls(pins)

    def pin(self, group: str, placement: Placement, created: Node) -> None:
        """A cluster node was launched here: the pool's other nodes follow it."""
        if placement.cluster:
            with self._lock:
                self._pins.setdefault(group, (placement.provider, placement.region,
                                              created.zone or placement.zone))

    def refusal(self, group: str, placement: Placement) -> str | None:
        """Why this candidate is skipped for a node of `group` (None: it is not)."""
        if not placement.cluster:
            return None
        with self._lock:
            pin = self._pins.get(group)
        if pin is None:
            return None
        provider, region, zone = pin
        if placement.provider == provider and placement.region == region \
                and (not placement.zone or not zone or placement.zone == zone):
            return None
        return (f"skipped: the pool's nodes run in {provider}/{zone or region} "
                "(placement: cluster keeps them in one zone)")

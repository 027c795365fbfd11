"""The library's pool: provider objects, a strategy, and failover, without YAML.

    pool = Pool([PoolEntry("east", FakeProvider("east"), priority=1, regions=("us-east-1",),
                           instance_type="gpu_8x_h100")], strategy="priority")
    node = pool.provision("trainer-0", ssh_key_names=("ops",))

It runs the same failover loop and strategies as `navarch apply`
(navarch_plan.apply.failover, navarch_plan.planner.strategies).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from navarch_plan.apply.failover import RuledOut, provision_with_failover
from navarch_plan.config.desired import Placement
from navarch_plan.model import Node, ProvisionRequest
from navarch_plan.planner.strategies import offer_tables, order_placements
from navarch_plan.providers.base import InstanceTypeLister, Provider

__all__ = ["Pool", "PoolEntry"]


@dataclass(frozen=True)
class PoolEntry:
    name: str
    provider: Provider
    priority: int = 0
    weight: int = 1
    regions: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    instance_type: str = ""


class Pool:
    """Library API: `Pool([PoolEntry("lambda", LambdaProvider(...), priority=1,
    regions=("us-east-1",), instance_type="gpu_8x_h100_sxm5"), ...], strategy="cost")`,
    then `pool.provision(name="job-0", index=0)` provisions with failover."""

    def __init__(self, entries: Sequence[PoolEntry], strategy: str = "priority") -> None:
        self.entries, self.strategy = list(entries), strategy
        self.providers = {e.name: e.provider for e in entries}
        self.ruled_out = RuledOut()

    def placements(self) -> list[Placement]:
        return [Placement(e.name, type(e.provider).__name__, region, zone, e.instance_type,
                          e.priority, e.weight, i)
                for i, e in enumerate(self.entries) for region in e.regions
                for zone in ([z for z in e.zones if z.startswith(region)] or [""])]

    def candidates(self, index: int = 0) -> list[Placement]:
        listed = [(e.name, offer) for e in self.entries
                  if isinstance(e.provider, InstanceTypeLister)
                  and self.strategy in ("cost", "availability")
                  for offer in e.provider.list_instance_types()]
        prices, available = offer_tables(listed)
        return order_placements(self.placements(), self.strategy, index, prices, available)

    def provision(self, name: str, index: int = 0, *, ssh_key_names: Sequence[str] = (),
                  labels: Mapping[str, str] | None = None, user_data: str = "",
                  idempotency_key: str = "") -> Node:
        """One node, on the first placement (in strategy order) that has capacity."""
        def make(p: Placement) -> ProvisionRequest:
            return ProvisionRequest(name=name, instance_type=p.instance_type, region=p.region,
                                    zone=p.zone, ssh_key_names=tuple(ssh_key_names),
                                    labels=labels or {}, user_data=user_data,
                                    idempotency_key=idempotency_key)

        node, _, _ = provision_with_failover(self.candidates(index), self.providers, make,
                                             self.ruled_out)
        return node

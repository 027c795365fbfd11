"""The library's pool: provider objects, a strategy, and failover, without YAML.

    pool = Pool([PoolEntry("east", FakeProvider("east"), priority=1, regions=("us-east-1",),
                           instance_type="gpu_8x_h100")], strategy="priority",
                name="trainers", workspace="research")
    node = pool.provision("trainer-0", index=0, ssh_key_names=("ops",))
    pool.list()              # its nodes, on every provider, by index
    pool.terminate(node)

It runs the same failover loop and strategies as `navarch apply`
(navarch_plan.apply.failover, navarch_plan.planner.strategies), and labels what it
creates as `navarch apply` does (navarch_plan.planner.ownership): workspace, address
`pool.NAME[INDEX]` and spec hash. So `navarch plan` with a config of the same workspace
sees these nodes as its own: it adopts one that matches a pool of the same name and
spec, and deletes the others as orphans (give the library its own workspace to keep
them apart).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from navarch_plan.apply.failover import RuledOut, provision_with_failover
from navarch_plan.config.desired import DesiredNode, Placement
from navarch_plan.errors import NotFoundError
from navarch_plan.model import (
    LABEL_ADDRESS,
    LABEL_WORKSPACE,
    Node,
    ProvisionRequest,
    address_from_label,
    parse_address,
    pool_address,
)
from navarch_plan.planner.ownership import ownership_labels
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
    regions=("us-east-1",), instance_type="gpu_8x_h100_sxm5"), ...], strategy="cost",
    name="trainers", workspace="research")`, then `pool.provision("job-0", index=0)`
    provisions with failover, `pool.list()` shows its nodes, `pool.terminate(node)`.

    `name` and `workspace` go into the ownership labels of every node it creates;
    `lineage` (optional) ties them to one state, as `navarch apply` does."""

    def __init__(self, entries: Sequence[PoolEntry], strategy: str = "priority", *,
                 name: str = "pool", workspace: str = "default", lineage: str = "") -> None:
        self.entries, self.strategy = list(entries), strategy
        self.providers = {e.name: e.provider for e in entries}
        self.ruled_out = RuledOut()
        self.name, self.workspace, self.lineage = name, workspace, lineage

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
        """One node, on the first placement (in strategy order) that has capacity,
        labelled as node `index` of this pool."""
        desired = DesiredNode(address=pool_address(self.name, index), group=self.name,
                              index=index, ssh_keys=tuple(ssh_key_names),
                              labels=dict(labels or {}), user_data=user_data,
                              candidates=tuple(self.placements()), strategy=self.strategy)

        def make(p: Placement) -> ProvisionRequest:
            return ProvisionRequest(
                name=name, instance_type=p.instance_type, region=p.region, zone=p.zone,
                ssh_key_names=tuple(ssh_key_names), user_data=user_data,
                labels=ownership_labels(self.workspace, desired, p, self.lineage),
                idempotency_key=idempotency_key, purchase=p.purchase,
                reservation=p.reservation)

        node, _, _ = provision_with_failover(self.candidates(index), self.providers, make,
                                             self.ruled_out)
        return node

    def list(self) -> list[Node]:
        """This pool's live nodes on every provider, by index: those labelled with its
        workspace and a `pool.NAME[i]` address of its name."""
        found = []
        distinct = {id(p): p for p in self.providers.values()}  # one object, many entries
        for provider in distinct.values():
            for node in provider.list():
                address = address_from_label(node.labels.get(LABEL_ADDRESS, "")) or ""
                if (node.labels.get(LABEL_WORKSPACE) == self.workspace and address
                        and parse_address(address)[:2] == ("pool", self.name)
                        and not node.status.is_gone):
                    found.append((parse_address(address)[2] or 0, node.id, node))
        return [node for _, _, node in sorted(found, key=lambda t: t[:2])]

    def terminate(self, node: Node | str) -> bool | None:
        """Terminate one of this pool's nodes (a Node, or its id). NotFoundError when
        the pool has no such node; otherwise the provider's answer (True: it took
        effect; None: the provider does not say)."""
        node_id = node if isinstance(node, str) else node.id
        mine = next((n for n in self.list() if n.id == node_id), None)
        if mine is None:
            raise NotFoundError(f"pool {self.name} (workspace {self.workspace}) has no node "
                                f"{node_id}")
        owner = next(e.provider for e in self.entries
                     if mine.provider in (e.name, getattr(e.provider, "name", None)))
        return owner.terminate(node_id)

"""Taking instances over explicitly: `navarch state import ADDRESS ID` and `navarch state
adopt --lineage L`. Each found instance is re-labelled as this state's (where the cloud
can set labels) and recorded at its address; nothing is launched or terminated.

Invariants: an instance is recorded only at an address the config desires and state
does not hold yet, and only on a candidate of that address (its provider, region, zone
and instance type); a refusal writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from navarch_plan.clock import Clock
from navarch_plan.config.desired import DesiredNode, Placement
from navarch_plan.errors import NavarchError, UsageError
from navarch_plan.model import LABEL_ADDRESS, LABEL_LINEAGE, Node, address_from_label
from navarch_plan.planner.ownership import ownership_labels
from navarch_plan.providers.base import LabelSetter, NodeGetter, Provider
from navarch_plan.state.model import NodeRecord, StateDoc
from navarch_plan.state.ops import JournalOp, Put

__all__ = ["TakeOver", "Taken"]


@dataclass
class Taken:
    recorded: list[tuple[str, str]] = field(default_factory=list)  # (address, id)
    relabelled: list[str] = field(default_factory=list)  # ids now carrying our lineage
    unlabelled: list[str] = field(default_factory=list)  # ids whose cloud cannot relabel
    left: list[tuple[str, str]] = field(default_factory=list)  # (id, why not recorded)


class TakeOver:
    def __init__(self, workspace: str, desired: Mapping[str, DesiredNode],
                 providers: Mapping[str, Provider], doc: StateDoc, clock: Clock) -> None:
        self.workspace, self.desired, self.providers = workspace, desired, providers
        self.doc, self.clock = doc, clock

    def find(self, node_id: str, provider: str | None) -> Node:
        """The instance with this id on the named provider, or on any configured one."""
        names = [provider] if provider else list(self.providers)
        for name in names:
            if name not in self.providers:
                raise UsageError(f"--provider {name}: no such provider in the config")
            p = self.providers[name]
            node = p.get(node_id) if isinstance(p, NodeGetter) else next(
                (n for n in p.list() if n.id == node_id), None)
            if node is not None and not node.status.is_gone:
                return node
        raise UsageError(f"no instance {node_id} on {' or '.join(names)}")

    def import_one(self, address: str, node: Node, taken: Taken) -> list[JournalOp]:
        """The journal operations that record `node` at `address` (after relabelling it);
        refuses with a NavarchError when it cannot go there."""
        wanted = self.desired.get(address)
        if wanted is None:
            raise UsageError(f"{address} is not in the config: only a desired address can "
                               "be imported into")
        if address in self.doc.nodes:
            raise UsageError(f"{address} is already in state ({self.doc.nodes[address].id});"
                               f" `navarch state rm {address}` first if it is gone")
        if any(r.id == node.id for r in (*self.doc.nodes.values(),
                                          *self.doc.deposed.values())):
            raise UsageError(f"instance {node.id} is already in state")
        placement = _placement(wanted, node)
        labels = ownership_labels(self.workspace, wanted, placement, self.doc.lineage)
        if not self._relabel(node, labels, taken):
            labels = dict(node.labels)  # state records what the instance really carries
        record = NodeRecord(
            id=node.id, provider=node.provider, region=node.region, zone=node.zone,
            instance_type=node.instance_type, name=node.name,
            spec=wanted.spec_for(placement), spec_hash=wanted.hash_for(placement),
            status=node.status.value, ip_address=node.ip_address, labels=labels,
            created_at=self.clock.now_iso(), ref_values=self._refs(wanted))
        taken.recorded.append((address, node.id))
        return [Put(address, record)]

    def adopt(self, lineage: str, nodes: list[Node], taken: Taken) -> list[JournalOp]:
        """Every instance of this workspace carrying `lineage`: relabelled as ours, and
        recorded where its address is desired and free (the rest the next plan handles
        as this state's own: adopted, or deleted if nothing desires them)."""
        if lineage == self.doc.lineage:
            raise UsageError(f"lineage {lineage} is this state's own: there is nothing to "
                             "take over (`navarch state adopt` takes another state's "
                             "instances)")
        ops: list[JournalOp] = []
        for node in sorted(nodes, key=lambda n: n.id):
            if node.labels.get(LABEL_LINEAGE) != lineage or node.status.is_gone:
                continue
            address = address_from_label(node.labels.get(LABEL_ADDRESS, "")) or ""
            try:
                ops += self.import_one(address, node, taken)
            except NavarchError as exc:
                self._relabel(node, {**node.labels, LABEL_LINEAGE: self.doc.lineage}, taken)
                taken.left.append((node.id, str(exc)))
        return ops

    def _relabel(self, node: Node, labels: dict[str, str], taken: Taken) -> bool:
        provider = self.providers[node.provider]
        if isinstance(provider, LabelSetter):
            provider.set_labels(node.id, labels)
            taken.relabelled.append(node.id)
            return True
        taken.unlabelled.append(node.id)
        return False

    def _refs(self, wanted: DesiredNode) -> dict[str, str]:
        values = {}
        for ref in wanted.refs:
            target = self.doc.nodes.get(ref.address)
            values[ref.text] = target.field_value(ref.field) if target else ""
        return values


def _placement(wanted: DesiredNode, node: Node) -> Placement:
    for p in wanted.candidates:
        if (p.provider, p.region, p.instance_type) == (node.provider, node.region,
                                                        node.instance_type) \
                and p.zone in ("", node.zone):
            return p
    where = f"{node.provider}/{node.region}" + (f"/{node.zone}" if node.zone else "")
    raise UsageError(f"instance {node.id} is {node.instance_type} on {where}, which is not "
                       f"a candidate of {wanted.address}")

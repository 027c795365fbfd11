"""The planner: desired + recorded + live -> Plan. Pure set arithmetic on addresses.

It never calls a provider: the caller lists every provider once and passes the
nodes in. Only instances whose navarch-workspace label equals this workspace are
considered; everything else is invisible here, whatever it looks like.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from navarch_plan.desired import DesiredNode, Group, Placement
from navarch_plan.errors import PlanError
from navarch_plan.model import (
    LABEL_ADDRESS,
    LABEL_SPEC,
    LABEL_WORKSPACE,
    Node,
    NodeStatus,
    address_from_label,
    parse_address,
)
from navarch_plan.plan import Action, ActionKind, Drift, Plan, Reason
from navarch_plan.plan_graph import build_edges, scope_actions
from navarch_plan.planner_actions import ActionFactory, instance_name
from navarch_plan.planner_checks import (
    check_budget,
    check_prevent_destroy,
    no_changes_reason,
    plan_cost,
)
from navarch_plan.state.model import NodeRecord, StateDoc

__all__ = ["PlanInputs", "PlanOptions", "make_plan", "live_fingerprint", "owned_nodes",
           "instance_name"]

DEAD = (NodeStatus.TERMINATED, NodeStatus.TERMINATING)


@dataclass(frozen=True)
class PlanOptions:
    destroy: bool = False
    refresh_only: bool = False
    replace: tuple[str, ...] = ()
    target: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlanInputs:
    workspace: str
    desired: Mapping[str, DesiredNode]
    groups: Mapping[str, Group]
    state: StateDoc
    live: Mapping[str, Sequence[Node]]  # every node each provider listed, by provider name
    prices: Mapping[tuple[str, str], float | None] = field(default_factory=dict)
    # (provider, type) -> regions where the provider's catalog reports it available
    availability: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    max_hourly_cost: float | None = None
    config_hash: str = ""
    created_at: str = ""


def owned_nodes(live: Mapping[str, Sequence[Node]], workspace: str) -> dict[str, Node]:
    return {n.id: n for nodes in live.values() for n in nodes
            if n.labels.get(LABEL_WORKSPACE) == workspace}


def live_fingerprint(owned: Mapping[str, Node]) -> str:
    """Changes when owned instances appear, vanish, die or are relabelled; not when a
    node merely finishes booting (provisioning -> running), nor when a dead instance
    that a cloud still lists (Lambda's terminated, EC2's shutting-down) drops out."""
    rows = sorted(
        f"{n.provider}|{n.id}|{n.status != NodeStatus.UNHEALTHY}|"
        f"{n.labels.get(LABEL_ADDRESS, '')}|{n.labels.get(LABEL_SPEC, '')}"
        for n in owned.values() if n.status not in DEAD
    )
    return "sha256:" + hashlib.sha256("\n".join(rows).encode()).hexdigest()


def make_plan(inputs: PlanInputs, options: PlanOptions,
              suffix: Callable[[str], str] | None = None) -> Plan:
    """`suffix(seed)` gives the 4 characters that make a new instance's name unique; by
    default a hash of the state's lineage and serial and the address, so the same inputs
    give the same plan, byte for byte."""
    planner = _Planner(inputs, options, suffix or _hashed_suffix(inputs.state))
    return planner.run()


class _Planner:
    def __init__(self, inputs: PlanInputs, options: PlanOptions,
                 suffix: Callable[[str], str]) -> None:
        self.inputs, self.options, self.suffix = inputs, options, suffix
        self.state = inputs.state
        self.owned = owned_nodes(inputs.live, inputs.workspace)
        self.desired = {} if options.destroy else dict(inputs.desired)
        self.actions: dict[str, Action] = {}
        self.drift: list[Drift] = []
        self.filled: set[str] = set()  # desired addresses that keep or get a live node
        self.make = ActionFactory(inputs.workspace, inputs.groups, inputs.prices,
                                  inputs.availability, suffix)

    def run(self) -> Plan:
        self._check_inputs()
        for address, record in self.state.nodes.items():
            self._recorded(address, record)
        self._address_of_id = {r.id: a for a, r in self.state.nodes.items()}
        for record in self.state.deposed.values():
            self._deposed(record)
        self._orphans()
        for address, node in self.desired.items():
            if address not in self.filled and address not in self.actions:
                self._add(self.make.create(node, Reason.MISSING))
        self._dependency_changes()
        return self._finish()

    def _check_inputs(self) -> None:
        known = set(self.inputs.live)
        for address, record in self.state.nodes.items():
            if record.provider not in known:
                raise PlanError(f"state holds {address} on provider {record.provider!r}, which "
                                "the config no longer defines; add the provider back, or "
                                f"remove the record with: navarch state rm {address}")
        for address in self.options.replace:
            if address not in self.state.nodes:
                raise PlanError(f"--replace {address}: no such node in state")

    # -- records in state ----------------------------------------------------------
    def _recorded(self, address: str, record: NodeRecord) -> None:
        live = self.owned.get(record.id)
        wanted = self.desired.get(address)
        if live is None:
            self.drift.append(Drift(address, "deleted_outside", f"{record.id} no longer exists",
                                    record.provider, record.id))
            if wanted is None:
                self._add(self.make.existing(ActionKind.FORGET, Reason.DELETED_OUTSIDE, address,
                                         record, None))
            else:
                self._add(self.make.create(wanted, Reason.DELETED_OUTSIDE))
            return
        self._drift_of(address, record, live)
        if wanted is None:
            self._add(self.make.existing(ActionKind.DELETE, self._delete_reason(address), address,
                                     record, live))
            return
        self.filled.add(address)
        reason, changed = self._replace_reason(address, record, live, wanted)
        if reason is not None:
            self._add(self.make.replacement(wanted, record, live, reason, changed))

    def _replace_reason(self, address: str, record: NodeRecord, live: Node,
                        wanted: DesiredNode) -> tuple[Reason | None, tuple[str, ...]]:
        if address in self.options.replace:
            return Reason.REQUESTED, ()
        if live.status in DEAD:
            return Reason.GONE, ()
        if live.status == NodeStatus.UNHEALTHY:
            return Reason.UNHEALTHY, ()
        if record.spec_hash not in wanted.accepted_hashes():
            # Compare with the candidate most like where the node runs, so the listed
            # fields are the ones that really changed.
            near = next((p for p in wanted.candidates if p.provider == record.provider),
                        wanted.candidates[0])
            spec = wanted.spec_for(near)
            keys = sorted(set(record.spec) | set(spec))
            return Reason.SPEC_CHANGED, tuple(
                k.removesuffix("_sha256") for k in keys if record.spec.get(k) != spec.get(k))
        return None, ()

    def _delete_reason(self, address: str) -> Reason:
        if self.options.destroy:
            return Reason.DESTROY
        kind, name, index = parse_address(address)
        group = self.inputs.groups.get(name)
        if kind == "pool" and group is not None and group.kind == "pool" and index is not None \
                and index >= group.count:
            return Reason.SCALED_DOWN
        return Reason.NOT_IN_CONFIG

    def _drift_of(self, address: str, record: NodeRecord, live: Node) -> None:
        def report(kind: str, detail: str) -> None:
            self.drift.append(Drift(address, kind, detail, record.provider, record.id))

        if live.status.value != record.status and not (
                record.status == "provisioning" and live.status == NodeStatus.RUNNING):
            report("status_changed", f"status {record.status} -> {live.status.value}")
        if dict(live.labels) != record.labels:
            keys = sorted(k for k in set(live.labels) | set(record.labels)
                          if live.labels.get(k) != record.labels.get(k))
            report("labels_changed", "labels changed outside navarch: " + ", ".join(keys))
        for attr in ("instance_type", "region", "zone"):
            was, now = getattr(record, attr), getattr(live, attr)
            if was != now:
                report(f"{attr}_changed", f"{attr} {was or '(none)'} -> {now or '(none)'}")

    def _deposed(self, record: NodeRecord) -> None:
        live = self.owned.get(record.id)
        address = self._address_of_id.get(record.id, "")
        address = address or address_from_label(record.labels.get(LABEL_ADDRESS, "")) or "?"
        kind = ActionKind.DELETE if live is not None and live.status not in DEAD \
            else ActionKind.FORGET
        self._add(self.make.existing(kind, Reason.DEPOSED, address, record, live,
                                 key=f"{address}#{record.id}"))

    # -- owned instances missing from state ------------------------------------------
    def _orphans(self) -> None:
        known = {r.id for r in self.state.nodes.values()} | set(self.state.deposed)
        for node in sorted(self.owned.values(), key=lambda n: (n.provider, n.name, n.id)):
            if node.id in known or node.status in DEAD:
                continue
            address = address_from_label(node.labels.get(LABEL_ADDRESS, "")) or f"?{node.id}"
            self.drift.append(Drift(address, "unmanaged", f"{node.id} ({node.name}) carries "
                                    "this workspace's labels but is not in state",
                                    node.provider, node.id))
            wanted = self.desired.get(address)
            if (wanted is not None and address not in self.filled
                    and _placement_of(wanted, node) is not None
                    and node.status == NodeStatus.RUNNING):
                self.filled.add(address)
                self.actions.pop(address, None)  # e.g. a create for a deleted_outside record
                self._add(self.make.adoption(address, wanted, node))
            else:
                reason = Reason.DESTROY if self.options.destroy else Reason.ORPHAN
                self._add(self.make.orphan_delete(address, node, reason))

    # -- references ------------------------------------------------------------------
    def _dependency_changes(self) -> None:
        """Replace nodes whose referenced values will change, in dependency order so a
        replacement propagates down a chain of references."""
        by_group: dict[str, list[DesiredNode]] = {}
        for node in self.desired.values():
            if node.refs:
                by_group.setdefault(node.group, []).append(node)
        for group in _topological(self.inputs.groups):
            for node in by_group.get(group, []):
                address = node.address
                if address in self.actions:
                    self._unadopt_if_stale(node)
                    continue
                record = self.state.nodes.get(address)
                if record is None:
                    continue
                changed = [ref for ref in node.refs if self._ref_changes(ref, record)]
                if changed:
                    live = self.owned[record.id]
                    action = self.make.replacement(node, record, live,
                                                   Reason.DEPENDENCY_CHANGED, ())
                    detail = "user_data references " + ", ".join(
                        sorted({r.text for r in changed})) + ", whose value changes"
                    self._add(dataclasses.replace(action, detail=detail))

    def _unadopt_if_stale(self, node: DesiredNode) -> None:
        """An orphan was booted with the values its references had then; if a node it
        refers to is rebuilt now, adopting it would record values it never saw. It is
        deleted and the address created afresh instead."""
        action = self.actions[node.address]
        if action.action != ActionKind.ADOPT or not any(
                (target := self.actions.get(ref.address)) is not None
                and target.action in (ActionKind.CREATE, ActionKind.REPLACE)
                for ref in node.refs):
            return
        del self.actions[node.address]
        self._add(self.make.orphan_delete(node.address, self.owned[action.node_id],
                                          Reason.ORPHAN))
        self._add(self.make.create(node, Reason.DEPENDENCY_CHANGED))

    def _ref_changes(self, ref: Any, record: NodeRecord) -> bool:
        target_action = self.actions.get(ref.address)
        if target_action is not None and target_action.action in (ActionKind.CREATE,
                                                                   ActionKind.REPLACE):
            return True
        target = self.state.nodes.get(ref.address)
        if target_action is not None and target_action.action == ActionKind.ADOPT:
            current = str(getattr(self.owned[target_action.node_id], ref.field, ""))
        else:
            current = target.field_value(ref.field) if target else ""
        return record.ref_values.get(ref.text) != current

    # -- building actions --------------------------------------------------------------
    def _add(self, action: Action) -> None:
        self.actions[action.key] = action

    # -- finishing -----------------------------------------------------------------
    def _finish(self) -> Plan:
        actions = [] if self.options.refresh_only else list(self.actions.values())
        actions, warnings = scope_actions(actions, self.inputs.groups, self.options)
        check_prevent_destroy(actions, self.inputs.groups)
        cost = plan_cost(self.inputs, self.state, self.owned, actions)
        warnings += check_budget(cost, self.inputs.groups, self.inputs.max_hourly_cost)
        position = {name: i for i, name in enumerate(self.inputs.groups)}
        actions.sort(key=lambda a: (position.get(a.group, len(position)), *_action_order(a)))
        inputs, owned = self.inputs, self.owned
        plan = Plan(
            workspace=inputs.workspace, created_at=inputs.created_at,
            planned_against={
                "lineage": self.state.lineage, "serial": self.state.serial,
                "live_fingerprint": live_fingerprint(owned), "config_hash": inputs.config_hash,
            },
            options=_options_json(self.options),
            actions=tuple(actions), edges=build_edges(actions, inputs.groups),
            drift=tuple(sorted(self.drift, key=lambda d: (d.address, d.kind))),
            intents=tuple(self._intent_outcomes()), warnings=tuple(warnings),
            # Every address that keeps or gets a live node without an action of its own.
            unchanged=len(self.filled - self.actions.keys()),
            cost=cost,
        )
        return dataclasses.replace(plan, no_changes_reason=no_changes_reason(plan, self))

    def _intent_outcomes(self) -> list[dict[str, str]]:
        names = {n.name: n for n in self.owned.values()}
        out = []
        for intent in self.state.intents.values():
            found = names.get(intent.name)
            outcome = (f"instance {found.id} exists: handled as an owned instance" if found
                       else "no instance was created: the intent is dropped")
            out.append({"address": intent.address, "name": intent.name, "outcome": outcome})
        return out


_ORDER = {ActionKind.DELETE: 2, ActionKind.FORGET: 3, ActionKind.ADOPT: 0,
          ActionKind.CREATE: 1, ActionKind.REPLACE: 1}


def _action_order(action: Action) -> tuple[Any, ...]:
    kind, name, index = (("", action.address, -1) if action.address.startswith("?")
                         else parse_address(action.address))
    return (name, index if index is not None else -1, _ORDER[action.action], action.key)


def _options_json(options: PlanOptions) -> dict[str, Any]:
    return {"destroy": options.destroy, "refresh_only": options.refresh_only,
            "replace": list(options.replace), "target": list(options.target),
            "exclude": list(options.exclude)}


def _hashed_suffix(state: StateDoc) -> Callable[[str], str]:
    def suffix(seed: str) -> str:
        text = f"{state.lineage}/{state.serial}/{seed}"
        return hashlib.sha256(text.encode()).hexdigest()[:4]

    return suffix


def _placement_of(wanted: DesiredNode, node: Node) -> Placement | None:
    """The candidate an owned instance was created for, judged by its spec label."""
    placement = wanted.accepted_hashes().get(node.labels.get(LABEL_SPEC, ""))
    return placement if placement is not None and placement.provider == node.provider else None


def _topological(groups: Mapping[str, Group]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in groups:
            return
        seen.add(name)
        for dep in groups[name].depends_on:
            visit(dep)
        order.append(name)

    for name in groups:
        visit(name)
    return order

"""The planner: desired + recorded + observed -> Plan. Pure set arithmetic on addresses.

It never calls a provider: the engine lists every provider once, looks up by id what
the listings did not show, and passes all of it in (`observed.py` says what an absence
may mean). Only instances whose navarch-workspace label equals this workspace, or that
state or an intent proves ours, are considered; everything else is invisible here.

Invariants: an address the clouds cannot yet speak for (a recorded instance not yet
visible, an interrupted launch still settling, an unreadable zone) gets no action; a
node that is stopped or in a status navarch does not know is never replaced or deleted
because of its status; an instance an intent proves ours is never called an orphan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from navarch_plan.errors import PlanError, RefusedPlanError
from navarch_plan.model import (
    LABEL_ADDRESS,
    LABEL_LINEAGE,
    Node,
    address_from_label,
    parse_address,
)
from navarch_plan.plan import Action, ActionKind, Drift, Plan, Reason
from navarch_plan.planner.actions import instance_name
from navarch_plan.planner.base import placement_of
from navarch_plan.planner.capacity import capacity_warnings
from navarch_plan.planner.checks import (
    check_budget,
    check_prevent_destroy,
    check_replace,
    no_changes_reason,
    plan_cost,
)
from navarch_plan.planner.graph import build_edges, scope_actions
from navarch_plan.planner.inputs import (
    PlanInputs,
    PlanOptions,
    hashed_suffix,
    live_fingerprint,
    options_json,
)
from navarch_plan.planner.label_updates import LabelUpdates
from navarch_plan.planner.observed import Observed, Seen
from navarch_plan.planner.references import References
from navarch_plan.state.model import Intent, NodeRecord
from navarch_plan.words import plural

__all__ = ["PlanInputs", "PlanOptions", "make_plan", "live_fingerprint", "instance_name"]


def make_plan(inputs: PlanInputs, options: PlanOptions,
              suffix: Callable[[str], str] | None = None) -> Plan:
    """`suffix(seed)` gives the 4 characters that make a new instance's name unique; by
    default a hash of the state's lineage and serial and the address, so the same inputs
    give the same plan, byte for byte."""
    planner = _Planner(inputs, options, suffix or hashed_suffix(inputs.state))
    return planner.run()


class _Planner(References, LabelUpdates):
    def run(self) -> Plan:
        self._check_inputs()
        self.claimed |= {r.id for r in self.state.nodes.values()} | set(self.state.deposed)
        outcomes = self._resolve_intents()
        nodes, unchanged = self.state.nodes, self._unchanged
        for address in dict.fromkeys([*nodes, *outcomes]):
            record, found = nodes.get(address), outcomes.get(address)
            # Most addresses of most plans: a record, no interrupted launch, unchanged.
            if found is None and record is not None and unchanged(address, record):
                continue
            self._address(address, record, found or [])
        self._address_of_id = {r.id: a for a, r in nodes.items()}
        for record in self.state.deposed.values():
            self._deposed(record)
        self._orphans()
        self._foreigners()
        for address, node in self.desired.items():
            if address not in self.filled and address not in self.actions:
                self._add(self.make.create(node, Reason.MISSING))
        self._dependency_changes()
        self._label_updates()
        return self._finish()

    def _check_inputs(self) -> None:
        known = set(self.observed.listings)
        pending = {i.address: i for i in self.state.intents.values()}
        holders: list[tuple[str, NodeRecord | Intent]] = [*self.state.nodes.items(),
                                                          *pending.items()]
        for address, holder in holders:
            if holder.provider not in known:
                raise PlanError(f"state holds {address} on provider {holder.provider!r}, which "
                                "the config no longer defines; add the provider back, or "
                                f"remove the record with: navarch state rm {address}")
        check_replace(self.options.replace, self.state, self.inputs.groups)

    # -- interrupted provisions ------------------------------------------------------
    # -- records in state ----------------------------------------------------------
    def _deposed(self, record: NodeRecord) -> None:
        presence = self._presence(record)
        address = self._address_of_id.get(record.id, "")
        address = address or address_from_label(record.labels.get(LABEL_ADDRESS, "")) or "?"
        if presence.seen == Seen.UNKNOWN:
            self._hold(address, "unknown", f"deposed {record.id}: {presence.detail}",
                       record.provider, record.id)
            return
        live = presence.node
        gone = presence.seen == Seen.GONE or (live is not None and live.status.is_gone)
        kind = ActionKind.FORGET if gone else ActionKind.DELETE
        self._add(self.make.existing(kind, Reason.DEPOSED, address, record, live,
                                     key=f"{address}#{record.id}"))

    # -- owned instances missing from state ------------------------------------------
    def _orphans(self) -> None:
        # Those state or an intent accounts for are skipped before sorting (the loop
        # never claims any): usually all of them, and then nothing else is needed.
        unclaimed = [n for n in self.owned.values()
                     if n.id not in self.claimed and not n.status.is_gone]
        if not unclaimed:
            return
        names = {r.name: r.id for r in (*self.state.nodes.values(),
                                        *self.state.deposed.values())}
        names |= {i.name: i.node_id for i in self.state.intents.values()}
        for node in sorted(unclaimed, key=lambda n: (n.provider, n.name, n.id)):
            address = address_from_label(node.labels.get(LABEL_ADDRESS, "")) or f"?{node.id}"
            if node.name in names and names[node.name] != node.id:
                # navarch names are unique: a second instance under one is a copy made
                # outside navarch ("launch more like this"), which keeps our labels.
                self._hold(address, "held", f"{node.id} carries the name {node.name} of "
                           "an instance navarch made, so it is a copy made outside navarch: "
                           "left as it is", node.provider, node.id)
                continue
            self.drift.append(Drift(address, "unmanaged", f"{node.id} ({node.name}) carries "
                                    "this workspace's labels but is not in state",
                                    node.provider, node.id))
            wanted = self.desired.get(address)
            if (wanted is not None and address not in self.filled
                    and placement_of(wanted, node) is not None
                    and (node.status.is_alive or node.status.is_held)):
                self.filled.add(address)
                self.actions.pop(address, None)  # e.g. a create for a deleted_outside record
                self._add(self.make.adoption(address, wanted, node))
            elif node.status.is_held and not self.options.destroy:
                self._hold(address, "held", f"{node.id} ({node.name}) is {node.status_word} "
                           "and not in state: left as it is (navarch never deletes a node "
                           "for its status)", node.provider, node.id)
            else:
                reason = Reason.DESTROY if self.options.destroy else Reason.ORPHAN
                self._add(self.make.orphan_delete(address, node, reason))

    def _foreigners(self) -> None:
        """Instances of another state of this workspace: never touched. One at an address
        this config wants stops the plan: launching beside it would double the fleet."""
        blocking = []
        for node in sorted(self.foreign.values(), key=lambda n: (n.provider, n.name, n.id)):
            if node.id in self.claimed or node.status.is_gone:
                continue
            address = address_from_label(node.labels.get(LABEL_ADDRESS, "")) or f"?{node.id}"
            if address in self.desired and address not in self.filled:
                blocking.append((address, node))
        if self.foreign:
            theirs = ", ".join(sorted({n.labels.get(LABEL_LINEAGE, "")
                                       for n in self.foreign.values()}))
            self.foreign_warning = (
                f"{plural(len(self.foreign), 'instance')} of workspace {self.inputs.workspace} "
                f"{'belongs' if len(self.foreign) == 1 else 'belong'} "
                f"to another state (lineage {theirs}; this state's is {self.state.lineage}): "
                "they are left alone")
        if self.taken_over:
            raise PlanError(_taken_over_refusal(self.taken_over, self.state.lineage))
        if blocking:
            raise PlanError(_foreign_refusal(blocking, self.inputs.workspace,
                                             self.state.lineage))

    # -- references ------------------------------------------------------------------
    # -- building actions --------------------------------------------------------------
    # -- finishing -----------------------------------------------------------------
    def _finish(self) -> Plan:
        actions = [] if self.options.refresh_only else list(self.actions.values())
        actions, warnings = scope_actions(actions, self.inputs.groups, self.options)
        check_prevent_destroy(actions, self.inputs.groups)
        cost = plan_cost(self.inputs, self.state, self.owned, actions)
        try:
            warnings += check_budget(cost, self.inputs.groups, self.inputs.max_hourly_cost)
            refusal = None
        except PlanError as exc:
            refusal = exc  # raised below, with the plan it refuses
        warnings += _unreachable_warnings(self.observed)
        warnings += [self.foreign_warning] if self.foreign_warning else []
        warnings += self.label_warnings
        warnings += capacity_warnings(actions)
        position = {name: i for i, name in enumerate(self.inputs.groups)}
        actions.sort(key=lambda a: (position.get(a.group, len(position)), *_action_order(a)))
        inputs, owned = self.inputs, self.owned
        plan = Plan(
            workspace=inputs.workspace, created_at=inputs.created_at,
            planned_against={
                "lineage": self.state.lineage, "serial": self.state.serial,
                "live_fingerprint": live_fingerprint(owned), "config_hash": inputs.config_hash,
            },
            options=options_json(self.options),
            actions=tuple(actions), edges=build_edges(actions, inputs.groups),
            drift=tuple(sorted(self.drift, key=lambda d: (d.address, d.kind))),
            intents=tuple(self.intent_notes), warnings=tuple(warnings),
            # Every address that keeps or gets a live node without an action of its own.
            unchanged=len(self.filled - self.actions.keys()),
            cost=cost,
            unsettled=tuple(sorted(self.unsettled, key=lambda u: (u.address, u.kind))),
            unreachable=self.observed.unreachable(),
        )
        plan = dataclasses.replace(plan, no_changes_reason=no_changes_reason(plan, self))
        if refusal is not None:
            raise RefusedPlanError(str(refusal), plan)
        return plan


def _foreign_refusal(blocking: list[tuple[str, Node]], workspace: str, lineage: str) -> str:
    address, node = blocking[0]
    theirs = node.labels.get(LABEL_LINEAGE, "")
    more = (f" (and {plural(len(blocking) - 1, 'more address')})" if len(blocking) > 1
            else "")
    return (f"{address}{more} is held by instance {node.id} of another state of workspace "
            f"{workspace} (lineage {theirs}; this state's is {lineage}): navarch will not "
            "launch beside it. If that state is lost, take its instances over with "
            f"`navarch state adopt --lineage {theirs}`, or this one with `navarch state "
            f"import {address} {node.id}`; if another config uses workspace {workspace}, "
            "give one of them its own `workspace:`")


def _taken_over_refusal(taken: list[tuple[str, Node]], lineage: str) -> str:
    address, node = taken[0]
    theirs = node.labels.get(LABEL_LINEAGE, "")
    more = f" (and {plural(len(taken) - 1, 'more address')})" if len(taken) > 1 else ""
    return (f"{address}{more} is recorded in this state, but its instance {node.id} now "
            f"belongs to another state (lineage {theirs}; this state's is {lineage}), which "
            "took it over with `navarch state adopt`: navarch will neither label it back "
            "nor launch beside it. If that state keeps it, remove the address from this "
            f"config (the next plan forgets it) or run `navarch state rm {address}`; to "
            f"take it back, `navarch state adopt --lineage {theirs}`")


def _unreachable_warnings(observed: Observed) -> list[str]:
    return [f"{provider} could not read {', '.join(places)}: nothing is planned for the "
            "nodes there, and drift cannot tell whether they changed"
            for provider, places in sorted(observed.unreachable().items())]


_ORDER = {ActionKind.DELETE: 2, ActionKind.FORGET: 3, ActionKind.ADOPT: 0,
          ActionKind.CREATE: 1, ActionKind.REPLACE: 1, ActionKind.UPDATE: 1}


def _action_order(action: Action) -> tuple[Any, ...]:
    kind, name, index = (("", action.address, -1) if action.address.startswith("?")
                         else parse_address(action.address))
    return (name, index if index is not None else -1, _ORDER[action.action], action.key)



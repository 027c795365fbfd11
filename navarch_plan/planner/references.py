"""References between nodes in the plan: a node whose referenced values change is
replaced, in dependency order, so a replacement propagates down a chain. Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from navarch_plan.config.desired import DesiredNode, Group
from navarch_plan.plan import ActionKind, Reason
from navarch_plan.planner.intents import IntentOutcome
from navarch_plan.planner.interrupted import InterruptedLaunches
from navarch_plan.state.model import NodeRecord

__all__ = ["References", "topological"]


class References(InterruptedLaunches):
    """Built on the interrupted-launch part: a reference change may re-use or drop a
    spare instance an interrupted launch made."""

    def _dependency_changes(self) -> None:
        """Replace nodes whose referenced values will change, in dependency order so a
        replacement propagates down a chain of references."""
        by_group: dict[str, list[DesiredNode]] = {}
        for node in self.desired.values():
            if node.refs:
                by_group.setdefault(node.group, []).append(node)
        for group in topological(self.inputs.groups):
            for node in by_group.get(group, []):
                self._dependency_change(node)
        for address, fit in self.spares.items():
            if not self._finish_requested(address, fit):
                self._drop_spare(address, fit)

    def _finish_requested(self, address: str, fit: IntentOutcome) -> bool:
        """A spare launched by a replacement nothing in the config asks for
        (`--replace`; its intent names the instance it replaces), interrupted after its
        launch: finished with that instance, not thrown away, unless a node it refers
        to gets a new instance now (it was booted with values about to change)."""
        record, node = self.state.nodes.get(address), self.desired.get(address)
        if record is None or node is None or fit.intent.replaces != record.id \
                or self._rebuilding(node):
            return False
        live = self._live(record)
        if live is None:
            return False
        self._replace_with(node, record, live, Reason.REQUESTED, (), fit)
        return True

    def _dependency_change(self, node: DesiredNode) -> None:
        address = node.address
        if address in self.actions:
            self._unadopt_if_stale(node)
            return
        record = self.state.nodes.get(address)
        live = self._live(record) if record is not None else None
        if record is None or live is None:
            return
        changed = [ref for ref in node.refs if self._ref_changes(ref, record)]
        if not changed:
            return
        detail = "user_data references " + ", ".join(
            sorted({r.text for r in changed})) + ", whose value changes"
        spare = self.spares.pop(address, None)
        if spare is not None and not self._rebuilding(node):
            # An interrupted apply launched it with the values its references have now.
            self._replace_with(node, record, live, Reason.DEPENDENCY_CHANGED, (), spare)
        else:
            if spare is not None:
                self._drop_spare(address, spare)
            action = self.make.replacement(node, record, live, Reason.DEPENDENCY_CHANGED, ())
            self._add(dataclasses.replace(action, detail=detail))
            return
        self._add(dataclasses.replace(self.actions[address], detail=detail))

    def _rebuilding(self, node: DesiredNode) -> bool:
        """Whether a node this one refers to gets a new instance in this plan."""
        return any((target := self.actions.get(ref.address)) is not None
                   and target.action in (ActionKind.CREATE, ActionKind.REPLACE)
                   for ref in node.refs)

    def _unadopt_if_stale(self, node: DesiredNode) -> None:
        """An orphan was booted with the values its references had then; if a node it
        refers to is rebuilt now, adopting it would record values it never saw. It is
        deleted and the address created afresh instead."""
        action = self.actions[node.address]
        if action.action != ActionKind.ADOPT or not self._rebuilding(node):
            return
        del self.actions[node.address]
        adopted = self.observed.by_id[(action.provider, action.node_id)]
        reason = Reason.INTERRUPTED if action.intent_id else Reason.ORPHAN
        self._add(self.make.orphan_delete(node.address, adopted, reason, action.intent_id))
        self._add(self.make.create(node, Reason.DEPENDENCY_CHANGED))

    def _ref_changes(self, ref: Any, record: NodeRecord) -> bool:
        target_action = self.actions.get(ref.address)
        if target_action is not None and target_action.action in (ActionKind.CREATE,
                                                                   ActionKind.REPLACE):
            return True
        target = self.state.nodes.get(ref.address)
        if target_action is not None and target_action.action == ActionKind.ADOPT:
            adopted = self.observed.by_id[(target_action.provider, target_action.node_id)]
            current = str(getattr(adopted, ref.field, ""))
        else:
            current = target.field_value(ref.field) if target else ""
        return record.ref_values.get(ref.text) != current


def topological(groups: Mapping[str, Group]) -> list[str]:
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

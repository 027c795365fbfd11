"""Interrupted launches in the plan: what each open intent's instance becomes (adopted,
the end of its replacement, deleted as ours, re-sent, or waited for). Pure; the
reads are resolved in intents.py."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from typing import Any

from navarch_plan.config.desired import DesiredNode
from navarch_plan.model import (
    Node,
)
from navarch_plan.plan import Reason
from navarch_plan.planner.base import PlannerBase, placement_of
from navarch_plan.planner.intents import IntentOutcome, resolve_intent
from navarch_plan.planner.observed import Presence, Seen
from navarch_plan.state.model import NodeRecord

__all__ = ["InterruptedLaunches"]


class InterruptedLaunches(PlannerBase):
    def _resolve_intents(self) -> dict[str, list[IntentOutcome]]:
        by_address: dict[str, list[IntentOutcome]] = {}
        for intent in self.state.intents.values():
            outcome = resolve_intent(intent, self.observed, self.inputs.idempotent)
            if outcome.node is not None:
                self.claimed.add(outcome.node.id)
            if outcome.kind == "drop":
                self._note(outcome, "drop")
                continue
            by_address.setdefault(intent.address, []).append(outcome)
        return by_address

    def _address(self, address: str, record: NodeRecord | None,
                 outcomes: list[IntentOutcome]) -> None:
        """One address: its record (if any) and the interrupted launches made for it."""
        wanted = self.desired.get(address)
        presence = self._presence(record) if record is not None else None
        fit = self._found(address, wanted, [o for o in outcomes if o.kind == "found"])
        resume = next((o for o in outcomes if o.kind == "resume"), None)
        waiting = [o for o in outcomes if o.kind in ("settling", "unknown")]
        if resume is not None and (fit is not None or not self._resumable(
                address, resume, wanted, record, presence)):
            waiting += self._wait_or_drop(resume)
            resume = None
        if fit is not None and wanted is not None:
            self._complete(address, wanted, record, presence, fit)
            for outcome in waiting:
                self._note(outcome, outcome.kind)
        elif waiting:
            self._wait(address, wanted, record, presence, waiting)
        elif resume is not None and wanted is not None:
            self._resume(address, wanted, record, presence, resume)
        elif record is not None and presence is not None:
            self._recorded(address, record, presence)

    def _found(self, address: str, wanted: DesiredNode | None,
               found: list[IntentOutcome]) -> IntentOutcome | None:
        """The first instance an interrupted launch made that fits the address; the
        others (or all, when nothing is desired there) are deleted: the intent proves
        they are ours, so they are never orphans."""
        fit = None
        for outcome in found:
            node = outcome.instance
            if fit is None and wanted is not None and placement_of(wanted, node) is not None:
                fit = outcome
                continue
            reason = self._delete_reason(address) if wanted is None else Reason.SPEC_CHANGED
            self._add(self.make.orphan_delete(address, node, reason, outcome.intent.id))
            self._note(outcome, "delete", f"instance {node.id} exists but is not wanted here "
                       f"({reason.value}): it is deleted")
        return fit

    def _resumable(self, address: str, outcome: IntentOutcome, wanted: DesiredNode | None,
                   record: NodeRecord | None, presence: Presence | None) -> bool:
        """A launch may be re-sent when the address still needs that node, and the
        placement it used is still one of the config's candidates."""
        intent = outcome.intent
        if wanted is None or intent.placement_key not in {p.key for p in wanted.candidates}:
            return False
        if record is None or presence is None or presence.seen == Seen.GONE:
            return True
        return presence.seen == Seen.LIVE and presence.node is not None and \
            self._replace_reason(address, record, presence.node, wanted)[0] \
            is not None

    def _wait_or_drop(self, outcome: IntentOutcome) -> list[IntentOutcome]:
        """A launch not re-sent waits out its provider's window like any other."""
        intent = outcome.intent
        if self.observed.settling(intent.provider, intent.started_at) is not None:
            return [replace(outcome, kind="settling", detail=f"no instance named {intent.name} "
                            "is visible yet; nothing is done for this address until "
                            f"{intent.provider}'s consistency window has passed")]
        self._note(outcome, "drop", f"no instance named {intent.name} appeared within "
                   f"{intent.provider}'s consistency window: the intent is dropped")
        return []

    def _complete(self, address: str, wanted: DesiredNode, record: NodeRecord | None,
                  presence: Presence | None, fit: IntentOutcome) -> None:
        """Finish what an interrupted apply began, with the instance it launched."""
        node = fit.instance
        self.filled.add(address)
        if record is None or presence is None or presence.seen == Seen.GONE:
            if record is not None and presence is not None:
                self._gone_drift(address, record, presence)
            self._add(self.make.adoption(address, wanted, node, Reason.INTERRUPTED,
                                         fit.intent.id))
            self._note(fit, "adopt", f"instance {node.id} exists: it is adopted")
            return
        if presence.seen != Seen.LIVE or presence.node is None:
            self._hold(address, presence.seen.value, presence.detail, record.provider,
                       record.id)
            self._note(fit, "settling", f"instance {node.id} exists; it is kept until "
                       f"{record.id} can be seen")
            return
        self._drift_of(address, record, presence.node)
        reason, changes = self._replace_reason(address, record, presence.node, wanted)
        if reason is None:
            # Maybe a replacement for a changed reference: the reference pass decides.
            self.spares[address] = fit
            return
        self._replace_with(wanted, record, presence.node, reason, changes, fit)

    def _replace_with(self, wanted: DesiredNode, record: NodeRecord, live: Node,
                      reason: Reason, changes: tuple[dict[str, Any], ...],
                      fit: IntentOutcome) -> None:
        """A replacement whose new node an interrupted apply already launched."""
        node = fit.instance
        action = self.make.replacement(wanted, record, live, reason, changes)
        self._add(dataclasses.replace(action, new_node_id=node.id, name=node.name,
                                      intent_id=fit.intent.id))
        self._note(fit, "replace", f"instance {node.id} exists: it finishes the replacement "
                   f"of {record.id}")

    def _drop_spare(self, address: str, fit: IntentOutcome) -> None:
        node = fit.instance
        self._add(self.make.orphan_delete(address, node, Reason.INTERRUPTED, fit.intent.id))
        self._note(fit, "delete", f"instance {node.id} exists, but {address} needs no new "
                   "node any more: it is deleted")

    def _wait(self, address: str, wanted: DesiredNode | None, record: NodeRecord | None,
              presence: Presence | None, waiting: list[IntentOutcome]) -> None:
        for outcome in waiting:
            kind = outcome.kind
            self._hold(address, kind, f"interrupted launch of {outcome.intent.name}: "
                       f"{outcome.detail}", outcome.intent.provider, outcome.intent.node_id)
            self._note(outcome, kind)
        if wanted is None:
            if record is not None and presence is not None:
                self._recorded(address, record, presence)
            return
        self.filled.add(address)
        if record is not None and presence is not None and presence.node is not None:
            self._drift_of(address, record, presence.node)

    def _resume(self, address: str, wanted: DesiredNode, record: NodeRecord | None,
                presence: Presence | None, outcome: IntentOutcome) -> None:
        """Re-send an interrupted launch exactly (same name, key and placement first)."""
        intent = outcome.intent
        self.filled.add(address)
        if record is None or presence is None or presence.seen == Seen.GONE:
            reason = Reason.MISSING
            if record is not None and presence is not None:
                reason = self._gone_drift(address, record, presence)
            action = self.make.create(wanted, reason, first=_intent_key(outcome))
        elif presence.node is not None:  # live, and needing a replacement (_resumable)
            self._drift_of(address, record, presence.node)
            why, changes = self._replace_reason(address, record, presence.node, wanted)
            action = self.make.replacement(wanted, record, presence.node,
                                           why or Reason.REQUESTED, changes,
                                           first=_intent_key(outcome))
        else:
            return
        self._add(dataclasses.replace(
            action, name=intent.name, intent_id=intent.id,
            idempotency_key=intent.idempotency_key or intent.id, detail=outcome.detail))
        self._note(outcome, "resume")


def _intent_key(outcome: IntentOutcome) -> tuple[str, str, str, str, str]:
    return outcome.intent.placement_key

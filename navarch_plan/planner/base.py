"""The planner's working state and the judgments every part of it shares: where a
recorded instance stands, whether it must be replaced or deleted, what drifted. Pure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from navarch_plan.config.desired import DesiredNode, Placement
from navarch_plan.model import (
    LABEL_LINEAGE,
    LABEL_SPEC,
    Node,
    NodeStatus,
    parse_address,
)
from navarch_plan.plan import Action, ActionKind, Drift, Reason, Unsettled
from navarch_plan.planner.actions import ActionFactory
from navarch_plan.planner.inputs import PlanInputs, PlanOptions
from navarch_plan.planner.intents import IntentOutcome
from navarch_plan.planner.labels import labels_only_placement
from navarch_plan.planner.observed import Observed, Presence, Seen
from navarch_plan.planner.preemption import gone_reason, was_preempted
from navarch_plan.planner.spec_diff import spec_changes
from navarch_plan.state.model import NodeRecord

__all__ = ["PlannerBase", "placement_of"]


class PlannerBase:
    def __init__(self, inputs: PlanInputs, options: PlanOptions,
                 suffix: Callable[[str], str]) -> None:
        self.inputs, self.options, self.suffix = inputs, options, suffix
        self.state = inputs.state
        self.observed = inputs.observed or Observed.of(inputs.live)
        ownership = self.observed.ownership(inputs.workspace, inputs.state.lineage)
        self.owned, self.foreign = ownership.ours, ownership.foreign
        self.desired = {} if options.destroy else dict(inputs.desired)
        self.actions: dict[str, Action] = {}
        self.drift: list[Drift] = []
        self.unsettled: list[Unsettled] = []
        self.filled: set[str] = set()  # desired addresses that keep, get or may have a node
        self.claimed: set[str] = set()  # instance ids that state or an intent accounts for
        self.intent_notes: list[dict[str, str]] = []
        # Found instances of interrupted launches at addresses whose node needs no
        # replacing for its spec: kept for the reference pass, else deleted.
        self.spares: dict[str, IntentOutcome] = {}
        self.foreign_warning = ""
        # Desired addresses whose recorded instance another state took over: _foreigners
        # stops the plan for them (never relabelled back, never launched beside).
        self.taken_over: list[tuple[str, Node]] = []
        self._spec_diffs: dict[tuple[str, str], tuple[dict[str, Any], ...]] = {}
        self.make = ActionFactory(inputs.workspace, inputs.groups, inputs.prices,
                                  inputs.availability, suffix, inputs.spot_offers,
                                  inputs.capacity)

    def _presence(self, record: NodeRecord) -> Presence:
        return self.observed.presence(record.provider, record.id, record.region, record.zone,
                                      record.created_at)

    def _note(self, outcome: IntentOutcome, kind: str, detail: str = "") -> None:
        intent = outcome.intent
        self.intent_notes.append({"address": intent.address, "name": intent.name, "kind": kind,
                                  "id": intent.id, "node_id": intent.node_id or (
                                      outcome.node.id if outcome.node else ""),
                                  "outcome": detail or outcome.detail})

    def _hold(self, address: str, kind: str, detail: str, provider: str = "",
              node_id: str = "") -> None:
        self.unsettled.append(Unsettled(address, kind, detail, provider, node_id))

    def _recorded(self, address: str, record: NodeRecord, presence: Presence) -> None:
        wanted = self.desired.get(address)
        if presence.seen == Seen.GONE:
            reason = self._gone_drift(address, record, presence)
            if wanted is None:
                self._add(self.make.existing(ActionKind.FORGET, reason,
                                             address, record, None, detail=presence.detail))
            else:
                what = ("spot instance was taken back by the cloud"
                        if reason == Reason.PREEMPTED else "instance was deleted outside navarch")
                self._add(self.make.create(wanted, reason, f"the recorded {what} "
                                           f"({presence.detail})"))
            return
        if presence.seen != Seen.LIVE or presence.node is None:
            # Not visible yet, or unreadable: nothing may be built or forgotten on that
            # basis. A node no longer wanted is still deleted: terminating by id is safe,
            # and apply confirms it.
            if wanted is None and presence.seen == Seen.NOT_YET_VISIBLE:
                self._add(self.make.existing(ActionKind.DELETE, self._delete_reason(address),
                                             address, record, None, detail=presence.detail))
                return
            self._hold(address, presence.seen.value, presence.detail, record.provider,
                       record.id)
            if wanted is not None:
                self.filled.add(address)
            return
        self._recorded_live(address, record, presence.node, wanted)

    def _unchanged(self, address: str, record: NodeRecord) -> bool:
        """Whether the recorded instance is live, as state says and in spec: then
        _recorded would find no drift and no reason to replace or hold it, and only count
        it as filled, which this does (True). The tests of _drift_of and _replace_reason,
        without their objects and calls (most nodes of most plans: a quarter of the planning
        at 10,000 nodes); False leaves everything to them."""
        live = self.observed.by_id.get((record.provider, record.id))
        wanted = self.desired.get(address)
        if live is None or wanted is None or address in self.options.replace:
            return False
        # Not gone (Presence would say GONE for a looked-up one), unhealthy nor held.
        if live.status not in _STEADY or _status_changed(record, live):
            return False
        if (live.labels != record.labels  # a mapping proxy compares as its dict does
                or live.instance_type != record.instance_type or live.region != record.region
                or live.zone != record.zone
                or record.spec_hash not in wanted.accepted_hashes()):
            return False
        self.filled.add(address)
        return True

    def _recorded_live(self, address: str, record: NodeRecord, live: Node,
                       wanted: DesiredNode | None) -> None:
        if live.id in self.foreign:
            self._taken_over(address, record, live, wanted)
            return
        self._drift_of(address, record, live)
        if wanted is None:
            self._add(self.make.existing(ActionKind.DELETE, self._delete_reason(address),
                                         address, record, live))
            return
        self.filled.add(address)
        reason, changes = self._replace_reason(address, record, live, wanted)
        if reason is not None:
            self._add(self.make.replacement(wanted, record, live, reason, changes))
        elif live.status.is_held:
            self._hold(address, "held", f"{record.id} is {live.status_word}: left as it is "
                       f"(navarch never replaces a node for that; --replace {address} does)",
                       record.provider, record.id)

    def _taken_over(self, address: str, record: NodeRecord, live: Node,
                    wanted: DesiredNode | None) -> None:
        """The recorded instance now carries another state's lineage (`navarch state
        adopt` there): it is that state's. Never deleted, replaced or relabelled from
        here: a record nothing desires is forgotten; a desired one stops the plan."""
        if wanted is not None:
            self.taken_over.append((address, live))
            self.filled.add(address)
            return
        theirs = live.labels.get(LABEL_LINEAGE, "")
        self._add(self.make.existing(
            ActionKind.FORGET, Reason.TAKEN_OVER, address, record, live,
            detail=f"{record.id} now belongs to another state (lineage {theirs}): "
                   "forgotten here, not deleted"))

    def _gone_drift(self, address: str, record: NodeRecord, presence: Presence) -> Reason:
        """Reports the gone instance as drift of its kind (preempted or deleted_outside),
        which is also the reason it is recreated."""
        reason = gone_reason(record, presence.node)
        self.drift.append(Drift(address, reason.value, f"{record.id}: {presence.detail}",
                                record.provider, record.id))
        return reason

    def _replace_reason(self, address: str, record: NodeRecord, live: Node,
                        wanted: DesiredNode
                        ) -> tuple[Reason | None, tuple[dict[str, Any], ...]]:
        """Why the node must be replaced (None: it need not be), and for a changed
        spec what changed in it."""
        if address in self.options.replace:
            return Reason.REQUESTED, ()
        if live.status.is_gone:
            return (Reason.PREEMPTED if was_preempted(record, live) else Reason.GONE), ()
        if live.status == NodeStatus.UNHEALTHY:
            return Reason.UNHEALTHY, ()
        if record.spec_hash not in wanted.accepted_hashes() \
                and labels_only_placement(wanted, record) is None:  # labels: updated in place
            # Compare with the candidate most like where the node runs, so the listed
            # fields are the ones that really changed.
            near = next((p for p in wanted.candidates if p.provider == record.provider),
                        wanted.candidates[0])
            # A fleet whose config changed shares one old and one new spec: diffed once.
            pair = (record.spec_hash, wanted.hash_for(near))
            if pair not in self._spec_diffs:
                self._spec_diffs[pair] = spec_changes(record.spec, wanted.spec_for(near))
            return Reason.SPEC_CHANGED, self._spec_diffs[pair]
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

        if _status_changed(record, live):
            report("preempted" if was_preempted(record, live) else "status_changed",
                   f"status {record.status} -> {live.status_word}")
        if dict(live.labels) != record.labels:
            keys = sorted(k for k in set(live.labels) | set(record.labels)
                          if live.labels.get(k) != record.labels.get(k))
            report("labels_changed", "labels changed outside navarch: " + ", ".join(keys))
        for attr in ("instance_type", "region", "zone"):
            was, now = getattr(record, attr), getattr(live, attr)
            if was != now:
                report(f"{attr}_changed", f"{attr} {was or '(none)'} -> {now or '(none)'}")

    def _live(self, record: NodeRecord) -> Node | None:
        return self.observed.by_id.get((record.provider, record.id))

    def _add(self, action: Action) -> None:
        self.actions[action.key] = action


# Neither gone, unhealthy nor held: statuses that by themselves never call for an action.
_STEADY = (NodeStatus.RUNNING, NodeStatus.PROVISIONING)


def _status_changed(record: NodeRecord, live: Node) -> bool:
    """Drift: the status is not the recorded one (a recorded provisioning node now seen
    running only finished booting)."""
    return live.status.value != record.status and not (
        record.status == "provisioning" and live.status == NodeStatus.RUNNING)


def placement_of(wanted: DesiredNode, node: Node) -> Placement | None:
    """The candidate an owned instance was created for, judged by its spec label."""
    placement = wanted.accepted_hashes().get(node.labels.get(LABEL_SPEC, ""))
    return placement if placement is not None and placement.provider == node.provider else None

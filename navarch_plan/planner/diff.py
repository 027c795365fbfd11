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
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from navarch_plan.config.desired import DesiredNode, Group, Placement
from navarch_plan.errors import PlanError
from navarch_plan.model import (
    LABEL_ADDRESS,
    LABEL_LINEAGE,
    LABEL_SPEC,
    Node,
    NodeStatus,
    address_from_label,
    parse_address,
)
from navarch_plan.plan import Action, ActionKind, Drift, Plan, Reason, Unsettled
from navarch_plan.planner.actions import ActionFactory, instance_name
from navarch_plan.planner.checks import (
    check_budget,
    check_prevent_destroy,
    no_changes_reason,
    plan_cost,
)
from navarch_plan.planner.graph import build_edges, scope_actions
from navarch_plan.planner.intents import IntentOutcome, resolve_intent
from navarch_plan.planner.observed import Observed, Presence, Seen
from navarch_plan.state.model import NodeRecord, StateDoc

__all__ = ["PlanInputs", "PlanOptions", "make_plan", "live_fingerprint", "instance_name"]


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
    # The listings with what they could not read, lookups by id and consistency
    # windows; None: `live` is complete and the truth (tests of pure planning).
    observed: Observed | None = None
    # Providers that return the original instance when a launch is re-sent unchanged.
    idempotent: frozenset[str] = frozenset()


def live_fingerprint(owned: Mapping[str, Node]) -> str:
    """Changes when owned instances appear, vanish, die or are relabelled; not when a
    node merely finishes booting (provisioning -> running), nor when a dead instance
    that a cloud still lists (Lambda's terminated, EC2's shutting-down) drops out."""
    rows = sorted(
        f"{n.provider}|{n.id}|{n.status != NodeStatus.UNHEALTHY}|"
        f"{n.labels.get(LABEL_ADDRESS, '')}|{n.labels.get(LABEL_SPEC, '')}"
        for n in owned.values() if not n.status.is_gone
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
        self.make = ActionFactory(inputs.workspace, inputs.groups, inputs.prices,
                                  inputs.availability, suffix)

    def run(self) -> Plan:
        self._check_inputs()
        self.claimed |= {r.id for r in self.state.nodes.values()} | set(self.state.deposed)
        outcomes = self._resolve_intents()
        for address in dict.fromkeys([*self.state.nodes, *outcomes]):
            self._address(address, self.state.nodes.get(address), outcomes.get(address, []))
        self._address_of_id = {r.id: a for a, r in self.state.nodes.items()}
        for record in self.state.deposed.values():
            self._deposed(record)
        self._orphans()
        self._foreigners()
        for address, node in self.desired.items():
            if address not in self.filled and address not in self.actions:
                self._add(self.make.create(node, Reason.MISSING))
        self._dependency_changes()
        return self._finish()

    def _check_inputs(self) -> None:
        known = set(self.observed.listings)
        pending = {i.address: i for i in self.state.intents.values()}
        for address, holder in [*self.state.nodes.items(), *pending.items()]:
            if holder.provider not in known:
                raise PlanError(f"state holds {address} on provider {holder.provider!r}, which "
                                "the config no longer defines; add the provider back, or "
                                f"remove the record with: navarch state rm {address}")
        for address in self.options.replace:
            if address not in self.state.nodes:
                raise PlanError(f"--replace {address}: no such node in state")

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

    # -- interrupted provisions ------------------------------------------------------
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
            node = outcome.node
            assert node is not None
            if fit is None and wanted is not None and _placement_of(wanted, node) is not None:
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
        key = (intent.provider, intent.region, intent.zone, intent.instance_type)
        if wanted is None or key not in {p.key for p in wanted.candidates}:
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
        node = fit.node
        assert node is not None
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
        reason, changed = self._replace_reason(address, record, presence.node, wanted)
        if reason is None:
            # Maybe a replacement for a changed reference: the reference pass decides.
            self.spares[address] = fit
            return
        self._replace_with(wanted, record, presence.node, reason, changed, fit)

    def _replace_with(self, wanted: DesiredNode, record: NodeRecord, live: Node,
                      reason: Reason, changed: tuple[str, ...], fit: IntentOutcome) -> None:
        """A replacement whose new node an interrupted apply already launched."""
        node = fit.node
        assert node is not None
        action = self.make.replacement(wanted, record, live, reason, changed)
        self._add(dataclasses.replace(action, new_node_id=node.id, name=node.name,
                                      intent_id=fit.intent.id))
        self._note(fit, "replace", f"instance {node.id} exists: it finishes the replacement "
                   f"of {record.id}")

    def _drop_spare(self, address: str, fit: IntentOutcome) -> None:
        node = fit.node
        assert node is not None
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
        resumed = {"name": intent.name, "intent_id": intent.id,
                   "idempotency_key": intent.idempotency_key or intent.id}
        self.filled.add(address)
        if record is None or presence is None or presence.seen == Seen.GONE:
            reason = Reason.MISSING
            if record is not None and presence is not None:
                self._gone_drift(address, record, presence)
                reason = Reason.DELETED_OUTSIDE
            action = self.make.create(wanted, reason, first=_intent_key(outcome))
        else:
            assert presence.node is not None
            self._drift_of(address, record, presence.node)
            reason, changed = self._replace_reason(address, record, presence.node, wanted)
            assert reason is not None
            action = self.make.replacement(wanted, record, presence.node, reason, changed,
                                           first=_intent_key(outcome))
        self._add(dataclasses.replace(action, **resumed, detail=outcome.detail))
        self._note(outcome, "resume")

    # -- records in state ----------------------------------------------------------
    def _recorded(self, address: str, record: NodeRecord, presence: Presence) -> None:
        wanted = self.desired.get(address)
        if presence.seen == Seen.GONE:
            self._gone_drift(address, record, presence)
            if wanted is None:
                self._add(self.make.existing(ActionKind.FORGET, Reason.DELETED_OUTSIDE,
                                             address, record, None, detail=presence.detail))
            else:
                self._add(self.make.create(wanted, Reason.DELETED_OUTSIDE, "the recorded "
                                           f"instance was deleted outside navarch "
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

    def _recorded_live(self, address: str, record: NodeRecord, live: Node,
                       wanted: DesiredNode | None) -> None:
        self._drift_of(address, record, live)
        if wanted is None:
            self._add(self.make.existing(ActionKind.DELETE, self._delete_reason(address),
                                         address, record, live))
            return
        self.filled.add(address)
        reason, changed = self._replace_reason(address, record, live, wanted)
        if reason is not None:
            self._add(self.make.replacement(wanted, record, live, reason, changed))
        elif live.status.is_held:
            self._hold(address, "held", f"{record.id} is {live.status_word}: left as it is "
                       f"(navarch never replaces a node for that; --replace {address} does)",
                       record.provider, record.id)

    def _gone_drift(self, address: str, record: NodeRecord, presence: Presence) -> None:
        self.drift.append(Drift(address, "deleted_outside", f"{record.id}: {presence.detail}",
                                record.provider, record.id))

    def _replace_reason(self, address: str, record: NodeRecord, live: Node,
                        wanted: DesiredNode) -> tuple[Reason | None, tuple[str, ...]]:
        if address in self.options.replace:
            return Reason.REQUESTED, ()
        if live.status.is_gone:
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
            report("status_changed", f"status {record.status} -> {live.status_word}")
        if dict(live.labels) != record.labels:
            keys = sorted(k for k in set(live.labels) | set(record.labels)
                          if live.labels.get(k) != record.labels.get(k))
            report("labels_changed", "labels changed outside navarch: " + ", ".join(keys))
        for attr in ("instance_type", "region", "zone"):
            was, now = getattr(record, attr), getattr(live, attr)
            if was != now:
                report(f"{attr}_changed", f"{attr} {was or '(none)'} -> {now or '(none)'}")

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
        names = {r.name: r.id for r in (*self.state.nodes.values(),
                                        *self.state.deposed.values())}
        names |= {i.name: i.node_id for i in self.state.intents.values()}
        for node in sorted(self.owned.values(), key=lambda n: (n.provider, n.name, n.id)):
            if node.id in self.claimed or node.status.is_gone:
                continue
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
                    and _placement_of(wanted, node) is not None
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
                f"{len(self.foreign)} instance(s) of workspace {self.inputs.workspace} belong "
                f"to another state (lineage {theirs}; this state's is {self.state.lineage}): "
                "they are left alone")
        if blocking:
            raise PlanError(_foreign_refusal(blocking, self.inputs.workspace,
                                             self.state.lineage))

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
                self._dependency_change(node)
        for address, fit in self.spares.items():
            self._drop_spare(address, fit)

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

    def _live(self, record: NodeRecord) -> Node | None:
        return self.observed.by_id.get((record.provider, record.id))

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
        warnings += _unreachable_warnings(self.observed)
        warnings += [self.foreign_warning] if self.foreign_warning else []
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
            intents=tuple(self.intent_notes), warnings=tuple(warnings),
            # Every address that keeps or gets a live node without an action of its own.
            unchanged=len(self.filled - self.actions.keys()),
            cost=cost,
            unsettled=tuple(sorted(self.unsettled, key=lambda u: (u.address, u.kind))),
            unreachable=self.observed.unreachable(),
        )
        return dataclasses.replace(plan, no_changes_reason=no_changes_reason(plan, self))


def _foreign_refusal(blocking: list[tuple[str, Node]], workspace: str, lineage: str) -> str:
    address, node = blocking[0]
    theirs = node.labels.get(LABEL_LINEAGE, "")
    more = f" (and {len(blocking) - 1} more address(es))" if len(blocking) > 1 else ""
    return (f"{address}{more} is held by instance {node.id} of another state of workspace "
            f"{workspace} (lineage {theirs}; this state's is {lineage}): navarch will not "
            "launch beside it. If that state is lost, take its instances over with "
            f"`navarch state adopt --lineage {theirs}`, or this one with `navarch state "
            f"import {address} {node.id}`; if another config uses workspace {workspace}, "
            "give one of them its own `workspace:`")


def _unreachable_warnings(observed: Observed) -> list[str]:
    return [f"{provider} could not read {', '.join(places)}: nothing is planned for the "
            "nodes there, and drift cannot tell whether they changed"
            for provider, places in sorted(observed.unreachable().items())]


def _intent_key(outcome: IntentOutcome) -> tuple[str, str, str, str]:
    i = outcome.intent
    return (i.provider, i.region, i.zone, i.instance_type)


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

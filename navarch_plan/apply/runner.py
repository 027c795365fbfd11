"""One action at a time: the cloud calls of a create, replace, delete, adopt, forget or update,
each followed at once by the state record that describes what now exists. The launch
itself, with its intents, is launching.py's."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from navarch_plan.apply.cluster import ClusterZones
from navarch_plan.apply.failover import RuledOut
from navarch_plan.apply.hooks import Hooks
from navarch_plan.apply.launching import LaunchDeferred, Launcher
from navarch_plan.apply.relabel import update_labels
from navarch_plan.apply.waits import CloudWaits
from navarch_plan.clock import SYSTEM_CLOCK, Clock, iso_to_epoch
from navarch_plan.config.desired import DesiredNode, Placement
from navarch_plan.errors import (
    NavarchError,
    StalePlanError,
    UnknownReferenceError,
)
from navarch_plan.model import (
    LABEL_SPEC,
    Consistency,
    Node,
)
from navarch_plan.plan import Action, ActionKind, Reason
from navarch_plan.providers.base import LabelSetter, Provider
from navarch_plan.state.backends import StateStore
from navarch_plan.state.model import NodeRecord
from navarch_plan.state.ops import (
    Depose,
    ForgetDeposed,
    IntentDone,
    Put,
    Remove,
)

__all__ = ["ActionRunner", "LaunchDeferred"]


class ActionRunner:
    def __init__(self, workspace: str, desired: Mapping[str, DesiredNode],
                 providers: Mapping[str, Provider], store: StateStore, hooks: Hooks,
                 consistency: Mapping[str, Consistency] | None = None,
                 clock: Clock = SYSTEM_CLOCK, stop: threading.Event | None = None) -> None:
        self.workspace, self.desired, self.providers = workspace, desired, providers
        self.store, self.hooks, self.clock = store, hooks, clock
        self.waits = CloudWaits(providers, hooks, consistency, clock, stop)
        self.launcher = Launcher(workspace, providers, store, hooks, clock, self.waits,
                                 RuledOut(),
                                 ClusterZones.from_state(store.loaded.nodes, desired))

    def settle_intents(self, notes: Sequence[dict[str, Any]]) -> None:
        """Close the intents the plan proved made nothing (kind `drop`). Every other open
        intent stays until an action closes it, or a later plan settles it."""
        doc = self.store.loaded
        dropped = [n["id"] for n in notes if n.get("kind") == "drop" and n.get("id")]
        ops = [IntentDone(i) for i in dropped if i in doc.intents]
        if ops:
            self.store.record(*ops)

    def run(self, action: Action) -> None:
        # No cloud call without the lock: one force-unlocked away (or a run whose state
        # writes failed) stops here, before it acts where it could not record.
        self.store.check_held()
        handler = {
            ActionKind.CREATE: self._create,
            ActionKind.REPLACE: self._replace,
            ActionKind.DELETE: self._delete,
            ActionKind.ADOPT: self._adopt,
            ActionKind.FORGET: self._forget,
            ActionKind.UPDATE: self._update,
        }[action.action]
        handler(action)

    # -- the five actions ----------------------------------------------------------
    def _create(self, action: Action, deferrable: bool = True) -> None:
        if action.reason in (Reason.DELETED_OUTSIDE, Reason.PREEMPTED):
            # The plan proved the recorded instance gone: drop its record first, so that
            # a failed create leaves no record of an instance that no longer exists.
            self.store.record(Remove(action.address))
        record, intent_done = self._provision(action, deferrable)
        self.store.record(Put(action.address, record), intent_done)

    def _replace(self, action: Action) -> None:
        if action.replace_mode == "destroy_before_create" and not action.new_node_id:
            self._terminate(action)
            self.store.record(Remove(action.address))
            self._create(action, deferrable=False)
            return
        record, intent_done = self._provision(action)
        # Old node to `deposed` and new node in, before the old one is terminated: a crash
        # in between leaves a deposed record that the next plan deletes.
        self.store.record(Depose(action.address), Put(action.address, record), intent_done)
        self._terminate(action)
        self.store.record(ForgetDeposed(action.node_id))

    def _delete(self, action: Action) -> None:
        self._terminate(action)
        self._forget(action)
        if action.intent_id:
            self.store.record(IntentDone(action.intent_id))

    def _forget(self, action: Action) -> None:
        doc = self.store.loaded
        if action.node_id in doc.deposed:
            self.store.record(ForgetDeposed(action.node_id))
        current = doc.nodes.get(action.address)
        if current is not None and current.id == action.node_id:
            self.store.record(Remove(action.address))

    def _update(self, action: Action) -> None:
        provider = self.providers[action.provider]
        if not isinstance(provider, LabelSetter):
            raise StalePlanError(f"{action.address}: provider {action.provider} cannot set "
                                 "labels in place; make a new plan")
        update_labels(action, self.desired[action.address], provider, self.store,
                      self.hooks, self.workspace)

    def _adopt(self, action: Action) -> None:
        """Record an instance that exists but state lacks: an orphan that fits, or what
        an interrupted launch made. A booting one is waited for first."""
        node = self.waits.find(action, action.provider, action.node_id)
        if node.status.is_alive:
            node = self.waits.wait_running(action, node, self.clock.monotonic())
        wanted = self.desired[action.address]
        placement = wanted.accepted_hashes().get(node.labels.get(LABEL_SPEC, ""))
        if placement is None:
            raise StalePlanError(f"{action.address}: instance {action.node_id} no longer "
                               "carries the spec label it was planned with; make a new plan")
        record = self._record(wanted, node, self._ref_values(action), placement)
        self.store.record(Put(action.address, record), *self._intent_done(action.intent_id))

    # -- cloud calls -----------------------------------------------------------------
    def _provision(self, action: Action,
                   deferrable: bool = True) -> tuple[NodeRecord, IntentDone]:
        """Provision (failing over across the action's candidates), or take the node an
        interrupted launch made, and wait until running; returns the record and the
        intent_done operation, for the caller to write with what the node replaces."""
        node = self.desired[action.address]
        refs = self._ref_values(action)
        launched = self.clock.monotonic()
        if action.new_node_id:
            created = self.waits.find(action, action.provider, action.new_node_id)
            placement = node.accepted_hashes()[created.labels[LABEL_SPEC]]
            intent_id = action.intent_id
        else:
            created, placement, intent_id = self.launcher.launch(action, node, refs,
                                                                 deferrable)
        done = IntentDone(intent_id)
        try:
            created = self.waits.wait_running(action, created, launched)
        except NavarchError:
            # If it exists but is not healthy, record it so state holds what exists; the
            # next plan replaces it. If it cannot be seen, the intent (with its id) stays.
            current = self.waits.get(created.provider, created.id)
            if current is not None:
                self._keep(action, current, refs, placement)
                self.store.record(done)
            raise
        return self._record(node, created, refs, placement), done

    def _keep(self, action: Action, created: Node, refs: dict[str, str],
              placement: Placement) -> None:
        record = self._record(self.desired[action.address], created, refs, placement)
        if action.action == ActionKind.REPLACE and action.replace_mode != "destroy_before_create":
            self.store.record(Depose(action.address))
        self.store.record(Put(action.address, record))

    def _terminate(self, action: Action) -> None:
        self.store.check_held()
        self.waits.terminate(action, self._launched_at(action))

    def _launched_at(self, action: Action) -> float | None:
        """When the instance an action terminates was launched, as state knows it."""
        doc = self.store.loaded
        record = doc.deposed.get(action.node_id) or doc.nodes.get(action.address)
        if record is not None and record.id == action.node_id:
            return iso_to_epoch(record.created_at)
        return None

    def _intent_done(self, intent_id: str) -> list[IntentDone]:
        return [IntentDone(intent_id)] if intent_id else []

    # -- records ---------------------------------------------------------------------
    def _ref_values(self, action: Action) -> dict[str, str]:
        doc = self.store.loaded
        values = {}
        for ref in self.desired[action.address].refs:
            target = doc.nodes.get(ref.address)
            if target is None:
                raise UnknownReferenceError(f"{action.address}: {ref.text} is not known: "
                                    f"{ref.address} does not exist")
            values[ref.text] = target.field_value(ref.field)
        return values

    def _record(self, node: DesiredNode, created: Node, refs: dict[str, str],
                placement: Placement) -> NodeRecord:
        return NodeRecord(
            id=created.id, provider=created.provider, region=created.region,
            zone=created.zone, instance_type=created.instance_type, name=created.name,
            spec=node.spec_for(placement), spec_hash=node.hash_for(placement),
            status=created.status.value, ip_address=created.ip_address,
            labels=dict(created.labels), created_at=self.clock.now_iso(), ref_values=refs,
        )


"""One action at a time: the cloud calls of a create, replace, delete, adopt, forget or update,
each followed at once by the state record that describes what now exists."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from navarch_plan.apply.failover import Attempt, RuledOut, provision_with_failover
from navarch_plan.apply.hooks import Hooks
from navarch_plan.apply.keys import read_public_keys
from navarch_plan.apply.relabel import update_labels
from navarch_plan.apply.waits import CloudWaits
from navarch_plan.clock import SYSTEM_CLOCK, Clock, iso_to_epoch
from navarch_plan.config.desired import ON_DEMAND, DesiredNode, Placement, render_refs
from navarch_plan.errors import (
    AuthError,
    CapacityError,
    DuplicateLaunchError,
    InvalidRequestError,
    LaunchLostError,
    NavarchError,
    NotSentError,
    QuotaError,
    RateLimitError,
    StalePlanError,
    TransientError,
    UnknownReferenceError,
)
from navarch_plan.model import (
    LABEL_SPEC,
    Consistency,
    Node,
    ProvisionRequest,
)
from navarch_plan.plan import Action, ActionKind, Reason
from navarch_plan.planner.ownership import ownership_labels, placement_group_name
from navarch_plan.providers.base import LabelSetter, Provider
from navarch_plan.state.backends import StateStore
from navarch_plan.state.model import Intent, NodeRecord
from navarch_plan.state.ops import (
    Depose,
    ForgetDeposed,
    IntentDone,
    IntentLaunched,
    IntentStarted,
    Put,
    Remove,
)

__all__ = ["ActionRunner", "LaunchDeferred"]

# These errors prove nothing was created, so the intent can go at once.
# Errors that prove the launch made nothing (its intent can go), or (a duplicate) that
# the first launch did.
_DEFINITE = (CapacityError, QuotaError, InvalidRequestError, AuthError, RateLimitError,
             LaunchLostError, NotSentError)


class LaunchDeferred(NavarchError):
    """The cloud refused a launch for now (RateLimitError): nothing was created, and
    what the action did before (a record removed) is safe to do again, so the executor
    may run the whole action again later. Never raised once the action has terminated
    something (destroy_before_create): that replacement fails instead, since queueing it
    would hand back its pool's termination budget while its node is down."""

    def __init__(self, cause: RateLimitError) -> None:
        self.cause = cause
        super().__init__(str(cause))


def placements_for(action: Action, node: DesiredNode) -> list[Placement]:
    """The action's candidates, in the order the plan chose, as the node's placements."""
    by_key = {p.key: p for p in node.candidates}
    found = [by_key.get(key) for key in candidate_keys(action)]
    if any(p is None for p in found):
        raise StalePlanError(f"{action.address}: the plan names a placement the config no "
                           "longer offers; make a new plan")
    return [p for p in found if p is not None]


def candidate_keys(action: Action) -> list[tuple[str, str, str, str, str]]:
    """The action's candidates as placement keys; a candidate without `purchase` (every
    on-demand one, and plans written before spot_policy) is on-demand."""
    wanted = action.candidates or ({"provider": action.provider, "region": action.region,
                                    "zone": action.zone,
                                    "instance_type": action.instance_type},)
    return [(c["provider"], c["region"], c["zone"], c["instance_type"],
             c.get("purchase", ON_DEMAND)) for c in wanted]


class ActionRunner:
    def __init__(self, workspace: str, desired: Mapping[str, DesiredNode],
                 providers: Mapping[str, Provider], store: StateStore, hooks: Hooks,
                 consistency: Mapping[str, Consistency] | None = None,
                 clock: Clock = SYSTEM_CLOCK, stop: threading.Event | None = None) -> None:
        self.workspace, self.desired, self.providers = workspace, desired, providers
        self.store, self.hooks, self.clock = store, hooks, clock
        self.waits = CloudWaits(providers, hooks, consistency, clock, stop)
        self.ruled_out = RuledOut()  # shared by every action of this run, never persisted

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
            created, placement, intent_id = self._launch(action, node, refs, deferrable)
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

    def _launch(self, action: Action, node: DesiredNode, refs: dict[str, str],
                deferrable: bool) -> tuple[Node, Placement, str]:
        """The Provision calls, each after its durable intent; returns the new node, its
        placement and the id of the intent it was made under (still open)."""
        attempt = _Attempt(action)
        public_keys = read_public_keys(node)

        def make(p: Placement) -> ProvisionRequest:
            return ProvisionRequest(
                name=action.name, instance_type=p.instance_type, region=p.region, zone=p.zone,
                ssh_key_names=node.ssh_keys, ssh_public_keys=public_keys,
                labels=ownership_labels(self.workspace, node, p, self._lineage()),
                user_data=render_refs(node.user_data, refs), launch=p.launch,
                idempotency_key=attempt.next_key(p), purchase=p.purchase,
                reservation=p.reservation,
                placement_group=(placement_group_name(self.workspace, node.group, p.region)
                                 if p.cluster else ""))

        def before_call(p: Placement, request: ProvisionRequest) -> None:
            if not attempt.resumed:  # a resumed launch re-uses the intent it left
                self.store.record(IntentStarted(attempt.intent(p, self.clock)))
            if attempt.count > 1:  # a failover: say where it went (the start said the first)
                self.hooks.action_progress(action, f"launching on {p.where}")

        def failed_over(failure: Attempt) -> None:
            # Capacity and quota errors prove nothing was created: the intent can go.
            self.store.record(IntentDone(attempt.id))
            self.hooks.failover_attempt(action, failure)

        def launch(p: Placement, request: ProvisionRequest) -> Node:
            self.store.check_held()
            started = self.clock.monotonic()
            try:
                created = self.providers[p.provider].provision(request)
            except TransientError as exc:  # the reply was lost: did the launch happen?
                if isinstance(exc, LaunchLostError):
                    raise
                created = self.waits.recover_launch(p.provider, request, exc, started)
            # The id is durable before the (possibly very long) boot wait: a run killed
            # now leaves an intent that names its instance.
            self.store.record(IntentLaunched(attempt.id, created.id))
            return created

        try:
            created, placement, attempts = provision_with_failover(
                placements_for(action, node), self.providers, make, self.ruled_out,
                failed_over, before_call, launch)
        except _DEFINITE as exc:
            # A duplicate launch proves the first one happened: its intent stays, for the
            # next plan to find the instance by name.
            if attempt.id and not isinstance(exc, DuplicateLaunchError):
                self.store.record(IntentDone(attempt.id))
            if isinstance(exc, RateLimitError) and deferrable:
                raise LaunchDeferred(exc) from exc
            raise
        if len(attempts) > 1:
            self.hooks.action_progress(action, " -> ".join(a.describe() for a in attempts))
        return created, placement, attempt.id

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

    def _lineage(self) -> str:
        doc = self.store.loaded
        return doc.lineage

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


class _Attempt:
    """The intent of the launch attempt in flight. A resumed action's first attempt on
    its interrupted launch's placement re-uses that intent, its name and its key."""

    def __init__(self, action: Action) -> None:
        self.action = action
        self.id = ""
        self.key = ""
        self.count = 0
        self.resumed = False

    def next_key(self, p: Placement) -> str:
        a = self.action
        self.count += 1
        resuming = self.count == 1 and a.intent_id and a.idempotency_key and \
            candidate_keys(a)[0] == p.key
        self.resumed = bool(resuming)
        self.id = a.intent_id if resuming else uuid.uuid4().hex
        self.key = a.idempotency_key if resuming else self.id
        return self.key

    def intent(self, p: Placement, clock: Clock) -> Intent:
        return Intent(id=self.id, address=self.action.address, provider=p.provider,
                      region=p.region, zone=p.zone, instance_type=p.instance_type,
                      name=self.action.name, idempotency_key=self.key,
                      started_at=clock.now_iso(), purchase=p.purchase)

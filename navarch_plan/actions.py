"""One action at a time: the cloud calls of a create, replace, delete, adopt or forget,
each followed at once by the state record that describes what now exists."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from navarch_plan.desired import DesiredNode, Placement, render_refs
from navarch_plan.errors import (
    AuthError,
    CapacityError,
    InvalidRequestError,
    NavarchError,
    ProviderError,
    QuotaError,
    RateLimitError,
)
from navarch_plan.hooks import Hooks
from navarch_plan.model import (
    LABEL_ADDRESS,
    LABEL_SPEC,
    LABEL_WORKSPACE,
    Node,
    NodeStatus,
    ProvisionRequest,
    address_to_label,
)
from navarch_plan.plan import Action, ActionKind, Reason
from navarch_plan.pool import Attempt, RuledOut, provision_with_failover
from navarch_plan.providers.base import NodeGetter, Provider
from navarch_plan.state.backends import StateStore
from navarch_plan.state.model import NodeRecord

__all__ = ["ActionRunner", "LaunchDeferred", "ownership_labels"]

# These errors prove nothing was created, so the intent can go at once.
_DEFINITE = (CapacityError, QuotaError, InvalidRequestError, AuthError, RateLimitError)


class LaunchDeferred(NavarchError):
    """The cloud refused a launch for now (RateLimitError): nothing was created, and
    what the action did before (a record removed) is safe to do again, so the executor
    may run the whole action again later. Never raised once the action has terminated
    something (destroy_before_create): that replacement fails instead, since queueing it
    would hand back its pool's termination budget while its node is down."""

    def __init__(self, cause: RateLimitError) -> None:
        self.cause = cause
        super().__init__(str(cause))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _put(address: str, record: NodeRecord) -> dict[str, object]:
    return {"op": "put", "address": address, "record": record.to_json()}


def ownership_labels(workspace: str, node: DesiredNode,
                     placement: Placement | None = None) -> dict[str, str]:
    spec = node.hash_for(placement) if placement else node.spec_hash
    return {**node.labels, LABEL_WORKSPACE: workspace,
            LABEL_ADDRESS: address_to_label(node.address), LABEL_SPEC: spec}


def placements_for(action: Action, node: DesiredNode) -> list[Placement]:
    """The action's candidates, in the order the plan chose, as the node's placements."""
    by_key = {p.key: p for p in node.candidates}
    wanted = action.candidates or ({"provider": action.provider, "region": action.region,
                                    "zone": action.zone,
                                    "instance_type": action.instance_type},)
    found = [by_key.get((c["provider"], c["region"], c["zone"], c["instance_type"]))
             for c in wanted]
    if any(p is None for p in found):
        raise NavarchError(f"{action.address}: the plan names a placement the config no "
                           "longer offers; make a new plan")
    return [p for p in found if p is not None]


class ActionRunner:
    def __init__(self, workspace: str, desired: Mapping[str, DesiredNode],
                 providers: Mapping[str, Provider], store: StateStore, hooks: Hooks,
                 boot_timeout: float) -> None:
        self.workspace, self.desired, self.providers = workspace, desired, providers
        self.store, self.hooks, self.boot_timeout = store, hooks, boot_timeout
        self.ruled_out = RuledOut()  # shared by every action of this run, never persisted

    def drop_intents(self) -> None:
        """The plan was made from the live listing, which settled every old intent."""
        assert self.store.doc is not None
        for intent_id in list(self.store.doc.intents):
            self.store.record({"op": "intent_done", "id": intent_id})

    def run(self, action: Action) -> None:
        handler = {
            ActionKind.CREATE: self._create,
            ActionKind.REPLACE: self._replace,
            ActionKind.DELETE: self._delete,
            ActionKind.ADOPT: self._adopt,
            ActionKind.FORGET: self._forget,
        }[action.action]
        handler(action)

    # -- the five actions ----------------------------------------------------------
    def _create(self, action: Action, deferrable: bool = True) -> None:
        if action.reason == Reason.DELETED_OUTSIDE:
            # The plan saw the recorded instance gone: drop its record first, so that a
            # failed create leaves no record of an instance that no longer exists.
            self.store.record({"op": "remove", "address": action.address})
        record, intent_done = self._provision(action, deferrable)
        self.store.record(_put(action.address, record), intent_done)

    def _replace(self, action: Action) -> None:
        if action.replace_mode == "destroy_before_create":
            self._terminate(action)
            self.store.record({"op": "remove", "address": action.address})
            self._create(action, deferrable=False)
            return
        record, intent_done = self._provision(action)
        # Old node to `deposed` and new node in, before the old one is terminated: a crash
        # in between leaves a deposed record that the next plan deletes.
        self.store.record({"op": "depose", "address": action.address},
                          _put(action.address, record), intent_done)
        self._terminate(action)
        self.store.record({"op": "forget_deposed", "id": action.node_id})

    def _delete(self, action: Action) -> None:
        self._terminate(action)
        self._forget(action)

    def _forget(self, action: Action) -> None:
        doc = self.store.doc
        assert doc is not None
        if action.node_id in doc.deposed:
            self.store.record({"op": "forget_deposed", "id": action.node_id})
        current = doc.nodes.get(action.address)
        if current is not None and current.id == action.node_id:
            self.store.record({"op": "remove", "address": action.address})

    def _adopt(self, action: Action) -> None:
        node = self._get(action.provider, action.node_id)
        if node is None:
            raise NavarchError(f"{action.address}: instance {action.node_id} vanished before "
                               "it could be adopted")
        wanted = self.desired[action.address]
        placement = wanted.accepted_hashes()[node.labels[LABEL_SPEC]]
        record = self._record(wanted, node, self._ref_values(action), placement)
        self.store.record(_put(action.address, record))

    # -- cloud calls -----------------------------------------------------------------
    def _provision(self, action: Action,
                   deferrable: bool = True) -> tuple[NodeRecord, dict[str, str]]:
        """Provision (failing over across the action's candidates) and wait until
        running; returns the record and the intent_done operation, for the caller to
        write together with what the node replaces."""
        node = self.desired[action.address]
        refs = self._ref_values(action)
        created, placement, intent_id = self._launch(action, node, refs, deferrable)
        done = {"op": "intent_done", "id": intent_id}
        try:
            created = self._wait_running(action, created)
        except NavarchError:
            # If it exists but is not healthy, record it so state holds what exists; the
            # next plan replaces it.
            current = self._get(created.provider, created.id)
            if current is not None:
                self._keep(action, current, refs, placement)
            self.store.record(done)
            raise
        return self._record(node, created, refs, placement), done

    def _launch(self, action: Action, node: DesiredNode, refs: dict[str, str],
                deferrable: bool) -> tuple[Node, Placement, str]:
        """The Provision calls, each after its durable intent; returns the new node, its
        placement and the id of the intent it was made under (still open)."""
        intents: list[str] = []

        def make(p: Placement) -> ProvisionRequest:
            intents.append(uuid.uuid4().hex)
            return ProvisionRequest(
                name=action.name, instance_type=p.instance_type, region=p.region, zone=p.zone,
                ssh_key_names=node.ssh_keys, labels=ownership_labels(self.workspace, node, p),
                user_data=render_refs(node.user_data, refs), idempotency_key=intents[-1])

        def before_call(p: Placement, request: ProvisionRequest) -> None:
            self.store.record({"op": "intent", "intent": {
                "id": intents[-1], "address": action.address, "provider": p.provider,
                "region": p.region, "name": action.name, "started_at": _now()}})
            if len(intents) > 1:  # a failover: say where it went (the start said the first)
                self.hooks.action_progress(action, f"launching on {p.where}")

        def failed_over(attempt: Attempt) -> None:
            # Capacity and quota errors prove nothing was created: the intent can go.
            self.store.record({"op": "intent_done", "id": intents[-1]})
            self.hooks.failover_attempt(action, attempt)

        try:
            created, placement, attempts = provision_with_failover(
                placements_for(action, node), self.providers, make, self.ruled_out,
                failed_over, before_call)
        except _DEFINITE as exc:
            if intents:
                self.store.record({"op": "intent_done", "id": intents[-1]})
            if isinstance(exc, RateLimitError) and deferrable:
                raise LaunchDeferred(exc) from exc
            raise
        if len(attempts) > 1:
            self.hooks.action_progress(action, " -> ".join(a.describe() for a in attempts))
        return created, placement, intents[-1]

    def _keep(self, action: Action, created: Node, refs: dict[str, str],
              placement: Placement) -> None:
        record = self._record(self.desired[action.address], created, refs, placement)
        if action.action == ActionKind.REPLACE and action.replace_mode != "destroy_before_create":
            self.store.record({"op": "depose", "address": action.address})
        self.store.record(_put(action.address, record))

    def _wait_running(self, action: Action, node: Node) -> Node:
        deadline = time.monotonic() + self.boot_timeout
        delay = 0.05
        while node.status == NodeStatus.PROVISIONING:
            if time.monotonic() > deadline:
                raise NavarchError(f"{action.address}: {node.id} still provisioning after "
                                   f"{self.boot_timeout:.0f}s")
            self.hooks.action_progress(action, f"waiting for {node.id} to boot")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            current = self._get(node.provider, node.id)
            if current is None:
                raise NavarchError(f"{action.address}: new instance {node.id} vanished while "
                                   "booting")
            node = current
        if node.status != NodeStatus.RUNNING:
            raise NavarchError(f"{action.address}: new instance {node.id} is {node.status.value}")
        return node

    def _terminate(self, action: Action) -> None:
        self.hooks.action_progress(action, f"terminating {action.node_id}")
        try:
            self.providers[action.provider].terminate(action.node_id)
        except ProviderError:
            # A failed call may have happened all the same (a timeout after the cloud
            # acted): look before failing, so state keeps no record of a gone instance.
            if not self._gone(action.provider, action.node_id):
                raise

    def _gone(self, provider_name: str, node_id: str) -> bool:
        """Whether the instance is gone. A read is idempotent, so a failing one is tried
        again a few times; if the cloud still cannot say, the record stays (the next
        plan's listing settles it)."""
        for attempt in range(3):
            try:
                node = self._get(provider_name, node_id)
            except ProviderError:
                time.sleep(0.2 * (attempt + 1))
                continue
            return node is None or node.status in (NodeStatus.TERMINATED,
                                                   NodeStatus.TERMINATING)
        return False

    def _get(self, provider_name: str, node_id: str) -> Node | None:
        provider = self.providers[provider_name]
        if isinstance(provider, NodeGetter):
            return provider.get(node_id)
        return next((n for n in provider.list() if n.id == node_id), None)

    # -- records ---------------------------------------------------------------------
    def _ref_values(self, action: Action) -> dict[str, str]:
        doc = self.store.doc
        assert doc is not None
        values = {}
        for ref in self.desired[action.address].refs:
            target = doc.nodes.get(ref.address)
            if target is None:
                raise NavarchError(f"{action.address}: {ref.text} is not known: "
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
            labels=dict(created.labels), created_at=_now(), ref_values=refs,
        )

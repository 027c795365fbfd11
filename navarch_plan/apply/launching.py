"""One action's launch: the Provision calls across its candidates (failing over), each
sent only after its durable intent, the instance id recorded the moment it is known.
Apart from runner.py because this is the part of an action where a crash could leave
an instance no record names: the intent protocol lives here whole, while the runner
orders an action's steps and writes the records of what exists."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from navarch_plan.apply.cluster import ClusterZones
from navarch_plan.apply.failover import Attempt, RuledOut, provision_with_failover
from navarch_plan.apply.hooks import Hooks
from navarch_plan.apply.keys import read_public_keys
from navarch_plan.apply.waits import CloudWaits
from navarch_plan.clock import Clock
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
)
from navarch_plan.model import Node, ProvisionRequest
from navarch_plan.plan import Action, ActionKind
from navarch_plan.planner.ownership import ownership_labels, placement_group_name
from navarch_plan.providers.base import Provider
from navarch_plan.state.backends import StateStore
from navarch_plan.state.model import Intent
from navarch_plan.state.ops import IntentDone, IntentLaunched, IntentStarted

__all__ = ["LaunchDeferred", "Launcher", "candidate_keys", "placements_for"]

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


@dataclass
class Launcher:
    """What every launch of one apply shares; `ruled_out` is shared by every action of
    the run and never persisted."""

    workspace: str
    providers: Mapping[str, Provider]
    store: StateStore
    hooks: Hooks
    clock: Clock
    waits: CloudWaits
    ruled_out: RuledOut
    clusters: ClusterZones

    def launch(self, action: Action, node: DesiredNode, refs: dict[str, str],
               deferrable: bool) -> tuple[Node, Placement, str]:
        """The Provision calls, each after its durable intent; returns the new node, its
        placement and the id of the intent it was made under (still open)."""
        one = _Launch(self, action, node, refs)
        try:
            created, placement, attempts = provision_with_failover(
                placements_for(action, node), self.providers, one.request, self.ruled_out,
                one.failed_over, one.before_call, one.call,
                skip=lambda p: self.clusters.refusal(node.group, p))
        except _DEFINITE as exc:
            # A duplicate launch proves the first one happened: its intent stays, for the
            # next plan to find the instance by name.
            if one.attempt.id and not isinstance(exc, DuplicateLaunchError):
                self.store.record(IntentDone(one.attempt.id))
            if isinstance(exc, RateLimitError) and deferrable:
                raise LaunchDeferred(exc) from exc
            raise
        if len(attempts) > 1:
            self.hooks.action_progress(action, " -> ".join(a.describe() for a in attempts))
        return created, placement, one.attempt.id


class _Launch:
    """The steps provision_with_failover calls back for one action's launch."""

    def __init__(self, launcher: Launcher, action: Action, node: DesiredNode,
                 refs: dict[str, str]) -> None:
        self.launcher, self.action, self.node, self.refs = launcher, action, node, refs
        self.attempt = _Attempt(action)
        self.public_keys = read_public_keys(node)

    def request(self, p: Placement) -> ProvisionRequest:
        action, node, workspace = self.action, self.node, self.launcher.workspace
        return ProvisionRequest(
            name=action.name, instance_type=p.instance_type, region=p.region, zone=p.zone,
            ssh_key_names=node.ssh_keys, ssh_public_keys=self.public_keys,
            labels=ownership_labels(workspace, node, p, self.launcher.store.loaded.lineage),
            user_data=render_refs(node.user_data, self.refs), launch=p.launch,
            idempotency_key=self.attempt.next_key(p), purchase=p.purchase,
            reservation=p.reservation,
            placement_group=(placement_group_name(workspace, node.group, p.region)
                             if p.cluster else ""))

    def before_call(self, p: Placement, request: ProvisionRequest) -> None:
        if not self.attempt.resumed:  # a resumed launch re-uses the intent it left
            self.launcher.store.record(IntentStarted(self.attempt.intent(p, self.launcher.clock)))
        if self.attempt.count > 1:  # a failover: say where it went (the start said the first)
            self.launcher.hooks.action_progress(self.action, f"launching on {p.where}")

    def failed_over(self, failure: Attempt) -> None:
        # Capacity and quota errors prove nothing was created: the intent can go.
        self.launcher.store.record(IntentDone(self.attempt.id))
        self.launcher.hooks.failover_attempt(self.action, failure)

    def call(self, p: Placement, request: ProvisionRequest) -> Node:
        launcher = self.launcher
        launcher.store.check_held()
        started = launcher.clock.monotonic()
        try:
            created = launcher.providers[p.provider].provision(request)
        except TransientError as exc:  # the reply was lost: did the launch happen?
            if isinstance(exc, LaunchLostError):
                raise
            created = launcher.waits.recover_launch(p.provider, request, exc, started)
        # The id is durable before the (possibly very long) boot wait: a run killed
        # now leaves an intent that names its instance.
        launcher.store.record(IntentLaunched(self.attempt.id, created.id))
        # Pinned before failover's settle wakes the pool's other launches waiting on
        # this placement: one that then finds no room here must not try another zone.
        launcher.clusters.pin(self.node.group, p, created)
        return created


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
                      started_at=clock.now_iso(), purchase=p.purchase,
                      replaces=self.action.node_id
                      if self.action.action == ActionKind.REPLACE else "")

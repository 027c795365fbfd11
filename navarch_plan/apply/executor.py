"""The executor: runs a plan's actions as a DAG, in parallel, recording state after
every cloud call. It never prints; it reports through Hooks.

Invariants:
- an intent is durable before every Provision, and the node record replaces it after;
- a replacement's old node is terminated only after the new one is running
  (unless the pool asks for destroy_before_create);
- a failed action skips everything that depends on it; independent work goes on;
- once `stop` is set, no new action starts; running ones finish; once `abort` is set,
  running ones stop waiting too (boots, confirmations, retries), keeping every intent
  and record;
- no worker waits for a provider's rate limit at the start of an action: the action
  stays queued until its provider's gate admits it (see throttle.py).
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from navarch_plan.apply.hooks import Hooks
from navarch_plan.apply.runner import ActionRunner, LaunchDeferred
from navarch_plan.apply.throttle import CallKind, Gate, GatedProvider, RetryPolicy
from navarch_plan.clock import SYSTEM_CLOCK, Clock
from navarch_plan.config.desired import DesiredNode, Group
from navarch_plan.model import Consistency, RateLimit
from navarch_plan.plan import Action, ActionKind, Plan
from navarch_plan.planner.graph import closure, phase_of
from navarch_plan.providers.base import Provider
from navarch_plan.state.backends import StateStore

__all__ = ["ApplyResult", "Executor"]

_DISRUPTIVE = (ActionKind.DELETE, ActionKind.REPLACE)


@dataclass
class ApplyResult:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    not_started: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped and not self.not_started


def _first_call(action: Action) -> CallKind | None:
    """The kind of cloud call an action starts with, which its provider must pace."""
    if action.action == ActionKind.FORGET:
        return None
    if action.action == ActionKind.CREATE or (action.action == ActionKind.REPLACE and
                                              action.replace_mode != "destroy_before_create"):
        return "launch"
    return "call"


class Executor:
    def __init__(self, plan: Plan, *, desired: Mapping[str, DesiredNode],
                 groups: Mapping[str, Group], providers: Mapping[str, Provider],
                 store: StateStore, hooks: Hooks | None = None, parallelism: int = 10,
                 gates: Mapping[str, Gate] | None = None,
                 consistency: Mapping[str, Consistency] | None = None,
                 clock: Clock = SYSTEM_CLOCK, stop: threading.Event | None = None,
                 abort: threading.Event | None = None) -> None:
        """`stop` (no new action starts) and `abort` (running ones stop waiting too):
        the caller's events, set from its signal handler (see the module doc)."""
        self.groups = groups
        self.hooks = hooks or Hooks()
        self.parallelism = max(1, parallelism)
        self.gates = dict(gates or {})
        self.clock = clock
        self._open_gate = Gate("", RateLimit(), RetryPolicy(), clock)
        self._current = threading.local()  # the action each worker runs, for retry notes
        self.stop = stop or threading.Event()
        self.abort = abort or threading.Event()
        gated = {name: GatedProvider(p, self.gates.get(name) or self._open_gate,
                                     self._note_retry, stop=self.abort)
                 for name, p in providers.items()}
        self.intents = plan.intents
        self.runner = ActionRunner(plan.workspace, desired, gated, store, self.hooks,
                                   consistency, clock, self.abort)
        # Ready actions in plan order, one lane per provider and kind of first call: when
        # a lane's head must wait for its provider, the whole lane must.
        self._lanes: dict[tuple[str, CallKind | None], deque[str]] = {}
        self._deferrals: dict[str, int] = {}
        self._rng = random.Random()
        self._actions = {a.key: a for a in plan.actions}
        self._phase = {a.key: phase_of(a) for a in plan.actions}
        self._members: dict[str, set[str]] = {}  # phase -> its actions not yet succeeded
        for key, phase in self._phase.items():
            if phase:
                self._members.setdefault(phase, set()).add(key)
        self._needs: dict[str, set[str]] = {p: set() for p in self._members}
        self._unblocks: dict[str, list[str]] = {p: [] for p in self._members}
        for first, then in plan.edges:
            if first in self._members and then in self._members:
                self._needs[then].add(first)
                self._unblocks[first].append(then)

    def _note_retry(self, message: str) -> None:
        action = getattr(self._current, "action", None)
        if action is not None:
            self.hooks.action_progress(action, message)

    def run(self) -> ApplyResult:
        result = ApplyResult()
        self.runner.settle_intents(self.intents)
        pending = set(self._actions)
        for key in self._actions:
            if self._is_ready(key):
                self._queue(key)
        running: dict[Future[None], str] = {}
        disrupting: dict[str, int] = {}
        with ThreadPoolExecutor(max_workers=self.parallelism,
                                thread_name_prefix="navarch-apply") as pool:
            while any(self._lanes.values()) or running:
                wake = math.inf
                if not self.stop.is_set():
                    wake = self._start_ready(pool, running, disrupting, pending)
                if not running:
                    if self.stop.is_set() or wake == math.inf:
                        break
                    self.clock.wait(self.stop, wake)  # only paced work is left: its slot
                    continue
                finished, _ = wait(list(running), timeout=None if wake == math.inf else wake,
                                   return_when=FIRST_COMPLETED)
                for future in finished:
                    key = running.pop(future)
                    self._release(self._actions[key], disrupting)
                    for ready in self._settle(key, future, result, pending):
                        self._queue(ready)
        result.not_started = sorted(pending)
        return result

    def _is_ready(self, key: str) -> bool:
        phase = self._phase[key]
        return not phase or not self._needs[phase]

    def _queue(self, key: str, front: bool = False) -> None:
        action = self._actions[key]
        lane = self._lanes.setdefault((action.provider, _first_call(action)), deque())
        lane.appendleft(key) if front else lane.append(key)

    def _start_ready(self, pool: ThreadPoolExecutor, running: dict[Future[None], str],
                     disrupting: dict[str, int], pending: set[str]) -> float:
        """Start ready actions up to the parallelism, taking one from each provider's
        lane in turn, so a provider that must wait never holds back another. An action
        its provider cannot take yet (paced, or at its concurrency) stays queued, as
        does one over its pool's termination budget. Returns the seconds until a
        paced provider's next slot (inf if none is waiting on time)."""
        wake = math.inf
        lanes = [lane for lane in self._lanes.values() if lane]
        while lanes and len(running) < self.parallelism:
            for lane in list(lanes):
                key, wait_s = self._take(lane, disrupting)
                if key is None:
                    lanes.remove(lane)
                    wake = min(wake, wait_s)
                    continue
                pending.discard(key)
                action = self._actions[key]
                self.hooks.action_start(action)
                running[pool.submit(self._work, action)] = key
                if len(running) >= self.parallelism:
                    break
        return wake

    def _take(self, lane: deque[str], disrupting: dict[str, int]) -> tuple[str | None, float]:
        """The first action in this lane that may start now (admitted and counted), or
        None and the seconds until the lane's provider has a slot for it."""
        for i, key in enumerate(lane):
            action = self._actions[key]
            if not self._within_budget(action, disrupting):
                continue
            wait_s = self._gate(action).admit(_first_call(action), self.clock.monotonic())
            if wait_s:
                return None, wait_s  # the whole lane waits: one provider, one kind of call
            del lane[i]
            if action.action in _DISRUPTIVE:
                disrupting[action.group] = disrupting.get(action.group, 0) + 1
            return key, 0.0
        return None, math.inf

    def _work(self, action: Action) -> None:
        self._current.action = action
        with self._gate(action).booked(_first_call(action)):
            self.runner.run(action)

    def _gate(self, action: Action) -> Gate:
        """The gate an action counts against: its provider's, unless it makes no cloud
        call at all (forget)."""
        if _first_call(action) is None:
            return self._open_gate
        return self.gates.get(action.provider) or self._open_gate

    def _within_budget(self, action: Action, disrupting: Mapping[str, int]) -> bool:
        group = self.groups.get(action.group)
        budget = group.max_parallel_terminations if group else None
        return (action.action not in _DISRUPTIVE or budget is None
                or disrupting.get(action.group, 0) < budget)

    def _release(self, action: Action, disrupting: dict[str, int]) -> None:
        self._gate(action).release()
        if action.action in _DISRUPTIVE:
            disrupting[action.group] -= 1

    def _settle(self, key: str, future: Future[None], result: ApplyResult,
                pending: set[str]) -> list[str]:
        """Record the outcome; returns keys that became ready."""
        action = self._actions[key]
        error = future.exception()
        phase = self._phase[key]
        if isinstance(error, LaunchDeferred) and self._defer(action, error):
            pending.add(key)
            self._queue(key, front=True)
            return []
        if error is not None:
            result.failed[key] = str(error) or type(error).__name__
            self.hooks.action_failed(action, error)
            if phase:
                self._skip_dependents(phase, key, result, pending)
            return []
        result.done.append(key)
        self.hooks.action_done(action)
        if not phase:
            return []
        self._members[phase].discard(key)
        if self._members[phase]:
            return []
        newly = []
        for then in self._unblocks[phase]:
            self._needs[then].discard(phase)
            if not self._needs[then]:
                newly += [k for k in self._members[then] if k in pending]
        return newly

    def _defer(self, action: Action, deferred: LaunchDeferred) -> bool:
        """A launch the cloud refused for now (rate limited: nothing was created). Hold
        back the provider that refused (a failover may have gone elsewhere) and say
        whether the action goes back in the queue (False: out of tries, it fails). A
        queued action holds no worker, so it may wait out a long Retry-After."""
        cause = deferred.cause
        gate = self.gates.get(cause.provider) or self._gate(action)
        self._deferrals[action.key] = tries = self._deferrals.get(action.key, 0) + 1
        delay = gate.retry.delay(tries, cause, self._rng, parks_a_worker=False)
        gate.pacers["launch"].push_back(delay if delay is not None
                                        else cause.retry_after or 0.0)
        if delay is None:
            return False
        self.hooks.action_waiting(action, f"{cause.message}; queued to try again "
                                  f"in {delay:.1f}s (try {tries + 1} of "
                                  f"{gate.retry.max_attempts})")
        return True

    def _skip_dependents(self, phase: str, key: str, result: ApplyResult,
                         pending: set[str]) -> None:
        why = f"{key} failed"
        for then in sorted(closure(self._unblocks[phase], self._unblocks)):
            for skipped in sorted(self._members[then] & pending):
                pending.discard(skipped)
                result.skipped[skipped] = why
                self.hooks.action_skipped(self._actions[skipped], why)

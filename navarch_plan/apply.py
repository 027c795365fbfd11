"""The executor: runs a plan's actions as a DAG, in parallel, recording state after
every cloud call. It never prints; it reports through Hooks.

Invariants:
- an intent is durable before every Provision, and the node record replaces it after;
- a replacement's old node is terminated only after the new one is running
  (unless the pool asks for destroy_before_create);
- a failed action skips everything that depends on it; independent work goes on;
- once `stop` is set, no new action starts; running ones finish.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from navarch_plan.actions import ActionRunner
from navarch_plan.desired import DesiredNode, Group
from navarch_plan.hooks import Hooks
from navarch_plan.plan import Action, ActionKind, Plan
from navarch_plan.plan_graph import closure, phase_of
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


class Executor:
    def __init__(self, plan: Plan, *, desired: Mapping[str, DesiredNode],
                 groups: Mapping[str, Group], providers: Mapping[str, Provider],
                 store: StateStore, hooks: Hooks | None = None, parallelism: int = 10,
                 boot_timeout: float = 900.0) -> None:
        self.groups = groups
        self.hooks = hooks or Hooks()
        self.parallelism = max(1, parallelism)
        self.runner = ActionRunner(plan.workspace, desired, providers, store, self.hooks,
                                   boot_timeout)
        self.stop = threading.Event()
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

    def run(self) -> ApplyResult:
        result = ApplyResult()
        self.runner.drop_intents()
        pending = set(self._actions)
        ready = deque(k for k in self._actions if self._is_ready(k))
        running: dict[Future[None], str] = {}
        disrupting: dict[str, int] = {}
        with ThreadPoolExecutor(max_workers=self.parallelism,
                                thread_name_prefix="navarch-apply") as pool:
            while ready or running:
                if not self.stop.is_set():
                    self._start_ready(pool, ready, running, disrupting, pending)
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    key = running.pop(future)
                    self._release(self._actions[key], disrupting)
                    ready.extend(self._settle(key, future, result, pending))
        result.not_started = sorted(pending)
        return result

    def _is_ready(self, key: str) -> bool:
        phase = self._phase[key]
        return not phase or not self._needs[phase]

    def _start_ready(self, pool: ThreadPoolExecutor, ready: deque[str],
                     running: dict[Future[None], str], disrupting: dict[str, int],
                     pending: set[str]) -> None:
        """Start ready actions up to the parallelism; over-budget ones wait their turn.
        Stops scanning once the pool is full, so a long queue costs nothing per step."""
        held = []
        while ready and len(running) < self.parallelism:
            key = ready.popleft()
            action = self._actions[key]
            if not self._within_budget(action, disrupting):
                held.append(key)
                continue
            if action.action in _DISRUPTIVE:
                disrupting[action.group] = disrupting.get(action.group, 0) + 1
            pending.discard(key)
            self.hooks.action_start(action)
            running[pool.submit(self.runner.run, action)] = key
        ready.extendleft(reversed(held))

    def _within_budget(self, action: Action, disrupting: Mapping[str, int]) -> bool:
        group = self.groups.get(action.group)
        budget = group.max_parallel_terminations if group else None
        return (action.action not in _DISRUPTIVE or budget is None
                or disrupting.get(action.group, 0) < budget)

    def _release(self, action: Action, disrupting: dict[str, int]) -> None:
        if action.action in _DISRUPTIVE:
            disrupting[action.group] -= 1

    def _settle(self, key: str, future: Future[None], result: ApplyResult,
                pending: set[str]) -> list[str]:
        """Record the outcome; returns keys that became ready."""
        action = self._actions[key]
        error = future.exception()
        phase = self._phase[key]
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

    def _skip_dependents(self, phase: str, key: str, result: ApplyResult,
                         pending: set[str]) -> None:
        why = f"{key} failed"
        for then in sorted(closure(self._unblocks[phase], self._unblocks)):
            for skipped in sorted(self._members[then] & pending):
                pending.discard(skipped)
                result.skipped[skipped] = why
                self.hooks.action_skipped(self._actions[skipped], why)

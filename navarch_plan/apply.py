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
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from navarch_plan.actions import ActionRunner
from navarch_plan.desired import DesiredNode, Group
from navarch_plan.hooks import Hooks
from navarch_plan.plan import Action, ActionKind, Plan
from navarch_plan.providers.base import Provider
from navarch_plan.state.store import LocalStateStore

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
                 store: LocalStateStore, hooks: Hooks | None = None, parallelism: int = 10,
                 boot_timeout: float = 900.0) -> None:
        self.plan = plan
        self.groups = groups
        self.hooks = hooks or Hooks()
        self.parallelism = max(1, parallelism)
        self.runner = ActionRunner(plan.workspace, desired, providers, store, self.hooks,
                                   boot_timeout)
        self.store = store
        self.stop = threading.Event()
        self._actions = {a.key: a for a in plan.actions}
        self._waits_for: dict[str, set[str]] = {k: set() for k in self._actions}
        self._unblocks: dict[str, list[str]] = {k: [] for k in self._actions}
        for first, then in plan.edges:
            if first in self._actions and then in self._actions:
                self._waits_for[then].add(first)
                self._unblocks[first].append(then)

    def run(self) -> ApplyResult:
        result = ApplyResult()
        self.runner.drop_intents()
        pending = set(self._actions)
        ready = [k for k in self._actions if not self._waits_for[k]]
        running: dict[Future[None], str] = {}
        disrupting: dict[str, int] = {}
        with ThreadPoolExecutor(max_workers=self.parallelism,
                                thread_name_prefix="navarch-apply") as pool:
            while (ready or running) and not (self.stop.is_set() and not running):
                ready = self._start_ready(pool, ready, running, disrupting, pending)
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    key = running.pop(future)
                    self._release(self._actions[key], disrupting)
                    ready += self._settle(key, future, result, pending)
        result.not_started = sorted(pending)
        return result

    def _start_ready(self, pool: ThreadPoolExecutor, ready: list[str],
                     running: dict[Future[None], str], disrupting: dict[str, int],
                     pending: set[str]) -> list[str]:
        """Start what may start now; returns the ready keys that must wait longer."""
        waiting = []
        for key in ready:
            action = self._actions[key]
            if self.stop.is_set() or len(running) >= self.parallelism or \
                    not self._within_budget(action, disrupting):
                waiting.append(key)
                continue
            if action.action in _DISRUPTIVE:
                disrupting[action.group] = disrupting.get(action.group, 0) + 1
            pending.discard(key)
            self.hooks.action_start(action)
            running[pool.submit(self.runner.run, action)] = key
        return waiting

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
        if error is None:
            result.done.append(key)
            self.hooks.action_done(action)
            newly = []
            for then in self._unblocks[key]:
                self._waits_for[then].discard(key)
                if not self._waits_for[then] and then in pending:
                    newly.append(then)
            return newly
        result.failed[key] = str(error) or type(error).__name__
        self.hooks.action_failed(action, error)
        self._skip_dependents(key, result, pending)
        return []

    def _skip_dependents(self, key: str, result: ApplyResult, pending: set[str]) -> None:
        todo = list(self._unblocks[key])
        while todo:
            then = todo.pop()
            if then in pending:
                pending.discard(then)
                why = f"{key} failed"
                result.skipped[then] = why
                self.hooks.action_skipped(self._actions[then], why)
                todo.extend(self._unblocks[then])

"""Hooks that turn apply progress into lines of text or JSON events.

They write through an `emit` callable the CLI gives them, so the engine and these
classes never print themselves. The phrases (`started`, `finished`, ...) are shared with
the live terminal view in `navarch_plan.cli.live`, so both say the same thing.

Plain lines start with the UTC time to the second, ISO 8601 with a `Z`
(`2026-11-26T13:20:01Z pool.workers[0]: created [0.5s]`): logs from CI and cron jobs
sort and compare across machines and time zones.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from navarch_plan.apply.failover import Attempt
from navarch_plan.apply.hooks import Hooks
from navarch_plan.config.desired import where
from navarch_plan.plan import Action

__all__ = ["LineHooks", "JsonHooks", "VERBS", "location", "started", "finished", "failed_over",
           "failed", "reason", "skipped", "timestamp"]

Emit = Callable[[str], None]

VERBS = {"create": ("creating", "created"), "replace": ("replacing", "replaced"),
         "delete": ("destroying", "destroyed"), "adopt": ("adopting", "adopted"),
         "forget": ("forgetting", "forgot"), "update": ("updating labels", "updated")}


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def location(action: Action) -> str:
    """Where an action acts, as failover lines say it: the zone when it has one."""
    return where(action.provider, action.region, action.zone)


def started(action: Action) -> str:
    return f"{action.key}: {VERBS[action.action.value][0]} on {location(action)}..."


def finished(action: Action, took: float) -> str:
    return f"{action.key}: {VERBS[action.action.value][1]} [{took:.1f}s]"


def failed_over(action: Action, attempt: Attempt) -> str:
    return f"{action.key}: {attempt.describe()}, trying the next candidate"


def failed(action: Action, error: BaseException) -> str:
    return f"{action.key}: FAILED: {reason(action.key, error)}"


def reason(key: str, error: object) -> str:
    """An error's words without the address they may start with (apply's errors name
    their node, `pool.w[1]: new instance ...`): every line that shows them names it
    already. `key` is an action's key: its address, or ADDRESS#NODE_ID."""
    text = str(error)
    for name in dict.fromkeys((key, key.split("#", 1)[0])):
        if text.startswith(f"{name}: "):
            return text[len(name) + 2:]
    return text


def skipped(action: Action, because: str) -> str:
    return f"{action.key}: skipped ({because})"


def pruned_lines(provider: str, deleted: Sequence[str], error: str) -> list[str]:
    if error:
        return [f"{provider}: placement groups not cleaned up ({error}); the next apply "
                "tries again"]
    return [f"{provider}: placement group {name} deleted" for name in deleted]


class LineHooks(Hooks):
    """Plain progress lines, one per event, each after a timestamp (see the module doc)."""

    def __init__(self, emit: Emit, clock: Callable[[], str] = timestamp) -> None:
        self.emit = emit
        self.clock = clock
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()

    def _line(self, text: str) -> None:
        with self._lock:
            self.emit(f"{self.clock()} {text}")

    def action_start(self, action: Action) -> None:
        self._started[action.key] = time.monotonic()
        self._line(started(action))

    def action_progress(self, action: Action, message: str) -> None:
        self._line(f"{action.key}: {message}")

    def action_waiting(self, action: Action, message: str) -> None:
        self._line(f"{action.key}: {message}")

    def failover_attempt(self, action: Action, attempt: Attempt) -> None:
        self._line(failed_over(action, attempt))

    def action_done(self, action: Action) -> None:
        took = time.monotonic() - self._started.get(action.key, time.monotonic())
        self._line(finished(action, took))

    def action_failed(self, action: Action, error: BaseException) -> None:
        self._line(failed(action, error))

    def action_skipped(self, action: Action, because: str) -> None:
        self._line(skipped(action, because))

    def placement_groups_pruned(self, provider: str, deleted: Sequence[str],
                                error: str = "") -> None:
        for line in pruned_lines(provider, deleted, error):
            self._line(line)


class JsonHooks(Hooks):
    """One JSON object per line: apply_start, apply_progress, apply_waiting,
    failover_attempt, apply_complete, apply_errored, apply_skipped."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self._lock = threading.Lock()

    def event(self, kind: str, action: Action | None = None, **fields: object) -> None:
        body: dict[str, object] = {"type": kind,
                                   "at": datetime.now(UTC).isoformat(timespec="milliseconds")}
        if action is not None:
            body.update(address=action.address, key=action.key, action=action.action.value,
                        reason=action.reason.value, provider=action.provider,
                        region=action.region, zone=action.zone)
        body.update(fields)
        with self._lock:
            self.emit(json.dumps(body, sort_keys=True))

    def action_start(self, action: Action) -> None:
        self.event("apply_start", action)

    def action_progress(self, action: Action, message: str) -> None:
        self.event("apply_progress", action, message=message)

    def action_waiting(self, action: Action, message: str) -> None:
        self.event("apply_waiting", action, message=message)

    def failover_attempt(self, action: Action, attempt: Attempt) -> None:
        p = attempt.placement
        self.event("failover_attempt", action, outcome=attempt.outcome, error=attempt.error,
                   candidate={"provider": p.provider, "region": p.region, "zone": p.zone,
                              "instance_type": p.instance_type})

    def action_done(self, action: Action) -> None:
        self.event("apply_complete", action)

    def action_failed(self, action: Action, error: BaseException) -> None:
        self.event("apply_errored", action, error=str(error))

    def action_skipped(self, action: Action, because: str) -> None:
        self.event("apply_skipped", action, because=because)

    def placement_groups_pruned(self, provider: str, deleted: Sequence[str],
                                error: str = "") -> None:
        self.event("placement_groups_pruned", provider=provider, deleted=list(deleted),
                   error=error)

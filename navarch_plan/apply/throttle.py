"""Per-provider pacing and retries, for one apply.

A `Gate` holds one provider's limits: how many actions may run on it at once, and how far
apart its launches and its other calls must be. The executor asks the gate before it
starts an action (`Gate.admit`), so an action that would only sit waiting for its
provider's next slot stays in the queue, and the worker serves another provider
meanwhile. Calls made inside an action go through `GatedProvider`, which paces them too:
an admitted action's first call uses the slot booked for it at admission; any other call
(a failover to this provider, a second call) books its own slot and waits for it.

Retries: calls that are safe to repeat (list, get, terminate, which the Provider
contract makes idempotent) are retried after `RateLimitError` and `TransientError`,
with exponential backoff and jitter, honouring the cloud's Retry-After. A launch is
never retried here: after a timeout or a 5xx its outcome is unknown. A launch refused
with `RateLimitError` created nothing; the executor puts that action back in the queue
behind the provider's pushed-back launch slot, so no worker waits for it.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, TypeVar

from navarch_plan.clock import SYSTEM_CLOCK, Clock
from navarch_plan.errors import (
    InvalidRequestError,
    NotSentError,
    ProviderError,
    RateLimitError,
    TransientError,
)
from navarch_plan.model import Node, ProvisionRequest, RateLimit
from navarch_plan.providers.base import (
    LabelSetter,
    LaunchPrechecked,
    NodeGetter,
    Provider,
    RateLimited,
)

__all__ = ["Gate", "GatedProvider", "Pacer", "RetryPolicy", "CallKind", "SCHEDULER_OPTIONS",
           "gate_for", "retry_policy", "retrying"]

# Provider options that belong to apply and the engine, not to the provider object.
SCHEDULER_OPTIONS = ("rate_limit", "retry", "consistency_window", "boot_timeout")

CallKind = Literal["launch", "call"]
T = TypeVar("T")
_local = threading.local()  # the slots the current worker's action holds: {(gate id, kind)}


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4  # tries of one call, the first included
    base_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, attempt: int, error: ProviderError, rng: random.Random,
              parks_a_worker: bool = True) -> float | None:
        """Seconds to wait before try `attempt + 1` (attempt counts from 1), or None to
        give up. The cloud's Retry-After wins; when someone would sleep through it, one
        longer than max_delay gives up rather than park a worker. Otherwise
        exponential, with equal jitter (half fixed, half random) so parallel callers
        spread out instead of retrying together."""
        if attempt >= self.max_attempts:
            return None
        hinted = getattr(error, "retry_after", None)
        if hinted is not None:
            return float(hinted) if hinted <= self.max_delay or not parks_a_worker else None
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


class Pacer:
    """Keeps the calls of one kind on one provider at least `interval` apart, and none
    at all while the cloud has asked to hold off."""

    def __init__(self, per_second: float | None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self.clock = clock
        self._next = -math.inf  # earliest start of a call that has no slot yet
        self._last = -math.inf  # start of the latest call
        self._hold = -math.inf  # no call at all before this (the cloud's Retry-After)
        self._lock = threading.Lock()

    def admit(self, now: float) -> float:
        """0 (and the slot at `now` booked) if a call may start now; else the seconds
        until one may."""
        with self._lock:
            earliest = max(self._next, self._hold)
            if earliest > now:
                return earliest - now
            self._next = now + self.interval
            return 0.0

    def booking(self) -> float:
        """The mark of the latest slot booked by `admit` (for `give_back`)."""
        with self._lock:
            return self._next

    def give_back(self, booking: float) -> None:
        """A slot booked at admission that no call used: free it, unless another
        booking or call came since (then it is no longer the latest to give back)."""
        with self._lock:
            if self._next == booking:
                self._next = self._last + self.interval

    def slot(self, booked: bool) -> float:
        """When this call may start (monotonic), recorded as started then. A booked
        call keeps its slot: it only keeps its distance from the previous call and
        honours a hold the cloud asked for since it was booked."""
        with self._lock:
            now = self.clock.monotonic()
            start = max(now, self._last + self.interval, self._hold)
            if not booked:
                start = max(start, self._next)
            self._last = start
            self._next = max(self._next, start + self.interval)
            return start

    def wait(self) -> None:
        """Sleep until this call's slot (for callers outside the executor's queue)."""
        self.clock.sleep(self.slot(booked=False) - self.clock.monotonic())

    @property
    def hold(self) -> float:
        """No call may start before this (monotonic): the latest Retry-After's end."""
        with self._lock:
            return self._hold

    def push_back(self, seconds: float) -> None:
        """The cloud said slow down: no call, booked or not, for `seconds`."""
        with self._lock:
            self._hold = max(self._hold, self.clock.monotonic() + seconds)


class Gate:
    """One provider's limits for one apply. `admit` and `release` are the executor's
    (called from its one scheduling thread); the pacers are shared with the workers."""

    def __init__(self, name: str, limit: RateLimit, retry: RetryPolicy,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.name, self.limit, self.retry, self.clock = name, limit, retry, clock
        self.pacers = {"launch": Pacer(limit.launches_per_second, clock),
                       "call": Pacer(limit.calls_per_second, clock)}
        self.active = 0

    def admit(self, kind: CallKind | None, now: float) -> float:
        """0 when an action whose first call is `kind` may start now (its slot booked
        and the action counted); else seconds to wait, inf until an action ends."""
        if self.limit.concurrency is not None and self.active >= self.limit.concurrency:
            return math.inf
        if kind is not None:
            wait = self.pacers[kind].admit(now)
            if wait:
                return wait
        self.active += 1
        return 0.0

    def release(self) -> None:
        self.active -= 1

    @contextmanager
    def booked(self, kind: CallKind | None) -> Iterator[None]:
        """Run an admitted action in this worker: its first `kind` call uses the slot
        booked at admission. An action that made no such call (every launch it meant
        was skipped before the call, or it failed over elsewhere) gives the slot back."""
        held = (id(self), kind)
        booking = self.pacers[kind].booking() if kind else None
        _local.booked = {held} if kind else set()
        try:
            yield
        finally:
            unused = kind is not None and held in _local.booked
            _local.booked = set()
            if unused and kind is not None and booking is not None:
                self.pacers[kind].give_back(booking)

    def wait_turn(self, kind: CallKind, stop: threading.Event | None = None) -> None:
        """Wait for this call's slot. Once `stop` is set (a second Ctrl-C), a call that
        would have to wait is not sent at all (NotSentError): a launch slot can be a
        minute away, and a second press promises to stop waiting."""
        held: set[tuple[int, str]] = getattr(_local, "booked", set())
        booked = (id(self), kind) in held
        held.discard((id(self), kind))
        pacer = self.pacers[kind]
        start = pacer.slot(booked)
        self._wait_until(start, kind, stop)
        # The cloud may have asked to hold off while this call waited for its slot (one
        # sent just before it was refused for rate): then it waits that out too.
        while pacer.hold > start:
            start = pacer.slot(booked=True)
            self._wait_until(start, kind, stop)

    def _wait_until(self, start: float, kind: CallKind, stop: threading.Event | None
                    ) -> None:
        delay = start - self.clock.monotonic()
        if stop is None:
            self.clock.sleep(delay)
        elif delay > 0 and (stop.is_set() or self.clock.wait(stop, delay)):
            raise NotSentError(f"stopped waiting {delay:.0f}s for a {kind} slot: "
                               "interrupted, so the call was not sent", provider=self.name)


def retry_policy(options: Mapping[str, object]) -> RetryPolicy:
    """A provider config's `retry` section (the schema checked its keys)."""
    given = options.get("retry") or {}
    assert isinstance(given, Mapping), "the schema makes retry an object"
    defaults = RetryPolicy()
    return RetryPolicy(int(given.get("max_attempts", defaults.max_attempts)),
                       float(given.get("base_delay", defaults.base_delay)),
                       float(given.get("max_delay", defaults.max_delay)))


def gate_for(name: str, provider: Provider, options: Mapping[str, object],
             clock: Clock = SYSTEM_CLOCK, default: RateLimit | None = None) -> Gate:
    """A provider's gate: its own documented limits (if it declares them, else
    `default`: its type's), with the config's `rate_limit` fields over them, and the
    config's `retry` policy."""
    limit = (provider.rate_limit() if isinstance(provider, RateLimited)
             else default or RateLimit())
    limit = limit.overridden(options.get("rate_limit") or {})  # type: ignore[arg-type]
    return Gate(name, limit, retry_policy(options), clock)


class GatedProvider:
    """A provider as one apply drives it: every call paced by its gate, the idempotent
    ones retried. `notify` hears each retry, for the progress display."""

    def __init__(self, inner: Provider, gate: Gate,
                 notify: Callable[[str], None] = lambda message: None,
                 rng: random.Random | None = None,
                 stop: threading.Event | None = None) -> None:
        """`stop`: once set, no retry waits any longer (the last error stands)."""
        self.inner, self.gate, self.notify, self.stop = inner, gate, notify, stop
        self.name = inner.name
        self._rng = rng or random.Random()

    def provision(self, req: ProvisionRequest) -> Node:
        """A provider that can tell a launch is doomed (LaunchPrechecked) says so before
        the launch waits for its slot: a region skipped that way costs no launch slot."""
        inner = self.inner
        if isinstance(inner, LaunchPrechecked):
            self._paced("call", lambda: inner.check_launch(req))
        try:
            return self._paced("launch", lambda: inner.provision(req))
        except RateLimitError as exc:
            # Hold this provider's other launches back now, from this worker: the
            # executor requeues this one (and may hold longer) only once it hears.
            self.gate.pacers["launch"].push_back(exc.retry_after or 0.0)
            raise

    def terminate(self, node_id: str) -> bool | None:
        return self._retried("terminate", lambda: self.inner.terminate(node_id))

    def list(self) -> list[Node]:
        return self._retried("list", self.inner.list)

    def set_labels(self, node_id: str, labels: Mapping[str, str]) -> None:
        """Retried: setting the same labels again is harmless (GCE's fingerprint is
        read afresh on each try)."""
        inner = self.inner
        if not isinstance(inner, LabelSetter):
            raise InvalidRequestError(f"provider {self.name} cannot set labels in place",
                                      provider=self.name)
        self._retried("set labels", lambda: inner.set_labels(node_id, labels))

    def get(self, node_id: str) -> Node | None:
        inner = self.inner
        if isinstance(inner, NodeGetter):
            return self._retried("get", lambda: inner.get(node_id))
        return next((n for n in self.list() if n.id == node_id), None)

    def _paced(self, kind: CallKind, call: Callable[[], T]) -> T:
        self.gate.wait_turn(kind, self.stop)
        return call()

    def _retried(self, what: str, call: Callable[[], T]) -> T:
        return retrying(lambda: self._paced("call", call), self.gate.retry, self._rng,
                        self.notify, f"{self.name} {what}",
                        self.gate.pacers["call"].push_back, self.gate.clock, stop=self.stop)


def retrying(call: Callable[[], T], policy: RetryPolicy, rng: random.Random,
             notify: Callable[[str], None], what: str,
             on_rate_limit: Callable[[float], None] = lambda seconds: None,
             clock: Clock = SYSTEM_CLOCK,
             retry_on: tuple[type[ProviderError], ...] = (RateLimitError, TransientError),
             stop: threading.Event | None = None) -> T:
    """Runs a call until it succeeds, fails otherwise, or the policy gives up (by default
    an idempotent call, retried after rate limits and transient failures; a launch only
    after a rate limit, which created nothing). A RateLimitError's wait is also passed
    to `on_rate_limit` (to slow the others). Once `stop` is set (a second Ctrl-C), the
    wait for the next try is cut short and the last error stands."""
    attempt = 1
    while True:
        try:
            return call()
        except retry_on as exc:
            delay = policy.delay(attempt, exc, rng)
            if delay is None:
                raise
            if isinstance(exc, RateLimitError):
                on_rate_limit(delay)
            notify(f"{what}: {exc.message}; retrying in {delay:.1f}s "
                   f"(try {attempt + 1} of {policy.max_attempts})")
            if stop is None:
                clock.sleep(delay)
            elif stop.is_set() or clock.wait(stop, delay):
                raise
            attempt += 1

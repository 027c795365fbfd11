"""Deterministic fault injection for the fake cloud.

A fault queue holds fault specs in order. Each call of the fake takes the first spec
whose `op` (and `address`, if given) matches it, and that spec decides how the call
fails:

    {op: provision, error: capacity}                 # refused: nothing was created
    {op: provision, error: transient, effect: true}  # created, then timed out
    {op: terminate, error: transient, effect: true}  # terminated, but reported failure
    {op: provision, error: rate_limit, retry_after: 2}
    {op: provision, delay: 5}                         # created, reply 5 s late
    {op: provision}                                   # this call passes: a placeholder
    {op: list, hide: 1}                               # an empty listing (0.5: half)
    {op: list, unreachable: [us-east-1]}              # a listing that admits a gap
    {op: get, hide: 1}                                # "no such instance", wrongly
    {op: provision, error: capacity, purchase: spot}  # spot refused, on-demand not
    {op: set_labels, error: transient}                # labels not set (apply retries)

`effect: true` makes the call take effect (committed, visible to every process) before
the error is raised; `delay` waits after the effect, before replying. Only a
`transient` error may have `effect`: the other kinds are the cloud's definite "no".
`hide` leaves out that fraction of a listing's instances (the newest) without saying
so, or makes a `get` answer "not found"; `unreachable` names regions or zones a
listing leaves out and says it could not read; `purchase` limits a provision fault to
launches bought that way (a spot stock-out).

The queue belongs to one FakeProvider object: a config's `faults` start afresh in each
`navarch` process, and `FakeProvider.inject` adds to one object's queue.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from navarch_plan.errors import (
    CapacityError,
    ProviderError,
    QuotaError,
    RateLimitError,
    TransientError,
)

__all__ = ["Fault", "FaultQueue", "FAULT_OPS", "FAULT_ERRORS"]

FAULT_OPS = ("provision", "terminate", "list", "get", "list_instance_types", "set_labels")
FAULT_ERRORS = {
    "transient": (TransientError, "injected timeout", "fake/injected-timeout"),
    "capacity": (CapacityError, "injected: no capacity", "fake/insufficient-capacity"),
    "rate_limit": (RateLimitError, "injected: too many requests", "fake/rate-limited"),
    "quota": (QuotaError, "injected: quota exceeded", "fake/quota-exceeded"),
}


@dataclass(frozen=True)
class Fault:
    op: str
    error: str | None = None
    effect: bool = False
    delay: float = 0.0
    retry_after: float | None = None
    address: str | None = None  # fnmatch pattern on the navarch-address label
    hide: float = 0.0
    unreachable: tuple[str, ...] = ()
    purchase: str | None = None  # provision only: "spot", "on-demand" or "reservation"

    def __post_init__(self) -> None:
        object.__setattr__(self, "unreachable", tuple(self.unreachable))
        if not 0.0 <= self.hide <= 1.0 or (self.hide and self.op not in ("list", "get")):
            raise ValueError("fault hide is a fraction from 0 to 1, for list or get")
        if self.unreachable and self.op != "list":
            raise ValueError("fault unreachable is for list")
        if self.op not in FAULT_OPS:
            raise ValueError(f"fault op {self.op!r} is not one of {', '.join(FAULT_OPS)}")
        if self.error is not None and self.error not in FAULT_ERRORS:
            raise ValueError(f"fault error {self.error!r} is not one of "
                             f"{', '.join(FAULT_ERRORS)}")
        if self.effect and self.error != "transient":
            raise ValueError("only a transient fault may take effect before failing")
        if self.delay < 0:
            raise ValueError("fault delay must not be negative")
        if self.purchase is not None and self.op != "provision":
            raise ValueError("fault purchase is for provision")

    @classmethod
    def of(cls, spec: Fault | Mapping[str, Any]) -> Fault:
        return spec if isinstance(spec, Fault) else cls(**dict(spec))

    def matches(self, op: str, address: str, purchase: str = "") -> bool:
        return op == self.op and (self.address is None
                                  or fnmatch.fnmatchcase(address, self.address)) and (
            self.purchase is None or self.purchase == purchase)

    def exception(self, provider: str, region: str = "") -> ProviderError | None:
        if self.error is None:
            return None
        cls, message, code = FAULT_ERRORS[self.error]
        if self.effect:
            message += " (the call took effect)"
        kw: dict[str, Any] = {"provider": provider, "region": region, "code": code}
        if cls is RateLimitError:
            return RateLimitError(message, retry_after=self.retry_after, **kw)
        return cls(message, **kw)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, False, 0.0, ())}


class FaultQueue:
    """Thread-safe; each fault is taken by exactly one call."""

    def __init__(self, faults: Iterable[Fault | Mapping[str, Any]] = ()) -> None:
        self._faults = [Fault.of(f) for f in faults]
        self._lock = threading.Lock()

    def add(self, *faults: Fault | Mapping[str, Any]) -> None:
        with self._lock:
            self._faults.extend(Fault.of(f) for f in faults)

    def take(self, op: str, address: str = "", purchase: str = "") -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.matches(op, address, purchase):
                    return self._faults.pop(i)
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

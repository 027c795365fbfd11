"""Provisioning with failover: try a node's candidates in order, moving on after a
capacity or quota error, never after an auth or invalid-request error.

`provision_with_failover` is the one loop; the executor uses it for every create, and
`navarch_plan.pool.Pool` wraps it as the library API.
`RuledOut` remembers, for one run, what is known not to work: a capacity error rules out
that (provider, region, zone, type, purchase model: a spot stock-out leaves on-demand
to try); a provider-wide quota error the whole provider; a
regional quota error that (provider, region). Nothing is remembered across runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from navarch_plan.config.desired import Placement
from navarch_plan.errors import (
    CapacityError,
    NoCapacityListedError,
    NotOfferedError,
    ProviderError,
    QuotaError,
)
from navarch_plan.model import Node, ProvisionRequest
from navarch_plan.providers.base import Provider

__all__ = ["Attempt", "FailoverExhausted", "RuledOut", "provision_with_failover"]


@dataclass(frozen=True)
class Attempt:
    placement: Placement
    outcome: str  # "created", "no capacity", "over quota", "ruled out earlier", ...
    error: str = ""

    def describe(self) -> str:
        return f"{self.placement.where} {self.outcome}"


class FailoverExhausted(ProviderError):
    """Every candidate failed with a capacity or quota error; lists every attempt."""

    def __init__(self, attempts: Sequence[Attempt]) -> None:
        self.attempts = list(attempts)
        trail = " -> ".join(a.describe() for a in attempts)
        last = next((a.error for a in reversed(attempts) if a.error), "")
        detail = f" (last error: {last})" if last else ""
        super().__init__(f"no candidate could provision: {trail}{detail}",
                         code="navarch/exhausted")


@dataclass
class RuledOut:
    """Also serialises the first attempt on each placement: while one node probes a
    placement, the others wait for the answer instead of all hitting the same stock-out.
    Once a placement has worked, attempts on it run in parallel."""

    _keys: set[tuple[str, ...]] = field(default_factory=set)
    _proven: set[tuple[str, ...]] = field(default_factory=set)
    _probing: dict[tuple[str, ...], threading.Event] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def probe(self, placement: Placement) -> bool:
        """Wait until this placement may be tried; False if it got ruled out meanwhile.
        A True answer must be followed by `settle`."""
        while True:
            with self._lock:
                if self._excluded(placement):
                    return False
                if placement.key in self._proven:
                    return True
                event = self._probing.get(placement.key)
                if event is None:
                    self._probing[placement.key] = threading.Event()
                    return True
            event.wait()

    def settle(self, placement: Placement, worked: bool) -> None:
        with self._lock:
            if worked:
                self._proven.add(placement.key)
            event = self._probing.pop(placement.key, None)
        if event is not None:
            event.set()

    def rule_out(self, placement: Placement, error: ProviderError) -> None:
        """What the error says is ruled out: the whole provider, the region, the types a
        quota covers in the region, or this one placement. A regional or per-type quota
        binds one purchase model: spot quotas are their own (EC2's Spot vCPU quotas,
        GCE's preemptible quotas), so a spot quota leaves on-demand to try."""
        covered = error.instance_types if isinstance(error, QuotaError) else None
        if isinstance(error, QuotaError) and error.provider_wide:
            key: tuple[str, ...] = (placement.provider,)
        elif covered is not None:
            key = placement.key  # and, below, every covered type in the region
        elif isinstance(error, QuotaError):
            key = (placement.provider, placement.region, placement.purchase)
        else:
            key = placement.key
        with self._lock:
            self._keys.add(key)
            self._keys.update((placement.provider, placement.region, "type", t,
                               placement.purchase) for t in covered or ())

    def excludes(self, placement: Placement) -> bool:
        with self._lock:
            return self._excluded(placement)

    def _excluded(self, p: Placement) -> bool:
        return bool({(p.provider,), (p.provider, p.region, p.purchase), p.key,
                     (p.provider, p.region, "type", p.instance_type, p.purchase)}
                    & self._keys)


def _outcome(error: ProviderError) -> str:
    if isinstance(error, QuotaError):
        return "over quota (whole provider)" if error.provider_wide else "over quota"
    if isinstance(error, NotOfferedError):
        return "not offered here"
    if isinstance(error, NoCapacityListedError):
        return "no capacity (live catalog)"
    return "no capacity"


def provision_with_failover(
        candidates: Sequence[Placement], providers: Mapping[str, Provider],
        make_request: Callable[[Placement], ProvisionRequest], ruled_out: RuledOut,
        on_attempt: Callable[[Attempt], None] = lambda a: None,
        before_call: Callable[[Placement, ProvisionRequest], None] = lambda p, r: None,
        launch: Callable[[Placement, ProvisionRequest], Node] | None = None,
        skip: Callable[[Placement], str | None] = lambda p: None,
) -> tuple[Node, Placement, list[Attempt]]:
    """The first candidate that provisions. CapacityError and QuotaError move on to the
    next candidate; any other error ends the loop at once (it says nothing about the
    other candidates, or the call's outcome is unknown). `launch` makes the call
    (default: the provider's provision), e.g. to resolve a lost reply. `skip` says why a
    candidate is not tried at all (None: it is), e.g. a cluster pool's other zones."""
    call = launch or (lambda p, r: providers[p.provider].provision(r))
    attempts: list[Attempt] = []
    # Probing (one attempt per untried placement at a time) only pays when there is
    # somewhere else to go; a single-candidate node just tries.
    probing = len(candidates) > 1
    for placement in candidates:
        if (why := skip(placement)) is not None:
            attempts.append(Attempt(placement, why))
            continue
        if ruled_out.excludes(placement) or (probing and not ruled_out.probe(placement)):
            attempts.append(Attempt(placement, "ruled out earlier in this run"))
            continue
        worked = False
        try:
            request = make_request(placement)
            before_call(placement, request)
            node = call(placement, request)
            worked = True
        except (CapacityError, QuotaError) as exc:
            ruled_out.rule_out(placement, exc)
            if len(candidates) == 1:
                raise  # nothing to fail over to: the cloud's own words say it best
            attempt = Attempt(placement, _outcome(exc), str(exc))
            attempts.append(attempt)
            on_attempt(attempt)
            continue
        finally:
            if probing:
                ruled_out.settle(placement, worked)
        attempts.append(Attempt(placement, "created"))
        return node, placement, attempts
    raise FailoverExhausted(attempts)

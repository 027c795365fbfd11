"""Where Lambda has capacity now, from `GET /instance-types`, read at most once per
`ttl` seconds (the provider's clock), so the launches of one apply share one read.

`regions_with_capacity_available` is a hint, not a reservation (cloud-apis.md section 1):
a launch it lets through may still be refused. dstack keeps Lambda's offers with their
availability for 180 s; navarch's default is shorter (CAPACITY_CACHE_SECONDS), since a
region wrongly skipped is worse than one launch refused."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable

from navarch_plan.clock import Clock
from navarch_plan.errors import ProviderError
from navarch_plan.model import InstanceType

__all__ = ["CapacityCache"]


class CapacityCache:
    def __init__(self, fetch: Callable[[], list[InstanceType]], ttl: float,
                 clock: Clock) -> None:
        self._fetch, self.ttl, self._clock = fetch, ttl, clock
        self._regions: dict[str, frozenset[str]] = {}  # type -> regions with capacity
        self._read = -math.inf  # clock.monotonic() of the latest read
        # Held across a fetch: parallel launches wait for the one read, not make eight.
        self._lock = threading.Lock()

    def regions(self, instance_type: str) -> frozenset[str] | None:
        """The regions with capacity for the type; None when the catalog does not list
        it or cannot be read now (the launch itself will say)."""
        with self._lock:
            if self._clock.monotonic() - self._read >= self.ttl:
                try:
                    self._store(self._fetch())
                except ProviderError:
                    return None
            return self._regions.get(instance_type)

    def remember(self, offers: Iterable[InstanceType]) -> None:
        """A read made for another reason (a plan's listing) counts as fresh."""
        with self._lock:
            self._store(offers)

    def _store(self, offers: Iterable[InstanceType]) -> None:
        self._regions = {o.name: frozenset(o.regions) for o in offers}
        self._read = self._clock.monotonic()

"""Where Lambda has capacity now, from `GET /instance-types`: a "yes" is taken from a
read up to `ttl` seconds old (the provider's clock), so the launches of one apply share
one read; a "no" is confirmed by a read made now, since a region wrongly skipped costs
more than one launch refused.

`regions_with_capacity_available` is a hint, not a reservation (cloud-apis.md section 1):
a launch it lets through may still be refused. SkyPilot reads it before every launch;
dstack keeps Lambda's offers with their availability for 180 s."""

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

    def regions(self, instance_type: str, region: str) -> frozenset[str] | None:
        """The regions with capacity for the type; None when the catalog does not list
        it or cannot be read now (the launch itself will say). A region with capacity
        may come from a read up to `ttl` old; one without is confirmed by a read made
        now, so a region is never skipped on stale news (apply then rules it out for
        the run: one read per skipped region, not one per node)."""
        with self._lock:
            read_now = self._clock.monotonic() - self._read >= self.ttl and self._refresh()
            regions = self._regions.get(instance_type)
            if regions is not None and region not in regions and not read_now:
                self._refresh()
                regions = self._regions.get(instance_type)
            return regions

    def _refresh(self) -> bool:
        """Read the catalog now; False, and nothing known, when it cannot be read."""
        try:
            self._store(self._fetch())
        except ProviderError:
            self._regions, self._read = {}, -math.inf
            return False
        return True

    def remember(self, offers: Iterable[InstanceType]) -> None:
        """A read made for another reason (a plan's listing) counts as fresh."""
        with self._lock:
            self._store(offers)

    def _store(self, offers: Iterable[InstanceType]) -> None:
        self._regions = {o.name: frozenset(o.regions) for o in offers}
        self._read = self._clock.monotonic()

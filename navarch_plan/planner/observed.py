"""What one run's reads of the clouds showed, and what an absence may mean. Pure.

No single listing is the truth: a cloud's index lags its writes (EC2 may not show, or
may answer "not found" for, an instance it launched a moment ago), a listing can come
back short, and a zone can be unreachable. So the planner never concludes anything
from absence in one listing:

- every recorded id the listing did not show is looked up by id (`get`) by the engine
  before planning, and a node found that way is as live as a listed one;
- an absence that `get` confirms proves the instance gone only once the provider's
  consistency window has passed since it was launched; before that it is *not yet
  visible*, and nothing is done about it;
- an instance in a region or zone the listing admits it could not read is *unknown*,
  as is one whose lookup failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from navarch_plan.clock import iso_to_epoch
from navarch_plan.model import Listing, Node
from navarch_plan.planner.ownership import Ownership, sort_owned

__all__ = ["Lookup", "Observed", "Presence", "Seen", "ids_to_confirm"]


class Seen(StrEnum):
    LIVE = "live"
    NOT_YET_VISIBLE = "not_yet_visible"
    GONE = "gone"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Presence:
    seen: Seen
    node: Node | None = None
    detail: str = ""


@dataclass(frozen=True)
class Lookup:
    """The answer of `get(id)` for an id its listing did not show: the node, None (the
    cloud says there is no such instance), or the error that kept it from saying."""

    node: Node | None = None
    error: str = ""


@dataclass(frozen=True)
class Observed:
    """Every provider's listing, the lookups made for what they did not show, each
    provider's consistency window, and when the reads were made (epoch seconds; None
    when unknown, which makes every confirmed absence final)."""

    listings: Mapping[str, Listing]
    lookups: Mapping[tuple[str, str], Lookup] = field(default_factory=dict)
    windows: Mapping[str, float] = field(default_factory=dict)
    now: float | None = None

    @classmethod
    def of(cls, live: Mapping[str, Iterable[Node]]) -> Observed:
        """Complete listings and nothing else: a world where every read is the truth."""
        return cls({name: Listing(tuple(nodes)) for name, nodes in live.items()})

    @cached_property
    def by_id(self) -> dict[tuple[str, str], Node]:
        """Every node seen, listed or found by id, by (provider, id)."""
        seen = {(n.provider, n.id): n for listing in self.listings.values()
                for n in listing.nodes}
        for key, lookup in self.lookups.items():
            if lookup.node is not None:
                seen.setdefault(key, lookup.node)
        return seen

    def ownership(self, workspace: str, lineage: str) -> Ownership:
        """Every node seen, sorted into this state's and another state's of this
        workspace (ownership.py)."""
        return sort_owned(self.by_id.values(), workspace, lineage)

    def unreachable(self) -> dict[str, tuple[str, ...]]:
        return {name: listing.unreachable for name, listing in self.listings.items()
                if listing.unreachable}

    def named(self, provider: str, name: str) -> Node | None:
        """The live instance a provider lists under this name, if any (names carry a
        random suffix, so a second one would be someone's copy: the first wins)."""
        found = [n for (p, _), n in self.by_id.items() if p == provider and n.name == name]
        found.sort(key=lambda n: (n.status.is_gone, n.id))
        return found[0] if found else None

    def age(self, since: str) -> float | None:
        start = iso_to_epoch(since)
        return None if start is None or self.now is None else max(0.0, self.now - start)

    def presence(self, provider: str, node_id: str, region: str, zone: str,
                 launched_at: str) -> Presence:
        """Where an instance navarch knows by id stands, as far as these reads can tell."""
        node = self.by_id.get((provider, node_id))
        looked_up = self.lookups.get((provider, node_id))
        if node is not None and looked_up is not None and node.status.is_gone:
            # Listings leave ended instances out; a lookup still shows them for a while.
            return Presence(Seen.GONE, node, detail=f"not listed, and {provider} shows it "
                            f"{node.status_word}")
        if node is not None:
            return Presence(Seen.LIVE, node)
        listing = self.listings.get(provider)
        if listing is None:
            return Presence(Seen.UNKNOWN, detail=f"provider {provider} was not read")
        if not listing.covers(region, zone):
            places = ", ".join(listing.unreachable)
            return Presence(Seen.UNKNOWN, detail=f"{provider} could not read {places}: "
                            "whether it still exists cannot be told")
        lookup = self.lookups.get((provider, node_id))
        if lookup is not None and lookup.error:
            return Presence(Seen.UNKNOWN, detail=f"not listed, and looking it up failed: "
                            f"{lookup.error}")
        return self._absent(provider, self.age(launched_at), looked_up=lookup is not None)

    def _absent(self, provider: str, age: float | None, looked_up: bool) -> Presence:
        window = self.windows.get(provider, 0.0)
        if age is not None and age < window:
            return Presence(Seen.NOT_YET_VISIBLE, detail=(
                f"not listed and not found by id {age:.0f}s after launch; {provider} may "
                f"take up to {window:.0f}s to show a new instance"))
        said = (f"not listed, and {provider} confirmed by id that it does not exist"
                if looked_up else f"not in {provider}'s listing")
        if window:
            said += (f" ({age:.0f}s after launch, past" if age is not None else " (past") + \
                f" the {window:.0f}s consistency window)"
        return Presence(Seen.GONE, detail=said)

    def settling(self, provider: str, started_at: str) -> float | None:
        """Seconds left of the window since a launch began, or None once it passed."""
        age = self.age(started_at)
        window = self.windows.get(provider, 0.0)
        return None if age is None or age >= window else window - age


def ids_to_confirm(listings: Mapping[str, Listing],
                   known: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Of the (provider, id) pairs state knows, those the listings did not show, by
    provider: what the engine must look up by id before anything is planned."""
    listed = {(n.provider, n.id) for listing in listings.values() for n in listing.nodes}
    # Ids in order of first sight, once each: a dict, as a list's `in` made this
    # quadratic in the number of ids a listing missed.
    wanted: dict[str, dict[str, None]] = {}
    for provider, node_id in known:
        if provider in listings and node_id and (provider, node_id) not in listed:
            wanted.setdefault(provider, {})[node_id] = None
    return {provider: list(ids) for provider, ids in wanted.items()}

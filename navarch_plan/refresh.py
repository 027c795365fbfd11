"""Reading the clouds for a plan: every provider's listing and offers at once, then, by
id, what state knows and no listing showed. Apart from engine.py because it is the
read side only: no state lock, no state writes, every call a retried read. The engine
turns what it returns into prices, observations and the live view."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from navarch_plan.apply.hooks import Hooks
from navarch_plan.apply.throttle import retry_policy, retrying
from navarch_plan.clock import Clock
from navarch_plan.config.types import ProviderConfig
from navarch_plan.errors import ProviderError
from navarch_plan.model import InstanceType, Listing
from navarch_plan.planner.observed import Lookup, ids_to_confirm
from navarch_plan.providers.base import (
    InstanceTypeLister,
    NodeGetter,
    PartialLister,
    Provider,
)
from navarch_plan.state.model import StateDoc

__all__ = ["CloudReader"]

T = TypeVar("T")
# More ids than this missing from one provider's listing: list it once more before
# looking the rest up one by one (a listing that came back short, not 10,000 deletions).
_RELIST_ABOVE = 20


class CloudReader:
    """Reads through `providers`, each call retried by its provider's `retry` options
    (rate limits and transient failures: reading twice changes nothing)."""

    def __init__(self, providers: Mapping[str, Provider],
                 configs: Mapping[str, ProviderConfig], hooks: Hooks,
                 notice: Callable[[str], None], clock: Clock) -> None:
        self.providers, self.configs = providers, configs
        self.hooks, self.notice, self.clock = hooks, notice, clock

    def listings_and_offers(self) -> tuple[dict[str, Listing],
                                           list[tuple[str, InstanceType]]]:
        """One listing per provider, all providers at once, and the offers of those
        that list them, as (provider, offer) pairs."""
        providers = self.providers
        self.hooks.refresh_start(list(providers))
        with ThreadPoolExecutor(max_workers=max(1, 2 * len(providers))) as pool:
            lists = {name: pool.submit(self._listed, name, p) for name, p in providers.items()}
            offers = {name: pool.submit(self.read, name, "instance types",
                                        p.list_instance_types)
                      for name, p in providers.items() if isinstance(p, InstanceTypeLister)}
            listings = {name: future.result() for name, future in lists.items()}
            listed = [(name, offer) for name, future in offers.items()
                      for offer in future.result()]
        return listings, listed

    def _listed(self, name: str, provider: Provider) -> Listing:
        """One provider's listing, told to the hooks as soon as it is read."""
        listing = self.read(name, "list", _listing_call(provider))
        self.hooks.provider_listed(name, len(listing.nodes))
        return listing

    def confirm(self, listings: dict[str, Listing],
                doc: StateDoc) -> dict[tuple[str, str], Lookup]:
        """Look up by id what state knows (records, deposed, launched intents) and the
        listings did not show."""
        known = [(r.provider, r.id) for r in (*doc.nodes.values(), *doc.deposed.values())]
        known += [(i.provider, i.node_id) for i in doc.intents.values() if i.node_id]
        wanted = ids_to_confirm(listings, known)
        lookups: dict[tuple[str, str], Lookup] = {}
        for name, ids in wanted.items():
            if len(ids) > _RELIST_ABOVE:
                again = self.read(name, "list", _listing_call(self.providers[name]))
                seen = {n.id: n for n in again.nodes}
                lookups.update({(name, i): Lookup(seen[i]) for i in ids if i in seen})
                ids = [i for i in ids if i not in seen]
            with ThreadPoolExecutor(max_workers=8) as pool:
                found = dict(zip(ids, pool.map(lambda i, n=name: self._lookup(n, i), ids),
                                 strict=True))
            lookups.update({(name, i): result for i, result in found.items()})
        return lookups

    def _lookup(self, provider: str, node_id: str) -> Lookup:
        p = self.providers[provider]
        try:
            if isinstance(p, NodeGetter):
                return Lookup(self.read(provider, f"get {node_id}", lambda: p.get(node_id)))
            listed = self.read(provider, "list", p.list)
            return Lookup(next((n for n in listed if n.id == node_id), None))
        except ProviderError as exc:
            return Lookup(error=str(exc))

    def read(self, provider: str, what: str, call: Callable[[], T]) -> T:
        policy = retry_policy(self.configs[provider].options)
        return retrying(call, policy, random.Random(), lambda m: self.notice(f"Note: {m}"),
                        f"{provider} {what}", clock=self.clock)


def _listing_call(provider: Provider) -> Callable[[], Listing]:
    """A provider's listing, honest about what it could not read when it can say."""
    if isinstance(provider, PartialLister):
        return provider.listing
    return lambda: Listing(tuple(provider.list()))

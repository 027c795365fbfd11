"""Ordering a node's candidate placements by its pool's strategy. Pure and deterministic:
ties always fall back to the order of the config (providers list, then regions, zones
and types as written), never to chance.

- priority:     lowest priority number first.
- cost:         cheapest known hourly price first (a spot candidate's spot price, see
                `price_of`); unknown prices last.
- availability: placements the provider's catalog reports available in that region
                first, then the rest; each group by priority.
- round-robin:  the pool's nodes are spread over its providers by weight, by node index
                (node i starts at slot i of the weighted sequence), so adding a node never
                moves an existing one; the other providers follow as fallbacks.

Whatever the strategy, placements on a capacity reservation come first (already paid
for), then spot ones, then on-demand ones (spot_policy auto).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from navarch_plan.config.desired import RESERVATION, SPOT, Placement
from navarch_plan.model import InstanceType

__all__ = ["STRATEGIES", "SpotOffers", "capacity_table", "order_placements", "offer_tables",
           "price_of", "spot_offers"]

STRATEGIES = ("priority", "cost", "availability", "round-robin")

Prices = Mapping[tuple[str, str], float | None]
Availability = Mapping[tuple[str, str], Sequence[str]]  # (provider, type) -> regions
# (provider, type) -> the offer, for offers that know a spot price somewhere.
SpotOffers = Mapping[tuple[str, str], InstanceType]


def offer_tables(offers: Iterable[tuple[str, InstanceType]]
                 ) -> tuple[dict[tuple[str, str], float | None],
                            dict[tuple[str, str], tuple[str, ...]]]:
    """What the cost and availability strategies read, from (provider, offer) pairs: the
    price of each (provider, type), and the regions where it is available now."""
    prices: dict[tuple[str, str], float | None] = {}
    available: dict[tuple[str, str], tuple[str, ...]] = {}
    for provider, offer in offers:
        prices[(provider, offer.name)] = offer.price_per_hr
        available[(provider, offer.name)] = tuple(offer.regions) if offer.available else ()
    return prices, available


def capacity_table(offers: Iterable[tuple[str, InstanceType]]
                   ) -> dict[tuple[str, str], tuple[str, ...]]:
    """(provider, type) -> the regions with capacity now, for offers whose cloud says so
    live (InstanceType.capacity_live); other offers know only where a type is sold."""
    return {(provider, o.name): tuple(o.regions) if o.available else ()
            for provider, o in offers if o.capacity_live}


def spot_offers(offers: Iterable[tuple[str, InstanceType]]) -> dict[tuple[str, str],
                                                                     InstanceType]:
    """The offers that know a spot price somewhere, by (provider, type)."""
    return {(provider, o.name): o for provider, o in offers
            if o.spot_prices or o.spot_price_per_hr is not None}


def price_of(prices: Prices, spot: SpotOffers, provider: str, instance_type: str,
             purchase: str, region: str, zone: str = "") -> float | None:
    """The hourly price of one instance bought `purchase` there. A spot price comes only
    from the offer's spot prices (None when unknown), never from its on-demand price."""
    if purchase == SPOT:
        offer = spot.get((provider, instance_type))
        return None if offer is None else offer.spot_price(region, zone)
    return prices.get((provider, instance_type))


def _base(p: Placement, position: int) -> tuple[Any, ...]:
    return (p.priority, p.entry, position)


def order_placements(placements: Sequence[Placement], strategy: str, index: int | None,
                     prices: Prices, availability: Availability,
                     spot: SpotOffers | None = None) -> list[Placement]:
    indexed = list(enumerate(placements))
    if strategy == "cost":
        def key(item: tuple[int, Placement]) -> tuple[Any, ...]:
            p = item[1]
            price = price_of(prices, spot or {}, p.provider, p.instance_type, p.purchase,
                             p.region, p.zone)
            return (price is None, price or 0.0, *_base(item[1], item[0]))
    elif strategy == "availability":
        def key(item: tuple[int, Placement]) -> tuple[Any, ...]:
            regions = availability.get((item[1].provider, item[1].instance_type), ())
            return (item[1].region not in regions, *_base(item[1], item[0]))
    elif strategy == "round-robin":
        first = _round_robin_entry(placements, index or 0)

        def key(item: tuple[int, Placement]) -> tuple[Any, ...]:
            return (item[1].entry != first, *_base(item[1], item[0]))
    else:
        def key(item: tuple[int, Placement]) -> tuple[Any, ...]:
            return _base(item[1], item[0])
    # Reserved, then spot, then on-demand, always: the strategy orders each group.
    return [p for _, p in sorted(indexed, key=lambda item: (item[1].purchase != RESERVATION,
                                                          item[1].purchase != SPOT,
                                                          *key(item)))]


def _round_robin_entry(placements: Sequence[Placement], index: int) -> int:
    weights: dict[int, int] = {}
    for p in placements:
        weights.setdefault(p.entry, p.weight)
    slots = [entry for entry in sorted(weights) for _ in range(weights[entry])]
    return slots[index % len(slots)]

"""The offers table (`navarch instance-types`), from plain rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from navarch_plan.render.text import money

__all__ = ["offer_rows", "render_offers_text"]


def offer_rows(offers: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Offers of every provider, cheapest first; unknown prices last, then by name.
    `purchase`: how the type can be bought (empty: the provider does not say);
    `spot_prices`: the known spot prices, per region and zone ("" for everywhere)."""
    rows = [
        {"provider": provider, "instance_type": o.name, "gpu_count": o.gpu_count,
         "gpu_type": o.gpu_type, "vcpus": o.vcpus, "memory_gb": o.memory_gb,
         "price_per_hr": o.price_per_hr, "regions": list(o.regions), "available": o.available,
         "purchase": list(o.purchase), "spot_prices": _spot_prices(o)}
        for provider, items in offers.items() for o in items
    ]
    rows.sort(key=lambda r: (r["price_per_hr"] is None, r["price_per_hr"] or 0,
                             r["provider"], r["instance_type"]))
    return rows


def _spot_prices(offer: Any) -> list[dict[str, Any]]:
    places = sorted(offer.spot_prices.items())
    if not places and offer.spot_price_per_hr is not None:
        places = [(("", ""), offer.spot_price_per_hr)]
    return [{"region": region, "zone": zone, "price_per_hr": price}
            for (region, zone), price in places]


def _spot_text(row: dict[str, Any]) -> str:
    """`$7.50`, a range over zones `$0.41-$0.55`, `unknown`, or `-` when not sold spot."""
    prices = [p["price_per_hr"] for p in row["spot_prices"]]
    if not prices:
        return "unknown" if "spot" in row["purchase"] else "-"
    low, high = min(prices), max(prices)
    return money(low) if low == high else f"{money(low)}-{money(high)}"


def render_offers_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No matching offers from the configured providers.\n"
    table = [("PROVIDER", "TYPE", "GPUS", "VCPUS", "MEMORY", "PRICE/H", "SPOT/H", "PURCHASE",
              "REGIONS", "")]
    for r in rows:
        gpus = f"{r['gpu_count']}x {r['gpu_type']}" if r["gpu_count"] else "-"
        regions = ", ".join(r["regions"]) if r["available"] else "(no capacity now)"
        table.append((r["provider"], r["instance_type"], gpus, str(r["vcpus"]),
                      f"{r['memory_gb']:g} GB", money(r["price_per_hr"]), _spot_text(r),
                      ",".join(r["purchase"]) or "-", regions,
                      f"<- picked: {r['picked']}" if r.get("picked") else ""))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in table]
    return "\n".join(lines) + "\n"

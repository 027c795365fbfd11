"""`navarch instance-types`: merge the providers' offers, filter by GPU spec, and mark
what a pool would pick. Pure: the caller lists the offers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from navarch_plan.catalog.facts import SPOT, type_facts
from navarch_plan.catalog.gpu_spec import GpuSpecError, parse_gpu_specs
from navarch_plan.config import Config
from navarch_plan.errors import ConfigError, UsageError
from navarch_plan.model import InstanceType
from navarch_plan.planner.strategies import offer_tables, order_placements, spot_offers
from navarch_plan.render.offers import offer_rows

__all__ = ["select_offers"]


def _gpu_memory(provider_type: str, offer: InstanceType) -> float | None:
    """What the offer says (a live catalog), else what the shipped catalog knows."""
    if offer.gpu_memory_gb is not None:
        return offer.gpu_memory_gb
    facts = type_facts(provider_type, offer.name)
    return facts.gpu_memory_gb if facts else None


def _matching(config: Config, offers: Mapping[str, Sequence[InstanceType]], gpu: str
              ) -> dict[str, list[InstanceType]]:
    try:
        specs = parse_gpu_specs(gpu)
    except GpuSpecError as exc:
        raise UsageError(f"--gpu: {exc}") from None
    kept: dict[str, list[InstanceType]] = {}
    for provider, items in offers.items():
        ptype = config.providers[provider].type
        kept[provider] = [o for o in items if any(
            s.matches(o.gpu_type, o.gpu_count, _gpu_memory(ptype, o)) for s in specs)]
    return kept


def select_offers(config: Config, offers: Mapping[str, Sequence[InstanceType]],
                  gpu: str | None = None, pool: str | None = None) -> list[dict[str, Any]]:
    """Rows cheapest first; with `pool`, the row its first node would try first carries
    `"picked": "REGION[/ZONE][ (spot)] for pool.NAME"`."""
    chosen = _matching(config, offers, gpu) if gpu else dict(offers)
    rows = offer_rows(chosen)
    for row in rows:
        row["picked"] = ""
    if pool:
        node = next((n for n in config.desired.values() if n.group == pool), None)
        if node is None:
            raise ConfigError(f"--pool {pool}: no such pool or named node", config.file)
        listed = [(p, o) for p, items in offers.items() for o in items]
        prices, available = offer_tables(listed)
        first = order_placements(node.candidates, node.strategy, 0, prices, available,
                                 spot_offers(listed))[0]
        where = first.region + (f"/{first.zone}" if first.zone else "") + (
            " (spot)" if first.purchase == SPOT else "")
        for row in rows:
            if (row["provider"], row["instance_type"]) == (first.provider, first.instance_type):
                row["picked"] = f"{where} for {node.address}"
    return rows

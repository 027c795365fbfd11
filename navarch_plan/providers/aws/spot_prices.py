"""EC2's live spot prices: DescribeSpotPriceHistory, the latest Linux/UNIX price of each
instance type in each availability zone.

Asked with StartTime = now, EC2 answers the price in effect now in every zone (the last
change before the start time), so one paginated call per region suffices. The answer is
USD per hour as a decimal string.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from navarch_plan.errors import ProviderError

__all__ = ["LINUX", "latest_spot_prices", "regional_spot_prices"]

#: The product the GPU launches run (EC2 also says "Linux/UNIX (Amazon VPC)").
LINUX = "Linux/UNIX"


def latest_spot_prices(client: Any, instance_types: Iterable[str], now: float
                       ) -> dict[tuple[str, str], float]:
    """(instance type, zone) -> the latest Linux/UNIX spot price there, USD/h."""
    latest: dict[tuple[str, str], tuple[datetime, float]] = {}
    pages = client.get_paginator("describe_spot_price_history").paginate(
        InstanceTypes=list(instance_types), ProductDescriptions=[LINUX],
        StartTime=datetime.fromtimestamp(now, UTC))
    for page in pages:
        for row in page.get("SpotPriceHistory", ()):
            # Other products (SUSE, Windows, Red Hat) cost more: never mixed in.
            if not str(row.get("ProductDescription", "")).startswith(LINUX):
                continue
            key = (row["InstanceType"], row["AvailabilityZone"])
            stamp = row["Timestamp"]
            if key not in latest or stamp > latest[key][0]:
                latest[key] = (stamp, float(row["SpotPrice"]))
    return {key: price for key, (_, price) in latest.items()}


def regional_spot_prices(regions: Sequence[str], instance_types: Iterable[str],
                         client: Callable[[str], Any],
                         translating: Callable[[str, str], Any], now: float
                         ) -> dict[str, dict[tuple[str, str], float]]:
    """type -> {(region, zone): price}, every region at once. A region whose prices
    cannot be read (an IAM policy without ec2:DescribeSpotPriceHistory, an endpoint that
    does not answer) leaves its spot prices unknown rather than failing the plan: a spot
    price only informs the cost, which then says "at least", and never an on-demand
    price in its place."""
    types = list(instance_types)

    def one(region: str) -> dict[tuple[str, str], float]:
        try:
            with translating(region, "reading spot prices"):
                return latest_spot_prices(client(region), types, now)
        except ProviderError:
            return {}

    by_type: dict[str, dict[tuple[str, str], float]] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(regions)))) as pool:
        for region, prices in zip(regions, pool.map(one, regions), strict=True):
            for (itype, zone), price in prices.items():
                by_type.setdefault(itype, {})[(region, zone)] = price
    return by_type

"""Abstract instance types and every cloud's GPU facts, read from `data/catalog.json`.

That JSON file, shipped as package data, is the one source of truth: the abstract names
(`h100-8x`) with the GPUs they promise and their native type on each cloud, and per cloud
a table of types (GPU model and count, GPU memory, vCPUs, memory, an on-demand hourly
price) with the source and date of its prices. This module reads it once, on first use,
and hands out immutable views; the AWS and GCP catalog modules and the fake cloud take
their tables from here. No cloud SDK is imported.

Prices for Lambda, GCP and AWS are approximate reference prices (see each cloud's
`price_source`): for ranking offers and estimating a plan's hourly cost, never billing.
Lambda's live `/instance-types` API stays authoritative for Lambda at run time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from navarch_plan.model import InstanceType

__all__ = [
    "ABSTRACT_TYPES",
    "CLOUDS",
    "FAKE_CATALOG",
    "FAKE_REGIONS",
    "ON_DEMAND",
    "SPOT",
    "RESERVATION",
    "PURCHASE_MODELS",
    "AbstractType",
    "CloudTable",
    "TypeFacts",
    "abstract_types",
    "cloud_offers",
    "cloud_table",
    "native_type",
    "offer",
    "purchase_problem",
    "purchase_words",
    "type_facts",
]

CLOUDS = ("fake", "lambda", "gcp", "aws")
#: How a type can be bought: a pool buys on-demand (the default), spot (`spot_policy`) or
#: on a reservation (`reservation:`); flex-start is recorded, never bought by navarch.
PURCHASE_MODELS = ("on-demand", "spot", "reservation", "flex-start")
ON_DEMAND = "on-demand"
SPOT = "spot"
#: Launched into a capacity reservation (`reservation:`): already paid for, 0 marginal.
RESERVATION = "reservation"


def purchase_words(models: Iterable[str]) -> tuple[str, ...]:
    """Purchase models in PURCHASE_MODELS' order (how tables and JSON list them)."""
    given = set(models)
    return tuple(m for m in PURCHASE_MODELS if m in given)


@dataclass(frozen=True)
class TypeFacts:
    """One native instance type as the catalog records it."""

    name: str
    gpu_type: str
    gpu_count: int
    gpu_memory_gb: int  # per GPU
    vcpus: int
    memory_gb: float
    price_per_hr: float | None
    regions: tuple[str, ...]
    # How the cloud sells it (PURCHASE_MODELS): a type left out of on-demand can only be
    # had through the others, and a pool that buys on-demand must not resolve to it.
    purchase: frozenset[str] = frozenset({ON_DEMAND})

    def offer(self, regions: Sequence[str] | None = None) -> InstanceType:
        """As an InstanceType; `regions` overrides the catalog's (AWS offers every type in
        the regions it is configured with). A static table cannot know stock, so every
        offer says available; a stock-out surfaces as a CapacityError when provisioning."""
        return InstanceType(name=self.name, gpu_count=self.gpu_count, gpu_type=self.gpu_type,
                            memory_gb=self.memory_gb, vcpus=self.vcpus,
                            price_per_hr=self.price_per_hr,
                            regions=tuple(self.regions if regions is None else regions),
                            purchase=purchase_words(self.purchase))


@dataclass(frozen=True)
class CloudTable:
    """A cloud's types, with where its prices come from and when they were taken."""

    cloud: str
    price_source: str
    price_date: str  # YYYY-MM
    currency: str
    note: str
    types: Mapping[str, TypeFacts]
    purchase_source: str = ""  # where the types' purchase models were read, and when


@dataclass(frozen=True)
class AbstractType:
    """A cloud-neutral name and the GPUs it promises, with its native type per cloud."""

    name: str
    description: str
    gpu_type: str
    gpu_count: int
    gpu_memory_gb: int | None
    gpu_type_aliases: tuple[str, ...]  # other names of the same GPU (AWS's A10G is an A10)
    native: Mapping[str, str]

    def accepts(self, facts: TypeFacts) -> bool:
        """Whether a native type really carries the GPUs this name promises."""
        return (facts.gpu_type in (self.gpu_type, *self.gpu_type_aliases)
                and facts.gpu_count == self.gpu_count
                and (self.gpu_memory_gb is None or facts.gpu_memory_gb == self.gpu_memory_gb))


@cache
def _document() -> Mapping[str, Any]:
    # importlib.resources finds the file in a source checkout, an installed wheel or a zip
    # alike. Cached: the only file read the catalog ever does.
    source = resources.files("navarch_plan").joinpath("data").joinpath("catalog.json")
    data: Mapping[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    return data


def _price(value: Any) -> float | None:
    return None if value is None else float(value)


def _facts(name: str, raw: Mapping[str, Any], purchase: Sequence[str]) -> TypeFacts:
    """`purchase`: the table's default, for a type that does not list its own."""
    return TypeFacts(name=name, gpu_type=str(raw["gpu_type"]), gpu_count=int(raw["gpu_count"]),
                     gpu_memory_gb=int(raw["gpu_memory_gb"]), vcpus=int(raw["vcpus"]),
                     memory_gb=float(raw["memory_gb"]), price_per_hr=_price(raw["price_per_hr"]),
                     regions=tuple(raw["regions"]),
                     purchase=frozenset(raw.get("purchase", purchase)))


@cache
def cloud_table(cloud: str) -> CloudTable:
    """The catalog's table for one of CLOUDS; KeyError for any other name."""
    raw = _document()["clouds"][cloud]
    purchase = raw.get("purchase_default", [ON_DEMAND])
    types = {name: _facts(name, entry, purchase) for name, entry in raw["types"].items()}
    return CloudTable(cloud=cloud, price_source=raw["price_source"],
                      price_date=raw["price_date"], currency=raw["currency"], note=raw["note"],
                      types=MappingProxyType(types),
                      purchase_source=raw.get("purchase_source", ""))


def cloud_offers(cloud: str) -> list[InstanceType]:
    """Every type of a cloud's table as offers, in the file's order."""
    return [facts.offer() for facts in cloud_table(cloud).types.values()]


def type_facts(cloud: str, name: str) -> TypeFacts | None:
    """What the catalog knows of one native type; None for a type it does not know or
    a cloud it has no table for (a plugin's)."""
    return cloud_table(cloud).types.get(name) if cloud in CLOUDS else None


def offer(cloud: str, name: str) -> InstanceType | None:
    """One native type of a cloud as an offer; None when the catalog does not know it."""
    facts = type_facts(cloud, name)
    return None if facts is None else facts.offer()


def purchase_problem(cloud: str, name: str, model: str = ON_DEMAND) -> str | None:
    """Why a pool buying `model` cannot have this type, with how it can be bought and
    where the catalog read that; None when it can (or the catalog does not know it)."""
    facts = type_facts(cloud, name)
    # A table without a purchase_source records on-demand only because nobody read the
    # cloud's other ways: it knows nothing against them (the provider type decides).
    if facts is None or model in facts.purchase or (
            model != ON_DEMAND and not cloud_table(cloud).purchase_source):
        return None
    ways = ", ".join(m for m in PURCHASE_MODELS if m in facts.purchase) or "none recorded"
    url = re.search(r"https?://[^\s),]+", cloud_table(cloud).purchase_source)
    source = f"; see {url.group(0)}" if url else ""
    return f"{name} is not sold {model} on {cloud}: only as {ways}{source}"


@cache
def abstract_types() -> Mapping[str, AbstractType]:
    out = {}
    for name, raw in _document()["abstract"].items():
        memory = raw.get("gpu_memory_gb")
        out[name] = AbstractType(
            name=name, description=raw["description"], gpu_type=raw["gpu_type"],
            gpu_count=int(raw["gpu_count"]), gpu_memory_gb=None if memory is None else int(memory),
            gpu_type_aliases=tuple(raw.get("gpu_type_aliases", ())),
            native=MappingProxyType(dict(raw["native"])))
    return MappingProxyType(out)


# abstract name -> {provider type: native type}, the shape config building has always used.
ABSTRACT_TYPES: dict[str, dict[str, str]] = {
    name: dict(a.native) for name, a in abstract_types().items()}


def native_type(provider_type: str, name: str) -> str | None:
    """The provider's own name for `name`; None when an abstract name has no mapping.
    A name that is not abstract is taken as native."""
    mapping = ABSTRACT_TYPES.get(name)
    if mapping is None:
        return name
    return mapping.get(provider_type)


FAKE_CATALOG: tuple[InstanceType, ...] = tuple(cloud_offers("fake"))
# Every region any fake type is offered in, in the file's order (the fake checks requests
# against these, and `validate` lists them in its message).
FAKE_REGIONS: tuple[str, ...] = tuple(dict.fromkeys(r for t in FAKE_CATALOG for r in t.regions))

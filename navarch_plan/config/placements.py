"""Where a pool's nodes may run: its providers list expanded into placements
(provider, region, zone, instance type), with GPU specs resolved against the catalog.
Pure; strategies order these later, at plan time, with live prices."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from navarch_plan.catalog.facts import (
    ON_DEMAND,
    RESERVATION,
    SPOT,
    cloud_table,
    native_type,
    purchase_problem,
)
from navarch_plan.catalog.gpu_spec import GpuSpecError, matching_types, parse_gpu_specs
from navarch_plan.config.desired import Placement

if TYPE_CHECKING:
    from navarch_plan.config.types import Context, ProviderConfig
    from navarch_plan.config.yamlpos import Path
    from navarch_plan.providers.base import ProviderType

__all__ = ["placements_of"]


def _entries(spec: dict[str, Any]) -> list[tuple[Path, dict[str, Any]]]:
    if spec.get("providers"):
        return [(("providers", i), e) for i, e in enumerate(spec["providers"])]
    return [(("provider",), {"name": spec["provider"]})]


#: spot_policy (dstack's names) -> the purchase models tried, in order.
POLICIES = {"on-demand": (ON_DEMAND,), "spot": (SPOT,), "auto": (SPOT, ON_DEMAND)}


def placements_of(spec: dict[str, Any], providers: Mapping[str, ProviderConfig],
                  defaults: dict[str, Any], ctx: Context, path: Path,
                  types: Mapping[str, ProviderType] | None = None) -> list[Placement]:
    """Every candidate: those on a reservation first; then with spot_policy auto, every
    spot placement, then every on-demand one. A provider type that sells no spot gets
    only on-demand placements under auto; under spot it is a load error."""
    gpus = _gpu_specs(spec, ctx, path)
    policy = spec.get("spot_policy") or defaults.get("spot_policy") or ON_DEMAND
    models = POLICIES[policy]
    # A reserved entry's other ways are its fallback: a type only sold on reservations
    # (a3-ultragpu-8g) is skipped there instead of failing the load.
    reserved = _reserved(spec, providers, types, gpus, defaults, ctx, path)
    out = list(reserved)
    for i, (where, entry) in enumerate(_entries(spec)):
        provider = providers[entry["name"]]
        kind = (types or {}).get(provider.type)
        sold = kind.purchase_models if kind is not None else frozenset({ON_DEMAND})
        if SPOT in models and SPOT not in sold and policy == SPOT:
            key = (*path, "spot_policy") if "spot_policy" in spec else ("defaults", "spot_policy")
            title = kind.title if kind is not None else provider.type
            raise ctx.error(key, f"{title} sells no spot instances; use spot_policy: auto "
                            "or on-demand")
        bought = [m for m in models if m in sold]
        for model in bought:
            # Under auto a type one way cannot buy is left to the other; the last way
            # tried for an entry that found nothing says why.
            strict = model == bought[-1] and not any(p.entry == i for p in out)
            out += _entry_placements(i, where, entry, provider, spec, gpus, defaults, ctx,
                                     path, model, strict)
    # Stable: each group keeps its order; the reserved ones stay first.
    out = reserved + sorted(out[len(reserved):], key=lambda p: p.purchase != models[0])
    if spec.get("placement") == "cluster":
        out = _clustered(out, spec, providers, types, ctx, path)
    if not out:
        unbuyable = [why for _, e in _entries(spec) for model in models
                     for name in matching_types(gpus, _catalog_facts(providers[e["name"]].type,
                                                                     None))
                     if (why := purchase_problem(providers[e["name"]].type, name, model))]
        bought_as = " or ".join(models)
        raise ctx.error((*path, "gpu"), "no provider of this pool offers the requested GPUs"
                        + (f" {bought_as}: " + "; ".join(unbuyable) if unbuyable else ""))
    return out


def _reserved(spec: dict[str, Any], providers: Mapping[str, ProviderConfig],
              types: Mapping[str, ProviderType] | None, gpus: list[Any],
              defaults: dict[str, Any], ctx: Context, path: Path) -> list[Placement]:
    """The candidates on a reservation (`reservation:` on the pool, or on one entry of its
    providers list): each of the entry's candidates the catalog says can be bought on a
    reservation, launching into it. They come first; the entry's own candidates stay
    behind them as the fallback for a full reservation. A provider type that cannot
    launch into one is a load error."""
    out: list[Placement] = []
    for i, (where, entry) in enumerate(_entries(spec)):
        name = entry.get("reservation") or spec.get("reservation")
        if not name:
            continue
        provider = providers[entry["name"]]
        kind = (types or {}).get(provider.type)
        if kind is None or RESERVATION not in kind.purchase_models:
            key = (*path, *where, "reservation") if "reservation" in entry else \
                (*path, "reservation")
            title = kind.title if kind is not None else provider.type
            raise ctx.error(key, f"{title} has no capacity reservations to launch into "
                            f"(provider {provider.name!r}); remove reservation")
        out += [replace(p, reservation=name)
                for p in _entry_placements(i, where, entry, provider, spec, gpus, defaults,
                                           ctx, path, RESERVATION, strict=True)]
    return out


#: Strategies that may give a pool's nodes different first candidates (round-robin by
#: node index; availability as the live catalog changes during an apply): a cluster
#: pool's nodes must all try the same zones in the same order.
SPREADING = ("round-robin", "availability")


def _clustered(placements: list[Placement], spec: dict[str, Any],
               providers: Mapping[str, ProviderConfig],
               types: Mapping[str, ProviderType] | None, ctx: Context,
               path: Path) -> list[Placement]:
    """`placement: cluster`: every candidate marked, once every provider of the pool can
    make placement groups and the strategy orders every node's candidates alike."""
    if spec.get("strategy") in SPREADING:
        raise ctx.error((*path, "strategy"), f"strategy {spec['strategy']} spreads a pool's "
                        "nodes, but placement: cluster keeps them in one zone; use "
                        "priority or cost")
    for _, entry in _entries(spec):
        provider = providers[entry["name"]]
        kind = (types or {}).get(provider.type)
        if kind is None or not getattr(kind, "placement_groups", False):
            title = kind.title if kind is not None else provider.type
            raise ctx.error((*path, "placement"), f"{title} has no cluster placement "
                            f"(provider {provider.name!r}); remove placement: cluster")
    return [replace(p, cluster=True) for p in placements]


def _entry_placements(i: int, where: Path, entry: dict[str, Any], provider: ProviderConfig,
                      spec: dict[str, Any], gpus: list[Any], defaults: dict[str, Any],
                      ctx: Context, path: Path, model: str, strict: bool) -> list[Placement]:
    types = _types(entry, spec, provider, gpus, ctx, (*path, *where), model, strict)
    regions = (entry.get("regions") or [spec.get("region") or defaults.get("region")
                                        or provider.options.get("region")])
    if not regions[0]:
        raise ctx.error(path, "region is required (here, in defaults, or on the provider)")
    zones = entry.get("zones") or ([spec["zone"]] if spec.get("zone") else [])
    launch = {**spec.get("launch", {}), **entry.get("launch", {})}
    launch_json = json.dumps(launch, sort_keys=True) if launch else ""
    return [Placement(provider.name, provider.type, region, zone, t,
                      entry.get("priority", 0), entry.get("weight", 1), i, launch_json, model)
            for region in regions
            for zone in _zones_in(region, zones, ctx, (*path, *where))
            for t in types]


def _zones_in(region: str, zones: list[str], ctx: Context, where: Path) -> list[str]:
    if not zones:
        return [""]
    inside = [z for z in zones if z.startswith(region)]
    if not inside:
        raise ctx.error(where, f"none of the zones {', '.join(zones)} is in region {region}")
    return inside


def _gpu_specs(spec: dict[str, Any], ctx: Context, path: Path) -> list[Any]:
    if "gpu" not in spec:
        if not spec.get("instance_type") and not any(
                e.get("instance_type") for e in spec.get("providers", [])):
            raise ctx.error(path, "instance_type is required (or gpu: MODEL:COUNT)")
        return []
    if spec.get("instance_type"):
        raise ctx.error((*path, "gpu"), "give either instance_type or gpu, not both")
    try:
        return parse_gpu_specs(spec["gpu"])
    except GpuSpecError as exc:
        raise ctx.error((*path, "gpu"), str(exc)) from None


def _types(entry: dict[str, Any], spec: dict[str, Any], provider: ProviderConfig,
           gpus: list[Any], ctx: Context, where: Path, model: str = ON_DEMAND,
           strict: bool = True) -> list[str]:
    wanted = entry.get("instance_type") or spec.get("instance_type")
    if wanted:
        pool = where[:-2] if len(where) > 1 and where[-2] == "providers" else where[:-1]
        key = (*(where if entry.get("instance_type") else pool), "instance_type")
        native = native_type(provider.type, wanted)
        if native is None:
            raise ctx.error(key, f"{wanted!r} has no {provider.type} equivalent; name a "
                            "native instance type instead")
        # A type the cloud does not sell this way would fail every launch, so it fails
        # here, saying how it can be bought (or, when another way is left, is skipped).
        if (why := purchase_problem(provider.type, native, model)) is not None:
            if not strict:
                return []
            meaning = f"{wanted} means {native} on {provider.name}; " if wanted != native else ""
            raise ctx.error(key, meaning + why)
        return [native]
    return matching_types(gpus, _catalog_facts(provider.type, model))


def _catalog_facts(provider_type: str, model: str | None = ON_DEMAND) -> list[Any]:
    """The shipped catalog's types for a cloud that can be bought as `model` (None: all);
    plugin clouds have none (name a type)."""
    try:
        table = cloud_table(provider_type)
    except KeyError:
        return []
    return [f for f in table.types.values()
            if model is None or purchase_problem(provider_type, f.name, model) is None]

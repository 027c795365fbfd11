"""Where a pool's nodes may run: its providers list expanded into placements
(provider, region, zone, instance type), with GPU specs resolved against the catalog.
Pure; strategies order these later, at plan time, with live prices."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from navarch_plan.catalog.facts import ON_DEMAND, cloud_table, native_type, purchase_problem
from navarch_plan.catalog.gpu_spec import GpuSpecError, matching_types, parse_gpu_specs
from navarch_plan.config.desired import Placement

if TYPE_CHECKING:
    from navarch_plan.config.types import Context, ProviderConfig

__all__ = ["placements_of"]


def _entries(spec: dict[str, Any]) -> list[tuple[tuple, dict[str, Any]]]:
    if spec.get("providers"):
        return [(("providers", i), e) for i, e in enumerate(spec["providers"])]
    return [(("provider",), {"name": spec["provider"]})]


def placements_of(spec: dict[str, Any], providers: Mapping[str, ProviderConfig],
                  defaults: dict[str, Any], ctx: Context, path: tuple) -> list[Placement]:
    gpus = _gpu_specs(spec, ctx, path)
    out: list[Placement] = []
    for i, (where, entry) in enumerate(_entries(spec)):
        provider = providers[entry["name"]]
        types = _types(entry, spec, provider, gpus, ctx, (*path, *where))
        regions = (entry.get("regions") or [spec.get("region") or defaults.get("region")
                                            or provider.options.get("region")])
        if not regions[0]:
            raise ctx.error(path, "region is required (here, in defaults, or on the provider)")
        zones = entry.get("zones") or ([spec["zone"]] if spec.get("zone") else [])
        launch = {**spec.get("launch", {}), **entry.get("launch", {})}
        launch_json = json.dumps(launch, sort_keys=True) if launch else ""
        for region in regions:
            for zone in _zones_in(region, zones, ctx, (*path, *where)):
                out += [Placement(provider.name, provider.type, region, zone, t,
                                  entry.get("priority", 0), entry.get("weight", 1), i,
                                  launch_json)
                        for t in types]
    if not out:
        unbuyable = [why for _, e in _entries(spec)
                     for name in matching_types(gpus, _catalog_facts(providers[e["name"]].type,
                                                                     on_demand=False))
                     if (why := purchase_problem(providers[e["name"]].type, name))]
        raise ctx.error((*path, "gpu"), "no provider of this pool offers the requested GPUs"
                        + (" on-demand: " + "; ".join(unbuyable) if unbuyable else ""))
    return out


def _zones_in(region: str, zones: list[str], ctx: Context, where: tuple) -> list[str]:
    if not zones:
        return [""]
    inside = [z for z in zones if z.startswith(region)]
    if not inside:
        raise ctx.error(where, f"none of the zones {', '.join(zones)} is in region {region}")
    return inside


def _gpu_specs(spec: dict[str, Any], ctx: Context, path: tuple) -> list[Any]:
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
           gpus: list[Any], ctx: Context, where: tuple) -> list[str]:
    wanted = entry.get("instance_type") or spec.get("instance_type")
    if wanted:
        pool = where[:-2] if len(where) > 1 and where[-2] == "providers" else where[:-1]
        key = (*(where if entry.get("instance_type") else pool), "instance_type")
        native = native_type(provider.type, wanted)
        if native is None:
            raise ctx.error(key, f"{wanted!r} has no {provider.type} equivalent; name a "
                            "native instance type instead")
        # A pool buys on-demand: a type the cloud sells only otherwise would fail every
        # launch, so it fails here, saying how it can be bought.
        if (why := purchase_problem(provider.type, native)) is not None:
            meaning = f"{wanted} means {native} on {provider.name}; " if wanted != native else ""
            raise ctx.error(key, meaning + why)
        return [native]
    return matching_types(gpus, _catalog_facts(provider.type))


def _catalog_facts(provider_type: str, on_demand: bool = True) -> list[Any]:
    """The shipped catalog's types for a cloud (those a pool can buy: on-demand); plugin
    clouds have none (name a type)."""
    try:
        return [f for f in cloud_table(provider_type).types.values()
                if ON_DEMAND in f.purchase or not on_demand]
    except KeyError:
        return []

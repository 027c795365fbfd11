"""Where a pool's nodes may run: its providers list expanded into placements
(provider, region, zone, instance type), with GPU specs resolved against the catalog.
Pure; strategies order these later, at plan time, with live prices."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from navarch_plan.catalog.facts import cloud_table, native_type
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
        raise ctx.error((*path, "gpu"), "no provider of this pool offers the requested GPUs")
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
        native = native_type(provider.type, wanted)
        if native is None:
            key = (*where, "instance_type") if entry.get("instance_type") else where
            raise ctx.error(key, f"{wanted!r} has no {provider.type} equivalent; name a "
                            "native instance type instead")
        return [native]
    return matching_types(gpus, _catalog_facts(provider.type))


def _catalog_facts(provider_type: str) -> list[Any]:
    """The shipped catalog's types for a cloud; plugin clouds have none (use a type)."""
    try:
        return list(cloud_table(provider_type).types.values())
    except KeyError:
        return []

"""Schema-valid config data -> groups and desired nodes, with the cross-checks a
schema cannot express: unknown providers, references, depends_on cycles."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from navarch_plan.config.desired import REF_FIELDS, DesiredNode, Group, find_refs
from navarch_plan.config.placements import placements_of
from navarch_plan.model import named_address, pool_address

if TYPE_CHECKING:
    from navarch_plan.config.types import Context, ProviderConfig

__all__ = ["build_desired"]

MAX_TOTAL_NODES = 100_000


def build_desired(data: dict[str, Any], providers: Mapping[str, ProviderConfig], ctx: Context,
                  known_types: frozenset[str]) -> tuple[dict[str, Group], dict[str, DesiredNode]]:
    for name, provider in providers.items():
        if provider.type not in known_types:
            known = ", ".join(sorted(known_types))
            raise ctx.error(("providers", name, "type"),
                            f"unknown provider type {provider.type!r} (known: {known})")
    specs = _group_specs(data, ctx)
    total = sum(spec.get("nodes", 1) for _, _, spec in specs)
    if total > MAX_TOTAL_NODES:
        raise ctx.error(("pools",), f"{total} nodes in all; the limit is {MAX_TOTAL_NODES}")
    counts = {name: spec.get("nodes", 1) for _, name, spec in specs}
    groups: dict[str, Group] = {}
    desired: dict[str, DesiredNode] = {}
    defaults = data.get("defaults", {})
    for kind, name, spec in specs:
        path = ("pools" if kind == "pool" else "nodes", name)
        _check_providers(spec, providers, ctx, path)
        ref_deps = _check_refs(spec.get("user_data", ""), counts, ctx, path)
        groups[name] = _group(kind, name, spec, ref_deps, counts, ctx, path)
        for node in _nodes_of(kind, name, spec, providers, defaults, ctx, path):
            desired[node.address] = node
    _check_cycles(groups, ctx)
    return groups, desired


def _group_specs(data: dict[str, Any], ctx: Context) -> list[tuple[str, str, dict[str, Any]]]:
    specs = [("pool", n, s) for n, s in data.get("pools", {}).items()]
    for name, spec in data.get("nodes", {}).items():
        if name in data.get("pools", {}):
            raise ctx.error(("nodes", name), f"{name!r} is already the name of a pool; "
                            "pools and named nodes share one namespace for depends_on")
        specs.append(("node", name, spec))
    return specs


def _check_providers(spec: dict[str, Any], providers: Mapping[str, ProviderConfig],
                     ctx: Context, path: tuple) -> None:
    """Every provider the pool names exists, and is named once."""
    entries = spec.get("providers", [])
    if "provider" in spec and entries:
        raise ctx.error((*path, "providers"), "give either provider or providers, not both")
    if "provider" not in spec and not entries:
        raise ctx.error(path, "no provider: set provider (or providers)")
    named = ([((*path, "provider"), spec["provider"])] if "provider" in spec else
             [((*path, "providers", i, "name"), e["name"]) for i, e in enumerate(entries)])
    for where, name in named:
        if name not in providers:
            known = ", ".join(sorted(providers)) or "none are configured"
            raise ctx.error(where, f"unknown provider {name!r} (known: {known})")
    if len({name for _, name in named}) < len(named):
        raise ctx.error((*path, "providers"), "a provider is listed twice; give it several "
                        "regions instead")


def _check_refs(user_data: str, counts: Mapping[str, int], ctx: Context, path: tuple) -> set[str]:
    deps = set()
    for ref in find_refs(user_data):
        where = (*path, "user_data")
        if ref.group not in counts:
            raise ctx.error(where, f"{ref.text} refers to unknown pool or node {ref.group!r}")
        if ref.address.startswith("pool.") and ref.address.startswith(f"pool.{ref.group}["):
            index = int(ref.address.rsplit("[", 1)[1].rstrip("]"))
            if index >= counts[ref.group]:
                raise ctx.error(where, f"{ref.text}: {ref.group} has {counts[ref.group]} nodes")
        if ref.field not in REF_FIELDS:
            raise ctx.error(where, f"{ref.text}: unknown field {ref.field!r} "
                            f"(one of {', '.join(REF_FIELDS)})")
        deps.add(ref.group)
    return deps


def _group(kind: str, name: str, spec: dict[str, Any], ref_deps: set[str],
           counts: Mapping[str, int], ctx: Context, path: tuple) -> Group:
    depends_on = list(spec.get("depends_on", []))
    for i, dep in enumerate(depends_on):
        if dep not in counts:
            raise ctx.error((*path, "depends_on", i), f"depends_on names unknown pool or node "
                            f"{dep!r}")
    if name in ref_deps:
        raise ctx.error((*path, "user_data"), f"{name} cannot refer to itself")
    if name in depends_on:
        raise ctx.error((*path, "depends_on"), f"{name} cannot depend on itself")
    lifecycle = spec.get("lifecycle", {})
    return Group(
        name=name, kind=kind, count=counts[name],
        depends_on=tuple(sorted(set(depends_on) | ref_deps)),
        prevent_destroy=lifecycle.get("prevent_destroy", False),
        replace_mode=lifecycle.get("replace", "create_before_destroy"),
        max_parallel_terminations=spec.get("max_parallel_terminations"),
        max_hourly_cost=spec.get("max_hourly_cost"),
    )


def _nodes_of(kind: str, name: str, spec: dict[str, Any],
              providers: Mapping[str, ProviderConfig], defaults: dict[str, Any], ctx: Context,
              path: tuple) -> list[DesiredNode]:
    placements = placements_of(spec, providers, defaults, ctx, path)
    labels = {**defaults.get("labels", {}), **spec.get("labels", {})}
    ssh_keys = tuple(spec.get("ssh_keys", defaults.get("ssh_keys", [])))
    keys_at = ((*path, "ssh_keys") if "ssh_keys" in spec
               else ("defaults", "ssh_keys") if "ssh_keys" in defaults else path)
    for placement in placements:
        _check_cloud_rules(providers[placement.provider], ssh_keys, placement.zone, keys_at,
                           ctx, path)
        if providers[placement.provider].type == "lambda":
            _check_lambda_tags(labels, spec, ctx, path)
    user_data = spec.get("user_data", "")
    addresses = ([pool_address(name, i) for i in range(spec["nodes"])] if kind == "pool"
                 else [named_address(name)])
    candidates, refs = tuple(placements), tuple(find_refs(user_data))
    strategy = spec.get("strategy", "priority")
    if not addresses:  # nodes: 0
        return []
    first = DesiredNode(
        address=addresses[0], group=name, index=0 if kind == "pool" else None,
        ssh_keys=ssh_keys, labels=labels, user_data=user_data,
        candidates=candidates, refs=refs, strategy=strategy,
    )
    # The pool's other nodes differ from the first only in address and index.
    return [first, *(first.at(address, i) for i, address in enumerate(addresses) if i)]


def _check_cloud_rules(provider: ProviderConfig, ssh_keys: tuple[str, ...], zone: str,
                       keys_at: tuple, ctx: Context, path: tuple) -> None:
    """What a cloud would refuse at launch, refused at load: no launch slot is wasted."""
    if provider.type == "lambda":
        if len(ssh_keys) != 1:
            raise ctx.error(keys_at, f"Lambda Cloud launches take exactly one SSH key name; "
                            f"{len(ssh_keys)} given")
        if zone:
            raise ctx.error(path, "Lambda Cloud has no zones: leave zone out")
    if provider.type == "gcp" and not zone:
        raise ctx.error(path, "Compute Engine needs a zone (zone: us-central1-a)")


# Lambda Cloud's tag rules (its launch spec): keys ^[a-z][a-z0-9-:]+$, at most 55
# characters; values at most 128.
_LAMBDA_TAG_KEY = re.compile(r"^[a-z][a-z0-9-:]{1,54}$")


def _check_lambda_tags(labels: Mapping[str, str], spec: dict[str, Any], ctx: Context,
                       path: tuple) -> None:
    for key, value in labels.items():
        if not _LAMBDA_TAG_KEY.match(key) or len(str(value)) > 128:
            where = ((*path, "labels", key) if key in spec.get("labels", {})
                     else ("defaults", "labels", key))
            raise ctx.error(where, f"label {key}={value!r} breaks Lambda Cloud's tag rules "
                            "(keys: a lowercase letter, then lowercase letters, digits, '-' "
                            "or ':', at most 55 characters; values at most 128)")


def _check_cycles(groups: Mapping[str, Group], ctx: Context) -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*trail[trail.index(name):], name])
            group = groups[trail[-1]]
            kind = "pools" if group.kind == "pool" else "nodes"
            raise ctx.error((kind, group.name, "depends_on"), f"dependency cycle: {cycle}")
        state[name] = 1
        for dep in groups[name].depends_on:
            visit(dep, [*trail, name])
        state[name] = 2

    for name in groups:
        visit(name, [])

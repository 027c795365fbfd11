"""Schema-valid config data -> groups and desired nodes, with the cross-checks a
schema cannot express: unknown providers, references, depends_on cycles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from navarch_plan.config.desired import REF_FIELDS, DesiredNode, Group, Placement, find_refs
from navarch_plan.config.placements import placements_of
from navarch_plan.config.schema import launch_validator, plain_message
from navarch_plan.config.yamlpos import Path as KeyPath
from navarch_plan.errors import ConfigError
from navarch_plan.model import named_address, pool_address
from navarch_plan.providers.base import NodeFacts, NodeProblem, ProviderType
from navarch_plan.words import did_you_mean, plural

if TYPE_CHECKING:
    from navarch_plan.config.types import Context, ProviderConfig

__all__ = ["Desired", "build_desired"]

MAX_TOTAL_NODES = 100_000


class Desired(NamedTuple):
    """What a config's pools and nodes come to: the groups and nodes that could be built,
    and the errors of those that could not. With errors, the groups and nodes are only
    the part that resolved: validate checks them against the catalogs in the same run."""

    groups: dict[str, Group]
    desired: dict[str, DesiredNode]
    errors: list[ConfigError]


def build_desired(data: dict[str, Any], providers: Mapping[str, ProviderConfig], ctx: Context,
                  types: Mapping[str, ProviderType], public_keys: Mapping[str, str] | None = None
                  ) -> Desired:
    """`public_keys`: ssh_public_keys, name -> key text or .pub path. Independent errors
    (each provider's type, each pool's or node's references and own checks) are all
    returned; a pool whose providers resolved still gets its nodes built when its
    references did not, so that its own checks run too."""
    errors = [ctx.error(("providers", name, "type"), f"unknown provider type "
                        f"{provider.type!r}{did_you_mean(provider.type, types)} "
                        f"(known: {', '.join(sorted(types))})")
              for name, provider in providers.items() if provider.type not in types]
    untyped = {name for name, p in providers.items() if p.type not in types}
    specs = _group_specs(data, ctx)
    total = sum(spec.get("nodes", 1) for _, _, spec in specs)
    if total > MAX_TOTAL_NODES:
        raise ctx.error(("pools",), f"{total} nodes in all; the limit is {MAX_TOTAL_NODES}")
    counts = {name: spec.get("nodes", 1) for _, name, spec in specs}
    built = Desired({}, {}, errors)
    for kind, name, spec in specs:
        path = ("pools" if kind == "pool" else "nodes", name)
        _add_group(built, kind, name, spec, counts, ctx, path)
        try:
            _check_providers(spec, providers, ctx, path)
        except ConfigError as exc:
            built.errors.append(exc)
            continue  # a provider it names does not exist: no candidates to build
        if untyped & _provider_names(spec):
            continue  # its provider's type is unknown: said above
        try:
            nodes = _nodes_of(kind, name, spec, providers, types, data.get("defaults", {}),
                              ctx, path, public_keys or {})
        except ConfigError as exc:
            built.errors.append(exc)
            continue
        built.desired.update((node.address, node) for node in nodes)
    try:
        _check_cycles(built.groups, ctx)
    except ConfigError as exc:
        built.errors.append(exc)
    return built


def _add_group(built: Desired, kind: str, name: str, spec: dict[str, Any],
               counts: Mapping[str, int], ctx: Context, path: KeyPath) -> None:
    """The pool's group, or its reference errors (user_data's and depends_on's)."""
    try:
        ref_deps = _check_refs(spec.get("user_data", ""), counts, ctx, path)
    except ConfigError as exc:
        built.errors.append(exc)
        ref_deps = set()
    try:
        built.groups[name] = _group(kind, name, spec, ref_deps, counts, ctx, path)
    except ConfigError as exc:
        built.errors.append(exc)


def _provider_names(spec: dict[str, Any]) -> set[str]:
    return ({spec["provider"]} if "provider" in spec else set()) | {
        e["name"] for e in spec.get("providers", [])}


def _group_specs(data: dict[str, Any], ctx: Context) -> list[tuple[str, str, dict[str, Any]]]:
    specs = [("pool", n, s) for n, s in data.get("pools", {}).items()]
    for name, spec in data.get("nodes", {}).items():
        if name in data.get("pools", {}):
            raise ctx.error(("nodes", name), f"{name!r} is already the name of a pool; "
                            "pools and named nodes share one namespace for depends_on")
        specs.append(("node", name, spec))
    return specs


def _check_providers(spec: dict[str, Any], providers: Mapping[str, ProviderConfig],
                     ctx: Context, path: KeyPath) -> None:
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
            raise ctx.error(where, f"unknown provider {name!r}"
                            f"{did_you_mean(name, providers)} (known: {known})")
    if len({name for _, name in named}) < len(named):
        raise ctx.error((*path, "providers"), "a provider is listed twice; give it several "
                        "regions instead")


def _check_refs(user_data: str, counts: Mapping[str, int], ctx: Context, path: KeyPath) -> set[str]:
    deps = set()
    for ref in find_refs(user_data):
        where = (*path, "user_data")
        if ref.group not in counts:
            raise ctx.error(where, f"{ref.text} refers to unknown pool or node "
                            f"{ref.group!r}{did_you_mean(ref.group, counts)}")
        if ref.address.startswith("pool.") and ref.address.startswith(f"pool.{ref.group}["):
            index = int(ref.address.rsplit("[", 1)[1].rstrip("]"))
            if index >= counts[ref.group]:
                raise ctx.error(where, f"{ref.text}: {ref.group} has "
                                f"{plural(counts[ref.group], 'node')}")
        if ref.field not in REF_FIELDS:
            raise ctx.error(where, f"{ref.text}: unknown field {ref.field!r} "
                            f"(one of {', '.join(REF_FIELDS)})")
        deps.add(ref.group)
    return deps


def _group(kind: str, name: str, spec: dict[str, Any], ref_deps: set[str],
           counts: Mapping[str, int], ctx: Context, path: KeyPath) -> Group:
    depends_on = list(spec.get("depends_on", []))
    for i, dep in enumerate(depends_on):
        if dep not in counts:
            raise ctx.error((*path, "depends_on", i), f"depends_on names unknown pool or node "
                            f"{dep!r}{did_you_mean(dep, counts)}")
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
              providers: Mapping[str, ProviderConfig], types: Mapping[str, ProviderType],
              defaults: dict[str, Any], ctx: Context, path: KeyPath,
              public_keys: Mapping[str, str]) -> list[DesiredNode]:
    placements = placements_of(spec, providers, defaults, ctx, path, types)
    labels = {**defaults.get("labels", {}), **spec.get("labels", {})}
    ssh_keys = tuple(spec.get("ssh_keys", defaults.get("ssh_keys", [])))
    keys = {k: public_keys[k] for k in ssh_keys if k in public_keys}
    user_data = spec.get("user_data", "")
    for placement in placements:
        facts = NodeFacts(region=placement.region, zone=placement.zone,
                          instance_type=placement.instance_type, ssh_keys=ssh_keys,
                          labels=labels, user_data=user_data, ssh_public_keys=frozenset(keys),
                          reservation=placement.reservation)
        provider = providers[placement.provider]
        if placement.launch_json:
            _check_launch(placement, types[provider.type], spec, ctx, path)
        # The options this candidate launches with: the provider's, under the pool's.
        options = {**provider.options, **placement.launch}
        for problem in types[provider.type].check_node(options, facts):
            raise ctx.error(_problem_path(problem, provider, placement, spec, defaults, path),
                            problem.message)
    addresses = ([pool_address(name, i) for i in range(spec["nodes"])] if kind == "pool"
                 else [named_address(name)])
    candidates, refs = tuple(placements), tuple(find_refs(user_data))
    strategy = spec.get("strategy", "priority")
    if not addresses:  # nodes: 0
        return []
    first = DesiredNode(
        address=addresses[0], group=name, index=0 if kind == "pool" else None,
        ssh_keys=ssh_keys, labels=labels, user_data=user_data,
        candidates=candidates, refs=refs, strategy=strategy, public_keys=keys,
    )
    # The pool's other nodes differ from the first only in address and index.
    return [first, *(first.at(address, i) for i, address in enumerate(addresses) if i)]


def _check_launch(placement: Placement, kind: ProviderType, spec: dict[str, Any],
                  ctx: Context, path: KeyPath) -> None:
    """A pool's launch overrides: only options the candidate's type lets a pool set."""
    for error in launch_validator(kind).iter_errors(placement.launch):
        key = str(error.path[0]) if error.path else ""
        if not key:  # an unknown option: additionalProperties names none in the path
            key = next(k for k in placement.launch if k not in kind.launch_options)
            allowed = ", ".join(sorted(kind.launch_options)) or "none"
            message = (f"{key!r} is not a launch option of {kind.title} provider "
                       f"{placement.provider!r} (a pool may set: {allowed})")
        else:
            message = plain_message(error)
        raise ctx.error(_launch_path(placement, spec, path, key), message)


def _launch_path(placement: Placement, spec: dict[str, Any], path: KeyPath,
                 key: str) -> KeyPath:
    """Where a pool sets launch option `key`: its providers entry's `launch`, else its own."""
    entry = spec.get("providers", [{}])[placement.entry] if spec.get("providers") else {}
    return ((*path, "providers", placement.entry, "launch", key)
            if key in entry.get("launch", {}) else (*path, "launch", key))


def _problem_path(problem: NodeProblem, provider: ProviderConfig, placement: Placement,
                  spec: dict[str, Any], defaults: dict[str, Any], path: KeyPath) -> KeyPath:
    """Where in the file a provider type's objection points: the option it lacks (where
    the pool overrides it, else in the provider), else the node's key (in the node, else
    in `defaults`), else the node itself."""
    if problem.option:
        head, *rest = problem.option.split(".")
        if head in placement.launch:
            return (*_launch_path(placement, spec, path, head), *rest)
        return ("providers", provider.name, head, *rest)
    keys = tuple(problem.field.split(".", 1)) if problem.field else ()
    if keys and _has(spec, keys):
        return (*path, *keys)
    if keys and _has(defaults, keys):
        return ("defaults", *keys)
    return path


def _has(data: dict[str, Any], keys: tuple[str, ...]) -> bool:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return False
        data = data[key]
    return True


def _check_cycles(groups: Mapping[str, Group], ctx: Context) -> None:
    """The first depends_on cycle among the groups (which may be only those that built)."""
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
            if dep in groups:  # else its pool had errors of its own, reported apart
                visit(dep, [*trail, name])
        state[name] = 2

    for name in groups:
        visit(name, [])

"""The plan's dependency graph and scoping (--target / --exclude). Pure.

Edges join phases: `build:<group>` (its creates, replaces and adoptions) and
`delete:<group>` (its deletes). An edge (first, then) means every action of `then`
starts only after every action of `first` succeeded:
- a group's builds wait for the builds of the groups it depends on;
- deletions run in reverse: a group's deletes wait for its dependents' deletes.
Create-before-destroy inside one replacement, and per-pool disruption budgets, are
the executor's business: they are not edges between actions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from navarch_plan.config.desired import Group
from navarch_plan.errors import PlanError
from navarch_plan.plan import Action, ActionKind

if TYPE_CHECKING:
    from navarch_plan.planner.inputs import PlanOptions

__all__ = ["build_edges", "closure", "phase_for", "phase_of", "scope_actions", "dependents_of",
           "dependencies_of", "in_scope"]

_BUILDS = (ActionKind.CREATE, ActionKind.REPLACE)
# An adoption fills an address that references may read: dependents wait for it too.
_FILLS = (*_BUILDS, ActionKind.ADOPT)


def phase_of(action: Action) -> str | None:
    """The phase an action belongs to: edges join phases, not single actions, so a pool
    of thousands depending on another costs one edge, not millions."""
    return phase_for(action.action, action.group)


def phase_for(kind: ActionKind, group: str) -> str | None:
    """The phase of an action of this kind in this group (None: it waits for nothing)."""
    if kind in _FILLS:
        return f"build:{group}"
    if kind == ActionKind.DELETE:
        return f"delete:{group}"
    return None


def build_edges(actions: Sequence[Action], groups: Mapping[str, Group]
                ) -> tuple[tuple[str, str], ...]:
    phases = {phase_of(a) for a in actions}
    edges: list[tuple[str, str]] = []
    for name, group in groups.items():
        for dep in group.depends_on:
            # Build dependencies first; delete dependents first.
            for first, then in ((f"build:{dep}", f"build:{name}"),
                                (f"delete:{name}", f"delete:{dep}")):
                if first in phases and then in phases:
                    edges.append((first, then))
    return tuple(edges)


def closure(start: Iterable[str], step: Mapping[str, Iterable[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(step.get(name, ()))
    return seen


def dependencies_of(names: Iterable[str], groups: Mapping[str, Group]) -> set[str]:
    return closure(names, {n: g.depends_on for n, g in groups.items()})


def dependents_of(names: Iterable[str], groups: Mapping[str, Group]) -> set[str]:
    reverse: dict[str, list[str]] = {}
    for name, group in groups.items():
        for dep in group.depends_on:
            reverse.setdefault(dep, []).append(name)
    return closure(names, reverse)


def _matches(action: Action, selector: str) -> bool:
    if action.address == selector or action.key == selector:
        return True
    return selector.startswith(("pool.", "node.")) and "[" not in selector and \
        action.group == selector.split(".", 1)[1]


def scope_actions(actions: list[Action], groups: Mapping[str, Group], options: PlanOptions
                  ) -> tuple[list[Action], list[str]]:
    """Keep what --target asks for plus its dependencies; drop --exclude and its
    dependents. Returns the kept actions and the warnings a partial plan carries."""
    warnings: list[str] = []
    if options.target:
        picked = [a for a in actions if any(_matches(a, t) for t in options.target)]
        _check_selectors(options.target, actions, groups, "--target")
        needed = dependencies_of({a.group for a in picked}, groups) - {a.group for a in picked}
        picked_keys = {a.key for a in picked}
        actions = [a for a in actions if a.key in picked_keys or
                   (a.group in needed and a.action in _BUILDS)]
        warnings.append("partial plan: only " + ", ".join(options.target) +
                        " (and what it depends on) were considered; the rest may differ")
    if options.exclude:
        _check_selectors(options.exclude, actions, groups, "--exclude")
        dropped_groups = dependents_of(
            {a.group for a in actions if any(_matches(a, x) for x in options.exclude)}, groups)
        actions = [a for a in actions if not any(_matches(a, x) for x in options.exclude)
                   and not (a.group in dropped_groups and a.action in _BUILDS)]
        warnings.append("partial plan: " + ", ".join(options.exclude) +
                        " (and what depends on it) were left out")
    return actions, warnings


def in_scope(address: str, group: str, groups: Mapping[str, Group],
             options: Mapping[str, Any]) -> bool:
    """Whether a desired address is part of a plan scoped by `options` (its JSON form):
    named by --target or a dependency of what is, and not named by --exclude nor a
    dependent of what is."""
    def named(selector: str) -> bool:
        return address == selector or (selector.startswith(("pool.", "node."))
                                       and "[" not in selector
                                       and group == selector.split(".", 1)[1])

    targets, excludes = options.get("target") or [], options.get("exclude") or []
    if targets and not any(named(t) for t in targets):
        picked = {t.split(".", 1)[-1].split("[", 1)[0] for t in targets}
        if group not in dependencies_of(picked, groups) - picked:
            return False
    # As scope_actions: excluding any node of a group drops the builds of that group
    # and of every group that depends on it.
    dropped = {x.split(".", 1)[-1].split("[", 1)[0] for x in excludes}
    return not any(named(x) for x in excludes) and group not in dependents_of(dropped, groups)


def _check_selectors(selectors: Sequence[str], actions: Sequence[Action],
                     groups: Mapping[str, Group], flag: str) -> None:
    for selector in selectors:
        if not selector.startswith(("pool.", "node.")):
            raise PlanError(f"{flag} {selector}: expected pool.NAME, pool.NAME[i] or node.NAME")
        name = selector.split(".", 1)[1].split("[", 1)[0]
        if name not in groups and not any(_matches(a, selector) for a in actions):
            raise PlanError(f"{flag} {selector}: no such pool or node")

"""A plan's apply DAG as Graphviz DOT (`navarch graph`), made from the plan's JSON form.

Apply orders phases, not single actions: each pool's or node's builds (create, replace,
adopt) form one phase and its deletes another; `depends_on` (and `${...}` references)
join phases (builds of a dependency first, deletes of a dependent first). So each
phase is a cluster of its actions, and an edge joins two clusters (drawn between their
first actions, clipped to the clusters: `compound=true`). Actions outside any phase
(update, forget) wait for nothing."""

from __future__ import annotations

from typing import Any

from navarch_plan.plan import ActionKind
from navarch_plan.planner.graph import phase_for
from navarch_plan.render.text import symbol

__all__ = ["render_plan_dot"]


def _id(text: str) -> str:
    """A DOT quoted ID: backslashes and quotes escaped, line breaks as \\n."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _node(action: dict[str, Any], indent: str) -> str:
    label = f"{symbol(action)} {action['address']}\n{action['action']} ({action['reason']})"
    return f"{indent}{_id(action['key'])} [label={_id(label)}];"


def render_plan_dot(document: dict[str, Any]) -> str:
    phases: dict[str, list[dict[str, Any]]] = {}
    loose: list[dict[str, Any]] = []
    for action in document["actions"]:
        phase = phase_for(ActionKind(action["action"]), action["group"])
        (phases.setdefault(phase, []) if phase else loose).append(action)
    lines = ["digraph navarch_plan {", "  compound=true;", "  rankdir=LR;",
             '  node [shape=box, fontname="monospace"];']
    for phase, actions in phases.items():
        step, group = phase.split(":", 1)
        lines += [f"  subgraph {_id('cluster_' + phase)} {{",
                  f"    label={_id(f'{step} {group}')};",
                  *(_node(a, "    ") for a in actions), "  }"]
    lines += [_node(a, "  ") for a in loose]
    for first, then in document["edges"]:
        if first in phases and then in phases:
            lines.append(f"  {_id(phases[first][0]['key'])} -> {_id(phases[then][0]['key'])} "
                         f"[ltail={_id('cluster_' + first)}, lhead={_id('cluster_' + then)}];")
    return "\n".join([*lines, "}"])

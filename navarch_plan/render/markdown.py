"""The Markdown rendering of a plan, for a pull-request comment. Made from the JSON form
only, like the terminal rendering, so the two can never disagree."""

from __future__ import annotations

from typing import Any

from navarch_plan.plan import describe_label_changes
from navarch_plan.render.text import cost_change, money, sensitive, summary_line, symbol

__all__ = ["render_plan_markdown", "render_drift_markdown", "render_unsettled_markdown",
           "FOLD_AFTER"]

FOLD_AFTER = 10  # a pool with more rows than this is folded in <details>


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _cost_delta(cost: dict[str, Any]) -> str:
    return cost_change(cost, "→", "/h") if cost else "unknown"


def _headline(plan: dict[str, Any]) -> list[str]:
    workspace = plan["workspace"]
    if not plan["actions"]:
        title = "No changes" if not plan["options"].get("refresh_only") else "Refresh only"
        return [f"### navarch plan for `{workspace}`: {title}", "",
                f"{plan['no_changes_reason']}."]
    return [f"### navarch plan for `{workspace}`", "",
            f"**{summary_line(plan['summary'])}** Hourly cost: {_cost_delta(plan['cost'])}"]


def _warnings(plan: dict[str, Any]) -> list[str]:
    lines = [f"> [!WARNING]\n> {w}" for w in plan["warnings"]]
    if plan["drift"]:
        lines.append(f"> [!NOTE]\n> {len(plan['drift'])} object(s) changed outside of "
                     "navarch: see Drift below.")
    return lines


def _action_row(action: dict[str, Any]) -> str:
    where = f"{action['provider']}/{action['region']}" + (
        f"/{action['zone']}" if action.get("zone") else "")
    cost = action.get("cost_after") if action["action"] != "delete" else action.get(
        "cost_before")
    sign = "-" if action["action"] == "delete" else ""
    cost_text = "unknown" if cost is None else f"{sign}{money(cost)}/h"
    changes = "<br>".join(_changes(action)) or ""
    return (f"| `{symbol(action)}` | `{_cell(action['address'])}` | {action['action']} | "
            f"{action['reason']} | {_cell(where)} | `{_cell(action['instance_type'])}` | "
            f"{cost_text} | {_cell(changes)} |")


def _changes(action: dict[str, Any]) -> list[str]:
    before, after = action.get("before") or {}, action.get("after") or {}
    out = []
    for name in action.get("changed", []):
        if name == "user_data":
            out.append(f"user_data: {sensitive(before.get('user_data_sha256'))} → "
                       f"{sensitive(after.get('user_data_sha256'))}")
        else:
            out.append(f"{name}: `{before.get(name)}` → `{after.get(name)}`")
    changes = describe_label_changes(action.get("label_changes", []))
    out += ["labels:", *changes] if changes else []
    if action.get("detail"):
        out.append(action["detail"])
    return out


_HEADER = ["| | address | action | reason | where | type | cost | changes |",
           "|---|---|---|---|---|---|---|---|"]


def _groups(actions: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for action in actions:
        groups.setdefault(action["group"] or "(no address)", []).append(action)
    return list(groups.items())


def _group_section(name: str, actions: list[dict[str, Any]]) -> list[str]:
    table = [*_HEADER, *(_action_row(a) for a in actions)]
    kinds = ", ".join(f"{sum(a['action'] == k for a in actions)} {k}"
                      for k in ("create", "update", "replace", "delete", "adopt", "forget")
                      if any(a["action"] == k for a in actions))
    title = f"#### `{name}`: {kinds}"
    if len(actions) <= FOLD_AFTER:
        return [title, "", *table, ""]
    return [title, "", f"<details><summary>{len(actions)} actions</summary>", "", *table,
            "", "</details>", ""]


def render_drift_markdown(drift: list[dict[str, Any]]) -> list[str]:
    if not drift:
        return []
    rows = [f"| `{_cell(d['address'])}` | {d['kind']} | {_cell(d['detail'])} |" for d in drift]
    table = ["| address | kind | detail |", "|---|---|---|", *rows]
    if len(rows) > FOLD_AFTER:
        table = [f"<details><summary>{len(rows)} drift items</summary>", "", *table, "",
                 "</details>"]
    return ["#### Drift: objects changed outside of navarch", "", *table, ""]


def render_unsettled_markdown(unsettled: list[dict[str, Any]]) -> list[str]:
    if not unsettled:
        return []
    rows = [f"| `{_cell(u['address'])}` | {u['kind'].replace('_', ' ')} | "
            f"{_cell(u['detail'])} |" for u in unsettled]
    table = ["| address | why | detail |", "|---|---|---|", *rows]
    if len(rows) > FOLD_AFTER:
        table = [f"<details><summary>{len(rows)} addresses</summary>", "", *table, "",
                 "</details>"]
    return ["", "#### No action this run: the clouds cannot yet tell what is there", "",
            *table, ""]


def render_plan_markdown(plan: dict[str, Any]) -> str:
    lines = [*_headline(plan), ""]
    lines += [*_warnings(plan), ""] if plan["warnings"] or plan["drift"] else []
    for name, actions in _groups(plan["actions"]):
        lines += _group_section(name, actions)
    lines += render_drift_markdown(plan["drift"])
    for intent in plan["intents"]:
        lines.append(f"- Interrupted provision of `{intent['address']}`: {intent['outcome']}")
    lines += render_unsettled_markdown(plan.get("unsettled", []))
    against = plan["planned_against"]
    lines += ["", f"<sub>Planned against state serial {against['serial']} (lineage "
              f"`{against['lineage'][:8]}`), config `{against['config_hash'][7:19]}`. "
              f"Plan checksum `{plan['checksum'][7:19]}`.</sub>", ""]
    return "\n".join(lines)

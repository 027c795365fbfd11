"""The Markdown rendering of a plan, for a pull-request comment. Made from the JSON form
only, like the terminal rendering, so the two can never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from navarch_plan.plan import describe_label_changes, spec_change_rows
from navarch_plan.render.text import (
    cost_change,
    money,
    sensitive,
    shown_value,
    spot_mark,
    summary_line,
    symbol,
)
from navarch_plan.words import plural

__all__ = ["render_plan_markdown", "render_drift_markdown", "render_unsettled_markdown",
           "FOLD_AFTER", "MAX_CHARS"]

FOLD_AFTER = 10  # a pool with more rows than this is folded in <details>
# GitHub refuses a comment over 65,536 characters; this leaves room for the sticky
# comment's marker and a workflow's own lines around the plan.
MAX_CHARS = 60_000


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    """A spec value in a table cell: a string as it is, anything else as text shows it."""
    if value is None:
        return "(none)"
    return f"`{value if isinstance(value, str) else shown_value(value)}`"


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
        lines.append(f"> [!NOTE]\n> {plural(len(plan['drift']), 'object')} changed outside of "
                     "navarch: see Drift below.")
    return lines


def _action_row(action: dict[str, Any]) -> str:
    where = f"{action['provider']}/{action['region']}" + (
        f"/{action['zone']}" if action.get("zone") else "")
    cost = action.get("cost_after") if action["action"] != "delete" else action.get(
        "cost_before")
    sign = "-" if action["action"] == "delete" else ""
    cost_text = "unknown" if cost is None else f"{sign}{money(cost)}/h"
    if cost == 0 and spot_mark(action) == " (reserved)":
        cost_text += " (reserved)"  # a reservation is paid for anyway: 0 marginal
    if action["action"] in ("adopt", "forget"):  # bills already, or no longer
        cost_text = "$0.00/h change"
    changes = "<br>".join(_changes(action)) or ""
    return (f"| `{symbol(action)}` | `{_cell(action['address'])}` | {action['action']} | "
            f"{action['reason']} | {_cell(where)} | `{_cell(action['instance_type'])}`"
            f"{spot_mark(action)} | "
            f"{cost_text} | {_cell(changes)} |")


def _changes(action: dict[str, Any]) -> list[str]:
    out = []
    for name, was, now in spec_change_rows(action):
        if name == "user_data":
            out.append(f"user_data: {sensitive(was)} → {sensitive(now)}")
        else:
            out.append(f"{name}: {_code(was)} → {_code(now)}")
    changes = describe_label_changes(action.get("label_changes", []))
    out += ["labels:", *changes] if changes else []
    if action.get("detail"):
        out.append(action["detail"])
    return out


_HEADER = ["| | address | action | reason | where | type | cost | changes |",
           "|---|---|---|---|---|---|---|---|"]
_KINDS = ("create", "update", "replace", "delete", "adopt", "forget")


def _groups(actions: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for action in actions:
        groups.setdefault(action["group"] or "(no address)", []).append(action)
    return list(groups.items())


def _counts(actions: list[dict[str, Any]]) -> str:
    return ", ".join(f"{sum(a['action'] == k for a in actions)} {k}"
                     for k in _KINDS if any(a["action"] == k for a in actions))


@dataclass(frozen=True)
class _Table:
    """One titled table of the details: a pool's actions, the drift, the unsettled.
    `render(shown)` gives it with only its first `shown` rows (a shortened comment)."""

    title: tuple[str, ...]
    header: tuple[str, ...]
    rows: tuple[str, ...]
    noun: str  # what a row is, in the singular: "action", "drift item", "address"

    def render(self, shown: int | None = None) -> list[str]:
        rows = self.rows if shown is None else self.rows[:shown]
        table = [*self.header, *rows]
        more = len(self.rows) - len(rows)
        if more:
            table += ["", f"*{plural(more, 'more ' + self.noun)} not shown.*"]
        if len(self.rows) <= FOLD_AFTER:
            return [*self.title, "", *table, ""]
        label = plural(len(self.rows), self.noun) + (f" ({len(rows)} shown)" if more else "")
        return [*self.title, "", f"<details><summary>{label}</summary>", "", *table, "",
                "</details>", ""]


def _group_table(name: str, actions: list[dict[str, Any]]) -> _Table:
    return _Table((f"#### `{name}`: {_counts(actions)}",), tuple(_HEADER),
                  tuple(_action_row(a) for a in actions), "action")


def _drift_table(drift: list[dict[str, Any]]) -> _Table:
    rows = tuple(f"| `{_cell(d['address'])}` | {d['kind']} | {_cell(d['detail'])} |"
                 for d in drift)
    return _Table(("#### Drift: objects changed outside of navarch",),
                  ("| address | kind | detail |", "|---|---|---|"), rows, "drift item")


def _unsettled_table(unsettled: list[dict[str, Any]]) -> _Table:
    rows = tuple(f"| `{_cell(u['address'])}` | {u['kind'].replace('_', ' ')} | "
                 f"{_cell(u['detail'])} |" for u in unsettled)
    return _Table(("", "#### Left alone this run"),
                  ("| address | why | detail |", "|---|---|---|"), rows, "address")


def render_drift_markdown(drift: list[dict[str, Any]], budget: int | None = None
                          ) -> list[str]:
    """The drift table; with `budget`, only the first rows that fit in that many
    characters, saying how many more there are."""
    if not drift:
        return []
    table = _drift_table(drift)
    return table.render(None if budget is None else _rows_that_fit(table, budget))


def render_unsettled_markdown(unsettled: list[dict[str, Any]]) -> list[str]:
    return _unsettled_table(unsettled).render() if unsettled else []


def _details(plan: dict[str, Any]) -> list[_Table | list[str]]:
    """What follows the headline and warnings, in order: one table per pool, the drift,
    interrupted provisions, the addresses left unsettled."""
    parts: list[_Table | list[str]] = [_group_table(name, actions)
                                        for name, actions in _groups(plan["actions"])]
    parts += [_drift_table(plan["drift"])] if plan["drift"] else []
    parts += [[f"- Interrupted provision of `{i['address']}`: {i['outcome']}"
               for i in plan["intents"]]]
    unsettled = plan.get("unsettled", [])
    return parts + ([_unsettled_table(unsettled)] if unsettled else [])


def _footer(plan: dict[str, Any]) -> list[str]:
    against = plan["planned_against"]
    return ["", f"<sub>Planned against state serial {against['serial']} (lineage "
            f"`{against['lineage'][:8]}`), config `{against['config_hash'][7:19]}`. "
            f"Plan checksum `{plan['checksum'][7:19]}`.</sub>", ""]


def render_plan_markdown(plan: dict[str, Any], limit: int = MAX_CHARS) -> str:
    """The whole plan; when that is longer than `limit` characters, the headline,
    warnings and a per-pool summary first, then as many rows of the details as fit, and
    a note that it was shortened and where the full plan is."""
    head = [*_headline(plan), ""]
    head += [*_warnings(plan), ""] if plan["warnings"] or plan["drift"] else []
    parts = _details(plan)
    body = [line for part in parts
            for line in (part.render() if isinstance(part, _Table) else part)]
    whole = "\n".join([*head, *body, *_footer(plan)])
    if len(whole) <= limit:
        return whole
    return _shortened(plan, head, parts, limit)


def _shortened(plan: dict[str, Any], head: list[str], parts: list[_Table | list[str]],
               limit: int) -> str:
    rows = sum(len(p.rows) for p in parts if isinstance(p, _Table))
    top = [*head, *_pool_summary(plan, limit // 4), ""]
    budget = limit - _length([*top, *_footer(plan)]) - 600  # the note and table wrappers
    kept: list[str] = []
    shown = left_out = 0
    for part in parts:
        if isinstance(part, list):
            if _length(part) <= budget:
                kept, budget = kept + part, budget - _length(part)
            continue
        fit = _rows_that_fit(part, budget)
        if fit:
            section = part.render(fit)
            kept, budget, shown = kept + section, budget - _length(section), shown + fit
        else:
            left_out += 1
    note = ["> [!NOTE]", f"> This plan was shortened to fit a comment ({limit:,} "
            f"characters): {shown:,} of {rows:,} rows are listed below; the summary above "
            "counts them all. The full plan is the saved plan file: `navarch show "
            "PLANFILE` renders it (in CI, the plan artifact of this run).", ""]
    if left_out:
        kept += [f"*{left_out} more tables (pools, drift) not listed: see the summary "
                 "above and the full plan.*", ""]
    return "\n".join([*top, *note, *kept, *_footer(plan)])


def _rows_that_fit(table: _Table, budget: int) -> int:
    """How many of a table's first rows fit in `budget` characters, wrapper included."""
    used = _length(table.render(0)) + 80
    count = 0
    for row in table.rows:
        used += len(row) + 1
        if used > budget:
            break
        count += 1
    return count


def _length(lines: list[str]) -> int:
    return sum(len(line) + 1 for line in lines)


def _pool_summary(plan: dict[str, Any], budget: int) -> list[str]:
    """One row per pool: its actions by kind and its hourly cost before and after."""
    pools = plan["cost"].get("pools", {}) if plan["cost"] else {}
    lines = ["| pool | " + " | ".join(_KINDS) + " | hourly cost |",
             "|---" * (len(_KINDS) + 2) + "|"]
    groups = _groups(plan["actions"])
    for i, (name, actions) in enumerate(groups):
        cost = pools.get(name)
        counts = " | ".join(str(sum(a["action"] == k for a in actions)) for k in _KINDS)
        row = f"| `{_cell(name)}` | {counts} | {_cost_delta(cost) if cost else 'unknown'} |"
        if _length([*lines, row]) > budget:
            lines.append(f"| {len(groups) - i} more pools |" + " |" * (len(_KINDS) + 1))
            break
        lines.append(row)
    return lines

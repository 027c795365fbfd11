"""The terminal rendering of a plan, made from its JSON form only.

Symbols follow Terraform: `+` create, `-` delete, `+/-` replace creating the new node
first, `-/+` replace destroying first; and `<=` adopt (record an existing instance),
`.` forget (drop a record whose instance is already gone), `~` update (labels set in
place; the instance keeps running).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from navarch_plan.config.desired import find_refs
from navarch_plan.plan import describe_label_changes, spec_change_rows
from navarch_plan.words import plural

__all__ = ["render_plan_text", "SYMBOLS", "summary_line", "money", "symbol", "sensitive",
           "shown_value", "spot_mark", "unsettled_lines"]

SYMBOLS = {"create": "+", "delete": "-", "adopt": "<=", "forget": ".", "update": "~"}


def symbol(action: dict[str, Any]) -> str:
    if action["action"] == "replace":
        return "-/+" if action["replace_mode"] == "destroy_before_create" else "+/-"
    return SYMBOLS[action["action"]]


def money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.2f}"


def summary_line(summary: dict[str, int]) -> str:
    """Terraform's line, with navarch's replacements counted apart; updates (Terraform's
    "to change") right after the adds, when there are any."""
    updates = f"{summary['update']} to update, " if summary.get("update") else ""
    line = (f"Plan: {summary['create']} to add, {updates}{summary['replace']} to replace, "
            f"{summary['delete']} to destroy")
    extras = [f"{summary[k]} to {k}" for k in ("adopt", "forget") if summary.get(k)]
    return line + (", " + ", ".join(extras) if extras else "") + "."


def _fields(action: dict[str, Any], building: set[str],
            shown: Mapping[str, str] | None = None) -> list[str]:
    after = action.get("after") or {}
    lines = []
    for name, was, now in spec_change_rows(action):
        if name == "user_data":
            lines.append(f"user_data: {sensitive(was)} -> {sensitive(now)}")
        else:
            lines.append(f"{name}: {shown_value(was)} -> {shown_value(now)}")
    digest = after.get("user_data_sha256")
    if digest and action["action"] in ("create", "replace") \
            and "user_data" not in action.get("changed", []):
        lines.append(f"user_data: {sensitive(digest)}")
    if digest and shown is not None and action["address"] in shown:
        lines.append("user_data (--show-sensitive):")
        lines += [f"  | {line}" for line in shown[action["address"]].splitlines()]
    changes = describe_label_changes(action.get("label_changes", []))
    lines += ["labels:", *[f"  {line}" for line in changes]] if changes else []
    for text in after.get("refs", []):
        if any(ref.address in building for ref in find_refs(text)):
            lines.append(f"user_data: {text} = (known after apply)")
    return lines


def sensitive(digest: Any) -> str:
    """user_data is never shown, only a prefix of its fingerprint: it may hold secrets.
    `hmac:` marks one keyed by the state's secret key; a bare one is a plain sha256
    (written before states had keys)."""
    if not digest:
        return "(none)"
    text = str(digest)
    if text.startswith("hmac:"):
        return f"(sensitive, hmac:{text[5:17]})"
    return f"(sensitive, sha256:{text[:12]})"


def shown_value(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(shown_value(v) for v in value) + "]"
    return str(value)


def _action_lines(action: dict[str, Any], building: set[str],
                  shown: Mapping[str, str] | None = None) -> list[str]:
    where = f"{action['provider']}/{action['region']}" + (
        f"/{action['zone']}" if action.get("zone") else "")
    head = (f"  {symbol(action):>3} {action['address']}  {action['action']} "
            f"({action['reason']})  {where}  {action['instance_type']}"
            f"{spot_mark(action, priced=True)}")
    if action.get("node_id"):
        head += f"  [{action['node_id']}]"
    lines = [head]
    if action.get("detail"):
        lines.append(f"        {action['detail']}")
    lines += [f"        {line}" for line in _fields(action, building, shown)]
    return lines


def spot_mark(action: dict[str, Any], priced: bool = False) -> str:
    """` (spot)` or ` (reserved)` when the instance the action names is (to be) bought
    spot or on a capacity reservation: a create's first candidate, else the recorded
    spec (a reserved node's spec names its reservation). `priced` adds a spot price,
    `(spot $0.30/h)`, or `(spot, price unknown)`: a spot line never shows another price."""
    first = (action.get("candidates") or [{}])[0]
    spec = action.get("after") or action.get("before") or {}
    recorded = spec.get("purchase") or ("reservation" if "reservation" in spec else None)
    purchase = first.get("purchase", recorded)
    if purchase == "reservation":
        return " (reserved)"
    if purchase != "spot":
        return ""
    billed = {"create": "cost_after", "replace": "cost_after", "delete": "cost_before"}
    if not priced or action["action"] not in billed:  # an adopt or update bills as before
        return " (spot)"
    price = action.get(billed[action["action"]])
    return " (spot, price unknown)" if price is None else f" (spot {money(price)}/h)"


def render_plan_text(plan: dict[str, Any], shown: Mapping[str, str] | None = None) -> str:
    """`shown`: user_data by address, printed only when the user asked (--show-sensitive);
    plans never hold it, only its hash."""
    out: list[str] = []
    for warning in plan["warnings"]:
        out.append(f"Warning: {warning}")
    if plan["drift"]:
        out.append("Objects have changed outside of navarch:")
        out += [f"  ! {d['address']}: {d['kind']}: {d['detail']}" for d in plan["drift"]]
        out.append("")
    for intent in plan["intents"]:
        out.append(f"Interrupted provision of {intent['address']} ({intent['name']}): "
                   f"{intent['outcome']}")
    out += unsettled_lines(plan.get("unsettled", []))
    actions = plan["actions"]
    if not actions:
        out.append(_no_changes_line(plan["options"]))
        out.append(f"  ({plan['no_changes_reason']})")
        return "\n".join(out) + "\n"
    building = {a["address"] for a in actions if a["action"] in ("create", "replace")}
    out.append("navarch will perform the following actions:")
    group = None
    for action in actions:
        if action["group"] != group:
            group = action["group"]
            out.append(f"\n  # {_group_title(action)}")
        out += _action_lines(action, building, shown)
    out.append("")
    out.append(summary_line(plan["summary"]))
    out.append(_cost_line(plan["cost"]) + _reserved_words(actions))
    return "\n".join(out) + "\n"


def _no_changes_line(options: dict[str, Any]) -> str:
    if options.get("refresh_only"):
        return "No actions proposed."
    if options.get("target") or options.get("exclude"):
        return ("No changes. The part of your infrastructure this partial plan covers "
                "matches the configuration.")
    return "No changes. Your infrastructure matches the configuration."


def unsettled_lines(unsettled: list[dict[str, Any]]) -> list[str]:
    """Addresses left alone this run, each with why: the clouds cannot say yet (not
    visible, unreadable, settling), or the instance is held (stopped, an unknown status)."""
    if not unsettled:
        return []
    lines = ["Left alone this run (each line says why):"]
    lines += [f"  ? {u['address']}: {u['kind'].replace('_', ' ')}: {u['detail']}"
              for u in unsettled]
    return [*lines, ""]


def _group_title(action: dict[str, Any]) -> str:
    address = action["address"]
    if address.startswith("pool."):
        return f"pool {action['group']}"
    if address.startswith("node."):
        return f"node {action['group']}"
    return "instances with no address"


def cost_change(cost: dict[str, Any], arrow: str = "->", unit: str = "") -> str:
    """`$1.00 -> $2.00 (+$1.00/h)`, `(no change)` when the total stays, with "at least"
    when a price is unknown (and then no claim that nothing changes: an unknown price,
    e.g. a spot node's, may be what changed)."""
    prefix = "" if cost.get("complete", True) else "at least "
    delta = cost["hourly_delta"]
    change = ("no change" if prefix == "" else "change unknown") if delta == 0 else \
        f"{'+' if delta > 0 else '-'}{money(abs(delta))}/h"
    return (f"{prefix}{money(cost['hourly_before'])}{unit} {arrow} "
            f"{prefix}{money(cost['hourly_after'])}{unit} ({change})")


def _reserved_words(actions: list[dict[str, Any]]) -> str:
    """Creates into a capacity reservation cost nothing more (it is paid for anyway):
    said next to the total, so $0.00 never reads as a missing price."""
    reserved = sum(1 for a in actions if a["action"] in ("create", "replace")
                   and spot_mark(a) == " (reserved)")
    return f"; {plural(reserved, 'instance')} at $0.00/h (reserved)" if reserved else ""


def _cost_line(cost: dict[str, Any]) -> str:
    return f"Hourly cost: {cost_change(cost)}" if cost else ""

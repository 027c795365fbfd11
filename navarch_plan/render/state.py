"""The terminal rendering of state, from its JSON form."""

from __future__ import annotations

from typing import Any

from navarch_plan.words import plural

__all__ = ["render_state_text", "state_list_document"]


def render_state_text(state: dict[str, Any]) -> str:
    nodes = state.get("nodes", {})
    head = (f"Workspace {state['workspace']}, state serial {state['serial']}, "
            f"lineage {state['lineage']}: {plural(len(nodes), 'node')}")
    if not nodes:
        return head + "\n"
    rows = [("ADDRESS", "ID", "WHERE", "TYPE", "STATUS", "IP")]
    for address, n in sorted(nodes.items()):
        where = f"{n['provider']}/{n['region']}" + (f"/{n['zone']}" if n["zone"] else "")
        rows.append((address, n["id"], where, n["instance_type"], n["status"],
                     n["ip_address"] or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    extra = []
    if state.get("deposed"):
        extra.append(f"{plural(len(state['deposed']), 'deposed node')} awaiting termination")
    if state.get("intents"):
        extra.append(f"{plural(len(state['intents']), 'interrupted provision')} to resolve")
    return "\n".join([head, *lines, *extra]) + "\n"


def state_list_document(state: dict[str, Any]) -> dict[str, Any]:
    """`navarch state list --json` (schemas/state-list.schema.json)."""
    fields = ("id", "provider", "region", "zone", "instance_type", "status", "ip_address")
    return {
        "format_version": "1.0", "workspace": state["workspace"], "serial": state["serial"],
        "lineage": state["lineage"],
        "nodes": [{"address": address, **{f: record[f] for f in fields}}
                  for address, record in sorted(state["nodes"].items())],
    }

"""The drift report (`navarch drift`), derived from a refresh-only plan's JSON form."""

from __future__ import annotations

from collections import Counter
from typing import Any

from navarch_plan.render.markdown import render_drift_markdown

__all__ = ["drift_document", "render_drift_text", "render_drift_markdown_report",
           "DRIFT_FORMAT_VERSION"]

DRIFT_FORMAT_VERSION = "1.0"


def drift_document(plan: dict[str, Any], updated: int | None = None) -> dict[str, Any]:
    kinds = Counter(d["kind"] for d in plan["drift"])
    return {
        "format_version": DRIFT_FORMAT_VERSION,
        "workspace": plan["workspace"],
        "checked_at": plan["created_at"],
        "clean": not plan["drift"],
        "summary": {"total": len(plan["drift"]), "by_kind": dict(sorted(kinds.items()))},
        "drift": plan["drift"],
        "state": {"lineage": plan["planned_against"]["lineage"],
                  "serial": plan["planned_against"]["serial"]},
        "state_updated": updated,
    }


def _updated_line(report: dict[str, Any]) -> str:
    if report["state_updated"] is None:
        return "State was not changed (use --update-state to record what was found)."
    return f"State updated: {report['state_updated']} record(s) now match the cloud."


def render_drift_text(report: dict[str, Any]) -> str:
    if report["clean"]:
        return (f"No drift: workspace {report['workspace']} matches its state "
                f"(serial {report['state']['serial']}).\n")
    lines = [f"Drift in workspace {report['workspace']}: {report['summary']['total']} "
             "object(s) changed outside of navarch"]
    lines += [f"  ! {d['address']}: {d['kind']}: {d['detail']}" for d in report["drift"]]
    lines += ["", _updated_line(report),
              "Run `navarch plan` to see what apply would do about it."]
    return "\n".join(lines) + "\n"


def render_drift_markdown_report(report: dict[str, Any]) -> str:
    title = f"### navarch drift check for `{report['workspace']}`: "
    if report["clean"]:
        return title + "no drift\n"
    by_kind = ", ".join(f"{n} {k}" for k, n in report["summary"]["by_kind"].items())
    lines = [title + f"{report['summary']['total']} item(s)", "", by_kind, "",
             *render_drift_markdown(report["drift"]), _updated_line(report), ""]
    return "\n".join(lines)

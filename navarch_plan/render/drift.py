"""The drift report (`navarch drift`), derived from a refresh-only plan's JSON form."""

from __future__ import annotations

from collections import Counter
from typing import Any

from navarch_plan.render.markdown import (
    MAX_CHARS,
    render_drift_markdown,
    render_unsettled_markdown,
)
from navarch_plan.render.text import unsettled_lines
from navarch_plan.words import plural

__all__ = ["drift_document", "drift_gaps", "render_drift_text", "render_drift_markdown_report",
           "DRIFT_FORMAT_VERSION"]

DRIFT_FORMAT_VERSION = "1.1"  # 1.1: `complete`, `unreachable` and `unsettled`


def drift_document(plan: dict[str, Any], updated: int | None = None) -> dict[str, Any]:
    """`complete` is false when a listing could not read some region or zone, or some
    node could not be checked: then nobody can say the fleet is clean."""
    kinds = Counter(d["kind"] for d in plan["drift"])
    unsettled = plan.get("unsettled", [])
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
        "complete": not plan.get("unreachable") and not any(
            u["kind"] == "unknown" for u in unsettled),
        "unreachable": plan.get("unreachable", {}),
        "unsettled": unsettled,
    }


def _updated_line(report: dict[str, Any]) -> str:
    if report["state_updated"] is None:
        return "State was not changed (use --update-state to record what was found)."
    updated = report["state_updated"]
    return (f"State updated: {plural(updated, 'record')} now "
            f"{'matches' if updated == 1 else 'match'} the cloud.")


def render_drift_text(report: dict[str, Any], plan_command: str = "navarch plan") -> str:
    """The report as text; its last line names `plan_command` (the CLI gives the run's
    own -c/--state with it)."""
    unsettled = unsettled_lines(report.get("unsettled", []))
    if report["clean"]:
        head = (f"No drift: workspace {report['workspace']} matches its state "
                f"(serial {report['state']['serial']})")
        if not report.get("complete", True):
            head = (f"Drift cannot be ruled out in workspace {report['workspace']}: "
                    + drift_gaps(report))
        return "\n".join([head + ".", *unsettled]).rstrip("\n") + "\n"
    total = report["summary"]["total"]
    lines = [f"Drift in workspace {report['workspace']}: {plural(total, 'object')} "
             "changed outside of navarch"]
    lines += [f"  ! {d['address']}: {d['kind']}: {d['detail']}" for d in report["drift"]]
    lines += ["", *unsettled, _updated_line(report),
              f"Run `{plan_command}` to see what apply would do about it."]
    return "\n".join(lines) + "\n"


def drift_gaps(report: dict[str, Any]) -> str:
    places = [f"{p}: {', '.join(v)}" for p, v in sorted(report["unreachable"].items())]
    unknown = sum(u["kind"] == "unknown" for u in report["unsettled"])
    said = [f"could not read {'; '.join(places)}"] if places else []
    said += [f"{plural(unknown, 'node')} could not be checked"] if unknown else []
    return " and ".join(said)


def render_drift_markdown_report(report: dict[str, Any]) -> str:
    title = f"### navarch drift check for `{report['workspace']}`: "
    unsettled = render_unsettled_markdown(report.get("unsettled", []))
    if report["clean"]:
        verdict = "no drift" if report.get("complete", True) else \
            f"cannot tell ({drift_gaps(report)})"
        return "\n".join([title + verdict, *unsettled]).rstrip("\n") + "\n"
    by_kind = ", ".join(f"{n} {k}" for k, n in report["summary"]["by_kind"].items())
    head = [title + plural(report['summary']['total'], 'item'), "", by_kind, ""]
    tail = [*unsettled, _updated_line(report), ""]
    # One GitHub issue or comment: the drift rows that fit beside the rest.
    budget = MAX_CHARS - len("\n".join([*head, *tail])) - 200
    table = render_drift_markdown(report["drift"], budget)
    if any(line.endswith(" not shown.*") for line in table):
        tail.insert(0, "Shortened to fit an issue: `navarch drift` (text or `--format json`) "
                    "lists every item.")
    return "\n".join([*head, *table, *tail])

"""The Markdown plan fits one GitHub comment (65,536 characters) at any fleet size:
headline, warnings and a per-pool summary first, then as many rows as fit, and a note
saying it was shortened and where the full plan is. Plans are made by the planner on
plain data (tests/planner_world.py)."""

from __future__ import annotations

from typing import Any

import pytest
from markdown_it import MarkdownIt

from navarch_plan.render.markdown import MAX_CHARS, render_plan_markdown
from tests.planner_world import World, config

GITHUB_COMMENT_LIMIT = 65_536


def fleet(pools: int, nodes: int, itype: str = "gpu_1x_a10", user_data: str = "") -> str:
    extra = f", user_data: {user_data!r}" if user_data else ""
    lines = [f"  p{i}: {{provider: sim, instance_type: {itype}, region: us-west-1, "
             f"nodes: {nodes}{extra}}}" for i in range(pools)]
    return "version: 1\nworkspace: ws\nproviders: {sim: {type: fake}}\npools:\n" + \
        "\n".join(lines) + "\n"


def created(pools: int, nodes: int) -> dict[str, Any]:
    world = World(config(fleet(pools, nodes)))
    world.state.nodes.clear()
    world.live.clear()
    return world.plan()


def check_fits(plan: dict[str, Any]) -> str:
    markdown = render_plan_markdown(plan)
    assert len(markdown) <= MAX_CHARS < GITHUB_COMMENT_LIMIT
    head = markdown.split("\n\n", 3)
    assert head[0].startswith("### navarch plan for `ws`")
    assert head[1].startswith(f"**Plan: {plan['summary']['create']} to add")
    assert "This plan was shortened to fit a comment" in markdown
    assert "`navarch show PLANFILE`" in markdown
    assert markdown.count("<details>") == markdown.count("</details>")
    html = MarkdownIt("commonmark").enable("table").render(markdown)
    summary = html.split("<table>")[1]
    groups = {a["group"] for a in plan["actions"]}
    assert all(f"<code>{g}</code>" in summary for g in groups)  # every pool counted
    assert html.index("shortened") < html.index("<h4>")  # the note before the details
    return markdown


def test_ten_thousand_creates_fit_in_one_comment() -> None:
    plan = created(100, 100)
    assert plan["summary"]["create"] == 10_000
    markdown = check_fits(plan)
    shown = markdown.count("| `+` | `pool.")
    assert 100 < shown < 10_000
    assert f"{shown:,} of 10,000 rows are listed" in markdown
    listed = markdown.count("\n#### `p")
    assert f"*{100 - listed} more tables (pools, drift) not listed" in markdown
    assert "| `p0` | 100 | 0 | 0 | 0 | 0 | 0 | $0.00/h → $75.00/h (+$75.00/h) |" in markdown


def test_fifteen_hundred_replacements_with_long_rows_fit() -> None:
    old = config(fleet(15, 100, user_data="v1"))
    world = World(old)
    plan = world.plan(config(fleet(15, 100, "gpu_1x_a100", user_data="v2")))
    assert plan["summary"]["replace"] == 1_500
    markdown = check_fits(plan)
    assert markdown.count("| `+/-` | `pool.") < 1_500
    assert "instance_type: `gpu_1x_a10` → `gpu_1x_a100`" in markdown


def test_drift_of_a_whole_fleet_fits() -> None:
    world = World(config(fleet(15, 100)))
    world.live.clear()  # every instance deleted outside navarch
    plan = world.plan()
    assert len(plan["drift"]) == 1_500
    check_fits(plan)


@pytest.mark.parametrize("limit", [5_000, 20_000])
def test_any_limit_is_kept(limit: int) -> None:
    markdown = render_plan_markdown(created(20, 50), limit=limit)
    assert len(markdown) <= limit and "shortened" in markdown


def test_a_plan_that_fits_is_not_shortened() -> None:
    markdown = render_plan_markdown(created(2, 5))
    assert "shortened" not in markdown and markdown.count("| `+` |") == 10


def test_the_drift_report_of_a_whole_fleet_fits() -> None:
    from navarch_plan.render.drift import drift_document, render_drift_markdown_report

    world = World(config(fleet(30, 100)))
    world.live.clear()
    report = render_drift_markdown_report(drift_document(world.plan(refresh_only=True)))
    assert len(report) <= MAX_CHARS and "3000 items" in report
    assert "drift items not shown." in report and "`navarch drift` (text or" in report
    assert report.rstrip().endswith("(use --update-state to record what was found).")

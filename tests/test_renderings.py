"""Golden files for the text, Markdown and JSON renderings of one rich plan, and the
Markdown's structure checked through a real Markdown parser.

Regenerate after an intended change with: UPDATE_GOLDEN=1 pytest tests/test_renderings.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from navarch_plan.model import Node, NodeStatus
from navarch_plan.render import render_json, render_plan_text
from navarch_plan.render.markdown import FOLD_AFTER, render_plan_markdown
from navarch_plan.schemas import validator
from navarch_plan.state.model import NodeRecord
from tests.planner_world import World, config

GOLDEN = Path(__file__).parent / "fixtures" / "golden"

RICH = """
version: 1
workspace: ws
providers: {sim: {type: fake}}
pools:
  head: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: 1}
  workers:
    provider: sim
    instance_type: gpu_1x_h100
    region: us-west-1
    nodes: 4
    user_data: "HEAD=${pools.head.nodes[0].ip_address} v2"
  eval:
    provider: sim
    instance_type: gpu_1x_a10
    region: us-west-1
    nodes: 1
    user_data: "HEAD=${pools.head.nodes[0].ip_address}"
  big: {provider: sim, instance_type: gpu_8x_h100, region: us-east-1, nodes: 12}
  steady: {provider: sim, instance_type: gpu_1x_l4, region: us-east-1, nodes: 1}
  tagged:
    provider: sim
    instance_type: gpu_1x_l4
    region: us-east-1
    nodes: 1
    labels: {team: research, env: prod}
nodes:
  box: {provider: sim, instance_type: gpu_1x_a10, region: us-east-1}
"""


def rich_plan() -> dict[str, Any]:
    """Creates, deletes, replacements with changed fields, an adoption, labels updated in
    place, drift of several kinds, an unknown price, and a partial-plan warning."""
    old = config(RICH.replace("gpu_1x_h100", "gpu_1x_a100").replace("nodes: 4", "nodes: 3")
                 .replace("{team: research, env: prod}", "{team: ml, old: x}")
                 .replace(" v2", "")
                 .replace("nodes: 12", "nodes: 0").replace(
                     "nodes:\n  box", "  gone: {provider: sim, instance_type: gpu_1x_l4, "
                     "region: us-west-1, nodes: 1}\nnodes:\n  box"))
    world = World(old)
    world.state.nodes.pop("node.box")  # an owned instance missing from state: adopted
    world.live = [n for n in world.live if n.id != world.state.nodes["pool.workers[2]"].id]
    head = world.state.nodes["pool.head[0]"]
    world.live = [Node(**{**n.__dict__, "status": NodeStatus.UNHEALTHY})
                  if n.id == head.id else n for n in world.live]
    gone = world.state.nodes["pool.gone[0]"]
    world.state.nodes["pool.gone[0]"] = NodeRecord(**{**gone.__dict__, "zone": "us-west-1b"})
    world.state.lineage = "00000000-0000-4000-8000-000000000000"
    return world.plan(config(RICH), exclude=("pool.steady",))


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.read_text() == text, f"{name} differs from its golden file"


def test_the_rich_plan_has_every_ingredient() -> None:
    plan = rich_plan()
    kinds = {(a["action"], a["reason"]) for a in plan["actions"]}
    assert {("create", "missing"), ("replace", "spec_changed"), ("replace", "unhealthy"),
            ("create", "deleted_outside"), ("adopt", "orphan_matches"),
            ("delete", "not_in_config"), ("replace", "dependency_changed"),
            ("update", "labels_changed")} <= kinds
    assert {d["kind"] for d in plan["drift"]} >= {"deleted_outside", "unmanaged",
                                                  "status_changed", "zone_changed"}
    assert plan["cost"]["complete"] is False and plan["warnings"]
    assert list(validator("plan").iter_errors(plan)) == []


def test_golden_text() -> None:
    check_golden("rich-plan.txt", render_plan_text(rich_plan()))


def test_golden_markdown() -> None:
    check_golden("rich-plan.md", render_plan_markdown(rich_plan()))


def test_golden_json() -> None:
    check_golden("rich-plan.json", render_json(rich_plan()))


def test_markdown_structure_parsed_as_html() -> None:
    plan = rich_plan()
    html = MarkdownIt("commonmark").enable("table").render(render_plan_markdown(plan))
    assert html.startswith("<h3>navarch plan for <code>ws</code></h3>")
    assert "Plan: " in html.split("</p>")[0] + html.split("</p>")[1]
    assert "<blockquote>" in html and "partial plan" in html  # warnings at the top
    assert html.index("partial plan") < html.index("<table>")
    tables = html.count("<table>")
    groups = len({a["group"] for a in plan["actions"]})
    assert tables == groups + 1  # one per pool with actions, plus the drift table
    big = sum(a["group"] == "big" for a in plan["actions"])
    assert big > FOLD_AFTER and html.count("<details>") == 1
    assert "<summary>12 actions</summary>" in html
    assert "Drift: objects changed outside of navarch" in html
    assert html.count("<tr>") == len(plan["actions"]) + len(plan["drift"]) + tables
    assert "(sensitive, sha256:" in html and "HEAD=" not in html


def test_text_and_markdown_agree_on_every_action() -> None:
    plan = rich_plan()
    text, markdown = render_plan_text(plan), render_plan_markdown(plan)
    for action in plan["actions"]:
        assert action["address"] in text and action["address"] in markdown
        assert action["reason"] in text and action["reason"] in markdown
    assert json.loads(render_json(plan)) == plan

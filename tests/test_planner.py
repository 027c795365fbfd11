"""The planner as a pure function: every row of DESIGN.md section 4, with plain data."""

from __future__ import annotations

import json
from typing import Any

import pytest

from navarch_plan.errors import PlanError
from navarch_plan.model import Node, NodeStatus
from navarch_plan.plan import plan_from_json
from navarch_plan.planner.ownership import ownership_labels
from navarch_plan.render import render_plan_text
from navarch_plan.schemas import validator
from navarch_plan.state.model import NodeRecord, StateDoc
from tests.planner_world import BASE, World, config


def rows(plan: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(a["address"], a["action"], a["reason"]) for a in plan["actions"]]


def test_nothing_exists_everything_is_created() -> None:
    world = World(config())
    world.state, world.live = StateDoc.new("ws"), []
    plan = world.plan()
    assert rows(plan) == [("pool.head[0]", "create", "missing")] + [
        (f"pool.workers[{i}]", "create", "missing") for i in range(3)]
    assert plan["actions"][0]["name"] == "ws-head-0-abcd"
    assert plan["edges"] == [["build:head", "build:workers"]]
    assert plan["cost"] == {
        "currency": "USD", "hourly_before": 0, "hourly_after": 4.62, "hourly_delta": 4.62,
        "complete": True, "pools": {
            "head": {"hourly_before": 0, "hourly_after": 0.75, "hourly_delta": 0.75,
                     "complete": True},
            "workers": {"hourly_before": 0, "hourly_after": 3.87, "hourly_delta": 3.87,
                        "complete": True}}}


def test_in_sync_means_no_changes_with_a_reason() -> None:
    plan = World(config()).plan()
    assert plan["actions"] == [] and plan["summary"]["unchanged"] == 4
    assert "all 4 desired nodes" in plan["no_changes_reason"]
    assert "No changes." in render_plan_text(plan)


def test_provisioning_counts_as_fine() -> None:
    world = World(config())
    world.live[0] = Node(**{**world.live[0].__dict__, "status": NodeStatus.PROVISIONING})
    assert world.plan()["actions"] == []


def test_spec_change_lists_the_fields() -> None:
    world = World(config())
    changed = config(BASE.replace("gpu_1x_a100", "gpu_1x_h100"))
    plan = world.plan(changed)
    assert {r[2] for r in rows(plan)} == {"spec_changed"} and len(rows(plan)) == 3
    assert plan["actions"][0]["changed"] == ["instance_type"]
    assert plan["actions"][0]["before"]["instance_type"] == "gpu_1x_a100"
    assert plan["actions"][0]["after"]["instance_type"] == "gpu_1x_h100"


@pytest.mark.parametrize(("status", "reason"), [("unhealthy", "unhealthy"),
                                                ("terminated", "gone"),
                                                ("terminating", "gone")])
def test_sick_or_dead_nodes_are_replaced(status: str, reason: str) -> None:
    world = World(config())
    world.live[1] = Node(**{**world.live[1].__dict__, "status": NodeStatus(status)})
    plan = world.plan()
    assert rows(plan) == [("pool.workers[0]", "replace", reason)]
    assert plan["drift"][0]["kind"] == "status_changed"


def test_deleted_outside_is_drift_and_a_create() -> None:
    world = World(config())
    world.live.pop(2)
    plan = world.plan()
    assert rows(plan) == [("pool.workers[1]", "create", "deleted_outside")]
    assert [(d["address"], d["kind"]) for d in plan["drift"]] == [
        ("pool.workers[1]", "deleted_outside")]


def test_deleted_outside_and_not_desired_is_forgotten() -> None:
    world = World(config())
    world.live.pop(3)
    plan = world.plan(config(BASE.replace("nodes: 3", "nodes: 2")))
    assert rows(plan) == [("pool.workers[2]", "forget", "deleted_outside")]


def test_orphans_are_adopted_when_wanted_else_deleted() -> None:
    world = World(config())
    orphan = world.state.nodes.pop("pool.workers[2]")
    plan = world.plan()
    assert rows(plan) == [("pool.workers[2]", "adopt", "orphan_matches")]
    assert plan["actions"][0]["node_id"] == orphan.id
    assert plan["drift"][0]["kind"] == "unmanaged"
    plan = world.plan(config(BASE.replace("nodes: 3", "nodes: 2")))
    assert rows(plan) == [("pool.workers[2]", "delete", "orphan")]


def test_a_second_orphan_for_a_filled_address_is_deleted() -> None:
    world = World(config())
    kept = world.state.nodes["pool.workers[0]"]
    duplicate = world.add("pool.workers[0]", world.cfg.desired["pool.workers[0]"])
    world.state.nodes["pool.workers[0]"] = kept  # state knows the first one only
    plan = world.plan()
    assert [(a["action"], a["reason"], a["node_id"]) for a in plan["actions"]] == [
        ("delete", "orphan", duplicate.id)]


def test_foreign_instances_are_invisible() -> None:
    world = World(config())
    node = world.cfg.desired["pool.workers[0]"]
    labels = {**ownership_labels("ws", node), "navarch-workspace": "other"}
    world.live.append(Node(id="x-1", provider="sim", region="us-west-1",
                           instance_type="gpu_1x_a100", status=NodeStatus.RUNNING,
                           labels=labels))
    world.live.append(Node(id="x-2", provider="sim", region="us-west-1",
                           instance_type="gpu_1x_a100", status=NodeStatus.RUNNING))
    assert world.plan()["actions"] == []
    assert world.plan(destroy=True)["summary"]["delete"] == 4


def test_removed_pool_and_scale_down_reasons() -> None:
    world = World(config())
    text = BASE.replace("nodes: 3", "nodes: 1").split("  workers:")[0]
    plan = world.plan(config(text))
    assert {r[2] for r in rows(plan)} == {"not_in_config"}
    plan = world.plan(config(BASE.replace("nodes: 3", "nodes: 1")))
    assert rows(plan) == [("pool.workers[1]", "delete", "scaled_down"),
                          ("pool.workers[2]", "delete", "scaled_down")]


def test_replacing_a_referenced_node_replaces_dependents() -> None:
    world = World(config())
    plan = world.plan(replace=("pool.head[0]",))
    assert rows(plan) == [("pool.head[0]", "replace", "requested")] + [
        (f"pool.workers[{i}]", "replace", "dependency_changed") for i in range(3)]
    assert "(known after apply)" in render_plan_text(plan)


def test_a_referenced_value_changed_in_state_replaces_dependents() -> None:
    world = World(config())
    head = world.state.nodes["pool.head[0]"]
    world.state.nodes["pool.head[0]"] = NodeRecord(**{**head.__dict__, "ip_address": "1.2.3.4"})
    assert {r[2] for r in rows(world.plan())} == {"dependency_changed"}


def test_prevent_destroy_refuses() -> None:
    world = World(config(BASE.replace("nodes: 3", "nodes: 3\n    lifecycle: "
                                      "{prevent_destroy: true}")))
    with pytest.raises(PlanError, match="prevent_destroy"):
        world.plan(destroy=True)


def test_refresh_only_reports_drift_and_no_actions() -> None:
    world = World(config())
    world.live.pop()
    plan = world.plan(refresh_only=True)
    assert plan["actions"] == [] and len(plan["drift"]) == 1
    assert "refresh-only" in plan["no_changes_reason"]


def test_target_pulls_in_dependencies_and_exclude_drops_dependents() -> None:
    world = World(config())
    world.state, world.live = StateDoc.new("ws"), []
    targeted = world.plan(target=("pool.workers[1]",))
    assert [r[0] for r in rows(targeted)] == ["pool.head[0]", "pool.workers[1]"]
    assert targeted["warnings"] and "partial plan" in targeted["warnings"][0]
    excluded = world.plan(exclude=("pool.head",))
    assert rows(excluded) == []
    with pytest.raises(PlanError, match="no such pool"):
        world.plan(target=("pool.nope",))


def test_unknown_prices_make_totals_lower_bounds() -> None:
    world = World(config(BASE.replace("gpu_1x_a100", "gpu_8x_h100")))
    plan = world.plan()
    assert plan["cost"]["complete"] is False
    assert "at least" in render_plan_text({**plan, "actions": plan["actions"] or [
        {"address": "pool.head[0]", "group": "head", "action": "create", "reason": "missing",
         "provider": "sim", "region": "r", "instance_type": "t", "replace_mode": "x"}]})


def test_plan_json_is_schema_valid_and_round_trips() -> None:
    world = World(config())
    world.live.pop()
    document = world.plan(config(BASE.replace("gpu_1x_a100", "gpu_1x_h100")))
    errors = list(validator("plan").iter_errors(document))
    assert errors == []
    again = plan_from_json(json.loads(json.dumps(document))).to_json()
    assert again == document
    tampered = {**document, "workspace": "other"}
    with pytest.raises(PlanError, match="modified"):
        plan_from_json(tampered)
    with pytest.raises(PlanError, match="format"):
        plan_from_json({**document, "format_version": "2.0"})


def test_state_for_a_provider_no_longer_configured_is_an_error() -> None:
    world = World(config())
    record = world.state.nodes["pool.head[0]"]
    world.state.nodes["pool.head[0]"] = NodeRecord(**{**record.__dict__, "provider": "gone"})
    with pytest.raises(PlanError, match="no longer defines"):
        world.plan()

"""The planner's label rules as pure data: where a provider cannot set labels (Lambda
has no API for it) the plan warns and replaces nothing; a state keyed after its nodes
were recorded still plans an update, not a replacement; plans with updates follow the
plan schema; older plan files still read."""

from __future__ import annotations

import json
from pathlib import Path

from deepdiff import DeepDiff

from navarch_plan.model import Node
from navarch_plan.plan import checksum_of, label_changes, plan_from_json
from navarch_plan.schemas import validator
from tests.planner_world import BASE, World, config

LABELLED = BASE.replace("nodes: 1}", "nodes: 1, labels: {team: research}}")


def test_without_a_label_setter_the_plan_warns_and_replaces_nothing() -> None:
    world = World(config())
    plan = world.plan(config(LABELLED), label_setters=frozenset())
    assert plan["actions"] == []
    [warning] = plan["warnings"]
    assert warning.startswith("pool.head[0]: its labels differ from the config (+ team: ")
    assert "cannot update labels in place" in warning
    assert "navarch apply --replace pool.head[0]" in warning


def test_hand_edits_without_a_label_setter_are_drift_saying_so() -> None:
    world = World(config())
    head = world.state.nodes["pool.head[0]"]
    world.live = [Node(**{**n.__dict__, "labels": {**n.labels, "team": "x"}})
                  if n.id == head.id else n for n in world.live]
    plan = world.plan(label_setters=frozenset())
    [drift] = plan["drift"]
    assert drift["kind"] == "labels_changed" and '+ team: "x"' in drift["detail"]
    assert "cannot update labels in place" in drift["detail"]
    assert plan["actions"] == []


def test_a_keyed_state_plans_an_update_for_a_record_made_before_the_key() -> None:
    world = World(config())
    keyed = config(LABELLED).keyed("k" * 64)
    plan = world.plan(keyed)
    [update] = plan["actions"]
    assert (update["action"], update["reason"]) == ("update", "labels_changed")
    assert update["after"]["spec_hash"] == keyed.desired["pool.head[0]"].spec_hash
    assert world.plan(config().keyed("k" * 64))["actions"] == []


def test_only_user_labels_changed_with_another_field_replace() -> None:
    world = World(config())
    plan = world.plan(config(LABELLED.replace("gpu_1x_a10", "gpu_1x_l4")))
    [replace] = [a for a in plan["actions"] if a["address"] == "pool.head[0]"]
    assert replace["action"] == "replace" and "labels" in replace["changed"]


def test_plans_with_updates_follow_the_schema_and_read_back() -> None:
    plan = World(config()).plan(config(LABELLED))
    assert list(validator("plan").iter_errors(plan)) == []
    assert plan["format_version"] == "1.4" and plan["summary"]["update"] == 1
    again = plan_from_json(plan).to_json()
    assert again == plan


def test_a_1_2_plan_file_still_reads() -> None:
    golden = Path(__file__).parent / "fixtures" / "golden" / "rich-plan.json"
    data = json.loads(golden.read_text())
    data["format_version"] = "1.2"
    for action in data["actions"]:
        action.pop("labels"), action.pop("label_changes")
    data["actions"] = [a for a in data["actions"] if a["action"] != "update"]
    data["checksum"] = checksum_of(data)
    plan = plan_from_json(data)
    assert all(a.labels is None and a.label_changes == () for a in plan.actions)


def test_the_label_diff_agrees_with_deepdiff() -> None:
    before = {"team": "ml", "old": "x", "same": "1", "navarch-spec": "a"}
    after = {"team": "research", "env": "prod", "same": "1", "navarch-spec": "b"}
    ours = {(c["op"], c["key"]) for c in label_changes(before, after)}
    theirs = DeepDiff(before, after, exclude_paths=["root['navarch-spec']"],
                      threshold_to_diff_deeper=0)
    assert ours == {("add", k.split("'")[1]) for k in theirs["dictionary_item_added"]} | {
        ("remove", k.split("'")[1]) for k in theirs["dictionary_item_removed"]} | {
        ("change", k.split("'")[1]) for k in theirs["values_changed"]}

"""Labels updated in place, through the `navarch` command on the fake cloud: a label
changed in the config, or by hand on the cloud, is set on the running instance (same
id), never by replacing it; anything else that changes still replaces."""

from __future__ import annotations

import json
from typing import Any

from navarch_plan.plan import checksum_of
from tests.conftest import FAST_RETRY, Workdir, actions_of, owned


def only_node(work: Workdir) -> Any:
    [node] = owned(work.cloud())
    return node


def applied(work: Workdir, **config: Any) -> Any:
    work.config(**config)
    result = work.run("apply", "--auto-approve")
    assert result.code == 0, result.err
    return only_node(work)


def test_a_label_changed_in_the_config_is_updated_in_place(work: Workdir) -> None:
    before = applied(work, pools={"head": {"nodes": 1, "labels": {"old": "x"}}})
    work.config(pools={"head": {"nodes": 1, "labels": {"team": "research", "env": "prod"}}})

    shown = work.run("plan", "--detailed-exitcode")
    assert shown.code == 2, shown.err
    assert "~ pool.head[0]  update (labels_changed)" in shown.out
    for line in ('team: "ml" -> "research"', '+ env: "prod"', "- old"):
        assert line in shown.out
    assert "Plan: 0 to add, 1 to update, 0 to replace, 0 to destroy." in shown.out
    plan = work.plan_json()
    assert plan["summary"]["update"] == 1 and plan["summary"]["replace"] == 0
    [update] = actions_of(plan, "update")
    assert update["label_changes"] == [
        {"key": "env", "op": "add", "after": "prod"},
        {"key": "old", "op": "remove", "before": "x"},
        {"key": "team", "op": "change", "before": "ml", "after": "research"}]

    result = work.run("apply", "--auto-approve")
    assert result.code == 0, result.err
    assert "1 updated" in result.out
    after = only_node(work)
    assert after.id == before.id, "the instance is kept"
    assert [c["target"] for c in work.cloud().calls("set_labels")] == [before.id]
    assert work.cloud().calls("terminate") == []
    assert {k: v for k, v in after.labels.items() if not k.startswith("navarch-")} == {
        "team": "research", "env": "prod"}
    assert {"navarch-workspace", "navarch-address", "navarch-lineage"} <= set(after.labels)
    record = work.state()["nodes"]["pool.head[0]"]
    assert record["labels"] == after.labels
    assert record["spec"]["labels"] == {"env": "prod", "team": "research"}
    assert after.labels["navarch-spec"] == record["spec_hash"]

    again = work.run("plan", "--detailed-exitcode")
    assert again.code == 0 and "No changes." in again.out, again.out
    assert work.run("drift").code == 0


def test_a_label_changed_by_hand_is_drift_that_apply_fixes(work: Workdir) -> None:
    node = applied(work, pools={"head": {"nodes": 1}})
    work.cloud().set_labels(node.id, {**node.labels, "team": "hacked", "extra": "1"})

    drift = work.run("drift")
    assert drift.code == 2
    assert 'team: "ml" -> "hacked"' in drift.out and '+ extra: "1"' in drift.out
    assert "apply will update labels in place" in drift.out

    # Recording the cloud's labels as the truth does not hide that the node differs
    # from the config: drift still says so, and plan still sets them back.
    assert work.run("drift", "--update-state").code == 2
    assert work.state()["nodes"]["pool.head[0]"]["labels"]["team"] == "hacked"
    still = work.run("drift")
    assert still.code == 2 and "apply will update labels in place" in still.out

    plan = work.plan_json()
    [update] = actions_of(plan)
    assert (update["action"], update["reason"]) == ("update", "labels_drifted")
    assert work.run("apply", "--auto-approve").code == 0
    fixed = only_node(work)
    assert fixed.id == node.id and fixed.labels == node.labels
    assert work.run("drift").code == 0
    assert work.run("plan", "--detailed-exitcode").code == 0


def test_labels_and_instance_type_changed_together_replace(work: Workdir) -> None:
    node = applied(work, pools={"head": {"nodes": 1}})
    work.config(pools={"head": {"nodes": 1, "instance_type": "gpu_1x_l4",
                                "labels": {"team": "research"}}})
    plan = work.plan_json()
    [replace] = actions_of(plan)
    assert replace["action"] == "replace" and replace["reason"] == "spec_changed"
    assert set(replace["changed"]) == {"instance_type", "labels"}
    assert work.run("apply", "--auto-approve").code == 0
    new = only_node(work)
    assert new.id != node.id and new.labels["team"] == "research"
    assert work.cloud().calls("set_labels") == []


def test_an_unchanged_node_keeps_its_spec_hash(work: Workdir) -> None:
    """Labels stay in the spec hash: upgrading navarch neither replaces nor relabels."""
    node = applied(work, pools={"head": {"nodes": 1}})
    state = work.state()["nodes"]["pool.head[0]"]
    assert node.labels["navarch-spec"] == state["spec_hash"]
    assert work.plan_json()["actions"] == []
    assert work.cloud().calls("set_labels") == []


def test_set_labels_is_retried_and_hooks_report_it(work: Workdir) -> None:
    node = applied(work, pools={"head": {"nodes": 1}})
    work.config(pools={"head": {"nodes": 1, "labels": {"team": "research"}}},
                sim={"retry": FAST_RETRY,
                     "faults": [{"op": "set_labels", "error": "transient"}]})
    result = work.run("apply", "--auto-approve")
    assert result.code == 0, result.err
    assert "updating labels" in result.out and "retrying" in result.out
    calls = work.cloud().calls("set_labels")
    assert [c["ok"] for c in calls] == [0, 1]
    assert only_node(work).id == node.id and only_node(work).labels["team"] == "research"


def test_a_saved_plan_setting_other_labels_is_refused(work: Workdir) -> None:
    applied(work, pools={"head": {"nodes": 1}})
    work.config(pools={"head": {"nodes": 1, "labels": {"team": "research"}}})
    assert work.run("plan", "--out", "p.plan").code == 0
    path = work.path / "p.plan"
    data = json.loads(path.read_text())
    data["actions"][0]["labels"]["navarch-workspace"] = "someone-else"
    data["checksum"] = checksum_of(data)
    path.write_text(json.dumps(data))
    result = work.run("apply", "p.plan")
    assert result.code == 1
    assert "labels this plan sets are not the config's" in result.out + result.err
    assert work.cloud().calls("set_labels") == []
    assert only_node(work).labels.get("navarch-workspace") == "test"


def test_labels_set_but_not_recorded_are_recorded_by_the_next_apply(work: Workdir) -> None:
    """The cloud set the labels but every reply was lost (as if apply died before its
    record): state keeps the old spec, and the next plan updates (again) and records."""
    node = applied(work, pools={"head": {"nodes": 1}})
    lost = {"op": "set_labels", "error": "transient", "effect": True}
    work.config(pools={"head": {"nodes": 1, "labels": {"team": "research"}}},
                sim={"retry": FAST_RETRY, "faults": [lost] * 4})
    failed = work.run("apply", "--auto-approve")
    assert failed.code == 1 and "failed:  pool.head[0]" in failed.out
    assert only_node(work).labels["team"] == "research"
    assert work.state()["nodes"]["pool.head[0]"]["spec"]["labels"] == {"team": "ml"}

    work.config(pools={"head": {"nodes": 1, "labels": {"team": "research"}}})
    [update] = actions_of(work.plan_json())
    assert (update["action"], update["label_changes"]) == ("update", [])
    assert "already carries these labels" in work.run("plan").out
    assert work.plan_json()["drift"] == []  # navarch set them: not a change by hand
    assert work.run("apply", "--auto-approve").code == 0
    record = work.state()["nodes"]["pool.head[0]"]
    assert record["spec"]["labels"] == {"team": "research"}
    assert only_node(work).id == node.id
    assert work.run("plan", "--detailed-exitcode").code == 0

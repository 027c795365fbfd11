"""The life of a fleet through the `navarch` command: create, re-plan, scale, change,
drift, adoption, destroy. Every check goes through the command a user runs: its main()
in this process (Workdir.cli), or the installed command where the process boundary is
the point (an answer read from standard input)."""

from __future__ import annotations

from navarch_plan.model import ProvisionRequest
from tests.conftest import Workdir, actions_of, owned


def test_fresh_plan_apply_then_no_changes(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 3}}, nodes={"box": {}})
    plan = work.cli("plan")
    assert plan.code == 0, plan.err
    assert "Plan: 4 to add, 0 to replace, 0 to destroy." in plan.out
    assert "+ pool.workers[2]  create (missing)" in plan.out
    assert work.cli("plan", "--detailed-exitcode").code == 2
    assert not (work.path / "state" / "test.json").exists(), "plan must not write state"

    applied = work.cli("apply", "--auto-approve")
    assert applied.code == 0, applied.err
    assert "Apply complete! Nodes: 4 added" in applied.out
    assert len(owned(work.cloud())) == 4
    state = work.state()
    assert sorted(state["nodes"]) == ["node.box", *(f"pool.workers[{i}]" for i in range(3))]
    assert state["serial"] == 1 and state["intents"] == []

    again = work.cli("plan", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    assert "No changes. Your infrastructure matches the configuration." in again.out
    assert "all 4 desired nodes" in again.out


def test_scale_up_then_down_touches_the_highest_indices(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 3}})
    assert work.cli("apply", "--auto-approve").code == 0
    first_ids = {a: r["id"] for a, r in work.state()["nodes"].items()}

    work.config(pools={"workers": {"nodes": 5}})
    plan = work.plan_json()
    assert [(a["address"], a["action"]) for a in plan["actions"]] == [
        ("pool.workers[3]", "create"), ("pool.workers[4]", "create")]
    assert work.cli("apply", "--auto-approve").code == 0
    state = work.state()["nodes"]
    assert all(state[a]["id"] == i for a, i in first_ids.items()), "existing nodes kept"

    work.config(pools={"workers": {"nodes": 2}})
    plan = work.plan_json()
    deletes = actions_of(plan, "delete")
    assert [a["address"] for a in deletes] == [f"pool.workers[{i}]" for i in (2, 3, 4)]
    assert {a["reason"] for a in deletes} == {"scaled_down"}
    assert len(plan["actions"]) == 3
    assert work.cli("apply", "--auto-approve").code == 0
    live = sorted(n.labels["navarch-address"] for n in owned(work.cloud()))
    assert live == ["p_workers_0", "p_workers_1"]
    assert work.cli("plan", "--detailed-exitcode").code == 0


def test_type_change_replaces_each_node_new_before_old(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 3}})
    assert work.cli("apply", "--auto-approve").code == 0
    old = {a: r["id"] for a, r in work.state()["nodes"].items()}

    work.config(pools={"workers": {"nodes": 3, "instance_type": "gpu_1x_a100"}})
    plan = work.plan_json()
    replaces = actions_of(plan, "replace")
    assert len(replaces) == 3 and {a["reason"] for a in replaces} == {"spec_changed"}
    assert all(a["changed"] == ["instance_type"] for a in replaces)
    text = work.cli("plan").out
    assert 'instance_type: "gpu_1x_a10" -> "gpu_1x_a100"' in text
    assert "+/- pool.workers[0]" in text

    assert work.cli("apply", "--auto-approve").code == 0
    calls = work.cloud().calls()
    for address, old_id in old.items():
        label = "p_workers_" + address[-2]
        created = [c for c in calls if c["op"] == "provision" and c["address"] == label]
        killed = [c for c in calls if c["op"] == "terminate" and c["target"] == old_id]
        assert len(killed) == 1
        assert created[-1]["ended"] <= killed[0]["started"], f"{address}: old went first"
    nodes = owned(work.cloud())
    assert len(nodes) == 3 and {n.instance_type for n in nodes} == {"gpu_1x_a100"}
    assert work.cli("plan", "--detailed-exitcode").code == 0


def test_destroy_before_create_pool_terminates_first(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 1}})
    assert work.cli("apply", "--auto-approve").code == 0
    old_id = work.state()["nodes"]["pool.workers[0]"]["id"]
    work.config(pools={"workers": {"nodes": 1, "instance_type": "gpu_1x_l4",
                                   "lifecycle": {"replace": "destroy_before_create"}}})
    assert "-/+ pool.workers[0]" in work.cli("plan").out
    assert work.cli("apply", "--auto-approve").code == 0
    calls = work.cloud().calls()
    killed = next(c for c in calls if c["op"] == "terminate" and c["target"] == old_id)
    created = [c for c in calls if c["op"] == "provision"][-1]
    assert killed["ended"] <= created["started"]


def test_destroy_leaves_other_workspaces_alone(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 2}}, nodes={"box": {}})
    assert work.cli("apply", "--auto-approve").code == 0
    cloud = work.cloud()
    # Another workspace's node, even one that copies our address label, is not ours.
    foreign = cloud.provision(ProvisionRequest(
        "other-1", "gpu_1x_a10", "us-west-1",
        labels={"navarch-workspace": "other", "navarch-address": "p_workers_0"}))
    unlabelled = cloud.provision(ProvisionRequest("hand-made", "gpu_1x_a10", "us-west-1"))

    plan = work.cli("plan", "--destroy", "--format", "json").json()
    assert {a["action"] for a in plan["actions"]} == {"delete"}
    assert {a["reason"] for a in plan["actions"]} == {"destroy"}
    result = work.cli("destroy", "--auto-approve")
    assert result.code == 0, result.err
    assert "3 destroyed" in result.out
    left = {n.id for n in cloud.list()}
    assert left == {foreign.id, unlabelled.id}
    assert work.state()["nodes"] == {}
    again = work.cli("destroy", "--auto-approve")
    assert again.code == 0 and "nothing to destroy" in again.out


def test_deleted_outside_is_reported_and_recreated(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 2}})
    assert work.cli("apply", "--auto-approve").code == 0
    victim = work.state()["nodes"]["pool.workers[1]"]["id"]
    work.cloud().terminate(victim)

    plan = work.plan_json()
    assert [(d["address"], d["kind"]) for d in plan["drift"]] == [
        ("pool.workers[1]", "deleted_outside")]
    assert [(a["address"], a["action"], a["reason"]) for a in plan["actions"]] == [
        ("pool.workers[1]", "create", "deleted_outside")]
    assert "Objects have changed outside of navarch" in work.cli("plan").out
    assert work.cli("apply", "--auto-approve").code == 0
    assert work.state()["nodes"]["pool.workers[1]"]["id"] != victim
    assert len(owned(work.cloud())) == 2
    assert work.cli("plan", "--detailed-exitcode").code == 0


def test_unhealthy_node_is_replaced(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 2}})
    assert work.cli("apply", "--auto-approve").code == 0
    sick = work.state()["nodes"]["pool.workers[0]"]["id"]
    work.cloud().set_status(sick, "unhealthy")
    plan = work.plan_json()
    assert [(a["address"], a["action"], a["reason"]) for a in plan["actions"]] == [
        ("pool.workers[0]", "replace", "unhealthy")]
    assert plan["drift"][0]["kind"] == "status_changed"
    assert work.cli("apply", "--auto-approve").code == 0
    assert sick not in {n.id for n in work.cloud().list()}


def test_owned_instance_missing_from_state_is_adopted_or_deleted(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 2}})
    assert work.cli("apply", "--auto-approve").code == 0
    kept = work.state()["nodes"]["pool.workers[1]"]["id"]
    assert work.cli("state", "rm", "pool.workers[1]").code == 0

    plan = work.plan_json()
    assert [(a["address"], a["action"], a["reason"], a["node_id"]) for a in plan["actions"]] \
        == [("pool.workers[1]", "adopt", "orphan_matches", kept)]
    assert work.cli("apply", "--auto-approve").code == 0
    assert work.state()["nodes"]["pool.workers[1]"]["id"] == kept
    assert len(owned(work.cloud())) == 2, "adoption creates nothing"

    # Not desired any more: the orphan is deleted instead.
    assert work.cli("state", "rm", "pool.workers[1]").code == 0
    work.config(pools={"workers": {"nodes": 1}})
    plan = work.plan_json()
    assert [(a["action"], a["reason"], a["node_id"]) for a in plan["actions"]] == [
        ("delete", "orphan", kept)]
    assert work.cli("apply", "--auto-approve").code == 0
    assert kept not in {n.id for n in work.cloud().list()}


def test_replace_flag_forces_replacement(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 2}})
    assert work.cli("apply", "--auto-approve").code == 0
    plan = work.plan_json("--replace", "pool.workers[0]")
    assert [(a["address"], a["reason"]) for a in plan["actions"]] == [
        ("pool.workers[0]", "requested")]
    bad = work.cli("plan", "--replace", "pool.workers[7]")
    assert bad.code == 1 and "no such node in state" in bad.err


def test_prevent_destroy_refuses_the_plan(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 2, "lifecycle": {"prevent_destroy": True}}})
    assert work.cli("apply", "--auto-approve").code == 0
    work.config(pools={"workers": {"nodes": 1, "lifecycle": {"prevent_destroy": True}}})
    result = work.cli("plan")
    assert result.code == 1
    assert "pool.workers[1] has lifecycle.prevent_destroy" in result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert work.cli("destroy", "--auto-approve").code == 1
    assert len(owned(work.cloud())) == 2


def test_apply_asks_and_refuses_without_an_answer(work: Workdir) -> None:
    """No answer: the installed command, its standard input a pipe that ends at once
    (the process boundary is the point); the answers themselves in this process."""
    work.config(pools={"workers": {"nodes": 1}})
    no_answer = work.run("apply")
    assert no_answer.code == 1 and "--auto-approve" in no_answer.err
    declined = work.cli("apply", stdin="no\n")
    assert declined.code == 1 and "Apply cancelled." in declined.out
    assert owned(work.cloud()) == []
    accepted = work.cli("apply", stdin="yes\n")
    assert accepted.code == 0, accepted.err
    assert len(owned(work.cloud())) == 1


def test_show_and_state_commands(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 2}})
    assert work.cli("apply", "--auto-approve").code == 0
    listed = work.cli("state", "list")
    assert listed.out.split() == ["pool.workers[0]", "pool.workers[1]"]
    shown = work.cli("state", "show", "pool.workers[0]").json()
    assert shown["id"].startswith("fake-") and shown["status"] == "running"
    assert "user_data" not in shown["spec"] and "user_data_sha256" in shown["spec"]
    assert "pool.workers[1]" in work.cli("show").out
    assert work.cli("show", "--json").json()["serial"] == 1
    missing = work.cli("state", "show", "pool.nope[0]")
    assert missing.code == 1 and "not in state" in missing.err
    assert (work.path / "state" / "test.json").stat().st_mode & 0o777 == 0o600


def test_validate_checks_catalog_and_regions(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 1}})
    ok = work.cli("validate")
    assert ok.code == 0 and "The configuration is valid" in ok.out
    work.config(pools={"workers": {"nodes": 1, "instance_type": "gpu_9x_nope"}})
    bad = work.cli("validate")
    assert bad.code == 1 and "gpu_9x_nope" in bad.err and "navarch.yaml" in bad.err
    work.config(pools={"workers": {"nodes": 1, "region": "mars-1"}})
    assert "mars-1" in work.cli("validate").err


def test_the_quickstart_example_plans_applies_and_settles(work: Workdir) -> None:
    from tests.conftest import ROOT

    (work.path / "examples").mkdir()
    quickstart = (ROOT / "examples" / "quickstart.yaml").read_text()
    (work.path / "examples" / "quickstart.yaml").write_text(quickstart)
    args = ("-c", "examples/quickstart.yaml")
    plan = work.cli("plan", *args)
    assert plan.code == 0, plan.err
    assert "Plan: 5 to add, 0 to replace, 0 to destroy." in plan.out
    applied = work.cli("apply", *args, "--auto-approve")
    assert applied.code == 0, applied.err
    assert (work.path / "state" / "quickstart.json").exists()
    assert (work.path / "state" / "fake-cloud.db").exists()
    assert work.cli("plan", *args, "--detailed-exitcode").code == 0
    assert work.cli("destroy", *args, "--auto-approve").code == 0


def test_instance_types_lists_offers_cheapest_first(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 1}})
    result = work.cli("instance-types")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["PROVIDER", "TYPE", "GPUS", "VCPUS", "MEMORY", "PRICE/H",
                                "SPOT/H", "PURCHASE", "REGIONS"]
    assert any("gpu_8x_h100" in line and "8x H100" in line for line in lines)
    rows = work.cli("instance-types", "--json").json()
    prices = [r["price_per_hr"] for r in rows]
    assert prices == sorted(prices) and {r["provider"] for r in rows} == {"sim"}
    bad = work.cli("instance-types", "--provider", "nope")
    assert bad.code == 1 and "no such provider" in bad.err

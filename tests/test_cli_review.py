"""The pull-request and cron loop through the CLI: Markdown and JSON outputs validated
against their schemas, drift of every kind, saved-plan refusals, scoping flags."""

from __future__ import annotations

import json

import pytest
from markdown_it import MarkdownIt

from navarch_plan.schemas import validator
from tests.conftest import Workdir, owned


def valid(schema: str, document: object) -> bool:
    errors = list(validator(schema).iter_errors(document))
    assert errors == [], errors[0].message if errors else ""
    return True


@pytest.fixture
def fleet(work: Workdir) -> Workdir:
    work.config(pools={"head": {"nodes": 1},
                       "workers": {"nodes": 3,
                                   "user_data": "H=${pools.head.nodes[0].ip_address}"},
                       "other": {"nodes": 1}})
    assert work.cli("apply", "--auto-approve").code == 0
    return work


def test_every_json_output_matches_its_schema(fleet: Workdir) -> None:
    assert valid("plan", fleet.cli("plan", "--format", "json").json())
    assert fleet.cli("plan", "--out", "p.plan").code == 0
    assert valid("plan", fleet.cli("show", "p.plan", "--json").json())
    assert valid("state", fleet.cli("show", "--json").json())
    listed = fleet.cli("state", "list", "--json").json()
    assert valid("state-list", listed) and len(listed["nodes"]) == 5
    assert valid("drift", fleet.cli("drift", "--format", "json").json())


def test_plan_markdown_for_a_pull_request(fleet: Workdir) -> None:
    fleet.config(pools={"head": {"nodes": 1}, "workers": {"nodes": 1}, "other": {"nodes": 2}})
    result = fleet.cli("plan", "--format", "markdown")
    assert result.code == 0
    html = MarkdownIt("commonmark").enable("table").render(result.out)
    assert html.startswith("<h3>navarch plan for <code>test</code></h3>")
    assert "Plan: 1 to add, 1 to replace, 2 to destroy." in html
    assert html.count("<table>") == 2  # workers and other


def test_every_drift_kind_is_detected_and_state_untouched(fleet: Workdir) -> None:
    assert fleet.cli("drift").code == 0
    clean = fleet.cli("drift", "--format", "json").json()
    assert clean["clean"] is True and clean["drift"] == []

    path = fleet.path / "state" / "test.json"
    state = fleet.state()
    nodes = state["nodes"]
    cloud = fleet.cloud()
    cloud.terminate(nodes["pool.workers[0]"]["id"])
    cloud.set_status(nodes["pool.workers[1]"]["id"], "unhealthy")
    cloud.set_labels(nodes["pool.workers[2]"]["id"],
                     {**nodes["pool.workers[2]"]["labels"], "team": "hijacked"})
    # What the state believes differs from the cloud: type, region, zone.
    nodes["pool.head[0]"]["instance_type"] = "gpu_1x_l4"
    nodes["pool.other[0]"]["region"] = "eu-central-1"
    nodes["pool.other[0]"]["zone"] = "eu-central-1a"
    path.write_text(json.dumps(state))
    assert fleet.cli("state", "rm", "node.nothing").code == 1  # (no such node: no write)
    edited = path.read_bytes()

    result = fleet.cli("drift", "--format", "json")
    assert result.code == 2
    report = result.json()
    assert valid("drift", report)
    kinds = {(d["address"], d["kind"]) for d in report["drift"]}
    assert kinds == {("pool.workers[0]", "deleted_outside"),
                     ("pool.workers[1]", "status_changed"),
                     ("pool.workers[2]", "labels_changed"),
                     ("pool.head[0]", "instance_type_changed"),
                     ("pool.other[0]", "region_changed"), ("pool.other[0]", "zone_changed")}
    assert fleet.cli("drift").code == 2
    markdown = fleet.cli("drift", "--format", "markdown")
    assert markdown.code == 2 and "| `pool.workers[1]` | status_changed |" in markdown.out
    assert path.read_bytes() == edited, "drift never writes state"
    # Drift found: refresh-only with --detailed-exitcode exits 2, as `drift` does.
    assert fleet.cli("plan", "--refresh-only", "--detailed-exitcode").code == 2

    updated = fleet.cli("drift", "--update-state", "--format", "json")
    assert updated.code == 2 and updated.json()["state_updated"] == 6 - 1
    assert len(owned(cloud)) == 4, "drift never provisions or terminates"
    # The cloud's labels are recorded, but a hand-edited label is still not the
    # config's: it stays reported, saying what apply does, until apply sets it back.
    after = fleet.cli("drift", "--format", "json")
    assert after.code == 2, after.out
    [left] = after.json()["drift"]
    assert (left["address"], left["kind"]) == ("pool.workers[2]", "labels_changed")
    assert "apply will update labels in place" in left["detail"]


def test_unmanaged_instances_are_drift(fleet: Workdir) -> None:
    assert fleet.cli("state", "rm", "pool.other[0]").code == 0
    result = fleet.cli("drift", "--format", "json")
    assert result.code == 2
    assert [d["kind"] for d in result.json()["drift"]] == ["unmanaged"]


def test_saved_plan_of_another_lineage_is_refused(fleet: Workdir) -> None:
    assert fleet.cli("plan", "--out", "p.plan", "--replace", "pool.other[0]").code == 0
    state = fleet.state()
    state["lineage"] = "11111111-2222-4333-8444-555555555555"
    (fleet.path / "state" / "test.json").write_text(json.dumps(state))
    result = fleet.cli("apply", "p.plan")
    assert result.code == 1 and "does not match the given state" in result.err


def test_target_exclude_and_replace_from_the_plan_json(work: Workdir) -> None:
    work.config(pools={"head": {"nodes": 1}, "workers": {"nodes": 2, "depends_on": ["head"]},
                       "other": {"nodes": 1}})
    targeted = work.plan_json("--target", "pool.workers[1]")
    assert [a["address"] for a in targeted["actions"]] == ["pool.head[0]", "pool.workers[1]"]
    assert "partial plan" in targeted["warnings"][0]
    excluded = work.plan_json("--exclude", "pool.head")
    assert [a["address"] for a in excluded["actions"]] == ["pool.other[0]"]
    assert work.cli("apply", "--auto-approve", "--target", "pool.workers").code == 0
    assert sorted(work.state()["nodes"]) == ["pool.head[0]", "pool.workers[0]",
                                             "pool.workers[1]"]
    replaced = work.plan_json("--replace", "pool.head[0]", "--exclude", "pool.other")
    assert [(a["address"], a["reason"]) for a in replaced["actions"]] == [
        ("pool.head[0]", "requested")]
    bad = work.cli("plan", "--target", "pool.nope")
    assert bad.code == 1 and "no such pool or node" in bad.err


def test_apply_json_streams_events(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 2}})
    result = work.cli("apply", "--auto-approve", "--json")
    assert result.code == 0
    events = [json.loads(line) for line in result.out.splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds.count("apply_start") == 2 and kinds.count("apply_complete") == 2
    assert kinds[-1] == "summary" and events[-1]["ok"] is True
    assert all("at" in e for e in events[:-1])


def test_detailed_exitcode_never_says_no_changes_with_2(fleet: Workdir) -> None:
    same = fleet.cli("plan", "--detailed-exitcode")
    assert same.code == 0 and "No changes." in same.out
    fleet.config(pools={"head": {"nodes": 1}, "workers": {"nodes": 4}, "other": {"nodes": 1}})
    changed = fleet.cli("plan", "--detailed-exitcode")
    assert changed.code == 2 and "No changes." not in changed.out

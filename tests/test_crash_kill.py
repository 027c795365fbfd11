"""kill -9 at any moment: the real `navarch apply` is SIGKILLed at seeded moments and
targeted windows; after each kill the plan is exactly right and apply converges with
nothing leaked, duplicated or pointing at nothing. The harness is tests/crash_harness.py;
benchmarks/crash_soak.py runs it for as long as you like."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Workdir, actions_of, navarch_argv
from tests.crash_harness import (
    SCENARIOS,
    STRATEGIES,
    CloudView,
    Stats,
    expected_actions,
    read_state,
    run_scenario,
)

SEED = 6_2026
# The CI soak: all six scenarios, in two groups (two tests, which pytest-xdist runs side
# by side). Each scenario is killed once per strategy it has, at the least (31 kills in
# all, each checked in full); the last of each group, which has every strategy, goes on
# until its group has landed a kill with every strategy and in every targeted window.
# benchmarks/crash_soak.py runs as many as you like.
GROUPS = (("fleet", "scale-down", "replace-cbd"), ("deps", "mixed", "replace-dbc"))
TARGETED_WINDOWS = ("before any state write", "intent written, nothing provisioned",
                    "provisioned, not recorded", "terminated, not recorded")
HEAD_REF = "HEAD=${pools.head.nodes[0].ip_address}"


def _covered(stats: Stats) -> bool:
    return (set(stats.by_strategy) == set(STRATEGIES)
            and all(stats.landed[w] for w in TARGETED_WINDOWS))


@pytest.mark.parametrize("group", GROUPS, ids=", ".join)
def test_kill_minus_9_at_seeded_moments_never_loses_or_doubles_a_node(
        tmp_path: Path, group: tuple[str, ...]) -> None:
    """Each kill is of a real `navarch apply` process; the checks after it (the plan, and
    the converging apply at the end of a chain) run the command in this process."""
    total = Stats()
    for index, name in enumerate(group):
        folder = tmp_path / name
        folder.mkdir()
        kills = len(SCENARIOS[name].strategies)
        before = Stats()
        before.merge(total)

        def group_covered(stats: Stats, before: Stats = before) -> bool:
            both = Stats()
            both.merge(before)
            both.merge(stats)
            return _covered(both)

        last = index == len(group) - 1
        stats = run_scenario(Workdir(folder), SCENARIOS[name], SEED + index, kills,
                             until=group_covered if last else None)
        assert not stats.problems, "\n".join(stats.problems)
        assert stats.kills >= kills, (name, stats)
        total.merge(stats)
    assert total.leaked == 0 and total.duplicates == 0
    assert set(total.by_strategy) == set(STRATEGIES), total.by_strategy
    # The targeted windows were hit, not just aimed at.
    for window in TARGETED_WINDOWS:
        assert total.landed[window] >= 1, total.landed


def test_the_ci_soak_covers_every_scenario_and_strategy() -> None:
    named = [name for group in GROUPS for name in group]
    assert sorted(named) == sorted(SCENARIOS), "every scenario, once"
    for group in GROUPS:
        assert set(SCENARIOS[group[-1]].strategies) == set(STRATEGIES), "the last has all"


@pytest.mark.parametrize("scenario", ["fleet", "deps"])
def test_kill_minus_9_under_visibility_lag_never_leaks_duplicates_or_discards(
        tmp_path: Path, scenario: str) -> None:
    """A few kills with new instances invisible to navarch for a while (the soak in
    benchmarks/crash_soak.py --lag runs many more). The plan after each kill runs in
    this process, at once, well inside the lag."""
    index = ["fleet", "deps"].index(scenario)
    stats = run_scenario(Workdir(tmp_path), SCENARIOS[scenario], SEED + 50 + index, 2,
                         lag=0.3)
    assert not stats.problems, "\n".join(stats.problems)
    assert stats.kills >= 2, stats
    assert (stats.leaked, stats.duplicates, stats.discarded) == (0, 0, 0)


# -- single windows, deterministic, with the exact outcome spelled out ------------------

def _start(work: Workdir, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*navarch_argv(), "apply", "--auto-approve", *args],
                            cwd=work.path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)


def _kill_when(proc: subprocess.Popen[str], ready: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        assert proc.poll() is None, "the apply finished before the window opened"
        assert time.monotonic() < deadline, "the window never opened"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def test_killed_between_provision_and_state_write_the_instance_is_adopted(
        work: Workdir) -> None:
    slow = [{"op": "provision", "address": "p_w_1", "delay": 5}]
    work.config(pools={"w": {"nodes": 3}}, sim={"latency": 0.05, "faults": slow})
    view = CloudView(work.cloud_path)
    proc = _start(work, "--parallelism", "1")
    _kill_when(proc, lambda: any(n.labels.get("navarch-address") == "p_w_1"
                                 for n in view.owned().values()))
    orphan = next(n for n in view.owned().values() if n.labels["navarch-address"] == "p_w_1")
    lock = work.path / "state" / "test.json.lock"
    assert lock.exists(), "the dead apply's lock is left behind"

    work.config(pools={"w": {"nodes": 3}}, sim={"latency": 0.05})
    plan = work.plan_json()
    assert not lock.exists(), "plan took the dead process's lock over and released it"
    assert [(a["address"], a["action"], a["node_id"]) for a in plan["actions"]] == [
        ("pool.w[1]", "adopt", orphan.id), ("pool.w[2]", "create", "")]
    [intent] = plan["intents"]
    assert (intent["address"], intent["name"], intent["kind"]) == (
        "pool.w[1]", orphan.name, "adopt")
    assert intent["outcome"] == f"instance {orphan.id} exists: it is adopted"
    assert plan["actions"][0]["reason"] == "interrupted", "never called an orphan"
    assert work.run("apply", "--auto-approve").code == 0
    assert work.state()["nodes"]["pool.w[1]"]["id"] == orphan.id
    assert len(work.cloud().calls("provision")) == 3, "w[1] was not created twice"
    assert work.state()["intents"] == []


def test_a_requested_replacement_killed_after_its_launch_is_finished_next_time(
        work: Workdir) -> None:
    """`apply --replace` killed while the new node boots: the next plan (without
    --replace) finishes that replacement with the instance it launched; it neither
    throws the new GPU away nor launches a third."""
    work.config(pools={"w": {"nodes": 1}})
    assert work.cli("apply", "--auto-approve").code == 0
    [old] = work.state()["nodes"].values()
    work.config(pools={"w": {"nodes": 1}}, sim={"boot_time": 5})
    view = CloudView(work.cloud_path)
    proc = _start(work, "--replace", "pool.w[0]")
    _kill_when(proc, lambda: len(view.owned()) == 2)
    [new] = [n for n in view.owned().values() if n.id != old["id"]]
    assert read_state(work)["intents"][0]["replaces"] == old["id"]

    work.config(pools={"w": {"nodes": 1}})
    plan = work.plan_json()
    assert [(a["action"], a["reason"], a["node_id"], a["new_node_id"])
            for a in plan["actions"]] == [("replace", "requested", old["id"], new.id)]
    assert plan["intents"][0]["kind"] == "replace"
    assert work.run("apply", "--auto-approve").code == 0
    assert work.state()["nodes"]["pool.w[0]"]["id"] == new.id
    assert [n.id for n in work.cloud().list() if n.status.is_alive] == [new.id]
    assert len(work.cloud().calls("provision")) == 2, "no third launch"


@pytest.mark.parametrize("idempotent", [True, False])
def test_killed_after_the_intent_before_the_cloud_call(work: Workdir,
                                                       idempotent: bool) -> None:
    """A cloud that dedupes launches gets the same launch again (same name and key:
    it returns the instance if one was made); one that doesn't, with no lag, proves
    at once that nothing was made, and the intent is dropped."""
    work.config(pools={"w": {"nodes": 2}}, sim={"latency": 1.0, "idempotent": idempotent})
    journal = work.path / "state" / "test.json.journal"
    proc = _start(work, "--parallelism", "1")
    _kill_when(proc, lambda: journal.exists() and b'"op":"intent"' in journal.read_bytes())
    state = read_state(work)
    assert len(state["intents"]) == 1 and state["nodes"] == {}
    [written] = state["intents"]
    assert CloudView(work.cloud_path).owned() == {}
    work.config(pools={"w": {"nodes": 2}}, sim={"idempotent": idempotent})
    plan = work.plan_json()
    [intent] = plan["intents"]
    assert intent["kind"] == ("resume" if idempotent else "drop")
    assert sorted((a["address"], a["action"]) for a in plan["actions"]) == [
        ("pool.w[0]", "create"), ("pool.w[1]", "create")]
    resumed = [a for a in plan["actions"] if a["intent_id"]]
    if idempotent:
        assert [(a["address"], a["name"], a["idempotency_key"]) for a in resumed] == [
            (written["address"], written["name"], written["idempotency_key"])]
    else:
        assert resumed == [] and "the intent is dropped" in intent["outcome"]
    assert work.run("apply", "--auto-approve").code == 0
    assert work.state()["intents"] == [] and len(work.state()["nodes"]) == 2
    names = {r["name"] for r in work.state()["nodes"].values()}
    assert (written["name"] in names) == idempotent


def test_killed_after_a_terminate_took_effect_the_record_is_forgotten(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 3}})
    assert work.run("apply", "--auto-approve").code == 0
    ids = {a: r["id"] for a, r in work.state()["nodes"].items()}
    work.config(pools={"w": {"nodes": 1}},
                sim={"faults": [{"op": "terminate", "delay": 5}]})
    view = CloudView(work.cloud_path)
    proc = _start(work, "--parallelism", "1")
    _kill_when(proc, lambda: len(view.owned()) < 3)
    gone = set(ids.values()) - set(view.owned())
    assert len(gone) == 1
    work.config(pools={"w": {"nodes": 1}})
    plan = work.plan_json()
    forgotten = actions_of(plan, "forget")
    assert [a["node_id"] for a in forgotten] == list(gone)
    assert forgotten[0]["reason"] == "deleted_outside"
    assert len(actions_of(plan, "delete")) == 1 and len(plan["actions"]) == 2
    assert work.run("apply", "--auto-approve").code == 0
    assert list(work.state()["nodes"]) == ["pool.w[0]"]
    assert set(view.owned()) == {ids["pool.w[0]"]}


def test_killed_mid_replacement_the_deposed_node_is_deleted_next(work: Workdir) -> None:
    pools = {"w": {"nodes": 1}}
    work.config(pools=pools)
    assert work.run("apply", "--auto-approve").code == 0
    old = work.state()["nodes"]["pool.w[0]"]["id"]
    pools = {"w": {"nodes": 1, "instance_type": "gpu_1x_a100"}}
    work.config(pools=pools, sim={"latency": 1.0})
    journal = work.path / "state" / "test.json.journal"
    proc = _start(work)
    # The new node is recorded and the old one deposed: the terminate is in flight.
    _kill_when(proc, lambda: journal.exists() and b'"op":"depose"' in journal.read_bytes())
    work.config(pools=pools)
    plan = work.plan_json()
    assert [(a["action"], a["reason"], a["node_id"]) for a in plan["actions"]] == [
        ("delete", "deposed", old)]
    assert work.run("apply", "--auto-approve").code == 0
    live = CloudView(work.cloud_path).owned()
    assert old not in live and len(live) == 1
    assert work.state()["deposed"] == {}


def test_a_torn_journal_tail_is_ignored(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 2}}, sim={"latency": 1.0})
    journal = work.path / "state" / "test.json.journal"
    proc = _start(work, "--parallelism", "1")
    _kill_when(proc, lambda: journal.exists() and b'"op":"intent"' in journal.read_bytes())
    with open(journal, "ab") as f:  # a write cut short by a power loss
        f.write(b'{"op":"put","address":"pool.w[0]","record":{"id":"fake-')
    work.config(pools={"w": {"nodes": 2}})
    result = work.run("plan", "--format", "json")
    assert result.code == 0, result.err
    assert len(result.json()["actions"]) == 2
    assert work.run("apply", "--auto-approve").code == 0
    assert len(work.state()["nodes"]) == 2


def test_the_independent_model_of_the_plan_agrees_on_a_known_case(work: Workdir) -> None:
    """The harness's model is itself checked: orphans, deposed, scale-down, references."""
    work.config(pools={"head": {"nodes": 1}, "w": {"nodes": 3, "user_data": HEAD_REF}})
    assert work.run("apply", "--auto-approve").code == 0
    work.config(pools={"head": {"nodes": 1, "instance_type": "gpu_1x_a100"},
                       "w": {"nodes": 2, "user_data": HEAD_REF}})
    want = expected_actions(work, read_state(work), CloudView(work.cloud_path).owned())
    assert sorted((a, k, r) for a, k, r, _ in want.values()) == [
        ("pool.head[0]", "replace", "spec_changed"),
        ("pool.w[0]", "replace", "dependency_changed"),
        ("pool.w[1]", "replace", "dependency_changed"),
        ("pool.w[2]", "delete", "scaled_down")]
    plan = work.plan_json()
    assert {a["key"]: (a["address"], a["action"], a["reason"], a["node_id"])
            for a in plan["actions"]} == want


def test_an_orphan_booted_with_an_old_reference_is_not_adopted_as_current(
        work: Workdir) -> None:
    """A kill leaves trainers[0] created (booted with HEAD=<old head ip>) but unrecorded;
    the config then changes the head's type. Adopting trainers[0] while the head is
    replaced records the new head's ip as its reference value, though the instance was
    booted with the old one: it points at a terminated head, and no later plan sees it."""
    pools = {"head": {"nodes": 1}, "trainers": {"nodes": 1, "user_data": HEAD_REF}}
    work.config(pools=pools, sim={"latency": 0.05, "faults": [
        {"op": "provision", "address": "p_trainers_0", "delay": 5}]})
    view = CloudView(work.cloud_path)
    proc = _start(work)
    _kill_when(proc, lambda: any(n.labels.get("navarch-address") == "p_trainers_0"
                                 for n in view.owned().values()))
    work.config(pools={**pools, "head": {"nodes": 1, "instance_type": "gpu_1x_a100"}})
    assert work.run("apply", "--auto-approve").code == 0
    state = work.state()["nodes"]
    trainer = view.owned()[state["pool.trainers[0]"]["id"]]
    assert trainer.user_data == f"HEAD={state['pool.head[0]']['ip_address']}"


def test_the_kill_suite_counts_what_it_claims(tmp_path: Path) -> None:
    """Stats merge and the per-window bookkeeping the suite's assertions rely on."""
    a, b = Stats(kills=2, leaked=0), Stats(kills=3, duplicates=1)
    a.by_strategy["random"] += 2
    b.by_strategy["random"] += 1
    a.merge(b)
    assert (a.kills, a.duplicates, a.by_strategy["random"]) == (5, 1, 3)
    work = Workdir(tmp_path)
    (work.path / "state" / "test.json.journal").write_text(
        json.dumps({"op": "begin", "lineage": "l", "serial": 0}) + "\n"
        + json.dumps({"op": "intent", "intent": {"id": "i", "address": "pool.w[0]",
                                                 "name": "n"}}) + "\n" + '{"op":"pu')
    assert [i["id"] for i in read_state(work)["intents"]] == ["i"]


def test_a_snapshot_temp_file_left_by_a_kill_is_cleaned_by_the_next_holder(
        work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    assert work.run("apply", "--auto-approve").code == 0
    # What a kill between the temporary file's creation and its rename leaves: a whole
    # or partial copy of the state under the dead process's pid (seen by the kill suite).
    leftover = work.path / "state" / "test.json.tmp.4194000"
    leftover.write_text((work.path / "state" / "test.json").read_text()[:100])
    work.config(pools={"w": {"nodes": 2}})
    assert work.run("apply", "--auto-approve").code == 0
    assert not leftover.exists()


def test_an_apply_with_nothing_to_do_still_clears_a_dead_runs_intent(work: Workdir) -> None:
    """Found by the soak with config changes: a run is killed after writing its intent,
    the config is reverted, and `apply` says "No changes" but leaves the intent in state,
    so every later plan reports the same interrupted provision."""
    work.config(pools={"w": {"nodes": 1}})
    assert work.run("apply", "--auto-approve").code == 0
    work.config(pools={"w": {"nodes": 2}}, sim={"latency": 1.0})
    journal = work.path / "state" / "test.json.journal"
    proc = _start(work)
    _kill_when(proc, lambda: journal.exists() and b'"op":"intent"' in journal.read_bytes())
    work.config(pools={"w": {"nodes": 1}})  # reverted
    result = work.run("apply", "--auto-approve")
    assert result.code == 0 and "No changes" in result.out
    assert read_state(work)["intents"] == []
    assert work.plan_json()["intents"] == []

"""What navarch says, Terraform's way: destroy asks and reports with destroy words,
`show` with no state says so, a plan refused for its cost is still shown,
`plan -refresh-only -detailed-exitcode` exits 2 on drift, counted nouns are singular or
plural (never "node(s)"), and the state lock's messages work as given."""

from __future__ import annotations

import threading
import time

from navarch_plan.state.lock import FileLock
from tests.conftest import Workdir


def test_destroy_asks_and_reports_in_destroy_words(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 2}})
    assert work.run("apply", "--auto-approve").code == 0
    declined = work.run("destroy", stdin="no\n")
    assert declined.code == 1
    assert "Do you really want to destroy all resources?" in declined.out
    assert "There is no undo. Only 'yes' will be accepted to confirm." in declined.out
    assert "Destroy cancelled." in declined.out and "Apply" not in declined.out
    assert len(work.state()["nodes"]) == 2
    done = work.run("destroy", stdin="yes\n")
    assert done.code == 0, done.err
    assert "Destroy complete! Resources: 2 destroyed." in done.out
    assert "Apply" not in done.out
    assert work.state()["nodes"] == {}


def test_show_without_state_says_so_and_makes_nothing_up(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    result = work.run("show")
    assert result.code == 0, result.err  # as `terraform show` with no state: "No state."
    assert result.out.startswith("No state yet: ")
    assert "lineage" not in result.out
    assert work.run("show", "--json").json() == {"nodes": {}}
    assert not (work.path / "state" / "test.json").exists(), "show writes nothing"
    assert work.run("apply", "--auto-approve").code == 0
    shown = work.run("show")
    assert "lineage" in shown.out and ": 1 node\n" in shown.out


def test_a_plan_over_budget_is_shown_before_it_is_refused(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 2, "max_hourly_cost": 0.01}})
    for command in ("plan", "apply"):
        result = work.run(command, "--auto-approve" if command == "apply" else "--no-color")
        assert result.code == 1
        assert "+ pool.w[0]" in result.out and "Plan: 2 to add" in result.out, command
        assert "pools.w.max_hourly_cost" in result.err
    as_json = work.run("plan", "--json")
    assert as_json.code == 1 and len(as_json.json()["actions"]) == 2
    assert work.cloud().list() == [], "nothing was created"


def test_refresh_only_detailed_exitcode_exits_2_when_drift_is_found(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 2}})
    assert work.run("apply", "--auto-approve").code == 0
    clean = work.run("plan", "-refresh-only", "-detailed-exitcode")
    assert clean.code == 0, clean.out + clean.err
    victim = work.state()["nodes"]["pool.w[1]"]["id"]
    work.cloud().terminate(victim)
    drifted = work.run("plan", "-refresh-only", "-detailed-exitcode")
    assert drifted.code == 2, drifted.out + drifted.err
    assert work.run("drift").code == 2, "the same answer as `navarch drift`"


def test_counted_nouns_are_singular_or_plural(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}}, nodes={"box": {}})
    valid = work.run("validate")
    assert "2 nodes (1 pool, 1 named node) on 1 provider" in valid.out, valid.out
    work.config(pools={"w": {"nodes": 1}})
    assert "1 node (1 pool, 0 named nodes) on 1 provider" in work.run("validate").out
    assert work.run("apply", "--auto-approve").code == 0
    # (The planner's own "no changes" reason is reworded with partial plans, apart.)
    outputs = [work.run(*c) for c in (["validate"], ["show"], ["output"],
                                      ["destroy", "--auto-approve"])]
    for result in outputs:
        assert "(s)" not in result.out + result.err and "1 nodes" not in result.out
    assert "Resources: 1 destroyed." in outputs[-1].out


def test_one_drifted_object_is_said_in_the_singular(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    assert work.cli("apply", "--auto-approve").code == 0
    work.cloud().terminate(work.state()["nodes"]["pool.w[0]"]["id"])
    said = {"drift": work.cli("drift").out,
            "drift markdown": work.cli("drift", "--format", "markdown").out,
            "plan markdown": work.cli("plan", "--format", "markdown").out}
    assert "Drift in workspace test: 1 object changed outside of navarch" in said["drift"]
    assert "### navarch drift check for `test`: 1 item\n" in said["drift markdown"]
    assert "> 1 object changed outside of navarch: see Drift below." in said["plan markdown"]
    for name, text in said.items():
        assert "(s)" not in text, name


def _held(work: Workdir) -> FileLock:
    lock = FileLock(str(work.path / "state" / "test.json"))
    lock.acquire("test holds it")
    return lock


def test_the_force_unlock_hint_names_the_config_that_was_used(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    (work.path / "navarch.yaml").rename(work.path / "prod.yaml")
    lock = _held(work)
    try:
        result = work.run("plan", "-c", "prod.yaml")
        assert result.code == 1
        assert f"navarch force-unlock -c prod.yaml {lock.info.id}" in result.err, result.err
        hint = result.err.split("release it with: ")[1].split()
        unlocked = work.run(*hint[1:], "--force")
        assert unlocked.code == 0, unlocked.err  # the hint works as given
    finally:
        lock.release()


def test_the_default_config_keeps_the_short_hint(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    lock = _held(work)
    try:
        result = work.run("plan")
        assert f"release it with: navarch force-unlock {lock.info.id}" in result.err
    finally:
        lock.release()


def test_waiting_for_the_lock_says_so_once_on_stderr(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    lock = _held(work)
    releaser = threading.Timer(1.5, lock.release)
    releaser.start()
    started = time.monotonic()
    try:
        result = work.run("plan", "-lock-timeout=30s")
    finally:
        releaser.join()
    assert result.code == 0, result.err
    assert time.monotonic() - started >= 1.5, "it did wait"
    assert result.err.count("Acquiring state lock. This may take a few moments...") == 1
    assert "Acquiring" not in result.out
    free = work.run("plan", "-lock-timeout=30s")
    assert "Acquiring" not in free.err, "said only when it has to wait"

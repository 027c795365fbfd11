"""Ctrl-C during an apply, in a pseudo-terminal, as a user presses it: the first press
says at once what happens (Terraform's words) and what a second press does, lets
running actions finish and starts no new one; a second press stops the waiting within
seconds, keeps every launch recorded, and exits 130; the next plan settles the rest."""

from __future__ import annotations

import json
import os
import time

import pexpect

from tests.conftest import Workdir, navarch_argv, spawn_in_pty

BOOTING = r"waiting for fake-\w+ to boot"  # the live view's line for pool.w[0]


def spawn_apply(work: Workdir) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES")}
    argv = [*navarch_argv(), "apply", "-auto-approve", "-parallelism=1"]
    return spawn_in_pty(argv, work.path, {**env, "TERM": "xterm-256color"})


def finish(child: pexpect.spawn, within: float) -> tuple[int, str]:
    child.expect(pexpect.EOF, timeout=within)
    child.close()
    return child.exitstatus, child.before


def press_twice(child: pexpect.spawn) -> tuple[int, str, float]:
    """Ctrl-C, then (once navarch said it shuts down gracefully) Ctrl-C again: the exit
    code, what followed, and the seconds from the second press to the exit."""
    child.sendintr()
    child.expect("Gracefully shutting down...", timeout=2)
    child.sendintr()
    pressed = time.monotonic()
    code, rest = finish(child, within=30)
    return code, rest, time.monotonic() - pressed


def test_the_first_ctrl_c_says_so_at_once_and_lets_running_actions_finish(
        work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 3}}, sim={"boot_time": 3})
    child = spawn_apply(work)
    child.expect(BOOTING)
    child.sendintr()
    pressed = time.monotonic()
    child.expect("Interrupt received.", timeout=2)
    assert time.monotonic() - pressed < 1.5, "said at once, not when the boot ends"
    child.expect("Please wait for navarch to exit or data loss may occur.")
    child.expect("Gracefully shutting down...")
    child.expect("Press Ctrl-C again")
    code, rest = finish(child, within=30)
    assert code == 130, rest
    assert "pool.w[0]: created" in rest, "the running action finished"
    assert "2 actions not started: pool.w[1], pool.w[2]" in rest
    assert list(work.state()["nodes"]) == ["pool.w[0]"]
    assert len(work.cloud().list()) == 1, "no new action started"


def test_a_second_ctrl_c_stops_waiting_keeps_every_launch_and_exits_130(
        work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 2}}, sim={"boot_time": 120})
    child = spawn_apply(work)
    child.expect(BOOTING)
    child.sendintr()
    child.expect("Gracefully shutting down...", timeout=2)
    time.sleep(1)
    assert child.isalive(), "the first press waits for the booting node"
    child.sendintr()
    pressed = time.monotonic()
    child.expect("Two interrupts received", timeout=2)
    code, rest = finish(child, within=15)
    assert code == 130, rest
    assert time.monotonic() - pressed < 10, "stopped within seconds, not after the boot"
    assert "still provisioning after" in rest and "(stopped waiting: interrupted)" in rest
    launched = work.cloud().list()
    assert len(launched) == 1
    state = work.state()
    kept = {r["id"] for r in state["nodes"].values()} | {
        i.get("node_id") for i in state.get("intents", [])}
    assert launched[0].id in kept, "the launch is recorded (as a record or an intent)"
    plan = work.run("plan", "--json")
    assert plan.code == 0, plan.err
    creates = [a["address"] for a in plan.json()["actions"] if a["action"] == "create"]
    assert creates == ["pool.w[1]"], "w[0] is the booting instance; only w[1] is new"


def test_a_second_ctrl_c_stops_waiting_for_a_retry(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    assert work.run("apply", "--auto-approve").code == 0
    # Every terminate fails as transient, and the next try is 30 s away.
    work.config(pools={"w": {"nodes": 1}},
                sim={"retry": {"base_delay": 30, "max_delay": 30},
                     "faults": [{"op": "terminate", "error": "transient"}] * 5})
    argv = [*navarch_argv(), "destroy", "-auto-approve", "-no-color"]
    child = spawn_in_pty(argv, work.path)
    child.expect(r"retrying in \d+\.\ds")
    code, rest, took = press_twice(child)
    assert code == 130, rest
    assert took < 5, "the 30 s retry wait was cut short"
    assert list(work.state()["nodes"]) == ["pool.w[0]"], "its record stays"
    assert len(work.cloud().list()) == 1


def test_a_second_ctrl_c_stops_waiting_for_a_launch_slot(work: Workdir) -> None:
    """The first region has no capacity; failing over to the second needs the provider's
    next launch slot, 50 s away. A second press cuts that wait: the launch is not sent,
    the apply exits 130 within seconds, and the next plan has only the create to do."""
    doc = {"version": 1, "workspace": "test",
           "providers": {"sim": {"type": "fake", "path": "state/cloud.db",
                                 "faults": [{"op": "provision", "error": "capacity"}],
                                 "rate_limit": {"launches_per_second": 0.02}}},
           "defaults": {"ssh_keys": ["ops"]},
           "pools": {"w": {"nodes": 1, "instance_type": "gpu_1x_a10", "providers": [
               {"name": "sim", "regions": ["us-west-1", "us-east-1"]}]}}}
    work.write(json.dumps(doc))
    child = spawn_in_pty([*navarch_argv(), "apply", "-auto-approve", "-no-color"], work.path)
    child.expect("launching on sim/us-east-1")
    code, rest, took = press_twice(child)
    assert code == 130, rest
    assert took < 5, "the 50 s slot wait was cut short"
    assert "interrupted, so the call was not sent" in rest
    assert work.cloud().list() == [] and work.state()["nodes"] == {}
    assert work.state().get("intents", []) == [], "nothing was sent: no intent stays"
    plan = work.run("plan", "--json")
    assert [(a["address"], a["action"]) for a in plan.json()["actions"]] == [
        ("pool.w[0]", "create")]


def test_a_second_ctrl_c_during_a_lost_launchs_resend_keeps_its_intent(
        work: Workdir) -> None:
    """The launch made its instance but the reply was lost; its re-send (same key) waits
    for the next launch slot, 50 s away. Two presses stop that wait: the re-send is not
    sent, and the first launch's outcome is still unknown, so its intent stays and the
    next plan adopts the instance instead of deleting it as an orphan."""
    doc = {"version": 1, "workspace": "test",
           "providers": {"sim": {"type": "fake", "path": "state/cloud.db",
                                 "faults": [{"op": "provision", "error": "transient",
                                             "effect": True}],
                                 "rate_limit": {"launches_per_second": 0.02}}},
           "defaults": {"ssh_keys": ["ops"]},
           "pools": {"w": {"nodes": 1, "provider": "sim", "region": "us-west-1",
                           "instance_type": "gpu_1x_a10"}}}
    work.write(json.dumps(doc))
    child = spawn_in_pty([*navarch_argv(), "apply", "-auto-approve", "-no-color"], work.path)
    child.expect(r"pool\.w\[0\]")
    time.sleep(1.5)  # the lost reply is behind it; the re-send waits for its slot
    code, rest, took = press_twice(child)
    assert code == 130 and took < 5, rest
    [made] = work.cloud().list()
    [intent] = work.state()["intents"]
    assert intent["name"] == made.name, "the launch whose outcome is unknown stays open"
    del doc["providers"]["sim"]["faults"], doc["providers"]["sim"]["rate_limit"]
    work.write(json.dumps(doc))
    plan = work.plan_json()
    assert [(a["address"], a["action"], a["reason"]) for a in plan["actions"]] == [
        ("pool.w[0]", "adopt", "interrupted")]

"""Apply's guarantees, read off the fake cloud's call log: dependency order, references,
bounded parallelism, partial failure, saved plans, locking and damaged state."""

from __future__ import annotations

import json
import subprocess
import time

from tests.conftest import Workdir, max_in_flight, navarch_argv, owned


def test_depends_on_orders_creates_and_references_hold_real_values(work: Workdir) -> None:
    work.config(
        sim={"latency": 0.1},
        pools={
            "head": {"nodes": 1},
            "trainers": {"nodes": 3, "user_data": "HEAD=${pools.head.nodes[0].ip_address}\n"
                                                  "BOX=${nodes.box.name}"},
            "eval": {"nodes": 2, "depends_on": ["trainers"]},
        },
        nodes={"box": {}},
    )
    plan = work.cli("plan")
    assert "${pools.head.nodes[0].ip_address} = (known after apply)" in plan.out
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.err

    calls = work.cloud().calls("provision")
    by_label = {c["address"]: c for c in calls}
    head, box = by_label["p_head_0"], by_label["n_box"]
    trainers = [by_label[f"p_trainers_{i}"] for i in range(3)]
    evals = [by_label[f"p_eval_{i}"] for i in range(2)]
    assert all(t["started"] >= head["ended"] and t["started"] >= box["ended"] for t in trainers)
    assert all(e["started"] >= max(t["ended"] for t in trainers) for e in evals)

    state = work.state()["nodes"]
    cloud = work.cloud()
    head_ip = state["pool.head[0]"]["ip_address"]
    assert head_ip.startswith("10.")
    for i in range(3):
        record = state[f"pool.trainers[{i}]"]
        assert cloud.user_data(record["id"]) == f"HEAD={head_ip}\nBOX={state['node.box']['name']}"
        assert record["ref_values"]["${pools.head.nodes[0].ip_address}"] == head_ip


def test_replacing_a_referenced_node_replaces_its_dependents(work: Workdir) -> None:
    pools = {"head": {"nodes": 1},
             "trainers": {"nodes": 2, "user_data": "HEAD=${pools.head.nodes[0].ip_address}"},
             "other": {"nodes": 1}}
    work.config(pools=pools)
    assert work.cli("apply", "--auto-approve").code == 0
    plan = work.plan_json("--replace", "pool.head[0]")
    reasons = {a["address"]: a["reason"] for a in plan["actions"]}
    assert reasons == {"pool.head[0]": "requested", "pool.trainers[0]": "dependency_changed",
                       "pool.trainers[1]": "dependency_changed"}
    assert work.cli("apply", "--auto-approve", "--replace", "pool.head[0]").code == 0
    state = work.state()["nodes"]
    new_ip = state["pool.head[0]"]["ip_address"]
    cloud = work.cloud()
    assert all(cloud.user_data(state[f"pool.trainers[{i}]"]["id"]) == f"HEAD={new_ip}"
               for i in range(2))
    assert work.cli("plan", "--detailed-exitcode").code == 0


def test_parallelism_bounds_calls_in_flight(work: Workdir) -> None:
    work.config(sim={"latency": 0.2}, pools={"workers": {"nodes": 20}})
    result = work.cli("apply", "--auto-approve", "--parallelism", "10")
    assert result.code == 0, result.err
    calls = work.cloud().calls("provision")
    assert len(calls) == 20
    assert 8 <= max_in_flight(calls) <= 10


def test_a_failed_provision_skips_dependents_and_the_rest_completes(work: Workdir) -> None:
    # The fake has no capacity for gpu_8x_h100: head fails; its dependents are skipped.
    pools = {"head": {"nodes": 1, "instance_type": "gpu_8x_h100"},
             "trainers": {"nodes": 2, "depends_on": ["head"]},
             "independent": {"nodes": 3}}
    work.config(sim={"capacity": {"gpu_8x_h100": 0}}, pools=pools)
    result = work.cli("apply", "--auto-approve")
    assert result.code == 1
    assert "pool.head[0]: FAILED" in result.out and "no capacity" in result.out
    assert "pool.trainers[0]: skipped (pool.head[0] failed)" in result.out
    assert "1 failed, 2 skipped" in result.out
    live = {n.id: n for n in owned(work.cloud())}
    state = work.state()
    assert sorted(state["nodes"]) == [f"pool.independent[{i}]" for i in range(3)]
    assert {r["id"] for r in state["nodes"].values()} == set(live), "state == what exists"
    assert state["intents"] == []

    work.config(pools=pools)  # capacity restored
    assert work.cli("apply", "--auto-approve").code == 0
    assert len(owned(work.cloud())) == 6
    assert work.cli("plan", "--detailed-exitcode").code == 0


def test_saved_plan_runs_exactly_and_stale_plans_are_refused(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 2}})
    made = work.cli("plan", "--out", "tf.plan")
    assert made.code == 0 and "navarch apply tf.plan" in made.out
    saved = json.loads((work.path / "tf.plan").read_text())
    names = sorted(a["name"] for a in saved["actions"])
    assert work.cli("show", "tf.plan").out.count("create (missing)") == 2
    applied = work.cli("apply", "tf.plan")  # the file is the approval: no prompt
    assert applied.code == 0, applied.err
    assert sorted(n.name for n in owned(work.cloud())) == names

    # Applied once: the state moved on, so the same file is stale now.
    again = work.cli("apply", "tf.plan")
    assert again.code == 1 and "Saved plan is stale" in again.err

    assert work.cli("plan", "--out", "p2.plan").code == 0
    work.config(pools={"workers": {"nodes": 3}})
    stale = work.cli("apply", "p2.plan")
    assert stale.code == 1 and "navarch.yaml changed" in stale.err

    assert work.cli("plan", "--out", "p3.plan").code == 0
    work.cloud().terminate(work.state()["nodes"]["pool.workers[0]"]["id"])
    cloud_moved = work.cli("apply", "p3.plan")
    assert cloud_moved.code == 1 and "instances in the cloud changed" in cloud_moved.err

    assert work.cli("plan", "--out", "p4.plan").code == 0
    edited = json.loads((work.path / "p4.plan").read_text())
    edited["actions"][0]["instance_type"] = "gpu_8x_h100"
    (work.path / "p4.plan").write_text(json.dumps(edited))
    tampered = work.cli("apply", "p4.plan")
    assert tampered.code == 1 and "modified after it was written" in tampered.err


def test_second_concurrent_apply_fails_fast_naming_the_holder(work: Workdir) -> None:
    """The first apply is another process; the second runs here, while it holds the lock."""
    work.config(sim={"latency": 0.2}, pools={"workers": {"nodes": 6}})
    first = subprocess.Popen([*navarch_argv(), "apply", "--auto-approve", "--parallelism", "1"],
                             cwd=work.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    lock = work.path / "state" / "test.json.lock"
    deadline = time.monotonic() + 20
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    second = work.cli("apply", "--auto-approve")
    took = time.monotonic() - started
    first.communicate(timeout=60)
    assert first.returncode == 0
    assert second.code == 1
    assert "Error acquiring the state lock" in second.err
    assert f"pid {first.pid}" in second.err and "for apply" in second.err
    assert "navarch force-unlock" in second.err
    assert took < 5, "fails at once rather than waiting"
    assert len(owned(work.cloud())) == 6 and len(work.state()["nodes"]) == 6


def test_lock_timeout_waits_and_force_unlock_releases(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 1}})
    lock = work.path / "state" / "test.json.lock"
    lock.write_text(json.dumps({"id": "abc-123", "operation": "apply", "who": "ci@elsewhere",
                                "pid": 1, "version": "0", "created": "2026-01-01T00:00:00",
                                "path": "state/test.json"}))
    started = time.monotonic()
    waited = work.cli("plan", "--lock-timeout", "1s")
    assert time.monotonic() - started >= 1.0, "--lock-timeout waited before giving up"
    assert waited.code == 1 and "ci@elsewhere" in waited.err
    wrong = work.cli("force-unlock", "--force", "nope")
    assert wrong.code == 1 and "does not match" in wrong.err
    asked = work.cli("force-unlock", "abc-123", stdin="no\n")
    assert asked.code == 1 and "Do you really want to force-unlock" in asked.out
    assert lock.exists(), "not confirmed: nothing released"
    released = work.cli("force-unlock", "abc-123", stdin="yes\n")
    assert released.code == 0 and not lock.exists()
    again = work.cli("force-unlock", "--force", "abc-123")
    assert again.code == 1 and "is not locked" in again.err
    assert work.cli("plan").code == 0


def test_corrupt_or_newer_state_is_refused_and_left_alone(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 1}})
    assert work.cli("apply", "--auto-approve").code == 0
    assert work.cli("apply", "--auto-approve").code == 0  # no-op run
    path = work.path / "state" / "test.json"
    good = path.read_bytes()

    path.write_bytes(good[: len(good) // 2])
    torn = path.read_bytes()
    result = work.cli("plan")
    assert result.code == 1 and "is not a valid state file" in result.err
    assert "Traceback" not in result.err and result.err.count("\n") == 1
    assert path.read_bytes() == torn, "nothing overwritten"

    newer = json.loads(good)
    newer["format_version"] = 99
    path.write_text(json.dumps(newer))
    result = work.cli("apply", "--auto-approve")
    assert result.code == 1 and "newer navarch-plan" in result.err
    assert json.loads(path.read_text())["format_version"] == 99

    foreign = json.loads(good)
    foreign["workspace"] = "someone-else"
    path.write_text(json.dumps(foreign))
    result = work.cli("plan")
    assert result.code == 1 and "belongs to workspace 'someone-else'" in result.err


def test_one_list_per_provider_per_run_and_providers_listed_concurrently(
        work: Workdir) -> None:
    work.write("""
        version: 1
        workspace: test
        providers:
          east: {type: fake, path: state/east.db, latency: 0.2}
          west: {type: fake, path: state/west.db, latency: 0.2}
        defaults: {ssh_keys: [ops]}
        pools:
          a: {provider: east, instance_type: gpu_1x_a10, region: us-east-1, nodes: 2}
          b: {provider: west, instance_type: gpu_1x_a10, region: us-west-1, nodes: 2}
        """)
    from navarch_plan.providers.fake import FakeProvider

    east = FakeProvider("east", path=str(work.path / "state" / "east.db"))
    west = FakeProvider("west", path=str(work.path / "state" / "west.db"))
    assert work.cli("plan").code == 0
    assert work.cli("apply", "--auto-approve").code == 0
    assert work.cli("plan").code == 0
    for cloud in (east, west):
        assert len(cloud.calls("list")) == 3, "one list() per run: plan, apply, plan"
    east_calls, west_calls = east.calls("list"), west.calls("list")
    for mine, theirs in zip(east_calls, west_calls, strict=True):
        assert mine["started"] < theirs["ended"] and theirs["started"] < mine["ended"], \
            "the two providers' listings did not overlap in time"


def test_sigterm_during_apply_finishes_in_flight_work_and_exits_143(work: Workdir) -> None:
    import signal

    work.config(sim={"latency": 0.3}, pools={"workers": {"nodes": 12}})
    proc = subprocess.Popen([*navarch_argv(), "apply", "--auto-approve", "--parallelism", "2"],
                            cwd=work.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    cloud = work.cloud()
    deadline = time.monotonic() + 30
    while len(cloud.calls("provision")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (out, err)
    assert "Interrupted by SIGTERM" in err and "not started" in err
    created = owned(cloud)
    state = work.state()
    assert 2 <= len(created) < 12
    assert {r["id"] for r in state["nodes"].values()} == {n.id for n in created}
    assert state["intents"] == []
    assert not (work.path / "state" / "test.json.lock").exists()
    assert work.cli("apply", "--auto-approve").code == 0
    assert len(owned(cloud)) == 12


def test_saved_plan_files_are_private(work: Workdir) -> None:
    work.config(pools={"workers": {"nodes": 1}})
    assert work.cli("plan", "--out", "p.plan").code == 0
    assert (work.path / "p.plan").stat().st_mode & 0o777 == 0o600

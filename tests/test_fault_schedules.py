"""Hypothesis draws schedules of provider faults (capacity, transient, rate limit, quota,
a timeout after the cloud already created the instance, a terminate that reported failure
but happened, failing reads) and fleets to move between, and proves:

- after an apply whose refresh succeeded, state never names an instance that is missing;
- whatever the faults left, the next plan is exactly what docs/planning.md says (checked
  against the independent model of tests/crash_harness.py);
- once the faults stop, one apply converges: nothing fails, the next plan is empty;
- no instance with this workspace's labels is left untracked, none is duplicated, and an
  instance of another workspace is never touched.

The faults are set the way a user sets them: in the config (`providers.sim.faults`).
Most examples drive the engine directly (the same code the CLI runs, many examples a
second); a smaller number go through the `navarch` command's main() (Workdir.cli).
Example counts follow the Hypothesis profile (tests/conftest.py): HYPOTHESIS_PROFILE=full
runs the full counts with fresh examples.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from navarch_plan.engine import Engine, load_config
from navarch_plan.errors import NavarchError
from navarch_plan.model import ProvisionRequest
from navarch_plan.planner import PlanOptions
from navarch_plan.providers.fake import FakeProvider
from tests.conftest import FAST_RETRY, Workdir, examples
from tests.crash_harness import CloudView, expected_actions, keyed_config, read_state

TYPES = ["gpu_1x_a10", "gpu_1x_a100"]
FAULTS = [
    {"op": "provision", "error": "capacity"},
    {"op": "provision", "error": "quota"},
    {"op": "provision", "error": "rate_limit", "retry_after": 1},
    {"op": "provision", "error": "transient"},
    {"op": "provision", "error": "transient", "effect": True},  # created, then timed out
    {"op": "provision"},  # this call passes
    {"op": "terminate", "error": "transient"},
    {"op": "terminate", "error": "rate_limit"},
    {"op": "terminate", "error": "transient", "effect": True},  # happened, reported failure
    {"op": "terminate"},
    {"op": "get", "error": "transient"},
    {"op": "list", "error": "transient"},  # the refresh retries; several in a row fail it
]


@st.composite
def fleets(draw: Any) -> dict[str, Any]:
    pools: dict[str, Any] = {}
    for i in range(draw(st.integers(1, 3))):
        name, earlier = f"p{i}", [f"p{j}" for j in range(i)]
        pool: dict[str, Any] = {"instance_type": draw(st.sampled_from(TYPES)),
                                "nodes": draw(st.integers(0, 3))}
        if earlier and draw(st.booleans()):
            target = draw(st.sampled_from(earlier))
            if pools[target]["nodes"]:
                pool["user_data"] = f"H=${{pools.{target}.nodes[0].ip_address}}"
            else:
                pool["depends_on"] = [target]
        if draw(st.booleans()):
            pool["lifecycle"] = {"replace": "destroy_before_create"}
        pools[name] = pool
    return pools


schedules = st.lists(st.sampled_from(FAULTS), min_size=1, max_size=8)


def _seed_foreign(work: Workdir) -> str:
    return work.cloud().provision(ProvisionRequest(
        "other-p0-0-abcd", "gpu_1x_a10", "us-west-1",
        labels={"navarch-workspace": "other", "navarch-address": "p_p0_0"})).id


def _engine(work: Workdir) -> Engine:
    return Engine(load_config(str(work.path / "navarch.yaml"), env={}))


def _apply_in_process(work: Workdir) -> tuple[bool, bool, list[dict[str, Any]]]:
    """(refresh succeeded, apply ok, faults that fired)."""
    with _engine(work) as engine:
        sim = engine.providers["sim"]
        assert isinstance(sim, FakeProvider)
        queued = [f.to_json() for f in sim.faults.pending()]
        refreshed, ok = False, False
        try:
            with engine.locked("apply"):
                plan = engine.plan(PlanOptions())
                refreshed = True
                ok = engine.apply(plan, parallelism=3).ok
        except NavarchError:
            if refreshed:
                raise  # only a failed refresh is expected; apply reports, not raises
        left = [f.to_json() for f in sim.faults.pending()]
    fired = list(queued)
    for fault in left:
        fired.remove(fault)
    return refreshed, ok, fired


def _check_after_faults(work: Workdir, refreshed: bool, fired: list[dict[str, Any]]) -> None:
    state, live = read_state(work), CloudView(work.cloud_path).owned()
    if refreshed:
        missing = {a: r["id"] for a, r in state["nodes"].items() if r["id"] not in live}
        assert not missing, f"state names missing instances after faults {fired}: {missing}"
    # Whatever is left, the next plan (no faults now) says exactly what must happen.
    with _engine(work) as engine, engine.locked("plan"):
        plan = engine.plan(PlanOptions()).to_json()
    got = {a["key"]: (a["address"], a["action"], a["reason"], a["node_id"] or "")
           for a in plan["actions"]}
    assert got == expected_actions(work, state, live), f"after faults {fired}"


def _check_converged(work: Workdir, foreign: str) -> None:
    state, view = read_state(work), CloudView(work.cloud_path)
    config = keyed_config(work, state)
    live = view.owned()
    assert {r["id"] for r in state["nodes"].values()} == set(live), "leaked or untracked"
    assert sorted(state["nodes"]) == sorted(config.desired)
    per_address = Counter(n.labels["navarch-address"] for n in live.values())
    assert all(count == 1 for count in per_address.values()), f"duplicates: {per_address}"
    assert state["intents"] == [] and state["deposed"] == {}
    for address, want in config.desired.items():
        node = live[state["nodes"][address]["id"]]
        assert node.labels["navarch-spec"] == want.spec_hash
        expected = want.user_data
        for ref in want.refs:
            expected = expected.replace(ref.text, str(state["nodes"][ref.address][ref.field]))
        assert node.user_data == expected, f"{address} booted with stale references"
    assert foreign in view.nodes(), "another workspace's instance was touched"


@settings(max_examples=examples(120))  # the "ci" profile runs 40 (tests/conftest.py)
@given(before=fleets(), after=fleets(), runs=st.lists(schedules, min_size=1, max_size=3))
def test_fault_schedules_in_process(before: dict[str, Any], after: dict[str, Any],
                                    runs: list[list[dict[str, Any]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Workdir(Path(tmp))
        foreign = _seed_foreign(work)
        work.config(pools=before)
        assert _apply_in_process(work)[1]
        target = before
        for i, faults in enumerate(runs):
            target = after if i % 2 == 0 else before  # back and forth under faults
            work.config(pools=target, sim={"faults": faults, "retry": FAST_RETRY})
            refreshed, _, fired = _apply_in_process(work)
            work.config(pools=target)
            _check_after_faults(work, refreshed, fired)
        # The faults stop: one apply converges, and then there is nothing to do.
        refreshed, ok, _ = _apply_in_process(work)
        assert refreshed and ok, "one apply without faults converges"
        _check_converged(work, foreign)
        with _engine(work) as engine, engine.locked("plan"):
            assert not engine.plan(PlanOptions()).has_changes


@settings(max_examples=examples(36, least=12))  # "ci": 12, as many as before in processes
@given(before=fleets(), after=fleets(), faults=schedules)
def test_fault_schedules_through_the_cli(before: dict[str, Any], after: dict[str, Any],
                                         faults: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Workdir(Path(tmp))
        foreign = _seed_foreign(work)
        work.config(pools=before)
        assert work.cli("apply", "--auto-approve").code == 0
        work.config(pools=after, sim={"faults": faults, "retry": FAST_RETRY})
        faulty = work.cli("apply", "--auto-approve", "--parallelism", "3")
        assert faulty.code in (0, 1) and "Traceback" not in faulty.err
        if faulty.code == 1:
            assert faulty.err.startswith("Error: ") or "Apply finished with errors" in faulty.out
        work.config(pools=after)
        state, live = read_state(work), CloudView(work.cloud_path).owned()
        plan = work.plan_json()
        assert {a["key"]: (a["address"], a["action"], a["reason"], a["node_id"] or "")
                for a in plan["actions"]} == expected_actions(work, state, live)
        result = work.cli("apply", "--auto-approve")
        assert result.code == 0, result.out + result.err
        _check_converged(work, foreign)
        assert work.cli("plan", "--detailed-exitcode").code == 0


def test_each_fault_kind_does_what_it_says(work: Workdir) -> None:
    """The fake's fault modes themselves, seen from the cloud's own table."""
    cloud = work.cloud(faults=[
        {"op": "provision", "error": "transient", "effect": True},
        {"op": "provision", "error": "capacity"},
        {"op": "provision", "error": "rate_limit", "retry_after": 3},
        {"op": "terminate", "error": "transient", "effect": True},
        {"op": "terminate", "error": "transient"},
    ])
    from navarch_plan.errors import CapacityError, RateLimitError, TransientError

    request = ProvisionRequest("n-1", "gpu_1x_a10", "us-west-1",
                               labels={"navarch-address": "p_w_0"})
    with pytest.raises(TransientError, match="took effect"):
        cloud.provision(request)
    created = [n for n in cloud.list() if n.name == "n-1"]
    assert len(created) == 1, "the timed-out provision created the instance"
    with pytest.raises(CapacityError):
        cloud.provision(request)
    with pytest.raises(RateLimitError) as limited:
        cloud.provision(request)
    assert limited.value.retry_after == 3
    assert len(cloud.list()) == 1, "refusals created nothing"
    with pytest.raises(TransientError):
        cloud.terminate(created[0].id)
    assert cloud.list() == [], "the failed terminate happened"
    second = cloud.provision(request)
    with pytest.raises(TransientError):
        cloud.terminate(second.id)
    assert [n.id for n in cloud.list()] == [second.id], "this failure changed nothing"
    assert cloud.faults.pending() == []
    log = [(c["op"], bool(c["ok"])) for c in cloud.calls()
           if c["op"] in ("provision", "terminate")]
    assert log == [("provision", False), ("provision", False), ("provision", False),
                   ("terminate", False), ("provision", True), ("terminate", False)]


def test_faults_match_by_address_and_keep_their_order(work: Workdir) -> None:
    cloud = work.cloud(faults=[{"op": "provision", "address": "p_b_*", "error": "capacity"},
                               {"op": "provision", "error": "quota"}])
    from navarch_plan.errors import CapacityError, QuotaError

    with pytest.raises(QuotaError):  # the first fault matches only p_b_*
        cloud.provision(ProvisionRequest("a", "gpu_1x_a10", "us-west-1",
                                         labels={"navarch-address": "p_a_0"}))
    with pytest.raises(CapacityError):
        cloud.provision(ProvisionRequest("b", "gpu_1x_a10", "us-west-1",
                                         labels={"navarch-address": "p_b_3"}))
    assert cloud.provision(ProvisionRequest("c", "gpu_1x_a10", "us-west-1")).name == "c"
    cloud.inject({"op": "list", "error": "transient"})
    with pytest.raises(NavarchError):
        cloud.list()
    assert len(cloud.list()) == 1


@pytest.mark.parametrize("fault", [
    {"op": "provision", "error": "capacity", "effect": True},
    {"op": "reboot"},
    {"op": "provision", "error": "meteor"},
    {"op": "provision", "delay": -1},
    {"op": "provision", "eror": "transient"},
])
def test_bad_fault_specs_are_refused_in_the_config(work: Workdir, fault: dict[str, Any]) -> None:
    work.config(pools={"w": {"nodes": 1}}, sim={"faults": [fault]})
    result = work.cli("validate")
    assert result.code == 1 and "providers.sim.faults[0]" in result.err, result.err
    assert "Traceback" not in result.err


def test_a_terminate_that_failed_but_happened_is_not_left_in_state(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 2}})
    assert work.cli("apply", "--auto-approve").code == 0
    work.config(pools={"w": {"nodes": 1}},
                sim={"faults": [{"op": "terminate", "error": "transient", "effect": True}]})
    work.cli("apply", "--auto-approve")
    live = set(CloudView(work.cloud_path).owned())
    state = read_state(work)
    assert {r["id"] for r in state["nodes"].values()} <= live, \
        "after an apply whose refresh succeeded, state names an instance that is gone"


def test_a_failed_create_drops_the_record_of_the_vanished_instance(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    assert work.cli("apply", "--auto-approve").code == 0
    gone = work.state()["nodes"]["pool.w[0]"]["id"]
    work.cloud().terminate(gone)  # deleted in the console
    work.config(pools={"w": {"nodes": 1}},
                sim={"faults": [{"op": "provision", "error": "capacity"}]})
    failed = work.cli("apply", "--auto-approve")
    assert failed.code == 1 and "create (deleted_outside)" in failed.out
    state = read_state(work)
    assert gone not in {r["id"] for r in state["nodes"].values()}, \
        "the apply saw the instance gone, yet state still names it"

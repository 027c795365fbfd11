"""Properties over random fleets: apply converges and the next plan is empty; random
provider failures never make state claim an instance that does not exist, and once
failures stop, applying leaves nothing leaked or duplicated."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from navarch_plan.config import parse_config
from navarch_plan.engine import Engine
from navarch_plan.model import ProvisionRequest
from navarch_plan.planner import PlanOptions
from navarch_plan.planner.ownership import ownership_labels
from navarch_plan.providers.fake import FakeProvider
from tests.conftest import FAST_RETRY, examples

TYPES = ["gpu_1x_a10", "gpu_1x_a100", "gpu_1x_l4"]


@st.composite
def fleets(draw: Any) -> dict[str, Any]:
    count = draw(st.integers(1, 4))
    pools = {}
    for i in range(count):
        name = f"p{i}"
        earlier = [f"p{j}" for j in range(i)]
        pools[name] = {
            "provider": "sim", "region": "us-west-1",
            "instance_type": draw(st.sampled_from(TYPES)),
            "nodes": draw(st.integers(0, 4)),
            "depends_on": draw(st.lists(st.sampled_from(earlier), unique=True)) if earlier
            else [],
        }
        if earlier and draw(st.booleans()):
            target = draw(st.sampled_from(earlier))
            if pools[target]["nodes"]:
                pools[name]["user_data"] = f"H=${{pools.{target}.nodes[0].ip_address}}"
    return pools


def engine_for(folder: Path, pools: dict[str, Any], **sim: Any) -> Engine:
    doc = {"version": 1, "workspace": "prop",
           "providers": {"sim": {"type": "fake", "path": "cloud.db", "retry": FAST_RETRY,
                                 **sim}},
           "defaults": {"ssh_keys": ["k"]}, "pools": pools}
    config = parse_config(json.dumps(doc), str(folder / "navarch.yaml"), {}, str(folder))
    return Engine(config)


def apply_once(engine: Engine) -> bool:
    """Plans and applies once, then closes the engine: a Hypothesis run makes hundreds,
    and each one's cloud connections would hold files open until the collector came."""
    with engine, engine.locked("apply"):
        plan = engine.plan(PlanOptions())
        return engine.apply(plan, parallelism=4).ok


def plan_is_empty(engine: Engine) -> bool:
    with engine, engine.locked("plan"):
        return not engine.plan(PlanOptions()).has_changes


def seed_cloud(folder: Path, pools: dict[str, Any], draw_orphans: list[int]) -> None:
    """Put owned instances (some matching a desired address, some not) and a foreign
    instance into the cloud before navarch ever ran."""
    with engine_for(folder, pools) as engine:
        config = engine.config
    with FakeProvider("sim", path=str(folder / "cloud.db")) as cloud:
        desired = list(config.desired.values())
        for pick in draw_orphans:
            if desired:
                node = desired[pick % len(desired)]
                cloud.provision(ProvisionRequest(f"pre-{pick}", node.instance_type,
                                                 node.region,
                                                 labels=ownership_labels("prop", node)))
        cloud.provision(ProvisionRequest("foreign", "gpu_1x_a10", "us-west-1",
                                         labels={"navarch-workspace": "someone-else"}))


def check_consistent(engine: Engine, converged: bool) -> None:
    with FakeProvider("sim", path=str(Path(engine.config.base_dir) / "cloud.db")) as cloud:
        live = {n.id: n for n in cloud.list()}
    owned = {i: n for i, n in live.items() if n.labels.get("navarch-workspace") == "prop"}
    doc = engine.store.load()
    assert all(r.id in live for r in doc.nodes.values()), "state names a missing instance"
    assert any(n.labels.get("navarch-workspace") == "someone-else" for n in live.values())
    if converged:
        assert {r.id for r in doc.nodes.values()} == set(owned), "leaked or untracked"
        assert sorted(doc.nodes) == sorted(engine.config.desired)
        per_address = Counter(n.labels["navarch-address"] for n in owned.values())
        assert all(c == 1 for c in per_address.values()), "duplicate instances"
        assert doc.intents == {} and doc.deposed == {}


# The "ci" Hypothesis profile (tests/conftest.py) is derandomized, so CI is repeatable,
# and runs a third of these counts; HYPOTHESIS_PROFILE=full runs them all, fresh.
@settings(max_examples=examples(60))
@given(pools=fleets(), orphans=st.lists(st.integers(0, 50), max_size=3), resize=fleets())
def test_apply_converges_and_then_plans_nothing(pools: dict[str, Any], orphans: list[int],
                                                resize: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seed_cloud(folder, pools, orphans)
        engine = engine_for(folder, pools)
        assert apply_once(engine)
        check_consistent(engine, converged=True)
        assert plan_is_empty(engine_for(folder, pools))
        # Then the config changes to another random fleet: converge again.
        engine = engine_for(folder, resize)
        assert apply_once(engine)
        check_consistent(engine, converged=True)
        assert plan_is_empty(engine_for(folder, resize))


@settings(max_examples=examples(50))
@given(pools=fleets(), fail_rate=st.floats(0.05, 0.6), seed=st.integers(0, 10_000),
       then=fleets())
def test_random_failures_never_corrupt_state(pools: dict[str, Any], fail_rate: float,
                                             seed: int, then: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seed_cloud(folder, pools, [])
        for step_pools in (pools, then):
            engine = engine_for(folder, step_pools, fail_rate=fail_rate, seed=seed)
            apply_once(engine)
            check_consistent(engine, converged=False)
        healthy = engine_for(folder, then)
        assert apply_once(healthy)
        check_consistent(healthy, converged=True)
        assert plan_is_empty(engine_for(folder, then))

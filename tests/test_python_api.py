"""The Python API: one public module (`navarch_plan`, with `__all__`), an Engine that
says how to use the state lock instead of failing obscurely, and a Pool that lists and
terminates its nodes and labels them so that the `navarch` command sees them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import navarch_plan
from navarch_plan import (
    Engine,
    FakeProvider,
    NodeStatus,
    NotFoundError,
    Pool,
    PoolEntry,
    ProvisionRequest,
    StateError,
    parse_config,
)
from tests.conftest import ROOT, Workdir, actions_of

PUBLIC = {"Engine", "Pool", "PoolEntry", "Plan", "Action", "Node", "NodeStatus",
          "ProvisionRequest", "InstanceType", "Provider", "FakeProvider", "LambdaProvider",
          "GcpProvider", "AwsProvider", "NavarchError", "ConfigError", "StateError",
          "LockError", "PlanError", "StalePlanError", "CapacityError", "QuotaError",
          "NotFoundError", "load_config", "parse_config", "PlanOptions"}


def test_the_public_names_are_exported_and_resolve() -> None:
    assert set(navarch_plan.__all__) >= PUBLIC
    for name in navarch_plan.__all__:
        assert getattr(navarch_plan, name) is not None, name
    with pytest.raises(AttributeError):
        navarch_plan.NoSuchThing  # noqa: B018


def test_the_readme_imports_from_navarch_plan_only() -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    imports = [line for b in blocks for line in b.splitlines()
               if line.startswith(("from ", "import "))]
    assert imports and all(re.match(r"(from navarch_plan import |import (os|navarch_plan)$)",
                                    line) for line in imports), imports


def _engine(folder: Path) -> Engine:
    text = ("version: 1\nworkspace: lib\nproviders: {sim: {type: fake, path: cloud.db}}\n"
            "state: {path: state.json}\npools:\n  w: {provider: sim, instance_type: "
            "gpu_1x_a10, region: us-west-1, nodes: 1}\n")
    return Engine(parse_config(text, str(folder / "navarch.yaml"), {}, str(folder)))


def test_engine_methods_that_need_the_lock_say_how_to_take_it(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    plan = engine.plan()  # takes the lock itself
    assert plan.summary()["create"] == 1
    with pytest.raises(StateError, match=r"inside `with engine.locked\(\"check_fresh\"\):`"):
        engine.check_fresh(plan, "the plan")
    with pytest.raises(StateError, match=r"Engine.record_drift reads the state"):
        engine.record_drift(plan)
    with engine.locked("check_fresh"):
        engine.check_fresh(plan, "the plan")  # fine under the lock


def _pool(cloud: FakeProvider, **kwargs: str) -> Pool:
    return Pool([PoolEntry("sim", cloud, regions=("us-west-1",),
                           instance_type="gpu_1x_a10")], **kwargs)


def test_a_pool_lists_and_terminates_its_own_nodes_only() -> None:
    full = FakeProvider("east", capacity={"gpu_1x_a10": 0})
    west = FakeProvider("west")
    pool = Pool([PoolEntry("east", full, priority=1, regions=("us-east-1",),
                           instance_type="gpu_1x_a10"),
                 PoolEntry("west", west, priority=2, regions=("us-west-1",),
                           instance_type="gpu_1x_a10")], name="jobs", workspace="lab")
    nodes = [pool.provision(f"job-{i}", index=i) for i in (2, 0, 1)]
    other = Pool(pool.entries, name="other", workspace="lab").provision("x", index=0)
    stranger = west.provision(ProvisionRequest(name="y", instance_type="gpu_1x_a10",
                                               region="us-west-1"))
    assert [n.name for n in pool.list()] == ["job-0", "job-1", "job-2"]
    assert nodes[0].labels["navarch-address"] == "p_jobs_2"
    assert pool.terminate(nodes[1]) is True
    assert [n.name for n in pool.list()] == ["job-1", "job-2"]
    assert pool.terminate(nodes[2].id) is True
    for foreign in (other, stranger):
        with pytest.raises(NotFoundError, match="pool jobs"):
            pool.terminate(foreign)
    assert {n.id for n in west.list() if not n.status.is_gone} >= {other.id, stranger.id}


def test_the_command_adopts_what_a_pool_made_for_its_pool(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})  # workspace test, ssh ops, labels team=ml
    node = _pool(work.cloud(), name="w", workspace="test").provision(
        "made-by-hand", index=0, ssh_key_names=("ops",), labels={"team": "ml"})
    plan = work.plan_json()
    assert [(a["address"], a["node_id"]) for a in actions_of(plan, "adopt")] == \
        [("pool.w[0]", node.id)]
    assert not actions_of(plan, "create")
    assert work.run("apply", "--auto-approve").code == 0
    assert work.state()["nodes"]["pool.w[0]"]["id"] == node.id


def test_the_command_deletes_what_a_pool_made_that_no_config_wants(work: Workdir) -> None:
    work.config(pools={"other": {"nodes": 1}})
    node = _pool(work.cloud(), name="w", workspace="test").provision("stray", index=0)
    deletes = actions_of(work.plan_json(), "delete")
    assert [(a["node_id"], a["reason"]) for a in deletes] == [(node.id, "orphan")]


def test_fake_gpu_count_is_the_catalog_s_unless_a_test_overrides_it() -> None:
    cloud = FakeProvider()
    one, eight = (cloud.provision(ProvisionRequest(name=t, instance_type=t,
                                                   region="us-west-1"))
                  for t in ("gpu_1x_a10", "gpu_8x_h100"))
    assert (one.gpu_count, eight.gpu_count) == (1, 8)
    assert one.status == NodeStatus.RUNNING
    forced = FakeProvider(gpu_count=3).provision(
        ProvisionRequest(name="f", instance_type="gpu_1x_a10", region="us-west-1"))
    assert forced.gpu_count == 3
    assert "test override" in (FakeProvider.__doc__ or "")

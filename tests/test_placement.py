"""`placement: cluster` through the `navarch` command on the fake cloud: the config's
rules (pools only, providers that can, strategies that keep one zone), the spec, the
placement group each launch names, and a failover that moves the whole pool to the next
zone. The EC2 request bodies are in test_placement_aws.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from navarch_plan.config import parse_config
from navarch_plan.planner.ownership import placement_group_name, wanted_placement_groups
from navarch_plan.schemas import validator
from tests.conftest import Workdir, actions_of

ZONES = {"zones": ["us-west-1a", "us-west-1b"]}
GROUP = "navarch-test-train-us-west-1"


def _configure(work: Workdir, pools: dict[str, dict[str, Any]], **kwargs: Any) -> None:
    """work.config, but a pool with a providers list names no `provider` of its own."""
    path = work.config(pools=pools, **kwargs)
    doc = json.loads(path.read_text())
    for pool in doc["pools"].values():
        if "providers" in pool:
            del pool["provider"]
    path.write_text(json.dumps(doc))


def _cluster(nodes: int = 3, **pool: Any) -> dict[str, Any]:
    return {"nodes": nodes, "placement": "cluster", "providers": [{"name": "sim", **ZONES}],
            **pool}


def test_a_cluster_pool_lands_in_one_zone_when_the_first_has_no_room(work: Workdir) -> None:
    """Zone a has room for no node: the first launch fails over to zone b, and the
    pool's other nodes follow it there (the ruled-out zone is skipped)."""
    _configure(work, {"train": _cluster()},
                sim={"capacity": {"gpu_1x_a10@us-west-1a": 0}})
    creates = actions_of(work.plan_json(), "create")
    assert {a["after"]["placement"] for a in creates} == {"cluster"}
    assert list(validator("plan").iter_errors(work.plan_json())) == []
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.err
    records = work.state()["nodes"]
    cloud = work.cloud()
    assert sorted(records) == [f"pool.train[{i}]" for i in range(3)]
    assert {r["zone"] for r in records.values()} == {"us-west-1b"}
    assert {cloud.placement_group(r["id"]) for r in records.values()} == {GROUP}
    assert {r["spec"]["placement"] for r in records.values()} == {"cluster"}
    assert not work.plan_json()["actions"]


def test_a_zone_that_fills_mid_apply_never_splits_a_cluster_pool(work: Workdir) -> None:
    """Zone a has room for two of three: the third node does not fail over to zone b
    (two placement groups cannot talk at cluster speed); it fails, saying why. Once
    zone a has room, the next apply puts it beside the others; a later node follows
    the recorded ones there too."""
    _configure(work, {"train": _cluster()},
               sim={"capacity": {"gpu_1x_a10@us-west-1a": 2}})
    result = work.cli("apply", "--auto-approve", "--parallelism", "1")
    assert result.code == 1
    assert ("us-west-1b skipped: the pool's nodes run in sim/us-west-1a (placement: "
            "cluster keeps them in one zone)") in result.out
    records = work.state()["nodes"]
    assert sorted(records) == ["pool.train[0]", "pool.train[1]"]
    assert {n.zone for n in work.cloud().list()} == {"us-west-1a"}, "none in zone b"
    _configure(work, {"train": _cluster(4)},
               sim={"capacity": {"gpu_1x_a10@us-west-1a": 4}})
    assert work.cli("apply", "--auto-approve").code == 0
    assert {r["zone"] for r in work.state()["nodes"].values()} == {"us-west-1a"}
    assert len(work.state()["nodes"]) == 4
    # A later apply: zone a is full again; the recorded nodes keep the fifth out of b.
    _configure(work, {"train": _cluster(5)},
               sim={"capacity": {"gpu_1x_a10@us-west-1a": 4}})
    later = work.cli("apply", "--auto-approve")
    assert later.code == 1 and "us-west-1b skipped" in later.out
    assert {n.zone for n in work.cloud().list()} == {"us-west-1a"}


def test_other_pools_keep_their_spec_and_launch_without_a_group(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    assert work.cli("apply", "--auto-approve").code == 0
    record = work.state()["nodes"]["pool.w[0]"]
    assert "placement" not in record["spec"]
    assert work.cloud().placement_group(record["id"]) == ""


def test_turning_cluster_placement_on_replaces_the_pool(work: Workdir) -> None:
    _configure(work, {"train": {"nodes": 1, "providers": [{"name": "sim", **ZONES}]}})
    assert work.cli("apply", "--auto-approve").code == 0
    _configure(work, {"train": _cluster(1)})
    [action] = work.plan_json()["actions"]
    assert (action["action"], action["reason"]) == ("replace", "spec_changed")
    assert "placement" in action["changed"]


def test_a_spreading_strategy_is_refused_with_cluster_placement(work: Workdir) -> None:
    for strategy in ("round-robin", "availability"):
        _configure(work, {"train": _cluster(strategy=strategy)})
        result = work.cli("validate")
        assert result.code == 1
        assert "navarch.yaml:" in result.err
        assert f"strategy {strategy} spreads a pool's nodes" in result.err
        assert "use priority or cost" in result.err


@pytest.mark.parametrize(("provider", "instance_type", "title"), [
    ("{type: lambda, api_key_env: LAMBDA_API_KEY}", "gpu_1x_a10", "Lambda Cloud")])
def test_a_cloud_without_cluster_placement_is_a_load_error(
        work: Workdir, provider: str, instance_type: str, title: str) -> None:
    path = work.write(f"""\
        version: 1
        workspace: test
        providers:
          c: {provider}
        pools:
          train:
            provider: c
            instance_type: {instance_type}
            region: us-central1
            nodes: 2
            placement: cluster
        """)
    result = work.cli("validate")
    assert result.code == 1
    assert f"{path.name}:11:" in result.err
    assert f"{title} has no cluster placement (provider 'c'); remove placement: " \
        "cluster" in result.err


def test_a_named_node_cannot_be_a_cluster(work: Workdir) -> None:
    work.config(nodes={"head": {"placement": "cluster"}})
    result = work.cli("validate")
    assert result.code == 1
    assert "nodes.head.placement: unknown key 'placement'" in result.err


def test_group_names_fit_every_cloud() -> None:
    assert placement_group_name("test", "train", "us-west-1") == GROUP
    long = placement_group_name("w" * 60, "p" * 30, "northamerica-northeast1")
    assert len(long) == 63 and long.startswith("navarch-www")
    assert long != placement_group_name("w" * 60, "p" * 30, "northamerica-northeast2")
    assert placement_group_name("my_ws", "a", "r") == "navarch-my-ws-a-r"


def test_the_groups_a_config_wants(work: Workdir) -> None:
    _configure(work, {"train": _cluster(2), "w": {"nodes": 1}})
    config = parse_config((work.path / "navarch.yaml").read_text(), "navarch.yaml", {},
                          str(work.path))
    assert wanted_placement_groups("test", config.desired.values()) == {GROUP}

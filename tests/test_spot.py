"""spot_policy through the `navarch` command on the fake cloud: spot pools plan and
apply as spot, `auto` falls back to on-demand when spot is refused, a reclaimed spot
node comes back as `preempted` (in plan and drift), a cloud without spot is one clear
load error. The cloud clients' request bodies are in test_spot_requests.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from navarch_plan.catalog.facts import purchase_problem
from navarch_plan.config import parse_config
from navarch_plan.config.desired import ON_DEMAND, SPOT
from navarch_plan.errors import ConfigError
from navarch_plan.providers.fake import FakeProvider
from navarch_plan.schemas import validator
from navarch_plan.state.model import Intent
from tests.conftest import Workdir, actions_of

NODE = "pool.w[0]"


def _applied(work: Workdir, **pool: Any) -> dict[str, Any]:
    work.config(pools={"w": {"nodes": 1, **pool}})
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.err
    return work.state()["nodes"][NODE]


def test_a_spot_pool_plans_and_applies_spot_instances(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 2, "spot_policy": "spot"}})
    plan = work.plan_json()
    creates = actions_of(plan, "create")
    assert [a["candidates"] for a in creates] == [[{
        "provider": "sim", "region": "us-west-1", "zone": "", "instance_type": "gpu_1x_a10",
        "price_per_hr": None, "purchase": "spot"}]] * 2
    # Spot prices are not in the offers: unknown, never the on-demand price.
    assert {a["cost_after"] for a in creates} == {None}
    assert plan["cost"]["complete"] is False
    assert all(a["after"]["purchase"] == "spot" for a in creates)
    assert list(validator("plan").iter_errors(plan)) == []
    text = work.cli("plan").out
    assert "us-west-1  gpu_1x_a10 (spot, price unknown)" in text
    assert "Hourly cost: at least $0.00 -> at least $0.00 (change unknown)" in text
    assert "| `gpu_1x_a10` (spot) | unknown |" in work.cli("plan", "--format", "markdown").out
    assert work.cli("apply", "--auto-approve").code == 0
    cloud = work.cloud()
    records = work.state()["nodes"]
    assert {cloud.purchase(r["id"]) for r in records.values()} == {"spot"}
    assert {r["spec"]["purchase"] for r in records.values()} == {"spot"}
    assert not work.plan_json()["actions"]


def test_on_demand_specs_are_unchanged_by_spot_policy(work: Workdir) -> None:
    """An explicit on-demand policy is the default: no `purchase` in spec or
    candidates, so existing nodes are not replaced on upgrade."""
    record = _applied(work)
    assert "purchase" not in record["spec"]
    assert work.cloud().purchase(record["id"]) == ON_DEMAND
    work.config(pools={"w": {"nodes": 1, "spot_policy": "on-demand"}})
    assert not work.plan_json()["actions"]


def test_moving_a_pool_to_spot_replaces_its_nodes(work: Workdir) -> None:
    _applied(work)
    work.config(pools={"w": {"nodes": 1, "spot_policy": "spot"}})
    [action] = work.plan_json()["actions"]
    assert (action["action"], action["reason"]) == ("replace", "spec_changed")
    assert "purchase" in action["changed"]


def test_auto_falls_back_to_on_demand_when_spot_is_refused(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1, "spot_policy": "auto"}},
                sim={"faults": [{"op": "provision", "error": "capacity", "purchase": "spot"}]})
    [create] = work.plan_json()["actions"]
    assert [(c["instance_type"], c.get("purchase", ON_DEMAND)) for c in create["candidates"]] \
        == [("gpu_1x_a10", SPOT), ("gpu_1x_a10", ON_DEMAND)]
    # The on-demand fallback keeps its catalog price; the spot one is unknown.
    assert create["candidates"][0]["price_per_hr"] is None
    assert create["candidates"][1]["price_per_hr"] is not None
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.err
    assert "sim/us-west-1 (spot) no capacity, trying the next candidate" in result.out + \
        result.err
    record = work.state()["nodes"][NODE]
    assert work.cloud().purchase(record["id"]) == ON_DEMAND
    assert "purchase" not in record["spec"]
    # The on-demand node is in spec for an auto pool: nothing to do.
    assert not work.plan_json()["actions"]


def test_a_spot_quota_leaves_on_demand_in_that_region_to_try(work: Workdir) -> None:
    """Spot quotas are their own: a regional quota error on a spot launch rules out the
    spot candidates there, not the on-demand ones."""
    work.config(pools={"w": {"nodes": 2, "spot_policy": "auto"}},
                sim={"faults": [{"op": "provision", "error": "quota", "purchase": "spot"}]})
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.err
    out = result.out + result.err
    assert out.count("(spot) over quota, trying the next candidate") == 1
    assert "(spot) ruled out earlier in this run -> sim/us-west-1 created" in out
    cloud = work.cloud()
    assert [cloud.purchase(r["id"]) for r in work.state()["nodes"].values()] == [
        ON_DEMAND, ON_DEMAND]


def test_auto_with_spot_available_buys_spot(work: Workdir) -> None:
    record = _applied(work, spot_policy="auto")
    assert work.cloud().purchase(record["id"]) == SPOT


def test_a_preempted_spot_node_comes_back_as_preempted(work: Workdir) -> None:
    record = _applied(work, spot_policy="spot")
    work.cloud().preempt(record["id"])
    plan = work.plan_json()
    assert [(a["action"], a["reason"]) for a in plan["actions"]] == [("create", "preempted")]
    assert "spot instance was taken back" in plan["actions"][0]["detail"]
    assert [(d["kind"], d["node_id"]) for d in plan["drift"]] == [("preempted", record["id"])]
    assert list(validator("plan").iter_errors(plan)) == []
    drift = work.cli("drift", "--format", "json")
    report = json.loads(drift.out)
    assert report["summary"]["by_kind"] == {"preempted": 1}
    assert list(validator("drift").iter_errors(report)) == []
    assert work.cli("apply", "--auto-approve").code == 0
    again = work.state()["nodes"][NODE]
    assert again["id"] != record["id"] and work.cloud().purchase(again["id"]) == SPOT


def test_a_spot_node_listed_as_preempted_is_replaced_as_preempted(work: Workdir) -> None:
    record = _applied(work, spot_policy="spot")
    work.cloud().preempt(record["id"], listed=True)
    plan = work.plan_json()
    assert [(a["action"], a["reason"]) for a in plan["actions"]] == [("replace", "preempted")]
    assert [d["kind"] for d in plan["drift"]] == ["preempted"]


def test_a_vanished_auto_node_bought_spot_reads_as_preempted(work: Workdir) -> None:
    record = _applied(work, spot_policy="auto")
    work.cloud().terminate(record["id"])  # gone without a word: spot, so preempted
    assert [a["reason"] for a in work.plan_json()["actions"]] == ["preempted"]


def test_an_on_demand_node_deleted_is_still_deleted_outside(work: Workdir) -> None:
    record = _applied(work)
    work.cloud().terminate(record["id"])
    plan = work.plan_json()
    assert [a["reason"] for a in plan["actions"]] == ["deleted_outside"]
    assert [d["kind"] for d in plan["drift"]] == ["deleted_outside"]


LAMBDA_HEAD = """\
version: 1
workspace: test
providers:
  l: {type: lambda, api_key_env: LAMBDA_KEY}
"""


@pytest.mark.parametrize(("text", "place"), [
    (LAMBDA_HEAD + "pools:\n  w: {provider: l, instance_type: gpu_1x_a10, region: us-east-1,"
     " ssh_keys: [a], nodes: 1, spot_policy: spot}\n", "6:91: pools.w.spot_policy"),
    (LAMBDA_HEAD + "defaults: {spot_policy: spot}\npools:\n  w: {provider: l, instance_type:"
     " gpu_1x_a10, region: us-east-1, ssh_keys: [a], nodes: 1}\n", "5:12: defaults.spot_policy"),
])
def test_spot_on_a_cloud_without_spot_is_one_clear_load_error(work: Workdir, text: str,
                                                              place: str) -> None:
    work.write(text)
    result = work.cli("validate")
    assert result.code == 1
    assert result.err == (f"Error: navarch.yaml:{place}: Lambda Cloud sells no spot "
                          "instances; use spot_policy: auto or on-demand\n")


def test_auto_on_a_cloud_without_spot_buys_on_demand_there(work: Workdir) -> None:
    path = work.write(LAMBDA_HEAD + "  sim: {type: fake, path: state/cloud.db}\n"
                      "pools:\n  w:\n    spot_policy: auto\n    ssh_keys: [a]\n"
                      "    instance_type: gpu_1x_a10\n    providers:\n"
                      "      - {name: l, regions: [us-east-1]}\n"
                      "      - {name: sim, regions: [us-west-1]}\n    nodes: 1\n")
    config = parse_config(path.read_text(), "navarch.yaml", {})
    candidates = config.desired[NODE].candidates
    assert [(p.provider, p.purchase) for p in candidates] == [
        ("sim", SPOT), ("l", ON_DEMAND), ("sim", ON_DEMAND)]


def test_gcp_spot_pools_resolve_gpus_to_types_sold_as_spot() -> None:
    """a3-highgpu-1g is sold only spot or flex-start: an on-demand pool of one H100
    finds no type, a spot pool finds it."""
    head = ("version: 1\nworkspace: t\nproviders:\n  g: {type: gcp, project: p}\n"
            "pools:\n  w: {provider: g, gpu: H100:1, region: us-central1, "
            "zone: us-central1-a, nodes: 1")
    spot = parse_config(head + ", spot_policy: spot}\n", "navarch.yaml", {})
    assert {(p.instance_type, p.purchase) for p in spot.desired[NODE].candidates} == {
        ("a3-highgpu-1g", SPOT)}
    with pytest.raises(ConfigError, match="offers the requested GPUs on-demand"):
        parse_config(head + "}\n", "navarch.yaml", {})


def test_only_a_catalog_that_records_purchase_models_rules_spot_out() -> None:
    """GCP's table says how each type is sold; the others record on-demand only because
    nobody read their other ways, which says nothing against spot."""
    assert purchase_problem("gcp", "a3-highgpu-1g", SPOT) is None
    assert purchase_problem("aws", "g5.xlarge", SPOT) is None
    assert purchase_problem("gcp", "a3-highgpu-1g", ON_DEMAND) is not None


def test_intents_without_a_purchase_read_as_on_demand() -> None:
    old = {"id": "i", "address": NODE, "provider": "sim", "region": "r", "name": "n",
           "started_at": "t"}
    intent = Intent(**old)
    assert intent.placement_key[-1] == ON_DEMAND
    assert intent.to_json() == {**old, "zone": "", "instance_type": "",
                                "idempotency_key": "", "node_id": ""}
    spot = Intent(**old, purchase=SPOT)
    assert Intent(**spot.to_json()) == spot and spot.to_json()["purchase"] == SPOT


@pytest.mark.parametrize("purchase", [SPOT, ON_DEMAND])
def test_an_interrupted_launch_is_resent_bought_the_way_it_was(purchase: str) -> None:
    """The intent names its placement with the purchase model, so an auto pool's
    resent launch goes first where the lost one went: spot, or the on-demand fallback."""
    from tests.planner_world import BASE, World, config
    world = World(config(BASE.replace("    nodes: 3\n", "    nodes: 3\n    spot_policy: auto\n")))
    address = "pool.workers[1]"
    record = world.state.nodes.pop(address)
    world.live = [n for n in world.live if n.id != record.id]
    world.state.intents["i-1"] = Intent(
        id="i-1", address=address, provider="sim", region="us-west-1", name="ws-w-1-zzzz",
        started_at="2026-01-01T00:00:00+00:00", instance_type="gpu_1x_a100",
        idempotency_key="key-1", purchase=purchase)
    plan = world.plan(idempotent=frozenset({"sim"}))
    [action] = [a for a in plan["actions"] if a["address"] == address]
    assert (action["action"], action["intent_id"]) == ("create", "i-1")
    assert action["candidates"][0].get("purchase", ON_DEMAND) == purchase
    assert len(action["candidates"]) == 2


def test_the_spot_example_plans_three_policies_and_applies(work: Workdir) -> None:
    example = (Path(__file__).parent.parent / "examples" / "spot.yaml").read_text()
    (work.path / "examples").mkdir()
    (work.path / "examples" / "spot.yaml").write_text(example)
    args = ("-c", "examples/spot.yaml")
    plan = json.loads(work.cli("plan", *args, "--format", "json").out)
    first = {a["group"]: a["candidates"][0].get("purchase", ON_DEMAND) if a["candidates"]
             else ON_DEMAND for a in plan["actions"]}
    assert first == {"batch": SPOT, "trainers": SPOT, "serving": ON_DEMAND}
    assert plan["cost"]["pools"]["serving"]["complete"] is True
    # batch's spot price is known (the fake's spot_prices); trainers' is not.
    assert plan["cost"]["pools"]["batch"] == {"hourly_before": 0.0, "hourly_after": 0.6,
                                              "hourly_delta": 0.6, "complete": True}
    assert plan["cost"]["pools"]["trainers"]["complete"] is False
    applied = work.cli("apply", *args, "--auto-approve")
    assert applied.code == 0, applied.err
    assert applied.out.count("(spot) no capacity, trying the next candidate") == 1
    cloud = FakeProvider("sim", path=str(work.path / "state" / "spot-cloud.db"))
    records = work.state("spot-demo")["nodes"]
    bought = sorted((address, cloud.purchase(r["id"])) for address, r in records.items())
    assert bought == [("pool.batch[0]", SPOT), ("pool.batch[1]", SPOT),
                      ("pool.serving[0]", ON_DEMAND), ("pool.trainers[0]", ON_DEMAND),
                      # the stock-out ruled spot out there for the rest of the run
                      ("pool.trainers[1]", ON_DEMAND)]

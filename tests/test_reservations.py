"""Reservations through the `navarch` command on the fake cloud: a pool on a capacity
reservation plans its reserved candidate first at $0 marginal, applies into it, and
fails over to on-demand when the reservation is full; a cloud without reservations is
one clear load error. The cloud clients' request bodies are in
test_reservations_requests.py."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from navarch_plan.config import parse_config
from navarch_plan.config.desired import ON_DEMAND, RESERVATION
from navarch_plan.schemas import validator
from tests.conftest import Workdir, actions_of

NODE = "pool.w[0]"
RESERVED = {"nodes": 1, "reservation": "res-a10"}


def _purchases(create: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["instance_type"], c.get("purchase", ON_DEMAND)) for c in create["candidates"]]


def test_a_reserved_pool_plans_its_reservation_first_at_no_marginal_cost(
        work: Workdir) -> None:
    work.config(pools={"w": RESERVED})
    plan = work.plan_json()
    [create] = actions_of(plan, "create")
    assert _purchases(create) == [("gpu_1x_a10", RESERVATION), ("gpu_1x_a10", ON_DEMAND)]
    reserved, on_demand = create["candidates"]
    assert reserved["price_per_hr"] == 0.0 and on_demand["price_per_hr"] > 0
    assert create["cost_after"] == 0.0
    assert create["after"]["reservation"] == "res-a10"
    assert plan["cost"]["hourly_after"] == 0.0 and plan["cost"]["complete"] is True
    assert list(validator("plan").iter_errors(plan)) == []
    text = work.cli("plan").out
    assert "us-west-1  gpu_1x_a10 (reserved)" in text
    assert "Hourly cost: $0.00 -> $0.00 (no change); 1 instance at $0.00/h (reserved)" in text
    assert "| `gpu_1x_a10` (reserved) | $0.00/h (reserved) |" in work.cli(
        "plan", "--format", "markdown").out


def test_a_reserved_pool_applies_into_its_reservation(work: Workdir) -> None:
    work.config(pools={"w": RESERVED})
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.err
    record = work.state()["nodes"][NODE]
    assert work.cloud().purchase(record["id"]) == RESERVATION
    assert record["spec"]["reservation"] == "res-a10"
    assert list(validator("state").iter_errors(work.state())) == []
    assert not work.plan_json()["actions"]


def test_a_full_reservation_fails_over_to_on_demand(work: Workdir) -> None:
    work.config(pools={"w": RESERVED}, sim={"faults": [
        {"op": "provision", "error": "capacity", "purchase": "reservation"}]})
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.err
    assert "sim/us-west-1 (reserved) no capacity, trying the next candidate" in \
        result.out + result.err
    record = work.state()["nodes"][NODE]
    assert work.cloud().purchase(record["id"]) == ON_DEMAND
    assert "reservation" not in record["spec"]
    # The on-demand fallback is one of the pool's candidates: in spec, nothing to do.
    assert not work.plan_json()["actions"]


def test_a_reservation_on_one_providers_entry_leaves_the_others_on_demand(
        work: Workdir) -> None:
    work.write("""\
        version: 1
        workspace: test
        providers:
          sim: {type: fake, path: state/cloud.db}
          sim2: {type: fake}
        pools:
          w:
            nodes: 1
            region: us-west-1
            providers:
              - {name: sim, instance_type: gpu_1x_a10}
              - {name: sim2, instance_type: gpu_1x_a100, reservation: res-a100}
        """)
    [create] = actions_of(work.plan_json(), "create")
    assert _purchases(create) == [("gpu_1x_a100", RESERVATION), ("gpu_1x_a10", ON_DEMAND),
                                  ("gpu_1x_a100", ON_DEMAND)]


def test_pools_without_a_reservation_keep_their_spec(work: Workdir) -> None:
    """No `reservation` key in spec unless set: existing nodes are not replaced on
    upgrade. Adding a reservation to a pool leaves its running on-demand nodes be (the
    on-demand fallback is still a candidate); a new node goes into the reservation."""
    work.config(pools={"w": {"nodes": 1}})
    assert work.cli("apply", "--auto-approve").code == 0
    record = work.state()["nodes"][NODE]
    assert "reservation" not in record["spec"] and "purchase" not in record["spec"]
    work.config(pools={"w": {**RESERVED, "nodes": 2}})
    [create] = work.plan_json()["actions"]
    assert (create["address"], create["action"]) == ("pool.w[1]", "create")
    assert _purchases(create)[0] == ("gpu_1x_a10", RESERVATION)


def test_a_cloud_without_reservations_is_a_load_error(work: Workdir) -> None:
    work.write("""\
        version: 1
        workspace: test
        providers:
          lam: {type: lambda, api_key_env: LAMBDA_KEY}
        pools:
          w: {provider: lam, instance_type: gpu_1x_a10, region: us-east-1, nodes: 1,
              reservation: res-1}
        """)
    result = work.cli("validate")
    assert result.code == 1
    assert "navarch.yaml:7:" in result.err
    assert "Lambda Cloud has no capacity reservations to launch into" in result.err


def test_a_malformed_ec2_reservation_id_is_a_load_error(work: Workdir) -> None:
    work.write("""\
        version: 1
        workspace: test
        providers:
          ec2: {type: aws, region: us-east-1}
        pools:
          w: {provider: ec2, instance_type: g5.xlarge, nodes: 1, reservation: res-1}
        """)
    result = work.cli("validate")
    assert result.code == 1
    assert "navarch.yaml:6:" in result.err
    assert "'res-1' is not an EC2 capacity reservation id" in result.err


def _gcp_pool(instance_type: str) -> str:
    return f"""\
        version: 1
        workspace: test
        providers:
          gce: {{type: gcp, project: p}}
        pools:
          w: {{provider: gce, instance_type: {instance_type}, zone: us-central1-a,
              region: us-central1, nodes: 1, reservation: ultra-block}}
        """


def test_a_type_sold_only_on_reservations_loads_with_one(work: Workdir) -> None:
    """a3-ultragpu-8g is not sold on-demand: on a reservation it is a candidate, and
    its (impossible) on-demand fallback is left out instead of failing the load."""
    ultra = parse_config(textwrap.dedent(_gcp_pool("a3-ultragpu-8g")), "navarch.yaml", {})
    assert [(p.instance_type, p.purchase, p.reservation)
            for p in ultra.desired[NODE].candidates] == [
        ("a3-ultragpu-8g", RESERVATION, "ultra-block")]
    work.write(_gcp_pool("a3-highgpu-1g"))
    result = work.cli("validate")
    assert result.code == 1
    assert "navarch.yaml:6:" in result.err
    assert "a3-highgpu-1g is not sold reservation on gcp: only as spot, flex-start" in \
        result.err


def test_removing_the_reservation_replaces_the_nodes_in_it(work: Workdir) -> None:
    work.config(pools={"w": RESERVED})
    assert work.cli("apply", "--auto-approve").code == 0
    work.config(pools={"w": {"nodes": 1}})
    [action] = work.plan_json()["actions"]
    assert (action["action"], action["reason"]) == ("replace", "spec_changed")
    assert "reservation" in action["changed"]


def test_the_reservations_example_plans_spot_auto_and_reserved_and_applies(
        work: Workdir) -> None:
    example = (Path(__file__).parent.parent / "examples" / "reservations.yaml").read_text()
    (work.path / "examples").mkdir()
    (work.path / "examples" / "reservations.yaml").write_text(example)
    args = ("-c", "examples/reservations.yaml")
    plan = json.loads(work.cli("plan", *args, "--format", "json").out)
    first = {a["group"]: a["candidates"][0].get("purchase", ON_DEMAND)
             for a in plan["actions"]}
    assert first == {"batch": "spot", "finetune": "spot", "trainers": RESERVATION}
    assert plan["cost"]["pools"]["trainers"] == {**plan["cost"]["pools"]["trainers"],
                                                 "hourly_after": 0.0, "complete": True}
    assert "3 instances at $0.00/h (reserved)" in work.cli("plan", *args).out
    # One launch at a time, in address order: a full reservation is ruled out for the rest
    # of the run, so with launches in parallel which nodes got in first would vary.
    result = work.cli("apply", *args, "--auto-approve", "--parallelism", "1")
    assert result.code == 0, result.err
    assert "pool.trainers[2]: sim/us-west-1 (reserved) no capacity -> sim/us-west-1 " \
        "created" in result.out + result.err
    state = json.loads((work.path / "state" / "reservations-demo.json").read_text())
    trainers = {a: r for a, r in state["nodes"].items() if a.startswith("pool.trainers")}
    assert [r["spec"].get("reservation") for _, r in sorted(trainers.items())] == [
        "h100-block", "h100-block", None]


def test_a_saved_plan_applies_into_the_reservation_it_names(work: Workdir) -> None:
    """apply of a saved plan reads each candidate's purchase back: the reserved one is
    the config's reserved placement, reservation and all."""
    work.config(pools={"w": RESERVED})
    assert work.cli("plan", "--out", "w.plan").code == 0
    result = work.cli("apply", "w.plan")
    assert result.code == 0, result.err
    record = work.state()["nodes"][NODE]
    assert work.cloud().purchase(record["id"]) == RESERVATION
    assert record["spec"]["reservation"] == "res-a10"


def test_the_fake_cloud_has_room_on_a_reservation_when_its_stock_is_out(
        work: Workdir) -> None:
    """A reservation is capacity held apart: the fake's `capacity:` stock-out refuses
    on-demand launches of the type, not reserved ones."""
    work.config(pools={"w": {**RESERVED, "nodes": 2}}, sim={"capacity": {"gpu_1x_a10": 0}})
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.err
    cloud = work.cloud()
    assert [cloud.purchase(r["id"]) for r in work.state()["nodes"].values()] == [
        RESERVATION, RESERVATION]
    work.config(pools={"w": {"nodes": 1, "instance_type": "gpu_1x_a10"}},
                sim={"capacity": {"gpu_1x_a10": 0}})
    assert work.cli("apply", "--auto-approve").code == 1  # on-demand: no stock

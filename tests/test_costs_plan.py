"""The hourly cost a plan shows counts every instance this state owns that bills:
orphans (owned, not in state) and unhealthy nodes too; adopting an instance that
already bills changes nothing; `plan --destroy` shows the whole amount going away.
All through `navarch plan` on the fake cloud (gpu_1x_a10 costs $0.75/h there)."""

from __future__ import annotations

from typing import Any

from navarch_plan.model import NodeStatus
from tests.conftest import Workdir, actions_of


def two_nodes(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 2}})
    assert work.run("apply", "--auto-approve").code == 0


def orphan_one(work: Workdir) -> None:
    """Forget pool.w[1] in state: its instance keeps running and billing."""
    assert work.run("state", "rm", "pool.w[1]").code == 0


def cost(plan: dict[str, Any]) -> tuple[float, float, float]:
    c = plan["cost"]
    return c["hourly_before"], c["hourly_after"], c["hourly_delta"]


def test_adopting_an_instance_that_bills_already_costs_nothing(work: Workdir) -> None:
    two_nodes(work)
    orphan_one(work)
    plan = work.plan_json()
    assert [a["address"] for a in actions_of(plan, "adopt")] == ["pool.w[1]"]
    assert cost(plan) == (1.5, 1.5, 0.0)
    text = work.run("plan")
    assert "Hourly cost: $1.50 -> $1.50 (no change)" in text.out
    assert "+$" not in text.out
    markdown = work.run("plan", "--format", "markdown").out
    assert "(no change)" in markdown and "$0.00/h change" in markdown


def test_an_orphan_that_is_deleted_counts_before(work: Workdir) -> None:
    two_nodes(work)
    orphan_one(work)
    work.config(pools={"w": {"nodes": 1}})
    plan = work.plan_json()
    assert [a["reason"] for a in actions_of(plan, "delete")] == ["orphan"]
    assert cost(plan) == (1.5, 0.75, -0.75)
    assert plan["cost"]["pools"]["w"]["hourly_before"] == 1.5


def test_destroy_shows_the_whole_amount_orphans_included(work: Workdir) -> None:
    two_nodes(work)
    orphan_one(work)
    plan = work.plan_json("--destroy")
    assert len(actions_of(plan, "delete")) == 2
    assert cost(plan) == (1.5, 0.0, -1.5)
    assert "Hourly cost: $1.50 -> $0.00 (-$1.50/h)" in work.run("plan", "--destroy").out


def test_an_unhealthy_node_bills_before_its_replacement(work: Workdir) -> None:
    two_nodes(work)
    cloud = work.cloud()
    cloud.set_status(cloud.list()[0].id, NodeStatus.UNHEALTHY)
    plan = work.plan_json()
    assert [a["reason"] for a in actions_of(plan, "replace")] == ["unhealthy"]
    assert cost(plan) == (1.5, 1.5, 0.0)


def test_a_stopped_node_does_not_bill(work: Workdir) -> None:
    two_nodes(work)
    cloud = work.cloud()
    cloud.set_status(cloud.list()[0].id, NodeStatus.STOPPED)
    assert cost(work.plan_json("--destroy")) == (0.75, 0.0, -0.75)

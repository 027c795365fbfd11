"""What the planner concludes about a whole plan: refusals, cost, and why nothing changes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from navarch_plan.desired import DesiredNode, Group
from navarch_plan.errors import PlanError
from navarch_plan.model import Node, NodeStatus
from navarch_plan.plan import Action, ActionKind, Plan
from navarch_plan.state.model import StateDoc

if TYPE_CHECKING:
    from navarch_plan.planner import PlanInputs

__all__ = ["check_prevent_destroy", "plan_cost", "no_changes_reason"]


def check_prevent_destroy(actions: Sequence[Action], groups: Mapping[str, Group]) -> None:
    for action in actions:
        group = groups.get(action.group)
        terminates = action.action in (ActionKind.DELETE, ActionKind.REPLACE)
        if terminates and group is not None and group.prevent_destroy:
            raise PlanError(
                f"{action.address} has lifecycle.prevent_destroy, but this plan would "
                f"{action.action.value} it ({action.reason.value}); set prevent_destroy: false "
                "to allow it, or leave the config as it was")


def _sum(prices: list[float | None]) -> tuple[float, bool]:
    known = [p for p in prices if p is not None]
    return round(sum(known), 4), len(known) == len(prices)


def plan_cost(inputs: PlanInputs, state: StateDoc, owned: Mapping[str, Node],
              desired: Mapping[str, DesiredNode]) -> dict[str, Any]:
    """Hourly cost of what runs now (recorded, alive) and of what the config asks for.
    An unknown price makes a total a lower bound ("complete": false), never a zero."""
    def price(provider: str, itype: str) -> float | None:
        return inputs.prices.get((provider, itype))

    now_prices = [price(r.provider, r.instance_type) for r in state.nodes.values()
                  if r.id in owned and owned[r.id].status in (NodeStatus.RUNNING,
                                                              NodeStatus.PROVISIONING)]
    after_prices = [price(d.provider, d.instance_type) for d in desired.values()]
    before, before_complete = _sum(now_prices)
    after, after_complete = _sum(after_prices)
    return {"currency": "USD", "hourly_before": before, "hourly_after": after,
            "hourly_delta": round(after - before, 4),
            "complete": before_complete and after_complete}


def no_changes_reason(plan: Plan, planner: Any) -> str:
    if plan.actions:
        return ""
    if plan.options.get("refresh_only"):
        drift = len(plan.drift)
        return ("refresh-only: no actions are proposed; " +
                (f"{drift} drift item(s) found" if drift else "no drift found"))
    if plan.options.get("destroy"):
        return "nothing to destroy: this workspace owns no instances"
    count = plan.unchanged
    groups = len({d.group for d in planner.desired.values()})
    if count == 0:
        return "the configuration declares no nodes and this workspace owns none"
    return (f"all {count} desired node(s) in {groups} pool(s)/named node(s) exist, are "
            "running or provisioning, and match the configured spec")

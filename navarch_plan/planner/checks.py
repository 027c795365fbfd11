"""What the planner concludes about a whole plan: refusals, cost, and why nothing changes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from navarch_plan.config.desired import Group
from navarch_plan.errors import PlanError
from navarch_plan.model import Node, NodeStatus, parse_address
from navarch_plan.plan import Action, ActionKind, Plan
from navarch_plan.state.model import StateDoc

if TYPE_CHECKING:
    from navarch_plan.planner.inputs import PlanInputs

__all__ = ["check_budget", "check_prevent_destroy", "check_saved_actions", "plan_cost",
           "no_changes_reason"]


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
              actions: Sequence[Action]) -> dict[str, Any]:
    """Hourly cost, per pool and in all, of what runs now (recorded and alive) and of
    what runs after this plan. An unknown price makes a total a lower bound
    ("complete": false), never a silent zero."""
    def price(provider: str, itype: str) -> float | None:
        return inputs.prices.get((provider, itype))

    before: dict[str, list[float | None]] = {}
    after: dict[str, list[float | None]] = {}
    # An update keeps its instance, and what it costs: it counts as running on.
    acting = {a.address: a for a in actions
              if a.key == a.address and a.action != ActionKind.UPDATE}
    for address, record in state.nodes.items():
        live = owned.get(record.id)
        if live is None or live.status not in (NodeStatus.RUNNING, NodeStatus.PROVISIONING):
            continue
        group = parse_address(address)[1]
        before.setdefault(group, []).append(price(record.provider, record.instance_type))
        if address not in acting:
            after.setdefault(group, []).append(price(record.provider, record.instance_type))
    for action in acting.values():
        if action.action in (ActionKind.CREATE, ActionKind.REPLACE):
            after.setdefault(action.group, []).append(action.cost_after)
        elif action.action == ActionKind.ADOPT:
            after.setdefault(action.group, []).append(price(action.provider,
                                                            action.instance_type))
    pools = {g: _totals(before.get(g, []), after.get(g, []))
             for g in sorted(set(before) | set(after))}
    every = _totals([p for v in before.values() for p in v], [p for v in after.values() for p in v])
    return {"currency": "USD", **every, "pools": pools}


def _totals(before: list[float | None], after: list[float | None]) -> dict[str, Any]:
    b, b_complete = _sum(before)
    a, a_complete = _sum(after)
    return {"hourly_before": b, "hourly_after": a, "hourly_delta": round(a - b, 4),
            "complete": b_complete and a_complete}


def check_budget(cost: dict[str, Any], groups: Mapping[str, Group],
                 limit: float | None) -> list[str]:
    """Refuse a plan over max_hourly_cost (top level or per pool), saying by how much.
    Returns warnings where an unknown price leaves a limit not fully checkable."""
    checks = [("the workspace", "max_hourly_cost", limit, cost)]
    checks += [(f"pool {name}", f"pools.{name}.max_hourly_cost", g.max_hourly_cost,
                cost["pools"].get(name, {"hourly_after": 0.0, "complete": True}))
               for name, g in groups.items() if g.max_hourly_cost is not None]
    warnings = []
    for what, key, cap, totals in checks:
        if cap is None:
            continue
        spend = totals["hourly_after"]
        bound = "at least " if not totals["complete"] else ""
        if spend > cap:
            raise PlanError(f"{what} would cost {bound}${spend:,.2f}/h after this plan, over "
                            f"{key} (${cap:,.2f}/h) by {bound}${spend - cap:,.2f}/h")
        if not totals["complete"]:
            warnings.append(f"{what}: some prices are unknown, so {key} (${cap:,.2f}/h) "
                            f"could only be checked against a lower bound (${spend:,.2f}/h)")
    return warnings


def no_changes_reason(plan: Plan, planner: Any) -> str:
    """Why a plan without actions has none, truthfully: a partial plan, or addresses the
    clouds cannot speak for yet, are said as such, never as "all exist"."""
    if plan.actions:
        return ""
    waiting = len(plan.unsettled)
    unsure = f"; {waiting} cannot be settled yet (listed above)" if waiting else ""
    if plan.options.get("refresh_only"):
        drift = len(plan.drift)
        return ("refresh-only: no actions are proposed; " +
                (f"{drift} drift item(s) found" if drift else "no drift found") + unsure)
    if plan.options.get("destroy"):
        return ("nothing to destroy: this workspace owns no instances" if not waiting
                else f"nothing can be destroyed yet{unsure}")
    desired = len(planner.desired)
    held = {u.address for u in plan.unsettled} & set(planner.desired)
    ready = max(0, plan.unchanged - len(held))
    if desired == 0 and not waiting:
        return "the configuration declares no nodes and this workspace owns none"
    groups = len({d.group for d in planner.desired.values()})
    counted = f"all {desired}" if ready == desired else f"{ready} of {desired}"
    text = (f"{counted} desired node(s) in {groups} pool(s)/named node(s) exist, are "
            "running or provisioning, and match the configured spec")
    if ready + len(held) < desired and (plan.options.get("target")
                                        or plan.options.get("exclude")):
        text += "; the others are outside this partial plan (--target/--exclude)"
    return text + unsure


def check_saved_actions(plan: Plan, config: Any, doc: StateDoc, owned: set[str],
                        source: str) -> None:
    """What a saved plan may do, whatever its file says (the checksum only catches
    accidents: anyone can recompute it): touch only this state's instances, build only
    desired addresses, replace only the node recorded at the address, delete no node
    the config desires (unless it is a destroy plan) and nothing under prevent_destroy."""
    ours = owned | {r.id for r in doc.nodes.values()} | set(doc.deposed) | {
        i.node_id for i in doc.intents.values() if i.node_id}
    at = {r.id: a for a, r in doc.nodes.items()}

    def refuse(action: Action, why: str) -> PlanError:
        return PlanError(f"{source}: {action.key} {why}; refusing the plan (was it edited?)")

    check_prevent_destroy(plan.actions, config.groups)
    for action in plan.actions:
        kind = action.action
        if action.new_node_id and action.new_node_id not in ours:
            raise refuse(action, f"takes instance {action.new_node_id}, which is not "
                         f"owned by this state of workspace {config.workspace}")
        if kind in (ActionKind.DELETE, ActionKind.REPLACE, ActionKind.ADOPT,
                    ActionKind.UPDATE) and action.node_id not in ours:
            raise refuse(action, f"acts on instance {action.node_id}, which is not owned by "
                         f"this state of workspace {config.workspace}")
        if kind in (ActionKind.CREATE, ActionKind.REPLACE, ActionKind.ADOPT,
                    ActionKind.UPDATE) and action.address not in config.desired:
            raise refuse(action, f"builds {action.address}, which {config.file} does not "
                         "define")
        if kind in (ActionKind.REPLACE, ActionKind.UPDATE) \
                and at.get(action.node_id) != action.address:
            raise refuse(action, f"{kind.value}s {action.node_id}, which state does not hold at "
                         f"{action.address}")
        desired_there = at.get(action.node_id) in config.desired
        if kind == ActionKind.DELETE and desired_there and not plan.options.get("destroy"):
            raise refuse(action, f"deletes {action.node_id}, the node of "
                         f"{at[action.node_id]}, which {config.file} desires")
        if kind == ActionKind.FORGET and action.node_id in owned:
            raise refuse(action, f"forgets {action.node_id}, which still exists")

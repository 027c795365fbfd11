"""What the planner concludes about a whole plan: refusals, cost, and why nothing changes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from navarch_plan.config.desired import ON_DEMAND, SPOT, Group
from navarch_plan.errors import PlanError
from navarch_plan.model import (
    LABEL_ADDRESS,
    Node,
    NodeStatus,
    address_from_label,
    named_address,
    parse_address,
)
from navarch_plan.plan import Action, ActionKind, Plan
from navarch_plan.planner.graph import in_scope
from navarch_plan.planner.observed import Observed
from navarch_plan.planner.strategies import price_of
from navarch_plan.state.model import StateDoc
from navarch_plan.words import noun, plural

if TYPE_CHECKING:
    from navarch_plan.planner.inputs import PlanInputs

__all__ = ["check_budget", "check_prevent_destroy", "check_replace", "check_saved_actions",
           "plan_cost", "no_changes_reason"]


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
    """Hourly cost, per pool and in all, of every instance this state owns that bills
    now (recorded or not, healthy or not: only stopped and ended ones do not), and of
    what bills after this plan: those minus what it terminates, plus what it launches.
    Adopting an instance changes nothing: it bills already. An unknown price makes a
    total a lower bound ("complete": false), never a silent zero."""
    billing = _billing(state, owned, inputs.observed or Observed.of(inputs.live))
    # A spot instance costs its spot price there (unknown when the offers know none).
    spot = {(r.provider, r.id) for r in (*state.nodes.values(), *state.deposed.values())
            if r.spec.get("purchase") == SPOT}

    def price(node: Node) -> float | None:
        purchase = SPOT if (node.provider, node.id) in spot else ON_DEMAND
        return price_of(inputs.prices, inputs.spot_offers, node.provider,
                        node.instance_type, purchase, node.region, node.zone)

    ended = {a.node_id for a in actions
             if a.action in (ActionKind.DELETE, ActionKind.REPLACE) and a.node_id}
    before: dict[str, list[float | None]] = {}
    after: dict[str, list[float | None]] = {}
    for group, node in billing.values():
        cost = price(node)
        before.setdefault(group, []).append(cost)
        if node.id not in ended:
            after.setdefault(group, []).append(cost)
    for action in actions:
        launched_already = (action.provider, action.new_node_id) in billing
        if action.action in (ActionKind.CREATE, ActionKind.REPLACE) and not launched_already:
            after.setdefault(action.group, []).append(action.cost_after)
    pools = {g: _totals(before.get(g, []), after.get(g, []))
             for g in sorted(set(before) | set(after))}
    every = _totals([p for v in before.values() for p in v], [p for v in after.values() for p in v])
    return {"currency": "USD", **every, "pools": pools}


def _billing(state: StateDoc, owned: Mapping[str, Node], observed: Observed
             ) -> dict[tuple[str, str], tuple[str, Node]]:
    """Every instance of this state that bills, by (provider, id), with its pool: owned
    by its labels, or known to state by id (a record, or the old half of a replacement)."""
    at = {(r.provider, r.id): a for a, r in state.nodes.items()}
    known = [observed.by_id.get((r.provider, r.id))
             for r in (*state.nodes.values(), *state.deposed.values())]
    found: dict[tuple[str, str], tuple[str, Node]] = {}
    for node in (*owned.values(), *(n for n in known if n is not None)):
        if node.status.is_gone or node.status == NodeStatus.STOPPED:
            continue
        key = (node.provider, node.id)
        address = at.get(key) or address_from_label(node.labels.get(LABEL_ADDRESS, ""))
        found[key] = (parse_address(address)[1] if address else "", node)
    return found


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
        found = (plural(drift, "drift item") + " found" if drift
                 else "drift cannot be ruled out where a listing failed" if plan.unreachable
                 else "no drift found")
        return "refresh-only: no actions are proposed; " + found + unsure
    if plan.options.get("destroy"):
        return ("nothing to destroy: this workspace owns no instances" if not waiting
                else f"nothing can be destroyed yet{unsure}")
    desired = planner.desired
    if not desired and not waiting:
        return "the configuration declares no nodes and this workspace owns none"
    groups = planner.inputs.groups
    scope = [a for a, node in desired.items() if in_scope(a, node.group, groups, plan.options)]
    held = {u.address for u in plan.unsettled}
    ready = sum(a in planner.filled and a not in planner.actions and a not in held
                for a in scope)
    counted = f"all {len(scope)}" if ready == len(scope) else f"{ready} of {len(scope)}"
    outside = len(desired) - len(scope)
    where = "in this partial plan" if outside else "in " + _groups_phrase(
        {desired[a].group for a in scope}, groups)
    text = (f"{counted} desired {noun(len(scope), 'node')} {where} "
            f"{'exists, is' if len(scope) == 1 else 'exist, are'} running or provisioning, "
            "and match the configured spec")
    if outside:
        text += (f"; {outside} more {noun(outside, 'is')} outside it "
                 f"({_scope_flags(plan.options)}) and {noun(outside, 'was')} "
                 "not compared")
    return text + unsure


def _groups_phrase(names: set[str], groups: Mapping[str, Group]) -> str:
    pools = sum(groups[n].kind == "pool" for n in names if n in groups)
    named = len(names) - pools
    said = [plural(pools, "pool")] if pools else []
    said += [plural(named, "named node")] if named else []
    return " and ".join(said) or "no pool"


def _scope_flags(options: Mapping[str, Any]) -> str:
    flags = [f"--target {t}" for t in options.get("target", [])]
    return ", ".join(flags + [f"--exclude {x}" for x in options.get("exclude", [])])


def check_replace(addresses: Sequence[str], state: StateDoc,
                  groups: Mapping[str, Group]) -> None:
    """--replace names one recorded node; a pool, or a named node spelt as a pool,
    gets the address it most likely meant."""
    for address in addresses:
        if address not in state.nodes:
            raise PlanError(f"--replace {address}: no such node in state"
                            + _address_hint(address, state, groups))


def _address_hint(address: str, state: StateDoc, groups: Mapping[str, Group]) -> str:
    name = address.split(".", 1)[-1].split("[", 1)[0]
    group = groups.get(name)
    if group is None:
        return f" (the config has no pool or named node called {name!r})"
    if group.kind == "node":
        return f"; did you mean {named_address(name)}?"
    recorded = sorted((a for a in state.nodes if parse_address(a)[:2] == ("pool", name)),
                      key=lambda a: parse_address(a)[2] or 0)
    if not recorded:
        return f" (pool {name} has no node in state yet)"
    span = recorded[0] if len(recorded) == 1 else f"{recorded[0]} ... {recorded[-1]}"
    has = f"pool {name} has {span} in state"
    if "[" not in address:
        return (f"; did you mean {recorded[0]}? --replace takes one node ({has}; repeat "
                "--replace for more)")
    return f" ({has})"


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

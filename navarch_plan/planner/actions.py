"""Building the planner's actions: what each kind of action carries. Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from navarch_plan.config.desired import ON_DEMAND, RESERVATION, DesiredNode, Group, Placement
from navarch_plan.model import LABEL_SPEC, Node, NodeStatus, parse_address
from navarch_plan.plan import Action, ActionKind, Reason
from navarch_plan.planner.labels import user_labels
from navarch_plan.planner.spec_diff import changed_fields
from navarch_plan.planner.strategies import SpotOffers, order_placements, price_of
from navarch_plan.state.model import NodeRecord

__all__ = ["ActionFactory", "instance_name"]


def instance_name(workspace: str, node: DesiredNode, suffix: str) -> str:
    """`<workspace>-<pool>-<index>-<rand>`; within the strictest cloud limit (63)."""
    base = f"{workspace}-{node.group}" + (f"-{node.index}" if node.index is not None else "")
    return f"{base[:58].rstrip('-')}-{suffix}"


class ActionFactory:
    def __init__(self, workspace: str, groups: Mapping[str, Group],
                 prices: Mapping[tuple[str, str], float | None],
                 availability: Mapping[tuple[str, str], tuple[str, ...]],
                 suffix: Callable[[str], str], spot: SpotOffers | None = None,
                 capacity: Mapping[tuple[str, str], tuple[str, ...]] | None = None) -> None:
        self.workspace, self.groups, self.prices, self.suffix = workspace, groups, prices, suffix
        self.availability, self.spot = availability, spot or {}
        self.capacity = capacity or {}

    def candidates(self, node: DesiredNode, first: tuple[str, ...] | None = None
                   ) -> list[Placement]:
        """In the strategy's order; `first` (a placement key) moves that one ahead: an
        interrupted launch is re-sent where it went before anything else is tried."""
        ordered = order_placements(node.candidates, node.strategy, node.index, self.prices,
                                   self.availability, self.spot)
        if first is not None:
            ordered.sort(key=lambda p: p.key != first)
        return ordered

    def _candidate_json(self, p: Placement) -> dict[str, Any]:
        body: dict[str, Any] = {"provider": p.provider, "region": p.region, "zone": p.zone,
                                "instance_type": p.instance_type,
                                "price_per_hr": self._placement_price(p)}
        # Only spot and reserved say so: on-demand candidates read as before spot_policy.
        if p.purchase != ON_DEMAND:
            body["purchase"] = p.purchase
        if not self.has_capacity(p):
            body["capacity"] = False
        return body

    def has_capacity(self, p: Placement) -> bool:
        """False only where the cloud says live that the place has none now (Lambda)."""
        regions = self.capacity.get((p.provider, p.instance_type))
        return regions is None or p.region in regions

    def _price(self, provider: str, instance_type: str) -> float | None:
        return self.prices.get((provider, instance_type))

    def _placement_price(self, p: Placement) -> float | None:
        """By how it is bought: a reservation is paid for whether used or not, so
        launching into it costs 0 more; spot at a spot price where the offers know one,
        else unknown (None, so a total is "at least"), never the on-demand price."""
        if p.purchase == RESERVATION:
            return 0.0
        return price_of(self.prices, self.spot, p.provider, p.instance_type, p.purchase,
                        p.region, p.zone)

    def _record_price(self, record: NodeRecord) -> float | None:
        if record.spec.get("reservation"):
            return 0.0
        return price_of(self.prices, self.spot, record.provider, record.instance_type,
                        str(record.spec.get("purchase", ON_DEMAND)), record.region,
                        record.zone)

    def create(self, node: DesiredNode, reason: Reason, detail: str = "",
               first: tuple[str, ...] | None = None) -> Action:
        ordered = self.candidates(node, first)
        chosen = ordered[0]
        return Action(
            key=node.address, address=node.address, action=ActionKind.CREATE, reason=reason,
            group=node.group, provider=chosen.provider, region=chosen.region,
            zone=chosen.zone, instance_type=chosen.instance_type,
            name=instance_name(self.workspace, node, self.suffix(node.address)),
            after=_after(node, chosen), replace_mode=self._replace_mode(node.group),
            cost_after=self._placement_price(chosen),
            # A spot or reserved placement is always listed (apply reads its purchase
            # there), and so is one without capacity now (the plan says so).
            candidates=tuple(self._candidate_json(p) for p in ordered)
            if len(ordered) > 1 or chosen.purchase != ON_DEMAND
            or not self.has_capacity(chosen) else (),
            detail=detail or ("the recorded instance was deleted outside navarch"
                              if reason == Reason.DELETED_OUTSIDE else ""),
        )

    def replacement(self, node: DesiredNode, record: NodeRecord, live: Node, reason: Reason,
                    changes: tuple[dict[str, Any], ...],
                    first: tuple[str, ...] | None = None) -> Action:
        """`changes`: what changed inside the spec (spec_diff.spec_changes), if that is
        the reason."""
        create = self.create(node, reason, first=first)
        if create.name == record.name:  # a new instance never takes its predecessor's name
            name = instance_name(self.workspace, node, self.suffix(f"{node.address}#{record.id}"))
            create = dataclasses.replace(create, name=name)
        sick = reason in (Reason.GONE, Reason.UNHEALTHY, Reason.PREEMPTED)
        return dataclasses.replace(
            create, action=ActionKind.REPLACE, node_id=record.id,
            before=_before(record, live), changed=changed_fields(changes),
            spec_changes=changes,
            cost_before=self._record_price(record),
            detail=f"status {live.status.value}" if sick else "")

    def existing(self, kind: ActionKind, reason: Reason, address: str, record: NodeRecord,
                 live: Node | None, key: str | None = None, detail: str = "") -> Action:
        group = parse_address(address)[1] if not address.startswith("?") else ""
        return Action(
            key=key or address, address=address, action=kind, reason=reason, group=group,
            provider=record.provider, region=record.region, zone=record.zone,
            instance_type=record.instance_type, node_id=record.id, name=record.name,
            before=_before(record, live),
            cost_before=self._record_price(record)
            if kind == ActionKind.DELETE else None, detail=detail,
        )

    def adoption(self, address: str, wanted: DesiredNode, node: Node,
                 reason: Reason = Reason.ORPHAN_MATCHES, intent_id: str = "") -> Action:
        detail = ("an interrupted apply launched it for this address" if intent_id else
                  "an owned instance matching the desired spec, not yet in state")
        if node.status != NodeStatus.RUNNING:
            detail += f"; it is {node.status_word}"
            detail += ": apply waits for it to run" if node.status.is_alive else ""
        return Action(
            key=address, address=address, action=ActionKind.ADOPT, intent_id=intent_id,
            reason=reason, group=wanted.group, provider=node.provider,
            region=node.region, zone=node.zone, instance_type=node.instance_type,
            node_id=node.id, name=node.name, before=_live_before(node),
            after=_after(wanted, wanted.accepted_hashes()[node.labels[LABEL_SPEC]]),
            detail=detail,
        )

    def orphan_delete(self, address: str, node: Node, reason: Reason,
                      intent_id: str = "") -> Action:
        """A delete of an instance state does not hold: an orphan, or one an
        interrupted launch made (`intent_id`), which is ours beyond doubt."""
        group = "" if address.startswith("?") else parse_address(address)[1]
        detail = ("launched by an interrupted apply, and not wanted at this address"
                  if intent_id else
                  "owned by this workspace but not in state, and nothing desires it")
        return Action(
            key=f"{address}#{node.id}", address=address, action=ActionKind.DELETE,
            reason=reason, group=group, provider=node.provider, region=node.region,
            zone=node.zone, instance_type=node.instance_type, node_id=node.id, name=node.name,
            before=_live_before(node), cost_before=self._price(node.provider, node.instance_type),
            detail=detail, intent_id=intent_id,
        )

    def update(self, address: str, wanted: DesiredNode, record: NodeRecord, live: Node,
               reason: Reason, labels: dict[str, str], after: dict[str, Any],
               changes: list[dict[str, Any]]) -> Action:
        """Labels set in place: the instance keeps running, its record takes `after`
        (the spec, with its hash). `before` shows the user labels it carries now."""
        price = self._record_price(record)
        before = {**_before(record, live), "labels": user_labels(live.labels)}
        return Action(
            key=address, address=address, action=ActionKind.UPDATE, reason=reason,
            group=wanted.group, provider=record.provider, region=record.region,
            zone=record.zone, instance_type=record.instance_type, node_id=record.id,
            name=record.name, before=before,
            after={**after, "refs": [r.text for r in wanted.refs]},
            replace_mode=self._replace_mode(wanted.group), cost_before=price,
            cost_after=price, labels=labels, label_changes=tuple(changes),
            detail=_update_detail(reason, changes))

    def _replace_mode(self, group: str) -> str:
        g = self.groups.get(group)
        return g.replace_mode if g else "create_before_destroy"


def _update_detail(reason: Reason, changes: list[dict[str, Any]]) -> str:
    if not changes:  # e.g. an apply that set them died before its record
        return "the instance already carries these labels: apply sets them again and records them"
    if reason == Reason.LABELS_DRIFTED:
        return "labels changed by hand on the cloud are set back to the config's"
    return ""


def _after(node: DesiredNode, placement: Placement) -> dict[str, Any]:
    return {**node.spec_for(placement), "spec_hash": node.hash_for(placement),
            "refs": [r.text for r in node.refs]}


def _before(record: NodeRecord, live: Node | None) -> dict[str, Any]:
    return {**record.spec, "id": record.id, "name": record.name,
            "status": live.status.value if live else "missing", "ip_address": record.ip_address,
            "spec_hash": record.spec_hash}


def _live_before(node: Node) -> dict[str, Any]:
    return {"id": node.id, "name": node.name, "provider": node.provider, "region": node.region,
            "zone": node.zone, "instance_type": node.instance_type, "status": node.status.value,
            "ip_address": node.ip_address, "spec_hash": node.labels.get(LABEL_SPEC, "")}

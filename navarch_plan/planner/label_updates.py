"""The planner's label pass: plans `~ update` where only labels differ (see labels.py
for the rules), reports hand-edited labels as drift saying what apply does, and warns
where a provider cannot set labels. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from navarch_plan.config.desired import DesiredNode, Placement
from navarch_plan.model import LABEL_SPEC, Node
from navarch_plan.plan import Drift, Reason, describe_label_changes, label_changes
from navarch_plan.planner.base import PlannerBase
from navarch_plan.planner.labels import labels_only_placement, target_labels, user_labels
from navarch_plan.state.model import NodeRecord

__all__ = ["LabelUpdates"]


class LabelUpdates(PlannerBase):
    def _label_updates(self) -> list[str]:
        """Runs after every other pass: an address that already has an action (a
        replacement brings the config's labels along) or that is not settled is left.
        Returns the plan's warnings about labels it cannot update."""
        self.label_warnings: list[str] = []
        held = {u.address for u in self.unsettled}
        for address, record in self.state.nodes.items():
            wanted = self.desired.get(address)
            if wanted is None or address in self.actions or address in held:
                continue
            live = self._live(record)
            if live is not None and live.status.is_alive:
                self._label_update(address, record, live, wanted)
        return self.label_warnings

    def _label_update(self, address: str, record: NodeRecord, live: Node,
                      wanted: DesiredNode) -> None:
        after = _spec_after(wanted, record)
        if after is None:  # not a label-only difference: base.py replaced it
            return
        placement, new_spec, new_hash = after
        target = target_labels(self.inputs.workspace, self.state.lineage, wanted, placement,
                               live.labels, new_hash)
        # Any hash the config accepts for this placement is a true navarch-spec label (an
        # instance labelled before the state had a fingerprint key keeps the plain one).
        fits = wanted.accepted_hashes().get(live.labels.get(LABEL_SPEC, "")) == placement
        if _but_spec(live.labels) == _but_spec(target) and fits \
                and record.spec_hash == new_hash:
            return
        # What navarch last set: its ownership labels and the recorded spec's labels.
        last_set = {**{k: v for k, v in target.items() if k not in wanted.labels},
                    LABEL_SPEC: record.spec_hash, **record.spec.get("labels", {})}
        settable = record.provider in self.inputs.label_setters
        # Drift: not what navarch last set, nor already what the config asks (an apply
        # that set the labels and died before its record).
        already = _but_spec(live.labels) == _but_spec(target) and fits
        self._drop_label_drift(address)  # base.py's, against the record: said again here
        if not already and (_but_spec(live.labels) != _but_spec(last_set) or not (
                fits or live.labels.get(LABEL_SPEC) == record.spec_hash)):
            self._label_drift(address, record, last_set, live, settable)
        changes = label_changes(live.labels, target)
        if not settable:
            self.label_warnings.append(
                f"{address}: its labels differ from the config "
                f"({'; '.join(describe_label_changes(changes))}), but provider "
                f"{record.provider} cannot update labels in place, so the instance keeps "
                f"them; to apply them, replace it: navarch apply --replace {address}")
            return
        config_changed = user_labels(record.spec.get("labels", {})) != dict(wanted.labels)
        reason = Reason.LABELS_CHANGED if config_changed else Reason.LABELS_DRIFTED
        self._add(self.make.update(address, wanted, record, live, reason, target,
                                   {**new_spec, "spec_hash": new_hash}, changes))

    def _drop_label_drift(self, address: str) -> None:
        self.drift = [d for d in self.drift
                      if not (d.address == address and d.kind == "labels_changed")]

    def _label_drift(self, address: str, record: NodeRecord, last_set: Mapping[str, str],
                     live: Node, settable: bool) -> None:
        """One `labels_changed` drift item for the address, saying what apply does."""
        what = "; ".join(describe_label_changes(label_changes(last_set, live.labels)))
        then = ("apply will update labels in place" if settable else
                f"provider {record.provider} cannot update labels in place: "
                f"`navarch apply --replace {address}` relaunches it with the config's")
        self.drift.append(Drift(address, "labels_changed", f"labels changed outside "
                                f"navarch: {what or 'navarch labels'}; {then}",
                                record.provider, record.id))


def _spec_after(wanted: DesiredNode, record: NodeRecord
                ) -> tuple[Placement, Mapping[str, Any], str] | None:
    """Where the node runs, and the spec and hash its record has after this plan: its
    own when the config accepts them, else the config's when only labels differ."""
    placement = wanted.accepted_hashes().get(record.spec_hash)
    if placement is not None:
        return placement, record.spec, record.spec_hash
    placement = labels_only_placement(wanted, record)
    if placement is None:
        return None
    return placement, wanted.spec_for(placement), wanted.hash_for(placement)


def _but_spec(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != LABEL_SPEC}

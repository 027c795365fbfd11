"""What the planner is given: the desired, recorded and observed worlds (PlanInputs) and
what the user asked for (PlanOptions); the fingerprint of what was seen. Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from navarch_plan.config.desired import DesiredNode, Group
from navarch_plan.model import (
    LABEL_ADDRESS,
    LABEL_SPEC,
    InstanceType,
    Node,
    NodeStatus,
)
from navarch_plan.planner.observed import Observed
from navarch_plan.state.model import StateDoc

__all__ = ["PlanInputs", "PlanOptions", "live_fingerprint", "options_json", "hashed_suffix"]


@dataclass(frozen=True)
class PlanOptions:
    destroy: bool = False
    refresh_only: bool = False
    replace: tuple[str, ...] = ()
    target: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlanInputs:
    workspace: str
    desired: Mapping[str, DesiredNode]
    groups: Mapping[str, Group]
    state: StateDoc
    live: Mapping[str, Sequence[Node]]  # every node each provider listed, by provider name
    prices: Mapping[tuple[str, str], float | None] = field(default_factory=dict)
    # (provider, type) -> regions where the provider's catalog reports it available
    availability: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    # (provider, type) -> regions with capacity now, where the cloud says so live
    # (Lambda); a candidate elsewhere is marked in the plan, not skipped.
    capacity: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    # (provider, type) -> offers that know spot prices (planner.strategies.price_of)
    spot_offers: Mapping[tuple[str, str], InstanceType] = field(default_factory=dict)
    max_hourly_cost: float | None = None
    config_hash: str = ""
    created_at: str = ""
    # The listings with what they could not read, lookups by id and consistency
    # windows; None: `live` is complete and the truth (tests of pure planning).
    observed: Observed | None = None
    # Providers that return the original instance when a launch is re-sent unchanged.
    idempotent: frozenset[str] = frozenset()
    # Providers that can set an instance's labels in place (LabelSetter).
    label_setters: frozenset[str] = frozenset()


def live_fingerprint(owned: Mapping[str, Node]) -> str:
    """Changes when owned instances appear, vanish, die or are relabelled; not when a
    node merely finishes booting (provisioning -> running), nor when a dead instance
    that a cloud still lists (Lambda's terminated, EC2's shutting-down) drops out."""
    rows = sorted(
        f"{n.provider}|{n.id}|{n.status != NodeStatus.UNHEALTHY}|"
        f"{n.labels.get(LABEL_ADDRESS, '')}|{n.labels.get(LABEL_SPEC, '')}"
        for n in owned.values() if not n.status.is_gone
    )
    return "sha256:" + hashlib.sha256("\n".join(rows).encode()).hexdigest()


def options_json(options: PlanOptions) -> dict[str, Any]:
    return {"destroy": options.destroy, "refresh_only": options.refresh_only,
            "replace": list(options.replace), "target": list(options.target),
            "exclude": list(options.exclude)}


def hashed_suffix(state: StateDoc) -> Callable[[str], str]:
    def suffix(seed: str) -> str:
        text = f"{state.lineage}/{state.serial}/{seed}"
        return hashlib.sha256(text.encode()).hexdigest()[:4]

    return suffix

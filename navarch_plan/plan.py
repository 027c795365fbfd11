"""A plan is data: frozen dataclasses, a versioned JSON form, and its checksum.

JSON format: `format_version` "MAJOR.MINOR"; a minor bump only adds fields (readers
ignore unknown ones), a major bump breaks. Renderers work from the JSON form only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from navarch_plan.errors import PlanError
from navarch_plan.model import LABEL_SPEC

__all__ = ["ActionKind", "Reason", "Action", "Drift", "Plan", "PLAN_FORMAT_VERSION",
           "Unsettled", "plan_from_json", "checksum_of", "label_changes",
           "describe_label_changes"]

# 1.1 added candidates and per-pool cost; 1.2 `unsettled`, `unreachable`, intent kinds,
# and the actions' intent_id, idempotency_key and new_node_id; 1.3 the `update` action
# (labels set in place), its reasons, and the actions' `labels` and `label_changes`.
PLAN_FORMAT_VERSION = "1.4"


class ActionKind(StrEnum):
    CREATE = "create"
    REPLACE = "replace"
    DELETE = "delete"
    ADOPT = "adopt"  # an owned instance missing from state is recorded, no cloud call
    FORGET = "forget"  # a state record whose instance is gone is dropped, no cloud call
    UPDATE = "update"  # the instance's labels are set in place; it keeps running


class Reason(StrEnum):
    MISSING = "missing"
    SPEC_CHANGED = "spec_changed"
    UNHEALTHY = "unhealthy"
    GONE = "gone"
    DELETED_OUTSIDE = "deleted_outside"
    ORPHAN_MATCHES = "orphan_matches"
    ORPHAN = "orphan"
    NOT_IN_CONFIG = "not_in_config"
    SCALED_DOWN = "scaled_down"
    REQUESTED = "requested"
    DEPENDENCY_CHANGED = "dependency_changed"
    DESTROY = "destroy"
    DEPOSED = "deposed"  # the old half of a replacement that was interrupted
    INTERRUPTED = "interrupted"  # an apply was cut short while provisioning this node
    LABELS_CHANGED = "labels_changed"  # the config's labels differ from the recorded ones
    LABELS_DRIFTED = "labels_drifted"  # the instance's labels were changed outside navarch
    PREEMPTED = "preempted"  # the cloud took this spot node back
    TAKEN_OVER = "taken_over"  # another state took the recorded instance over


@dataclass(frozen=True)
class Action:
    key: str  # unique in the plan: the address, or address#node-id for extra deletes
    address: str
    action: ActionKind
    reason: Reason
    group: str
    provider: str
    region: str
    zone: str = ""
    instance_type: str = ""
    node_id: str = ""  # the existing instance a delete/replace/adopt acts on
    name: str = ""  # the cloud name a create/replace will give its new instance
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    changed: tuple[str, ...] = ()
    detail: str = ""
    replace_mode: str = "create_before_destroy"
    cost_before: float | None = None
    cost_after: float | None = None
    # Where a create may land, in the order apply tries them (empty: only the above).
    candidates: tuple[dict[str, Any], ...] = ()
    # The open intent of an interrupted provision this action settles: a create that
    # re-sends its launch (same name, idempotency key and placement first), an adoption
    # or replacement that uses the instance it made, or a delete of that instance.
    intent_id: str = ""
    idempotency_key: str = ""
    # A replacement whose new instance an interrupted apply already launched: apply
    # waits for it instead of launching another.
    new_node_id: str = ""
    # An update: every label apply sets (exactly these: the user's and navarch's), and
    # what changes, key by key: {"key", "op": add|change|remove, "before", "after"}.
    labels: dict[str, str] | None = None
    label_changes: tuple[dict[str, Any], ...] = ()
    # A replacement for its spec: each changed value inside the spec (`changed` names
    # only the top-level fields): {"field": "launch.root_volume_gb", "op", "before",
    # "after"}, a list being one value.
    spec_changes: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Drift:
    address: str
    kind: str  # deleted_outside | preempted | unmanaged | status_changed | labels_changed | ...
    detail: str
    provider: str = ""
    node_id: str = ""


@dataclass(frozen=True)
class Unsettled:
    """An address this plan takes no action on because the clouds cannot yet say what
    is there. kind: `not_yet_visible` (a recorded instance missing within its
    provider's consistency window), `settling` (an interrupted launch whose instance
    may still appear), `unknown` (its region or zone could not be read, or its lookup
    failed), `held` (stopped, or a status navarch does not know: never acted on for it)."""

    address: str
    kind: str
    detail: str
    provider: str = ""
    node_id: str = ""


@dataclass(frozen=True)
class Plan:
    workspace: str
    created_at: str
    planned_against: dict[str, Any]
    options: dict[str, Any]
    actions: tuple[Action, ...]
    edges: tuple[tuple[str, str], ...]  # (first, then): `then` waits for `first`
    drift: tuple[Drift, ...] = ()
    intents: tuple[dict[str, str], ...] = ()
    warnings: tuple[str, ...] = ()
    unchanged: int = 0
    cost: dict[str, Any] = field(default_factory=dict)
    no_changes_reason: str = ""
    unsettled: tuple[Unsettled, ...] = ()
    # Provider -> the regions or zones its listing could not read: instances there that
    # state does not know of cannot be seen, so drift cannot be ruled out.
    unreachable: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)

    def summary(self) -> dict[str, int]:
        counts = {kind.value: 0 for kind in ActionKind}
        for action in self.actions:
            counts[action.action.value] += 1
        return {**counts, "unchanged": self.unchanged, "drift": len(self.drift),
                "unsettled": len(self.unsettled)}

    def to_json(self) -> dict[str, Any]:
        body = {
            "format_version": PLAN_FORMAT_VERSION,
            "workspace": self.workspace,
            "created_at": self.created_at,
            "planned_against": self.planned_against,
            "options": self.options,
            "summary": self.summary(),
            "cost": self.cost,
            "no_changes_reason": self.no_changes_reason,
            "warnings": list(self.warnings),
            "actions": [_action_json(a) for a in self.actions],
            "edges": [list(e) for e in self.edges],
            "drift": [asdict(d) for d in self.drift],
            "intents": [dict(i) for i in self.intents],
            "unsettled": [asdict(u) for u in self.unsettled],
            "unreachable": {p: list(places) for p, places in self.unreachable.items()},
        }
        return {**body, "checksum": checksum_of(body)}


def _action_json(action: Action) -> dict[str, Any]:
    data = asdict(action)
    data["action"] = action.action.value
    data["reason"] = action.reason.value
    data["changed"] = list(action.changed)
    data["candidates"] = [dict(c) for c in action.candidates]
    data["label_changes"] = [dict(c) for c in action.label_changes]
    data["spec_changes"] = [dict(c) for c in action.spec_changes]
    return data


def label_changes(before: Mapping[str, str], after: Mapping[str, str]
                  ) -> list[dict[str, Any]]:
    """An update's label diff, key by key, sorted: add, change, remove. `navarch-spec`
    is left out: it follows the spec (shown as its hash); nobody sets it by hand."""
    out: list[dict[str, Any]] = []
    for key in sorted((set(before) | set(after)) - {LABEL_SPEC}):
        was, now = before.get(key), after.get(key)
        if was == now:
            continue
        if was is None:
            out.append({"key": key, "op": "add", "after": now})
        elif now is None:
            out.append({"key": key, "op": "remove", "before": was})
        else:
            out.append({"key": key, "op": "change", "before": was, "after": now})
    return out


def spec_change_rows(action: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, before, after) per value a replacement changes in the spec, None where
    there is none: from `spec_changes` (plans since 1.4), else from the top-level
    `changed` fields. `user_data`'s values are its digests."""
    if action.get("spec_changes"):
        return [(c["field"], c.get("before"), c.get("after")) for c in action["spec_changes"]]
    before, after = action.get("before") or {}, action.get("after") or {}
    rows = []
    for name in action.get("changed", []):
        key = "user_data_sha256" if name == "user_data" else name
        rows.append((name, before.get(key), after.get(key)))
    return rows


def describe_label_changes(changes: Sequence[Mapping[str, Any]]) -> list[str]:
    """`team: "ml" -> "research"`, `+ env: "prod"`, `- old`: one line per change."""
    lines = []
    for c in changes:
        if c["op"] == "add":
            lines.append(f'+ {c["key"]}: "{c["after"]}"')
        elif c["op"] == "remove":
            lines.append(f'- {c["key"]}')
        else:
            lines.append(f'{c["key"]}: "{c["before"]}" -> "{c["after"]}"')
    return lines


def checksum_of(body: dict[str, Any]) -> str:
    canonical = json.dumps({k: v for k, v in body.items() if k != "checksum"},
                           sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def plan_from_json(data: dict[str, Any], source: str = "plan") -> Plan:
    """Read a saved plan; refuses other major versions and edited files."""
    if not isinstance(data, dict) or not {"format_version", "planned_against", "actions",
                                          "checksum"} <= data.keys():
        raise PlanError(f"{source} is not a navarch plan file")
    major = str(data["format_version"]).split(".")[0]
    if major != PLAN_FORMAT_VERSION.split(".")[0]:
        raise PlanError(f"{source} has plan format {data['format_version']}; this navarch "
                        f"reads {PLAN_FORMAT_VERSION.split('.')[0]}.x")
    if data.get("checksum") != checksum_of(data):
        raise PlanError(f"{source} was modified after it was written (checksum mismatch); "
                        "make a new plan")
    known = {f.name for f in fields(Action)}
    try:
        actions = tuple(
            Action(**{**{k: v for k, v in a.items() if k in known},
                      "action": ActionKind(a["action"]), "reason": Reason(a["reason"]),
                      "changed": tuple(a.get("changed", ())),
                      "candidates": tuple(a.get("candidates", ())),
                      "label_changes": tuple(a.get("label_changes", ())),
                      "spec_changes": tuple(a.get("spec_changes", ()))})
            for a in data["actions"]
        )
        return Plan(
            workspace=data["workspace"], created_at=data["created_at"],
            planned_against=data["planned_against"], options=data["options"],
            actions=actions, edges=tuple((a, b) for a, b in data["edges"]),
            drift=tuple(Drift(**d) for d in data.get("drift", [])),
            intents=tuple(data.get("intents", [])), warnings=tuple(data.get("warnings", [])),
            unchanged=data["summary"].get("unchanged", 0), cost=data.get("cost", {}),
            no_changes_reason=data.get("no_changes_reason", ""),
            unsettled=tuple(Unsettled(**u) for u in data.get("unsettled", [])),
            unreachable={p: tuple(v) for p, v in data.get("unreachable", {}).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"{source} is not a valid plan file ({exc})") from None

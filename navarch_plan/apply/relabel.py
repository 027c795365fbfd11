"""The `update` action: an instance's labels set in place, then its record.

Invariants: the labels sent are exactly the action's, and only after they are checked
against the config and state (a saved plan's file may have been edited: it may set the
config's labels and navarch's ownership labels for this address, nothing else); the
record changes only after the cloud accepted the labels, so a crash in between leaves
the old record, and the next plan sets the same labels again (idempotent) and records
them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from navarch_plan.apply.hooks import Hooks
from navarch_plan.config.desired import DesiredNode
from navarch_plan.errors import StalePlanError
from navarch_plan.model import (
    LABEL_ADDRESS,
    LABEL_LINEAGE,
    LABEL_SPEC,
    LABEL_WORKSPACE,
    RESERVED_LABEL_PREFIX,
    address_to_label,
)
from navarch_plan.plan import Action
from navarch_plan.providers.base import LabelSetter
from navarch_plan.state.backends import StateStore
from navarch_plan.state.model import NodeRecord
from navarch_plan.state.ops import Put
from navarch_plan.words import plural

__all__ = ["update_labels"]


def update_labels(action: Action, wanted: DesiredNode, provider: LabelSetter,
                  store: StateStore, hooks: Hooks, workspace: str) -> None:
    doc = store.loaded
    record = doc.nodes.get(action.address)
    if record is None or record.id != action.node_id:
        raise StalePlanError(f"{action.address}: state no longer holds instance "
                             f"{action.node_id} there; make a new plan")
    labels = dict(action.labels or {})
    spec = _new_spec(action, wanted, record)
    _check_labels(action, wanted, labels, workspace, doc.lineage)
    hooks.action_progress(action, f"setting {plural(len(labels), 'label')} on "
                            f"{action.node_id}")
    provider.set_labels(action.node_id, labels)
    updated = dataclasses.replace(record, spec=spec, spec_hash=labels[LABEL_SPEC],
                                  labels=labels)
    store.record(Put(action.address, updated))


def _new_spec(action: Action, wanted: DesiredNode, record: NodeRecord) -> dict[str, Any]:
    """The spec the record takes: its own when the hash stays, else the config's on the
    candidate whose hash the action names."""
    new_hash = (action.after or {}).get("spec_hash", "")
    if new_hash == record.spec_hash:
        return dict(record.spec)
    for node in (wanted, wanted.keyed("")):
        for placement in wanted.candidates:
            if node.hash_for(placement) == new_hash and placement.provider == record.provider:
                return node.spec_for(placement)
    raise StalePlanError(f"{action.address}: the plan's spec {new_hash} is not one the config "
                         "asks for any more; make a new plan")


def _check_labels(action: Action, wanted: DesiredNode, labels: Mapping[str, str],
                  workspace: str, lineage: str) -> None:
    ours = {k: v for k, v in labels.items() if k.startswith(RESERVED_LABEL_PREFIX)}
    users = {k: v for k, v in labels.items() if k not in ours}
    expected = {LABEL_WORKSPACE: workspace, LABEL_ADDRESS: address_to_label(action.address),
                LABEL_SPEC: (action.after or {}).get("spec_hash", "")}
    if LABEL_LINEAGE in ours:
        expected[LABEL_LINEAGE] = lineage
    if users != dict(wanted.labels) or ours != expected:
        raise StalePlanError(f"{action.address}: the labels this plan sets are not the "
                             "config's and navarch's for it; make a new plan")

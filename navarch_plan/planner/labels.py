"""In-place label updates. Pure.

A node whose only difference from the config is its labels keeps its instance: the
labels were changed in the config (`labels_changed`), or by hand on the cloud
(`labels_drifted`). Where the provider can set labels (`LabelSetter`), the plan updates
them in place (`~ update`); where it cannot (Lambda), the plan warns, says how to apply
them (`--replace`), and replaces nothing on its own.

Invariants:
- labels stay part of the spec and its hash: a node whose labels did not change keeps
  the spec hash (and `navarch-spec` label) it has, so an upgrade replaces nothing;
- a label-only difference never replaces a node (base.py asks `labels_only_placement`);
  anything else that differs still does;
- an update is planned only for a live, settled node at a desired address that has no
  other action: a replacement (for its spec or a dependency) already brings the labels;
- the labels an update sets are the config's plus navarch's ownership labels, with
  `navarch-spec` naming the spec recorded after it.
"""

from __future__ import annotations

from collections.abc import Mapping

from navarch_plan.config.desired import DesiredNode, Placement, spec_hash
from navarch_plan.model import (
    LABEL_LINEAGE,
    LABEL_SPEC,
    RESERVED_LABEL_PREFIX,
)
from navarch_plan.planner.ownership import ownership_labels
from navarch_plan.state.model import NodeRecord

__all__ = ["labels_only_placement", "target_labels", "user_labels"]


def user_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels the config owns: all but navarch's own (`navarch-*`)."""
    return {k: v for k, v in labels.items() if not k.startswith(RESERVED_LABEL_PREFIX)}


def labels_only_placement(wanted: DesiredNode, record: NodeRecord) -> Placement | None:
    """The candidate from which `record`'s spec differs in its labels alone, or None.
    Judged by hash, so a record keyed before the state had a fingerprint key counts."""
    recorded = record.spec.get("labels", {})
    variants = [wanted, wanted.keyed("")] if wanted.fingerprint_key else [wanted]
    for placement in wanted.candidates:
        if placement.provider != record.provider:
            continue
        for node in variants:
            spec = {**node.spec_for(placement), "labels": recorded}
            if spec_hash(spec) == record.spec_hash:
                return placement
    return None


def target_labels(workspace: str, lineage: str, wanted: DesiredNode, placement: Placement,
                  live: Mapping[str, str], new_hash: str) -> dict[str, str]:
    """Every label an update sets: the config's and navarch's. The lineage label only
    where the instance carries one (instances made before lineages keep none, so an
    upgrade plans no update for them)."""
    labels = ownership_labels(workspace, wanted, placement,
                              lineage if LABEL_LINEAGE in live else "")
    labels[LABEL_SPEC] = new_hash
    return labels

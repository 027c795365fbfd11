"""Whose an instance is: the labels navarch puts on every instance, and how a listing is
sorted into ours, another state's, and nobody's. Pure.

An instance is *ours* when its `navarch-workspace` is this workspace and its
`navarch-lineage` is this state's lineage (or absent: instances made before lineages
were labelled). The same workspace with another lineage is *foreign*: another config
using the same workspace name, or a state that was lost. Foreign instances are never
deleted or replaced; one sitting at an address this config wants stops the plan, which
says how to take it over explicitly (`navarch state adopt`, `navarch state import`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from navarch_plan.config.desired import DesiredNode, Placement
from navarch_plan.model import (
    LABEL_ADDRESS,
    LABEL_LINEAGE,
    LABEL_SPEC,
    LABEL_WORKSPACE,
    Node,
    address_to_label,
)

__all__ = ["Ownership", "ownership_labels", "sort_owned", "placement_group_name",
           "wanted_placement_groups"]

#: A placement group's name must suit the strictest cloud: GCE resource policies are
#: RFC 1035 names of at most 63 characters (EC2 allows 255).
_GROUP_NAME_MAX = 63


def placement_group_name(workspace: str, pool: str, region: str) -> str:
    """The placement group (resource policy) of a cluster pool in a region: one per
    workspace, pool and region. A name too long keeps its start and gains a hash of the
    whole, so it stays unique."""
    name = f"navarch-{workspace}-{pool}-{region}".lower().replace("_", "-")
    if len(name) <= _GROUP_NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:_GROUP_NAME_MAX - 9].rstrip('-')}-{digest}"


def wanted_placement_groups(workspace: str, desired: Iterable[DesiredNode]) -> set[str]:
    """Every placement group the config's cluster pools may launch into."""
    return {placement_group_name(workspace, node.group, p.region)
            for node in desired for p in node.candidates if p.cluster}


def ownership_labels(workspace: str, node: DesiredNode, placement: Placement | None = None,
                     lineage: str = "") -> dict[str, str]:
    """The labels a new instance of `node` carries: the user's, then navarch's."""
    spec = node.hash_for(placement) if placement else node.spec_hash
    labels = {**node.labels, LABEL_WORKSPACE: workspace,
              LABEL_ADDRESS: address_to_label(node.address), LABEL_SPEC: spec}
    if lineage:
        labels[LABEL_LINEAGE] = lineage
    return labels


@dataclass(frozen=True)
class Ownership:
    """A listing sorted: `ours` by id, and `foreign` by id (same workspace, another
    state's lineage)."""

    ours: Mapping[str, Node] = field(default_factory=dict)
    foreign: Mapping[str, Node] = field(default_factory=dict)

    def lineages(self) -> list[str]:
        return sorted({n.labels.get(LABEL_LINEAGE, "") for n in self.foreign.values()})


def sort_owned(nodes: Iterable[Node], workspace: str, lineage: str) -> Ownership:
    ours: dict[str, Node] = {}
    foreign: dict[str, Node] = {}
    for node in nodes:
        if node.labels.get(LABEL_WORKSPACE) != workspace:
            continue
        theirs = node.labels.get(LABEL_LINEAGE, "")
        (ours if not theirs or theirs == lineage else foreign)[node.id] = node
    return Ownership(ours, foreign)

"""After an apply or destroy: the placement groups navarch made for `placement: cluster`
pools that no pool wants any more are deleted (providers that own groups say which;
a group still holding instances stays for the next run).

Only providers that a cluster pool uses now, or that ran a cluster pool's node before
this run (its state record's spec says so), are asked: every other apply costs no call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from navarch_plan.apply.hooks import Hooks
from navarch_plan.config.desired import DesiredNode
from navarch_plan.errors import NavarchError
from navarch_plan.planner.ownership import wanted_placement_groups
from navarch_plan.providers.base import PlacementGroupOwner, Provider
from navarch_plan.state.model import NodeRecord

__all__ = ["clustered_providers", "prune_placement_groups"]


def clustered_providers(desired: Iterable[DesiredNode], records: Iterable[NodeRecord]
                        ) -> set[str]:
    """The providers a cluster pool uses, or a recorded cluster node ran on."""
    return ({p.provider for node in desired for p in node.candidates if p.cluster}
            | {r.provider for r in records if r.spec.get("placement") == "cluster"})


def prune_placement_groups(providers: Mapping[str, Provider], asked: set[str],
                           workspace: str, lineage: str, desired: Iterable[DesiredNode],
                           options: Mapping[str, Any], hooks: Hooks) -> None:
    """A whole destroy wants no group; any other run keeps every group the config's
    cluster pools may launch into. A provider that fails to answer is reported and
    left for the next run: cleanup never fails an apply that did its work."""
    whole_destroy = options.get("destroy") and not options.get("target") \
        and not options.get("exclude")
    keep = set() if whole_destroy else wanted_placement_groups(workspace, desired)
    for name in sorted(asked):
        provider = providers.get(name)
        if not isinstance(provider, PlacementGroupOwner):
            continue
        try:
            deleted = provider.prune_placement_groups(workspace, lineage, keep)
        except NavarchError as exc:
            hooks.placement_groups_pruned(name, [], str(exc))
            continue
        if deleted:
            hooks.placement_groups_pruned(name, deleted)

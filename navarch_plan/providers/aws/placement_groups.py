"""EC2 cluster placement groups for `placement: cluster` pools: made before a pool's
launch when missing (labelled with the workspace, lineage and pool, so navarch knows
its own), and deleted once no pool wants them and they hold no instance.

Placement group names are unique per account and region; EC2 refuses to delete one that
still holds instances (InvalidPlacementGroup.InUse), which is what keeps a group a
running node is in."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from navarch_plan.errors import ProviderError
from navarch_plan.model import (
    LABEL_ADDRESS,
    LABEL_LINEAGE,
    LABEL_POOL,
    LABEL_WORKSPACE,
    address_from_label,
    parse_address,
)

__all__ = ["ensure_group", "group_tags", "placement", "prune_groups"]

Translating = Callable[[str], AbstractContextManager[Any]]

#: EC2's answers that mean the wanted state is already there.
_EXISTS = "InvalidPlacementGroup.Duplicate"
_IN_USE = "InvalidPlacementGroup.InUse"
_GONE = "InvalidPlacementGroup.Unknown"


def group_tags(labels: Mapping[str, str]) -> list[dict[str, str]]:
    """The group's ownership tags, from the launch's: its workspace and lineage, and the
    pool whose node it is."""
    tags = {k: labels[k] for k in (LABEL_WORKSPACE, LABEL_LINEAGE) if labels.get(k)}
    address = address_from_label(labels.get(LABEL_ADDRESS, ""))
    if address:
        tags[LABEL_POOL] = parse_address(address)[1]
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def ensure_group(client: Any, name: str, labels: Mapping[str, str],
                 translating: Translating) -> None:
    """The cluster placement group `name`, created when a lookup by name finds none. Two
    launches racing to create it both succeed: EC2's "already exists" is success here."""
    with translating(f"looking up placement group {name}"):
        found = client.describe_placement_groups(
            Filters=[{"Name": "group-name", "Values": [name]}])["PlacementGroups"]
    if found:
        return
    try:
        with translating(f"creating placement group {name}"):
            client.create_placement_group(
                GroupName=name, Strategy="cluster",
                TagSpecifications=[{"ResourceType": "placement-group",
                                    "Tags": group_tags(labels)}])
    except ProviderError as exc:
        if exc.code != _EXISTS:
            raise


def placement(group: str, zone: str) -> dict[str, str]:
    """RunInstances' Placement: the group and, when the candidate names one, its zone
    (without one, EC2 puts the instance where the group's instances are)."""
    return {"GroupName": group, **({"AvailabilityZone": zone} if zone else {})}


def prune_groups(client: Any, workspace: str, lineage: str, keep: set[str],
                 translating: Translating) -> list[str]:
    """Deletes this workspace's (and lineage's) groups not in `keep`; a group that still
    holds instances stays (the next apply tries again). Returns the deleted names."""
    filters = [{"Name": f"tag:{LABEL_WORKSPACE}", "Values": [workspace]}]
    if lineage:
        filters.append({"Name": f"tag:{LABEL_LINEAGE}", "Values": [lineage]})
    with translating("listing placement groups"):
        groups = client.describe_placement_groups(Filters=filters)["PlacementGroups"]
    deleted = []
    for name in sorted(g["GroupName"] for g in groups if g["GroupName"] not in keep):
        try:
            with translating(f"deleting placement group {name}"):
                client.delete_placement_group(GroupName=name)
        except ProviderError as exc:
            if exc.code not in (_IN_USE, _GONE):
                raise
            continue
        deleted.append(name)
    return deleted

"""EC2 placement groups for moto's server, which (moto 5.2) has none: CreatePlacementGroup,
DescribePlacementGroups (group-name and tag:KEY filters) and DeletePlacementGroup, added
to moto's EC2 responses in the test's process, so clients in this process (the provider,
the `navarch` command run with `work.cli`) reach them over HTTP with botocore's own
serialisation. Like EC2: names are unique per region, a duplicate is
InvalidPlacementGroup.Duplicate, deleting a group that holds a live instance is
InvalidPlacementGroup.InUse, an unknown one InvalidPlacementGroup.Unknown. RunInstances'
Placement.GroupName is remembered per instance for that."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import ec2_backends
from moto.ec2.responses import EC2Response

__all__ = ["Group", "groups_in", "serve_placement_groups"]


@dataclass
class Group:
    name: str
    group_id: str
    tags: dict[str, str]
    instances: list[str] = field(default_factory=list)


#: (region, backend id) -> name -> group; a moto reset makes new backends, so old
#: groups are forgotten with them.
_GROUPS: dict[tuple[str, int], dict[str, Group]] = {}


def groups_in(region: str) -> dict[str, Group]:
    """The groups moto's EC2 in `region` holds now."""
    return _GROUPS.setdefault((region, id(ec2_backends[DEFAULT_ACCOUNT_ID][region])), {})


def _mine(response: Any) -> dict[str, Group]:
    return groups_in(response.region)


def _shape(group: Group) -> dict[str, Any]:
    return {"GroupName": group.name, "GroupId": group.group_id, "Strategy": "cluster",
            "State": "available",
            "Tags": [{"Key": k, "Value": v} for k, v in group.tags.items()]}


def _live(response: Any, group: Group) -> bool:
    backend = response.ec2_backend
    return any(i.state != "terminated" for i in backend.all_instances()
               if i.id in group.instances)


def _create(self: Any) -> ActionResult:
    name = self._get_param("GroupName")
    groups = _mine(self)
    if name in groups:
        raise EC2ClientError("InvalidPlacementGroup.Duplicate",
                             f"The Placement Group '{name}' already exists.")
    tags = self._parse_tag_specification().get("placement-group", {})
    groups[name] = Group(name, f"pg-{len(groups):017x}", dict(tags))
    return ActionResult({"PlacementGroup": _shape(groups[name])})


def _describe(self: Any) -> ActionResult:
    filters = self._filters_from_querystring()
    found = []
    for group in _mine(self).values():
        fields = {"group-name": group.name,
                  **{f"tag:{k}": v for k, v in group.tags.items()}}
        if all(fields.get(key) in values for key, values in filters.items()):
            found.append(_shape(group))
    return ActionResult({"PlacementGroups": found})


def _delete(self: Any) -> ActionResult:
    name = self._get_param("GroupName")
    groups = _mine(self)
    if name not in groups:
        raise EC2ClientError("InvalidPlacementGroup.Unknown",
                             f"The Placement Group '{name}' is unknown.")
    if _live(self, groups[name]):
        raise EC2ClientError("InvalidPlacementGroup.InUse",
                             f"The placement group '{name}' is in use.")
    del groups[name]
    return ActionResult({})


def serve_placement_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's EC2 answers the three placement group calls until the test ends; a
    launch naming a group that does not exist is refused, as EC2 does."""
    launch = EC2Response.run_instances

    def run_instances(self: Any) -> Any:
        name = self._get_param("Placement.GroupName")
        if name and name not in _mine(self):
            raise EC2ClientError("InvalidPlacementGroup.Unknown",
                                 f"The Placement Group '{name}' is unknown.")
        result = launch(self)
        if name:
            _mine(self)[name].instances += [i.id for i in result.result.instances]
        return result

    monkeypatch.setattr(EC2Response, "create_placement_group", _create, raising=False)
    monkeypatch.setattr(EC2Response, "describe_placement_groups", _describe, raising=False)
    monkeypatch.setattr(EC2Response, "delete_placement_group", _delete, raising=False)
    monkeypatch.setattr(EC2Response, "run_instances", run_instances)

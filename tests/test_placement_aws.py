"""Cluster placement on EC2: the real boto3 client against moto's server on 127.0.0.1,
with placement groups added to it (moto 5.2 has none: tests/fakes/ec2_placement_groups.py).
A launch for a cluster pool makes its group once (looked up by name first), labelled
with navarch's ownership tags, and names it in RunInstances' Placement; pruning deletes
the groups no pool wants once they hold no instance; `navarch destroy` removes the group
with the pool."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from navarch_plan.model import ProvisionRequest
from navarch_plan.providers.aws import AwsProvider
from navarch_plan.providers.base import PlacementGroupOwner
from tests.conftest import OFFLINE_ENV, Workdir, reset_moto
from tests.fakes.ec2_placement_groups import groups_in, serve_placement_groups
from tests.fakes.moto_server import AMI, Recorder

EAST = "us-east-1"
GROUP = "navarch-research-train-us-east-1"
LABELS = {"navarch-workspace": "research", "navarch-lineage": "lin-1",
          "navarch-address": "p_train_0"}


@pytest.fixture
def aws(aws_credentials: None, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
        ) -> AwsProvider:
    reset_moto(moto_endpoint)
    serve_placement_groups(monkeypatch)
    provider = AwsProvider("aws", EAST, image_id=AMI, key_name="ops", endpoint_url=moto_endpoint)
    provider.launch_lookup_delay = 0.0
    return provider


def _request(name: str, zone: str = "us-east-1b", group: str = GROUP) -> ProvisionRequest:
    return ProvisionRequest(name=name, instance_type="p4d.24xlarge", region=EAST, zone=zone,
                            labels=LABELS, placement_group=group)


def _record(aws: AwsProvider, kind: str) -> Recorder:
    recorder = Recorder()
    client = aws.launch_client(EAST) if kind == "RunInstances" else aws.client(EAST)
    client.meta.events.register(f"before-send.ec2.{kind}", recorder)
    return recorder


def test_a_cluster_launch_makes_its_group_once_and_launches_into_it(aws: AwsProvider) -> None:
    creates, looks, launches = (_record(aws, k) for k in (
        "CreatePlacementGroup", "DescribePlacementGroups", "RunInstances"))
    aws.provision(_request("research-train-0"))
    aws.provision(_request("research-train-1"))
    assert looks.calls == 2 and creates.calls == 1
    assert looks.bodies[0]["Filter.1.Name"] == "group-name"
    assert looks.bodies[0]["Filter.1.Value.1"] == GROUP
    sent = creates.bodies[0]
    assert (sent["GroupName"], sent["Strategy"]) == (GROUP, "cluster")
    assert sent["TagSpecification.1.ResourceType"] == "placement-group"
    tags = {sent[f"TagSpecification.1.Tag.{i}.Key"]: sent[f"TagSpecification.1.Tag.{i}.Value"]
            for i in (1, 2, 3)}
    assert tags == {"navarch-workspace": "research", "navarch-lineage": "lin-1",
                    "navarch-pool": "train"}
    for body in launches.bodies:
        assert body["Placement.GroupName"] == GROUP
        assert body["Placement.AvailabilityZone"] == "us-east-1b"
    group = groups_in(EAST)[GROUP]
    assert group.tags == tags and len(group.instances) == 2


def test_a_launch_without_a_group_sends_no_group(aws: AwsProvider) -> None:
    creates, launches = _record(aws, "CreatePlacementGroup"), _record(aws, "RunInstances")
    aws.provision(_request("research-w-0", group=""))
    assert creates.calls == 0
    assert "Placement.GroupName" not in launches.bodies[0]
    assert launches.bodies[0]["Placement.AvailabilityZone"] == "us-east-1b"


def test_a_group_with_no_zone_lets_ec2_choose(aws: AwsProvider) -> None:
    launches = _record(aws, "RunInstances")
    aws.provision(_request("research-train-0", zone=""))
    assert launches.bodies[0]["Placement.GroupName"] == GROUP
    assert "Placement.AvailabilityZone" not in launches.bodies[0]


def test_pruning_keeps_wanted_and_busy_groups(aws: AwsProvider, moto_endpoint: str) -> None:
    assert isinstance(aws, PlacementGroupOwner)
    node = aws.provision(_request("research-train-0"))
    aws.provision(_request("research-old-0", group="navarch-research-old-us-east-1"))
    old = groups_in(EAST)["navarch-research-old-us-east-1"]
    # Another lineage's group in the same workspace is never ours to delete.
    theirs = {**LABELS, "navarch-lineage": "lin-2"}
    aws.provision(ProvisionRequest("other-0", "p4d.24xlarge", EAST, labels=theirs,
                                   placement_group="navarch-research-x-us-east-1"))
    ec2 = boto3.client("ec2", region_name=EAST, endpoint_url=moto_endpoint)
    ec2.terminate_instances(InstanceIds=old.instances)
    assert aws.prune_placement_groups("research", "lin-1", {GROUP}) == \
        ["navarch-research-old-us-east-1"]
    # Not wanted but still holding a node: it stays until the node is gone.
    assert aws.prune_placement_groups("research", "lin-1", set()) == []
    assert GROUP in groups_in(EAST)
    aws.terminate(node.id)
    assert aws.prune_placement_groups("research", "lin-1", set()) == [GROUP]
    assert sorted(groups_in(EAST)) == ["navarch-research-x-us-east-1"]


def _aws_config(work: Workdir, moto_endpoint: str, nodes: int) -> None:
    doc: dict[str, Any] = {
        "version": 1, "workspace": "research",
        "providers": {"aws": {"type": "aws", "region": EAST, "image_id": AMI,
                              "endpoint_url": moto_endpoint, "consistency_window": 0}},
        "pools": {"train": {"provider": "aws", "instance_type": "p4d.24xlarge",
                            "region": EAST, "zone": "us-east-1a", "nodes": nodes,
                            "placement": "cluster"}}}
    work.write(json.dumps(doc))


def test_apply_makes_the_group_and_destroy_removes_it(work: Workdir, aws: AwsProvider,
                                                      moto_endpoint: str) -> None:
    env = {**OFFLINE_ENV, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    _aws_config(work, moto_endpoint, 2)
    result = work.cli("apply", "--auto-approve", env=env)
    assert result.code == 0, result.err
    group = groups_in(EAST)[GROUP]
    assert group.tags["navarch-pool"] == "train"
    assert group.tags["navarch-lineage"] == work.state("research")["lineage"]
    assert len(group.instances) == 2
    result = work.cli("destroy", "--auto-approve", env=env)
    assert result.code == 0, result.err
    assert GROUP not in groups_in(EAST)
    assert f"placement group {GROUP} deleted" in result.out + result.err


def test_removing_the_pool_removes_its_group(work: Workdir, aws: AwsProvider,
                                             moto_endpoint: str) -> None:
    """The config no longer names the pool (so no cluster pool is left): the state's
    records say the provider ran one, so apply still cleans up after deleting them."""
    env = {**OFFLINE_ENV, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    _aws_config(work, moto_endpoint, 1)
    assert work.cli("apply", "--auto-approve", env=env).code == 0
    assert GROUP in groups_in(EAST)
    doc = json.loads((work.path / "navarch.yaml").read_text())
    doc["pools"] = {"w": {**doc["pools"]["train"], "instance_type": "g5.xlarge", "nodes": 1}}
    del doc["pools"]["w"]["placement"]
    work.write(json.dumps(doc))
    result = work.cli("apply", "--auto-approve", env=env)
    assert result.code == 0, result.err
    assert GROUP not in groups_in(EAST)
    assert f"aws: placement group {GROUP} deleted" in result.out + result.err

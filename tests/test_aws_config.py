"""The aws options at config load (a gap is said before anything launches), and one
failover across regions through the real `navarch` command against moto."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from navarch_plan.config import parse_config
from navarch_plan.errors import ConfigError
from tests.conftest import Workdir
from tests.fakes.moto_server import refuse_launches, register_ami, strict_images
from tests.test_e2e_clouds import AwsCloud

EAST, WEST = "us-east-1", "us-west-2"


def config(provider: dict[str, Any], pool: dict[str, Any] | None = None) -> str:
    entry = {"name": "aws", "regions": [EAST, WEST], "instance_type": "g5.xlarge",
             **(pool or {})}
    doc = {"version": 1,
           "providers": {"aws": {"type": "aws", "region": EAST, **provider}},
           "pools": {"workers": {"nodes": 1, "providers": [entry]}}}
    return json.dumps(doc, indent=2) + "\n"  # JSON is YAML: one key a line


def load_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "navarch.yaml", {})
    return info.value


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(("option", "value", "lacking"), [
    ("image_id", {EAST: "ami-0aaa"}, f"region {WEST}"),
    ("security_group_ids", {EAST: ["sg-0aaa"]}, f"region {WEST}"),
    ("subnet_id", {EAST: "subnet-0aaa"}, f"region {WEST}"),
])
def test_a_candidate_region_without_a_value_fails_at_load(option: str, value: Any,
                                                          lacking: str) -> None:
    text = config({option: value})
    err = load_error(text)
    assert err.path == f"providers.aws.{option}" and err.line == line_of(text, f'"{option}"')
    assert f"{option} has no value for {lacking}" in err.message


def test_subnets_by_zone_then_region() -> None:
    doc = json.loads(config({"subnet_id": {"us-east-1a": "subnet-0aaa", WEST: "subnet-0bbb"}}))
    entry = doc["pools"]["workers"]["providers"][0]
    entry["zones"] = ["us-east-1a", "us-west-2a"]  # us-west-2a: the region's subnet
    parse_config(json.dumps(doc, indent=2), "navarch.yaml", {})
    entry["zones"] = ["us-east-1b", "us-west-2a"]
    err = load_error(json.dumps(doc, indent=2))
    assert "subnet_id has no value for zone us-east-1b or region us-east-1" in err.message


def test_a_pools_image_override_is_checked_where_the_pool_sets_it() -> None:
    text = config({"image_id": {EAST: "ami-0aaa", WEST: "ami-0bbb"}},
                  {"launch": {"image_id": {EAST: "ami-0ccc"}, "root_volume_gb": 500}})
    err = load_error(text)
    assert err.path == "pools.workers.providers[0].launch.image_id"
    assert "image_id has no value for region us-west-2" in err.message


@pytest.mark.parametrize(("options", "bad"), [
    ({"root_volume_type": "st1"}, "root_volume_type"),
    ({"root_volume_gb": 0}, "root_volume_gb"),
    ({"iam_instance_profile": "arn:aws:iam::12:instance-profile/x"}, "iam_instance_profile"),
    ({"image_id": "ssm:/aws/service/x"}, "image_id"),
    ({"image_id": {"us east": "ami-0aaa"}}, "image_id"),
])
def test_options_the_cloud_would_refuse(options: dict[str, Any], bad: str) -> None:
    assert load_error(config(options)).path.startswith(f"providers.aws.{bad}")


def test_a_bad_entry_of_a_map_is_named() -> None:
    err = load_error(config({"image_id": {EAST: "ami-0aaa", WEST: "ami-zz"}}))
    assert err.path == "providers.aws.image_id.us-west-2" and "'ami-zz'" in err.message


def test_the_launch_options_a_user_needs_load() -> None:
    text = config({"image_id": "resolve:ssm:/aws/service/ecs/optimized-ami/amazon-linux-2023/"
                               "gpu/recommended/image_id",
                   "root_volume_gb": 500, "root_volume_type": "gp3",
                   "iam_instance_profile": "arn:aws:iam::123456789012:instance-profile/gpu"},
                  {"launch": {"iam_instance_profile": "trainer", "root_volume_gb": 1000}})
    loaded = parse_config(text, "navarch.yaml", {})
    # The provider's options stay as given; the entry's overrides reach every candidate.
    assert loaded.providers["aws"].options["root_volume_type"] == "gp3"
    [node] = loaded.desired.values()
    assert {tuple(sorted(p.launch.items())) for p in node.candidates} == {
        (("iam_instance_profile", "trainer"), ("root_volume_gb", 1000))}
    parse_config(config({}), "navarch.yaml", {})  # no image_id: the Deep Learning AMI


# -- through the command ----------------------------------------------------------------------

def test_validate_names_the_region_a_map_lacks(work: Workdir, aws_credentials: None) -> None:
    text = config({"image_id": {EAST: "ami-0aaa"}, "root_volume_gb": 300})
    work.write(text)
    result = work.cli("validate")
    assert result.code == 1 and result.out == ""
    line = line_of(text, '"image_id"')
    column = text.splitlines()[line - 1].index('"') + 1
    # The one error (beside the warning of a config without `workspace:`).
    assert [e for e in result.err.splitlines() if e.startswith("Error")] == [
        f"Error: navarch.yaml:{line}:{column}: "
        "providers.aws.image_id: image_id has no value for region us-west-2, where this node "
        "may launch (an AMI id belongs to one region)"]


def test_failover_to_another_region_launches_that_regions_ami(
        work: Workdir, moto_endpoint: str, aws_credentials: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """us-east-1 has no capacity (EC2's HTTP 500 InsufficientInstanceCapacity); the node
    goes to us-west-2 with us-west-2's own AMI and the 200 GB root volume. moto refuses
    an AMI of another region, as EC2 does."""
    cloud = AwsCloud(moto_endpoint, work.path)  # resets moto; the command's environment
    ec2 = {r: boto3.client("ec2", region_name=r, endpoint_url=moto_endpoint) for r in (EAST, WEST)}
    strict_images(monkeypatch)
    refuse_launches(monkeypatch, EAST, "InsufficientInstanceCapacity",
                    "We currently do not have sufficient g5.xlarge capacity.")
    amis = {r: register_ami(ec2[r], f"gpu-{r}") for r in (EAST, WEST)}
    doc = json.loads(config({**cloud.provider, "image_id": amis, "root_volume_gb": 200}))
    work.write(json.dumps({**doc, "workspace": "e2e"}, indent=2) + "\n")
    result = work.run("apply", "--auto-approve", env=cloud.env)
    assert result.code == 0, result.out + result.err
    assert "aws/us-east-1 no capacity -> aws/us-west-2 created" in result.out
    reservations = ec2[WEST].describe_instances()["Reservations"]
    [made] = [i for r in reservations for i in r["Instances"]]
    assert made["ImageId"] == amis[WEST] and made["State"]["Name"] == "running"
    volume = made["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    assert ec2[WEST].describe_volumes(VolumeIds=[volume])["Volumes"][0]["Size"] == 200
    assert ec2[EAST].describe_instances()["Reservations"] == []
    assert work.state("e2e")["nodes"]["pool.workers[0]"]["region"] == WEST
    again = work.run("plan", "--detailed-exitcode", env=cloud.env)
    assert again.code == 0, again.out + again.err

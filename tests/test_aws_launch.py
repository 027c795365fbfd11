"""What an EC2 launch needs in each region, through real boto3 against moto's server:
per-region (and per-zone) images, subnets and security groups; images resolved from a
public SSM parameter; root volume and instance profile; errors that say what they rule
out. moto refuses an AMI id its region does not hold (tests/fakes/moto_server.py
`strict_images`), as EC2 does; request bodies are read as moto received them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest

from navarch_plan.errors import InvalidRequestError, NotOfferedError, QuotaError
from navarch_plan.model import LABEL_WORKSPACE, ProvisionRequest
from navarch_plan.providers.aws import AwsProvider
from navarch_plan.providers.aws.kind import AWS
from navarch_plan.providers.aws.launch import DEFAULT_IMAGE, SSM_PREFIX
from navarch_plan.providers.base import BuildContext
from tests.conftest import reset_moto
from tests.fakes.moto_server import (
    Recorder,
    error_response,
    publish_public_parameter,
    register_ami,
    strict_images,
)

EAST, WEST = "us-east-1", "us-west-2"
ECS_GPU = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"


@pytest.fixture(autouse=True)
def strict(aws_credentials: None, moto_endpoint: str,
           monkeypatch: pytest.MonkeyPatch) -> None:
    reset_moto(moto_endpoint)
    strict_images(monkeypatch)


@pytest.fixture
def raw(moto_endpoint: str) -> Callable[[str, str], Any]:
    """Plain boto3 clients, apart from the provider, to set up and read the cloud."""
    return lambda service, region: boto3.client(service, region_name=region,
                                                endpoint_url=moto_endpoint)


@pytest.fixture
def amis(raw: Callable) -> dict[str, str]:
    """One AMI per region, as a user's own GPU image copied to two regions."""
    return {EAST: register_ami(raw("ec2", EAST), "gpu-base-east"),
            WEST: register_ami(raw("ec2", WEST), "gpu-base-west", root_device="/dev/xvda")}


def provider(endpoint: str, **options: Any) -> AwsProvider:
    return AWS.build("aws", {"region": EAST, "regions": [WEST], "endpoint_url": endpoint,
                             **options}, {}, BuildContext())  # type: ignore[return-value]


def request(region: str, zone: str = "", name: str = "research-w-0-abcd",
            instance_type: str = "g5.xlarge", **kw: Any) -> ProvisionRequest:
    return ProvisionRequest(name=name, instance_type=instance_type, region=region, zone=zone,
                            labels={LABEL_WORKSPACE: "research"}, **kw)


def launches(p: AwsProvider, region: str) -> Recorder:
    recorder = Recorder()
    p.launch_client(region).meta.events.register("before-send.ec2.RunInstances", recorder)
    return recorder


def instance(raw: Callable, region: str, node_id: str) -> dict[str, Any]:
    reply = raw("ec2", region).describe_instances(InstanceIds=[node_id])
    return reply["Reservations"][0]["Instances"][0]


# -- per-region values ---------------------------------------------------------------------

def test_each_region_launches_its_own_ami(moto_endpoint: str, amis: dict[str, str],
                                          raw: Callable) -> None:
    p = provider(moto_endpoint, image_id=amis)
    east, west = p.provision(request(EAST)), p.provision(request(WEST, name="research-w-1-abcd"))
    assert instance(raw, EAST, east.id)["ImageId"] == amis[EAST]
    assert instance(raw, WEST, west.id)["ImageId"] == amis[WEST]


def test_an_ami_of_another_region_is_a_config_gap_named_so(moto_endpoint: str,
                                                          amis: dict[str, str]) -> None:
    """One AMI id sent to every region: EC2 (and moto, strict) says InvalidAMIID.NotFound
    in the other region; the error is the config's, and says which option to set where."""
    p = provider(moto_endpoint, image_id=amis[EAST])
    with pytest.raises(InvalidRequestError) as info:
        p.provision(request(WEST))
    err = info.value
    assert (err.code, err.region) == ("InvalidAMIID.NotFound", WEST)
    assert "providers.aws.image_id" in str(err) and f"{{{WEST}: ...}}" in str(err)


def test_subnet_by_zone_then_region_and_groups_by_region(moto_endpoint: str,
                                                         amis: dict[str, str],
                                                         raw: Callable) -> None:
    subnets = {s["AvailabilityZone"]: s["SubnetId"]
               for region in (EAST, WEST)
               for s in raw("ec2", region).describe_subnets()["Subnets"]}
    groups = {r: raw("ec2", r).create_security_group(GroupName="gpu", Description="gpu")
              ["GroupId"] for r in (EAST, WEST)}
    p = provider(moto_endpoint, image_id=amis,
                 subnet_id={"us-east-1b": subnets["us-east-1b"], EAST: subnets["us-east-1a"],
                            WEST: subnets["us-west-2c"]},
                 security_group_ids={EAST: [groups[EAST]], WEST: [groups[WEST]]})
    in_b = p.provision(request(EAST, zone="us-east-1b"))
    in_c = p.provision(request(EAST, zone="us-east-1c", name="research-w-1-abcd"))
    west = p.provision(request(WEST, name="research-w-2-abcd"))
    assert instance(raw, EAST, in_b.id)["SubnetId"] == subnets["us-east-1b"]  # the zone's
    assert instance(raw, EAST, in_c.id)["SubnetId"] == subnets["us-east-1a"]  # the region's
    got = instance(raw, WEST, west.id)
    assert got["SubnetId"] == subnets["us-west-2c"]
    assert [g["GroupId"] for g in got["SecurityGroups"]] == [groups[WEST]]


def test_a_group_of_another_region_names_the_option(moto_endpoint: str,
                                                    amis: dict[str, str],
                                                    raw: Callable) -> None:
    east_group = raw("ec2", EAST).create_security_group(GroupName="g", Description="g")
    p = provider(moto_endpoint, image_id=amis, security_group_ids=[east_group["GroupId"]])
    with pytest.raises(InvalidRequestError) as info:
        p.provision(request(WEST))
    assert info.value.code == "InvalidGroup.NotFound"
    assert "providers.aws.security_group_ids" in str(info.value) and WEST in str(info.value)


# -- images from SSM -----------------------------------------------------------------------

def test_ssm_image_is_resolved_in_each_region_once(moto_endpoint: str, raw: Callable,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """moto serves AWS's ECS GPU-optimized AL2023 parameter, a different AMI per region."""
    monkeypatch.setattr("moto.settings.ENABLE_AMI_VALIDATION", False)  # no such AMIs here
    p = provider(moto_endpoint, image_id=SSM_PREFIX + ECS_GPU)
    asked = {r: Recorder() for r in (EAST, WEST)}
    for region, recorder in asked.items():
        p.ssm_client(region).meta.events.register("before-send.ssm.GetParameter", recorder)
    sent = {r: launches(p, r) for r in (EAST, WEST)}
    p.provision(request(EAST))
    p.provision(request(WEST, name="research-w-1-abcd"))
    p.provision(request(EAST, name="research-w-2-abcd"))
    expected = {r: raw("ssm", r).get_parameter(Name=ECS_GPU)["Parameter"]["Value"]
                for r in (EAST, WEST)}
    assert expected[EAST] != expected[WEST]
    assert [b["ImageId"] for b in sent[EAST].bodies] == [expected[EAST]] * 2
    assert [b["ImageId"] for b in sent[WEST].bodies] == [expected[WEST]]
    assert (asked[EAST].calls, asked[WEST].calls) == (1, 1)  # cached per region


def test_without_image_id_the_deep_learning_ami_parameter(moto_endpoint: str,
                                                          raw: Callable) -> None:
    ami = register_ami(raw("ec2", EAST), "Deep Learning Base OSS Nvidia Driver GPU AMI")
    publish_public_parameter(EAST, DEFAULT_IMAGE[len(SSM_PREFIX):], ami)
    p = provider(moto_endpoint)
    node = p.provision(request(EAST))
    assert instance(raw, EAST, node.id)["ImageId"] == ami


def test_a_parameter_missing_in_a_region_is_a_config_error(moto_endpoint: str) -> None:
    p = provider(moto_endpoint)  # moto does not ship the Deep Learning AMI's parameter
    sent = launches(p, WEST)
    with pytest.raises(InvalidRequestError) as info:
        p.provision(request(WEST))
    assert info.value.code == "ParameterNotFound" and info.value.region == WEST
    assert "image_id" in str(info.value) and sent.calls == 0


# -- root volume and instance profile --------------------------------------------------------

def test_root_volume_and_profile_as_sent(moto_endpoint: str, amis: dict[str, str],
                                         raw: Callable) -> None:
    raw("iam", EAST).create_instance_profile(InstanceProfileName="gpu-node")
    p = provider(moto_endpoint, image_id=amis, root_volume_gb=300,
                 iam_instance_profile="gpu-node")
    sent = {r: launches(p, r) for r in (EAST, WEST)}
    east = p.provision(request(EAST))
    p.provision(request(WEST, name="research-w-1-abcd"))
    [body] = sent[EAST].bodies
    assert {k: v for k, v in body.items() if k.startswith(("BlockDevice", "IamInstance"))} == {
        "BlockDeviceMapping.1.DeviceName": "/dev/sda1",  # the AMI's root device
        "BlockDeviceMapping.1.Ebs.VolumeType": "gp3",
        "BlockDeviceMapping.1.Ebs.DeleteOnTermination": "true",
        "BlockDeviceMapping.1.Ebs.VolumeSize": "300",
        "IamInstanceProfile.Name": "gpu-node"}
    assert sent[WEST].bodies[0]["BlockDeviceMapping.1.DeviceName"] == "/dev/xvda"
    volume = instance(raw, EAST, east.id)["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    [made] = raw("ec2", EAST).describe_volumes(VolumeIds=[volume])["Volumes"]
    assert (made["Size"], made["VolumeType"]) == (300, "gp3")
    assert instance(raw, EAST, east.id)["IamInstanceProfile"]["Arn"].endswith("/gpu-node")


def test_a_pools_launch_overrides_the_providers(moto_endpoint: str, amis: dict[str, str],
                                               raw: Callable) -> None:
    arn = raw("iam", EAST).create_instance_profile(
        InstanceProfileName="trainer")["InstanceProfile"]["Arn"]
    other = register_ami(raw("ec2", EAST), "trainer-image", root_device="/dev/xvda")
    p = provider(moto_endpoint, image_id=amis, root_volume_gb=100)
    sent = launches(p, EAST)
    p.provision(request(EAST, launch={"image_id": {EAST: other}, "root_volume_gb": 2000,
                                      "root_volume_type": "gp2",
                                      "iam_instance_profile": arn}))
    p.provision(request(EAST, name="research-w-1-abcd"))
    pool, plain = sent.bodies
    assert (pool["ImageId"], pool["BlockDeviceMapping.1.DeviceName"]) == (other, "/dev/xvda")
    assert pool["BlockDeviceMapping.1.Ebs.VolumeSize"] == "2000"
    assert pool["BlockDeviceMapping.1.Ebs.VolumeType"] == "gp2"
    assert pool["IamInstanceProfile.Arn"] == arn
    assert (plain["ImageId"], plain["BlockDeviceMapping.1.Ebs.VolumeSize"]) == (amis[EAST], "100")
    assert "IamInstanceProfile.Name" not in plain and "IamInstanceProfile.Arn" not in plain


def test_root_volume_of_an_image_the_region_lacks_fails_before_launch(
        moto_endpoint: str, amis: dict[str, str]) -> None:
    p = provider(moto_endpoint, image_id=amis[EAST], root_volume_gb=200)
    sent = launches(p, WEST)
    with pytest.raises(InvalidRequestError) as info:
        p.provision(request(WEST))
    assert info.value.code == "InvalidAMIID.NotFound" and sent.calls == 0
    assert "providers.aws.image_id" in str(info.value) and WEST in str(info.value)


# -- errors that say what they rule out --------------------------------------------------------

def refuse(p: AwsProvider, status: int, code: str) -> Recorder:
    recorder = Recorder(error_response(status, code, f"{code} says no"))
    p.launch_client(EAST).meta.events.register("before-send.ec2.RunInstances", recorder)
    return recorder


def test_unsupported_in_a_zone_is_not_offered(moto_endpoint: str,
                                              amis: dict[str, str]) -> None:
    p = provider(moto_endpoint, image_id=amis)
    refuse(p, 400, "Unsupported")
    with pytest.raises(NotOfferedError) as info:
        p.provision(request(EAST, zone="us-east-1e", instance_type="p5.48xlarge"))
    assert info.value.code == "Unsupported"


@pytest.mark.parametrize(("code", "instance_type", "covered", "not_covered"), [
    ("VcpuLimitExceeded", "p5.48xlarge", {"p4d.24xlarge", "p6-b200.48xlarge"}, "g5.xlarge"),
    ("VcpuLimitExceeded", "g6.xlarge", {"g5.48xlarge", "g4dn.xlarge"}, "p5.48xlarge"),
    ("MaxSpotInstanceCountExceeded", "g5.xlarge", {"g6.xlarge"}, "p4d.24xlarge"),
])
def test_a_vcpu_quota_rules_out_its_family_group(moto_endpoint: str, amis: dict[str, str],
                                                 code: str, instance_type: str,
                                                 covered: set[str], not_covered: str) -> None:
    p = provider(moto_endpoint, image_id=amis)
    refuse(p, 400, code)
    with pytest.raises(QuotaError) as info:
        p.provision(request(EAST, instance_type=instance_type))
    types = info.value.instance_types
    assert types is not None and {instance_type, *covered} <= types
    assert not_covered not in types and not info.value.provider_wide

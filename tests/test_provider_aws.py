"""AwsProvider with real boto3 against moto's EC2 server on 127.0.0.1.

Cloud errors moto never produces are injected on the provider's own boto3 clients through
botocore's event system (`before-send`), so botocore's real parsing and retry logic runs.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from botocore.httpsession import URLLib3Session

from navarch_plan.config import parse_config
from navarch_plan.errors import (
    AuthError,
    CapacityError,
    ConfigError,
    DuplicateLaunchError,
    InvalidRequestError,
    NotOfferedError,
    ProviderError,
    QuotaError,
    RateLimitError,
    TransientError,
)
from navarch_plan.model import LABEL_WORKSPACE, NodeStatus, ProvisionRequest
from navarch_plan.providers.aws import AwsProvider
from navarch_plan.providers.aws.kind import AWS
from navarch_plan.providers.base import BuildContext, InstanceTypeLister, NodeGetter, Provider
from tests.conftest import reset_moto
from tests.fakes.moto_server import AMI, RawBody, Recorder, ec2_error, error_response

EAST, WEST = "us-east-1", "us-west-2"
OWNED = {LABEL_WORKSPACE: "research", "team": "ml"}


@pytest.fixture(scope="module")
def endpoint(moto_endpoint: str) -> str:
    return moto_endpoint


@pytest.fixture(autouse=True)
def aws_env(aws_credentials: None, endpoint: str) -> None:
    reset_moto(endpoint)


@pytest.fixture
def provider(endpoint: str) -> AwsProvider:
    p = AwsProvider("aws", EAST, image_id=AMI, key_name="ops", regions=[WEST],
                    endpoint_url=endpoint)
    p.launch_lookup_delay = 0.0  # moto is consistent at once; no need to wait between looks
    return p


@pytest.fixture
def raw(endpoint: str) -> Callable[[str], Any]:
    """Plain boto3 clients, independent of the provider, to set up and check the cloud."""
    return lambda region: boto3.client("ec2", region_name=region, endpoint_url=endpoint)


def request(name: str, region: str = EAST, **kw: Any) -> ProvisionRequest:
    kw.setdefault("labels", OWNED)
    return ProvisionRequest(name=name, instance_type=kw.pop("instance_type", "g5.xlarge"),
                            region=region, **kw)


def hook(client: Any, operation: str, recorder: Recorder) -> Recorder:
    client.meta.events.register(f"before-send.ec2.{operation}", recorder)
    return recorder


def tags_of(instance: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def described(raw_client: Any) -> list[dict]:
    return [i for r in raw_client.describe_instances()["Reservations"] for i in r["Instances"]]


# -- provisioning ------------------------------------------------------------------------

def test_implements_the_protocols(provider: AwsProvider) -> None:
    assert isinstance(provider, Provider)
    assert isinstance(provider, InstanceTypeLister)
    assert isinstance(provider, NodeGetter)


def test_provision_round_trip(provider: AwsProvider, raw: Callable) -> None:
    user_data = "#!/bin/bash\necho 'head=10.0.0.1' > /etc/navarch-head\n"
    node = provider.provision(request(
        "research-trainers-0-ab12", instance_type="p5.48xlarge", zone="us-east-1b",
        ssh_key_names=("team-key", "second-key"), user_data=user_data))

    assert node.provider == "aws" and node.region == EAST and node.zone == "us-east-1b"
    assert node.name == "research-trainers-0-ab12"
    assert node.instance_type == "p5.48xlarge"
    assert (node.gpu_count, node.gpu_type) == (8, "H100")
    assert node.status is NodeStatus.PROVISIONING  # EC2 answers a launch with `pending`
    assert node.ip_address
    assert dict(node.labels) == OWNED

    [instance] = described(raw(EAST))
    assert instance["InstanceId"] == node.id
    assert tags_of(instance) == {**OWNED, "Name": "research-trainers-0-ab12"}
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1b"
    assert instance["KeyName"] == "team-key"  # EC2 takes one key: the first
    assert instance["InstanceType"] == "p5.48xlarge"
    attr = raw(EAST).describe_instance_attribute(InstanceId=node.id, Attribute="userData")
    assert base64.b64decode(attr["UserData"]["Value"]).decode() == user_data

    again = provider.get(node.id)
    assert again is not None and again.status is NodeStatus.RUNNING and again.name == node.name


def test_provision_defaults_key_and_omits_user_data(provider: AwsProvider,
                                                    raw: Callable) -> None:
    node = provider.provision(request("research-head-0-zz99", region=WEST))
    [instance] = described(raw(WEST))
    assert instance["InstanceId"] == node.id and node.region == WEST
    assert instance["KeyName"] == "ops"
    attr = raw(WEST).describe_instance_attribute(InstanceId=node.id, Attribute="userData")
    assert "Value" not in attr["UserData"]


def test_client_token_is_deterministic_and_short(provider: AwsProvider, endpoint: str) -> None:
    seen: list[str] = []

    def capture(params: dict, **_: Any) -> None:
        seen.append(params["ClientToken"])

    other = AwsProvider("aws", EAST, image_id=AMI, endpoint_url=endpoint)
    for p in (provider, other):
        p.launch_client(EAST).meta.events.register(
            "before-parameter-build.ec2.RunInstances", capture)
    provider.provision(request("research-x-0-aaaa"))
    other.provision(request("research-x-0-aaaa"))
    provider.provision(request("research-x-0-aaaa", zone="us-east-1c"))
    provider.provision(request("research-x-0-bbbb"))
    assert seen[0] == seen[1]
    assert len(set(seen)) == 3
    assert all(len(t) <= 64 and t.isascii() for t in seen)


def test_image_per_region(endpoint: str, raw: Callable) -> None:
    p = AwsProvider("aws", EAST, image_id={EAST: "ami-0eeeeeeeeeeeeeee1"}, regions=[WEST],
                    endpoint_url=endpoint)
    p.provision(request("research-i-0-aaaa"))
    assert [i["ImageId"] for i in described(raw(EAST))] == ["ami-0eeeeeeeeeeeeeee1"]
    with pytest.raises(InvalidRequestError) as info:
        p.provision(request("research-i-1-aaaa", region=WEST))
    assert info.value.code == "NoImageForRegion" and described(raw(WEST)) == []


def test_provision_outside_configured_regions_is_refused(provider: AwsProvider) -> None:
    sent = hook(provider.launch_client("eu-west-1"), "RunInstances", Recorder())
    with pytest.raises(InvalidRequestError) as info:
        provider.provision(request("research-x-0-cccc", region="eu-west-1"))
    assert info.value.region == "eu-west-1" and sent.calls == 0


# -- errors ------------------------------------------------------------------------------

def test_capacity_error_is_not_retried_by_botocore(provider: AwsProvider,
                                                   raw: Callable) -> None:
    message = "We currently do not have sufficient p5.48xlarge capacity in us-east-1a."
    sent = hook(provider.launch_client(EAST), "RunInstances",
                Recorder(error_response(500, "InsufficientInstanceCapacity", message)))
    with pytest.raises(CapacityError) as info:
        provider.provision(request("research-x-0-dddd", instance_type="p5.48xlarge"))
    err = info.value
    assert sent.calls == 1  # one request: the HTTP 500 was not retried
    assert (err.provider, err.region, err.code) == ("aws", EAST, "InsufficientInstanceCapacity")
    assert err.cloud_message == message
    assert described(raw(EAST)) == []


@pytest.mark.parametrize(("status", "code", "kind"), [
    (400, "VcpuLimitExceeded", QuotaError),
    (400, "InstanceLimitExceeded", QuotaError),
    (401, "AuthFailure", AuthError),
    (400, "Unsupported", NotOfferedError),
    (400, "InvalidAMIID.NotFound", InvalidRequestError),
    (400, "InvalidSubnetID.NotFound", InvalidRequestError),
    (400, "InvalidParameterValue", InvalidRequestError),
    (400, "IdempotentParameterMismatch", DuplicateLaunchError),
    (503, "RequestLimitExceeded", RateLimitError),
])
def test_launch_error_mapping(provider: AwsProvider, status: int, code: str,
                              kind: type[ProviderError]) -> None:
    sent = hook(provider.launch_client(EAST), "RunInstances",
                Recorder(error_response(status, code, f"{code} says no")))
    looked = hook(provider.client(EAST), "DescribeInstances", Recorder())
    with pytest.raises(ProviderError) as info:
        provider.provision(request("research-x-0-eeee"))
    assert type(info.value) is kind
    assert info.value.code == code and info.value.cloud_message == f"{code} says no"
    assert info.value.provider == "aws" and info.value.region == EAST
    assert sent.calls == 1
    assert looked.calls == 0  # a definite "no" needs no lookup


def test_read_timeout_after_launch_finds_the_instance(provider: AwsProvider,
                                                      raw: Callable) -> None:
    http = URLLib3Session()

    def deliver_then_time_out(request: Any, **_: Any) -> None:
        http.send(request)  # moto launches the instance; its answer is then "lost"
        raise ReadTimeoutError(endpoint_url=request.url)

    sent = hook(provider.launch_client(EAST), "RunInstances", Recorder(deliver_then_time_out))
    node = provider.provision(request("research-x-0-ffff"))
    assert sent.calls == 1
    [instance] = described(raw(EAST))
    assert node.id == instance["InstanceId"] and node.name == "research-x-0-ffff"
    assert dict(node.labels) == OWNED


@pytest.mark.parametrize("failure", [
    ConnectTimeoutError(endpoint_url="http://127.0.0.1:9"),
    lambda req: AWSResponse(req.url, 500, {}, RawBody(ec2_error("InternalError"))),
])
def test_unknown_launch_outcome_without_instance_is_transient(
        provider: AwsProvider, raw: Callable, failure: Any) -> None:
    sent = hook(provider.launch_client(EAST), "RunInstances", Recorder(failure))
    looked = hook(provider.client(EAST), "DescribeInstances", Recorder())
    with pytest.raises(TransientError) as info:
        provider.provision(request("research-x-0-gggg"))
    assert "outcome unknown" in str(info.value) and info.value.region == EAST
    assert sent.calls == 1
    assert looked.calls == provider.launch_lookup_attempts
    assert described(raw(EAST)) == []


def test_throttled_describe_is_retried(provider: AwsProvider) -> None:
    node = provider.provision(request("research-x-0-hhhh"))
    sent = hook(provider.client(EAST), "DescribeInstances",
                Recorder(error_response(503, "RequestLimitExceeded"), fail=1))
    assert [n.id for n in provider.list() if n.region == EAST] == [node.id]
    assert sent.calls == 2


def test_missing_credentials_is_auth_error(provider: AwsProvider,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AuthError) as info:
        provider.list()
    assert info.value.code == "NoCredentialsError" and info.value.provider == "aws"


# -- listing, get, terminate -------------------------------------------------------------

def test_list_two_regions_paginated_and_owned_only(provider: AwsProvider,
                                                   raw: Callable) -> None:
    east = {provider.provision(request(f"research-p-{i}-aaaa")).id for i in range(7)}
    west = provider.provision(request("research-p-7-aaaa", region=WEST)).id
    stranger = raw(EAST).run_instances(
        ImageId=AMI, InstanceType="g5.xlarge", MinCount=1, MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance",
                            "Tags": [{"Key": "Name", "Value": "someone-else"}]}],
    )["Instances"][0]["InstanceId"]
    untagged = raw(WEST).run_instances(ImageId=AMI, InstanceType="g5.xlarge", MinCount=1,
                                       MaxCount=1)["Instances"][0]["InstanceId"]

    provider.page_size = 5  # EC2's minimum: 7 reservations make two pages
    pages = hook(provider.client(EAST), "DescribeInstances", Recorder())
    nodes = provider.list()
    assert pages.calls == 2
    assert {n.id for n in nodes} == east | {west}
    assert {n.id: n.region for n in nodes}[west] == WEST
    assert stranger not in {n.id for n in nodes} and untagged not in {n.id for n in nodes}
    assert all(n.labels[LABEL_WORKSPACE] == "research" and "Name" not in n.labels
               for n in nodes)


def test_get_finds_any_region_and_none_when_unknown(provider: AwsProvider,
                                                    endpoint: str) -> None:
    node = provider.provision(request("research-g-0-aaaa", region=WEST))
    fresh = AwsProvider("aws", EAST, image_id=AMI, regions=[WEST], endpoint_url=endpoint)
    found = fresh.get(node.id)  # no cached id -> region: it has to search
    assert found is not None and found.region == WEST and found.name == "research-g-0-aaaa"
    assert fresh.get("i-0123456789abcdef0") is None


def test_terminate_is_idempotent(provider: AwsProvider, endpoint: str) -> None:
    keep = provider.provision(request("research-t-0-aaaa"))
    gone = provider.provision(request("research-t-1-aaaa", region=WEST))
    fresh = AwsProvider("aws", EAST, image_id=AMI, regions=[WEST], endpoint_url=endpoint)
    fresh.terminate(gone.id)
    assert [n.id for n in provider.list()] == [keep.id]  # terminated: no longer listed
    after = provider.get(gone.id)
    assert after is not None and after.status is NodeStatus.TERMINATED
    fresh.terminate(gone.id)
    provider.terminate(gone.id)
    provider.terminate("i-0123456789abcdef0")
    assert provider.get(keep.id).status is NodeStatus.RUNNING


def test_stopped_instance_is_stopped_not_gone(provider: AwsProvider, raw: Callable) -> None:
    node = provider.provision(request("research-s-0-aaaa"))
    raw(EAST).stop_instances(InstanceIds=[node.id])
    [listed] = provider.list()  # stopped is still listed: it exists and costs storage
    assert listed.id == node.id and listed.status is NodeStatus.STOPPED
    assert listed.cloud_status == "stopped"


DESCRIBE_XML = """<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
<requestId>x</requestId><reservationSet><item><reservationId>r-1</reservationId>
<instancesSet><item><instanceId>i-0aaaaaaaaaaaaaaaa</instanceId>
<instanceType>g5.12xlarge</instanceType>
<instanceState><code>{code}</code><name>{state}</name></instanceState>
<placement><availabilityZone>us-east-1a</availabilityZone></placement>
<privateIpAddress>10.0.0.5</privateIpAddress>
<tagSet><item><key>Name</key><value>research-x-0-iiii</value></item>
<item><key>aws:cloudformation:stack-name</key><value>stack</value></item>
<item><key>navarch-workspace</key><value>research</value></item></tagSet>
</item></instancesSet></item></reservationSet></DescribeInstancesResponse>"""


@pytest.mark.parametrize(("code", "state", "status"), [
    (0, "pending", NodeStatus.PROVISIONING),
    (16, "running", NodeStatus.RUNNING),
    (32, "shutting-down", NodeStatus.TERMINATING),
    (64, "stopping", NodeStatus.STOPPED),
    (80, "stopped", NodeStatus.STOPPED),
    (48, "terminated", NodeStatus.TERMINATED),
    (99, "hibernating", NodeStatus.UNKNOWN),
])
def test_status_and_node_mapping(provider: AwsProvider, code: int, state: str,
                                 status: NodeStatus) -> None:
    body = DESCRIBE_XML.format(code=code, state=state).encode()
    hook(provider.client(EAST), "DescribeInstances",
         Recorder(lambda req: AWSResponse(req.url, 200, {}, RawBody(body))))
    node = provider.get("i-0aaaaaaaaaaaaaaaa")
    assert node is not None and node.status is status and node.cloud_status == state
    assert node.ip_address == "10.0.0.5"  # no public address: the private one
    assert (node.gpu_count, node.gpu_type, node.zone) == (4, "A10G", "us-east-1a")
    assert dict(node.labels) == {LABEL_WORKSPACE: "research"}  # no Name, no aws:*


# -- catalog and config ------------------------------------------------------------------

def test_instance_types_match_ec2s_own_data(provider: AwsProvider, raw: Callable) -> None:
    offers = {t.name: t for t in provider.list_instance_types()}
    assert (offers["p5.48xlarge"].gpu_count, offers["p5.48xlarge"].gpu_type) == (8, "H100")
    assert all(t.regions == (EAST, WEST) for t in offers.values())
    assert all(t.price_per_hr is None or t.price_per_hr > 0 for t in offers.values())
    ec2 = raw(EAST).describe_instance_types(InstanceTypes=sorted(offers))["InstanceTypes"]
    assert len(ec2) == len(offers)
    for info in ec2:
        ours, [gpu] = offers[info["InstanceType"]], info["GpuInfo"]["Gpus"]
        assert (ours.gpu_type, ours.gpu_count) == (gpu["Name"], gpu["Count"]), ours.name
        assert ours.vcpus == info["VCpuInfo"]["DefaultVCpus"], ours.name
        assert ours.memory_gb == info["MemoryInfo"]["SizeInMiB"] / 1024, ours.name


def test_built_from_its_type(endpoint: str) -> None:
    """The `aws` type builds the provider from schema-checked options; the candidates'
    regions (from the config) are listed as well as the ones the options name."""
    options = {"region": WEST, "image_id": AMI, "key_name": "ops", "regions": [EAST],
               "endpoint_url": endpoint, "security_group_ids": ["sg-1"]}
    p = AWS.build("cloud", options, {}, BuildContext(regions=("eu-west-1",)))
    assert isinstance(p, AwsProvider)
    assert (p.name, p.region, p.key_name) == ("cloud", WEST, "ops")
    assert set(p.regions) == {WEST, EAST, "eu-west-1"}
    assert p.security_group_ids == ("sg-1",) and p.endpoint_url == endpoint
    with pytest.raises(ConfigError) as info:
        parse_config("version: 1\nproviders: {cloud: {type: aws, image_id: ami-0abc}}\n",
                     "n.yaml", {})
    assert "region" in str(info.value) and "n.yaml:2" in str(info.value)

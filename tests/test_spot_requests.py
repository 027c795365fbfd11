"""What a spot launch sends: the real boto3 client against moto's EC2 server, and the
real google-cloud-compute client against the local GCE server (both on 127.0.0.1).
Spot refusals are capacity errors, so failover moves on to the on-demand fallback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

import boto3
import pytest
from google.auth.credentials import AnonymousCredentials

from navarch_plan.apply.failover import RuledOut, provision_with_failover
from navarch_plan.config.desired import ON_DEMAND, SPOT, Placement
from navarch_plan.errors import CapacityError
from navarch_plan.model import NodeStatus, ProvisionRequest
from navarch_plan.planner.preemption import was_preempted
from navarch_plan.providers.aws import AwsProvider
from navarch_plan.providers.gcp import GcpProvider
from navarch_plan.state.model import NodeRecord
from tests.conftest import reset_moto
from tests.fakes.gce_server import FakeGce, serve
from tests.fakes.moto_server import AMI, Recorder, error_response

EAST = "us-east-1"
LABELS = {"navarch-workspace": "research"}


# -- EC2 ------------------------------------------------------------------------------

@pytest.fixture
def aws(aws_credentials: None, moto_endpoint: str) -> AwsProvider:
    reset_moto(moto_endpoint)
    provider = AwsProvider("aws", EAST, image_id=AMI, key_name="ops", endpoint_url=moto_endpoint)
    provider.launch_lookup_delay = 0.0
    return provider


class Sent:
    """A before-send handler keeping each RunInstances request's form fields."""

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []

    def __call__(self, request: Any, **_: Any) -> None:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        self.forms.append(dict(parse_qsl(body)))


def _sent(aws: AwsProvider) -> Sent:
    sent = Sent()
    aws.launch_client(EAST).meta.events.register("before-send.ec2.RunInstances", sent)
    return sent


def _ec2_request(name: str, purchase: str = ON_DEMAND) -> ProvisionRequest:
    return ProvisionRequest(name=name, instance_type="g5.xlarge", region=EAST,
                            labels=LABELS, purchase=purchase)


def _market_fields(form: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in form.items() if k.startswith("InstanceMarketOptions")}


def test_ec2_spot_launch_sends_one_time_terminate_market_options(
        aws: AwsProvider, moto_endpoint: str) -> None:
    sent = _sent(aws)
    node = aws.provision(_ec2_request("research-w-0-spot", SPOT))
    assert _market_fields(sent.forms[0]) == {
        "InstanceMarketOptions.MarketType": "spot",
        "InstanceMarketOptions.SpotOptions.SpotInstanceType": "one-time",
        "InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior": "terminate"}
    raw = boto3.client("ec2", region_name=EAST, endpoint_url=moto_endpoint)
    [instance] = [i for r in raw.describe_instances(InstanceIds=[node.id])["Reservations"]
                  for i in r["Instances"]]
    assert instance["InstanceLifecycle"] == "spot"


def test_ec2_on_demand_launch_sends_no_market_options(aws: AwsProvider) -> None:
    sent = _sent(aws)
    aws.provision(_ec2_request("research-w-0-odem"))
    assert _market_fields(sent.forms[0]) == {}


@pytest.mark.parametrize("code", ["InsufficientInstanceCapacity", "SpotMaxPriceTooLow"])
def test_ec2_spot_refusals_are_capacity_errors(aws: AwsProvider, code: str) -> None:
    aws.launch_client(EAST).meta.events.register(
        "before-send.ec2.RunInstances", Recorder(error_response(500 if code.startswith(
            "Insufficient") else 400, code, "no spot capacity"), fail=1))
    with pytest.raises(CapacityError) as info:
        aws.provision(_ec2_request("research-w-0-nosp", SPOT))
    assert info.value.code == code


def test_a_spot_stock_out_fails_over_to_on_demand_of_the_same_type(aws: AwsProvider) -> None:
    """The spot and on-demand candidates of one (provider, region, type) are distinct:
    ruling out the spot one leaves the on-demand one to try."""
    aws.launch_client(EAST).meta.events.register(
        "before-send.ec2.RunInstances",
        Recorder(error_response(500, "InsufficientInstanceCapacity", "no spot"), fail=1))
    sent = _sent(aws)
    spot, on_demand = (Placement("aws", "aws", EAST, "", "g5.xlarge", purchase=p)
                       for p in (SPOT, ON_DEMAND))
    ruled_out = RuledOut()
    node, placement, attempts = provision_with_failover(
        [spot, on_demand], {"aws": aws},
        lambda p: _ec2_request(f"research-w-0-{p.purchase[:4]}", p.purchase), ruled_out)
    assert placement == on_demand and node.status is not NodeStatus.TERMINATED
    assert [a.describe() for a in attempts] == ["aws/us-east-1 (spot) no capacity",
                                                "aws/us-east-1 created"]
    assert ruled_out.excludes(spot) and not ruled_out.excludes(on_demand)
    assert [_market_fields(f) != {} for f in sent.forms] == [True, False]


def test_an_ec2_spot_interruption_reads_as_preempted(aws: AwsProvider,
                                                     moto_endpoint: str) -> None:
    """moto terminates as a user would; EC2's reason for an interruption is put on the
    provider's own client's DescribeInstances reply (botocore's after-call event)."""
    node = aws.provision(_ec2_request("research-w-0-intr", SPOT))
    boto3.client("ec2", region_name=EAST, endpoint_url=moto_endpoint).terminate_instances(
        InstanceIds=[node.id])
    record = NodeRecord(id=node.id, provider="aws", region=EAST, zone=node.zone,
                        instance_type="g5.xlarge", name=node.name,
                        spec={"purchase": SPOT}, spec_hash="", status="running",
                        ip_address="", labels={}, created_at="")
    user_ended = aws.get(node.id)
    assert user_ended is not None and user_ended.status is NodeStatus.TERMINATED
    assert not was_preempted(record, user_ended)  # a user's termination is not a preemption

    def interrupted(parsed: dict[str, Any], **_: Any) -> None:
        for reservation in parsed.get("Reservations", []):
            for instance in reservation["Instances"]:
                instance["StateReason"] = {"Code": "Server.SpotInstanceTermination",
                                           "Message": "Server.SpotInstanceTermination: "
                                           "Spot instance termination"}

    aws.client(EAST).meta.events.register("after-call.ec2.DescribeInstances", interrupted)
    taken = aws.get(node.id)
    assert taken is not None and taken.status is NodeStatus.TERMINATED
    assert taken.status_word == "terminated (Server.SpotInstanceTermination)"
    assert was_preempted(record, taken)
    assert not was_preempted(replace(record, spec={}), taken)  # on-demand: never preempted


# -- GCE ------------------------------------------------------------------------------

@pytest.fixture
def gce(offline: None) -> Iterator[tuple[GcpProvider, FakeGce]]:
    fake = FakeGce(project="p")
    with serve(fake) as url:
        yield GcpProvider("gcp", "p", endpoint=url, credentials=AnonymousCredentials(),
                          poll_interval=0), fake


def _gce_request(purchase: str, zone: str = "us-central1-a") -> ProvisionRequest:
    return ProvisionRequest(name=f"research-w-0-{purchase[:4]}", instance_type="a3-highgpu-8g",
                            region="us-central1", zone=zone, labels=LABELS, purchase=purchase)


def _inserted(fake: FakeGce) -> Callable[[], list[dict]]:
    return lambda: [r.body for r in fake.calls("POST") if r.path.endswith("/instances")]


def test_gce_spot_launch_sends_spot_scheduling(gce: tuple[GcpProvider, FakeGce]) -> None:
    provider, fake = gce
    provider.provision(_gce_request(SPOT))
    [body] = _inserted(fake)()
    assert body["scheduling"] == {"provisioningModel": "SPOT",
                                  "instanceTerminationAction": "DELETE",
                                  "onHostMaintenance": "TERMINATE", "automaticRestart": False}


def test_gce_on_demand_scheduling_is_as_before(gce: tuple[GcpProvider, FakeGce]) -> None:
    provider, fake = gce
    provider.provision(_gce_request(ON_DEMAND))
    [body] = _inserted(fake)()
    assert body["scheduling"] == {"onHostMaintenance": "TERMINATE", "automaticRestart": True}


def test_gce_spot_stock_out_is_a_capacity_error(gce: tuple[GcpProvider, FakeGce]) -> None:
    provider, fake = gce
    fake.stockout_zones = {"us-central1-c"}
    with pytest.raises(CapacityError):
        provider.provision(_gce_request(SPOT, zone="us-central1-c"))

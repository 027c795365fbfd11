"""What a launch into a capacity reservation sends: the real boto3 client against moto's
EC2 server, and the real google-cloud-compute client against the local GCE server (both
on 127.0.0.1). A full reservation is a capacity error, so failover moves on to the
on-demand candidate of the same place; a reservation that does not exist is a request
error naming it.

moto's EC2 server has no capacity reservations (no CreateCapacityReservation; RunInstances
ignores CapacityReservationSpecification), so EC2's refusals are injected through
botocore's before-send event with EC2's codes (tests/fakes/moto_server.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from google.auth.credentials import AnonymousCredentials

from navarch_plan.apply.failover import RuledOut, provision_with_failover
from navarch_plan.config.desired import ON_DEMAND, RESERVATION, Placement
from navarch_plan.errors import CapacityError, InvalidRequestError
from navarch_plan.model import ProvisionRequest
from navarch_plan.providers.aws import AwsProvider
from navarch_plan.providers.base import Provider
from navarch_plan.providers.gcp import GcpProvider
from tests.conftest import reset_moto
from tests.fakes.gce_server import FakeGce, serve
from tests.fakes.moto_server import AMI, Recorder, error_response

EAST = "us-east-1"
LABELS = {"navarch-workspace": "research"}
CR = "cr-0123456789abcdef0"
GROUP = "arn:aws:resource-groups:us-east-1:123456789012:group/gpu-reservations"


def _fails_over(providers: dict[str, Provider], place: Placement,
                make: Callable[[Placement], ProvisionRequest]) -> list[str]:
    """Launch with the reserved copy of `place` first; returns the attempts' words."""
    reserved = replace(place, purchase=RESERVATION, reservation="r")
    ruled_out = RuledOut()
    _, chosen, attempts = provision_with_failover([reserved, place], providers, make,
                                                  ruled_out)
    assert chosen == place
    assert ruled_out.excludes(reserved) and not ruled_out.excludes(place)
    return [a.describe() for a in attempts]


# -- EC2 ------------------------------------------------------------------------------

@pytest.fixture
def aws(aws_credentials: None, moto_endpoint: str) -> AwsProvider:
    reset_moto(moto_endpoint)
    provider = AwsProvider("aws", EAST, image_id=AMI, key_name="ops", endpoint_url=moto_endpoint)
    provider.launch_lookup_delay = 0.0
    return provider


def _ec2_request(name: str, reservation: str = "") -> ProvisionRequest:
    return ProvisionRequest(name=name, instance_type="p5.48xlarge", region=EAST, labels=LABELS,
                            purchase=RESERVATION if reservation else ON_DEMAND,
                            reservation=reservation)


def _recorder(aws: AwsProvider, *refusal: object) -> Recorder:
    recorder = Recorder(*refusal) if refusal else Recorder()
    aws.launch_client(EAST).meta.events.register("before-send.ec2.RunInstances", recorder)
    return recorder


def _reservation_fields(form: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in form.items() if k.startswith("CapacityReservation")}


@pytest.mark.parametrize(("reservation", "field"), [
    (CR, "CapacityReservationId"), (GROUP, "CapacityReservationResourceGroupArn")])
def test_ec2_reserved_launch_targets_the_reservation(aws: AwsProvider, reservation: str,
                                                     field: str) -> None:
    sent = _recorder(aws)
    node = aws.provision(_ec2_request("research-w-0-resv", reservation))
    assert _reservation_fields(sent.bodies[0]) == {
        f"CapacityReservationSpecification.CapacityReservationTarget.{field}": reservation}
    assert node.id.startswith("i-")


def test_ec2_on_demand_launch_targets_no_reservation(aws: AwsProvider) -> None:
    sent = _recorder(aws)
    aws.provision(_ec2_request("research-w-0-odem"))
    assert _reservation_fields(sent.bodies[0]) == {}


def test_ec2_full_reservation_fails_over_to_on_demand(aws: AwsProvider) -> None:
    # EC2 answers HTTP 400 with this code; the code, not the status, makes it capacity.
    sent = _recorder(aws, error_response(
        400, "ReservationCapacityExceeded", "The requested reservation does not have "
        "sufficient compatible and available capacity for this request."), 1)
    with pytest.raises(CapacityError) as info:
        aws.provision(_ec2_request("research-w-0-full", CR))
    assert info.value.code == "ReservationCapacityExceeded"
    assert CR in str(info.value)
    sent.calls, sent.fail = 0, 1  # the next launch is refused again, the one after not
    words = _fails_over({"aws": aws}, Placement("aws", "aws", EAST, "", "p5.48xlarge"),
                        lambda p: _ec2_request(f"research-w-0-{p.purchase[:4]}",
                                               CR if p.reservation else ""))
    assert words == ["aws/us-east-1 (reserved) no capacity", "aws/us-east-1 created"]
    assert [_reservation_fields(f) != {} for f in sent.bodies[-2:]] == [True, False]


def test_ec2_unknown_reservation_is_a_request_error_naming_it(aws: AwsProvider) -> None:
    _recorder(aws, error_response(400, "InvalidCapacityReservationId.NotFound",
                                  f"The capacity reservation ID '{CR}' does not exist"), 1)
    with pytest.raises(InvalidRequestError) as info:
        aws.provision(_ec2_request("research-w-0-gone", CR))
    assert info.value.code == "InvalidCapacityReservationId.NotFound"
    assert f"into capacity reservation {CR}" in str(info.value)


# -- GCE ------------------------------------------------------------------------------

ZONE = "us-central1-a"


@pytest.fixture
def gce(offline: None) -> Iterator[tuple[GcpProvider, FakeGce]]:
    fake = FakeGce(project="p", reservations={(ZONE, "h100-block"): 1})
    with serve(fake) as url:
        yield GcpProvider("gcp", "p", endpoint=url, credentials=AnonymousCredentials(),
                          poll_interval=0), fake


def _gce_request(name: str, reservation: str = "") -> ProvisionRequest:
    return ProvisionRequest(name=name, instance_type="a3-highgpu-8g", region="us-central1",
                            zone=ZONE, labels=LABELS,
                            purchase=RESERVATION if reservation else ON_DEMAND,
                            reservation=reservation)


def _inserted(fake: FakeGce) -> list[dict]:
    return [r.body for r in fake.calls("POST") if r.path.endswith("/instances")]


def test_gce_reserved_launch_sends_specific_reservation_affinity(
        gce: tuple[GcpProvider, FakeGce]) -> None:
    provider, fake = gce
    provider.provision(_gce_request("research-w-0-resv", "h100-block"))
    [body] = _inserted(fake)
    assert body["reservationAffinity"] == {
        "consumeReservationType": "SPECIFIC_RESERVATION",
        "key": "compute.googleapis.com/reservation-name", "values": ["h100-block"]}
    assert fake.reservations[(ZONE, "h100-block")] == 0


def test_gce_on_demand_launch_sends_no_reservation_affinity(
        gce: tuple[GcpProvider, FakeGce]) -> None:
    provider, fake = gce
    provider.provision(_gce_request("research-w-0-odem"))
    [body] = _inserted(fake)
    assert "reservationAffinity" not in body


def test_gce_full_reservation_fails_over_to_on_demand(
        gce: tuple[GcpProvider, FakeGce]) -> None:
    provider, fake = gce
    fake.reservations[(ZONE, "h100-block")] = 0
    with pytest.raises(CapacityError):
        provider.provision(_gce_request("research-w-0-full", "h100-block"))
    words = _fails_over({"gcp": provider},
                        Placement("gcp", "gcp", "us-central1", ZONE, "a3-highgpu-8g"),
                        lambda p: _gce_request(f"research-w-0-{p.purchase[:4]}",
                                               "h100-block" if p.reservation else ""))
    assert words == [f"gcp/{ZONE} (reserved) no capacity", f"gcp/{ZONE} created"]
    assert ["reservationAffinity" in b for b in _inserted(fake)] == [True, True, False]


def test_gce_unknown_reservation_is_a_request_error_naming_it(
        gce: tuple[GcpProvider, FakeGce]) -> None:
    provider, _ = gce
    with pytest.raises(InvalidRequestError) as info:
        provider.provision(_gce_request("research-w-0-gone", "no-such-block"))
    assert "no-such-block" in str(info.value)

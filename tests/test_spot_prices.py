"""Spot prices: EC2's live DescribeSpotPriceHistory through the real boto3 client against
moto's server on 127.0.0.1 (latest Linux/UNIX price per zone), and through the `navarch`
command on the fake cloud (its `spot_prices` option): a spot pool's plan costs its spot
price, marked spot; an unknown spot price keeps "at least"; the `cost` strategy orders
spot candidates by spot price; the offers table shows how each type is sold."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto.core.responses import ActionResult
from moto.ec2.responses.spot_instances import SpotInstances

from navarch_plan.providers.aws import AwsProvider
from navarch_plan.providers.gcp import catalog as gcp_catalog
from tests.conftest import Workdir, actions_of, reset_moto
from tests.fakes.moto_server import AMI, Recorder, error_response

EAST = "us-east-1"


@pytest.fixture
def aws(aws_credentials: None, moto_endpoint: str) -> Iterator[AwsProvider]:
    reset_moto(moto_endpoint)
    yield AwsProvider("aws", EAST, image_id=AMI, endpoint_url=moto_endpoint)


def _offer(provider: AwsProvider, name: str) -> Any:
    return next(o for o in provider.list_instance_types() if o.name == name)


def _history(rows: list[dict[str, str]]) -> Any:
    """moto's DescribeSpotPriceHistory answering these rows (moto's own answer prices
    everything at $0.00001 at one fixed time): the response is still moto's XML,
    parsed by botocore as EC2's would be."""
    def describe(self: SpotInstances) -> ActionResult:
        return ActionResult({"SpotPriceHistory": rows})
    return describe


# -- EC2, live ----------------------------------------------------------------------

def test_ec2_spot_prices_are_read_per_zone_for_linux(aws: AwsProvider) -> None:
    sent = Recorder()
    aws.client(EAST).meta.events.register("before-send.ec2.DescribeSpotPriceHistory", sent)
    offer = _offer(aws, "g5.xlarge")
    [form] = sent.bodies
    assert form["ProductDescription.1"] == "Linux/UNIX" and form["StartTime"]
    assert "g5.xlarge" in {v for k, v in form.items() if k.startswith("InstanceType.")}
    # moto prices every zone that offers the type at $0.00001.
    zones = {zone for region, zone in offer.spot_prices if region == EAST}
    assert zones and all(z.startswith(EAST) for z in zones)
    assert set(offer.spot_prices.values()) == {0.00001}
    assert offer.price_per_hr == 1.006  # the on-demand price stays the catalog's
    assert offer.purchase == ("on-demand", "spot", "reservation")  # EC2 sells all three


def test_the_latest_price_per_zone_wins_and_other_products_are_left_out(
        aws: AwsProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    def row(zone: str, price: str, when: str, product: str = "Linux/UNIX") -> dict[str, str]:
        return {"InstanceType": "p5.48xlarge", "ProductDescription": product,
                "SpotPrice": price, "AvailabilityZone": zone, "Timestamp": when}

    monkeypatch.setattr(SpotInstances, "describe_spot_price_history", _history([
        row("us-east-1a", "40.10", "2026-12-03T10:00:00Z"),
        row("us-east-1a", "31.50", "2026-12-03T12:00:00Z"),  # the latest in 1a
        row("us-east-1a", "20.00", "2026-12-03T12:30:00Z", "SUSE Linux"),
        row("us-east-1b", "35.25", "2026-12-03T09:00:00Z", "Linux/UNIX (Amazon VPC)"),
    ]))
    offer = _offer(aws, "p5.48xlarge")
    assert dict(offer.spot_prices) == {(EAST, "us-east-1a"): 31.5, (EAST, "us-east-1b"): 35.25}
    assert offer.spot_price(EAST, "us-east-1a") == 31.5
    # EC2 picks the zone of a region-only launch: its cost is the region's highest.
    assert offer.spot_price(EAST) == 35.25
    assert offer.spot_price(EAST, "us-east-1c") is None  # no price there: unknown
    assert offer.spot_price("us-west-2") is None
    assert _offer(aws, "g5.xlarge").spot_prices == {}  # no row for it: unknown


def test_a_refused_spot_price_call_leaves_spot_prices_unknown(aws: AwsProvider) -> None:
    refused = Recorder(error_response(403, "UnauthorizedOperation", "not authorized"))
    aws.client(EAST).meta.events.register("before-send.ec2.DescribeSpotPriceHistory", refused)
    offer = _offer(aws, "g5.xlarge")
    assert refused.calls == 1
    assert offer.spot_prices == {} and offer.spot_price(EAST) is None
    assert offer.price_per_hr == 1.006


def test_a_plan_on_ec2_costs_the_live_spot_price(
        work: Workdir, aws_credentials: None, moto_endpoint: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    reset_moto(moto_endpoint)
    monkeypatch.setattr(SpotInstances, "describe_spot_price_history", _history([
        {"InstanceType": "g5.xlarge", "ProductDescription": "Linux/UNIX", "SpotPrice": "0.4021",
         "AvailabilityZone": "us-east-1b", "Timestamp": "2026-12-03T12:00:00Z"}]))
    (work.path / "navarch.yaml").write_text(json.dumps({
        "version": 1, "workspace": "test",
        "providers": {"aws": {"type": "aws", "region": EAST, "image_id": AMI,
                              "endpoint_url": moto_endpoint}},
        "pools": {"w": {"providers": [{"name": "aws", "regions": [EAST],
                                       "zones": ["us-east-1b"]}],
                        "instance_type": "g5.xlarge", "nodes": 2, "spot_policy": "spot"}}}))
    plan = work.plan_json()
    assert [a["cost_after"] for a in actions_of(plan, "create")] == [0.4021, 0.4021]
    assert plan["cost"]["hourly_after"] == 0.8042 and plan["cost"]["complete"] is True


def test_ec2_spot_prices_are_read_only_when_something_buys_spot(
        work: Workdir, aws_credentials: None, moto_endpoint: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An on-demand fleet's plan sends no DescribeSpotPriceHistory (one call per region
    it would never use, and an IAM permission it may lack); a spot pool's plan and the
    offers table do."""
    reset_moto(moto_endpoint)
    asked: list[str] = []
    answer = _history([])

    def counted(self: SpotInstances) -> ActionResult:
        asked.append(self.region)
        return answer(self)
    monkeypatch.setattr(SpotInstances, "describe_spot_price_history", counted)

    def configure(spot_policy: str) -> None:
        (work.path / "navarch.yaml").write_text(json.dumps({
            "version": 1, "workspace": "test",
            "providers": {"aws": {"type": "aws", "region": EAST, "image_id": AMI,
                                  "endpoint_url": moto_endpoint}},
            "pools": {"w": {"provider": "aws", "region": EAST, "instance_type": "g5.xlarge",
                            "nodes": 1, "spot_policy": spot_policy}}}))
    configure("on-demand")
    assert actions_of(work.plan_json(), "create") and asked == []
    assert work.cli("instance-types").code == 0 and asked == [EAST]
    configure("auto")
    assert work.plan_json()["cost"]["complete"] is False and asked == [EAST, EAST]


# -- the fake cloud, through the command ----------------------------------------------

def test_a_spot_pool_costs_its_spot_price_marked_spot(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 2, "spot_policy": "spot"}},
                sim={"spot_prices": {"gpu_1x_a10": 0.3}})
    plan = work.plan_json()
    creates = actions_of(plan, "create")
    assert [a["cost_after"] for a in creates] == [0.3, 0.3]
    assert [c["price_per_hr"] for a in creates for c in a["candidates"]] == [0.3, 0.3]
    assert {c["purchase"] for a in creates for c in a["candidates"]} == {"spot"}
    assert plan["cost"]["hourly_after"] == 0.6 and plan["cost"]["complete"] is True
    text = work.cli("plan").out
    assert "gpu_1x_a10 (spot $0.30/h)" in text and "at least" not in text
    assert "Hourly cost: $0.00 -> $0.60" in text
    assert work.cli("apply", "--auto-approve").code == 0
    # What runs is billed at its spot price too: an exact total, and nothing to do.
    after = work.plan_json()
    assert not after["actions"]
    assert after["cost"]["hourly_before"] == 0.6 and after["cost"]["complete"] is True
    # Removing the pool deletes spot nodes: their spot price leaves the total.
    work.config(pools={}, sim={"spot_prices": {"gpu_1x_a10": 0.3}})
    gone = work.plan_json()
    assert [a["cost_before"] for a in actions_of(gone, "delete")] == [0.3, 0.3]
    assert "(spot $0.30/h)" in work.cli("plan").out


def test_an_unknown_spot_price_keeps_at_least(work: Workdir) -> None:
    """A spot price for another type says nothing of this one: never the on-demand price."""
    work.config(pools={"w": {"nodes": 1, "spot_policy": "spot", "instance_type": "gpu_1x_l4"},
                       "od": {"nodes": 1}},
                sim={"spot_prices": {"gpu_1x_a10": 0.3}})
    plan = work.plan_json()
    spot = next(a for a in actions_of(plan, "create") if a["group"] == "w")
    assert spot["cost_after"] is None
    assert plan["cost"]["complete"] is False and plan["cost"]["hourly_after"] == 0.75
    text = work.cli("plan").out
    assert "gpu_1x_l4 (spot, price unknown)" in text
    assert "Hourly cost: at least $0.00 -> at least $0.75" in text


def test_the_cost_strategy_orders_spot_candidates_by_spot_price(work: Workdir) -> None:
    """On-demand (and in the config's order) l4 comes before a100; spot, a100 is the
    cheaper: the spot candidates go by their spot prices."""
    (work.path / "navarch.yaml").write_text(json.dumps({
        "version": 1, "workspace": "test",
        "providers": {"sim": {"type": "fake", "path": "state/cloud.db",
                              "spot_prices": {"gpu_1x_a100": 0.3, "gpu_1x_l4": 0.5}}},
        "pools": {"w": {"provider": "sim", "region": "us-west-1", "gpu": ["L4", "A100:40GB"],
                        "nodes": 1, "spot_policy": "auto", "strategy": "cost"}}}))
    [create] = actions_of(work.plan_json(), "create")
    assert [(c["instance_type"], c.get("purchase", "on-demand"), c["price_per_hr"])
            for c in create["candidates"]] == [
        ("gpu_1x_a100", "spot", 0.3), ("gpu_1x_l4", "spot", 0.5),
        ("gpu_1x_l4", "on-demand", 0.7), ("gpu_1x_a100", "on-demand", 1.29)]
    assert create["instance_type"] == "gpu_1x_a100" and create["cost_after"] == 0.3


def test_the_offers_table_shows_purchase_models_and_spot_prices(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}}, sim={"spot_prices": {"gpu_1x_a10": 0.3}})
    result = work.cli("instance-types")
    assert result.code == 0, result.err
    header, *lines = result.out.splitlines()
    assert header.split()[5:8] == ["PRICE/H", "SPOT/H", "PURCHASE"]
    cells = {line.split()[1]: line.split() for line in lines}
    a10, l4 = cells["gpu_1x_a10"], cells["gpu_1x_l4"]
    assert a10[7:10] == ["$0.75", "$0.30", "on-demand,spot"]
    assert l4[7:10] == ["$0.70", "unknown", "on-demand,spot"]
    rows = {r["instance_type"]: r for r in work.cli("instance-types", "--json").json()}
    assert rows["gpu_1x_a10"]["purchase"] == ["on-demand", "spot"]
    assert rows["gpu_1x_a10"]["spot_prices"] == [
        {"region": "", "zone": "", "price_per_hr": 0.3}]
    assert rows["gpu_1x_l4"]["spot_prices"] == []
    # A spot pool's first pick says it is bought spot.
    work.config(pools={"w": {"nodes": 1, "spot_policy": "spot"}},
                sim={"spot_prices": {"gpu_1x_a10": 0.3}})
    picked = work.cli("instance-types", "--pool", "w").out
    assert "<- picked: us-west-1 (spot) for pool.w[0]" in picked


def test_gcp_offers_say_how_each_type_is_sold_and_claim_no_spot_price() -> None:
    """The catalog records per type how Google sells it; it has no dated spot prices."""
    offers = {o.name: o for o in gcp_catalog.instance_types()}
    assert offers["a3-highgpu-1g"].purchase == ("spot", "flex-start")
    assert offers["g2-standard-4"].purchase == ("on-demand", "spot", "reservation",
                                                "flex-start")
    assert all(o.spot_price("us-central1") is None for o in offers.values())

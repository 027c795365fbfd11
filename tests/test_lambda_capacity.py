"""Lambda's live catalog before a launch: `GET /instance-types` says where each type has
capacity (`regions_with_capacity_available`), so a launch into a region it lists
without capacity is refused before any launch call, and before it waits for one of
apply's launch slots (one per 12 s on Lambda). The real provider (httpx) against
FakeLambda, in-process or on 127.0.0.1; apply's scheduler on a FakeClock."""

from __future__ import annotations

import json
import uuid
from contextlib import ExitStack

import httpx
import pytest

from navarch_plan.apply.failover import RuledOut, provision_with_failover
from navarch_plan.apply.throttle import Gate, GatedProvider, RetryPolicy
from navarch_plan.config.desired import Placement
from navarch_plan.errors import InvalidRequestError, NoCapacityListedError
from navarch_plan.model import ProvisionRequest, RateLimit
from navarch_plan.providers.lambda_ import LambdaProvider
from navarch_plan.testing import FakeClock
from tests.conftest import Workdir
from tests.fakes.lambda_server import LAUNCH, FakeLambda
from tests.test_e2e_clouds import LambdaCloud

TYPES = "/instance-types"
# The fake offers gpu_1x_h100_pcie in us-east-1 only: us-west-1 has no capacity for it.
H100 = "gpu_1x_h100_pcie"


def request(region: str, instance_type: str = H100, name: str = "n-0") -> ProvisionRequest:
    return ProvisionRequest(name=name, instance_type=instance_type, region=region,
                            ssh_key_names=("ops-team",))


@pytest.fixture
def key() -> str:
    return f"sk-test-{uuid.uuid4().hex}"


@pytest.fixture
def fake(key: str) -> FakeLambda:
    return FakeLambda(api_key=key)


def provider(fake: FakeLambda, key: str, clock: FakeClock | None = None,
             **kw: object) -> LambdaProvider:
    """As apply builds it: no pacing or retries of its own."""
    return LambdaProvider("lambda", key, base_url="http://lambda.test/api/v1",
                          transport=httpx.WSGITransport(app=fake), max_retries=0,
                          self_paced=False, clock=clock or FakeClock(), **kw)


# -- the provider ----------------------------------------------------------------------------

def test_a_region_listed_without_capacity_is_refused_before_any_launch(fake, key):
    with provider(fake, key) as p, pytest.raises(NoCapacityListedError) as err:
        p.provision(request("us-west-1"))
    assert [r.path for r in fake.log] == [TYPES], "no launch call"
    assert (err.value.provider, err.value.region) == ("lambda", "us-west-1")
    assert "capacity now: us-east-1" in str(err.value)


def test_one_read_of_the_catalog_serves_every_launch_within_the_cache(fake, key):
    clock = FakeClock()
    with provider(fake, key, clock) as p:
        for i in range(8):
            p.provision(request("us-east-1", "gpu_1x_a10", name=f"n-{i}"))
        assert len(fake.requests("GET", TYPES)) == 1
        clock.advance(59.0)
        p.provision(request("us-east-1", "gpu_1x_a10", name="n-8"))
        assert len(fake.requests("GET", TYPES)) == 1, "still within 60 s"
        clock.advance(1.0)
        fake.capacity[("gpu_1x_a10", "us-east-1")] = 0  # sold out meanwhile
        with pytest.raises(NoCapacityListedError):
            p.provision(request("us-east-1", "gpu_1x_a10", name="n-9"))
    assert len(fake.requests("GET", TYPES)) == 2, "read again once the cache is stale"
    assert len(fake.requests("POST", LAUNCH)) == 9


def test_the_cache_lifetime_is_an_option_and_zero_reads_before_every_launch(fake, key):
    with provider(fake, key, capacity_cache_seconds=0) as p:
        p.provision(request("us-east-1", name="a"))
        p.provision(request("us-east-1", "gpu_1x_a10", name="b"))
    assert [r.path for r in fake.log if r.path == TYPES] == [TYPES, TYPES]


def test_a_listing_made_for_the_plan_counts_as_the_read(fake, key):
    with provider(fake, key) as p:
        p.list_instance_types()
        p.provision(request("us-east-1"))
    assert len(fake.requests("GET", TYPES)) == 1


def test_no_capacity_is_confirmed_by_a_read_made_now_not_an_older_one(fake, key):
    """Capacity comes back: a region is never skipped on a read made for an earlier
    launch, however fresh; a region with capacity is."""
    fake.capacity[(H100, "us-west-1")] = 0
    with provider(fake, key) as p:
        with pytest.raises(NoCapacityListedError):
            p.provision(request("us-west-1"))
        assert len(fake.requests("GET", TYPES)) == 1, "the read made now is the proof"
        fake.capacity[(H100, "us-west-1")] = 1
        node = p.provision(request("us-west-1", name="n-1"))
    assert node.region == "us-west-1"
    assert len(fake.requests("GET", TYPES)) == 2


def test_an_unreadable_catalog_leaves_the_answer_to_the_launch(fake, key):
    fake.inject(503, method="GET", path=TYPES)
    with provider(fake, key) as p:
        node = p.provision(request("us-east-1"))
    assert node.region == "us-east-1"
    assert len(fake.requests("POST", LAUNCH)) == 1


def test_a_type_the_catalog_does_not_list_is_the_launchs_to_refuse(fake, key):
    with provider(fake, key) as p, pytest.raises(InvalidRequestError) as err:
        p.provision(request("us-east-1", "gpu_1x_nonesuch"))
    assert len(fake.requests("POST", LAUNCH)) == 1
    assert err.value.code == "global/object-does-not-exist"


def test_the_fake_refuses_a_launch_where_it_lists_no_capacity_as_lambda_does(fake, key):
    """What the check saves: the launch would be answered with Lambda's own 400."""
    client = httpx.Client(transport=httpx.WSGITransport(app=fake),
                          base_url="http://lambda.test/api/v1",
                          headers={"Authorization": f"Bearer {key}"})
    listed = client.get(TYPES).json()["data"][H100]["regions_with_capacity_available"]
    assert [r["name"] for r in listed] == ["us-east-1"]
    resp = client.post(LAUNCH, json={"region_name": "us-west-1", "instance_type_name": H100,
                                     "ssh_key_names": ["ops-team"]})
    assert resp.status_code == 400
    assert resp.json()["error"] == {
        "code": "instance-operations/launch/insufficient-capacity",
        "message": "Not enough capacity to fulfill launch request.",
        "suggestion": "Choose an instance type with more availability, or try again later."}
    assert fake.instances == {}


# -- apply's launch slots ----------------------------------------------------------------------

def _placement(region: str) -> Placement:
    return Placement("lambda", "lambda", region, "", H100)


def _gated(fake: FakeLambda, key: str, clock: FakeClock) -> tuple[Gate, GatedProvider]:
    """Lambda's own pacing: one launch per 12 s, on a clock that only moves when waited."""
    gate = Gate("lambda", RateLimit(launches_per_second=1 / 12), RetryPolicy(), clock)
    return gate, GatedProvider(provider(fake, key, clock), gate)


def test_a_region_skipped_by_the_catalog_costs_no_launch_slot(fake, key):
    """The executor books a launch slot when it admits the action; the skipped region
    must leave it to the next candidate, not make that one wait 12 s more."""
    clock = FakeClock()
    gate, gated = _gated(fake, key, clock)
    start = clock.monotonic()
    assert gate.admit("launch", start) == 0
    with gate.booked("launch"):
        node, placement, attempts = provision_with_failover(
            [_placement("us-west-1"), _placement("us-east-1")], {"lambda": gated},
            lambda p: request(p.region), RuledOut())
    assert [(a.placement.region, a.outcome) for a in attempts] == [
        ("us-west-1", "no capacity (live catalog)"), ("us-east-1", "created")]
    assert clock.monotonic() == start, f"waited {clock.slept} for a launch slot"
    assert [r.body["region_name"] for r in fake.requests("POST", LAUNCH)] == ["us-east-1"]
    assert node.region == placement.region == "us-east-1"
    # The one launch used the one slot: the next is 12 s after it.
    assert gate.admit("launch", clock.monotonic()) == pytest.approx(12.0)


def test_a_slot_booked_for_a_launch_that_was_never_sent_is_given_back(fake, key):
    clock = FakeClock()
    gate, gated = _gated(fake, key, clock)
    assert gate.admit("launch", clock.monotonic()) == 0
    with gate.booked("launch"), pytest.raises(NoCapacityListedError):
        provision_with_failover([_placement("us-west-1")], {"lambda": gated},
                                lambda p: request(p.region), RuledOut())
    assert fake.requests("POST", LAUNCH) == []
    assert gate.admit("launch", clock.monotonic()) == 0, "the next action need not wait"


# -- through the navarch command ---------------------------------------------------------------

def test_apply_launches_only_where_the_live_catalog_lists_capacity(work: Workdir) -> None:
    with ExitStack() as stack:
        lam = LambdaCloud(stack)
        doc = {"version": 1, "workspace": "e2e",
               "providers": {"lambda": lam.provider},
               "defaults": {"ssh_keys": ["ops-team"]},
               "pools": {"workers": {"instance_type": H100, "nodes": 1, "providers": [
                   {"name": "lambda", "regions": ["us-west-1", "us-east-1"]}]}}}
        (work.path / "navarch.yaml").write_text(json.dumps(doc))
        result = work.run("apply", "--auto-approve", env=lam.env)
        assert result.code == 0, result.out + result.err
        assert ("lambda/us-west-1 no capacity (live catalog) -> lambda/us-east-1 created"
                in result.out), result.out
        launches = lam.fake.requests("POST", LAUNCH)
        assert [r.body["region_name"] for r in launches] == ["us-east-1"]
        # The plan's listing, and one read made to confirm the region without capacity
        # (a "no" is never taken from an older read); then it was ruled out for the run.
        assert len(lam.fake.requests("GET", TYPES)) == 2
        (record,) = work.state("e2e")["nodes"].values()
        assert record["region"] == "us-east-1"


def test_the_plan_marks_candidates_without_capacity_and_warns_when_none_has_any(
        work: Workdir) -> None:
    """The plan reads the same live catalog: a candidate region without capacity is
    marked `capacity: false` (and still tried: capacity comes and goes), and a pool whose
    launches have no candidate with capacity is a warning a reviewer sees in the PR."""
    with ExitStack() as stack:
        lam = LambdaCloud(stack)

        def plan(regions: list[str]) -> dict:
            doc = {"version": 1, "workspace": "e2e", "providers": {"lambda": lam.provider},
                   "defaults": {"ssh_keys": ["ops-team"]},
                   "pools": {"workers": {"instance_type": H100, "nodes": 2, "providers": [
                       {"name": "lambda", "regions": regions}]}}}
            (work.path / "navarch.yaml").write_text(json.dumps(doc))
            result = work.cli("plan", "--format", "json", env=lam.env)
            assert result.code == 0, result.err
            return result.json()

        some = plan(["us-west-1", "us-east-1"])
        [first, _] = some["actions"]
        assert [(c["region"], c.get("capacity")) for c in first["candidates"]] == [
            ("us-west-1", False), ("us-east-1", None)]
        assert some["warnings"] == []
        none = plan(["us-west-1"])
        assert [c.get("capacity") for a in none["actions"] for c in a["candidates"]] == [
            False, False]
        [warning] = none["warnings"]
        assert warning == (
            "workers: no candidate of 2 launches (pool.workers[0], pool.workers[1]) has "
            f"capacity now, as the cloud lists it (lambda/us-west-1 {H100}): apply tries "
            "them in order and fails where none has capacity by then")
        text = work.cli("plan", env=lam.env).out
        assert text.startswith(f"Warning: {warning}")

"""Candidate order per strategy on fixed catalogs; GPU specs; the Pool library API."""

from __future__ import annotations

import pytest

from navarch_plan.apply.failover import FailoverExhausted
from navarch_plan.catalog.gpu_spec import GpuSpecError, parse_gpu
from navarch_plan.config import parse_config
from navarch_plan.config.desired import Placement
from navarch_plan.errors import AuthError
from navarch_plan.model import ProvisionRequest
from navarch_plan.planner.strategies import order_placements
from navarch_plan.pool import Pool, PoolEntry
from navarch_plan.providers.fake import FakeProvider


def place(provider: str, region: str, itype: str = "t", priority: int = 0, entry: int = 0,
          weight: int = 1) -> Placement:
    return Placement(provider, "fake", region, "", itype, priority, weight, entry)


A1, A2 = place("a", "r1", entry=0), place("a", "r2", entry=0)
B1 = place("b", "r1", entry=1)
C1 = place("c", "r1", entry=2)


def keys(ordered: list[Placement]) -> list[tuple[str, str]]:
    return [(p.provider, p.region) for p in ordered]


def test_priority_lowest_first_ties_by_config_order() -> None:
    ranked = [place("a", "r1", priority=2, entry=0), place("b", "r1", priority=1, entry=1),
              place("c", "r1", priority=1, entry=2), place("a", "r2", priority=2, entry=0)]
    assert keys(order_placements(ranked, "priority", 0, {}, {})) == [
        ("b", "r1"), ("c", "r1"), ("a", "r1"), ("a", "r2")]


def test_cost_cheapest_first_unknown_last_ties_by_priority() -> None:
    prices = {("a", "t"): 3.0, ("b", "t"): 1.0, ("c", "t"): None}
    assert keys(order_placements([A1, A2, B1, C1], "cost", 0, prices, {})) == [
        ("b", "r1"), ("a", "r1"), ("a", "r2"), ("c", "r1")]
    same = {("a", "t"): 1.0, ("b", "t"): 1.0, ("c", "t"): 1.0}
    assert keys(order_placements([C1, B1, A1], "cost", 0, same, {})) == [
        ("a", "r1"), ("b", "r1"), ("c", "r1")]


def test_availability_available_first_then_the_rest_by_priority() -> None:
    available = {("a", "t"): ("r2",), ("c", "t"): ("r1",)}
    assert keys(order_placements([A1, A2, B1, C1], "availability", 0, {}, available)) == [
        ("a", "r2"), ("c", "r1"), ("a", "r1"), ("b", "r1")]


def test_round_robin_by_weight_and_stable_under_growth() -> None:
    a, b = place("a", "r1", entry=0, weight=2), place("b", "r1", entry=1, weight=1)
    firsts = [order_placements([a, b], "round-robin", i, {}, {})[0].provider
              for i in range(6)]
    assert firsts == ["a", "a", "b", "a", "a", "b"]
    # A node's choice depends on its index only: growing the pool moves nobody.
    assert [order_placements([a, b], "round-robin", i, {}, {})[0].provider
            for i in range(4)] == firsts[:4]
    assert keys(order_placements([a, b], "round-robin", 2, {}, {})) == [("b", "r1"),
                                                                        ("a", "r1")]


@pytest.mark.parametrize(("text", "model", "count", "memory"), [
    ("H100:8", "H100", 8, None), ("a100:80GB:8", "A100", 8, 80), ("L4", "L4", 1, None)])
def test_gpu_specs(text: str, model: str, count: int, memory: int | None) -> None:
    spec = parse_gpu(text)
    assert (spec.model, spec.count, spec.memory_gb) == (model, count, memory)


def test_bad_gpu_specs() -> None:
    for bad in ("H100x8", "H100:0", ":8", "H100:80:8"):
        with pytest.raises(GpuSpecError):
            parse_gpu(bad)


def test_gpu_spec_resolves_against_the_catalog() -> None:
    text = """
version: 1
providers: {sim: {type: fake}}
pools:
  w: {provider: sim, gpu: [H100:8, A100:8], region: us-west-1, nodes: 1}
"""
    node = parse_config(text, "n.yaml", {}).desired["pool.w[0]"]
    assert [p.instance_type for p in node.candidates] == ["gpu_8x_a100", "gpu_8x_h100"]


def test_pool_library_api_fails_over_and_remembers(tmp_path: object) -> None:
    empty = FakeProvider("east", capacity={"gpu_1x_a10": 0})
    full = FakeProvider("west")
    pool = Pool([PoolEntry("east", empty, priority=1, regions=("us-east-1",),
                           instance_type="gpu_1x_a10"),
                 PoolEntry("west", full, priority=2, regions=("us-west-1", "us-east-1"),
                           instance_type="gpu_1x_a10")], strategy="priority")
    node = pool.provision("job-0", ssh_key_names=("k",))
    assert node.provider == "west" and node.region == "us-west-1"
    pool.provision("job-1")
    assert len(empty.calls("provision")) == 1, "a stock-out is not rediscovered in a run"
    cheap = Pool([PoolEntry("east", FakeProvider("east"), regions=("us-east-1",),
                            instance_type="gpu_8x_h100"),
                  PoolEntry("west", FakeProvider("west"), regions=("us-west-1",),
                            instance_type="gpu_1x_a10")], strategy="cost")
    assert cheap.candidates()[0].provider == "west"


def test_pool_exhausted_lists_every_attempt_and_auth_does_not_fail_over() -> None:
    pool = Pool([PoolEntry("a", FakeProvider("a", capacity={"gpu_1x_a10": 0}),
                           regions=("us-east-1", "us-west-1"), instance_type="gpu_1x_a10")])
    with pytest.raises(FailoverExhausted) as caught:
        pool.provision("x")
    assert "a/us-east-1 no capacity -> a/us-west-1 no capacity" in str(caught.value)

    class Locked(FakeProvider):
        def provision(self, req: ProvisionRequest):  # a provider whose key was revoked
            raise AuthError("invalid API key", provider=self.name)

    second = FakeProvider("b")
    pool = Pool([PoolEntry("a", Locked("a"), regions=("us-east-1",), instance_type="gpu_1x_a10"),
                 PoolEntry("b", second, regions=("us-east-1",), instance_type="gpu_1x_a10")])
    with pytest.raises(AuthError):
        pool.provision("y")
    assert second.calls("provision") == []


def test_a_provider_lists_every_region_its_candidates_may_use() -> None:
    text = """
version: 1
providers:
  lam: {type: lambda, api_key_env: K}
  ec2: {type: aws, region: us-east-1, image_id: ami-0abc}
defaults: {ssh_keys: [k]}
pools:
  w:
    providers:
      - {name: lam, regions: [us-east-1], instance_type: gpu_1x_a10}
      - {name: ec2, regions: [us-east-1, us-west-2], instance_type: g5.xlarge}
    nodes: 1
"""
    config = parse_config(text, "n.yaml", {})
    assert config.regions_of("ec2") == ["us-east-1", "us-west-2"]
    assert config.regions_of("lam") == ["us-east-1"]

"""What an error rules out for the rest of an apply: a stock-out or "not offered here"
the one placement, a quota what it covers (the types in a region, the region, or the
whole provider)."""

from __future__ import annotations

from navarch_plan.apply.failover import RuledOut, _outcome
from navarch_plan.config.desired import Placement
from navarch_plan.errors import CapacityError, NotOfferedError, QuotaError


def place(instance_type: str, region: str = "us-central1", zone: str = "us-central1-a"
          ) -> Placement:
    return Placement("g", "gcp", region, zone, instance_type)


H100, L4 = "a3-highgpu-8g", "g2-standard-4"


def test_a_quota_over_some_types_rules_out_only_those_types_in_the_region() -> None:
    ruled = RuledOut()
    ruled.rule_out(place(H100), QuotaError("NVIDIA_H100_GPUS", instance_types=frozenset({H100})))
    assert ruled.excludes(place(H100, zone="us-central1-b")), "same quota in the next zone"
    assert not ruled.excludes(place(L4)), "another GPU model's quota is not exhausted"
    assert not ruled.excludes(place(H100, region="us-east4", zone="us-east4-a"))


def test_a_quota_without_scope_rules_out_the_region_and_provider_wide_the_provider() -> None:
    ruled = RuledOut()
    ruled.rule_out(place(H100), QuotaError("CPUS"))
    assert ruled.excludes(place(L4)) and not ruled.excludes(place(L4, "us-east4", "us-east4-a"))
    ruled.rule_out(place(L4, "us-east4", "us-east4-a"),
                   QuotaError("GPUS_ALL_REGIONS", provider_wide=True))
    assert ruled.excludes(place(L4, "europe-west4", "europe-west4-a"))


def test_not_offered_rules_out_the_placement_only_and_says_so() -> None:
    ruled = RuledOut()
    error = NotOfferedError("machine type a3-highgpu-8g not in zone us-central1-f")
    ruled.rule_out(place(H100, zone="us-central1-f"), error)
    assert ruled.excludes(place(H100, zone="us-central1-f"))
    assert not ruled.excludes(place(H100)) and not ruled.excludes(place(L4, zone="us-central1-f"))
    assert isinstance(error, CapacityError), "failover moves on, as for a stock-out"
    assert _outcome(error) == "not offered here" and _outcome(CapacityError("x")) == "no capacity"

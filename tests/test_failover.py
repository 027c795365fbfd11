"""Fungible pools through `navarch apply`: failover across regions and providers, what
stops it, what is remembered within a run and forgotten after, cost and budgets."""

from __future__ import annotations

import json
import re

from navarch_plan.providers.fake import FakeProvider
from tests.conftest import Workdir, owned

HEAD = """\
version: 1
workspace: test
providers:
  one: {{type: fake, path: state/one.db{one}}}
  two: {{type: fake, path: state/two.db{two}}}
defaults: {{ssh_keys: [ops]}}
"""


def cloud(work: Workdir, name: str) -> FakeProvider:
    return FakeProvider(name, path=str(work.path / "state" / f"{name}.db"))


def write(work: Workdir, pool: str, one: str = "", two: str = "", extra: str = "") -> None:
    work.write(HEAD.format(one=one, two=two) + "pools:\n  w:\n" + pool + extra)


TWO_PROVIDERS = """\
    providers:
      - {name: one, priority: 1, regions: [us-west-1, us-east-1]}
      - {name: two, priority: 2, regions: [us-west-1]}
    instance_type: gpu_1x_a10
    nodes: 3
"""


def test_region_out_of_capacity_lands_in_the_next_region(work: Workdir) -> None:
    write(work, TWO_PROVIDERS, one=", capacity: {gpu_1x_a10@us-west-1: 0}")
    plan = work.plan_json()
    first = plan["actions"][0]
    assert [(c["provider"], c["region"]) for c in first["candidates"]] == [
        ("one", "us-west-1"), ("one", "us-east-1"), ("two", "us-west-1")]
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.out + result.err
    assert "one/us-west-1 no capacity" in result.out
    assert "one/us-west-1 no capacity -> one/us-east-1 created" in result.out
    assert re.search(r"pool\.\w+\[\d\]: launching on one/us-east-1", result.out), \
        "where the failover went, as it happens"
    nodes = owned(cloud(work, "one"))
    assert len(nodes) == 3 and {n.region for n in nodes} == {"us-east-1"}
    failed = [c for c in cloud(work, "one").calls("provision") if not c["ok"]]
    assert len(failed) == 1, "the stock-out is found once, then ruled out for the run"
    again = work.cli("plan", "--detailed-exitcode")
    assert again.code == 0, "nodes placed on a later candidate are in spec"


def test_provider_out_of_capacity_fails_over_to_the_next_provider(work: Workdir) -> None:
    write(work, TWO_PROVIDERS, one=", capacity: {gpu_1x_a10: 0}")
    assert work.cli("apply", "--auto-approve").code == 0
    assert owned(cloud(work, "one")) == [] and len(owned(cloud(work, "two"))) == 3
    state = work.state()["nodes"]
    assert {r["provider"] for r in state.values()} == {"two"}


def test_a_quota_error_stops_further_attempts_on_that_provider(work: Workdir) -> None:
    faults = ", faults: [{op: provision, error: quota}]"
    write(work, TWO_PROVIDERS.replace("us-west-1, us-east-1", "us-west-1"), one=faults)
    result = work.cli("apply", "--auto-approve", "--parallelism", "1")
    assert result.code == 0, result.out + result.err
    assert "one/us-west-1 over quota" in result.out
    assert len(cloud(work, "one").calls("provision")) == 1
    assert len(owned(cloud(work, "two"))) == 3


def test_all_candidates_exhausted_lists_every_attempt_then_retries_next_run(
        work: Workdir) -> None:
    full = ", capacity: {gpu_1x_a10: 0}"
    write(work, TWO_PROVIDERS.replace("nodes: 3", "nodes: 1"), one=full, two=full)
    result = work.cli("apply", "--auto-approve")
    assert result.code == 1
    line = next(x for x in result.out.splitlines() if x.startswith("  failed:"))
    assert ("one/us-west-1 no capacity -> one/us-east-1 no capacity -> "
            "two/us-west-1 no capacity") in line
    assert work.state()["intents"] == []
    write(work, TWO_PROVIDERS.replace("nodes: 3", "nodes: 1"))  # capacity is back
    assert work.cli("apply", "--auto-approve").code == 0
    one = cloud(work, "one").calls("provision")
    assert [c["ok"] for c in one] == [0, 0, 1], "the next run starts from the first again"


def test_cost_strategy_and_hand_computed_costs(work: Workdir) -> None:
    write(work, """\
    providers:
      - {name: one, regions: [us-west-1], instance_type: gpu_1x_a100}
      - {name: two, regions: [us-west-1], instance_type: gpu_1x_l4}
    strategy: cost
    nodes: 2
""")
    plan = work.plan_json()
    assert {a["provider"] for a in plan["actions"]} == {"two"}  # L4 $0.70 < A100 $1.29
    assert plan["cost"]["hourly_after"] == 1.4 and plan["cost"]["hourly_before"] == 0
    assert plan["cost"]["pools"]["w"]["hourly_delta"] == 1.4
    text = work.cli("plan").out
    assert "Hourly cost: $0.00 -> $1.40 (+$1.40/h)" in text


def test_round_robin_spreads_a_pool_by_weight_and_growth_moves_nobody(
        work: Workdir) -> None:
    pool = """\
    providers:
      - {name: one, regions: [us-west-1], weight: 2}
      - {name: two, regions: [us-west-1], weight: 1}
    strategy: round-robin
    instance_type: gpu_1x_a10
    nodes: %d
"""
    write(work, pool % 6)
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.err
    placed = {a: r["provider"] for a, r in work.state()["nodes"].items()}
    assert [placed[f"pool.w[{i}]"] for i in range(6)] == ["one", "one", "two"] * 2
    assert len(owned(cloud(work, "one"))) == 4 and len(owned(cloud(work, "two"))) == 2
    write(work, pool % 9)
    plan = work.plan_json()
    assert [(a["address"], a["action"], a["provider"]) for a in plan["actions"]] == [
        ("pool.w[6]", "create", "one"), ("pool.w[7]", "create", "one"),
        ("pool.w[8]", "create", "two")]


def test_budget_refusal_names_the_overrun(work: Workdir) -> None:
    write(work, "    provider: one\n    instance_type: gpu_8x_h100\n    region: us-west-1\n"
          "    nodes: 3\n", extra="max_hourly_cost: 50\n")
    result = work.cli("plan")
    assert result.code == 1
    assert "would cost $71.76/h after this plan, over max_hourly_cost ($50.00/h) by " \
           "$21.76/h" in result.err
    write(work, "    provider: one\n    instance_type: gpu_8x_h100\n    region: us-west-1\n"
          "    nodes: 3\n    max_hourly_cost: 60\n")
    pool_result = work.cli("apply", "--auto-approve")
    assert pool_result.code == 1 and "pool w would cost" in pool_result.err
    assert owned(cloud(work, "one")) == []


def test_same_inputs_give_byte_identical_json_plans(work: Workdir) -> None:
    write(work, TWO_PROVIDERS.replace("nodes: 3", "nodes: 1"))
    assert work.cli("apply", "--auto-approve").code == 0  # a state with its lineage
    write(work, TWO_PROVIDERS)
    env = {"SOURCE_DATE_EPOCH": "1790000000"}
    first = work.cli("plan", "--format", "json", env=env)
    second = work.cli("plan", "--format", "json", env=env)
    assert first.code == 0 and first.out == second.out
    assert json.loads(first.out)["created_at"].startswith("2026-09-21")


def test_gpu_spec_pools_through_the_cli(work: Workdir) -> None:
    write(work, "    providers: [{name: one, regions: [us-west-1]}]\n    gpu: H100:8\n"
          "    nodes: 1\n")
    plan = work.plan_json()
    assert plan["actions"][0]["instance_type"] == "gpu_8x_h100"


def test_instance_types_filters_by_gpu_and_marks_the_pool_pick(work: Workdir) -> None:
    write(work, """\
    providers:
      - {name: one, regions: [us-west-1]}
      - {name: two, regions: [us-east-1]}
    gpu: [H100:8, A100:8]
    strategy: cost
    nodes: 1
""")
    rows = work.cli("instance-types", "--gpu", "H100:8", "--json").json()
    assert {(r["provider"], r["instance_type"]) for r in rows} == {
        ("one", "gpu_8x_h100"), ("two", "gpu_8x_h100")}
    marked = work.cli("instance-types", "--gpu", "A100:8", "--pool", "w")
    assert marked.code == 0
    picked = [line for line in marked.out.splitlines() if "picked" in line]
    assert len(picked) == 1 and picked[0].startswith("one") and "gpu_8x_a100" in picked[0]
    assert "us-west-1 for pool.w[0]" in picked[0]
    bad = work.cli("instance-types", "--gpu", "H100x8")
    assert bad.code == 1 and "--gpu: bad GPU spec" in bad.err


def test_availability_strategy_tries_first_where_the_cloud_reports_capacity(
        work: Workdir) -> None:
    """The real Lambda client against a local Lambda API: us-west-1 is listed first but
    reported without capacity, so the plan and the apply go to us-east-1."""
    from tests.fakes.lambda_server import FakeLambda, serve

    fake = FakeLambda(api_key="sk-availability", ssh_keys=("ops",),
                      capacity={("gpu_1x_a10", "us-west-1"): 0})
    with serve(fake) as base_url:
        work.write(f"""\
version: 1
workspace: test
providers:
  lambda: {{type: lambda, api_key_env: AVAIL_LAMBDA_KEY, base_url: '{base_url}',
            rate_limit: {{launches_per_second: null, calls_per_second: null}}}}
defaults: {{ssh_keys: [ops]}}
pools:
  w:
    providers:
      - {{name: lambda, regions: [us-west-1, us-east-1]}}
    strategy: availability
    instance_type: gpu_1x_a10
    nodes: 2
""")
        env = {"AVAIL_LAMBDA_KEY": "sk-availability"}
        plan = work.cli("plan", "--format", "json", env=env)
        assert plan.code == 0, plan.err
        firsts = [a["candidates"][0]["region"] for a in plan.json()["actions"]]
        assert firsts == ["us-east-1", "us-east-1"]
        assert work.cli("apply", "--auto-approve", env=env).code == 0
        launches = fake.requests("POST", "/instance-operations/launch")
    assert [r.body["region_name"] for r in launches] == ["us-east-1", "us-east-1"], \
        "no launch was wasted on the region without capacity"

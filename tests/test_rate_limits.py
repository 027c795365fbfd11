"""Rate-aware scheduling and retries, through the `navarch` command (its main(), in this
process), checked from the fake clouds' own call logs (never timed: every assertion is
about order and spacing that the scheduler guarantees, with no upper bound on how long
anything took). Spacing is asserted with honest margins: a hold the cloud asked for is
exact, since it counts from the refused call; a paced launch may be recorded late by a
thread that waited for a core (WAKE_SLACK), never early."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest

from navarch_plan.apply.throttle import Pacer, RetryPolicy
from navarch_plan.errors import RateLimitError, TransientError
from navarch_plan.model import RateLimit
from navarch_plan.providers.fake import FakeProvider
from tests.conftest import FAST_RETRY, Workdir, max_in_flight

A10 = {"region": "us-west-1", "instance_type": "gpu_1x_a10"}


def two_clouds(work: Workdir, slow: dict[str, Any], fast: dict[str, Any],
               slow_nodes: int, fast_nodes: int) -> None:
    doc = {"version": 1, "workspace": "test",
           "providers": {"slow": {"type": "fake", "path": "state/slow.db", **slow},
                         "fast": {"type": "fake", "path": "state/fast.db", **fast}},
           "defaults": {"ssh_keys": ["ops"]},
           "pools": {"slowpool": {"provider": "slow", "nodes": slow_nodes, **A10},
                     "fastpool": {"provider": "fast", "nodes": fast_nodes, **A10}}}
    work.write(json.dumps(doc, indent=2))


def calls(work: Workdir, cloud: str, op: str = "provision") -> list[dict[str, Any]]:
    return FakeProvider(cloud, path=str(work.path / "state" / f"{cloud}.db")).calls(op)


def gaps(log: list[dict[str, Any]]) -> list[float]:
    starts = sorted(c["started"] for c in log)
    return [b - a for a, b in zip(starts, starts[1:], strict=False)]


# How late a thread may record the start of a call it was allowed to make at its slot
# (a sleep's overshoot, waiting for the GIL or a core on a loaded machine). A paced call
# never starts before its slot, but the call before it may be recorded late, so gaps
# between recorded starts are the interval minus up to this much; a hold the cloud asked
# for (Retry-After) is measured from the refused call and needs no slack.
WAKE_SLACK = 0.1


def assert_paced(log: list[dict[str, Any]], interval: float) -> None:
    """Starts at least `interval` apart (less the slack for the earlier call's late
    start), and all of them together spread over as many intervals. Unpaced calls start
    together; calls paced at twice the rate fail both bounds."""
    spacing = gaps(log)
    assert spacing and min(spacing) >= interval - WAKE_SLACK, \
        f"launches closer than {interval}s: {spacing}"
    assert sum(spacing) >= len(spacing) * interval - WAKE_SLACK, \
        f"{len(spacing) + 1} launches within {sum(spacing):.3f}s: {spacing}"


def test_a_paced_provider_launches_apart_while_the_other_runs_at_full_parallelism(
        work: Workdir) -> None:
    """The slow pool comes first in the config, so its actions are the first ready: a
    scheduler that parked workers on its limit would starve the fast pool."""
    two_clouds(work, slow={"rate_limit": {"launches_per_second": 4}},
               fast={"latency": 0.3}, slow_nodes=4, fast_nodes=8)
    result = work.cli("apply", "--auto-approve", "--parallelism", "4")
    assert result.code == 0, result.err
    slow, fast = calls(work, "slow"), calls(work, "fast")
    assert len(slow) == 4 and len(fast) == 8
    assert_paced(slow, 0.25)
    # The four fast launches run side by side while the slow provider waits for its slots.
    assert max_in_flight(fast) >= 3, "waiting on the slow provider held workers"
    first_fast_done = min(c["ended"] for c in fast)
    last_slow_start = max(c["started"] for c in slow)
    assert any(c["started"] < last_slow_start for c in fast[4:]), \
        "the fast pool's second wave waited for the slow pool's launches"
    assert first_fast_done < last_slow_start


def test_concurrency_caps_one_provider_and_not_the_other(work: Workdir) -> None:
    two_clouds(work, slow={"latency": 0.2, "rate_limit": {"concurrency": 1}},
               fast={"latency": 0.2}, slow_nodes=3, fast_nodes=3)
    result = work.cli("apply", "--auto-approve", "--parallelism", "6")
    assert result.code == 0, result.err
    assert max_in_flight(calls(work, "slow")) == 1
    assert max_in_flight(calls(work, "fast")) == 3


def test_a_launch_refused_for_rate_is_queued_and_tried_again(work: Workdir) -> None:
    two_clouds(work, slow={"faults": [{"op": "provision", "error": "rate_limit",
                                       "retry_after": 0.4}], "retry": FAST_RETRY},
               fast={}, slow_nodes=1, fast_nodes=2)
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.err
    log = calls(work, "slow")
    assert [bool(c["ok"]) for c in log] == [False, True]
    assert gaps(log)[0] >= 0.4 * 0.99, "the retry came before the cloud's Retry-After"
    assert "queued to try again in 0.4s (try 2 of 4)" in result.out
    assert len(work.state()["nodes"]) == 3
    assert work.state()["intents"] == []


def test_a_launch_that_timed_out_is_never_retried_blindly(work: Workdir) -> None:
    """Its outcome is unknown: a second launch could make a second GPU instance. Where
    the cloud does not dedupe launches, it is looked for by name instead, and with no
    instance to be found it fails, having launched once."""
    two_clouds(work, slow={"faults": [{"op": "provision", "error": "transient"}],
                           "retry": FAST_RETRY, "idempotent": False},
               fast={}, slow_nodes=1, fast_nodes=1)
    result = work.cli("apply", "--auto-approve")
    assert result.code == 1
    assert len(calls(work, "slow")) == 1
    assert "injected timeout" in result.out + result.err
    assert "nothing was created" in result.out + result.err


def test_a_timed_out_launch_is_resent_unchanged_where_the_cloud_dedupes(
        work: Workdir) -> None:
    """EC2's documented recovery: the same request with the same ClientToken returns the
    original instance, or makes the one the lost call never made. One instance results."""
    two_clouds(work, slow={"faults": [{"op": "provision", "error": "transient",
                                       "effect": True}], "retry": FAST_RETRY},
               fast={}, slow_nodes=1, fast_nodes=1)
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.out + result.err
    launches = calls(work, "slow")
    assert len(launches) == 2 and launches[0]["target"] == launches[1]["target"]
    slow = FakeProvider("slow", path=str(work.path / "state" / "slow.db"))
    assert len(slow.list()) == 1


def test_a_resend_refused_for_rate_keeps_its_key_and_makes_no_duplicate(
        work: Workdir) -> None:
    """The first launch took effect but its reply was lost; the re-send is refused for
    rate. That refusal says nothing about the first launch: the launch is re-sent with
    the same key after the hold, never started afresh beside the instance already made
    (found by test_fault_schedules_in_process)."""
    two_clouds(work, slow={"faults": [
        {"op": "provision", "error": "transient", "effect": True},
        {"op": "provision", "error": "rate_limit", "retry_after": 0.3}],
        "retry": FAST_RETRY}, fast={}, slow_nodes=1, fast_nodes=0)
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.out + result.err
    launches = calls(work, "slow")
    assert [bool(c["ok"]) for c in launches] == [False, False, True]
    assert len({c["target"] for c in launches}) == 1, "one name throughout"
    assert launches[2]["started"] >= launches[1]["started"] + 0.3, "the hold was waited"
    slow = FakeProvider("slow", path=str(work.path / "state" / "slow.db"))
    [node] = slow.list()
    assert work.state()["nodes"]["pool.slowpool[0]"]["id"] == node.id
    assert work.state()["intents"] == []
    assert work.cli("plan", "--detailed-exitcode").code == 0


def test_idempotent_calls_are_retried_with_backoff(work: Workdir) -> None:
    two_clouds(work, slow={}, fast={}, slow_nodes=1, fast_nodes=1)
    assert work.cli("apply", "--auto-approve").code == 0
    two_clouds(work, slow={"retry": FAST_RETRY, "faults": [
        {"op": "terminate", "error": "transient"},
        {"op": "terminate", "error": "rate_limit", "retry_after": 0.2}]},
        fast={}, slow_nodes=1, fast_nodes=1)
    result = work.cli("destroy", "--auto-approve")
    assert result.code == 0, result.err
    log = calls(work, "slow", "terminate")
    assert [bool(c["ok"]) for c in log] == [False, False, True]
    assert gaps(log)[1] >= 0.2 * 0.99
    assert "slow terminate: injected timeout; retrying in" in result.out
    assert work.state()["nodes"] == {}


def test_retries_give_up_after_max_attempts(work: Workdir) -> None:
    two_clouds(work, slow={}, fast={}, slow_nodes=1, fast_nodes=0)
    assert work.cli("apply", "--auto-approve").code == 0
    two_clouds(work, slow={"retry": {**FAST_RETRY, "max_attempts": 2},
                           "faults": [{"op": "terminate", "error": "transient"}] * 3},
               fast={}, slow_nodes=1, fast_nodes=0)
    result = work.cli("destroy", "--auto-approve")
    assert result.code == 1
    assert len(calls(work, "slow", "terminate")) == 2
    assert len(work.state()["nodes"]) == 1, "a node that could not be terminated stays"


def test_the_json_stream_reports_the_wait(work: Workdir) -> None:
    two_clouds(work, slow={"faults": [{"op": "provision", "error": "rate_limit",
                                       "retry_after": 0.1}], "retry": FAST_RETRY},
               fast={}, slow_nodes=1, fast_nodes=0)
    result = work.cli("apply", "--auto-approve", "--json")
    events = [json.loads(line) for line in result.out.splitlines()]
    kinds = [e["type"] for e in events if e.get("address") == "pool.slowpool[0]"]
    assert kinds[:3] == ["apply_start", "apply_waiting", "apply_start"]
    assert kinds[-1] == "apply_complete"


@pytest.mark.parametrize("limit, message", [
    ({"launches_per_second": 0}, "launches_per_second"),
    ({"concurrency": 0}, "concurrency"),
    ({"per_minute": 5}, "per_minute"),
])
def test_bad_rate_limits_are_one_line_errors_naming_the_place(
        work: Workdir, limit: dict[str, Any], message: str) -> None:
    work.config(sim={"rate_limit": limit}, pools={"p": {"nodes": 1}})
    result = work.cli("plan")
    assert result.code == 1
    line = result.err.strip()
    assert "\n" not in line and "navarch.yaml:" in line and message in line
    assert "rate_limit" in line


def test_a_config_limit_overrides_the_providers_own_field_by_field() -> None:
    lambda_like = RateLimit(launches_per_second=1 / 12, calls_per_second=1.0)
    merged = lambda_like.overridden({"concurrency": 4, "calls_per_second": None})
    assert merged == RateLimit(launches_per_second=1 / 12, calls_per_second=None,
                               concurrency=4)


def test_backoff_grows_is_jittered_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_attempts=6, base_delay=1.0, max_delay=8.0)
    rng = random.Random(7)
    error = TransientError("5xx")
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0)):
        delays = {policy.delay(attempt, error, rng) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays if d is not None)
        assert len(delays) > 1, "no jitter"
    assert policy.delay(6, error, rng) is None
    assert policy.delay(1, RateLimitError("429", retry_after=5), rng) == 5
    assert policy.delay(1, RateLimitError("429", retry_after=60), rng) is None


def test_a_pacer_books_slots_apart() -> None:
    pacer = Pacer(per_second=2)
    assert pacer.admit(100.0) == 0
    assert pacer.admit(100.1) == pytest.approx(0.4)
    assert pacer.admit(100.5) == 0
    unlimited = Pacer(per_second=None)
    assert unlimited.admit(0.0) == 0 and unlimited.admit(0.0) == 0


def test_lambda_launches_are_paced_by_the_config_and_sim_runs_meanwhile(
        work: Workdir) -> None:
    """The real Lambda client against a fake Lambda API on 127.0.0.1: the config's
    launch rate reaches the provider (its own pacer would otherwise hold 12 s)."""
    from tests.fakes.lambda_server import FakeLambda, serve

    fake = FakeLambda(api_key="sk-rate-test", ssh_keys=("ops",))
    with serve(fake) as base_url:
        doc = {"version": 1, "workspace": "test",
               "providers": {
                   "lambda": {"type": "lambda", "api_key_env": "RATE_TEST_LAMBDA_KEY",
                              "base_url": base_url,
                              "rate_limit": {"launches_per_second": 4,
                                             "calls_per_second": None}},
                   "sim": {"type": "fake", "path": "state/sim.db", "latency": 0.2}},
               "defaults": {"ssh_keys": ["ops"]},
               "pools": {"gpu": {"provider": "lambda", "region": "us-east-1",
                                 "instance_type": "gpu_1x_a10", "nodes": 3},
                         "cpu": {"provider": "sim", "nodes": 3, **A10}}}
        work.write(json.dumps(doc))
        result = work.cli("apply", "--auto-approve", "--parallelism", "3",
                          env={"RATE_TEST_LAMBDA_KEY": "sk-rate-test"})
        assert result.code == 0, result.err
        launches = [r.time for r in fake.requests("POST", "/instance-operations/launch")]
    assert len(launches) == 3
    spacing = [b - a for a, b in zip(launches, launches[1:], strict=False)]
    assert_paced([{"started": t} for t in launches], 0.25)
    # Far below Lambda's default 12 s: the config's rate reached the provider's own pacer.
    assert max(spacing) < 6, spacing
    assert len(calls(work, "sim")) == 3


def test_lambda_declares_one_launch_per_12_seconds() -> None:
    from navarch_plan.providers.lambda_ import LambdaProvider

    with LambdaProvider("lambda", "sk-unused", base_url="http://127.0.0.1:9/api/v1") as p:
        assert p.rate_limit() == RateLimit(launches_per_second=1 / 12, calls_per_second=1.0)


def test_a_plan_retries_a_failed_listing(work: Workdir) -> None:
    """A drift check from cron should not page anyone over one 503."""
    work.config(sim={"retry": FAST_RETRY, "faults": [
        {"op": "list", "error": "transient"}, {"op": "list", "error": "rate_limit"}]},
        pools={"p": {"nodes": 1}})
    result = work.cli("plan", "--detailed-exitcode")
    assert result.code == 2, result.err
    assert "Note: sim list: injected timeout; retrying in" in result.err
    assert "Note: sim list: injected: too many requests; retrying in" in result.err
    assert len(work.cloud().calls("list")) == 3


def test_a_plan_gives_up_on_a_listing_after_max_attempts(work: Workdir) -> None:
    work.config(sim={"retry": {**FAST_RETRY, "max_attempts": 2},
                     "faults": [{"op": "list", "error": "transient"}] * 2},
                pools={"p": {"nodes": 1}})
    result = work.cli("drift")
    assert result.code == 1
    assert "injected timeout" in result.err.splitlines()[-1]
    assert len(work.cloud().calls("list")) == 2


def test_deletes_do_not_queue_behind_paced_launches_on_the_same_provider(
        work: Workdir) -> None:
    work.config(pools={"old": {"nodes": 3}})
    assert work.cli("apply", "--auto-approve").code == 0
    work.config(sim={"latency": 0.05, "rate_limit": {"launches_per_second": 2}},
                pools={"new": {"nodes": 3}})
    result = work.cli("apply", "--auto-approve", "--parallelism", "4")
    assert result.code == 0, result.err
    cloud = work.cloud()
    launches = sorted(c["started"] for c in cloud.calls("provision"))[-3:]
    terminates = [c["started"] for c in cloud.calls("terminate")]
    assert len(terminates) == 3
    assert_paced([{"started": t} for t in launches], 0.5)
    assert max(terminates) < launches[1], "a delete waited for a launch slot"


def test_a_rate_limit_after_a_failover_holds_back_the_provider_that_said_it(
        work: Workdir) -> None:
    """The pool's first choice is full; the second refuses one launch for 0.5 s: the
    second provider is held back, and only it. Its launches are paced 0.1 s apart and
    answer in 0.02 s, so the refusal is known before the next slot: a launch that was
    already waiting for that slot waits out the hold too."""
    doc = {"version": 1, "workspace": "test",
           "providers": {
               "one": {"type": "fake", "path": "state/one.db",
                       "capacity": {"gpu_1x_a10": 0}},
               "two": {"type": "fake", "path": "state/two.db", "latency": 0.02,
                       "retry": FAST_RETRY, "rate_limit": {"launches_per_second": 10},
                       "faults": [{"op": "provision", "error": "rate_limit",
                                   "retry_after": 0.5}]}},
           "defaults": {"ssh_keys": ["ops"]},
           "pools": {"w": {"providers": [{"name": "one", "priority": 1,
                                          "regions": ["us-west-1"]},
                                         {"name": "two", "priority": 2,
                                          "regions": ["us-west-1"]}],
                           "instance_type": "gpu_1x_a10", "nodes": 3}}}
    work.write(json.dumps(doc))
    result = work.cli("apply", "--auto-approve", "--parallelism", "3")
    assert result.code == 0, result.out + result.err
    log = calls(work, "two")
    refused = next(c for c in log if not c["ok"])
    later = [c["started"] for c in log if c["started"] > refused["started"]]
    assert len(later) == 3, "three launches after the refusal, all on two"
    assert min(later) >= refused["started"] + 0.5 * 0.99, "two was not held back"


def test_a_destroy_first_replacement_is_not_requeued_after_a_refused_launch(
        work: Workdir) -> None:
    """Its old node is already gone: queueing it would give back its pool's termination
    budget while the node is down. It fails, terminated once, and the next apply
    creates the node."""
    pools = {"p": {"nodes": 1, "lifecycle": {"replace": "destroy_before_create"}}}
    work.config(pools=pools)
    assert work.cli("apply", "--auto-approve").code == 0
    pools["p"]["instance_type"] = "gpu_1x_l4"
    work.config(pools=pools, sim={"retry": FAST_RETRY, "faults": [
        {"op": "provision", "error": "rate_limit", "retry_after": 0.1}]})
    result = work.cli("apply", "--auto-approve")
    assert result.code == 1
    assert "failed:  pool.p[0]" in result.out and "too many requests" in result.out
    cloud = work.cloud()
    assert len(cloud.calls("terminate")) == 1
    assert work.state()["nodes"] == {} and work.state()["intents"] == []
    assert work.cli("apply", "--auto-approve").code == 0
    assert [n.instance_type for n in cloud.list() if n.status.value == "running"] == \
        ["gpu_1x_l4"]


def test_a_queued_launch_waits_out_a_retry_after_longer_than_max_delay(
        work: Workdir) -> None:
    """No worker sleeps through it, so the cloud's word is followed, not given up on."""
    work.config(sim={"retry": {"base_delay": 0.01, "max_delay": 0.1}, "faults": [
        {"op": "provision", "error": "rate_limit", "retry_after": 0.6}]},
        pools={"p": {"nodes": 1}})
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.out
    log = work.cloud().calls("provision")
    assert [bool(c["ok"]) for c in log] == [False, True]
    assert gaps(log)[0] >= 0.6 * 0.99


def test_a_booked_call_still_honours_a_hold_the_cloud_asked_for() -> None:
    pacer = Pacer(per_second=None)
    assert pacer.admit(time.monotonic()) == 0  # booked
    before = time.monotonic()  # (read first: the hold counts from a later moment)
    pacer.push_back(0.3)  # meanwhile, another call got a 429 with Retry-After 0.3
    assert pacer.slot(booked=True) >= before + 0.3
    assert pacer.admit(time.monotonic()) > 0

"""The waits of apply, and its pacing and retries, on a clock whose time passes at once
(navarch_plan.testing.FakeClock): minutes of consistency windows, boots, backoff and
Retry-After, asserted to the second, in milliseconds."""

from __future__ import annotations

import random

import pytest

from navarch_plan.apply.hooks import Hooks
from navarch_plan.apply.throttle import Pacer, RetryPolicy, retrying
from navarch_plan.apply.waits import CloudWaits
from navarch_plan.errors import BootTimeoutError, RateLimitError, TransientError, VanishedError
from navarch_plan.model import Consistency, ProvisionRequest
from navarch_plan.plan import Action, ActionKind, Reason
from navarch_plan.providers.fake import FakeProvider
from navarch_plan.testing import FakeClock

REQ = ProvisionRequest("n-0", "gpu_1x_a10", "us-west-1")
ACTION = Action(key="pool.w[0]", address="pool.w[0]", action=ActionKind.CREATE,
                reason=Reason.MISSING, group="w", provider="sim", region="us-west-1")


def _waits(clock: FakeClock, cloud: FakeProvider, window: float = 180.0,
           boot: float = 1200.0) -> CloudWaits:
    return CloudWaits({"sim": cloud}, Hooks(), {"sim": Consistency(window, boot)}, clock)


def test_a_new_node_invisible_for_100s_is_waited_for_not_written_off() -> None:
    clock = FakeClock()
    cloud = FakeProvider("sim", clock=clock, visibility_lag=100, boot_time=30)
    node = cloud.provision(REQ)
    started = clock.monotonic()
    running = _waits(clock, cloud).wait_running(ACTION, node, started)
    assert running.status.value == "running"
    assert 100 <= clock.monotonic() - started < 110


class _Said(Hooks):
    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []
        self.clock: FakeClock | None = None

    def action_progress(self, action: Action, message: str) -> None:
        assert self.clock is not None
        self.lines.append((self.clock.monotonic(), message))


def test_a_long_boot_is_said_once_then_reminded_every_30s_not_at_every_poll() -> None:
    """Polls back off to every 5 s; a 20-minute boot would otherwise print ~240 lines
    where a terminal has no live view (CI logs). Terraform: "Still creating... [30s]"."""
    clock = FakeClock()
    cloud = FakeProvider("sim", clock=clock, boot_time=100)
    said = _Said()
    said.clock = clock
    node = cloud.provision(REQ)
    started = clock.monotonic()
    CloudWaits({"sim": cloud}, said, {"sim": Consistency(180.0, 1200.0)},
               clock).wait_running(ACTION, node, started)
    texts = [text for _, text in said.lines]
    assert texts[0] == f"waiting for {node.id} to boot"
    elapsed = [int(t.split(" (")[1].removesuffix("s elapsed)")) for t in texts[1:]]
    assert len(elapsed) == 3 and all(30 * k <= e < 30 * k + 6
                                     for k, e in enumerate(elapsed, 1)), texts
    gaps = [b - a for (a, _), (b, _) in zip(said.lines, said.lines[1:], strict=False)]
    assert all(30 <= g < 36 for g in gaps), gaps


def test_a_node_never_seen_again_is_vanished_once_the_window_has_passed() -> None:
    clock = FakeClock()
    cloud = FakeProvider("sim", clock=clock, visibility_lag=10_000, boot_time=30)
    node = cloud.provision(REQ)
    started = clock.monotonic()
    with pytest.raises(VanishedError, match="within 180s"):
        _waits(clock, cloud).wait_running(ACTION, node, started)
    assert 180 <= clock.monotonic() - started < 190


def test_a_boot_longer_than_the_timeout_fails_with_how_long_it_waited() -> None:
    clock = FakeClock()
    cloud = FakeProvider("sim", clock=clock, boot_time=4000)
    node = cloud.provision(REQ)
    with pytest.raises(BootTimeoutError, match="boot_timeout 1800s"):
        _waits(clock, cloud, boot=1800).wait_running(ACTION, node, clock.monotonic())


def test_a_terminate_answered_not_found_is_sent_again_until_the_cloud_takes_it() -> None:
    clock = FakeClock()
    cloud = FakeProvider("sim", clock=clock, visibility_lag=50)
    node = cloud.provision(REQ)
    delete = Action(**{**ACTION.__dict__, "action": ActionKind.DELETE, "node_id": node.id})
    _waits(clock, cloud).terminate(delete, launched_at=clock.time())
    terminates = cloud.calls("terminate")
    assert len(terminates) >= 2, "the first one, while hidden, did nothing"
    assert cloud.get(node.id) is None and cloud.list() == []
    assert 50 <= clock.time() - terminates[0]["started"] < 60


def test_retry_after_is_honoured_to_the_second_and_backoff_doubles() -> None:
    clock = FakeClock()
    failures = [RateLimitError("slow down", retry_after=7.0),
                TransientError("blip"), TransientError("blip")]

    def call() -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    policy = RetryPolicy(max_attempts=4, base_delay=2.0, max_delay=60.0)
    assert retrying(call, policy, random.Random(1), lambda m: None, "x", clock=clock) == "ok"
    waited, *backoff = clock.slept
    assert waited == 7.0
    assert 2.0 <= backoff[0] <= 4.0 and 4.0 <= backoff[1] <= 8.0  # equal jitter, doubling


def test_a_pacer_spaces_calls_by_its_rate_exactly() -> None:
    clock = FakeClock()
    pacer = Pacer(1 / 12, clock)
    starts = []
    for _ in range(3):
        pacer.wait()
        starts.append(clock.monotonic())
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [12.0, 12.0]
    pacer.push_back(30.0)
    pacer.wait()
    assert clock.monotonic() - starts[-1] == pytest.approx(30.0)

"""Waiting for a Compute Engine operation, zonal (instances) or regional (resource
policies), by one rule: poll the operation's `wait` (a server-side long poll that is
best effort and may return at once) until it is DONE, never spinning faster than the
poll interval, and give up at a deadline with a TransientError (the operation may still
complete: the next plan sees what it did)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from google.cloud import compute_v1

from navarch_plan.clock import Clock

__all__ = ["until_done"]

#: One `wait` call: (operation name, HTTP timeout in seconds) -> the operation now.
Poll = Callable[[str, float], Any]


def until_done(op: Any, poll: Poll, clock: Clock, timeout: float, poll_interval: float,
               timed_out: Callable[[str], Exception]) -> Any:
    """The operation once DONE (its error, if any, is the caller's to raise)."""
    deadline = clock.monotonic() + timeout
    while op.status != compute_v1.Operation.Status.DONE:
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            raise timed_out(f"operation {op.name} not done after {timeout:g}s (it may "
                            "still complete)")
        started = clock.monotonic()
        try:
            # Server-side long poll (up to ~2 min), so the HTTP timeout is longer.
            op = poll(op.name, min(remaining + 5.0, 150.0))
        except requests.Timeout:
            continue
        if op.status != compute_v1.Operation.Status.DONE:
            clock.sleep(max(0.0, poll_interval - (clock.monotonic() - started)))
    return op

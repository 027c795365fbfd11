"""A clock for tests: time passes only when someone waits, and at once.

`FakeClock().sleep(300)` returns immediately with the clock 300 s later, so a test of a
consistency window, a boot timeout, a backoff or a Retry-After runs in milliseconds
and asserts exact times. Thread-safe; sleeps of parallel threads add up (each advances
the one clock), which is what a test of one waiter wants and an upper bound otherwise.
`wait(event, seconds)` returns at once if the event is set, else advances the clock.
`slept` records every sleep, for assertions on backoff.
"""

from __future__ import annotations

import threading

from navarch_plan.clock import Clock

__all__ = ["FakeClock"]


class FakeClock(Clock):
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start  # wall-clock seconds; monotonic() counts from the same origin
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def time(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        self.advance(seconds)
        return event.is_set()

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._now += seconds
                self.slept.append(seconds)

"""The one clock: every wait, deadline and timestamp goes through a `Clock`, so tests can
run the waits of minutes-long consistency windows and boots in milliseconds
(`navarch_plan.testing.FakeClock`).

`monotonic()` measures intervals; `time()` is wall-clock seconds since the epoch, used
where a moment must survive the process (a record's launch time in state); `sleep()`
waits, and `wait(event, seconds)` waits unless the event is set first.
"""

from __future__ import annotations

import threading
import time as _time
from datetime import UTC, datetime

__all__ = ["Clock", "SYSTEM_CLOCK", "iso_to_epoch"]


class Clock:
    """The real clock. Subclasses replace all five methods together."""

    def monotonic(self) -> float:
        return _time.monotonic()

    def time(self) -> float:
        return _time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            _time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early when `event` is set; True if it was."""
        return event.wait(max(0.0, seconds))

    def now_iso(self) -> str:
        """Wall-clock now, UTC, to the second: how state and plans write moments."""
        return datetime.fromtimestamp(self.time(), UTC).isoformat(timespec="seconds")


SYSTEM_CLOCK = Clock()


def iso_to_epoch(text: str) -> float | None:
    """An ISO 8601 moment as epoch seconds, or None when it is missing or unreadable."""
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()

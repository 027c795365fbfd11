"""The live apply view on a terminal, drawn with rich.

A progress bar for the whole plan (done / failed / skipped / left, elapsed, an estimate
of the time left) and one line per action in flight (key, verb, provider/region, seconds
so far, latest progress message). Finished actions and failover attempts are printed
above the live area as permanent lines, so the terminal keeps a log of the run.

Only the CLI builds this, and only when stdout is a terminal that allows colour: importing
this module imports rich, which plain and JSON runs never load.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from navarch_plan.apply.failover import Attempt
from navarch_plan.apply.hooks import Hooks
from navarch_plan.cli import reporting
from navarch_plan.plan import Action

__all__ = ["LiveHooks"]


@dataclass
class _Running:
    action: Action
    since: float
    message: str = ""
    # One per action for its whole run: a spinner animates from when it was first drawn.
    spinner: Spinner = field(default_factory=lambda: Spinner("dots", style="cyan"))


@dataclass
class _Counts:
    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def left(self) -> int:
        return self.total - self.done - self.failed - self.skipped


def duration(seconds: float) -> str:
    """`42s`, `3m05s`, `1h02m`: short enough for the progress line."""
    whole = int(seconds + 0.5)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


class LiveHooks(Hooks):
    """Use as a context manager around the apply: entering starts the live area,
    leaving draws it one last time and leaves it on screen.

    Hooks arrive on worker threads. State changes happen under `_lock`; printing and
    redrawing happen after releasing it, because rich's own lock is taken by its refresh
    thread before it calls `_render`, which takes `_lock`: holding ours while asking for
    rich's would deadlock."""

    def __init__(self, actions: Sequence[Action], console: Console,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._console = console
        self._clock = clock
        self._lock = threading.Lock()
        self._counts = _Counts(total=len(actions))
        self._running: dict[str, _Running] = {}  # in start order: the oldest stay on top
        self._began = clock()
        self._live = Live(console=console, get_renderable=self._render,
                          refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveHooks:
        self._began = self._clock()
        self._live.start(refresh=True)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._live.stop()

    # The hooks. Starts and ends redraw at once, so every action shows in flight at least
    # once however short it is; messages wait for the next timed refresh.

    def action_start(self, action: Action) -> None:
        with self._lock:
            self._running[action.key] = _Running(action, self._clock())
        self._redraw()

    def action_progress(self, action: Action, message: str) -> None:
        with self._lock:
            running = self._running.get(action.key)
            if running is not None:
                running.message = message

    def action_waiting(self, action: Action, message: str) -> None:
        """Back in the queue: no longer in flight until it starts again."""
        with self._lock:
            self._running.pop(action.key, None)
        self._print(f"{action.key}: {message}", "yellow")

    def failover_attempt(self, action: Action, attempt: Attempt) -> None:
        self.action_progress(action, f"{attempt.describe()}, trying the next candidate")
        self._print(reporting.failed_over(action, attempt), "yellow")

    def action_done(self, action: Action) -> None:
        with self._lock:
            running = self._running.pop(action.key, None)
            self._counts.done += 1
        took = self._clock() - running.since if running else 0.0
        self._print(reporting.finished(action, took), "green")

    def action_failed(self, action: Action, error: BaseException) -> None:
        with self._lock:
            self._running.pop(action.key, None)
            self._counts.failed += 1
        self._print(reporting.failed(action, error), "bold red")

    def action_skipped(self, action: Action, because: str) -> None:
        with self._lock:
            self._counts.skipped += 1
        self._print(reporting.skipped(action, because), "yellow")

    def _print(self, line: str, style: str) -> None:
        # Redraw first: printing through the Live's console puts the line above the live
        # area and repeats the last frame under it, which is then already up to date.
        self._redraw()
        self._live.console.print(Text(line, style=style), soft_wrap=True)

    def _redraw(self) -> None:
        if self._live.is_started:  # outside the `with`, rich would print a stray frame
            self._live.refresh()

    # Drawing: called by rich, from its refresh thread or from refresh() above.

    def _render(self) -> RenderableType:
        with self._lock:
            counts = replace(self._counts)  # a copy: drawn after the lock is let go
            running = list(self._running.values())
        now = self._clock()
        rows = self._in_flight(running, now)
        return Group(self._bar(counts, now - self._began), *rows)

    def _bar(self, counts: _Counts, elapsed: float) -> Table:
        finished = counts.done + counts.failed + counts.skipped
        text = Text()
        text.append(f"{counts.done} done", style="green")
        text.append(", ")
        text.append(f"{counts.failed} failed", style="red" if counts.failed else None)
        if counts.skipped:
            text.append(f", {counts.skipped} skipped", style="yellow")
        text.append(f", {counts.left} left  {duration(elapsed)} elapsed")
        text.append(f", {self._eta(counts, elapsed)}", style="dim")
        grid = Table.grid(padding=(0, 2))
        grid.add_row(ProgressBar(total=max(counts.total, 1), completed=finished, width=30),
                     text)
        return grid

    @staticmethod
    def _eta(counts: _Counts, elapsed: float) -> str:
        """The average time per finished action so far, times what is left: parallelism
        is already in that average, since it is measured on the wall clock."""
        finished = counts.done + counts.failed
        if not counts.left:
            return "nothing left"
        if not finished:
            return "time left unknown"
        left = elapsed / finished * counts.left
        return f"about {duration(left)} left" if left >= 1 else "under 1s left"

    def _in_flight(self, running: list[_Running], now: float) -> list[RenderableType]:
        # Keep the live area within the screen; rich would cut it off silently.
        room = max(1, self._console.height - 3)
        shown = running if len(running) <= room else running[:room - 1]
        grid = Table.grid(padding=(0, 2))
        for column in range(5):
            grid.add_column(no_wrap=True, justify="right" if column == 4 else "left")
        # The message gives way first when the screen is narrow.
        grid.add_column(no_wrap=True, overflow="ellipsis")
        for item in shown:
            action = item.action
            grid.add_row(item.spinner, action.key,
                         reporting.VERBS[action.action.value][0],
                         reporting.location(action),
                         f"{now - item.since:.1f}s", Text(item.message, style="dim"))
        rows: list[RenderableType] = [grid] if shown else []
        if len(shown) < len(running):
            rows.append(Text(f"  ... and {len(running) - len(shown)} more in flight",
                             style="dim"))
        return rows

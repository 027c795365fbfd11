"""The live apply view on a terminal, drawn with rich.

A progress bar for the whole plan (done / failed / skipped / left, elapsed, an estimate
of the time left) and one line per action in flight (key, verb, provider/region, seconds
so far, latest progress message). Finished actions (with the instance id and IP they
left) and failover attempts are printed above the live area as permanent lines, so the
terminal keeps a log of the run. Before that, while the engine reads the clouds to plan,
`ReadingView` says which providers it reads and when each has answered (Terraform's
"Refreshing state...").

On a narrow terminal the key, verb, place and seconds keep their full width and the
progress message gets what is left (cut with an ellipsis), never the other way round.

Only the CLI builds this, and only when stdout is a terminal that allows colour: importing
this module imports rich, which plain and JSON runs never load.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType

from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from navarch_plan.apply.failover import Attempt
from navarch_plan.apply.hooks import Hooks
from navarch_plan.cli import reporting
from navarch_plan.plan import Action, ActionKind
from navarch_plan.state.model import NodeRecord
from navarch_plan.words import plural

__all__ = ["LiveHooks", "ReadingView"]

Recorded = Callable[[str], NodeRecord | None]
# Columns of an in-flight line before the message: spinner, key, verb, place, seconds.
_GAP = 2
_LEAST_MESSAGE = 8  # narrower than this, the message is left out rather than shown as "…"


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
                 clock: Callable[[], float] = time.monotonic,
                 recorded: Recorded = lambda address: None) -> None:
        self._console = console
        self._clock = clock
        self._recorded = recorded  # an address's record in state, once an action is done
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
        self._print(reporting.finished(action, took) + self._left(action), "green")

    def _left(self, action: Action) -> str:
        """The instance a finished action left, Terraform's `[id=...]`: the new or kept
        instance's id and IP as state now records them; a delete's id."""
        if action.action == ActionKind.DELETE:
            return f" [id={action.node_id}]" if action.node_id else ""
        if action.action == ActionKind.FORGET:
            return ""
        record = self._recorded(action.address)
        if record is None:
            return ""
        return f" [id={record.id}, ip={record.ip_address or 'none yet'}]"

    def action_failed(self, action: Action, error: BaseException) -> None:
        with self._lock:
            self._running.pop(action.key, None)
            self._counts.failed += 1
        self._print(reporting.failed(action, error), "bold red")

    def action_skipped(self, action: Action, because: str) -> None:
        with self._lock:
            self._counts.skipped += 1
        self._print(reporting.skipped(action, because), "yellow")

    def placement_groups_pruned(self, provider: str, deleted: Sequence[str],
                                error: str = "") -> None:
        for line in reporting.pruned_lines(provider, deleted, error):
            self._print(line, "yellow" if error else "green")

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
        # The bar gives way to the words on a narrow screen (30 cells at most, 10 at least).
        width = max(10, min(30, self._console.width - cell_len(text.plain) - _GAP))
        grid = Table.grid(padding=(0, _GAP))
        grid.add_row(ProgressBar(total=max(counts.total, 1), completed=finished,
                                 width=width), text)
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
        cells = [(action.key, reporting.VERBS[action.action.value][0],
                  reporting.location(action), f"{now - item.since:.1f}s")
                 for item in shown for action in (item.action,)]
        grid = self._grid(cells)
        with_message = len(grid.columns) > 5
        for item, row in zip(shown, cells, strict=True):
            message = Text(item.message, style="dim", no_wrap=True, overflow="ellipsis")
            grid.add_row(item.spinner, *row, *([message] if with_message else []))
        rows: list[RenderableType] = [grid] if shown else []
        if len(shown) < len(running):
            rows.append(Text(f"  ... and {len(running) - len(shown)} more in flight",
                             style="dim"))
        return rows

    def _grid(self, cells: list[tuple[str, str, str, str]]) -> Table:
        """Columns as wide as their widest cell; the message column gets exactly what
        the screen has left, so rich never has to shrink (and cut) the others."""
        widths = [max((cell_len(row[i]) for row in cells), default=0) for i in range(4)]
        used = 1 + sum(widths) + 5 * _GAP  # the spinner, four columns, five gaps
        left = self._console.width - used
        grid = Table.grid(padding=(0, _GAP))
        grid.add_column(width=1, no_wrap=True)
        for column, width in enumerate(widths):
            grid.add_column(width=width, no_wrap=True,
                            justify="right" if column == 3 else "left")
        if left >= _LEAST_MESSAGE:
            grid.add_column(width=left, no_wrap=True, overflow="ellipsis")
        return grid


class ReadingView(Hooks):
    """What a terminal shows while the engine reads the clouds to plan: one line when
    it starts, then one per provider as its listing arrives (a slow cloud shows as the
    one still missing). Permanent lines, printed before the plan is."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self._console = console
        self._clock = clock
        self._began = clock()
        self._lock = threading.Lock()  # listings arrive on worker threads

    def refresh_start(self, providers: Sequence[str]) -> None:
        self._began = self._clock()
        self._say(f"Reading {plural(len(providers), 'provider')} "
                  f"({', '.join(providers)})...")

    def provider_listed(self, provider: str, instances: int) -> None:
        took = self._clock() - self._began
        self._say(f"  {provider}: {plural(instances, 'instance')} listed [{took:.1f}s]")

    def _say(self, line: str) -> None:
        with self._lock:
            self._console.print(Text(line, style="dim"), soft_wrap=True)

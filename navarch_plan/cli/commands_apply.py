"""`apply` and `destroy`: plan (or read a saved plan), confirm, run, report; and how
an apply is interrupted. The return value is the exit code."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass

from navarch_plan.apply.executor import ApplyResult
from navarch_plan.cli.command_line import suggested
from navarch_plan.cli.common import (
    IO,
    engine_for,
    make_plan,
    plan_options,
    read_plan,
    refuse_planning_options,
    shown,
)
from navarch_plan.cli.reporting import reason
from navarch_plan.engine import Engine
from navarch_plan.errors import NavarchError
from navarch_plan.plan import ActionKind, Plan
from navarch_plan.render import render_plan_text
from navarch_plan.words import plural

__all__ = ["cmd_apply", "cmd_destroy"]

FIRST_INTERRUPT = (
    "\nInterrupt received.\nPlease wait for navarch to exit or data loss may occur.\n"
    "Gracefully shutting down... (running actions finish and are recorded; no new one "
    "starts. Press Ctrl-C again to stop waiting for boots and confirmations now: every "
    "launch made so far stays recorded, and the next plan settles it.)")
SECOND_INTERRUPT = (
    "\nTwo interrupts received: no longer waiting for boots, confirmations or queued "
    "actions. Every launch made so far is recorded; run `{plan}` to see what the "
    "next apply settles.")


@dataclass(frozen=True)
class _Words:
    """What apply and destroy say: destroy speaks of destroying, as Terraform does."""

    question: str
    cancelled: str
    complete: str


_APPLY = _Words("Do you want to perform these actions?\n"
                "  Only 'yes' will be accepted to approve.", "Apply cancelled.",
                "Apply complete!")
_DESTROY = _Words("Do you really want to destroy all resources?\n"
                  "  navarch will destroy every instance this workspace owns, as shown "
                  "above.\n  There is no undo. Only 'yes' will be accepted to confirm.",
                  "Destroy cancelled.", "Destroy complete!")


def cmd_destroy(args: argparse.Namespace, io: IO) -> int:
    return cmd_apply(args, io, destroy=True)


def cmd_apply(args: argparse.Namespace, io: IO, destroy: bool = False) -> int:
    refuse_planning_options(args)
    engine = engine_for(args, io)
    done: list[tuple[Plan, ApplyResult]] = []
    try:
        return _apply(args, io, engine, destroy, done)
    except NavarchError:
        # State could not be written at the end (a full disk, say): what the cloud now
        # holds is still said, before the error that says what to do.
        if done:
            _report(*done[0], io, args.format == "json", destroy)
        raise


def _apply(args: argparse.Namespace, io: IO, engine: Engine, destroy: bool,
           done: list[tuple[Plan, ApplyResult]]) -> int:
    planfile = getattr(args, "planfile", None)
    as_json = args.format == "json"
    words = _DESTROY if destroy else _APPLY
    with engine.locked("destroy" if destroy else "apply"):
        if planfile:
            plan = read_plan(planfile)
            engine.check_fresh(plan, planfile)
        else:
            def show(plan: Plan) -> None:
                if not as_json:
                    io.show(render_plan_text(plan.to_json(), shown(args, engine)))

            plan = make_plan(engine, plan_options(args, destroy), show)
            show(plan)
            if not plan.has_changes:
                if any(i.get("kind") == "drop" for i in plan.intents):
                    # Nothing to do, but this plan proved some dead run's launches made
                    # nothing (reported above): clear those intents, as any apply does.
                    engine.apply(plan, args.parallelism)
                _nothing_to_do(plan, io, as_json, destroy, said="")  # the plan said it
                return _unfinished_destroy(plan, io) if destroy else 0
            if not args.auto_approve and not io.ask(words.question, "--auto-approve"):
                io.out(words.cancelled)
                return 1
        if not plan.has_changes:
            _nothing_to_do(plan, io, as_json, destroy, said="No changes to apply.")
            return 0
        # Chosen only now: the live view is told the plan's actions up front.
        engine.hooks = hooks = io.progress(as_json, plan.actions,
                                           lambda address: engine.store.loaded.nodes.get(address))
        showing = hooks if isinstance(hooks, AbstractContextManager) else nullcontext()
        with _graceful_stop(io.err, suggested(args, "plan")) as stop, showing:
            result = engine.apply(plan, args.parallelism, stop.event, stop.abort)
        done.append((plan, result))
    done.clear()  # state is written: the report below is the only one
    code = _report(plan, result, io, as_json, destroy)
    if stop.signum:
        name = signal.Signals(stop.signum).name
        io.err(f"Interrupted by {name}: " + ("waits were cut short; " if stop.abort.is_set()
                                             else "in-flight actions finished and were "
                                             "recorded; ")
               + f"{plural(len(result.not_started), 'action')} not started"
               + (": " + ", ".join(result.not_started) if result.not_started else "")
               + f". Run `{suggested(args, 'plan')}` to see what is left, then apply again.")
        return 128 + stop.signum
    return _unfinished_destroy(plan, io) if destroy and code == 0 else code


def _nothing_to_do(plan: Plan, io: IO, as_json: bool, destroy: bool, said: str) -> None:
    """A run without actions still ends as every run does: in JSON, with the summary
    event (zero counts) as its last line; in text, with `said`, if anything."""
    if as_json:
        _report(plan, ApplyResult(), io, as_json, destroy)
    elif said:
        io.out(said)


def _unfinished_destroy(plan: Plan, io: IO) -> int:
    """A destroy never exits 0 while an owned instance may still run: one whose place
    could not be read, or an interrupted launch still settling, keeps it at 1."""
    left = [u for u in plan.unsettled if u.kind in ("unknown", "settling")]
    if not left:
        return 0
    io.err(f"Error: destroy is not finished: {plural(len(left), 'address')} could not be "
           f"settled ({', '.join(sorted({u.address for u in left}))}); run destroy again "
           "once the cloud can tell")
    return 1


class _Stop:
    """The signal handler of an apply: the first SIGINT/SIGTERM sets `event` (no new
    action starts), the second sets `abort` too (running actions stop waiting). Each
    says at once what it did: the user must not wonder whether the key was seen."""

    def __init__(self, say: Callable[[str], None], plan_command: str) -> None:
        self.event, self.abort = threading.Event(), threading.Event()
        self.signum = 0
        self._say = say
        self._second = SECOND_INTERRUPT.format(plan=plan_command)

    def __call__(self, signum: int, frame: object) -> None:
        self.signum = signum
        if self.event.is_set():
            if not self.abort.is_set():
                self.abort.set()
                self._tell(self._second)
            return
        self.event.set()
        self._tell(FIRST_INTERRUPT)

    def _tell(self, message: str) -> None:
        with suppress(OSError, RuntimeError):  # stderr gone, or re-entered mid-write
            self._say(message)


@contextmanager
def _graceful_stop(say: Callable[[str], None], plan_command: str) -> Iterator[_Stop]:
    """While applying, SIGINT and SIGTERM stop new actions instead of killing the
    process mid-call: state stays exact and the lock is released."""
    stop = _Stop(say, plan_command)
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _report(plan: Plan, result: ApplyResult, io: IO, as_json: bool, destroy: bool) -> int:
    kinds = {a.key: a.action.value for a in plan.actions}
    done = [kinds[k] for k in result.done]
    counts = {k.value: done.count(k.value) for k in ActionKind}
    if as_json:
        io.out(json.dumps({"type": "summary", "ok": result.ok, "done": counts,
                           "failed": result.failed, "skipped": result.skipped,
                           "not_started": result.not_started}, sort_keys=True))
        return 0 if result.ok else 1
    if destroy:
        forgot = f", {counts['forget']} forgotten" if counts["forget"] else ""
        line = f"Resources: {counts['delete']} destroyed{forgot}"
    else:
        updated = f"{counts['update']} updated, " if counts["update"] else ""
        line = (f"Nodes: {counts['create']} added, {updated}{counts['replace']} replaced, "
                f"{counts['delete']} destroyed, {counts['adopt']} adopted, "
                f"{counts['forget']} forgotten")
    if result.ok:
        io.out(f"\n{(_DESTROY if destroy else _APPLY).complete} {line}.")
        return 0
    io.out(f"\n{'Destroy' if destroy else 'Apply'} finished with errors. {line}; "
           f"{len(result.failed)} failed, {len(result.skipped)} skipped, "
           f"{len(result.not_started)} not started.")
    for key, why in result.failed.items():
        io.out(f"  failed:  {key}: {reason(key, why)}")
    for key, why in result.skipped.items():
        io.out(f"  skipped: {key}: {reason(key, why)}")
    return 1

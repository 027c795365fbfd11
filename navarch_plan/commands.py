"""What each `navarch` command does. Output goes through the IO the CLI passes in;
the return value is the exit code."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace

from navarch_plan.apply import ApplyResult
from navarch_plan.config import Config
from navarch_plan.engine import Engine, load_config
from navarch_plan.errors import NavarchError, PlanError
from navarch_plan.hooks import Hooks
from navarch_plan.offers import select_offers
from navarch_plan.plan import Action, ActionKind, Plan, plan_from_json
from navarch_plan.planner import PlanOptions
from navarch_plan.providers.base import InstanceTypeLister
from navarch_plan.render import render_json, render_plan_text, render_state_text
from navarch_plan.render.drift import (
    drift_document,
    render_drift_markdown_report,
    render_drift_text,
)
from navarch_plan.render.markdown import render_plan_markdown
from navarch_plan.render.offers import render_offers_text
from navarch_plan.render.state import state_list_document
from navarch_plan.state.backends import (
    migrate_state,
    open_store,
    state_from_url,
    state_location,
)
from navarch_plan.state.store import write_json_atomically
from navarch_plan.validate import validate_against_catalogs

__all__ = ["IO", "dispatch"]


@dataclass(frozen=True)
class IO:
    out: Callable[[str], None]
    err: Callable[[str], None]
    ask: Callable[[str], bool]
    # A rendered plan or drift report: coloured on a terminal, else exactly as given.
    show: Callable[[str], None]
    # The hooks reporting an apply of these actions (as JSON events when the flag is set).
    progress: Callable[[bool, Sequence[Action]], Hooks]


def dispatch(args: argparse.Namespace, io: IO) -> int:
    handlers: dict[str, Callable[[argparse.Namespace, IO], int]] = {
        "validate": cmd_validate, "plan": cmd_plan, "apply": cmd_apply,
        "destroy": cmd_destroy, "show": cmd_show, "state": cmd_state,
        "force-unlock": cmd_force_unlock, "instance-types": cmd_instance_types,
        "drift": cmd_drift,
    }
    return handlers[args.command](args, io)


def _engine(args: argparse.Namespace, hooks: object = None, io: IO | None = None) -> Engine:
    config = _config(args)
    return Engine(config, hooks=hooks, lock_timeout=getattr(args, "lock_timeout", 0.0),
                  notice=io.err if io else None)


def _config(args: argparse.Namespace) -> Config:
    """The config, with `--state URL` (when given) in place of its state section."""
    config = load_config(args.config)
    url = getattr(args, "state", None)
    return replace(config, state=state_from_url(url, config.state)) if url else config


def _options(args: argparse.Namespace, destroy: bool = False) -> PlanOptions:
    return PlanOptions(destroy=destroy or getattr(args, "destroy", False),
                       refresh_only=getattr(args, "refresh_only", False),
                       replace=tuple(getattr(args, "replace", ())),
                       target=tuple(getattr(args, "target", ())),
                       exclude=tuple(getattr(args, "exclude", ())))


def cmd_validate(args: argparse.Namespace, io: IO) -> int:
    engine = _engine(args)
    validate_against_catalogs(engine.config, engine.providers)
    config = engine.config
    io.out(f"The configuration is valid: {len(config.desired)} node(s) in "
           f"{len(config.groups)} pool(s)/named node(s) on {len(config.providers)} "
           f"provider(s); state at {state_location(config.state)}.")
    return 0


def cmd_plan(args: argparse.Namespace, io: IO) -> int:
    engine = _engine(args, io=io)
    with engine.locked("plan"):
        plan = engine.plan(_options(args))
    document = plan.to_json()
    if args.out:
        write_json_atomically(args.out, document)  # 0600: plans are private
    if args.format == "json":
        io.out(render_json(document))
    elif args.format == "markdown":
        io.out(render_plan_markdown(document))
    else:
        io.show(render_plan_text(document, _shown(args, engine)))
        if args.out:
            io.out(f"Saved the plan to {args.out}. To perform exactly these actions, run: "
                   f"navarch apply {args.out}")
        elif plan.has_changes:
            io.out("Note: you didn't use --out, so navarch can't guarantee to take exactly "
                   "these actions if you run `navarch apply` now.")
    return 2 if args.detailed_exitcode and plan.has_changes else 0


def _read_plan(path: str) -> Plan:
    try:
        with open(path, "rb") as f:
            raw = f.read(64 * 1024 * 1024)
        data = json.loads(raw)
    except FileNotFoundError:
        raise PlanError(f"{path}: no such plan file") from None
    except OSError as exc:
        raise PlanError(f"{path}: cannot read the plan file: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError):
        raise PlanError(f"{path} is not a plan file (not valid JSON)") from None
    return plan_from_json(data, path)


def cmd_apply(args: argparse.Namespace, io: IO, destroy: bool = False) -> int:
    engine = _engine(args, io=io)
    planfile = getattr(args, "planfile", None)
    with engine.locked("destroy" if destroy else "apply"):
        if planfile:
            plan = _read_plan(planfile)
            engine.check_fresh(plan, planfile)
        else:
            plan = engine.plan(_options(args, destroy))
            if not args.json:
                io.show(render_plan_text(plan.to_json(), _shown(args, engine)))
            if not plan.has_changes:
                if plan.intents:
                    # Nothing to do, but a dead run's intents were settled by this plan's
                    # listing (reported above): clear them, as any apply does first.
                    engine.apply(plan, args.parallelism)
                return 0
            if not args.auto_approve and not io.ask(
                    "Do you want to perform these actions?\n"
                    "  Only 'yes' will be accepted to approve."):
                io.out("Apply cancelled.")
                return 1
        if not plan.has_changes:
            io.out("No changes to apply.")
            return 0
        # Chosen only now: the live view is told the plan's actions up front.
        engine.hooks = hooks = io.progress(args.json, plan.actions)
        showing = hooks if isinstance(hooks, AbstractContextManager) else nullcontext()
        with _graceful_stop() as stop, showing:
            result = engine.apply(plan, args.parallelism, stop.event)
    code = _report(plan, result, io, args.json)
    if stop.signum:
        name = signal.Signals(stop.signum).name
        io.err(f"Interrupted by {name}: in-flight actions finished and were recorded; "
               f"{len(result.not_started)} action(s) were not started: "
               + (", ".join(result.not_started) or "none") + ". Run apply again to finish.")
        return 128 + stop.signum
    return code


class _Stop:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum = 0

    def __call__(self, signum: int, frame: object) -> None:
        self.signum = signum
        self.event.set()


@contextmanager
def _graceful_stop() -> Iterator[_Stop]:
    """While applying, SIGINT and SIGTERM stop new actions instead of killing the
    process mid-call: state stays exact and the lock is released."""
    stop = _Stop()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _report(plan: Plan, result: ApplyResult, io: IO, as_json: bool) -> int:
    kinds = {a.key: a.action.value for a in plan.actions}
    done = [kinds[k] for k in result.done]
    counts = {k.value: done.count(k.value) for k in ActionKind}
    if as_json:
        io.out(json.dumps({"type": "summary", "ok": result.ok, "done": counts,
                           "failed": result.failed, "skipped": result.skipped,
                           "not_started": result.not_started}, sort_keys=True))
    else:
        line = (f"{counts['create']} added, {counts['replace']} replaced, "
                f"{counts['delete']} destroyed, {counts['adopt']} adopted, "
                f"{counts['forget']} forgotten")
        if result.ok:
            io.out(f"\nApply complete! Nodes: {line}.")
        else:
            io.out(f"\nApply finished with errors. Nodes: {line}; {len(result.failed)} failed, "
                   f"{len(result.skipped)} skipped, {len(result.not_started)} not started.")
            for key, why in result.failed.items():
                io.out(f"  failed:  {key}: {why}")
            for key, why in result.skipped.items():
                io.out(f"  skipped: {key}: {why}")
    return 0 if result.ok else 1


def _shown(args: argparse.Namespace, engine: Engine) -> dict[str, str] | None:
    """user_data by address, from the config, when --show-sensitive asks for it."""
    if not getattr(args, "show_sensitive", False):
        return None
    return {a: n.user_data for a, n in engine.config.desired.items() if n.user_data}


def cmd_destroy(args: argparse.Namespace, io: IO) -> int:
    return cmd_apply(args, io, destroy=True)


def cmd_show(args: argparse.Namespace, io: IO) -> int:
    if args.planfile:
        document = _read_plan(args.planfile).to_json()
        if args.json:
            io.out(render_json(document))
        else:
            io.show(render_plan_text(document))
        return 0
    engine = _engine(args)
    document = engine.store.load().to_json()
    io.out(render_json(document) if args.json else render_state_text(document))
    return 0


def cmd_state(args: argparse.Namespace, io: IO) -> int:
    if args.state_command == "migrate":
        return cmd_state_migrate(args, io)
    engine = _engine(args, io=io)
    if args.state_command in ("list", "show"):
        doc = engine.store.load()
        if args.state_command == "list":
            io.out(render_json(state_list_document(doc.to_json())) if args.json
                   else "\n".join(sorted(doc.nodes)))
            return 0
        record = doc.nodes.get(args.address)
        if record is None:
            raise NavarchError(f"{args.address} is not in state")
        io.out(render_json({"address": args.address, **record.to_json()}))
        return 0
    with engine.locked("state rm") as doc:
        if args.address not in doc.nodes:
            raise NavarchError(f"{args.address} is not in state")
        engine.store.record({"op": "remove", "address": args.address})
    io.out(f"Removed {args.address} from state. The instance itself was not touched; while "
           "it carries this workspace's labels, the next plan adopts or deletes it.")
    return 0


def cmd_drift(args: argparse.Namespace, io: IO) -> int:
    engine = _engine(args, io=io)
    updated = None
    with engine.locked("drift", read_only=not args.update_state):
        plan = engine.plan(PlanOptions(refresh_only=True))
        if args.update_state:
            updated = engine.record_drift(plan)
    report = drift_document(plan.to_json(), updated)
    renderers = {"json": render_json, "markdown": render_drift_markdown_report,
                 "text": render_drift_text}
    (io.show if args.format == "text" else io.out)(renderers[args.format](report))
    return 0 if report["clean"] else 2


def cmd_instance_types(args: argparse.Namespace, io: IO) -> int:
    engine = _engine(args)
    unknown = sorted(set(args.provider) - set(engine.config.providers))
    if unknown:
        raise NavarchError(f"--provider {unknown[0]}: no such provider in {args.config}")
    wanted = set(args.provider) or set(engine.config.providers)
    offers = {name: p.list_instance_types() for name, p in engine.providers.items()
              if name in wanted and isinstance(p, InstanceTypeLister)}
    rows = select_offers(engine.config, offers, args.gpu, args.pool)
    io.out(render_json(rows) if args.json else render_offers_text(rows))
    return 0


def cmd_state_migrate(args: argparse.Namespace, io: IO) -> int:
    config = load_config(args.config)
    # --to takes the config's S3 region and endpoint, even when --state overrides it.
    to = state_from_url(args.to, config.state)
    if args.state:
        config = replace(config, state=state_from_url(args.state, config.state))
    source = open_store(config.state, config.workspace)
    target = open_store(to, config.workspace)
    doc, written = migrate_state(source, target, args.lock_timeout)
    what = f"lineage {doc.lineage}, serial {doc.serial}"
    if not written:
        io.out(f"{target.path} already holds this state ({what}); nothing to copy.")
        return 0
    io.out(f"Copied the state ({what}, {len(doc.nodes)} node(s)) from {source.path} to "
           f"{target.path}; {source.path} was left as it was. To use the copy, point "
           f"`state:` in {config.file} at it, or pass --state {args.to}.")
    return 0


def cmd_force_unlock(args: argparse.Namespace, io: IO) -> int:
    config = _config(args)
    store = open_store(config.state, config.workspace)
    holder = store.force_unlock(args.lock_id)
    io.out(f"Released the lock on {store.path} ({holder.describe()}).")
    return 0

"""What each `navarch` command does. Output goes through the IO the CLI passes in;
the return value is the exit code."""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace

from navarch_plan.apply.executor import ApplyResult
from navarch_plan.apply.hooks import Hooks
from navarch_plan.apply.takeover import Taken, TakeOver
from navarch_plan.catalog.offers import select_offers
from navarch_plan.cli.validate import validate_against_catalogs
from navarch_plan.config import Config
from navarch_plan.engine import Engine, load_config
from navarch_plan.errors import NavarchError, PlanError, UsageError
from navarch_plan.plan import Action, ActionKind, Plan, plan_from_json
from navarch_plan.planner import PlanOptions
from navarch_plan.providers.base import InstanceTypeLister
from navarch_plan.render import render_json, render_plan_text, render_state_text
from navarch_plan.render.drift import (
    drift_document,
    drift_gaps,
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
from navarch_plan.state.ops import Remove
from navarch_plan.state.stores.local import write_json_atomically

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
    # Values no output may show (the config's secrets), once a config is loaded.
    hide: Callable[[Iterable[str]], None] = lambda values: None


def dispatch(args: argparse.Namespace, io: IO) -> int:
    handlers: dict[str, Callable[[argparse.Namespace, IO], int]] = {
        "validate": cmd_validate, "plan": cmd_plan, "apply": cmd_apply,
        "destroy": cmd_destroy, "show": cmd_show, "state": cmd_state,
        "force-unlock": cmd_force_unlock, "instance-types": cmd_instance_types,
        "drift": cmd_drift,
    }
    return handlers[args.command](args, io)


def _engine(args: argparse.Namespace, hooks: Hooks | None = None, io: IO | None = None) -> Engine:
    config = _config(args, io)
    return Engine(config, hooks=hooks, lock_timeout=getattr(args, "lock_timeout", 0.0),
                  notice=io.err if io else None)


def _config(args: argparse.Namespace, io: IO | None = None) -> Config:
    """The config, with `--state URL` (when given) in place of its state section; its
    secrets are kept out of every output from here on."""
    config = load_config(args.config)
    if io is not None:
        io.hide(config.secrets(os.environ))
    url = getattr(args, "state", None)
    return replace(config, state=state_from_url(url, config.state)) if url else config


def _options(args: argparse.Namespace, destroy: bool = False) -> PlanOptions:
    return PlanOptions(destroy=destroy or getattr(args, "destroy", False),
                       refresh_only=getattr(args, "refresh_only", False),
                       replace=tuple(getattr(args, "replace", ())),
                       target=tuple(getattr(args, "target", ())),
                       exclude=tuple(getattr(args, "exclude", ())))


def _warn_default_workspace(config: Config, io: IO) -> None:
    if not config.workspace_explicit:
        io.err(f"Warning: {config.file} has no `workspace:`, so it uses `default`: another "
               "config that leaves it out too shares the name; each state labels its "
               "instances with its lineage and leaves the other's alone, but both cannot "
               "build the same addresses. Name it (`workspace: NAME`).")


def cmd_validate(args: argparse.Namespace, io: IO) -> int:
    engine = _engine(args, io=io)
    _warn_default_workspace(engine.config, io)
    validate_against_catalogs(engine.config, engine.providers)
    config = engine.config
    io.out(f"The configuration is valid: {len(config.desired)} node(s) in "
           f"{len(config.groups)} pool(s)/named node(s) on {len(config.providers)} "
           f"provider(s); state at {state_location(config.state)}.")
    return 0


def cmd_plan(args: argparse.Namespace, io: IO) -> int:
    engine = _engine(args, io=io)
    _warn_default_workspace(engine.config, io)
    with engine.locked("plan"):
        if args.out:
            engine.keep_identity()
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
    done: list[tuple[Plan, ApplyResult]] = []
    try:
        return _apply(args, io, engine, destroy, done)
    except NavarchError:
        # State could not be written at the end (a full disk, say): what the cloud now
        # holds is still said, before the error that says what to do.
        if done:
            _report(*done[0], io, args.json)
        raise


def _apply(args: argparse.Namespace, io: IO, engine: Engine, destroy: bool,
           done: list[tuple[Plan, ApplyResult]]) -> int:
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
                if any(i.get("kind") == "drop" for i in plan.intents):
                    # Nothing to do, but this plan proved some dead run's launches made
                    # nothing (reported above): clear those intents, as any apply does.
                    engine.apply(plan, args.parallelism)
                return _unfinished_destroy(plan, io) if destroy else 0
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
        done.append((plan, result))
    done.clear()  # state is written: the report below is the only one
    code = _report(plan, result, io, args.json)
    if stop.signum:
        name = signal.Signals(stop.signum).name
        io.err(f"Interrupted by {name}: in-flight actions finished and were recorded; "
               f"{len(result.not_started)} action(s) were not started: "
               + (", ".join(result.not_started) or "none") + ". Run apply again to finish.")
        return 128 + stop.signum
    return _unfinished_destroy(plan, io) if destroy and code == 0 else code


def _unfinished_destroy(plan: Plan, io: IO) -> int:
    """A destroy never exits 0 while an owned instance may still run: one whose place
    could not be read, or an interrupted launch still settling, keeps it at 1."""
    left = [u for u in plan.unsettled if u.kind in ("unknown", "settling")]
    if not left:
        return 0
    io.err(f"Error: destroy is not finished: {len(left)} address(es) could not be settled "
           f"({', '.join(sorted({u.address for u in left}))}); run destroy again once the "
           "cloud can tell")
    return 1


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
        updated = f"{counts['update']} updated, " if counts["update"] else ""
        line = (f"{counts['create']} added, {updated}{counts['replace']} replaced, "
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
    engine = _engine(args, io=io)
    document = engine.store.load().to_json()
    document.pop("fingerprint_key")  # a secret: it keys what plans publish
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
            raise UsageError(f"{args.address} is not in state")
        io.out(render_json({"address": args.address, **record.to_json()}))
        return 0
    if args.state_command in ("import", "adopt"):
        return cmd_state_take_over(args, io, engine)
    with engine.locked("state rm") as doc:
        if args.address not in doc.nodes:
            raise UsageError(f"{args.address} is not in state")
        engine.store.record(Remove(args.address))
    io.out(f"Removed {args.address} from state. The instance itself was not touched; while "
           "it carries this workspace's labels, the next plan adopts or deletes it.")
    return 0


def cmd_state_take_over(args: argparse.Namespace, io: IO, engine: Engine) -> int:
    """`state import ADDRESS ID` and `state adopt --lineage L` (takeover.py)."""
    taken = Taken()
    with engine.locked(f"state {args.state_command}") as doc:
        takeover = TakeOver(engine.config.workspace, engine.config.desired, engine.providers,
                            doc, engine.clock)
        if args.state_command == "import":
            node = takeover.find(args.instance_id, args.provider)
            ops = takeover.import_one(args.address, node, taken)
        else:
            engine.refresh()
            ops = takeover.adopt(args.lineage, list(engine.observed.by_id.values()), taken)
        if ops:
            engine.store.record(*ops)
    for address, node_id in taken.recorded:
        io.out(f"Recorded {node_id} as {address}.")
    for node_id, why in taken.left:
        io.out(f"Took over {node_id} (now this state's), not recorded: {why}; the next plan "
               "adopts it or, if nothing desires it, deletes it.")
    if taken.unlabelled:
        io.err(f"Warning: {', '.join(taken.unlabelled)} could not be re-labelled (the cloud "
               "has no label API): state holds them by id.")
    if not taken.recorded and not taken.left:
        raise UsageError(f"no instance of workspace {engine.config.workspace} carries "
                           f"lineage {args.lineage}")
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
    if not report["clean"]:
        return 2
    if not report["complete"]:
        io.err(f"Error: drift cannot be ruled out: {drift_gaps(report)} (exit 1, not 0)")
        return 1
    return 0


def cmd_instance_types(args: argparse.Namespace, io: IO) -> int:
    engine = _engine(args, io=io)
    unknown = sorted(set(args.provider) - set(engine.config.providers))
    if unknown:
        raise UsageError(f"--provider {unknown[0]}: no such provider in {args.config}")
    wanted = set(args.provider) or set(engine.config.providers)
    offers = {name: p.list_instance_types() for name, p in engine.providers.items()
              if name in wanted and isinstance(p, InstanceTypeLister)}
    rows = select_offers(engine.config, offers, args.gpu, args.pool)
    io.out(render_json(rows) if args.json else render_offers_text(rows))
    return 0


def cmd_state_migrate(args: argparse.Namespace, io: IO) -> int:
    config = load_config(args.config)
    io.hide(config.secrets(os.environ))
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
    config = _config(args, io)
    store = open_store(config.state, config.workspace)
    if not args.force and not io.ask(
            f"Do you really want to force-unlock the state {store.path}?\n"
            "  navarch will then no longer keep other runs from changing this state at the "
            "same time.\n  Only 'yes' will be accepted to confirm."):
        io.out("force-unlock cancelled.")
        return 1
    holder = store.force_unlock(args.lock_id, force=args.force)
    io.out(f"Released the lock on {store.path} ({holder.describe()}).")
    return 0

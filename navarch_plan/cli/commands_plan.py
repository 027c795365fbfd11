"""The commands that read and report: validate, plan, graph, drift, show, output and
instance-types. The return value is the exit code."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from navarch_plan.catalog.offers import select_offers
from navarch_plan.cli.command_line import suggested
from navarch_plan.cli.common import (
    IO,
    config_for,
    engine_for,
    make_plan,
    plan_options,
    read_plan,
    refuse_planning_options,
    shown,
    warn_config,
)
from navarch_plan.cli.validate import (
    catalog_problems,
    config_warnings,
    key_file_problems,
    live_catalogs,
    partial_problems,
    raise_all,
    shipped_catalogs,
)
from navarch_plan.config import Config, PartialConfigErrors
from navarch_plan.engine import Engine
from navarch_plan.errors import ConfigError, NavarchError, UsageError
from navarch_plan.plan import Plan
from navarch_plan.planner import PlanOptions
from navarch_plan.providers.base import InstanceTypeLister
from navarch_plan.render import render_json, render_plan_text, render_state_text
from navarch_plan.render.dot import render_plan_dot
from navarch_plan.render.drift import (
    drift_document,
    drift_gaps,
    render_drift_markdown_report,
    render_drift_text,
)
from navarch_plan.render.markdown import render_plan_markdown
from navarch_plan.render.offers import render_offers_text
from navarch_plan.state.backends import state_location
from navarch_plan.state.stores.local import write_json_atomically
from navarch_plan.words import plural

__all__ = ["cmd_validate", "cmd_plan", "cmd_graph", "cmd_drift", "cmd_show", "cmd_output",
           "cmd_instance_types"]


def cmd_validate(args: argparse.Namespace, io: IO) -> int:
    """Offline unless --live: the schema, references and shipped catalogs need neither
    credentials nor network (a PR lint job). Every error found is reported."""
    warnings: list[ConfigError] = []
    live_command = suggested(args, "validate", "--live")  # what a catalog gap suggests
    try:
        config = config_for(args, io)
        errors, warnings = catalog_problems(config, _catalogs(args, config), args.live,
                                            live_command)
        errors += key_file_problems(config)
        warnings = config_warnings(config) + warnings
        raise_all(errors)
    except NavarchError as exc:
        found = list(getattr(exc, "errors", [exc]))
        if isinstance(exc, PartialConfigErrors):  # the part that loaded is checked too
            io.hide(exc.partial.secrets(os.environ))
            found, warnings = partial_problems(exc, live_command)
        if args.format == "json":  # `terraform validate -json`'s shape
            io.out(render_json(_validation(found, warnings)))
        else:
            for line in [f"Warning: {w}" for w in warnings] + [f"Error: {e}" for e in found]:
                io.err(line)
        return 1
    if args.format == "json":
        io.out(render_json(_validation([], warnings)))
        return 0
    for warning in warnings:
        io.err(f"Warning: {warning}")
    pools = sum(1 for g in config.groups.values() if g.kind == "pool")
    io.out(f"The configuration is valid: {plural(len(config.desired), 'node')} "
           f"({plural(pools, 'pool')}, {plural(len(config.groups) - pools, 'named node')}) "
           f"on {plural(len(config.providers), 'provider')}; state at "
           f"{state_location(config.state)}"
           f"{'' if args.live else ' (offline: --live also asks the clouds)'}.")
    return 0


def _catalogs(args: argparse.Namespace, config: Config) -> dict[str, set[str]]:
    """The shipped catalogs; with --live, the clouds' own lists in their place. The
    fake cloud's list is the shipped one, and building it would open its file."""
    catalogs = shipped_catalogs(config)
    if args.live:
        live = replace(config, providers={n: p for n, p in config.providers.items()
                                          if p.type != "fake"})
        with Engine(live) as engine:  # its clients are closed when the lists are read
            catalogs.update(live_catalogs(engine.providers))
    return catalogs


def _validation(errors: list[NavarchError], warnings: list[ConfigError]) -> dict[str, Any]:
    diagnostics = [_diagnostic("error", e) for e in errors]
    diagnostics += [_diagnostic("warning", w) for w in warnings]
    return {"format_version": "1.0", "valid": not errors,
            "error_count": len(errors), "warning_count": len(warnings),
            "diagnostics": diagnostics}


def _diagnostic(severity: str, error: NavarchError) -> dict[str, Any]:
    diagnostic: dict[str, Any] = {"severity": severity, "summary": str(error)}
    if isinstance(error, ConfigError):
        diagnostic.update(detail=error.message, path=error.path, range={
            "filename": error.file, "start": {"line": error.line, "column": error.column}})
    return diagnostic


def cmd_plan(args: argparse.Namespace, io: IO) -> int:
    engine = engine_for(args, io)
    warn_config(engine.config, io)

    def render(plan: Plan) -> None:
        document = plan.to_json()
        if args.format == "json":
            io.out(render_json(document))
        elif args.format == "markdown":
            io.out(render_plan_markdown(document))
        else:
            io.show(render_plan_text(document, shown(args, engine)))

    with engine.locked("plan"):
        if args.out:
            engine.keep_identity()
        plan = make_plan(engine, plan_options(args), render)
    if args.out:
        write_json_atomically(args.out, plan.to_json())  # 0600: plans are private
    render(plan)
    if args.format == "text":
        if args.out:
            io.out(f"Saved the plan to {args.out}. To perform exactly these actions, run: "
                   f"{suggested(args, 'apply', args.out)}")
        elif plan.has_changes:
            io.out("Note: you didn't use --out, so navarch can't guarantee to take exactly "
                   f"these actions if you run `{suggested(args, 'apply')}` now.")
    if args.refresh_only:  # nothing is proposed: a drift check, exiting as `drift` does
        return _drift_exit(drift_document(plan.to_json()), io,
                           found=2 if args.detailed_exitcode else 0)
    return 2 if args.detailed_exitcode and plan.has_changes else 0


def _drift_exit(report: dict[str, Any], io: IO, found: int = 2) -> int:
    """`found` when drift was found; 1, said on stderr, when none was but a listing
    could not read some place (drift cannot be ruled out: never a clean 0); else 0."""
    if not report["clean"]:
        return found
    if not report["complete"]:
        io.err(f"Error: drift cannot be ruled out: {drift_gaps(report)} (exit 1, not 0)")
        return 1
    return 0


def cmd_graph(args: argparse.Namespace, io: IO) -> int:
    """The apply DAG of a saved plan, or of the plan made now (as `plan` makes it)."""
    refuse_planning_options(args)
    if args.planfile:
        document = read_plan(args.planfile).to_json()
    else:
        engine = engine_for(args, io)
        warn_config(engine.config, io)
        with engine.locked("plan"):
            document = make_plan(engine, plan_options(args), lambda plan: None).to_json()
    io.out(render_plan_dot(document))
    return 0


def cmd_drift(args: argparse.Namespace, io: IO) -> int:
    engine = engine_for(args, io)
    updated = None
    with engine.locked("drift", read_only=not args.update_state):
        plan = engine.plan(PlanOptions(refresh_only=True))
        if args.update_state:
            updated = engine.record_drift(plan)
    report = drift_document(plan.to_json(), updated)
    renderers: dict[str, Callable[[dict[str, Any]], str]] = {
        "json": render_json, "markdown": render_drift_markdown_report,
        "text": partial(render_drift_text, plan_command=suggested(args, "plan"))}
    (io.show if args.format == "text" else io.out)(renderers[args.format](report))
    return _drift_exit(report, io)


def cmd_show(args: argparse.Namespace, io: IO) -> int:
    if args.planfile:
        document = read_plan(args.planfile).to_json()
        if args.format == "json":
            io.out(render_json(document))
        else:
            io.show(render_plan_text(document))
        return 0
    engine = engine_for(args, io)
    if not engine.store.exists():
        # As `terraform show` with no state: said, exit 0; no lineage is made up.
        io.out(render_json({"nodes": {}}) if args.format == "json" else
               f"No state yet: {engine.store.path} does not exist "
               f"({suggested(args, 'apply')} creates it).")
        return 0
    document = engine.store.load().to_json()
    document.pop("fingerprint_key")  # a secret: it keys what plans publish
    io.out(render_json(document) if args.format == "json" else render_state_text(document))
    return 0


def cmd_output(args: argparse.Namespace, io: IO) -> int:
    """Addresses, ids and IPs from state (no cloud call, no lock): for scripts."""
    engine = engine_for(args, io)
    nodes = engine.store.load().nodes if engine.store.exists() else {}
    wanted = sorted(a for a in nodes if args.address is None or a == args.address
                    or a.startswith(f"{args.address}["))
    if args.address is not None and not wanted:
        raise UsageError(f"{args.address} is not in state (see "
                         f"{suggested(args, 'state list')})")
    rows = {a: {"id": nodes[a].id, "provider": nodes[a].provider,
                "region": nodes[a].region, "ip_address": nodes[a].ip_address,
                "status": nodes[a].status} for a in wanted}
    if args.raw:
        if len(rows) != 1:
            raise UsageError("--raw needs the address of one node")
        io.out(next(iter(rows.values()))["ip_address"] or "")
    elif args.format == "json":
        io.out(json.dumps(rows, indent=2, sort_keys=True))
    elif rows:  # one tab-separated line per node; nothing at all for none
        io.out("\n".join(f"{a}\t{r['id']}\t{r['ip_address'] or '-'}"
                         for a, r in rows.items()))
    return 0


def cmd_instance_types(args: argparse.Namespace, io: IO) -> int:
    engine = engine_for(args, io, all_spot_prices=True)
    unknown = sorted(set(args.provider) - set(engine.config.providers))
    if unknown:
        raise UsageError(f"--provider {unknown[0]}: no such provider in {args.config}")
    wanted = set(args.provider) or set(engine.config.providers)
    offers = {name: p.list_instance_types() for name, p in engine.providers.items()
              if name in wanted and isinstance(p, InstanceTypeLister)}
    rows = select_offers(engine.config, offers, args.gpu, args.pool)
    io.out(render_json(rows) if args.format == "json" else render_offers_text(rows))
    return 0

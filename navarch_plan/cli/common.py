"""What the commands share: the IO the CLI hands them, and loading the config, the
engine, a saved plan and the plan options from the parsed command line."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from navarch_plan.apply.hooks import Hooks
from navarch_plan.cli.validate import config_warnings
from navarch_plan.config import Config
from navarch_plan.engine import Engine, load_config
from navarch_plan.errors import PlanError, RefusedPlanError, UsageError
from navarch_plan.plan import Action, Plan, plan_from_json
from navarch_plan.planner import PlanOptions
from navarch_plan.state.backends import state_from_url
from navarch_plan.state.model import NodeRecord

__all__ = ["IO", "engine_for", "config_for", "plan_options", "warn_config",
           "read_plan", "shown", "make_plan", "refuse_planning_options"]

# The options that shape a plan, by their attribute on the parsed command line.
_PLANNING_OPTIONS = {"target": "--target", "exclude": "--exclude", "replace": "--replace",
                     "destroy": "--destroy", "refresh_only": "--refresh-only"}


@dataclass(frozen=True)
class IO:
    out: Callable[[str], None]
    err: Callable[[str], None]
    # Asks the question; its second argument is the flag that skips asking.
    ask: Callable[[str, str], bool]
    # A rendered plan or drift report: coloured on a terminal, else exactly as given.
    show: Callable[[str], None]
    # The hooks reporting an apply of these actions (as JSON events when the flag is set);
    # the callable gives an address's record in state once its action is done.
    progress: Callable[[bool, Sequence[Action], Callable[[str], NodeRecord | None]], Hooks]
    # Values no output may show (the config's secrets), once a config is loaded.
    hide: Callable[[Iterable[str]], None] = lambda values: None
    # The hooks telling how reading the clouds goes (before a plan), for text output.
    reading: Callable[[], Hooks] = Hooks
    # Every engine this command made: main() closes them when the command ends.
    engines: list[Engine] = field(default_factory=list)


def engine_for(args: argparse.Namespace, io: IO, hooks: Hooks | None = None,
               all_spot_prices: bool = False) -> Engine:
    """The engine; unless given other hooks, it tells `io.reading` how reading the
    clouds goes when the output is text (JSON and markdown stay exactly that)."""
    if hooks is None and getattr(args, "format", "text") == "text":
        hooks = io.reading()
    engine = Engine(config_for(args, io), hooks=hooks,
                    lock_timeout=getattr(args, "lock_timeout", 0.0), notice=io.err,
                    all_spot_prices=all_spot_prices)
    io.engines.append(engine)
    return engine


def config_for(args: argparse.Namespace, io: IO | None = None) -> Config:
    """The config, with `--state URL` (when given) in place of its state section; its
    secrets are kept out of every output from here on."""
    config = load_config(args.config)
    if io is not None:
        io.hide(config.secrets(os.environ))
    url = getattr(args, "state", None)
    return replace(config, state=state_from_url(url, config.state)) if url else config


def plan_options(args: argparse.Namespace, destroy: bool = False) -> PlanOptions:
    return PlanOptions(destroy=destroy or getattr(args, "destroy", False),
                       refresh_only=getattr(args, "refresh_only", False),
                       replace=tuple(getattr(args, "replace", ())),
                       target=tuple(getattr(args, "target", ())),
                       exclude=tuple(getattr(args, "exclude", ())))


def refuse_planning_options(args: argparse.Namespace) -> None:
    """A saved plan is applied (or drawn) exactly as it was made: an option that would
    shape another plan is refused, not silently ignored (Terraform refuses them too)."""
    given = [flag for name, flag in _PLANNING_OPTIONS.items() if getattr(args, name, None)]
    if given and getattr(args, "planfile", None):
        raise UsageError(f"{', '.join(given)} cannot be used with a saved plan "
                         f"({args.planfile}), which is used exactly as it was made; give "
                         f"{'them' if len(given) > 1 else 'it'} to `navarch plan` instead")


def make_plan(engine: Engine, options: PlanOptions,
              show_refused: Callable[[Plan], None]) -> Plan:
    """The plan. One refused for its cost is still shown (by `show_refused`, in the
    output the user asked for) before the error that refuses it."""
    try:
        return engine.plan(options)
    except RefusedPlanError as exc:
        if isinstance(exc.plan, Plan):
            show_refused(exc.plan)
        raise


def warn_config(config: Config, io: IO) -> None:
    """One line on stderr per config warning (cli/validate.py's config_warnings)."""
    for warning in config_warnings(config):
        io.err(f"Warning: {warning}")


def read_plan(path: str) -> Plan:
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


def shown(args: argparse.Namespace, engine: Engine) -> dict[str, str] | None:
    """user_data by address, from the config, when --show-sensitive asks for it."""
    if not getattr(args, "show_sensitive", False):
        return None
    return {a: n.user_data for a, n in engine.config.desired.items() if n.user_data}

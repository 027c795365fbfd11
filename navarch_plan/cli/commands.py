"""What each `navarch` command does, by family: commands_plan (validate, plan, graph,
drift, show, output, instance-types), commands_apply (apply, destroy), commands_state
(state surgery, force-unlock), commands_init (init). Output goes through the IO the CLI
passes in; the return value is the exit code."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from navarch_plan.cli.commands_apply import cmd_apply, cmd_destroy
from navarch_plan.cli.commands_init import cmd_init
from navarch_plan.cli.commands_plan import (
    cmd_drift,
    cmd_graph,
    cmd_instance_types,
    cmd_output,
    cmd_plan,
    cmd_show,
    cmd_validate,
)
from navarch_plan.cli.commands_state import cmd_force_unlock, cmd_state
from navarch_plan.cli.common import IO

__all__ = ["IO", "dispatch"]


def cmd_completion(args: argparse.Namespace, io: IO) -> int:
    from navarch_plan.cli.completion import completion_script
    from navarch_plan.cli.parser import build_parser

    io.out(completion_script(build_parser(), args.shell))
    return 0


def dispatch(args: argparse.Namespace, io: IO) -> int:
    handlers: dict[str, Callable[[argparse.Namespace, IO], int]] = {
        "validate": cmd_validate, "plan": cmd_plan, "apply": cmd_apply,
        "destroy": cmd_destroy, "show": cmd_show, "state": cmd_state,
        "force-unlock": cmd_force_unlock, "instance-types": cmd_instance_types,
        "drift": cmd_drift, "output": cmd_output, "completion": cmd_completion,
        "init": cmd_init, "graph": cmd_graph,
    }
    return handlers[args.command](args, io)

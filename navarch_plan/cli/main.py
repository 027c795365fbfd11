"""The `navarch` command: the only module that prints or exits.

Exit codes: 0 success (with --detailed-exitcode: no changes); 1 error; 2 changes
present (with --detailed-exitcode) or drift found (drift). Errors are one line on
stderr; --debug adds the traceback.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from navarch_plan import __version__
from navarch_plan.cli.redact import RedactingStream, Redactor
from navarch_plan.errors import NavarchError, PlanError

if TYPE_CHECKING:
    from rich.console import Console

    from navarch_plan.apply.hooks import Hooks
    from navarch_plan.plan import Action

__all__ = ["main", "build_parser"]


def _duration(text: str) -> float:
    """`30s`, `2m`, `1h` or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        unit = units[text[-1]] if text and text[-1] in units else 0
        seconds = float(text[:-1]) * unit if unit else float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:  # also refuses NaN, which compares false with all
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30s, 2m)")
    return seconds


def _scoping(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", action="append", default=[], metavar="ADDR",
                   help="only this node or pool, and what it depends on (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="ADDR",
                   help="leave out this node or pool, and what depends on it (repeatable)")
    p.add_argument("--replace", action="append", default=[], metavar="ADDR",
                   help="replace this node even if it is unchanged (repeatable)")


def _color(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-color", action="store_true",
                   help="plain output even on a terminal: no colour, no live view "
                   "(also: NO_COLOR=1, TERM=dumb)")


def _common(p: argparse.ArgumentParser, lock: bool = True, state: bool = True) -> None:
    p.add_argument("-c", "--config", default="navarch.yaml", help="config file "
                   "(default: navarch.yaml)")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    if state:
        p.add_argument("--state", metavar="URL", help="use this state instead of the "
                       "config's: s3://BUCKET/KEY or a local file path")
    if lock:
        p.add_argument("--lock-timeout", type=_duration, default=0.0, metavar="DUR",
                       help="wait this long for the state lock (e.g. 30s; default: fail at once)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="navarch", description="Declarative GPU fleets: "
                                     "plan and apply pools of GPU nodes across clouds.")
    parser.add_argument("--version", action="version", version=f"navarch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check the config against the schema and catalogs")
    _common(p, lock=False)

    p = sub.add_parser("plan", help="show what apply would change")
    _common(p)
    p.add_argument("--out", metavar="FILE", help="save the plan for `navarch apply FILE`")
    p.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    p.add_argument("--show-sensitive", action="store_true",
                   help="print user_data in the plan (it may hold secrets)")
    p.add_argument("--detailed-exitcode", action="store_true",
                   help="exit 0 no changes, 1 error, 2 changes present")
    p.add_argument("--refresh-only", action="store_true", help="report drift; propose nothing")
    p.add_argument("--destroy", action="store_true", help="plan removing everything owned")
    _scoping(p)
    _color(p)

    for name, text in (("apply", "plan, confirm, and apply (or apply a saved plan)"),
                       ("destroy", "terminate every instance this workspace owns")):
        p = sub.add_parser(name, help=text)
        _common(p)
        if name == "apply":
            p.add_argument("planfile", nargs="?", help="a plan saved with plan --out")
            _scoping(p)
        p.add_argument("--auto-approve", action="store_true", help="do not ask")
        p.add_argument("--show-sensitive", action="store_true",
                       help="print user_data in the plan (it may hold secrets)")
        p.add_argument("--parallelism", type=int, default=10, metavar="N",
                       help="cloud calls in flight at once (default 10)")
        p.add_argument("--json", action="store_true", help="one JSON event per line")
        _color(p)

    p = sub.add_parser("drift", help="the cron job: report drift; exit 0 clean, 2 drift, 1 error")
    _common(p)
    p.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    p.add_argument("--update-state", action="store_true",
                   help="record what was found in state (never provisions or terminates)")
    _color(p)

    p = sub.add_parser("show", help="render a saved plan, or the current state")
    _common(p, lock=False)
    p.add_argument("planfile", nargs="?")
    p.add_argument("--json", action="store_true")
    _color(p)

    p = sub.add_parser("state", help="state surgery: list, show, rm, import, adopt, migrate")
    state_sub = p.add_subparsers(dest="state_command", required=True, metavar="SUBCOMMAND")
    for name, text in (("list", "addresses in state"), ("show", "one node's record"),
                       ("rm", "forget a node (the instance is not touched)")):
        sp = state_sub.add_parser(name, help=text)
        _common(sp, lock=name == "rm")
        if name != "list":
            sp.add_argument("address")
        sp.add_argument("--json", action="store_true") if name == "list" else None
    sp = state_sub.add_parser("import", help="record an existing instance at an address "
                              "(re-labelled as this state's)")
    _common(sp)
    sp.add_argument("address", help="a desired address not in state, e.g. pool.w[0]")
    sp.add_argument("instance_id")
    sp.add_argument("--provider", metavar="NAME", help="where to look (default: every "
                    "configured provider)")
    sp = state_sub.add_parser("adopt", help="take over every instance of this workspace "
                              "that another state (lineage) made")
    _common(sp)
    sp.add_argument("--lineage", required=True, metavar="LINEAGE",
                    help="the other state's lineage, as the plan's refusal names it")
    sp = state_sub.add_parser("migrate", help="copy the state, lineage and serial kept, to "
                              "another backend (refuses to overwrite another lineage)")
    _common(sp)
    sp.add_argument("--to", required=True, metavar="URL",
                    help="s3://BUCKET/KEY or a local file path")

    p = sub.add_parser("instance-types", help="the offers of every configured provider")
    _common(p, lock=False, state=False)
    p.add_argument("--provider", action="append", default=[], metavar="NAME",
                   help="only this provider (repeatable)")
    p.add_argument("--gpu", metavar="SPEC", help="only offers with these GPUs, e.g. H100:8")
    p.add_argument("--pool", metavar="NAME", help="mark what this pool would try first")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("force-unlock", help="release a stuck state lock")
    _common(p, lock=False)
    p.add_argument("lock_id")
    p.add_argument("--force", action="store_true", help="do not ask; release a lock even "
                   "while its holder runs on this machine (that run then stops)")
    return parser


_REDACT = Redactor()  # filled with the secrets of the config a command loads


def _out(text: str) -> None:
    text = _REDACT(text)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(_REDACT(text).rstrip("\n") + "\n")
    sys.stderr.flush()


def _ask(question: str) -> bool:
    _out(question)
    sys.stdout.write("  Enter a value: ")
    sys.stdout.flush()
    answer = sys.stdin.readline()
    if not answer:
        raise PlanError("no answer on standard input: apply asks for approval; run it from "
                        "a terminal, or pass --auto-approve")
    return answer.strip() == "yes"


def _styled(args: argparse.Namespace) -> bool:
    """Colour and the live apply view, or plain text: the one place that decides.
    Only a terminal on stdout gets them, unless the user opted out (--no-color, or any
    non-empty NO_COLOR as no-color.org asks) or the terminal cannot redraw (TERM=dumb)."""
    if getattr(args, "no_color", False) or os.environ.get("NO_COLOR"):
        return False
    return os.environ.get("TERM") != "dumb" and sys.stdout.isatty()


@functools.cache
def _console() -> Console:
    # Imported here, not at the top: plain and JSON runs, and --version, never load rich.
    from rich.console import Console

    stream: Any = RedactingStream(sys.stdout, _REDACT)  # a text stream, duck-typed
    return Console(highlight=False, file=stream)


def _show_styled(text: str) -> None:
    from navarch_plan.render.color import colorize

    _console().print(colorize(text), soft_wrap=True, end="" if text.endswith("\n") else "\n")


def _progress(as_json: bool, actions: Sequence[Action], styled: bool) -> Hooks:
    """How apply reports progress: JSON events (--json), the live view on a terminal
    that allows colour, else plain timestamped lines."""
    from navarch_plan.cli.reporting import JsonHooks, LineHooks

    if as_json:
        return JsonHooks(_out)
    if styled:
        from navarch_plan.cli.live import LiveHooks

        return LiveHooks(actions, _console())
    return LineHooks(_out)


class Terminated(BaseException):
    """SIGTERM outside an apply: unwinds like Ctrl-C so locks are released."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    from navarch_plan.cli import commands

    styled = _styled(args)
    io = commands.IO(out=_out, err=_err, ask=_ask, show=_show_styled if styled else _out,
                     progress=functools.partial(_progress, styled=styled), hide=_REDACT.add)
    try:
        return commands.dispatch(args, io)
    except NavarchError as exc:
        if args.debug:
            _err(traceback.format_exc())
        _err(f"Error: {exc}")
        return 1
    except KeyboardInterrupt:
        _err("Interrupted.")
        return 130
    except Terminated:
        _err("Terminated.")
        return 143
    except Exception as exc:  # a bug: still one line unless --debug
        if args.debug:
            _err(traceback.format_exc())
        _err(f"Error: internal error: {type(exc).__name__}: {exc} (run with --debug for the "
             "traceback, and please report it)")
        return 1


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()

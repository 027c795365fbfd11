"""The `navarch` command line: its options and usage errors (cli/command_line.py reads
what is typed: Terraform's spellings, flag values, unknown options).

- A usage error (unknown option or command, bad value, missing argument) exits 1 with
  one line naming what was wrong and which `--help` to read: exit 2 means only "changes
  present" / "drift found", so a typo must never look like drift to a cron job.
- Terraform's single-dash long options (`-auto-approve`, `-out=FILE`, `-json`) mean the
  same as the double-dash ones. Only names of real long options are rewritten, and they
  are all two letters or more, so `-c FILE` (and `-cFILE`) stays the short option.
- The global options (`-c/--config`, `--state`, `--no-color`, `--debug`) go before or
  after the command; after it wins. `NAVARCH_CONFIG` is the default config path.
- Wherever JSON output is offered, `--json`, `-json` and `--format json` all ask for it.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
from typing import NoReturn

from navarch_plan import __version__

__all__ = ["CONFIG_ENV", "DEFAULT_CONFIG", "UsageExit", "build_parser"]

DEFAULT_CONFIG = "navarch.yaml"
CONFIG_ENV = "NAVARCH_CONFIG"
_INVALID_COMMAND = re.compile(r"argument (?:SUB)?COMMAND: invalid choice: '(.*?)'")


class UsageExit(Exception):
    """A command line navarch cannot take; `prog` is the command whose --help to read."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.message, self.prog = message, prog


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; navarch's 2 means changes or drift."""

    def error(self, message: str) -> NoReturn:
        wrong = _INVALID_COMMAND.match(message)
        subs = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]
        if wrong and subs:
            close = difflib.get_close_matches(wrong.group(1), list(subs[0].choices), n=1)
            message = (f"unknown command {wrong.group(1)!r}" +
                       (f" (did you mean {close[0]}?)" if close else
                        f" (commands: {', '.join(subs[0].choices)})"))
        raise UsageExit(message, self.prog)


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


def _globals(p: argparse.ArgumentParser, top: bool = False) -> None:
    """The options every command takes, on the top parser and on each command. A
    command's copy has no default (SUPPRESS), so it only overrides what was given."""
    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    config = os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
    p.add_argument("-c", "--config", default=default(config), metavar="FILE",
                   help=f"config file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG})")
    p.add_argument("--state", default=default(None), metavar="URL", help="use this state "
                   "instead of the config's: s3://BUCKET/KEY or a local file path")
    p.add_argument("--no-color", action="store_true", default=default(False),
                   help="plain output even on a terminal: no colour, no live view "
                   "(also: NO_COLOR=1, TERM=dumb)")
    p.add_argument("--debug", action="store_true", default=default(False),
                   help="show tracebacks on errors")


def _lock(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lock-timeout", type=_duration, default=0.0, metavar="DUR",
                   help="wait this long for the state lock (e.g. 30s; default: fail at once)")


def _formats(p: argparse.ArgumentParser, *more: str, only_json: bool = False) -> None:
    """`--format text|json|...`, and `--json` (Terraform's `-json`) for `--format json`.
    A command whose output is JSON anyway (`only_json`) still takes both, so that every
    command that gives JSON is asked for it the same way."""
    choices = ("json",) if only_json else ("text", "json", *more)
    p.add_argument("--format", choices=choices, default=choices[0])
    p.add_argument("--json", dest="format", action="store_const", const="json",
                   help="JSON output (same as --format json)")


def _scoping(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", action="append", default=[], metavar="ADDR",
                   help="only this node or pool, and what it depends on (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="ADDR",
                   help="leave out this node or pool, and what depends on it (repeatable)")
    p.add_argument("--replace", action="append", default=[], metavar="ADDR",
                   help="replace this node even if it is unchanged (repeatable)")


def _sensitive(p: argparse.ArgumentParser) -> None:
    p.add_argument("--show-sensitive", action="store_true",
                   help="print user_data in the plan (it may hold secrets)")


def _command(sub: argparse._SubParsersAction, name: str, text: str,
             lock: bool = True) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
    _globals(p)
    if lock:
        _lock(p)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="navarch", description="Declarative GPU fleets: plan and apply "
                     "pools of GPU nodes across clouds.")
    parser.add_argument("--version", action="version", version=f"navarch {__version__}")
    _globals(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _command(sub, "init", "write a starter navarch.yaml (on the fake cloud) and a "
             ".gitignore; never overwrites", lock=False)

    p = _command(sub, "validate", "check the config: schema, references and navarch's "
                 "catalogs, offline (no credentials)", lock=False)
    p.add_argument("--live", action="store_true", help="also check the clouds' live catalogs "
                   "(needs credentials and the network)")
    _formats(p)

    p = _command(sub, "plan", "show what apply would change")
    p.add_argument("--out", metavar="FILE", help="save the plan for `navarch apply FILE`")
    _formats(p, "markdown")
    _sensitive(p)
    p.add_argument("--detailed-exitcode", action="store_true",
                   help="exit 0 no changes, 1 error, 2 changes present (with "
                   "--refresh-only: drift found)")
    p.add_argument("--refresh-only", action="store_true", help="report drift; propose nothing")
    p.add_argument("--destroy", action="store_true", help="plan removing everything owned")
    _scoping(p)

    for name, text in (("apply", "plan, confirm, and apply (or apply a saved plan)"),
                       ("destroy", "terminate every instance this workspace owns")):
        p = _command(sub, name, text)
        if name == "apply":
            p.add_argument("planfile", nargs="?", help="a plan saved with plan --out")
            _scoping(p)
        p.add_argument("--auto-approve", action="store_true", help="do not ask")
        _sensitive(p)
        p.add_argument("--parallelism", type=int, default=10, metavar="N",
                       help="cloud calls in flight at once (default 10)")
        _formats(p)

    p = _command(sub, "graph", "the plan's apply order as Graphviz DOT (navarch graph | dot "
                 "-Tsvg > plan.svg)")
    p.add_argument("planfile", nargs="?", help="a plan saved with plan --out (default: "
                   "plan now)")
    p.add_argument("--destroy", action="store_true", help="the graph of destroying everything")
    _scoping(p)

    p = _command(sub, "drift", "the cron job: report drift; exit 0 clean, 2 drift, 1 error")
    _formats(p, "markdown")
    p.add_argument("--update-state", action="store_true",
                   help="record what was found in state (never provisions or terminates)")

    p = _command(sub, "show", "render a saved plan, or the current state", lock=False)
    p.add_argument("planfile", nargs="?")
    _formats(p)

    p = _command(sub, "output", "addresses, ids and IPs from state, for scripts",
                 lock=False)
    p.add_argument("address", nargs="?", help="one node, or a pool's nodes (default: all)")
    p.add_argument("--raw", action="store_true",
                   help="one node's IP address alone (for $(navarch output -raw ADDR))")
    _formats(p)

    _state_commands(sub)

    p = _command(sub, "instance-types", "the offers of every configured provider",
                 lock=False)
    p.add_argument("--provider", action="append", default=[], metavar="NAME",
                   help="only this provider (repeatable)")
    p.add_argument("--gpu", metavar="SPEC", help="only offers with these GPUs, e.g. H100:8")
    p.add_argument("--pool", metavar="NAME", help="mark what this pool would try first")
    _formats(p)

    p = _command(sub, "force-unlock", "release a stuck state lock", lock=False)
    p.add_argument("lock_id")
    p.add_argument("--force", action="store_true", help="do not ask; release a lock even "
                   "while its holder runs on this machine (that run then stops)")

    p = _command(sub, "completion", "print a shell completion script", lock=False)
    p.add_argument("shell", choices=("bash", "zsh", "fish"))
    return parser


def _state_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("state", help="state surgery: list, show, rm, import, adopt, migrate")
    _globals(p)
    state_sub = p.add_subparsers(dest="state_command", required=True, metavar="SUBCOMMAND")
    sp = _command(state_sub, "list", "addresses in state", lock=False)
    _formats(sp)
    sp = _command(state_sub, "show", "one node's record, as JSON", lock=False)
    sp.add_argument("address")
    _formats(sp, only_json=True)
    sp = _command(state_sub, "rm", "forget a node (the instance is not touched)")
    sp.add_argument("address")
    sp = _command(state_sub, "import", "record an existing instance at an address "
                  "(re-labelled as this state's)")
    sp.add_argument("address", help="a desired address not in state, e.g. pool.w[0]")
    sp.add_argument("instance_id")
    sp.add_argument("--provider", metavar="NAME", help="where to look (default: every "
                    "configured provider)")
    sp = _command(state_sub, "adopt", "take over every instance of this workspace that "
                  "another state (lineage) made")
    sp.add_argument("--lineage", required=True, metavar="LINEAGE",
                    help="the other state's lineage, as the plan's refusal names it")
    sp = _command(state_sub, "migrate", "copy the state, lineage and serial kept, to "
                  "another backend (refuses to overwrite another lineage)")
    sp.add_argument("--to", required=True, metavar="URL",
                    help="s3://BUCKET/KEY or a local file path")

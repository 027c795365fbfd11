"""The command line as typed, read and written: Terraform's single-dash spellings,
`--flag=true/false`, which option is unknown (cli/parser.py defines the options), and
the command lines navarch's hints print (`suggested`), with the run's -c and --state.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shlex
from collections.abc import Iterator, Sequence

from navarch_plan.cli.parser import DEFAULT_CONFIG, UsageExit, build_parser

__all__ = ["boolean_values", "command_parser", "parse_command_line", "parsers", "run_flags",
           "suggested", "terraform_spellings", "with_run_flags"]

_SINGLE_DASH_LONG = re.compile(r"-([a-z][a-z0-9-]+)(=.*)?", re.S)
# A command line in an error's words: after a backtick or a colon ("release it with:
# navarch force-unlock ID"), never in prose ("not a navarch plan file").
_COMMAND_IN_TEXT = re.compile(r"(?:(?<=`)|(?<=: ))navarch (state [a-z]+|[a-z][a-z-]*)")


def parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """This parser and every command's, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases once
                yield from parsers(child)


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for p in parsers(parser) for a in p._actions for s in a.option_strings
            if s.startswith("--")}


def terraform_spellings(argv: Sequence[str], long_options: set[str]) -> list[str]:
    """`-name` and `-name=value` as `--name` and `--name=value` where `--name` is one
    of navarch's long options; everything after `--` is left alone."""
    out: list[str] = []
    for i, token in enumerate(argv):
        if token == "--":
            return out + list(argv[i:])
        match = _SINGLE_DASH_LONG.fullmatch(token)
        out.append("-" + token if match and f"--{match.group(1)}" in long_options else token)
    return out


def command_parser(parser: argparse.ArgumentParser,
                   argv: Sequence[str]) -> argparse.ArgumentParser:
    """The innermost command the arguments name (`navarch state rm` for `state rm X`)."""
    current = parser
    for token in argv:
        subs = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if subs and token in subs[0].choices:
            current = subs[0].choices[token]
    return current


def _unknown(extras: Sequence[str], command: argparse.ArgumentParser) -> str:
    before = extras[:extras.index("--")] if "--" in extras else extras
    option = next((e for e in before if e.startswith("-") and e != "-"), None)
    if option is None:
        return f"unexpected argument {next(e for e in extras if e != '--')!r}"
    name = option.split("=", 1)[0]
    known = [s for a in command._actions for s in a.option_strings if s.startswith("--")]
    close = difflib.get_close_matches("--" + name.lstrip("-"), known, n=1)
    return f"unknown option {name}" + (f" (did you mean {close[0]}?)" if close else "")


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    """The long options that take no value in every command that has them."""
    actions = [a for p in parsers(parser) for a in p._actions]
    valued = {s for a in actions if a.nargs != 0 for s in a.option_strings}
    return {s for a in actions if a.nargs == 0 for s in a.option_strings
            if s.startswith("--")} - valued


def boolean_values(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """`--flag=true` as `--flag`, `--flag=false` left out (Terraform's Go flags take
    both); any other value given to a flag is a usage error, not argparse's "ignored
    explicit argument"."""
    flags = _flags(parser)
    out: list[str] = []
    for i, token in enumerate(argv):
        if token == "--":
            return out + list(argv[i:])
        name, equals, value = token.partition("=")
        if not equals or name not in flags:
            out.append(token)
        elif value.lower() in ("true", "1"):
            out.append(name)
        elif value.lower() not in ("false", "0"):
            raise UsageExit(f"option {name} takes no value (got {value!r}); give it alone, "
                            f"or as {name}=true or {name}=false",
                            command_parser(parser, argv).prog)
    return out


def _unknown_option(argv: Sequence[str], command: argparse.ArgumentParser) -> str | None:
    """The first option in `argv` that `command` does not know, said as _unknown says
    it; None when every option is known (`-cFILE` is `-c` with its value)."""
    known = {s for a in command._actions for s in a.option_strings}
    for token in argv:
        if token == "--":
            return None
        name = token.split("=", 1)[0]
        if token.startswith("-") and token != "-" and name not in known \
                and token[:2] not in known:
            return _unknown([token], command)
    return None


def parse_command_line(argv: Sequence[str]) -> argparse.Namespace:
    """The parsed command line; raises UsageExit (and SystemExit for --help/--version)."""
    parser = build_parser()
    argv = boolean_values(terraform_spellings(argv, _long_options(parser)), parser)
    command = command_parser(parser, argv)
    try:
        args, extras = parser.parse_known_args(argv)
    except UsageExit as exc:
        # `navarch -x`: argparse misses the command before it sees the option; the
        # option is what is wrong.
        unknown = _unknown_option(argv, command)
        if unknown and exc.message.startswith("the following arguments are required"):
            raise UsageExit(unknown, command.prog) from None
        raise
    if extras:
        raise UsageExit(_unknown(extras, command), command.prog)
    return args


def run_flags(args: argparse.Namespace) -> list[str]:
    """This run's `-c FILE` and `--state URL`, where they were not the defaults: what a
    command line navarch suggests must carry so that it works as printed."""
    flags = [f"-c {shlex.quote(args.config)}"] if args.config != DEFAULT_CONFIG else []
    state = getattr(args, "state", None)
    return flags + ([f"--state {shlex.quote(state)}"] if state else [])


def with_run_flags(message: str, args: argparse.Namespace) -> str:
    """The command lines an error suggests (`navarch plan`, `navarch force-unlock ID`),
    written where the run's -c and --state are not known (state stores, the planner),
    with them put in as `suggested` puts them; an option the line has is kept as is."""
    flags = [f for f in run_flags(args) if f"{f.split()[0]} " not in message]
    subs = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    commands = set(subs[0].choices)

    def put(found: re.Match[str]) -> str:
        command = found.group(1)
        if command.split()[0] not in commands:
            return found.group(0)
        return " ".join(["navarch", command, *flags])

    return _COMMAND_IN_TEXT.sub(put, message) if flags else message


def suggested(args: argparse.Namespace, command: str, *operands: str) -> str:
    """`navarch COMMAND [this run's -c/--state] OPERANDS...`, as a hint prints it
    (`suggested(args, "apply", "t.plan")` is `navarch apply -c qs2.yaml t.plan`). Every
    command line navarch's output suggests is made here."""
    return " ".join(["navarch", command, *run_flags(args),
                     *(shlex.quote(o) for o in operands)])

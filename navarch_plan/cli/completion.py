"""`navarch completion bash|zsh|fish`: completion scripts generated from the parser, so
they always offer exactly the commands and options navarch has.

Install: `navarch completion bash > ~/.local/share/bash-completion/completions/navarch`;
zsh: `source <(navarch completion zsh)` in ~/.zshrc; fish:
`navarch completion fish > ~/.config/fish/completions/navarch.fish`.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator

__all__ = ["completion_script"]

# Options whose value is a file or path: completed with file names.
_FILE_OPTIONS = ("-c", "--config", "--out", "--state", "--to")


def _commands(parser: argparse.ArgumentParser,
              path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                            argparse.ArgumentParser]]:
    """Every command path (`()`, `("plan",)`, `("state", "rm")`) and its parser."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*path, name))


def _words(parser: argparse.ArgumentParser) -> list[str]:
    """What may follow at this level: its subcommands, then its options."""
    words: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            words += list(action.choices)
        words += [s for s in action.option_strings if s.startswith("--") or s == "-c"]
    return words


def _bash(parser: argparse.ArgumentParser) -> str:
    steps, levels = [], []
    for path, command in _commands(parser):
        key = " ".join(path)
        label = shlex.quote(key) if key else "''"
        levels.append(f'        {label}) words={shlex.quote(" ".join(_words(command)))} ;;')
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name in action.choices:
                    steps.append(f'            {shlex.quote(key + "/" + name)}) '
                                 f'path={shlex.quote(" ".join((*path, name)))} ;;')
    files = "|".join(_FILE_OPTIONS)
    return "\n".join([
        "# bash completion for navarch (navarch completion bash)",
        "_navarch() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    local path="" words="" i',
        '    case "$prev" in',
        f'        {files}) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;',
        "    esac",
        '    for ((i = 1; i < COMP_CWORD; i++)); do',
        '        case "$path/${COMP_WORDS[i]}" in',
        *steps,
        "        esac",
        "    done",
        '    case "$path" in',
        *levels,
        "    esac",
        '    COMPREPLY=($(compgen -W "$words" -- "$cur"))',
        "}",
        "complete -o default -F _navarch navarch",
        "",
    ])


def _zsh(parser: argparse.ArgumentParser) -> str:
    return "\n".join(["#compdef navarch",
                      "# zsh completion for navarch (navarch completion zsh): the bash one,",
                      "# through zsh's bashcompinit.",
                      "autoload -U +X bashcompinit && bashcompinit",
                      _bash(parser)])


def _fish(parser: argparse.ArgumentParser) -> str:
    lines = ["# fish completion for navarch (navarch completion fish)",
             "complete -c navarch -f"]
    for path, command in _commands(parser):
        if len(path) > 1:
            continue  # fish's helpers see one level of subcommands; state's are below
        condition = ("__fish_use_subcommand" if not path
                     else f"__fish_seen_subcommand_from {path[0]}")
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    lines.append(f"complete -c navarch -n {shlex.quote(condition)} -a "
                                 f"{shlex.quote(choice.dest)} -d {shlex.quote(choice.help or '')}")
            for option in action.option_strings:
                if option.startswith("--"):
                    needs = " -r -F" if option in _FILE_OPTIONS else ""
                    lines.append(f"complete -c navarch -n {shlex.quote(condition)} "
                                 f"-l {option[2:]}{needs}")
    return "\n".join(lines) + "\n"


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    return {"bash": _bash, "zsh": _zsh, "fish": _fish}[shell](parser)

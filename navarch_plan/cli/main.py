"""The `navarch` command: the only module that prints or exits.

Exit codes: 0 success (with --detailed-exitcode: no changes); 1 error, usage errors
included; 2 only for changes present (with --detailed-exitcode) or drift found (drift,
plan --refresh-only --detailed-exitcode); 130/143 interrupted (SIGINT/SIGTERM); 141 when
stdout's reader went away, as git and Terraform (over 0 and 2; not over an error).
Errors are one line on stderr; --debug adds the traceback. The parser is cli/parser.py
(options) and cli/command_line.py (reading them).
"""

from __future__ import annotations

import argparse
import functools
import os
import select
import signal
import stat
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from navarch_plan.cli.command_line import parse_command_line, with_run_flags
from navarch_plan.cli.parser import UsageExit, build_parser
from navarch_plan.cli.redact import RedactingStream, Redactor
from navarch_plan.errors import NavarchError, PlanError

if TYPE_CHECKING:
    from rich.console import Console

    from navarch_plan.apply.hooks import Hooks
    from navarch_plan.plan import Action
    from navarch_plan.state.model import NodeRecord

__all__ = ["main", "build_parser"]


_REDACT = Redactor()  # filled with the secrets of the config a command loads
# What git and Terraform exit with when their reader goes away (128 + SIGPIPE).
EXIT_BROKEN_PIPE = 141


class _Stdout:
    """sys.stdout (whatever it is now), except that a reader that went away
    (`navarch plan | head -1`) ends the output quietly: stdout then goes to
    /dev/null, as the Python docs advise, and the command runs to its end (an apply
    records every action; nothing is lost to a closed pipe); main exits 141."""

    pipe_closed = False

    def write(self, text: str) -> int:
        if not self.pipe_closed:
            try:
                self._write_all(text)
            except BrokenPipeError:
                self._closed()
        return len(text)

    @staticmethod
    def _write_all(text: str) -> None:
        """Every byte of `text`, or BrokenPipeError. Python's buffered stdout drops the
        rest of a write its pipe took only part of (the reader left mid-write) without
        an error, so a large output would end as if all was read (exit 0): the bytes
        are written here until all are taken, and the next write meets the closed pipe."""
        stream = sys.stdout
        binary = getattr(stream, "buffer", None)
        if binary is None:  # not a file (tests' StringIO): no pipe to lose
            stream.write(text)
            return
        stream.flush()  # what was written through the text layer goes first
        data = memoryview(text.encode(stream.encoding or "utf-8", stream.errors or "strict"))
        while data:
            taken = binary.write(data)
            if not taken:  # a blocking pipe takes at least a byte, or fails
                raise OSError("standard output took no bytes")
            data = data[taken:]
        binary.flush()

    def flush(self) -> None:
        if not self.pipe_closed:
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                self._closed()

    def _closed(self) -> None:
        type(self).pipe_closed = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # the flush at exit must not fail again
        except (OSError, ValueError, AttributeError):
            pass  # not a real file (tests): nothing will flush it at exit

    def __getattr__(self, name: str) -> Any:
        return getattr(sys.stdout, name)


_STDOUT = _Stdout()


def _out(text: str) -> None:
    text = _REDACT(text)
    _STDOUT.write(text if text.endswith("\n") else text + "\n")
    _STDOUT.flush()


def _err(text: str) -> None:
    sys.stderr.write(_REDACT(text).rstrip("\n") + "\n")
    sys.stderr.flush()


def _ask(question: str, skip: str = "--auto-approve") -> bool:
    """Whether the user answered `yes`; `skip` is the flag that makes the command not
    ask, named when standard input has no answer."""
    _out(question)
    _STDOUT.write("  Enter a value: ")
    _STDOUT.flush()
    answer = sys.stdin.readline()
    if not answer:
        raise PlanError("no answer on standard input: navarch asks for approval; run it from "
                        f"a terminal, or pass {skip}")
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

    stream: Any = RedactingStream(_STDOUT, _REDACT)  # type: ignore[arg-type]
    return Console(highlight=False, file=stream)


def _show_styled(text: str) -> None:
    from navarch_plan.render.color import colorize

    _console().print(colorize(text), soft_wrap=True, end="" if text.endswith("\n") else "\n")


def _progress(as_json: bool, actions: Sequence[Action],
              recorded: Callable[[str], NodeRecord | None], styled: bool) -> Hooks:
    """How apply reports progress: JSON events (--json), the live view on a terminal
    that allows colour, else plain timestamped lines."""
    from navarch_plan.cli.reporting import JsonHooks, LineHooks

    if as_json:
        return JsonHooks(_out)
    if styled:
        from navarch_plan.cli.live import LiveHooks

        return LiveHooks(actions, _console(), recorded=recorded)
    return LineHooks(_out)


def _reading(styled: bool) -> Hooks:
    """On a terminal that allows colour: which clouds are read, as they answer; else
    nothing (plain output stays as it was: what scripts and logs compare)."""
    if not styled:
        from navarch_plan.apply.hooks import Hooks

        return Hooks()
    from navarch_plan.cli.live import ReadingView

    return ReadingView(_console())


def _reader_gone() -> bool:
    """Whether stdout is a pipe nobody reads any more (Linux and the BSDs report POLLERR
    on its write end): a reader that left while the last output sat in the pipe's
    buffer is told as one that left mid-write. One that leaves after navarch ends
    cannot be seen."""
    try:
        fd = sys.stdout.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        poller = select.poll()
        poller.register(fd, 0)  # POLLERR and POLLHUP are always reported
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # not a real file (tests), no poll
        return False


class Terminated(BaseException):
    """SIGTERM outside an apply: unwinds like Ctrl-C so locks are released."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    _Stdout.pipe_closed = False
    try:
        args = parse_command_line(sys.argv[1:] if argv is None else argv)
    except UsageExit as exc:
        _err(f"Error: {exc.message}; see {exc.prog} --help")
        return 1
    except SystemExit as exc:  # --help and --version: printed, exit 0
        code = exc.code if isinstance(exc.code, int) else 0
    else:
        code = _run(args)
    if not _Stdout.pipe_closed and _reader_gone():
        _Stdout.pipe_closed = True  # left before the end: output may be lost all the same
    # A closed pipe wins over the codes of success, 2 ("changes present", "drift
    # found") included: the output that code is about was not all read. An error (1,
    # 130, 143) keeps its own code.
    return EXIT_BROKEN_PIPE if _Stdout.pipe_closed and code in (0, 2) else code


def _run(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    from navarch_plan.cli import commands

    styled = _styled(args)
    io = commands.IO(out=_out, err=_err, ask=_ask, show=_show_styled if styled else _out,
                     progress=functools.partial(_progress, styled=styled), hide=_REDACT.add,
                     reading=functools.partial(_reading, styled))
    try:
        return commands.dispatch(args, io)
    except NavarchError as exc:
        if args.debug:
            _err(traceback.format_exc())
        # Every independent config error, one line each (as validate and Terraform do).
        for error in getattr(exc, "errors", [exc]):
            _err(f"Error: {with_run_flags(str(error), args)}")
        return 1
    except KeyboardInterrupt:
        _err("Interrupted.")
        return 130
    except Terminated:
        _err("Terminated.")
        return 143
    except BrokenPipeError:  # stdout's reader went away outside _out (stderr's too)
        _STDOUT._closed()
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # a bug: still one line unless --debug
        if args.debug:
            _err(traceback.format_exc())
        _err(f"Error: internal error: {type(exc).__name__}: {exc} (run with --debug for the "
             "traceback, and please report it)")
        return 1
    finally:
        for engine in io.engines:
            engine.close()


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()

"""Workdir.cli, the `navarch` command run in the test process (tests/conftest.py), held
to the installed command: the same exit code and output for the same folder, and
nothing of one run (secrets, signal handlers, folder, environment) left for the next."""

from __future__ import annotations

import os
import signal

import pytest

from tests.conftest import Workdir

SAME_OUTPUT = [
    ["--version"],
    ["plan", "--no-such-flag"],  # argparse: a usage error, exit 2
    ["validate"],
    ["plan"],
    ["plan", "--detailed-exitcode"],
    ["plan", "-c", "missing.yaml"],
    ["show", "no-such.plan"],
    ["instance-types", "--json"],
]


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Workdir:
    work = Workdir(tmp_path_factory.mktemp("same-output"))
    work.config(pools={"w": {"nodes": 2}, "x": {"nodes": 1}})
    assert work.run("apply", "--auto-approve").code == 0  # the installed command
    work.config(pools={"w": {"nodes": 3}})  # x goes, w grows: a plan with changes
    return work


@pytest.mark.parametrize("args", SAME_OUTPUT, ids=" ".join)
def test_in_process_and_installed_command_give_the_same_result(
        applied: Workdir, args: list[str]) -> None:
    outside = applied.run(*args)
    inside = applied.cli(*args)
    assert (inside.code, inside.out, inside.err) == (outside.code, outside.out, outside.err)


def test_nothing_of_one_in_process_run_is_left_for_the_next(
        work: Workdir, monkeypatch: pytest.MonkeyPatch) -> None:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    cwd, environ = os.getcwd(), dict(os.environ)

    work.config(pools={"w": {"nodes": 1, "user_data": "${CANARY}"}})
    first = work.cli("plan", "--show-sensitive", env={"CANARY": "canary-1234"})
    assert first.code == 0, first.err
    assert "canary-1234" not in first.out and "[redacted]" in first.out

    # The same text, literal in the config now: no secret of this run, as in a new process.
    work.config(pools={"w": {"nodes": 1, "user_data": "canary-1234"}})
    second = work.cli("plan", "--show-sensitive")
    assert second.code == 0, second.err
    assert "canary-1234" in second.out
    applied = work.cli("apply", "--auto-approve")
    assert applied.code == 0, applied.err  # (apply installs signal handlers of its own)

    # An env value of None unsets the variable for the run only.
    monkeypatch.setenv("NAVARCH_TEST_REGION", "us-west-1")
    work.config(pools={"w": {"nodes": 1, "region": "${NAVARCH_TEST_REGION}"}})
    unset = work.cli("validate", env={"NAVARCH_TEST_REGION": None})
    assert unset.code == 1 and "NAVARCH_TEST_REGION" in unset.err, unset.err
    assert work.cli("validate").code == 0
    monkeypatch.delenv("NAVARCH_TEST_REGION")

    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    assert os.getcwd() == cwd
    assert dict(os.environ) == environ


def test_commands_leave_no_file_open(work: Workdir) -> None:
    """A long-lived process (a test worker, a program calling main()) must not gather
    open files: each command closes the providers it built (the fake cloud's SQLite
    connections, one per thread)."""
    work.config(pools={"w": {"nodes": 2}})
    assert work.cli("apply", "--auto-approve").code == 0
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(4):
        assert work.cli("plan").code == 0
        assert work.cli("drift").code == 0
    assert len(os.listdir("/proc/self/fd")) == before

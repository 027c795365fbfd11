"""What `navarch` shows while it works: the live view and coloured plans in a
pseudo-terminal (pexpect), plain timestamped lines without one or when colour is turned
off, and JSON events with --json. Every run in a terminal is the installed command in a
pseudo-terminal; without one, the command's main() runs in this process (Workdir.cli,
whose standard output is no terminal), on the same fake cloud."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime

import pexpect
import pytest

from tests.conftest import Workdir, navarch_argv, spawn_in_pty

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) ")
# A progress line names an action and says what happened to it: `pool.w[0]: created`.
PROGRESS = re.compile(r"pool\.\w+\[\d+\]: ")
# What a terminal shows while the clouds are read, before the plan.
READING = re.compile(r"\AReading \d+ providers? \([\w, ]+\)\.\.\.\n"
                     r"(  \w+: \d+ instances? listed \[\d+\.\ds\]\n)+")


def in_pty(work: Workdir, *args: str, env: dict[str, str] | None = None,
           columns: int = 200) -> tuple[int, str]:
    """Runs navarch in a pseudo-terminal of 50 lines (and 200 columns unless told);
    returns its exit code and everything it wrote, with the terminal's \\r\\n turned
    back into \\n."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "TTY_COMPATIBLE",
                         "TTY_INTERACTIVE")}
    argv = [*navarch_argv(), *args]
    child = spawn_in_pty(argv, work.path, {**base, "TERM": "xterm-256color", **(env or {})},
                         columns)
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, child.before.replace("\r\n", "\n")


def plain(output: str) -> str:
    return ANSI.sub("", output)


def assert_plain_lines(output: str, actions: int) -> None:
    """No escape codes at all, and every progress line starts with a UTC timestamp."""
    assert "\x1b" not in output
    progress = [line for line in output.splitlines() if PROGRESS.search(line)]
    assert len(progress) >= 2 * actions, "a start and an end line per action"
    for line in progress:
        stamp = STAMP.match(line)
        assert stamp, line
        datetime.strptime(stamp.group(1), "%Y-%m-%dT%H:%M:%SZ")  # a real time
    assert "Apply complete! Nodes: " in output


def workers(work: Workdir, nodes: int = 6) -> None:
    # Latency keeps actions in flight long enough to be drawn more than once.
    work.config(sim={"latency": 0.2, "boot_time": 0.2}, pools={"workers": {"nodes": nodes}})


def test_apply_on_a_terminal_shows_the_live_view(work: Workdir) -> None:
    workers(work)
    code, out = in_pty(work, "apply", "--auto-approve", "--parallelism", "3")
    assert code == 0, out
    assert re.search(r"\x1b\[32m\s+\+ pool\.workers\[0\]  create", out), "green adds"
    assert "\x1b[?25l" in out, "the cursor is hidden while the live area is redrawn"
    text = plain(out)
    assert "0 done, 0 failed, 6 left" in text and "6 done, 0 failed, 0 left" in text
    assert re.search(r"━+", text), "the progress bar"
    in_flight = re.findall(r"pool\.workers\[(\d)\]\s+creating\s+sim/us-west-1\s+\d+\.\ds",
                           text)
    assert set(in_flight) == {str(i) for i in range(6)}, "every action drawn in flight"
    for i in range(6):
        assert f"pool.workers[{i}]: created [" in text, "finished actions stay as lines"
    assert not any(STAMP.match(line) for line in text.splitlines()), "no plain lines"
    assert "Apply complete! Nodes: 6 added" in text
    assert len(work.state()["nodes"]) == 6


def test_failover_attempts_show_in_the_live_view(work: Workdir) -> None:
    work.write("""
        version: 1
        workspace: test
        providers:
          one: {type: fake, path: state/one.db, latency: 0.1, capacity: {gpu_1x_a10: 0}}
          two: {type: fake, path: state/two.db, latency: 0.1}
        defaults: {ssh_keys: [ops]}
        pools:
          w:
            providers:
              - {name: one, priority: 1, regions: [us-west-1]}
              - {name: two, priority: 2, regions: [us-east-1]}
            instance_type: gpu_1x_a10
            nodes: 2
        """)
    code, out = in_pty(work, "apply", "--auto-approve")
    assert code == 0, out
    assert re.search(r"\x1b\[33mpool\.w\[\d\]: one/us-west-1 no capacity, trying the next "
                     r"candidate", out), "the attempt, in yellow, as it happens"
    text = plain(out)
    assert re.search(r"pool\.w\[\d\]\s+creating\s+one/us-west-1", text)
    assert "2 done, 0 failed, 0 left" in text
    assert {r["provider"] for r in work.state()["nodes"].values()} == {"two"}


def test_a_launch_sent_back_to_the_queue_leaves_the_in_flight_lines(work: Workdir) -> None:
    work.config(sim={"latency": 0.1, "retry": {"base_delay": 0.05},
                     "faults": [{"op": "provision", "error": "rate_limit",
                                 "retry_after": 0.3}]},
                pools={"workers": {"nodes": 1}})
    code, out = in_pty(work, "apply", "--auto-approve")
    assert code == 0, out
    assert re.search(r"\x1b\[33mpool\.workers\[0\]: injected: too many requests; queued to "
                     r"try again in 0\.3s", out), "the wait, in yellow"
    assert "1 done, 0 failed, 0 left" in plain(out)


def test_failures_and_skips_are_counted_and_logged_in_the_live_view(work: Workdir) -> None:
    # No capacity for gpu_8x_h100: head fails and its dependents are skipped.
    work.config(sim={"latency": 0.1, "capacity": {"gpu_8x_h100": 0}},
                pools={"head": {"nodes": 1, "instance_type": "gpu_8x_h100"},
                       "trainers": {"nodes": 2, "depends_on": ["head"]},
                       "independent": {"nodes": 1}})
    code, out = in_pty(work, "apply", "--auto-approve")
    assert code == 1, out
    assert re.search(r"\x1b\[1;31mpool\.head\[0\]: FAILED: .*no capacity", out), "in red"
    text = plain(out)
    assert "pool.trainers[1]: skipped (pool.head[0] failed)" in text
    assert "1 done, 1 failed, 2 skipped, 0 left" in text
    assert "Apply finished with errors" in text


def test_without_a_terminal_progress_is_plain_timestamped_lines(work: Workdir) -> None:
    workers(work, nodes=3)
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.err
    assert_plain_lines(result.out, actions=3)
    assert "\x1b" not in result.err
    assert "left" not in result.out, "no progress bar"


def test_without_a_terminal_a_boot_is_said_once_not_at_every_poll(work: Workdir) -> None:
    """A CI log: the wait for a 2 s boot is one line per node (polls come every
    0.05-1.6 s meanwhile); a long one is reminded every 30 s (tested on a fake clock)."""
    work.config(pools={"w": {"nodes": 2}}, sim={"boot_time": 2})
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.err
    booting = [line for line in result.out.splitlines() if "to boot" in line]
    assert len(booting) == 2, result.out
    assert all(re.search(r"pool\.w\[\d\]: waiting for fake-\w+ to boot$", b) for b in booting)


@pytest.mark.parametrize(("env", "flags"), [
    ({"NO_COLOR": "1"}, []),
    ({}, ["--no-color"]),
    ({"TERM": "dumb"}, []),
], ids=["NO_COLOR", "--no-color", "TERM=dumb"])
def test_colour_turned_off_on_a_terminal_gives_plain_lines(
        work: Workdir, env: dict[str, str], flags: list[str]) -> None:
    workers(work, nodes=3)
    code, out = in_pty(work, "apply", "--auto-approve", *flags, env=env)
    assert code == 0, out
    assert_plain_lines(out, actions=3)


def test_json_on_a_terminal_is_still_one_event_per_line(work: Workdir) -> None:
    workers(work, nodes=2)
    code, out = in_pty(work, "apply", "--auto-approve", "--json")
    assert code == 0, out
    assert "\x1b" not in out
    events = [json.loads(line) for line in out.splitlines() if line]
    kinds = [e["type"] for e in events]
    assert kinds.count("apply_start") == 2 and kinds.count("apply_complete") == 2
    assert kinds[-1] == "summary" and events[-1]["ok"] is True


def test_plans_are_coloured_on_a_terminal_and_the_same_text_elsewhere(work: Workdir) -> None:
    work.config(pools={"old": {"nodes": 1}, "workers": {"nodes": 1}})
    assert work.cli("apply", "--auto-approve").code == 0
    work.config(pools={"workers": {"nodes": 1, "instance_type": "gpu_1x_l4"},
                       "fresh": {"nodes": 1}})
    piped = work.cli("plan")
    assert piped.code == 0 and "\x1b" not in piped.out
    # An empty NO_COLOR does not count as set (no-color.org).
    code, coloured = in_pty(work, "plan", env={"NO_COLOR": ""})
    assert code == 0, coloured
    assert re.search(r"\x1b\[32m\s+\+ pool\.fresh\[0\]", coloured), "green create"
    assert re.search(r"\x1b\[31m\s+- pool\.old\[0\]", coloured), "red delete"
    assert re.search(r"\x1b\[33m\s+\+/- pool\.workers\[0\]", coloured), "yellow replace"
    reading = READING.match(plain(coloured))
    assert reading, "which clouds were read, first"
    assert "  sim: 2 instances listed [" in reading.group(0)
    assert plain(coloured)[reading.end():] == piped.out, "colour is the only difference"
    code, flagged = in_pty(work, "plan", "--no-color")
    assert code == 0 and flagged == piped.out


def test_the_terminal_says_which_clouds_it_reads_while_planning(work: Workdir) -> None:
    work.write("""
        version: 1
        workspace: test
        providers:
          one: {type: fake, path: state/one.db, latency: 0.1}
          two: {type: fake, path: state/two.db, latency: 0.1}
        defaults: {ssh_keys: [ops]}
        pools:
          w: {provider: one, instance_type: gpu_1x_a10, region: us-west-1, nodes: 1}
        """)
    code, out = in_pty(work, "apply", "--auto-approve")
    assert code == 0, out
    text = plain(out)
    reading = READING.match(text)
    assert reading, text[:300]
    assert reading.group(0).startswith("Reading 2 providers (one, two)...\n")
    assert re.search(r"^  one: 0 instances listed \[", reading.group(0), re.M)
    assert re.search(r"^  two: 0 instances listed \[", reading.group(0), re.M)
    assert text.index("two: 0 instances") < text.index("navarch will perform")
    code, out = in_pty(work, "plan")
    assert code == 0 and "  one: 1 instance listed [" in plain(out), out
    assert "Reading" not in work.cli("plan").out, "plain output is unchanged"
    assert "Reading" not in work.cli("plan", "--format", "markdown").out


@pytest.mark.parametrize("columns", [80, 120])
def test_the_useful_columns_are_never_cut(work: Workdir, columns: int) -> None:
    """The key, verb, place and seconds keep their width; only the message gives way."""
    # Booting long enough for timed redraws to show the message, even on a busy machine.
    work.config(sim={"latency": 0.2, "boot_time": 1.0},
                pools={"training-workers-east": {"nodes": 3}})
    code, out = in_pty(work, "apply", "--auto-approve", columns=columns)
    assert code == 0, out
    text = plain(out)
    flying = re.findall(r"pool\.training-workers-east\[(\d)\]  creating  sim/us-west-1  "
                        r"\d+\.\ds  waiting for (fake-[0-9a-f]+ to boot|\S*…)", text)
    assert {i for i, _ in flying} == {"0", "1", "2"}, text[-2000:]
    cut = {message.endswith("…") for _, message in flying}
    assert cut == {columns == 80}, "the message, and only it, gives way at 80 columns"
    assert re.search(r"━+  3 done, 0 failed, 0 left  \d+s elapsed, nothing left", text), \
        "the progress line is not wrapped"


def test_finished_lines_say_the_instance_id_and_ip(work: Workdir) -> None:
    workers(work, nodes=2)
    code, out = in_pty(work, "apply", "--auto-approve")
    assert code == 0, out
    nodes = work.state()["nodes"]
    for address, record in nodes.items():
        assert re.search(rf"{re.escape(address)}: created \[\d+\.\ds\] "
                         rf"\[id={record['id']}, ip={re.escape(record['ip_address'])}\]",
                         plain(out)), address
    code, out = in_pty(work, "destroy", "--auto-approve")
    assert code == 0, out
    for address, record in nodes.items():
        assert re.search(rf"{re.escape(address)}: destroyed \[\d+\.\ds\] "
                         rf"\[id={record['id']}\]", plain(out)), address

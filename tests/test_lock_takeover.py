"""A lock whose holder died (kill -9, OOM, a CI job cancelled) is taken over by the next
command on the same machine, as Terraform's local backend does: the holder keeps an
flock() on the lock file, which the kernel drops when the process dies. A lock that
cannot be proven dead is reported with the exact force-unlock command, as before.
The holders, and the command that waits for one, are processes of their own; the next
command after a holder died runs navarch's main() in this process (Workdir.cli)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from navarch_plan.errors import LockError
from navarch_plan.state.lock import FileLock, _boot_id
from tests.conftest import Workdir, navarch_argv

HOLD = """
import json, sys, time
from navarch_plan.state.lock import FileLock
lock = FileLock(sys.argv[1])
start_at, hold = float(sys.argv[2]), float(sys.argv[3])
while time.time() < start_at:
    time.sleep(0.001)
info = lock.acquire("apply", timeout=30)
got = time.time()
print(json.dumps({"id": info.id, "ready": True}), flush=True)
time.sleep(hold)
left = time.time()
lock.release()
print(json.dumps({"got": got, "left": left, "took_over": bool(lock.took_over)}), flush=True)
"""


def _holder(state: Path, hold: float, start_at: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", HOLD, str(state), str(start_at), str(hold)],
                            stdout=subprocess.PIPE, text=True)


def _wait_ready(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return json.loads(proc.stdout.readline())["id"]


def _lock_file(work: Workdir) -> Path:
    return work.path / "state" / "test.json.lock"


def test_a_killed_holders_lock_is_taken_over_by_the_next_command(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    holder = _holder(work.path / "state" / "test.json", hold=60)
    dead_id = _wait_ready(holder)
    held = work.cli("plan")
    assert held.code == 1 and f"pid {holder.pid}" in held.err, "alive: refused, named"
    assert "stale" not in held.err
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert json.loads(_lock_file(work).read_text())["id"] == dead_id, "left behind"
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.err
    assert not _lock_file(work).exists()
    assert work.cli("plan", "--detailed-exitcode").code == 0


def test_a_waiting_command_takes_over_as_soon_as_the_holder_dies(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    holder = _holder(work.path / "state" / "test.json", hold=60)
    _wait_ready(holder)
    waiter = subprocess.Popen([*navarch_argv(), "plan", "--lock-timeout", "60s"],
                              cwd=work.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    time.sleep(1.0)
    assert waiter.poll() is None, "still waiting while the holder lives"
    killed = time.monotonic()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0, err
    assert time.monotonic() - killed < 5, "took over within a retry or two"


def test_concurrent_takers_of_a_dead_lock_never_hold_it_together(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    dead = _holder(state, hold=60)
    _wait_ready(dead)
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    start_at = time.time() + 1.5  # all of them go at the same instant
    takers = [_holder(state, hold=0.15, start_at=start_at) for _ in range(8)]
    spans = []
    for proc in takers:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        spans.append(json.loads(out.strip().splitlines()[-1]))
    spans.sort(key=lambda s: s["got"])
    for first, then in zip(spans, spans[1:], strict=False):
        assert then["got"] >= first["left"], f"two holders at once: {first} {then}"
    assert sum(s["took_over"] for s in spans) == 1, "exactly one took the dead lock over"
    assert not Path(str(state) + ".lock").exists()
    assert not list(tmp_path.glob("*.tmp")), "no temporary lock files left"


@pytest.mark.parametrize(("change", "stale"), [
    ({}, True),  # written without flock (older navarch, or by hand): reported, not taken
    ({"flock": True, "boot_id": "another-machine", "who": "ci@elsewhere"}, False),
    ({"flock": True, "boot_id": "another-boot"}, False),  # same name, other kernel
])
def test_a_lock_that_cannot_be_proven_dead_is_reported_not_taken(
        work: Workdir, change: dict[str, object], stale: bool) -> None:
    work.config(pools={"w": {"nodes": 1}})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    body = {"id": "lock-123", "operation": "apply", "who": f"ci@{os.uname().nodename}",
            "pid": int(dead.stdout), "version": "0.1.0", "created": "2026-01-01T00:00:00+00:00",
            "path": "state/test.json", **change}
    _lock_file(work).write_text(json.dumps(body))
    before = _lock_file(work).read_bytes()
    result = work.cli("plan")
    assert result.code == 1
    assert "navarch force-unlock lock-123" in result.err
    assert ("the lock is stale" in result.err) == stale, result.err
    assert _lock_file(work).read_bytes() == before, "left exactly as it was"
    assert work.cli("force-unlock", "--force", "lock-123").code == 0
    assert work.cli("plan").code == 0


def test_an_empty_lock_file_is_not_taken_over(tmp_path: Path) -> None:
    """What a creator leaves for an instant (or for ever, if killed right then): it
    proves nothing about its holder, so it is reported, never taken."""
    state = tmp_path / "s.json"
    Path(str(state) + ".lock").write_bytes(b"")
    with pytest.raises(LockError, match="force-unlock unreadable"):
        FileLock(str(state)).acquire("plan")


def test_the_lock_records_what_takeover_relies_on(tmp_path: Path) -> None:
    lock = FileLock(str(tmp_path / "s.json"))
    info = lock.acquire("apply")
    on_disk = json.loads(Path(lock.path).read_text())
    assert on_disk["flock"] is True and on_disk["boot_id"] == _boot_id()
    assert on_disk["pid"] == os.getpid() and on_disk["id"] == info.id
    assert os.stat(lock.path).st_mode & 0o777 == 0o600
    lock.release()
    assert not Path(lock.path).exists()


def test_a_takeover_is_reported(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    holder = _holder(work.path / "state" / "test.json", hold=60)
    dead_id = _wait_ready(holder)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    result = work.cli("plan")
    assert result.code == 0
    assert "took over the state lock" in result.err and dead_id in result.err
    assert f"pid {holder.pid}" in result.err

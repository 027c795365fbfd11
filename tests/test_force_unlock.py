"""force-unlock respects the living: `navarch force-unlock --force` of a lock whose
holder is a running apply makes that apply stop before its next cloud call, and the
next apply finishes the job with nothing duplicated and nothing of the first run's
deleted as an orphan."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter

from tests.conftest import Workdir, navarch_argv


def test_a_forced_unlock_stops_the_running_apply_before_its_next_cloud_call(
        work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 6}}, sim={"latency": 0.3})
    proc = subprocess.Popen([*navarch_argv(), "apply", "--auto-approve", "--parallelism", "1"],
                            cwd=work.path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lock = work.path / "state" / "test.json.lock"
    deadline = time.monotonic() + 30
    while not (lock.exists() and work.cloud().list()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    lock_id = json.loads(lock.read_text())["id"]
    refused = work.cli("force-unlock", lock_id, stdin="yes\n")
    assert refused.code == 1 and "still running on this machine" in refused.err
    forced = work.cli("force-unlock", "--force", lock_id)
    assert forced.code == 0, forced.err
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    assert "no longer ours" in out + err
    made = {n.id for n in work.cloud().list()}
    assert 0 < len(made) < 6, "it stopped part way"
    finish = work.cli("apply", "--auto-approve")
    assert finish.code == 0, finish.out + finish.err
    alive = work.cloud().list()
    per_address = Counter(n.labels["navarch-address"] for n in alive)
    assert len(alive) == 6 and set(per_address.values()) == {1}
    assert made <= {n.id for n in alive}, "nothing the first run made was deleted"


def test_force_unlock_checks_the_lock_before_asking_and_names_its_own_flag(
        work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    nothing = work.cli("force-unlock", "abc")  # stdin at EOF, as in a script
    assert nothing.code == 1 and nothing.out == "", "no question about a lock not held"
    assert len(nothing.err.splitlines()) == 1 and nothing.err.endswith(" is not locked\n")
    lock = work.path / "state" / "test.json.lock"
    lock.write_text(json.dumps({"id": "abc-123", "operation": "apply", "who": "ci@elsewhere",
                                "pid": 1, "version": "0", "created": "2026-01-01T00:00:00",
                                "path": "state/test.json"}))
    other = work.cli("force-unlock", "abc")
    assert other.code == 1 and other.out == ""
    assert "lock ID abc does not match the lock held: ID abc-123" in other.err
    unanswered = work.cli("force-unlock", "abc-123")
    assert unanswered.code == 1 and lock.exists()
    assert "Its lock: ID abc-123, held by ci@elsewhere (pid 1)" in unanswered.out
    assert unanswered.err.strip().endswith("run it from a terminal, or pass --force")
    forced = work.cli("force-unlock", "--force", "abc-123")  # the flag named works
    assert forced.code == 0 and not lock.exists(), forced.err

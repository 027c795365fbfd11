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

"""The S3 state backend, against moto's S3 server on 127.0.0.1 started here.

Through the `navarch` command: plan, apply, drift and state commands on S3 state; two
applies at once; migration local -> S3 -> local; an S3 outage in the middle of an apply.
Concurrent applies and the apply cut off by the outage are `navarch` processes of their
own; the other commands run its main() in this process (Workdir.cli).
Directly on S3StateStore: journal replay and compaction, ETag conflicts, the lock.
moto keeps its data in this process, so a server stopped and started again on the same
port serves the same buckets: that is how an outage and the recovery are staged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from navarch_plan.errors import LockError, StateError
from navarch_plan.state.model import Intent, NodeRecord, StateDoc
from navarch_plan.state.ops import IntentDone, IntentStarted, Put, Remove
from navarch_plan.state.stores.s3 import S3StateStore
from tests.conftest import Workdir, navarch_argv, owned, reset_moto

BUCKET = "navarch-state"
KEY = "team/test.json"
URL = f"s3://{BUCKET}/{KEY}"


class MotoS3:
    """moto's threaded server; stop() and start() again keep the port (and the data)."""

    def __init__(self) -> None:
        self.port = 0
        self.server: ThreadedMotoServer | None = None

    def start(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.port = self.server.get_host_and_port()[1]

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = MotoS3()
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def s3(aws_credentials: None, moto: MotoS3) -> Any:
    """Dummy AWS credentials (conftest) and a fresh moto with one empty bucket."""
    if moto.server is None:  # an outage test failed before bringing it back
        moto.start()
    reset_moto(moto.endpoint)
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=moto.endpoint)
    client.create_bucket(Bucket=BUCKET)
    return client


def keys(client: Any, prefix: str = "") -> list[str]:
    found = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(item["Key"] for item in found)


def read(client: Any, key: str = KEY) -> dict[str, Any]:
    return json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def s3_config(work: Workdir, moto: MotoS3, **kw: Any) -> None:
    """A fake-cloud config whose state is in S3."""
    path = work.config(**kw)
    doc = json.loads(path.read_text())
    doc["state"] = {"backend": "s3", "bucket": BUCKET, "key": KEY, "region": "us-east-1",
                    "endpoint_url": moto.endpoint}
    path.write_text(json.dumps(doc, indent=2))


def store(moto: MotoS3, tmp_path: Path, key: str = KEY) -> S3StateStore:
    return S3StateStore(BUCKET, key, "test", region="us-east-1", endpoint_url=moto.endpoint,
                        rescue_dir=str(tmp_path))


def put(address: str, node_id: str, status: str = "running") -> Put:
    record = {"id": node_id, "provider": "sim", "region": "us-west-1", "zone": "",
              "instance_type": "gpu_1x_a10", "name": node_id, "spec": {}, "spec_hash": "h",
              "status": status, "ip_address": "", "labels": {}, "created_at": "t"}
    return Put(address, NodeRecord.from_json(record))


def ids_in(state: dict[str, Any]) -> set[str]:
    return {record["id"] for record in state["nodes"].values()}


# -- through the navarch command -------------------------------------------------------

def test_plan_apply_drift_and_state_commands_on_s3_state(work: Workdir, moto: MotoS3,
                                                         s3: Any) -> None:
    s3_config(work, moto, pools={"w": {"nodes": 2}})
    assert f"state at {URL}" in work.cli("validate").out
    assert work.cli("plan").code == 0
    assert keys(s3) == [], "a plan writes no state (and its lock is gone)"
    planned = work.cli("plan", "--out", "first.plan")
    assert planned.code == 0 and "2 to add" in planned.out, planned.out + planned.err
    assert keys(s3) == [KEY], "a saved plan's state identity (lineage, key) is written"
    assert read(s3)["nodes"] == {} and read(s3)["serial"] == 1

    applied = work.cli("apply", "first.plan")  # a saved plan, checked against S3 state
    assert applied.code == 0, applied.err
    assert keys(s3) == [KEY, f"{KEY}.backup"], \
        "the snapshot and its backup; journal folded and deleted; lock released"
    state = read(s3)
    assert state["serial"] == 2 and sorted(state["nodes"]) == ["pool.w[0]", "pool.w[1]"]
    assert ids_in(state) == {n.id for n in owned(work.cloud())}
    assert not (work.path / "state" / "test.json").exists(), "nothing local"

    again = work.cli("plan", "--detailed-exitcode")
    assert again.code == 0, again.out
    assert work.cli("state", "list").out.split() == ["pool.w[0]", "pool.w[1]"]
    shown = work.cli("show", "--json")
    assert shown.code == 0 and shown.json()["lineage"] == state["lineage"]

    work.cloud().terminate(state["nodes"]["pool.w[1]"]["id"])
    drift = work.cli("drift")
    assert drift.code == 2 and "pool.w[1]" in drift.out, drift.out + drift.err
    assert read(s3) == state, "drift without --update-state writes nothing"
    assert work.cli("apply", "--auto-approve").code == 0
    assert read(s3)["serial"] == 3 and work.cli("drift").code == 0


def test_a_missing_bucket_or_a_bad_config_is_one_clear_line(work: Workdir, moto: MotoS3,
                                                            s3: Any) -> None:
    s3_config(work, moto, pools={"w": {"nodes": 1}})
    wrong = work.cli("plan", "--state", "s3://no-such-bucket/x.json")
    assert wrong.code == 1 and "bucket 'no-such-bucket' does not exist" in wrong.err, wrong.err
    assert wrong.err.count("\n") == 1 and "Traceback" not in wrong.err
    assert work.cli("plan", "--state", "s3://only-a-bucket").code == 1
    assert owned(work.cloud()) == [] and keys(s3) == []


def test_two_applies_at_once_exactly_one_runs(work: Workdir, moto: MotoS3, s3: Any) -> None:
    s3_config(work, moto, sim={"latency": 0.3}, pools={"w": {"nodes": 4}})
    argv = [*navarch_argv(), "apply", "--auto-approve"]
    procs = [subprocess.Popen(argv, cwd=work.path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    ended: list[subprocess.Popen[str]] = []
    deadline = time.monotonic() + 60
    while len(ended) < 2 and time.monotonic() < deadline:
        ended += [p for p in procs if p not in ended and p.poll() is not None]
        time.sleep(0.02)
    outputs = {p.pid: p.communicate(timeout=5) for p in procs}
    loser, winner = ended
    assert (winner.returncode, loser.returncode) == (0, 1), outputs
    err = outputs[loser.pid][1]
    assert f"Error acquiring the state lock on {URL}" in err, err
    assert f"(pid {winner.pid}) for apply" in err and "navarch force-unlock" in err
    assert "Apply complete" in outputs[winner.pid][0]

    state = read(s3)
    assert keys(s3) == [KEY] and state["serial"] == 1 and not state["intents"]
    cloud = owned(work.cloud())
    assert len(cloud) == 4 and ids_in(state) == {n.id for n in cloud}, "no duplicate, no leak"
    assert work.cli("plan", "--detailed-exitcode").code == 0


def test_migration_local_to_s3_and_back_keeps_lineage_and_serial(work: Workdir, moto: MotoS3,
                                                                 s3: Any) -> None:
    work.config(pools={"w": {"nodes": 1}})
    assert work.cli("apply", "--auto-approve").code == 0
    work.config(pools={"w": {"nodes": 2}})
    assert work.cli("apply", "--auto-approve").code == 0
    local = work.state()
    assert local["serial"] == 2

    env = {"AWS_ENDPOINT_URL_S3": moto.endpoint}  # the config is local: boto3's own way
    moved = work.cli("state", "migrate", "--to", URL, env=env)
    assert moved.code == 0, moved.err
    assert "serial 2" in moved.out and local["lineage"] in moved.out
    assert read(s3) == local
    assert work.cli("plan", "--detailed-exitcode", "--state", URL, env=env).code == 0
    again = work.cli("state", "migrate", "--to", URL, env=env)
    assert again.code == 0 and "nothing to copy" in again.out

    back = work.cli("state", "migrate", "--state", URL, "--to", "back/test.json", env=env)
    assert back.code == 0, back.err
    copy = work.path / "back" / "test.json"
    assert json.loads(copy.read_text()) == local
    assert copy.stat().st_mode & 0o777 == 0o600
    assert keys(s3) == [KEY], "both locks released"


def test_migration_onto_another_lineage_or_a_newer_state_is_refused(
        work: Workdir, moto: MotoS3, s3: Any, tmp_path: Path) -> None:
    env = {"AWS_ENDPOINT_URL_S3": moto.endpoint}
    work.config(pools={"w": {"nodes": 1}})
    assert work.cli("apply", "--auto-approve").code == 0
    assert work.cli("state", "migrate", "--to", URL, env=env).code == 0
    before = s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()

    (tmp_path / "other").mkdir()
    other = Workdir(tmp_path / "other")  # same workspace name, its own state: other lineage
    other.config(pools={"w": {"nodes": 1}})
    assert other.cli("apply", "--auto-approve").code == 0
    refused = other.cli("state", "migrate", "--to", URL, env=env)
    assert refused.code == 1 and "another state (lineage" in refused.err, refused.err
    assert other.state()["lineage"] in refused.err

    # Same lineage, but S3 moved on (serial 2) while the local copy stayed at serial 1.
    assert work.cli("apply", "--auto-approve", "--state", URL, "--replace", "pool.w[0]",
                    env=env).code == 0
    newer = s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    assert newer != before and json.loads(newer)["serial"] == 2
    stale = work.cli("state", "migrate", "--to", URL, env=env)
    assert stale.code == 1 and "is newer (serial 2)" in stale.err, stale.err
    assert s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == newer
    assert keys(s3) == [KEY, KEY + ".backup"], "no lock left behind"


def test_s3_outage_during_apply_leaves_fleet_and_local_copy_recoverable(
        work: Workdir, moto: MotoS3, s3: Any) -> None:
    s3_config(work, moto, sim={"latency": 0.4}, pools={"w": {"nodes": 6}})
    proc = subprocess.Popen([*navarch_argv(), "apply", "--auto-approve", "--parallelism", "2"],
                            cwd=work.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if ": created [" in line:
            break
    moto.stop()  # S3 is gone while the apply is in the middle of its work
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        moto.start()
    assert proc.returncode == 1, out + err
    found = re.search(r"saved to (\S+\.json)", err)
    assert found and "navarch-state-rescue-" in found.group(1), err
    rescue = Path(found.group(1))
    assert rescue.parent == work.path and rescue.stat().st_mode & 0o777 == 0o600
    copy = json.loads(rescue.read_text())
    cloud = owned(work.cloud())
    assert 1 <= len(cloud) < 6, "the outage stopped the apply part way"
    assert ids_in(copy) == {n.id for n in cloud}, "the local copy knows every instance"

    # Recovery: release the lock the dead run left, push the copy, finish the apply.
    held = work.cli("plan")
    lock_id = re.search(r"force-unlock (\S+)", held.err)
    assert held.code == 1 and lock_id, held.err
    assert work.cli("force-unlock", "--force", lock_id.group(1)).code == 0
    restored = work.cli("state", "migrate", "--state", str(rescue), "--to", URL)
    assert restored.code == 0, restored.err
    assert read(s3)["lineage"] == copy["lineage"] and read(s3)["serial"] == copy["serial"]
    plan = work.plan_json()
    assert {a["action"] for a in plan["actions"]} == {"create"}
    assert len(plan["actions"]) == 6 - len(cloud), "nothing recorded is made twice"
    assert work.cli("apply", "--auto-approve").code == 0
    final = read(s3)
    assert len(owned(work.cloud())) == 6 and ids_in(final) == {n.id for n in owned(work.cloud())}
    assert keys(s3) == [KEY, KEY + ".backup"]


# -- the store itself --------------------------------------------------------------------

def test_each_record_is_one_object_replayed_in_order(moto: MotoS3, s3: Any,
                                                     tmp_path: Path) -> None:
    writer = store(moto, tmp_path)
    writer.lock("apply")
    writer.load()
    for n in range(12):  # more than 10: order must be numeric, not "10" < "2"
        writer.record(put("node.a", f"i-{n}"))
    writer.record(put("node.b", "i-b"), Remove("node.b"))
    journal = keys(s3, KEY + ".journal/")
    assert journal[0] == f"{KEY}.journal/0/00000000.json" and len(journal) == 13
    assert KEY not in keys(s3), "no snapshot until compaction"

    reader = store(moto, tmp_path)  # as after a crash: the writer never compacted
    doc = reader.load()
    assert doc.nodes["node.a"].id == "i-11" and "node.b" not in doc.nodes
    assert doc.lineage == writer.doc.lineage and reader.has_journal()

    assert writer.compact() is True
    assert keys(s3) == [KEY, KEY + ".lock"], "journal deleted; no backup of nothing"
    assert read(s3)["serial"] == 1
    writer.unlock()
    assert keys(s3) == [KEY]


def test_compaction_keeps_a_backup_and_skips_unchanged_runs(moto: MotoS3, s3: Any,
                                                            tmp_path: Path) -> None:
    first = store(moto, tmp_path)
    first.load()
    first.record(put("node.a", "i-1"))
    assert first.compact() and read(s3)["serial"] == 1
    snapshot_1 = s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()

    second = store(moto, tmp_path)
    second.load()
    assert second.compact() is False and keys(s3) == [KEY], "nothing recorded: no write"
    second.record(IntentStarted(Intent(id="x", address="node.a", provider="sim", region="r",
                                       name="n", started_at="t")))
    second.record(IntentDone("x"))
    assert second.compact() is False, "same content: same serial"
    second.record(put("node.a", "i-2"))
    assert second.compact() is True
    assert read(s3)["serial"] == 2 and read(s3)["nodes"]["node.a"]["id"] == "i-2"
    assert s3.get_object(Bucket=BUCKET, Key=KEY + ".backup")["Body"].read() == snapshot_1


def test_with_bucket_versioning_s3_keeps_the_previous_versions(moto: MotoS3, s3: Any,
                                                               tmp_path: Path) -> None:
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for n in range(2):
        writer = store(moto, tmp_path)
        writer.load()
        writer.record(put("node.a", f"i-{n}"))
        writer.compact()
    assert KEY + ".backup" not in keys(s3)
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix=KEY)["Versions"]
    assert len([v for v in versions if v["Key"] == KEY]) == 2


def test_stale_and_foreign_journal_objects(moto: MotoS3, s3: Any, tmp_path: Path) -> None:
    writer = store(moto, tmp_path)
    writer.load()
    writer.record(put("node.a", "i-1"))
    writer.compact()
    lineage = read(s3)["lineage"]
    # A compaction cut short before its cleanup leaves objects of the old serial behind.
    leftover = f"{KEY}.journal/0/00000000.json"
    s3.put_object(Bucket=BUCKET, Key=leftover, Body=json.dumps(
        {"lineage": lineage, "serial": 0, "seq": 0, "ops": [put("node.z", "i-z").to_json()]}))
    reader = store(moto, tmp_path)
    assert "node.z" not in reader.load().nodes and reader.has_journal()
    reader.compact()
    assert leftover not in keys(s3), "cleaned up by the next compaction"

    s3.put_object(Bucket=BUCKET, Key=f"{KEY}.journal/1/00000000.json", Body=json.dumps(
        {"lineage": "someone-else", "serial": 1, "seq": 0, "ops": []}))
    with pytest.raises(StateError, match="different lineage"):
        store(moto, tmp_path).load()
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"{not json")
    with pytest.raises(StateError, match=r"not a valid state file.*\.backup"):
        store(moto, tmp_path).load()


def test_snapshot_write_refuses_to_overwrite_a_newer_state(moto: MotoS3, s3: Any,
                                                           tmp_path: Path) -> None:
    early = store(moto, tmp_path)
    early.load()  # sees no snapshot: may only create one
    late = store(moto, tmp_path)
    late.load()
    late.record(put("node.a", "i-late"))
    late.compact()
    early.record(put("node.a", "i-early"))
    with pytest.raises(StateError, match="changed by another writer") as caught:
        early.compact()
    assert "do not push this copy" in str(caught.value)
    assert read(s3)["nodes"]["node.a"]["id"] == "i-late"

    reread = store(moto, tmp_path)
    reread.load()  # ETag of serial 1
    late.record(put("node.a", "i-late-2"))
    late.compact()  # serial 2
    reread.record(put("node.a", "i-stale"))
    with pytest.raises(StateError, match=r"serial 1 then, 2 now"):
        reread.compact()
    assert read(s3)["serial"] == 2 and read(s3)["nodes"]["node.a"]["id"] == "i-late-2"


def test_writer_whose_lock_was_force_unlocked_stops_and_cannot_overwrite(
        work: Workdir, moto: MotoS3, s3: Any, tmp_path: Path) -> None:
    s3_config(work, moto)
    first = store(moto, tmp_path)
    held = first.lock("apply")
    first.load()
    first.record(put("node.a", "i-1"))
    wrong = work.cli("force-unlock", "not-the-id")
    assert wrong.code == 1 and "does not match" in wrong.err and wrong.out == "", \
        "checked before asking"
    unanswered = work.cli("force-unlock", held.id)
    assert unanswered.code == 1 and f"Its lock: ID {held.id}" in unanswered.out
    released = work.cli("force-unlock", "--force", held.id)
    assert released.code == 0 and f"Released the lock on {URL}" in released.out

    second = store(moto, tmp_path)
    taken = second.lock("apply")
    assert "node.a" in second.load().nodes, "the first writer's journal is not lost"
    second.record(put("node.b", "i-2"))
    second.compact()

    with pytest.raises(StateError, match=f"no longer ours.*{taken.id}") as caught:
        first.record(put("node.c", "i-3"))
    rescue = Path(re.search(r"saved to (\S+\.json)", str(caught.value)).group(1))
    assert set(json.loads(rescue.read_text())["nodes"]) == {"node.a", "node.c"}
    with pytest.raises(StateError, match="no longer ours"):
        first.compact()
    first.unlock()  # must not remove the lock the second writer holds
    assert json.loads(s3.get_object(Bucket=BUCKET, Key=KEY + ".lock")["Body"].read())[
        "id"] == taken.id
    state = read(s3)
    assert state["serial"] == 1 and set(state["nodes"]) == {"node.a", "node.b"}
    second.unlock()
    assert keys(s3) == [KEY]


def test_lock_is_exclusive_and_waits_with_a_timeout(moto: MotoS3, s3: Any,
                                                    tmp_path: Path) -> None:
    holder = store(moto, tmp_path)
    info = holder.lock("apply")
    with pytest.raises(LockError, match=f"{info.id}, held by .* for apply") as caught:
        store(moto, tmp_path).lock("plan")
    assert caught.value.info["id"] == info.id
    released: list[float] = []

    def release() -> None:
        holder.unlock()
        released.append(time.monotonic())

    started = time.monotonic()  # (read first: the holder lets go 0.5 s after it)
    timer = threading.Timer(0.5, release)
    timer.start()
    waiter = store(moto, tmp_path)
    assert waiter.lock("plan", timeout=10).operation == "plan"
    took = time.monotonic()
    timer.join()
    assert took - started >= 0.5, "taken only once the holder let go"
    # Noticed soon after the release: timed from when it was done, not from when the
    # holder began it (its own S3 calls are slow on a loaded machine).
    assert took - released[0] < 5
    waiter.unlock()
    assert keys(s3) == []


def test_migrate_copies_into_an_empty_store_exactly(moto: MotoS3, s3: Any,
                                                    tmp_path: Path) -> None:
    doc = StateDoc.new("test")
    doc.serial = 7
    target = store(moto, tmp_path, key="copy.json")
    target.lock("state migrate")
    target.load()
    target.import_doc(doc)
    target.unlock()
    assert read(s3, "copy.json") == doc.to_json()
    assert os.listdir(tmp_path) == [], "no rescue copy when nothing failed"

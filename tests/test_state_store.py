"""The local state store: journal durability, replay, torn writes, compaction, backups,
serial and lineage, locks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from navarch_plan.errors import LockError, StateError
from navarch_plan.state import FORMAT_VERSION, FileLock, LocalStateStore, force_unlock
from navarch_plan.state.model import Intent, NodeRecord
from navarch_plan.state.ops import Depose, IntentStarted, Put, decode_op


def record(node_id: str) -> dict:
    return {"id": node_id, "provider": "sim", "region": "r", "zone": "", "instance_type": "t",
            "name": node_id, "spec": {}, "spec_hash": "h", "status": "running",
            "ip_address": "", "labels": {}, "created_at": "now"}


def put(store: LocalStateStore, address: str, node_id: str) -> None:
    store.record(Put(address, NodeRecord.from_json(record(node_id))))


def store_with(path: str, *node_ids: str, compact: bool = False) -> LocalStateStore:
    """A loaded store holding pool.a[i] -> node_ids[i], compacted or still in the journal."""
    store = LocalStateStore(path, "ws")
    store.load()
    for i, node_id in enumerate(node_ids):
        put(store, f"pool.a[{i}]", node_id)
    if compact:
        store.compact()
    return store


def test_every_record_is_on_disk_before_compaction(tmp_path: Path) -> None:
    path = str(tmp_path / "s.json")
    store = store_with(path, "i-1", "i-2")
    # A second reader (a crash here would leave exactly this) sees both records.
    seen = LocalStateStore(path, "ws").load()
    assert sorted(seen.nodes) == ["pool.a[0]", "pool.a[1]"]
    assert not os.path.exists(path), "no snapshot until compaction"
    assert store.compact() is True
    assert not os.path.exists(path + ".journal")
    data = json.loads(Path(path).read_text())
    assert data["serial"] == 1 and data["format_version"] == FORMAT_VERSION
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_journal_lineage_survives_a_crash_before_the_first_snapshot(tmp_path: Path) -> None:
    path = str(tmp_path / "s.json")
    first = LocalStateStore(path, "ws")
    lineage = first.load().lineage
    put(first, "pool.a[0]", "i-1")
    again = LocalStateStore(path, "ws")
    assert again.load().lineage == lineage
    again.compact()
    assert json.loads(Path(path).read_text())["lineage"] == lineage


def test_torn_last_line_is_ignored_but_a_bad_middle_line_is_an_error(tmp_path: Path) -> None:
    path = str(tmp_path / "s.json")
    store = store_with(path, "i-1")
    store.close_journal()
    with open(path + ".journal", "ab") as f:
        f.write(b'{"op": "put", "address": "pool.a[1]", "rec')  # killed mid-write
    assert sorted(LocalStateStore(path, "ws").load().nodes) == ["pool.a[0]"]
    with open(path + ".journal", "ab") as f:
        f.write(b"\n" + json.dumps({"op": "remove", "address": "pool.a[0]"}).encode() + b"\n")
    with pytest.raises(StateError, match="line 3 is corrupt"):
        LocalStateStore(path, "ws").load()


def test_compaction_keeps_a_backup_and_serial_only_grows_on_change(tmp_path: Path) -> None:
    path = str(tmp_path / "s.json")
    store_with(path, "i-1", compact=True)
    first = Path(path).read_text()
    store = LocalStateStore(path, "ws")
    store.load()
    assert store.compact() is False, "nothing changed: same serial"
    put(store, "pool.a[1]", "i-2")
    assert store.compact() is True
    assert json.loads(Path(path).read_text())["serial"] == 2
    assert Path(path + ".backup").read_text() == first
    assert os.stat(path + ".backup").st_mode & 0o777 == 0o600


def test_a_journal_from_before_the_last_snapshot_is_discarded(tmp_path: Path) -> None:
    path = str(tmp_path / "s.json")
    store = store_with(path, "i-1")
    store.close_journal()
    stale = Path(path + ".journal").read_bytes()
    store.compact()
    # Killed after the snapshot's rename but before the journal was removed:
    Path(path + ".journal").write_bytes(stale)
    doc = LocalStateStore(path, "ws").load()
    assert doc.serial == 1 and sorted(doc.nodes) == ["pool.a[0]"]


def test_a_journal_of_another_lineage_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "s.json")
    store_with(path, "i-1", compact=True)
    Path(path + ".journal").write_text(json.dumps({"op": "begin", "lineage": "x",
                                                   "serial": 1}) + "\n")
    with pytest.raises(StateError, match="different lineage"):
        LocalStateStore(path, "ws").load()


def test_deposed_and_intents_round_trip(tmp_path: Path) -> None:
    path = str(tmp_path / "s.json")
    store = store_with(path, "i-1")
    store.record(Depose("pool.a[0]"))
    store.record(IntentStarted(Intent(id="t1", address="pool.a[0]", provider="sim",
                                      region="r", name="n", started_at="now")))
    store.compact()
    doc = LocalStateStore(path, "ws").load()
    assert list(doc.deposed) == ["i-1"] and doc.nodes == {}
    assert list(doc.intents) == ["t1"]
    with pytest.raises(ValueError, match="unknown journal operation"):
        decode_op({"op": "explode"})


def test_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    path = str(tmp_path / "s.json")
    first = FileLock(path)
    info = first.acquire("apply")
    with pytest.raises(LockError) as caught:
        FileLock(path).acquire("plan", timeout=0.3)
    message = str(caught.value)
    assert info.id in message and "for apply" in message and f"pid {os.getpid()}" in message
    assert f"navarch force-unlock {info.id}" in message
    first.release()
    assert FileLock(path).acquire("plan").operation == "plan"  # free again


def test_a_lock_of_a_dead_local_process_is_called_stale(tmp_path: Path) -> None:
    path = str(tmp_path / "s.json")
    lock = FileLock(path)
    info = lock.acquire("apply")
    data = json.loads(Path(lock.path).read_text())
    data["pid"] = 2 ** 22 + 12345  # beyond pid_max on Linux: no such process
    Path(lock.path).write_text(json.dumps(data))
    with pytest.raises(LockError, match="stale"):
        FileLock(path).acquire("plan")
    with pytest.raises(LockError, match="does not match"):
        force_unlock(path, "wrong-id")
    force_unlock(path, info.id)
    assert not os.path.exists(lock.path)

"""The local state store: a JSON snapshot plus an fsynced append-only journal.

Invariants:
- every recorded operation is on disk (journal line + fsync) before `record` returns,
  so state is durable after every action at a cost independent of fleet size;
- the snapshot is only ever replaced atomically (temp file, fsync, rename), after the
  previous one was copied to `.backup`;
- the journal's first line names the snapshot (lineage, serial) it applies to, so a
  journal left behind by a crash after compaction is recognised and discarded;
- a torn last journal line (killed mid-write) is ignored; a bad line elsewhere is an error.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import threading
from collections.abc import Callable
from typing import Any

from navarch_plan.errors import StateError
from navarch_plan.schemas import validator
from navarch_plan.state.lock import FileLock, LockInfo, force_unlock
from navarch_plan.state.model import REQUIRED_RECORD_FIELDS, StateDoc

__all__ = ["LocalStateStore", "decode_snapshot"]


def _check_shape(data: object) -> None:
    """The schema for everything but the node records, and a direct check of each record:
    validating 10,000 records through jsonschema would cost seconds on every run."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if not isinstance(data.get("format_version"), int) or data["format_version"] > 1:
        return  # upgrade() explains versions it cannot read
    nodes, deposed = data.get("nodes"), data.get("deposed", {})
    errors = list(validator("state").iter_errors({**data, "nodes": {}, "deposed": {}}))
    if errors:
        raise ValueError(f"{'.'.join(map(str, errors[0].absolute_path))}: {errors[0].message}")
    for where, records in (("nodes", nodes), ("deposed", deposed)):
        if not isinstance(records, dict):
            raise ValueError(f"{where} is not an object")
        for key, record in records.items():
            if not isinstance(record, dict) or not record.keys() >= REQUIRED_RECORD_FIELDS:
                raise ValueError(f"{where}.{key} lacks required fields")
            if not isinstance(record["id"], str) or not record["id"]:
                raise ValueError(f"{where}.{key}.id is not a non-empty string")


def write_json_atomically(path: str, data: dict[str, Any]) -> None:
    """Temp file (0600), fsync, rename, fsync the folder: the old file or the new one,
    never a torn one."""
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path)


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def decode_snapshot(raw: bytes, path: str, workspace: str, corrupt: Callable[[str], str],
                    point_at: str) -> tuple[StateDoc, dict[str, Any]]:
    """A snapshot's bytes as a StateDoc of `workspace`, and its content as it is stored
    minus serial (what compact() compares against to tell whether anything changed).
    `corrupt` words the error for this backend; `point_at` says what to fix on a
    workspace mismatch."""
    try:
        data = json.loads(raw)
        _check_shape(data)
        doc = StateDoc.from_json(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise StateError(corrupt(f"is not a valid state file ({exc})")) from None
    if doc.workspace != workspace:
        raise StateError(f"{path} belongs to workspace {doc.workspace!r}, not "
                         f"{workspace!r}; point {point_at}")
    return doc, {k: v for k, v in data.items() if k not in ("serial", "format_version")}


class LocalStateStore:
    def __init__(self, path: str, workspace: str) -> None:
        self.path = path
        self.workspace = workspace
        self.journal_path = path + ".journal"
        self.backup_path = path + ".backup"
        self.doc: StateDoc | None = None
        self._lock = FileLock(path)
        self._mutex = threading.Lock()
        self._journal: Any = None
        self._snapshot_content: dict[str, Any] | None = None
        self._recorded = False  # anything recorded since load (or found in the journal)

    # -- locking -----------------------------------------------------------------
    def lock(self, operation: str, timeout: float = 0.0) -> LockInfo:
        info = self._lock.acquire(operation, timeout)
        # A snapshot write cut short by a crash leaves its temporary file, never renamed
        # into place. Only the lock holder writes snapshots: any found now is dead.
        for leftover in glob.glob(glob.escape(self.path) + ".tmp.*"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
        return info

    @property
    def took_over(self) -> LockInfo | None:
        """The dead holder whose lock the last lock() took over, if it did."""
        return self._lock.took_over

    def unlock(self) -> None:
        self.close_journal()
        self._lock.release()

    def force_unlock(self, lock_id: str) -> LockInfo:
        return force_unlock(self.path, lock_id)

    # -- reading -----------------------------------------------------------------
    def load(self) -> StateDoc:
        """Snapshot with the journal replayed over it; a new empty doc if none exists."""
        doc = self._read_snapshot()
        # A first run killed before its first snapshot leaves only a journal: its
        # lineage is the state's.
        doc = doc or StateDoc.new(self.workspace, self._journal_lineage())
        for number, op in enumerate(self._read_journal(doc), 2):
            try:
                doc.apply_op(op)
            except (StateError, KeyError, TypeError, AttributeError) as exc:
                raise StateError(f"{self.journal_path} line {number} cannot be applied "
                                 f"({exc}); {self.path} itself is intact. Nothing was "
                                 "changed") from None
            self._recorded = True
        self.doc = doc
        return doc

    def exists(self) -> bool:
        return os.path.exists(self.path) or os.path.exists(self.journal_path)

    def has_journal(self) -> bool:
        """A journal to fold into the snapshot (a crashed run's, or this run's)."""
        return os.path.exists(self.journal_path)

    def _read_snapshot(self) -> StateDoc | None:
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read the state file: {exc.strerror}") \
                from None
        doc, self._snapshot_content = decode_snapshot(
            raw, self.path, self.workspace, self._corrupt, "state.path at this workspace's file")
        return doc

    def _corrupt(self, what: str) -> str:
        backup = (f"; the previous version is {self.backup_path}: inspect it, then copy it "
                  f"over {self.path} to restore" if os.path.exists(self.backup_path) else "")
        return f"{self.path} {what}{backup}. Nothing was changed"

    def _journal_lineage(self) -> str | None:
        try:
            with open(self.journal_path, "rb") as f:
                return json.loads(f.readline()).get("lineage")
        except (OSError, ValueError, AttributeError):
            return None

    def _read_journal(self, doc: StateDoc) -> list[dict[str, Any]]:
        try:
            with open(self.journal_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return []
        # Text after the last newline is a write torn by a crash: never acknowledged.
        complete = raw.split(b"\n")[:-1]
        ops = []
        for number, line in enumerate(complete, 1):
            try:
                ops.append(json.loads(line))
            except ValueError:
                raise StateError(f"{self.journal_path} line {number} is corrupt; "
                                 f"{self.path} itself is intact. Nothing was changed") from None
        if not ops:
            return []
        head = ops[0]
        if head.get("op") != "begin" or head.get("lineage") != doc.lineage:
            raise StateError(f"{self.journal_path} does not belong to {self.path} "
                             "(different lineage). Nothing was changed")
        if head.get("serial") != doc.serial:
            return []  # compacted already: the snapshot holds these operations
        return ops[1:]

    # -- writing -----------------------------------------------------------------
    def record(self, *ops: dict[str, Any]) -> None:
        """Apply operations and make them durable (one write, one fsync) before returning.
        Thread-safe. Several operations in one call reach the disk together or not at all
        on replay (a torn write loses only the unfinished last line)."""
        data = b"".join((json.dumps(op, separators=(",", ":")) + "\n").encode() for op in ops)
        with self._mutex:
            assert self.doc is not None, "load() before record()"
            for op in ops:
                self.doc.apply_op(op)
            self._recorded = True
            journal = self._open_journal()
            journal.write(data)
            journal.flush()
            os.fsync(journal.fileno())

    def _open_journal(self) -> Any:
        if self._journal is None:
            assert self.doc is not None
            fresh = not os.path.exists(self.journal_path)
            os.makedirs(os.path.dirname(self.journal_path) or ".", exist_ok=True)
            fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._journal = os.fdopen(fd, "ab")
            if fresh:
                head = {"op": "begin", "lineage": self.doc.lineage, "serial": self.doc.serial}
                self._journal.write((json.dumps(head) + "\n").encode())
        return self._journal

    def close_journal(self) -> None:
        with self._mutex:
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def compact(self) -> bool:
        """Fold the journal into a new snapshot; True when a new serial was written.
        A run that recorded nothing writes nothing (and leaves no file where none was)."""
        assert self.doc is not None
        self.close_journal()
        changed = self._recorded and self.doc.content() != self._snapshot_content
        if changed:
            self.doc.serial += 1
            self._write_snapshot(self.doc.to_json())
            self._snapshot_content = self.doc.content()
        if os.path.exists(self.journal_path):
            os.unlink(self.journal_path)
        return changed

    def _write_snapshot(self, data: dict[str, Any]) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        if os.path.exists(self.path):
            shutil.copyfile(self.path, self.backup_path)
            os.chmod(self.backup_path, 0o600)
        write_json_atomically(self.path, data)

    def import_doc(self, doc: StateDoc) -> None:
        """For migration: write `doc` as the snapshot with its own lineage and serial
        (backup of the previous one first, as always); the journal goes."""
        self.close_journal()
        self._write_snapshot(doc.to_json())
        if os.path.exists(self.journal_path):
            os.unlink(self.journal_path)
        self.doc = doc
        self._snapshot_content = doc.content()
        self._recorded = False

"""The S3 state store: LocalStateStore's interface, with the state in an S3 bucket.

Objects, for the state key K:
  K                               the snapshot (the same JSON as a local state file)
  K.backup                        the previous snapshot (unless bucket versioning is on:
                                  then S3 itself keeps every previous version)
  K.journal/<serial>/<seq>.json   one object per record(): {lineage, serial, seq, ops}
  K.lock                          the lock (s3_lock.py)

Invariants:
- every record() is one create-only PUT, acknowledged before it returns: state is
  durable after every action at a cost independent of the fleet's size (S3 has no
  append, so the journal is a series of small objects instead of lines);
- journal objects name the snapshot serial they apply to: load() replays those of the
  snapshot's serial in seq order; any other serial is the leftover of a compaction
  whose cleanup was cut short, ignored, and deleted by the next compaction;
- the snapshot is written only over the exact version this process read (If-Match on
  its ETag; If-None-Match: * when there was none), so a writer that lost the lock can
  never overwrite a newer state;
- before every write the lock is checked to still be ours (one HEAD): a writer whose
  lock was force-unlocked stops at its next action instead of provisioning beside the
  new holder;
- once a write fails, the newest state this process knows is saved to a local rescue
  file (mode 0600) named in the error, and every later record() fails at once without
  calling S3: no action runs against state that cannot be saved.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

from navarch_plan.clock import SYSTEM_CLOCK, Clock
from navarch_plan.errors import StateError
from navarch_plan.state.checks import decode_snapshot, op_problem
from navarch_plan.state.lock import LockInfo
from navarch_plan.state.model import StateDoc
from navarch_plan.state.ops import JournalOp, JournalProblem, apply_op, replay
from navarch_plan.state.rescue import write_rescue
from navarch_plan.state.stores.loaded import LoadedState
from navarch_plan.state.stores.s3_bucket import Bucket, S3Conflict, S3Error
from navarch_plan.state.stores.s3_journal import fetch_entries, journal_key, journal_keys, seq_of
from navarch_plan.state.stores.s3_lock import LockLost, S3Lock

__all__ = ["S3StateStore"]


def _dumps(data: object) -> bytes:
    """The same bytes a local state file holds."""
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


class S3StateStore(LoadedState):
    def __init__(self, bucket: str, key: str, workspace: str, *, region: str = "",
                 endpoint_url: str = "", rescue_dir: str = ".",
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.bucket = Bucket(bucket, region, endpoint_url)
        self.key = key
        self.workspace = workspace
        self.path = self.bucket.url(key)
        self.journal_prefix = key + ".journal/"
        self.journal_path = self.bucket.url(self.journal_prefix)
        self.backup_path = self.path + ".backup"
        self.rescue_dir = rescue_dir
        self.rescue_path: str | None = None
        self.doc: StateDoc | None = None
        self._lock = S3Lock(self.bucket, key, clock)
        self._mutex = threading.Lock()
        self._etag: str | None = None  # the snapshot version read or written last
        self._snapshot_raw: bytes | None = None
        self._snapshot_content: dict[str, Any] | None = None
        self._recorded = False
        self._journal: list[str] = []  # journal keys of the snapshot's serial
        self._stale: list[str] = []  # journal keys of other serials
        self._seq = 0
        self._failure: StateError | None = None
        self._versioned: bool | None = None

    # -- locking -----------------------------------------------------------------
    def lock(self, operation: str, timeout: float = 0.0) -> LockInfo:
        return self._lock.acquire(operation, timeout)

    def unlock(self) -> None:
        held = self._lock.info
        try:
            self._lock.release()
        except StateError as exc:
            ident = held.id if held else "?"
            if self.rescue_path:
                then = (f"The newest state was saved to {self.rescue_path}. Next: "
                        + self._restore_advice(self.rescue_path, ident))
            else:
                then = f"When S3 is reachable again, run: navarch force-unlock {ident}"
            raise StateError(f"could not release the state lock {ident} on {self.path}: "
                             f"{exc}. {then}") from None

    @property
    def took_over(self) -> LockInfo | None:
        """Never: an S3 lock's holder cannot be proven dead, so it is never taken over."""
        return None

    def force_unlock(self, lock_id: str, force: bool = False) -> LockInfo:
        """`force` changes nothing here: whether an S3 lock's holder lives cannot be
        told, so any lock with the right ID is released (its holder notices at its
        next write, see check_held)."""
        return self._lock.force(lock_id)

    def still_held(self) -> bool:
        """Whether our lock object is still the one in the bucket (one HEAD)."""
        try:
            self._lock.check_held()
        except StateError:
            return False
        return self._lock.etag is not None

    def check_held(self) -> None:
        """Raise unless this run can still record: no S3 write failed, the lock is ours."""
        with self._mutex:
            failure = self._failure
        if failure is not None:
            raise StateError(f"nothing more is recorded in this run: an earlier S3 write "
                             f"failed ({failure})")
        self._lock.check_held()

    # -- reading -----------------------------------------------------------------
    def load(self) -> StateDoc:
        """Snapshot with its journal objects replayed over it; a new doc if none."""
        doc = self._read_snapshot()
        current, self._stale = journal_keys(self.bucket, self.journal_prefix,
                                            doc.serial if doc else 0)
        bodies = fetch_entries(self.bucket, current, self.path)
        # A first run killed before its first snapshot leaves only a journal: its
        # lineage is the state's.
        doc = doc or StateDoc.new(self.workspace, bodies[0].get("lineage") if bodies else None)
        try:
            replay(doc, self._ops(doc, current, bodies))
        except JournalProblem as exc:
            raise StateError(f"{exc.where}: {exc.what}; {self.path} itself is intact. "
                             "Nothing was changed") from None
        self._recorded = self._recorded or bool(current)
        self._journal = current
        self._seq = seq_of(current[-1]) + 1 if current else 0
        self.doc = doc
        return doc

    def _ops(self, doc: StateDoc, keys: list[str], bodies: list[dict[str, Any]]
             ) -> Iterator[tuple[str, object]]:
        """Every operation of the journal objects, in order, with where it comes from."""
        for key, body in zip(keys, bodies, strict=True):
            if body.get("lineage") != doc.lineage:
                raise StateError(f"{self.bucket.url(key)} does not belong to {self.path} "
                                 "(different lineage). Nothing was changed")
            for number, op in enumerate(body["ops"], 1):
                yield f"{self.bucket.url(key)} operation {number}", op

    def exists(self) -> bool:
        return (self.bucket.head(self.key) is not None
                or bool(self.bucket.keys(self.journal_prefix)))

    def has_journal(self) -> bool:
        """Journal objects seen by load() or written since, to fold or clean up."""
        return bool(self._journal or self._stale)

    def _read_snapshot(self) -> StateDoc | None:
        found = self.bucket.get(self.key)
        if found is None:
            self._etag = self._snapshot_raw = None
            return None
        raw, etag = found
        doc, self._snapshot_content = decode_snapshot(
            raw, self.path, self.workspace, self._corrupt,
            "state.key at this workspace's state")
        self._etag, self._snapshot_raw = etag, raw
        return doc

    def _corrupt(self, what: str) -> str:
        previous = ("previous versions are kept by bucket versioning" if self._is_versioned()
                    else f"the previous version is {self.backup_path}")
        return (f"{self.path} {what}; {previous}: inspect it, then copy it over "
                f"{self.path} to restore. Nothing was changed")

    # -- writing -----------------------------------------------------------------
    def record(self, *ops: JournalOp) -> None:
        """Apply operations and make them durable (one PUT) before returning.
        Thread-safe; the operations of one call are one object: all replayed or none."""
        lines = [op.to_json() for op in ops]
        for line in lines:
            problem = op_problem(line)
            if problem is not None:  # a bug upstream: never let it reach the journal
                raise StateError(f"refusing to record an invalid state operation: {problem}")
        with self._mutex:
            doc = self.loaded  # load() before record()
            for op in ops:
                apply_op(doc, op)
            self._recorded = True
            if self._failure is not None:
                raise self._persist_failed(self._failure, again=True)
            key = journal_key(self.journal_prefix, doc.serial, self._seq)
            body = {"lineage": doc.lineage, "serial": doc.serial,
                    "seq": self._seq, "ops": lines}
            self._seq += 1
        # Outside the mutex, so actions in flight save their records in parallel. Replay
        # order (seq) is still the order the operations were applied in; and records of
        # actions running at once concern different addresses, so they commute anyway.
        try:
            self._lock.check_held()
            self.bucket.put(key, json.dumps(body, separators=(",", ":")).encode(),
                            create_only=True)
        except StateError as exc:
            with self._mutex:
                self._failure = self._failure or exc
                raise self._persist_failed(exc) from None
        with self._mutex:
            self._journal.append(key)

    def close_journal(self) -> None:
        """Nothing is held open: every record() is a finished PUT."""

    def compact(self) -> bool:
        """Fold the journal into a new snapshot; True when a new serial was written.
        A run that recorded nothing writes nothing."""
        assert self.doc is not None
        with self._mutex:
            changed = self._recorded and self.doc.content() != self._snapshot_content
            try:
                self._lock.check_held()
                if changed:
                    self._put_snapshot({**self.doc.to_json(), "serial": self.doc.serial + 1})
                    self.doc.serial += 1  # in place: callers hold this very doc
            except StateError as exc:
                if changed or self._failure is not None:
                    raise self._persist_failed(exc) from None
                raise
            self._failure = None
            self._recorded = False
            self._drop_journal()
        return changed

    def import_doc(self, doc: StateDoc) -> None:
        """For migration: write `doc` as the snapshot with its own lineage and serial,
        over the version load() saw; the journal goes."""
        with self._mutex:
            self._lock.check_held()
            self._put_snapshot(doc.to_json())
            self.doc = doc
            self._drop_journal()
            self._recorded = False

    def _put_snapshot(self, data: dict[str, Any]) -> None:
        body = _dumps(data)
        try:
            etag = self.bucket.put(self.key, body, if_match=self._etag,
                                   create_only=self._etag is None)
        except S3Conflict:
            raise S3Conflict(self._conflict_message()) from None
        previous, self._snapshot_raw, self._etag = self._snapshot_raw, body, etag
        # After the snapshot, not before: a writer that loses the race never touches
        # the backup. A failed backup write loses nothing: the snapshot is safe.
        if previous is not None and not self._is_versioned():
            with contextlib.suppress(S3Error):
                self.bucket.put(self.key + ".backup", previous)
        self._snapshot_content = {k: v for k, v in data.items()
                                  if k not in ("serial", "format_version")}

    def _conflict_message(self) -> str:
        seen = self.doc.serial if self.doc else "none"
        try:
            found = self.bucket.get(self.key)
            now = json.loads(found[0]).get("serial") if found else "deleted"
        except (StateError, ValueError):
            now = "unknown"
        return (f"{self.path} was changed by another writer since this run read it "
                f"(serial {seen} then, {now} now): refusing to overwrite the newer state")

    def _drop_journal(self) -> None:
        """Leftovers that fail to delete are harmless: their serial no longer matches
        the snapshot's, so they are ignored, and the next compaction removes them."""
        keys, self._journal, self._stale = self._journal + self._stale, [], []
        with contextlib.suppress(S3Error):
            self.bucket.delete_keys(keys)

    def _is_versioned(self) -> bool:
        if self._versioned is None:
            self._versioned = self.bucket.versioning_enabled()
        return self._versioned

    # -- rescue --------------------------------------------------------------------
    def _persist_failed(self, cause: StateError, again: bool = False) -> StateError:
        """Save the newest state locally and explain where it is and what to do."""
        assert self.doc is not None
        saved = self._write_rescue()
        if again:
            return StateError(f"not saved to {self.path}: an earlier S3 write in this run "
                              f"failed ({cause}); the newest state is in {saved}")
        if isinstance(cause, LockLost | S3Conflict):
            then = ("another navarch owns this state now: do not push this copy over it. "
                    "Instances this run created carry the workspace's labels, so the "
                    "next plan adopts them")
        else:
            then = self._restore_advice(saved)
        return StateError(f"{cause}. The newest state (lineage {self.doc.lineage}, serial "
                          f"{self.doc.serial + 1}) was saved to {saved}; no further action "
                          f"runs against state that cannot be saved. Next: {then}")

    def _restore_advice(self, saved: str, held: str = "") -> str:
        held = held or (self._lock.info.id if self._lock.info else "ID")
        return (f"when S3 is reachable again, release the lock if it is still held "
                f"(navarch force-unlock {held}), then restore the copy: "
                f"navarch state migrate --state {saved} --to {self.path}")

    def _write_rescue(self) -> str:
        assert self.doc is not None
        try:
            self.rescue_path = write_rescue(self.doc, self.rescue_dir)
        except StateError as exc:
            return f"(nowhere: writing a local copy in {self.rescue_dir} failed: {exc})"
        return self.rescue_path

"""The local state store: a JSON snapshot plus an fsynced append-only journal.

Invariants:
- every recorded operation is on disk (journal line + fsync) before `record` returns,
  so state is durable after every action at a cost independent of fleet size;
- the document in memory never runs ahead of the disk: an operation is applied only
  once its journal write succeeded, so a failed write leaves state exactly as the
  snapshot plus the journal say; after one failed write (or a lost lock) nothing more
  is recorded in this run (`check_held` says so before any cloud call);
- the snapshot is only ever replaced atomically (temp file, fsync, rename), after the
  previous one was copied to `.backup` (itself written atomically, mode 0600);
- the journal's first line names the snapshot (lineage, serial) it applies to, so a
  journal left behind by a crash after compaction is recognised and discarded;
- a torn last journal line (killed mid-write) is ignored; a bad line elsewhere, or an
  operation that is malformed or would break an invariant, is an error naming it;
- the lock, the journal, the backup and snapshot writes belong to the file the path
  really names (symlinks resolved): two paths to one file share them, and a symlinked
  state stays a symlink.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

from navarch_plan.clock import SYSTEM_CLOCK, Clock
from navarch_plan.errors import StateError
from navarch_plan.state.advice import journal_failed, restore_advice
from navarch_plan.state.checks import decode_snapshot, op_problem
from navarch_plan.state.files import (
    Files,
    FileWriteError,
    current_files,
    encode_json,
    reason,
    resolve_path,
    what_to_do,
    write_atomically,
    write_json_atomically,
)
from navarch_plan.state.journal import Journal, JournalLines
from navarch_plan.state.lock import FileLock, LockInfo, LockLost, force_unlock, lost_lock_message
from navarch_plan.state.model import StateDoc
from navarch_plan.state.ops import JournalOp, JournalProblem, apply_op, replay
from navarch_plan.state.stores.loaded import LoadedState

__all__ = ["LocalStateStore", "decode_snapshot", "write_json_atomically"]


class LocalStateStore(LoadedState):
    def __init__(self, path: str, workspace: str, files: Files | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = path  # as the user gave it: what messages name
        self.workspace = workspace
        self.files = files or current_files()
        self.real_path = resolve_path(path)  # the file itself: what is written
        self.journal_path = self.real_path + ".journal"
        self.backup_path = self.real_path + ".backup"
        self.doc: StateDoc | None = None
        self._lock = FileLock(path, self.files, clock)
        self._mutex = threading.Lock()
        self._journal = Journal(self.journal_path, self.files)
        self._snapshot_content: dict[str, Any] | None = None
        self._recorded = False  # anything recorded since load (or found in the journal)
        self._failure: StateError | None = None  # the first failed write of this run

    # -- locking -----------------------------------------------------------------
    def lock(self, operation: str, timeout: float = 0.0) -> LockInfo:
        info = self._lock.acquire(operation, timeout)
        self._failure = None
        # A snapshot (or backup) write cut short by a crash leaves its temporary file,
        # never renamed into place. Only the lock holder writes them: any found is dead.
        for leftover in (glob.glob(glob.escape(self.real_path) + ".tmp.*")
                         + glob.glob(glob.escape(self.backup_path) + ".tmp.*")):
            with contextlib.suppress(OSError):
                self.files.unlink(leftover)
        return info

    @property
    def took_over(self) -> LockInfo | None:
        """The dead holder whose lock the last lock() took over, if it did."""
        return self._lock.took_over

    def unlock(self) -> None:
        self.close_journal()
        self._lock.release()

    def force_unlock(self, lock_id: str, force: bool = False) -> LockInfo:
        return force_unlock(self.path, lock_id, force)

    def still_held(self) -> bool:
        """Whether this store still holds its lock (False once force-unlocked)."""
        return self._lock.still_held()

    def check_held(self) -> None:
        """Raise StateError unless this run can still record what it does: its lock is
        still its own (when it took one) and no state write of this run failed. Cheap
        (two stats and a small read): call it before every cloud call."""
        with self._mutex:
            self._check_held()

    def _check_held(self) -> None:
        self._check_lock()
        if self._failure is not None:
            raise StateError(f"nothing more is recorded in this run: an earlier state write "
                             f"failed ({self._failure})")

    def _check_lock(self) -> None:
        """Raise (and latch) LockLost when this store locked and the lock is gone."""
        if isinstance(self._failure, LockLost):
            raise self._failure
        if self._lock.info is not None and not self._lock.still_held():
            lost = lost_lock_message(self._lock.info, self._lock.read(), self._lock.where)
            self._failure = LockLost(
                f"{lost}. This run records nothing more, so it cannot write over another "
                "run's state; instances it created carry this workspace's labels: the next "
                "`navarch plan` adopts them")
            raise self._failure

    # -- reading -----------------------------------------------------------------
    def load(self) -> StateDoc:
        """Snapshot with the journal replayed over it; a new empty doc if none exists."""
        doc = self._read_snapshot()
        try:
            lines = self._journal.read()
        except OSError as exc:
            raise StateError(f"cannot read the journal {self.journal_path}: {reason(exc)}; "
                             f"nothing was changed: {what_to_do(exc)}") from None
        # A first run killed before its first snapshot leaves only a journal: its
        # lineage is the state's.
        doc = doc or StateDoc.new(self.workspace, lines.lineage if lines else None)
        if lines is not None and self._journal_applies(lines, doc):
            try:
                replay(doc, self._ops(lines.lines))
            except JournalProblem as exc:
                raise StateError(self._bad_line(f"{exc.where}: {exc.what}")) from None
            self._recorded = self._recorded or bool(lines.lines)
        self.doc = doc
        return doc

    def _journal_applies(self, lines: JournalLines, doc: StateDoc) -> bool:
        """Whether the journal's operations apply to `doc` (False: compacted already)."""
        if lines.head is None or lines.lineage is None or lines.serial is None:
            try:
                json.loads(lines.first)
            except ValueError:
                raise StateError(self._bad_line(f"{self.journal_path} line 1 is corrupt")
                                 ) from None
            raise StateError(self._bad_line(f"{self.journal_path} line 1: not a begin line "
                                            "naming the snapshot the journal applies to"))
        if lines.lineage != doc.lineage:
            raise StateError(f"{self.journal_path} does not belong to {self.path} "
                             "(different lineage). Nothing was changed")
        return lines.serial == doc.serial

    def _ops(self, lines: list[tuple[int, bytes]]) -> Iterator[tuple[str, object]]:
        for number, line in lines:
            try:
                op = json.loads(line)
            except ValueError:
                raise StateError(self._bad_line(f"{self.journal_path} line {number} is "
                                                "corrupt")) from None
            yield f"{self.journal_path} line {number}", op

    def _bad_line(self, what: str) -> str:
        return f"{what}; {self.path} itself is intact. Nothing was changed"

    def exists(self) -> bool:
        return self._journal.exists() or os.path.exists(self.real_path)

    def has_journal(self) -> bool:
        """A journal to fold into the snapshot (a crashed run's, or this run's)."""
        return self._journal.exists()

    def _read_snapshot(self) -> StateDoc | None:
        try:
            raw = self.files.read(self.real_path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read the state file {self.path}: {reason(exc)}; "
                             f"nothing was changed: {what_to_do(exc)}") from None
        doc, self._snapshot_content = decode_snapshot(
            raw, self.path, self.workspace, self._corrupt, "state.path at this workspace's file")
        return doc

    def _corrupt(self, what: str) -> str:
        backup = restore_advice(self.path, self.backup_path, self._journal, self.files)
        return f"{self.path} {what}{backup}. Nothing was changed"

    # -- writing -----------------------------------------------------------------
    def record(self, *ops: JournalOp) -> None:
        """Make operations durable (one write, one fsync), then apply them. Thread-safe.
        Several operations in one call reach the disk together or not at all (a failed
        write is cut back; a torn write loses only the unfinished last line)."""
        lines = [op.to_json() for op in ops]
        for line in lines:
            problem = op_problem(line)
            if problem is not None:  # a bug upstream: never let it reach the journal
                raise StateError(f"refusing to record an invalid state operation: {problem}")
        data = b"".join((json.dumps(line, separators=(",", ":")) + "\n").encode()
                        for line in lines)
        with self._mutex:
            doc = self.loaded  # load() before record()
            self._check_held()
            head = {"op": "begin", "lineage": doc.lineage, "serial": doc.serial}
            try:
                self._journal.append(data, (json.dumps(head) + "\n").encode())
            except OSError as exc:
                self._failure = StateError(journal_failed(lines, self.journal_path, self.path,
                                                          exc))
                raise self._failure from None
            for op in ops:
                apply_op(doc, op)
            self._recorded = True

    def close_journal(self) -> None:
        with self._mutex:
            self._journal.close()

    def compact(self) -> bool:
        """Fold the journal into a new snapshot; True when a new serial was written.
        A run that recorded nothing writes nothing (and leaves no file where none was).
        After a failed journal write the snapshot is still written (the document holds
        exactly what the journal does), then that failure is raised again: the command
        ends with the error saying what could not be recorded and what to do. After a
        lost lock nothing is written."""
        assert self.doc is not None
        self.close_journal()
        with self._mutex:
            self._check_lock()  # never write over the state of whoever holds it now
        changed = self._recorded and self.doc.content() != self._snapshot_content
        if changed:
            self._write_snapshot({**self.doc.to_json(), "serial": self.doc.serial + 1},
                                 f"{self.journal_path} keeps what this run recorded, and the "
                                 "next command folds it in")
            self.doc.serial += 1
            self._snapshot_content = self.doc.content()
        self._remove_journal()
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure
        return changed

    def _write_snapshot(self, data: dict[str, Any], kept: str) -> None:
        """The backup (the current snapshot's bytes), then the snapshot; `kept` says
        what still holds this run's records when either fails."""
        try:
            previous: bytes | None = self.files.read(self.real_path)
        except FileNotFoundError:
            previous = None
        except OSError as exc:
            raise self._not_written(self.path, exc, kept, "could not be read") from None
        try:
            if previous is not None:
                write_atomically(self.backup_path, previous, self.files)
            write_atomically(self.real_path, encode_json(data), self.files)
        except FileWriteError as exc:
            raise self._not_written(exc.path, exc.cause, kept, replaced=exc.replaced
                                    ) from None

    def _not_written(self, target: str, exc: OSError, kept: str, failed: str = "",
                     replaced: bool = False) -> StateError:
        serial = self.doc.serial if self.doc else 0
        is_backup = target == self.backup_path
        target = f"the {'backup' if is_backup else 'snapshot'} {target}"
        if replaced and not is_backup:
            return self._latch(f"{target} was written (serial {serial + 1}), but its folder "
                               f"could not be synced to disk ({reason(exc)}); {kept}, so "
                               "nothing is lost even if a power loss undoes the write. "
                               f"{what_to_do(exc).capitalize()}, then run `navarch plan`")
        failed = failed or (f"could not be synced to disk ({reason(exc)})" if replaced
                            else f"could not be written ({reason(exc)})")
        return self._latch(f"{target} {failed}; {self.path} was not replaced and still "
                           f"holds serial {serial}, and {kept}. "
                           f"{what_to_do(exc).capitalize()}, then run `navarch plan`")

    def _latch(self, message: str) -> StateError:
        self._failure = StateError(message)
        return self._failure

    def _remove_journal(self) -> None:
        try:
            self._journal.remove()
        except OSError as exc:
            # It names the old serial, so the next load skips it; but this run must not
            # append to it (its lines would be skipped too): nothing more is recorded.
            serial = self.doc.serial if self.doc else 0
            raise self._latch(f"{self.path} was written (serial {serial}), but "
                              f"{self.journal_path}, already folded into it, could not be "
                              f"removed ({reason(exc)}): {what_to_do(exc)}, then remove it "
                              "and run the command again") from None

    def import_doc(self, doc: StateDoc) -> None:
        """For migration: write `doc` as the snapshot with its own lineage and serial
        (backup of the previous one first, as always); the journal goes."""
        self.close_journal()
        self.check_held()
        self._write_snapshot(doc.to_json(), "nothing was migrated")
        self._remove_journal()
        self.doc = doc
        self._snapshot_content = doc.content()
        self._recorded = False



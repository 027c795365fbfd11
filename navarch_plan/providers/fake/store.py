"""The fake cloud's SQLite connections, transactions and call log, apart from what the
calls mean (provider.py): one connection per thread for a file, one shared connection
behind a lock in memory, every call one `BEGIN IMMEDIATE` transaction so that a kill -9
leaves the file whole and concurrent processes see each other's writes."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from navarch_plan.clock import Clock
from navarch_plan.errors import ProviderError
from navarch_plan.providers.fake.db import check_cloud_file, upgrade_cloud_file

__all__ = ["CloudFile"]


class CloudFile:
    """The fake cloud's database: `path` a file that processes share, or None for
    memory private to this object. Any sqlite3 error surfaces as one ProviderError
    naming the file; the file is left as it was."""

    def __init__(self, provider: str, path: str | None, clock: Clock) -> None:
        self.provider, self.path, self.clock = provider, path, clock
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []  # every thread's, for close()
        self._shared_lock = threading.Lock()  # in-memory mode: one connection for all threads
        self._memory = (None if path else
                        sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None))
        try:
            upgrade_cloud_file(self._memory or self._conn())
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            assert self.path is not None
            # Used by its own thread only; close() may run on another once they are done.
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None,
                                   check_same_thread=False)
            check_cloud_file(conn)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._shared_lock:
                self._opened.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection this object opened (each thread has its own)."""
        with self._shared_lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            if self._memory is not None:
                with self._shared_lock, _transaction(self._memory) as db:
                    yield db
            else:
                with _transaction(self._conn()) as db:
                    yield db
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None

    def _unusable(self, exc: sqlite3.Error) -> ProviderError:
        """A damaged, foreign or unreachable cloud file: one clear error, file untouched."""
        return ProviderError(f"the fake cloud's file {self.path} cannot be used ({exc}); "
                             "restore it, or point the provider's path at another file",
                             provider=self.provider, code="fake/unusable-file")

    def log_call(self, db: sqlite3.Connection, op: str, target: str, address: str,
                 started: float, error: Exception | None) -> None:
        db.execute(
            "INSERT INTO calls (op, target, address, started, ended, ok, error, pid)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (op, target, address, started, self.clock.time(), error is None,
             str(error) if error else "", os.getpid()),
        )

    def calls(self, op: str | None = None) -> list[dict[str, Any]]:
        """The call log, oldest first: op, target, address, started, ended, ok, error, pid."""
        with self.transaction() as db:
            db.row_factory = sqlite3.Row
            try:
                query = "SELECT * FROM calls" + (" WHERE op = ?" if op else "") + " ORDER BY seq"
                return [dict(r) for r in db.execute(query, (op,) if op else ())]
            finally:
                db.row_factory = None


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")

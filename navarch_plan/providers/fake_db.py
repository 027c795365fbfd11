"""The fake cloud's file: a file that is not one is refused before anything is written
to it (not even the switch to WAL mode)."""

from __future__ import annotations

import sqlite3

__all__ = ["check_cloud_file"]

COLUMNS = {
    "instances": {"seq", "id", "name", "region", "zone", "instance_type", "status", "ip",
                  "labels", "gpu_count", "created", "ready_at", "deleted", "user_data"},
    "calls": {"seq", "op", "target", "address", "started", "ended", "ok", "error", "pid"},
}


def check_cloud_file(conn: sqlite3.Connection) -> None:
    """Raises sqlite3.DatabaseError unless the database is empty or a fake cloud's
    (reading a file that is not SQLite at all raises here too)."""
    names = [n for (n,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    for name in names:
        found = {row[1] for row in conn.execute(f'PRAGMA table_info("{name}")')}
        if name not in COLUMNS or not found >= COLUMNS[name]:
            raise sqlite3.DatabaseError(f"not a fake cloud database: table {name!r} is not "
                                        "one of the fake cloud's")

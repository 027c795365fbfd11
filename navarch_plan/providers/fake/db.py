"""The fake cloud's file: a file that is not one is refused before anything is written
to it (not even the switch to WAL mode); one written by an older navarch gains the
columns it lacks. Also how a row reads as a Node."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from navarch_plan.model import Node, NodeStatus

__all__ = ["SCHEMA", "check_cloud_file", "upgrade_cloud_file", "status_of"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, name TEXT NOT NULL,
    region TEXT NOT NULL, zone TEXT NOT NULL, instance_type TEXT NOT NULL,
    status TEXT NOT NULL, ip TEXT NOT NULL, labels TEXT NOT NULL, gpu_count INTEGER,
    created REAL NOT NULL, ready_at REAL NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
    user_data TEXT NOT NULL DEFAULT '', idem_key TEXT NOT NULL DEFAULT '',
    gone_at REAL NOT NULL DEFAULT 0, visible_at REAL NOT NULL DEFAULT 0,
    purchase TEXT NOT NULL DEFAULT 'on-demand',
    placement_group TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS instances_live ON instances(deleted, instance_type);
CREATE TABLE IF NOT EXISTS calls (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, target TEXT NOT NULL,
    address TEXT NOT NULL, started REAL NOT NULL, ended REAL NOT NULL, ok INTEGER NOT NULL,
    error TEXT NOT NULL, pid INTEGER NOT NULL);
"""
# Columns later versions added, with their definitions, for files made before them.
_ADDED = {"idem_key": "TEXT NOT NULL DEFAULT ''", "gone_at": "REAL NOT NULL DEFAULT 0",
          "visible_at": "REAL NOT NULL DEFAULT 0",
          "purchase": "TEXT NOT NULL DEFAULT 'on-demand'",
          "placement_group": "TEXT NOT NULL DEFAULT ''"}

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


def upgrade_cloud_file(conn: sqlite3.Connection) -> None:
    found = {row[1] for row in conn.execute('PRAGMA table_info("instances")')}
    for column, definition in _ADDED.items():
        if found and column not in found:
            conn.execute(f"ALTER TABLE instances ADD COLUMN {column} {definition}")
    conn.executescript(SCHEMA)


#: Words of the fake's own that mean the instance has ended (a spot reclaim).
_ENDED_WORDS = frozenset({"preempted"})


def status_of(word: str) -> tuple[NodeStatus, str]:
    """The fake stores a cloud's word: navarch's own statuses read as themselves, any
    other word (`hibernating`) as unknown, the word kept for display."""
    if word in _ENDED_WORDS:
        return NodeStatus.TERMINATED, word
    try:
        return NodeStatus(word), ""
    except ValueError:
        return NodeStatus.UNKNOWN, word


def row_to_node(provider: str, row: tuple[Any, ...], word: str, gpu_count: int,
                gpu_type: str) -> Node:
    node_id, name, region, zone, itype, _, ip, labels = row[:8]
    status, cloud_word = status_of(word)
    return Node(id=node_id, provider=provider, region=region, zone=zone,
                instance_type=itype, status=status, name=name,
                ip_address=ip if status != NodeStatus.PROVISIONING else "",
                gpu_count=gpu_count, gpu_type=gpu_type, labels=json.loads(labels),
                cloud_status=cloud_word)

"""The S3 state journal's objects: `<key>.journal/<serial>/<seq>.json`, one per record().

The serial names the snapshot the entry applies to; seq (zero-padded, and sorted as a
number anyway) is its place in the run. Each body is {lineage, serial, seq, ops}.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from navarch_plan.errors import StateError
from navarch_plan.state.stores.s3_bucket import Bucket

__all__ = ["fetch_entries", "journal_key", "journal_keys", "seq_of"]


def journal_key(prefix: str, serial: int, seq: int) -> str:
    return f"{prefix}{serial}/{seq:08d}.json"


def seq_of(key: str) -> int:
    return int(key.rsplit("/", 1)[1].removesuffix(".json"))


def journal_keys(bucket: Bucket, prefix: str, serial: int) -> tuple[list[str], list[str]]:
    """(keys of this serial in seq order, keys of any other serial). Keys under the
    prefix that do not have our shape are not ours: left alone."""
    current: list[tuple[int, str]] = []
    stale: list[str] = []
    for key in bucket.keys(prefix):
        folder, _, name = key[len(prefix):].partition("/")
        number = name.removesuffix(".json")
        if not (folder.isdigit() and number.isdigit()):
            continue
        if int(folder) == serial:
            current.append((int(number), key))
        else:
            stale.append(key)
    return [key for _, key in sorted(current)], stale


def fetch_entries(bucket: Bucket, keys: list[str], state: str) -> list[dict[str, Any]]:
    """The entries' bodies, in order; fetched concurrently (a crashed long run may have
    left thousands). A missing or malformed entry is an error, never skipped."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        found = list(pool.map(bucket.get, keys))
    bodies = []
    for key, item in zip(keys, found, strict=True):
        try:
            if item is None:
                raise ValueError("vanished while loading")
            body = json.loads(item[0])
            if not isinstance(body, dict) or not isinstance(body.get("ops"), list):
                raise ValueError("not a journal entry")
        except ValueError as exc:
            raise StateError(f"{bucket.url(key)} is corrupt ({exc}); {state} itself is "
                             "intact. Nothing was changed") from None
        bodies.append(body)
    return bodies

"""The local journal file `<state>.journal`: one JSON operation per line, fsynced.

Invariants:
- the first line is `{"op": "begin", "lineage", "serial"}`: the snapshot it applies to;
- an append is all of its lines or none of them: a failed write (ENOSPC mid-line, a
  failed fsync) is cut back to the last good length before the error is raised, so a
  later load never replays half of a call, nor a line after a torn one;
- text after the last newline is a write torn by a crash (never acknowledged) and is
  ignored; any other line that is not JSON is an error.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from navarch_plan.state.files import Files

__all__ = ["Journal", "JournalLines", "JournalSummary"]


@dataclass
class JournalLines:
    """A journal as read: its first line, that line parsed when it is a begin line
    (else None), and the other complete lines, numbered from 2, still as bytes."""

    first: bytes
    head: dict[str, object] | None
    lines: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def lineage(self) -> str | None:
        value = self.head.get("lineage") if self.head else None
        return value if isinstance(value, str) else None

    @property
    def serial(self) -> int | None:
        value = self.head.get("serial") if self.head else None
        return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class JournalSummary:
    """What a journal holds, for messages: how many operations, on which addresses, and
    which instances they name."""

    count: int = 0
    addresses: list[str] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)


class Journal:
    def __init__(self, path: str, files: Files) -> None:
        self.path = path
        self.files = files
        self._fd: int | None = None
        self._size = 0  # bytes known good (fsynced, complete lines)

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def read(self) -> JournalLines | None:
        """None when there is no journal (or nothing complete in it). Raises OSError."""
        try:
            raw = self.files.read(self.path)
        except FileNotFoundError:
            return None
        complete = raw.split(b"\n")[:-1]  # after the last newline: a torn write
        if not complete:
            return None
        try:
            head = json.loads(complete[0])
        except ValueError:
            head = None
        begin = head if isinstance(head, dict) and head.get("op") == "begin" else None
        return JournalLines(complete[0], begin, list(enumerate(complete[1:], 2)))

    def summary(self) -> JournalSummary:
        """Best effort (for an error message about a damaged state): never raises."""
        found = JournalSummary()
        try:
            read = self.read()
        except OSError:
            return found
        for _, line in read.lines if read else []:
            with contextlib.suppress(ValueError):
                op = json.loads(line)
                if not isinstance(op, dict):
                    continue
                found.count += 1
                _add(found.addresses, op_address(op))
                _add(found.instances, op_instance(op))
        return found

    def append(self, data: bytes, head: bytes) -> None:
        """Write `data` (complete lines) durably, after `head` when the file is new or
        empty. Raises OSError after cutting the file back to its last good length."""
        if self._fd is None:
            self._open()
        assert self._fd is not None
        start = self._size
        payload = (head + data) if start == 0 else data
        try:
            self.files.write(self._fd, payload, self.path)
            self.files.fsync(self._fd, self.path)
        except OSError:
            self._cut_back(start)
            raise
        self._size = start + len(payload)

    def _open(self) -> None:
        self.files.makedirs(os.path.dirname(self.path) or ".")
        fd = self.files.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # A crash tore the last line: appending after it would glue the next line
            # to the fragment and make a corrupt middle line. Drop the fragment first.
            size = os.pread(fd, size, 0).rfind(b"\n") + 1
            try:
                self.files.truncate(fd, size, self.path)
            except OSError:
                os.close(fd)
                raise
        self._fd, self._size = fd, size

    def _cut_back(self, size: int) -> None:
        """Drop whatever part of a failed append reached the file. If even that fails,
        close (the store appends nothing more after a failure): the fragment stays at
        the end, where its unfinished last line is ignored on load."""
        assert self._fd is not None
        try:
            self.files.truncate(self._fd, size, self.path)
            self.files.fsync(self._fd, self.path)
        except OSError:
            self.close()

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Raises OSError (not FileNotFoundError: already gone is fine)."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.files.unlink(self.path)


def op_address(op: Mapping[str, Any]) -> Any:
    """The address a journal operation is about (its own, or its intent's), if any.
    Reads untrusted lines: anything may be missing or of the wrong type."""
    intent = op.get("intent")
    return op.get("address") or (intent.get("address") if isinstance(intent, dict) else None)


def op_instance(op: Mapping[str, Any]) -> Any:
    """The instance id a journal operation is about, if any."""
    record = op.get("record")
    return (record.get("id") if isinstance(record, dict) else None) or op.get("node_id")


def _add(seen: list[str], value: object) -> None:
    if isinstance(value, str) and value and value not in seen:
        seen.append(value)

"""Every write (and most reads) of a state file, through one replaceable object.

Why a seam: each OSError on a state file (ENOSPC, EACCES, EROFS, EDQUOT, EIO...) must
become a sentence naming the file and saying what is safe to do, and tests must be able
to make any one operation fail without a real full disk. The store, the lock and the
rescue writer call a `Files`; tests install a subclass that raises where they want with
`use_files()`. Nothing else in the state package writes a state file directly.

Invariants:
- files are created private (mode 0600, O_EXCL for temporaries) and never chmod'ed
  afterwards: there is no instant at which a file has the umask's permissions;
- `write_atomically` leaves the old file or the new one, never a torn one, and never
  a temporary file behind when it fails before its rename.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

from navarch_plan.errors import StateError

__all__ = ["FileWriteError", "Files", "current_files", "reason", "resolve_path",
           "shown_path", "use_files", "what_to_do", "write_atomically",
           "write_json_atomically"]

PRIVATE = 0o600


class Files:
    """The real file system. Subclass and override a method to inject a fault."""

    def open(self, path: str, flags: int, mode: int = PRIVATE) -> int:
        return os.open(path, flags, mode)

    def write(self, fd: int, data: bytes, path: str) -> None:
        """All of `data` (os.write may write less than asked)."""
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    def fsync(self, fd: int, path: str) -> None:
        os.fsync(fd)

    def truncate(self, fd: int, size: int, path: str) -> None:
        os.ftruncate(fd, size)

    def replace(self, source: str, target: str) -> None:
        os.replace(source, target)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_current = Files()


def current_files() -> Files:
    return _current


@contextlib.contextmanager
def use_files(files: Files) -> Iterator[Files]:
    """Every store, lock and writer created inside uses `files` (for fault injection)."""
    global _current
    saved, _current = _current, files
    try:
        yield files
    finally:
        _current = saved


class FileWriteError(Exception):
    """A write of `path` failed. `replaced`: the new content is in place (only the
    folder's fsync failed), so the old one is gone but the new one may not be durable."""

    def __init__(self, path: str, cause: OSError, replaced: bool = False) -> None:
        self.path, self.cause, self.replaced = path, cause, replaced
        super().__init__(f"{path}: {reason(cause)}")


def reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def what_to_do(exc: OSError) -> str:
    """What the user can do about an OSError, as the end of a sentence."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free space (or raise the quota)"
    if exc.errno == errno.EROFS:
        return "put the state on a writable file system (or point the state path elsewhere)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "give this user read and write access to the state folder and its files"
    if exc.errno == errno.EISDIR:
        return "point the state path at a file, not a folder"
    return "fix the cause"


def write_atomically(path: str, data: bytes, files: Files | None = None) -> None:
    """Temp file beside `path` (O_EXCL, 0600), write, fsync, rename over `path`, fsync
    the folder. Raises FileWriteError; before the rename, `path` is untouched and the
    temporary file is removed. A symlink at `path` is replaced, so pass a resolved path
    to write through one (see resolve_path)."""
    files = files or _current
    folder = os.path.dirname(path) or "."
    tmp = f"{path}.tmp.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    try:
        files.makedirs(folder)
        fd = files.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except OSError as exc:
        raise FileWriteError(path, exc) from None
    try:
        try:
            files.write(fd, data, tmp)
            files.fsync(fd, tmp)
        finally:
            os.close(fd)
        files.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            files.unlink(tmp)
        raise FileWriteError(path, exc) from None
    try:
        files.fsync_dir(folder)
    except OSError as exc:
        raise FileWriteError(path, exc, replaced=True) from None


def encode_json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def write_json_atomically(path: str, data: dict[str, Any], files: Files | None = None) -> None:
    """`data` as JSON at `path` (mode 0600), atomically; a one-line StateError naming
    `path` when the file system refuses."""
    try:
        write_atomically(path, encode_json(data), files)
    except FileWriteError as exc:
        if exc.replaced:
            raise StateError(f"{path} was written, but its folder could not be synced to "
                             f"disk ({reason(exc.cause)}): a power loss now could undo it"
                             ) from None
        raise StateError(f"could not write {path}: {reason(exc.cause)}; it was left as it "
                         f"was and no temporary file remains: {what_to_do(exc.cause)}, "
                         "then run the command again") from None


def resolve_path(path: str) -> str:
    """The file `path` really names: itself when no symlink is involved (kept as given,
    so messages read as the user wrote it), else the absolute resolved path. Locks,
    journals, backups and snapshot writes use this, so two paths to one file share one
    lock and one journal, and a symlinked state stays a symlink."""
    real = os.path.realpath(path)
    return path if real == os.path.abspath(path) else real


def shown_path(path: str, real: str) -> str:
    """`path` for messages, with the file it links to when that differs."""
    return path if real == path else f"{path} (a link to {real})"

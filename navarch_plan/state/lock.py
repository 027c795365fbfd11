"""The state lock: a file created with O_EXCL beside the state, holding who and why.

The holder also keeps an flock() on the file for as long as it lives. The kernel drops
that flock when the process dies, however it dies (kill -9 included), so a lock file
whose flock is free was left by a dead process. The next command on the same machine
(same kernel boot: the flock is authoritative there) takes such a lock over, as
Terraform's local backend does, instead of asking for force-unlock. A lock it cannot
prove dead (written by another machine, by hand, or by a navarch without flock) is
reported, with the force-unlock command.

Takeover is race-free: a taker first holds the stale file's flock (only one process
can), checks the file is still the one at the lock path, then atomically renames its
own already-flocked lock file over it.

The same flock keeps force-unlock from removing a living holder's lock (unless forced),
and lets a holder tell it lost its lock (`still_held`: the file at the lock path is no
longer the one it flocked). The lock belongs to the file the state path really names
(symlinks resolved), so two paths to one state file share one lock. Lock files are
created 0600 with O_EXCL; an OSError creating or writing one is a one-line StateError.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, replace

from navarch_plan.clock import SYSTEM_CLOCK, Clock
from navarch_plan.errors import LockError, StateError
from navarch_plan.state.files import (
    Files,
    current_files,
    reason,
    resolve_path,
    shown_path,
    what_to_do,
)
from navarch_plan.state.lock_info import (
    LockInfo,
    LockLost,
    holder_to_force,
    lock_held_error,
    lost_lock_message,
    new_lock_info,
)
from navarch_plan.state.lock_info import current_boot_id as _boot_id  # noqa: F401 (tests)

try:
    import fcntl
except ImportError:  # not a POSIX system: no flock, so no takeover either
    fcntl = None  # type: ignore[assignment]

__all__ = ["LockInfo", "FileLock", "LockLost", "force_unlock", "holder_to_force",
           "lock_held_error", "lost_lock_message", "new_lock_info"]


class FileLock:
    """The lock of the file `state_path` really names (symlinks resolved): two paths to
    one state file share one lock. Messages name the path as the user gave it."""

    def __init__(self, state_path: str, files: Files | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.state_path, self.clock = state_path, clock
        self.real_path = resolve_path(state_path)
        self.where = shown_path(state_path, self.real_path)
        self.path = self.real_path + ".lock"
        self.files = files or current_files()
        self.info: LockInfo | None = None
        self.took_over: LockInfo | None = None  # the dead holder whose lock we took
        self._fd: int | None = None  # kept open, flocked, while we hold the lock

    def acquire(self, operation: str, timeout: float = 0.0) -> LockInfo:
        info = replace(new_lock_info(operation, self.real_path, self.clock),
                       flock=fcntl is not None)
        try:
            self.files.makedirs(os.path.dirname(self.path) or ".")
        except OSError as exc:
            raise self._cannot("create the folder of", exc) from None
        deadline = self.clock.monotonic() + timeout
        retries = 0
        while True:
            outcome = self._create(info) or self._take_over_if_dead(info)
            if outcome == "acquired":
                self.info = info
                return info
            if outcome == "retry" and retries < 50:  # it changed under us: look again
                retries += 1
                continue
            if self.clock.monotonic() >= deadline:
                raise self._held_error()
            retries = 0
            self.clock.sleep(min(0.2, deadline - self.clock.monotonic()))

    def _cannot(self, doing: str, exc: OSError) -> StateError:
        return StateError(f"cannot {doing} the state lock {self.path}: {reason(exc)}; "
                          "nothing was changed (every command that reads state locks it "
                          f"first): {what_to_do(exc)}, then run the command again")

    def _create(self, info: LockInfo) -> str:
        """'acquired' when the lock file was free; '' when one exists."""
        try:
            fd = self.files.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        except FileExistsError:
            return ""
        except OSError as exc:
            raise self._cannot("create", exc) from None
        try:
            if fcntl is not None:
                # Blocking: only a taker probing this new, still empty file can hold its
                # flock, and it lets go at once (an empty lock proves nothing dead).
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._write_info(fd, info, self.path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                self.files.unlink(self.path)
            raise
        self._fd = fd
        return "acquired"

    def _write_info(self, fd: int, info: LockInfo, path: str) -> None:
        try:
            self.files.write(fd, json.dumps(asdict(info)).encode(), path)
            self.files.fsync(fd, path)
        except OSError as exc:
            raise self._cannot("write", exc) from None

    def _take_over_if_dead(self, info: LockInfo) -> str:
        """'acquired', 'held' (its holder lives, or cannot be proven dead) or 'retry'."""
        if fcntl is None:
            return "held"
        try:
            fd = os.open(self.path, os.O_RDONLY)  # flock needs no write access
        except FileNotFoundError:
            return "retry"  # released meanwhile
        except OSError:
            return "held"  # not ours to look at (another user's 0600 lock)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return "held"  # its holder is alive
            if not _is_at(fd, self.path):
                return "retry"  # replaced or released meanwhile
            holder = _parse(os.pread(fd, 1 << 16, 0))
            if holder is None or not holder.flock or not holder.same_machine():
                return "held"  # nothing proves its holder dead: report it instead
            # The holder is dead, and we hold its flock: nobody else can take it now.
            self._replace_dead(info)
            self.took_over = holder
            return "acquired"
        finally:
            os.close(fd)

    def _replace_dead(self, info: LockInfo) -> None:
        """Our own lock file, flocked and written, renamed over the dead one."""
        tmp = f"{self.path}.{info.id}.tmp"
        try:
            new_fd = self.files.open(tmp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        except OSError as exc:
            raise self._cannot("create", exc) from None
        try:
            fcntl.flock(new_fd, fcntl.LOCK_EX)
            self._write_info(new_fd, info, tmp)
            try:
                self.files.replace(tmp, self.path)
            except OSError as exc:
                raise self._cannot("take over", exc) from None
        except BaseException:
            os.close(new_fd)
            with contextlib.suppress(OSError):
                self.files.unlink(tmp)
            raise
        self._fd = new_fd

    def still_held(self) -> bool:
        """Whether this process still holds the lock: the file at the lock path is the
        very file we created and flocked, and it carries our lock ID. False once it was
        force-unlocked (the file is gone) or taken by someone else (another file)."""
        if self.info is None or self._fd is None:
            return False
        try:
            if not _is_at(self._fd, self.path):
                return False
            return _parse(os.pread(self._fd, 1 << 16, 0)) == self.info
        except OSError:
            return False

    def release(self) -> None:
        if self.info is not None and self.read() == self.info:
            # Still flocked: a prober that opened it sees it is gone. If the unlink
            # fails, closing our fd below frees the flock, so the next command on this
            # machine proves us dead and takes the lock over: nothing is stuck.
            with contextlib.suppress(OSError):
                self.files.unlink(self.path)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.info = None

    def read(self) -> LockInfo | None:
        try:
            with open(self.path, "rb") as f:
                raw = f.read(1 << 16)
        except FileNotFoundError:
            return None
        except OSError:
            raw = b""  # another user's lock file: it exists, its content is not ours
        return _parse(raw) or LockInfo(
            "unreadable", "unknown", "unknown", 0, "", "", self.real_path)

    def _held_error(self) -> LockError:
        return lock_held_error(self.read(), self.where)


def _parse(raw: bytes) -> LockInfo | None:
    try:
        return LockInfo(**json.loads(raw))
    except (ValueError, TypeError):
        return None


def _is_at(fd: int, path: str) -> bool:
    """Whether the open file `fd` is still the file at `path`."""
    try:
        at = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (at.st_dev, at.st_ino)


def force_unlock(state_path: str, lock_id: str, force: bool = False) -> LockInfo:
    """Remove the lock with this ID. Refused (unless `force`) while its holder provably
    still runs on this machine: its process exists and holds the lock file's flock.
    A holder forced out notices through FileLock.still_held()."""
    lock = FileLock(state_path)
    holder = holder_to_force(lock.read(), lock_id, lock.where)
    if not force and holder.same_machine() and not holder.is_stale_here() \
            and _flock_held(lock.path):
        raise LockError(
            f"the state lock on {lock.where} is held by {holder.who} (pid {holder.pid}), "
            f"which is still running on this machine and holds the lock ({lock.path}): "
            f"stop that navarch (it releases the lock when it ends), or, to release it "
            f"anyway, run: navarch force-unlock --force {lock_id}", asdict(holder))
    try:
        lock.files.unlink(lock.path)
    except FileNotFoundError:
        raise LockError(f"{lock.where} is not locked (released meanwhile)") from None
    except OSError as exc:
        raise StateError(f"cannot remove the state lock {lock.path}: {reason(exc)}; "
                         f"it is still held: {what_to_do(exc)}, then run force-unlock "
                         "again") from None
    return holder


def _flock_held(path: str) -> bool:
    """Whether a living process holds the flock of the lock file at `path`."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # drops our probe's flock, if we got it
    return False

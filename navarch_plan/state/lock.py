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
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from navarch_plan import __version__
from navarch_plan.errors import LockError

try:
    import fcntl
except ImportError:  # not a POSIX system: no flock, so no takeover either
    fcntl = None  # type: ignore[assignment]

__all__ = ["LockInfo", "FileLock", "force_unlock", "holder_to_force", "lock_held_error",
           "new_lock_info"]


@dataclass(frozen=True)
class LockInfo:
    id: str
    operation: str
    who: str
    pid: int
    version: str
    created: str
    path: str
    boot_id: str = ""  # the kernel boot of the holder's machine (Linux), if known
    flock: bool = False  # the holder keeps an flock() on the lock file while it lives

    def same_machine(self) -> bool:
        """Whether the holder ran under this very kernel, where its flock is visible."""
        mine = _boot_id()
        if self.boot_id and mine:
            return self.boot_id == mine
        return self.who.rsplit("@", 1)[-1] == socket.gethostname()  # less sure: a name

    def describe(self) -> str:
        return (f"ID {self.id}, held by {self.who} (pid {self.pid}) for {self.operation} "
                f"since {self.created}")

    def is_stale_here(self) -> bool:
        """True only when the holder was on this host and its process is gone."""
        if self.who.rsplit("@", 1)[-1] != socket.gethostname() or not self.same_machine():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def new_lock_info(operation: str, where: str) -> LockInfo:
    """A fresh lock record for this process; `where` names the state it guards."""
    return LockInfo(str(uuid.uuid4()), operation, _who(), os.getpid(), __version__,
                    datetime.now(UTC).isoformat(timespec="seconds"), where, _boot_id())


def lock_held_error(holder: LockInfo | None, where: str) -> LockError:
    """The one message every backend gives when the lock is taken: who holds it, since
    when, for what, whether it looks stale, and how to release it."""
    if holder is None:
        return LockError(f"Error acquiring the state lock on {where}: "
                         "it was released meanwhile; try again")
    stale = (" The holder's process no longer exists on this host: the lock is stale."
             if holder.is_stale_here() else "")
    return LockError(
        f"Error acquiring the state lock on {where}: {holder.describe()}."
        f"{stale} If no navarch is running, release it with: "
        f"navarch force-unlock {holder.id}",
        asdict(holder),
    )


class FileLock:
    def __init__(self, state_path: str) -> None:
        self.state_path = state_path
        self.path = state_path + ".lock"
        self.info: LockInfo | None = None
        self.took_over: LockInfo | None = None  # the dead holder whose lock we took
        self._fd: int | None = None  # kept open, flocked, while we hold the lock

    def acquire(self, operation: str, timeout: float = 0.0) -> LockInfo:
        info = replace(new_lock_info(operation, self.state_path), flock=fcntl is not None)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        deadline = time.monotonic() + timeout
        retries = 0
        while True:
            outcome = self._create(info) or self._take_over_if_dead(info)
            if outcome == "acquired":
                self.info = info
                return info
            if outcome == "retry" and retries < 50:  # it changed under us: look again
                retries += 1
                continue
            if time.monotonic() >= deadline:
                raise self._held_error()
            retries = 0
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _create(self, info: LockInfo) -> str:
        """'acquired' when the lock file was free; '' when one exists."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        except FileExistsError:
            return ""
        try:
            if fcntl is not None:
                # Blocking: only a taker probing this new, still empty file can hold its
                # flock, and it lets go at once (an empty lock proves nothing dead).
                fcntl.flock(fd, fcntl.LOCK_EX)
            _write_info(fd, info)
        except BaseException:
            os.close(fd)
            os.unlink(self.path)
            raise
        self._fd = fd
        return "acquired"

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
            tmp = f"{self.path}.{info.id}.tmp"
            new_fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
            try:
                fcntl.flock(new_fd, fcntl.LOCK_EX)
                _write_info(new_fd, info)
                os.replace(tmp, self.path)
            except BaseException:
                os.close(new_fd)
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            self._fd = new_fd
            self.took_over = holder
            return "acquired"
        finally:
            os.close(fd)

    def release(self) -> None:
        if self.info is not None and self.read() == self.info:
            os.unlink(self.path)  # still flocked: a prober that opened it sees it is gone
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
            "unreadable", "unknown", "unknown", 0, "", "", self.state_path)

    def _held_error(self) -> LockError:
        return lock_held_error(self.read(), self.state_path)


def _write_info(fd: int, info: LockInfo) -> None:
    os.write(fd, json.dumps(asdict(info)).encode())
    os.fsync(fd)


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


def holder_to_force(holder: LockInfo | None, lock_id: str, where: str) -> LockInfo:
    """The lock force-unlock may remove: one is held, and it carries exactly this ID
    (so a lock taken since the user looked is never removed by mistake)."""
    if holder is None:
        raise LockError(f"{where} is not locked")
    if holder.id != lock_id:
        raise LockError(f"lock ID {lock_id} does not match the lock held: {holder.describe()}")
    return holder


def force_unlock(state_path: str, lock_id: str) -> LockInfo:
    lock = FileLock(state_path)
    holder = holder_to_force(lock.read(), lock_id, state_path)
    os.unlink(lock.path)
    return holder

"""The state lock: a file created with O_EXCL beside the state, holding who and why."""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from navarch_plan import __version__
from navarch_plan.errors import LockError

__all__ = ["LockInfo", "FileLock", "force_unlock"]


@dataclass(frozen=True)
class LockInfo:
    id: str
    operation: str
    who: str
    pid: int
    version: str
    created: str
    path: str

    def describe(self) -> str:
        return (f"ID {self.id}, held by {self.who} (pid {self.pid}) for {self.operation} "
                f"since {self.created}")

    def is_stale_here(self) -> bool:
        """True only when the holder was on this host and its process is gone."""
        if self.who.rsplit("@", 1)[-1] != socket.gethostname():
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


class FileLock:
    def __init__(self, state_path: str) -> None:
        self.state_path = state_path
        self.path = state_path + ".lock"
        self.info: LockInfo | None = None

    def acquire(self, operation: str, timeout: float = 0.0) -> LockInfo:
        info = LockInfo(str(uuid.uuid4()), operation, _who(), os.getpid(), __version__,
                        datetime.now(UTC).isoformat(timespec="seconds"), self.state_path)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                if time.monotonic() >= deadline:
                    raise self._held_error() from None
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(asdict(info), f)
                f.flush()
                os.fsync(f.fileno())
            self.info = info
            return info

    def release(self) -> None:
        if self.info is not None and self.read() == self.info:
            os.unlink(self.path)
        self.info = None

    def read(self) -> LockInfo | None:
        try:
            with open(self.path) as f:
                return LockInfo(**json.load(f))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            return LockInfo("unreadable", "unknown", "unknown", 0, "", "", self.state_path)

    def _held_error(self) -> LockError:
        holder = self.read()
        if holder is None:
            return LockError(f"Error acquiring the state lock on {self.state_path}: "
                             "it was released meanwhile; try again")
        stale = (" The holder's process no longer exists on this host: the lock is stale."
                 if holder.is_stale_here() else "")
        return LockError(
            f"Error acquiring the state lock on {self.state_path}: {holder.describe()}."
            f"{stale} If no navarch is running, release it with: "
            f"navarch force-unlock {holder.id}",
            asdict(holder),
        )


def force_unlock(state_path: str, lock_id: str) -> LockInfo:
    lock = FileLock(state_path)
    holder = lock.read()
    if holder is None:
        raise LockError(f"{state_path} is not locked")
    if holder.id != lock_id:
        raise LockError(f"lock ID {lock_id} does not match the lock held: {holder.describe()}")
    os.unlink(lock.path)
    return holder

"""What a lock holds (who, why, since when) and the messages every backend gives about
one: held by someone else, no longer ours, or not the one force-unlock was asked for.
"""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from dataclasses import asdict, dataclass

from navarch_plan import __version__
from navarch_plan.clock import SYSTEM_CLOCK, Clock
from navarch_plan.errors import LockError, StateError

__all__ = ["LockInfo", "LockLost", "current_boot_id", "holder_to_force", "lock_held_error",
           "lost_lock_message", "new_lock_info"]


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
        mine = current_boot_id()
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


def current_boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def new_lock_info(operation: str, where: str, clock: Clock = SYSTEM_CLOCK) -> LockInfo:
    """A fresh lock record for this process; `where` names the state it guards."""
    return LockInfo(str(uuid.uuid4()), operation, _who(), os.getpid(), __version__,
                    clock.now_iso(), where, current_boot_id())


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


def holder_to_force(holder: LockInfo | None, lock_id: str, where: str) -> LockInfo:
    """The lock force-unlock may remove: one is held, and it carries exactly this ID
    (so a lock taken since the user looked is never removed by mistake)."""
    if holder is None:
        raise LockError(f"{where} is not locked")
    if holder.id != lock_id:
        raise LockError(f"lock ID {lock_id} does not match the lock held: {holder.describe()}")
    return holder


class LockLost(StateError):
    """This process held the lock, and now someone else does (or nobody)."""


def lost_lock_message(ours: LockInfo | None, now: LockInfo | None, where: str) -> str:
    held = f"it is now held by {now.describe()}" if now else "nobody holds it now"
    return (f"the state lock {ours.id if ours else '?'} on {where} is no longer ours "
            f"(force-unlocked?); {held}")

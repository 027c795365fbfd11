"""State: what navarch created, kept durably (snapshot + journal) under a lock."""

from navarch_plan.state.lock import FileLock, LockInfo, LockLost, force_unlock
from navarch_plan.state.model import FORMAT_VERSION, Intent, NodeRecord, StateDoc
from navarch_plan.state.stores.local import LocalStateStore

__all__ = ["FORMAT_VERSION", "FileLock", "Intent", "LocalStateStore", "LockInfo", "LockLost",
           "NodeRecord", "StateDoc", "force_unlock"]

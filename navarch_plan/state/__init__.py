"""State: what navarch created, kept durably (snapshot + journal) under a lock.

model.py is pure data (the planner reads it); the stores, the lock and the files they
write are effects, imported only when asked for: importing navarch_plan.state.model (as
the planner does) loads no lock, store or file code.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["FORMAT_VERSION", "FileLock", "Intent", "LocalStateStore", "LockInfo", "LockLost",
           "NodeRecord", "StateDoc", "force_unlock"]

_WHERE = {
    "FileLock": "lock", "LockInfo": "lock", "LockLost": "lock", "force_unlock": "lock",
    "FORMAT_VERSION": "model", "Intent": "model", "NodeRecord": "model", "StateDoc": "model",
    "LocalStateStore": "stores.local",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)

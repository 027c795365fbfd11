"""Google Compute Engine: the provider (provider.py, google-cloud-compute) and its
catalog (catalog.py).

Nothing here imports the cloud's SDK: the provider module (and the SDK) load when one
of its names is first asked for, so a config that never uses this cloud never pays
for it."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["GcpProvider", "DEFAULT_IMAGE"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.provider"), name)

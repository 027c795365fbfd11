"""Google Compute Engine: the provider (provider.py, google-cloud-compute) and its
catalog (catalog.py).

Nothing here imports the cloud's SDK: the provider module (and the SDK) load when one
of its names is first asked for, so a config that never uses this cloud never pays
for it."""

from __future__ import annotations

from navarch_plan.lazy import lazy_attributes

__all__ = ["GcpProvider", "DEFAULT_IMAGE"]

__getattr__ = lazy_attributes(__name__, dict.fromkeys(__all__, "provider"))

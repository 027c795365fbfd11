"""Checks of a loaded config against what the providers offer."""

from __future__ import annotations

from collections.abc import Mapping

from navarch_plan.catalog import FAKE_REGIONS
from navarch_plan.config import Config
from navarch_plan.errors import ConfigError
from navarch_plan.providers.base import InstanceTypeLister, Provider

__all__ = ["validate_against_catalogs"]


def validate_against_catalogs(config: Config, providers: Mapping[str, Provider]) -> None:
    """Every instance type must be in its provider's catalog (for providers that list
    one); the fake cloud's regions are known, so they are checked too."""
    catalogs = {name: {t.name for t in p.list_instance_types()}
                for name, p in providers.items() if isinstance(p, InstanceTypeLister)}
    for node in config.desired.values():
        where = f"{'pools' if node.index is not None else 'nodes'}.{node.group}"
        known = catalogs.get(node.provider)
        if known is not None and node.instance_type not in known:
            raise ConfigError(f"instance type {node.instance_type!r} is not offered by "
                              f"{node.provider} (offered: {', '.join(sorted(known))})",
                              config.file, path=where)
        if node.provider_type == "fake" and node.region not in FAKE_REGIONS:
            raise ConfigError(f"region {node.region!r} does not exist on the fake cloud "
                              f"(regions: {', '.join(FAKE_REGIONS)})", config.file, path=where)

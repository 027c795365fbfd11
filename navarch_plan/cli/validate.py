"""Checks of a loaded config against what the providers offer, without creating anything."""

from __future__ import annotations

from collections.abc import Mapping

from navarch_plan.catalog.facts import type_facts
from navarch_plan.config import Config
from navarch_plan.config.desired import Placement
from navarch_plan.errors import ConfigError
from navarch_plan.providers.base import InstanceTypeLister, Provider

__all__ = ["validate_against_catalogs"]


def validate_against_catalogs(config: Config, providers: Mapping[str, Provider]) -> None:
    """Every candidate's instance type must be in its provider's catalog (for providers
    that list one), and its region among those the shipped catalog knows for that type
    (where it records regions: the fake cloud and GCP; Lambda's and AWS's are open)."""
    catalogs = {name: {t.name for t in p.list_instance_types()}
                for name, p in providers.items() if isinstance(p, InstanceTypeLister)}
    checked: set[tuple[str, Placement]] = set()
    for node in config.desired.values():
        where = f"{'pools' if node.index is not None else 'nodes'}.{node.group}"
        for placement in node.candidates:
            if (node.group, placement) in checked:
                continue
            checked.add((node.group, placement))
            _check(placement, catalogs.get(placement.provider), config.file, where)


def _check(p: Placement, offered: set[str] | None, file: str, where: str) -> None:
    if offered is not None and p.instance_type not in offered:
        raise ConfigError(f"instance type {p.instance_type!r} is not offered by "
                          f"{p.provider} (offered: {', '.join(sorted(offered))})", file,
                          path=where)
    facts = type_facts(p.provider_type, p.instance_type)
    regions = facts.regions if facts else ()
    if regions and p.region not in regions:
        raise ConfigError(f"region {p.region!r} does not offer {p.instance_type} on "
                          f"{p.provider} (regions: {', '.join(regions)})", file, path=where)

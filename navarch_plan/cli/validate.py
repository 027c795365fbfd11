"""Checks of a loaded config against what the clouds offer, without creating anything:
offline against the catalogs shipped with navarch, and with `--live` against the
catalogs the providers list. Pure but for `live_catalogs`, which builds providers, and
`key_file_problems`, which reads the .pub files the nodes name (as apply will)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from navarch_plan.apply.keys import public_key_text
from navarch_plan.catalog.facts import CLOUDS, cloud_table, type_facts
from navarch_plan.config import Config, PartialConfigErrors
from navarch_plan.config.desired import Placement
from navarch_plan.config.yamlpos import Path
from navarch_plan.errors import ConfigError, ConfigErrors
from navarch_plan.providers.base import InstanceTypeLister, Provider
from navarch_plan.words import did_you_mean

__all__ = ["catalog_problems", "config_warnings", "key_file_problems", "live_catalogs",
           "partial_problems", "raise_all", "shipped_catalogs"]

#: How cloud-init recognises user data (its documented formats). Anything else is
#: ignored by cloud-init on EC2, GCE and Lambda: the node boots without it.
_CLOUD_INIT_STARTS = ("#!", "#cloud-config", "#include", "#cloud-boothook", "#part-handler",
                      "## template: jinja", "Content-Type: multipart/")

#: Clouds whose shipped table may lag the cloud's own list (it adds types): a type
#: missing offline is a warning there; `--live` asks the cloud.
_LIVE_LISTED = frozenset({"lambda"})


def config_warnings(config: Config) -> list[ConfigError]:
    """What is valid but likely not meant: no `workspace:`, user_data cloud-init ignores."""
    found = []
    if not config.workspace_explicit:
        found.append(ConfigError(
            "no `workspace:`, so it uses `default`: another config that leaves it out too "
            "shares the name; each state labels its instances with its lineage and leaves "
            "the other's alone, but both cannot build the same addresses. Name it "
            "(`workspace: NAME`).", config.file))
    seen = set()
    for node in config.desired.values():
        text = node.user_data.lstrip("\ufeff")
        if node.group in seen or not text or text.startswith(_CLOUD_INIT_STARTS):
            continue
        seen.add(node.group)
        where = ("pools" if node.index is not None else "nodes", node.group, "user_data")
        found.append(config.error(where, "user_data starts with neither #! nor "
                                  "#cloud-config: cloud-init on EC2, GCE and Lambda ignores "
                                  "it, so the node boots without it"))
    return found


def key_file_problems(config: Config) -> list[ConfigError]:
    """Each ssh_public_keys .pub file a node uses that apply could not read, or that
    holds no public key: found by validate (a PR lint job), not at the first launch."""
    used = {name: value for node in config.desired.values()
            for name, value in node.public_keys.items()}
    found = []
    for name, value in sorted(used.items()):
        why = public_key_text(value)[1]
        if why is not None:
            found.append(config.error(("ssh_public_keys", name), f"{name}: {why}"))
    return found


def partial_problems(exc: PartialConfigErrors, live_command: str = "navarch validate --live"
                     ) -> tuple[list[ConfigError], list[ConfigError]]:
    """(errors, warnings): a config's load errors with what the offline checks find in the
    part of it that loaded (its pools whose providers resolved), in file order, so that
    one run reports a misspelt instance type beside an unknown depends_on."""
    partial = exc.partial
    errors, warnings = catalog_problems(partial, shipped_catalogs(partial), False,
                                        live_command)
    found = sorted([*exc.errors, *errors, *key_file_problems(partial)],
                   key=lambda e: (e.line, e.column))
    return found, config_warnings(partial) + warnings


def shipped_catalogs(config: Config) -> dict[str, set[str]]:
    """Provider name -> the instance types navarch's own catalog knows for its cloud
    (providers of a plugin's type have none: not checked offline)."""
    return {name: set(cloud_table(p.type).types) for name, p in config.providers.items()
            if p.type in CLOUDS}


def live_catalogs(providers: Mapping[str, Provider]) -> dict[str, set[str]]:
    """Provider name -> the types its cloud lists now (network; credentials needed)."""
    return {name: {t.name for t in p.list_instance_types()}
            for name, p in providers.items() if isinstance(p, InstanceTypeLister)}


def catalog_problems(config: Config, catalogs: Mapping[str, set[str]], live: bool,
                     live_command: str = "navarch validate --live"
                     ) -> tuple[list[ConfigError], list[ConfigError]]:
    """(errors, warnings): each candidate's instance type in its provider's catalog, and
    its region among those the shipped catalog records for the type (the fake cloud
    and GCP; Lambda's and AWS's are open). One finding per pool and placement; a type
    only the live catalog can settle names `live_command`."""
    errors: list[ConfigError] = []
    warnings: list[ConfigError] = []
    checked: set[tuple[str, Placement]] = set()
    for node in config.desired.values():
        where = ("pools" if node.index is not None else "nodes", node.group)
        for p in node.candidates:
            if (node.group, p) not in checked:
                checked.add((node.group, p))
                for error, fatal in _problems(config, p, catalogs.get(p.provider), where,
                                              live_command if not live else None):
                    (errors if fatal else warnings).append(error)
    return errors, warnings


def raise_all(errors: list[ConfigError]) -> None:
    if errors:
        raise ConfigErrors.of(errors)


def _problems(config: Config, p: Placement, offered: set[str] | None, where: Path,
              live_command: str | None) -> Iterator[tuple[ConfigError, bool]]:
    """`live_command` is None when the catalogs are the clouds' own (--live)."""
    live = live_command is None
    if offered is not None and p.instance_type not in offered:
        listed = (f"is not offered by {p.provider}" if live else
                  f"is not in navarch's {p.provider_type} catalog (provider {p.provider})")
        message = (f"instance type {p.instance_type!r} {listed}"
                   f"{did_you_mean(p.instance_type, offered)}")
        fatal = live or p.provider_type not in _LIVE_LISTED
        if not fatal:
            message += f"; `{live_command}` asks the cloud"
        yield config.error(_written(config, p, where, "instance_type"), message), fatal
        return
    facts = type_facts(p.provider_type, p.instance_type)
    regions = facts.regions if facts else ()
    if regions and p.region not in regions:
        yield config.error(_written(config, p, where, "region"), (
            f"region {p.region!r} does not offer {p.instance_type} on {p.provider}"
            f"{did_you_mean(p.region, regions)} (regions: {', '.join(regions)})")), True


def _written(config: Config, p: Placement, where: Path, key: str) -> Path:
    """Where the candidate's `key` was written: its providers entry, the pool, the
    defaults, or the provider; else the pool itself."""
    entry = (*where, "providers", p.entry)
    places = {"instance_type": [(*entry, "instance_type"), (*where, "instance_type"),
                                (*where, "gpu")],
              "region": [(*entry, "regions"), (*where, "region"), ("defaults", "region"),
                         ("providers", p.provider, "region")]}[key]
    return next((path for path in places if path in config.positions), where)

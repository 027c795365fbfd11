"""The configuration's types: what a loaded config is (Config, ProviderConfig,
StateConfig) and where in its file each part was written (Context). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from navarch_plan.catalog.facts import SPOT
from navarch_plan.config.desired import DesiredNode, Group, fingerprint
from navarch_plan.config.yamlpos import Path, Positions, path_str
from navarch_plan.errors import ConfigError

__all__ = ["Config", "Context", "ProviderConfig", "StateConfig"]


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    type: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class StateConfig:
    backend: str  # "local" | "s3"
    path: str  # local backend: absolute or relative to the working directory
    bucket: str = ""
    key: str = ""
    region: str = ""
    endpoint_url: str = ""


@dataclass(frozen=True)
class Config:
    file: str
    base_dir: str
    workspace: str
    state: StateConfig
    providers: Mapping[str, ProviderConfig]
    groups: Mapping[str, Group]
    desired: Mapping[str, DesiredNode]  # by address, in config order
    config_hash: str
    max_hourly_cost: float | None = None
    workspace_explicit: bool = True  # False: `workspace:` left out, "default" taken
    # Every value a ${NAME} in the file was replaced by: never shown in any output.
    env_values: frozenset[str] = frozenset()

    fingerprint_key: str = ""  # the state's, once keyed (see keyed())
    # Where each key path was written (line, column): for checks made after loading.
    positions: Positions = field(default_factory=dict, compare=False, repr=False)

    def error(self, path: Path, message: str) -> ConfigError:
        """An error pointing at `path` in this config's file (or its nearest parent)."""
        return Context(self.file, self.positions).error(path, message)

    def keyed(self, key: str) -> Config:
        """This config with its fingerprints keyed by a state's key (desired.fingerprint):
        what it publishes in plans can then not be brute-forced."""
        if key == self.fingerprint_key:
            return self
        desired = {a: n.keyed(key) for a, n in self.desired.items()}
        return replace(self, desired=MappingProxyType(desired), fingerprint_key=key)

    @property
    def published_hash(self) -> str:
        """The config's hash as plans carry it: keyed, since `${NAME}` values are in it."""
        return fingerprint(self.config_hash, self.fingerprint_key) if self.fingerprint_key \
            else self.config_hash

    def secrets(self, env: Mapping[str, str]) -> frozenset[str]:
        """What output must never show: the environment's values the config used, and
        the keys its providers read from the environment (`api_key_env`)."""
        keys = {env.get(str(p.options.get("api_key_env", "")), "")
                for p in self.providers.values()}
        return frozenset(v for v in self.env_values | keys | {self.fingerprint_key} if v)

    def regions_of(self, provider: str) -> list[str]:
        """Every region any candidate may use on this provider (not only first choices:
        a failover lands in the others, and the provider must list them too)."""
        return sorted({p.region for d in self.desired.values() for p in d.candidates
                       if p.provider == provider})

    def buys_spot_on(self, provider: str) -> bool:
        """Whether any candidate on this provider is a spot one (`spot_policy` spot or
        auto): only then does a plan need the provider's spot prices."""
        return any(p.purchase == SPOT for d in self.desired.values() for p in d.candidates
                   if p.provider == provider)


class Context:
    """What every check needs to point at a place in the file."""

    def __init__(self, file: str, positions: Positions) -> None:
        self.file, self.positions = file, positions

    def error(self, path: Path, message: str) -> ConfigError:
        probe = path
        while probe and probe not in self.positions:
            probe = probe[:-1]
        line, col = self.positions.get(probe, (0, 0))
        return ConfigError(message, self.file, line, col, path_str(path))



"""Provider types by name: the built-in ones, and third-party ones registered under the
entry-point group `navarch_plan.providers`, all as `ProviderType`s. A type's module is
light; its cloud SDK is imported only when a provider of it is built."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from navarch_plan.apply.throttle import SCHEDULER_OPTIONS
from navarch_plan.errors import ConfigError
from navarch_plan.providers.base import BuildContext, Provider, ProviderType
from navarch_plan.providers.declared import type_from_class
from navarch_plan.words import did_you_mean

if TYPE_CHECKING:
    from navarch_plan.config.types import ProviderConfig

__all__ = ["BUILTIN_TYPES", "build_provider", "builtin_types", "provider_type",
           "provider_types"]

#: The only list of built-in types: name -> "module:attribute" of its ProviderType.
BUILTIN_TYPES = {
    "fake": "navarch_plan.providers.fake.kind:FAKE",
    "lambda": "navarch_plan.providers.lambda_.kind:LAMBDA",
    "gcp": "navarch_plan.providers.gcp.kind:GCP",
    "aws": "navarch_plan.providers.aws.kind:AWS",
}
_GROUP = "navarch_plan.providers"


@functools.cache
def builtin_types() -> Mapping[str, ProviderType]:
    found: dict[str, ProviderType] = {}
    for name, target in BUILTIN_TYPES.items():
        module, _, attribute = target.partition(":")
        found[name] = getattr(importlib.import_module(module), attribute)
    return found


@functools.cache
def provider_types() -> Mapping[str, ProviderType]:
    """The built-ins and every installed plugin (a plugin cannot replace a built-in).
    A plugin's entry point names a ProviderType, or a provider class with
    `from_config` (see declared.type_from_class)."""
    found = dict(builtin_types())
    for ep in entry_points(group=_GROUP):
        if ep.name not in found:
            found[ep.name] = _as_type(ep.name, ep.load())
    return found


def provider_type(name: str, types: Mapping[str, ProviderType] | None = None
                  ) -> ProviderType:
    types = provider_types() if types is None else types
    if name not in types:
        raise ConfigError(f"unknown provider type {name!r}{did_you_mean(name, types)} "
                          f"(known: {', '.join(sorted(types))})")
    return types[name]


def build_provider(config: ProviderConfig, env: Mapping[str, str],
                   context: BuildContext | None = None,
                   types: Mapping[str, ProviderType] | None = None) -> Provider:
    """The provider a config declares, from its own options (navarch's shared ones,
    which the scheduler reads, and `type` left out)."""
    kind = provider_type(config.type, types)
    options = {k: v for k, v in config.options.items()
               if k not in SCHEDULER_OPTIONS and k != "type"}
    try:
        return kind.build(config.name, options, env, context or BuildContext())
    except ImportError as exc:
        if config.type not in BUILTIN_TYPES:
            raise
        raise ConfigError(f"provider type {config.type!r} needs an extra package "
                          f"({exc.name}); install it with: "
                          f"pip install 'navarch-plan[{config.type}]'") from None


def _as_type(name: str, loaded: object) -> ProviderType:
    if isinstance(loaded, ProviderType):
        return loaded
    if callable(getattr(loaded, "from_config", None)):
        return type_from_class(name, loaded)
    raise ConfigError(f"the entry point {name!r} in {_GROUP} names neither a provider "
                      "type nor a provider class with from_config")

"""Provider types by name: the built-in ones, and third-party ones registered under
the entry-point group `navarch_plan.providers`. Cloud SDKs are imported only here,
only when a config uses that type."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from navarch_plan.apply.throttle import SCHEDULER_OPTIONS
from navarch_plan.errors import ConfigError
from navarch_plan.providers.base import Provider

if TYPE_CHECKING:
    from navarch_plan.config import ProviderConfig

__all__ = ["BUILTIN_TYPES", "provider_class", "build_provider", "known_types"]

BUILTIN_TYPES = {
    "fake": "navarch_plan.providers.fake:FakeProvider",
    "lambda": "navarch_plan.providers.lambda_:LambdaProvider",
    "gcp": "navarch_plan.providers.gcp:GcpProvider",
    "aws": "navarch_plan.providers.aws:AwsProvider",
}


def known_types() -> frozenset[str]:
    return frozenset({*BUILTIN_TYPES, *(ep.name for ep in
                                        entry_points(group="navarch_plan.providers"))})


def provider_class(type_name: str) -> Any:
    target = BUILTIN_TYPES.get(type_name)
    if target is None:
        plugins = {ep.name: ep for ep in entry_points(group="navarch_plan.providers")}
        if type_name not in plugins:
            known = ", ".join(sorted({*BUILTIN_TYPES, *plugins}))
            raise ConfigError(f"unknown provider type {type_name!r} (known: {known})")
        return plugins[type_name].load()
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"provider type {type_name!r} needs an extra package ({exc.name}); "
                          f"install it with: pip install 'navarch-plan[{type_name}]'") from None
    return getattr(module, class_name)


def build_provider(config: ProviderConfig, env: Mapping[str, str], base_dir: str,
                   regions: Sequence[str] = ()) -> Provider:
    options = {k: v for k, v in config.options.items() if k not in SCHEDULER_OPTIONS}
    if config.type == "fake" and options.get("path"):
        options["path"] = os.path.join(base_dir, options["path"])
    if config.type == "aws":
        options["regions"] = sorted({*options.get("regions", []), *regions})
    return provider_class(config.type).from_config(config.name, options, env)

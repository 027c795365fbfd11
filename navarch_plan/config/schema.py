"""The config's JSON Schema: the shared part (`schemas/navarch.schema.json`) with each
provider type's own options put in. A type owns its options (its `options_schema`);
the published file's per-type part is generated from the built-in types
(`python -m navarch_plan.schemas` rewrites it: the config package itself writes
nothing) and a test keeps the two equal."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from navarch_plan.providers.base import ProviderType
from navarch_plan.schemas import load_schema
from navarch_plan.words import did_you_mean

__all__ = ["SHARED_PROVIDER_KEYS", "config_schema", "config_validator", "launch_validator",
           "pattern_rule", "plain_message", "provider_block"]

#: Keys every provider accepts, whatever its type: navarch's own, read by the scheduler.
SHARED_PROVIDER_KEYS = ("type", "rate_limit", "retry", "consistency_window", "boot_timeout")

# Keyed by the types' identities; each entry also holds the types themselves, so an id is
# never reused by another object while its entry stands.
_VALIDATORS: dict[tuple[tuple[str, int], ...], tuple[object, Any]] = {}


def provider_block(kind: ProviderType) -> dict[str, Any]:
    """`if type is NAME then its options`; a type without options_schema takes any keys."""
    options = kind.options_schema
    then: dict[str, Any] = {}
    if options is not None:
        then["additionalProperties"] = False
        if options.get("required"):
            then["required"] = list(options["required"])
        then["properties"] = {**dict.fromkeys(SHARED_PROVIDER_KEYS, True),
                              **copy.deepcopy(dict(options.get("properties", {})))}
    return {"if": {"properties": {"type": {"const": kind.name}}}, "then": then}


def pattern_rule(schema: Mapping[str, Any]) -> str:
    """What a pattern allows, in words: its `patternErrorMessage` (the keyword the YAML
    and JSON language servers of editors show too); "" when it has none."""
    return str(schema.get("patternErrorMessage", ""))


def plain_message(error: Any) -> str:
    """A jsonschema error's message, with a pattern's rule in words instead of its regex,
    and the closest allowed word for a mistyped one."""
    if error.validator == "pattern" and (rule := pattern_rule(error.schema)):
        return f"{error.instance!r} is not valid ({rule})"
    if error.validator == "enum" and isinstance(error.instance, str):
        words = [v for v in error.validator_value if isinstance(v, str)]
        return f"{error.message}{did_you_mean(error.instance, words)}"
    return str(error.message)


def config_schema(types: Mapping[str, ProviderType]) -> dict[str, Any]:
    schema = copy.deepcopy(load_schema("navarch"))
    schema["$defs"]["provider"]["allOf"] = [provider_block(t) for t in types.values()]
    return schema


def launch_validator(kind: ProviderType) -> Any:
    """A pool's `launch:` overrides for a provider of this type: only its launch options,
    each with the type's own rule for it."""
    if id(kind) not in _LAUNCH:
        _LAUNCH[id(kind)] = (kind, _launch_validator(kind))
    return _LAUNCH[id(kind)][1]


_LAUNCH: dict[int, tuple[ProviderType, Any]] = {}  # (the type, held: see _VALIDATORS)


def _launch_validator(kind: ProviderType) -> Any:
    properties = dict((kind.options_schema or {}).get("properties", {}))
    schema = {"$defs": load_schema("navarch")["$defs"], "type": "object",
              "additionalProperties": False,
              "properties": {k: properties.get(k, True) for k in sorted(kind.launch_options)}}
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema)


def config_validator(types: Mapping[str, ProviderType]) -> Any:
    """One validator per set of types (the built-ins, or with the installed plugins)."""
    key = tuple((name, id(kind)) for name, kind in types.items())
    if key not in _VALIDATORS:
        from jsonschema import Draft202012Validator

        _VALIDATORS[key] = (tuple(types.values()),
                            Draft202012Validator(config_schema(types)))
    return _VALIDATORS[key][1]

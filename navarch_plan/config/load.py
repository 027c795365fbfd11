"""Config text -> schema check -> desired state. Pure: the caller reads the file.

Every error is a ConfigError naming file:line:column and the key path.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from navarch_plan.config.build import build_desired
from navarch_plan.config.schema import config_validator
from navarch_plan.config.types import Config, Context, ProviderConfig, StateConfig
from navarch_plan.config.yamlpos import load_yaml
from navarch_plan.providers.base import ProviderType

__all__ = ["parse_config"]


def parse_config(text: str | bytes, file: str, env: Mapping[str, str],
                 base_dir: str = ".", types: Mapping[str, ProviderType] | None = None
                 ) -> Config:
    """`types`: the provider types that exist, by name (default: the built-ins; the CLI
    passes registry.provider_types(), which adds installed plugins)."""
    if types is None:
        from navarch_plan.providers.registry import builtin_types

        types = builtin_types()
    env_values: set[str] = set()
    data, positions = load_yaml(text, file, env, env_values)
    ctx = Context(file, positions)
    if not isinstance(data, dict):
        raise ctx.error((), "the config must be a mapping (version:, providers:, pools:, ...)")
    _check_schema(data, ctx, types)
    _refuse_unsupported(data, ctx)
    workspace = data.get("workspace", "default")
    providers = {
        name: ProviderConfig(name, p["type"], MappingProxyType(dict(p)))
        for name, p in data.get("providers", {}).items()
    }
    groups, desired = build_desired(data, providers, ctx, types)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return Config(
        file=file,
        base_dir=base_dir,
        workspace=workspace,
        state=_state_config(data, workspace, base_dir),
        providers=MappingProxyType(providers),
        groups=MappingProxyType(groups),
        desired=MappingProxyType(desired),
        config_hash="sha256:" + hashlib.sha256(canonical.encode()).hexdigest(),
        max_hourly_cost=data.get("max_hourly_cost"),
        workspace_explicit="workspace" in data,
        env_values=frozenset(env_values),
    )


def _state_config(data: dict[str, Any], workspace: str, base_dir: str) -> StateConfig:
    state = data.get("state", {})
    path = state.get("path", f"state/{workspace}.json")
    return StateConfig(
        backend=state.get("backend", "local"),
        path=posixpath.normpath(posixpath.join(base_dir, path)),
        bucket=state.get("bucket", ""), key=state.get("key", f"{workspace}.json"),
        region=state.get("region", ""), endpoint_url=state.get("endpoint_url", ""),
    )


_UNEXPECTED = re.compile(r"\('(?P<key>[^']+)'(?:, '[^']+')* (?:was|were) unexpected\)")


def _check_schema(data: dict[str, Any], ctx: Context,
                  types: Mapping[str, ProviderType]) -> None:
    found = []
    for err in config_validator(types).iter_errors(data):
        for leaf in _leaves(err):
            path = tuple(leaf.absolute_path)
            message = leaf.message
            if m := _UNEXPECTED.search(message):
                # The message shows the key's repr: map it back to the key itself.
                key = next((k for k in leaf.instance if isinstance(k, str)
                            and repr(k)[1:-1] == m.group("key")), m.group("key"))
                path = (*path, key)
                message = f"unknown key {key!r}"
            elif "propertyNames" in leaf.schema_path or "propertyNames" in err.schema_path:
                path = (*path, str(leaf.instance))
                message = f"invalid name {leaf.instance!r}: {_name_rule(leaf)}"
            elif leaf.validator == "const":
                message = f"must be {leaf.validator_value!r}"
            # unevaluatedProperties also fires when a sibling allOf part failed: the
            # real cause is that part, so it is reported first.
            secondary = leaf.validator == "unevaluatedProperties"
            found.append((secondary, ctx.error(path, message), -len(path)))
    if found:
        found.sort(key=lambda e: (e[0], e[1].line, e[1].column, e[2]))
        raise found[0][1]


def _leaves(err: Any) -> list[Any]:
    """The most specific errors: an if/then or allOf failure is explained by its parts."""
    if err.context:
        return [leaf for sub in err.context for leaf in _leaves(sub)]
    return [err]


def _name_rule(err: Any) -> str:
    if err.validator == "not":
        return "the navarch- prefix is reserved for ownership labels"
    return err.schema.get("description", err.message)


def _refuse_unsupported(data: dict[str, Any], ctx: Context) -> None:
    """The schema accepts these already; until they have behaviour, say so loudly."""
    _check_state(data.get("state", {}), ctx)


_S3_ONLY = ("bucket", "key", "region", "endpoint_url")


def _check_state(state: dict[str, Any], ctx: Context) -> None:
    """Each backend's own keys, and only those: a `bucket` beside a local state (or a
    `path` beside S3) would be silently ignored otherwise."""
    if state.get("backend", "local") == "s3":
        if "path" in state:
            raise ctx.error(("state", "path"), "path is for backend: local; S3 state is "
                            "at bucket and key")
        if "bucket" not in state:
            raise ctx.error(("state",), "backend s3 needs a bucket (and usually key, region)")
        url = state.get("endpoint_url", "")
        if url and not url.startswith(("http://", "https://")):
            raise ctx.error(("state", "endpoint_url"), "must be an http:// or https:// URL")
        return
    for key in _S3_ONLY:
        if key in state:
            raise ctx.error(("state", key), f"{key} is for backend: s3")

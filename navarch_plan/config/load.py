"""Config text -> schema check -> desired state. Pure: the caller reads the file.

Every error is a ConfigError naming file:line:column and the key path.
"""

from __future__ import annotations

import base64
import binascii
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

__all__ = ["is_public_key", "parse_config", "public_key_problem"]


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
    public_keys = _public_keys(data.get("ssh_public_keys", {}), ctx, base_dir)
    groups, desired = build_desired(data, providers, ctx, types, public_keys)
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


# OpenSSH public key types (ssh-keygen -t ..., and FIDO keys).
_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
              "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
              "sk-ecdsa-sha2-nistp256@openssh.com")
_KEY_LINE = re.compile(r"^(?P<type>\S+) (?P<blob>AAAA[A-Za-z0-9+/]+={0,3})(?: [^\n]*)?$")


def is_public_key(text: str) -> bool:
    """Whether `text` is written as key text (a type word), not as a file's path."""
    return text.strip().startswith(("ssh-", "ecdsa-", "sk-"))


def public_key_problem(text: str) -> str | None:
    """Why `text` is not one OpenSSH public key line (TYPE BASE64 [COMMENT]), or None. The
    base64 must decode to a key of the same type, as sshd reads it."""
    m = _KEY_LINE.match(text.strip())
    if not m or m.group("type") not in _KEY_TYPES:
        return ("is not an OpenSSH public key (TYPE AAAA... [comment], TYPE one of "
                f"{', '.join(_KEY_TYPES[:3])}, ...)")
    try:
        blob = base64.b64decode(m.group("blob"), validate=True)
    except (binascii.Error, ValueError):
        return "is not an OpenSSH public key: its base64 part does not decode"
    size = int.from_bytes(blob[:4], "big")
    if blob[4:4 + size] != m.group("type").encode():
        return f"is not an OpenSSH public key: its base64 part is not a {m.group('type')} key"
    return None


def _public_keys(keys: Mapping[str, str], ctx: Context, base_dir: str) -> dict[str, str]:
    """Name -> key text, or the .pub file's path joined to the config's folder (read by
    apply, at the edge: the config stays pure)."""
    out = {}
    for name, value in keys.items():
        if is_public_key(value):
            if (why := public_key_problem(value)) is not None:
                raise ctx.error(("ssh_public_keys", name), f"{name} {why}")
            out[name] = value.strip()
        elif value.endswith(".pub"):
            out[name] = posixpath.normpath(posixpath.join(base_dir, value))
        else:
            raise ctx.error(("ssh_public_keys", name), f"{name}: give the public key text "
                            "(ssh-ed25519 AAAA...) or the path of its .pub file; never a "
                            "private key")
    return out


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
    return str(err.schema.get("description", err.message))


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

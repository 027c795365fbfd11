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
from navarch_plan.config.schema import config_validator, pattern_rule, plain_message
from navarch_plan.config.types import Config, Context, ProviderConfig, StateConfig
from navarch_plan.config.yamlpos import Path as KeyPath
from navarch_plan.config.yamlpos import load_yaml
from navarch_plan.errors import ConfigError, ConfigErrors
from navarch_plan.providers.base import ProviderType
from navarch_plan.words import did_you_mean

__all__ = ["PartialConfigErrors", "is_public_key", "parse_config", "public_key_problem"]


class PartialConfigErrors(ConfigErrors):
    """A config's errors (`errors`, in file order), with the part of it that loaded
    (`partial`): the pools and nodes whose providers resolved, without those that failed.
    `navarch validate` checks that part against the catalogs too, so that one run reports
    every error; nothing plans or applies it."""

    def __init__(self, errors: list[ConfigError], partial: Config) -> None:
        flat = [e for err in errors for e in getattr(err, "errors", [err])]
        super().__init__(sorted(flat, key=lambda e: (e.line, e.column)))
        self.partial = partial


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
    workspace = data.get("workspace", "default")
    providers = {
        name: ProviderConfig(name, p["type"], MappingProxyType(dict(p)))
        for name, p in data.get("providers", {}).items()
    }
    # Every error independent of the others is reported at once: the state section's,
    # each public key's, each pool's and node's.
    errors: list[ConfigError] = []
    public_keys = _public_keys(data.get("ssh_public_keys", {}), ctx, base_dir,
                               env.get("HOME", ""), errors)
    try:
        _refuse_unsupported(data, ctx)
    except ConfigError as exc:
        errors.append(exc)
    built = build_desired(data, providers, ctx, types, public_keys)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    config = Config(
        file=file,
        base_dir=base_dir,
        workspace=workspace,
        state=_state_config(data, workspace, base_dir),
        providers=MappingProxyType(providers),
        groups=MappingProxyType(built.groups),
        desired=MappingProxyType(built.desired),
        config_hash="sha256:" + hashlib.sha256(canonical.encode()).hexdigest(),
        max_hourly_cost=data.get("max_hourly_cost"),
        workspace_explicit="workspace" in data,
        env_values=frozenset(env_values),
        positions=positions,
    )
    if errors or built.errors:
        raise PartialConfigErrors([*errors, *built.errors], config)
    return config


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


def _public_keys(keys: Mapping[str, str], ctx: Context, base_dir: str, home: str,
                 errors: list[ConfigError]) -> dict[str, str]:
    """Name -> key text, or the .pub file's path: a leading `~/` is `home` (the HOME of
    the environment the config is loaded with), any other is joined to the config's
    folder. The file is read by apply, at the edge: the config stays pure. A bad one is
    an error in `errors`."""
    out = {}
    for name, value in keys.items():
        if is_public_key(value):
            if (why := public_key_problem(value)) is not None:
                # Kept, though wrong: the config is refused, and the nodes naming it
                # are not also told that it has no key.
                errors.append(ctx.error(("ssh_public_keys", name), f"{name} {why}"))
            out[name] = value.strip()
        elif value.endswith(".pub"):
            if (why := _home_problem(value, home)) is not None:
                errors.append(ctx.error(("ssh_public_keys", name), f"{name}: {why}"))
                continue
            if value.startswith("~/"):
                value = posixpath.join(home, value[2:])
            out[name] = posixpath.normpath(posixpath.join(base_dir, value))
        else:
            errors.append(ctx.error(("ssh_public_keys", name), f"{name}: give the public key "
                                    "text (ssh-ed25519 AAAA...) or the path of its .pub file; "
                                    "never a private key"))
    return out


def _home_problem(path: str, home: str) -> str | None:
    """Why a path's leading `~` cannot be expanded as a shell would, or None."""
    if not path.startswith("~"):
        return None
    if not path.startswith("~/"):
        return f"{path}: only a leading ~/ (your HOME) is expanded; write the full path"
    if not home:
        return f"{path}: ~/ is your HOME, but HOME is not set"
    return None


def _state_config(data: dict[str, Any], workspace: str, base_dir: str) -> StateConfig:
    state = data.get("state", {})
    path = state.get("path", f"state/{workspace}.json")
    return StateConfig(
        backend=state.get("backend", "local"),
        path=posixpath.normpath(posixpath.join(base_dir, path)),
        bucket=state.get("bucket", ""), key=state.get("key", f"{workspace}.json"),
        region=state.get("region", ""), endpoint_url=state.get("endpoint_url", ""),
    )


def _check_schema(data: dict[str, Any], ctx: Context,
                  types: Mapping[str, ProviderType]) -> None:
    """Every schema error at once (ConfigErrors), in file order; a lone one as itself."""
    validator = config_validator(types)
    found: dict[tuple[int, int, str], ConfigError] = {}
    for err in validator.iter_errors(data):
        for leaf in _leaves(err):
            for path, message in _explained(leaf, err, validator.schema):
                error = ctx.error(path, message)
                found.setdefault((error.line, error.column, error.message), error)
    if found:
        raise ConfigErrors.of([found[k] for k in sorted(found)])


def _explained(leaf: Any, err: Any, root: Mapping[str, Any]) -> list[tuple[KeyPath, str]]:
    """(key path, human message) for one failed check; none when it only echoes another."""
    path = tuple(leaf.absolute_path)
    if leaf.validator in ("additionalProperties", "unevaluatedProperties") \
            and leaf.validator_value is False and isinstance(leaf.instance, dict):
        # unevaluatedProperties also lists known keys when a sibling allOf part failed:
        # that part is reported on its own, and only truly unknown keys are named here.
        known = _known_keys(leaf.schema, root)
        return [((*path, key), f"unknown key {key!r}{did_you_mean(key, known)}")
                for key in leaf.instance if key not in known]
    if "propertyNames" in leaf.schema_path or "propertyNames" in err.schema_path:
        return [((*path, str(leaf.instance)), f"invalid name {leaf.instance!r}: "
                 f"{_name_rule(leaf)}")]
    if leaf.validator == "const":
        return [(path, f"must be {leaf.validator_value!r}")]
    if leaf.validator == "required" and _misspelt(leaf):
        return []  # the misspelt key's own error says "did you mean" it
    return [(path, plain_message(leaf))]


def _misspelt(leaf: Any) -> bool:
    """A `required` failure whose every missing key is there misspelt (`node: 2` for
    `nodes`): the unknown key's error already names it, so this one would only echo."""
    given = leaf.instance if isinstance(leaf.instance, dict) else {}
    missing = [k for k in leaf.validator_value if k not in given]
    return bool(missing) and all(
        any(did_you_mean(str(key), [want]) for key in given) for want in missing)


def _known_keys(schema: Mapping[str, Any], root: Mapping[str, Any]) -> list[str]:
    """The keys an object schema names: its properties and its allOf parts' (through
    local $refs)."""
    if "$ref" in schema and str(schema["$ref"]).startswith("#/$defs/"):
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    keys = list(schema.get("properties", {}))
    for part in schema.get("allOf", ()):
        keys += [k for k in _known_keys(part, root) if k not in keys]
    return keys


def _leaves(err: Any) -> list[Any]:
    """The most specific errors: an if/then or allOf failure is explained by its parts."""
    if err.context:
        return [leaf for sub in err.context for leaf in _leaves(sub)]
    return [err]


def _name_rule(err: Any) -> str:
    if err.validator == "not":
        return "the navarch- prefix is reserved for ownership labels"
    return pattern_rule(err.schema) or str(err.schema.get("description", err.message))


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

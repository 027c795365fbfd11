"""YAML to plain Python data, keeping where every value came from.

PyYAML's composer gives a node graph with marks; we construct from it ourselves so
that duplicate keys are errors, aliases cannot explode (billion laughs), and every
value's (line, column) is known by its key path for error messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from navarch_plan.errors import ConfigError

__all__ = ["Positions", "load_yaml", "MAX_VALUES", "MAX_BYTES", "path_str"]

MAX_BYTES = 5 * 1024 * 1024  # a fleet config is kilobytes; refuse before parsing
MAX_VALUES = 200_000  # bounds alias expansion: every constructed value counts
MAX_DEPTH = 64

Path = tuple[str | int, ...]
Positions = dict[Path, tuple[int, int]]

_ENV_REF = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ESCAPED = "\x00navarch-dollar\x00"


def path_str(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Builder:
    def __init__(self, file: str, env: Mapping[str, str]) -> None:
        self.file = file
        self.env = env
        self.positions: Positions = {}
        self.count = 0
        self.scalars = SafeConstructor()

    def fail(self, node: Node, path: Path, message: str) -> ConfigError:
        mark = node.start_mark
        return ConfigError(message, self.file, mark.line + 1, mark.column + 1, path_str(path))

    def build(self, node: Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise self.fail(node, path, f"document too large: more than {MAX_VALUES} values "
                            "(alias expansion?)")
        if len(path) > MAX_DEPTH:
            raise self.fail(node, path, f"nesting deeper than {MAX_DEPTH} levels")
        mark = node.start_mark
        self.positions.setdefault(path, (mark.line + 1, mark.column + 1))
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.fail(key_node, path, "YAML merge keys (<<) are not supported")
            key = self._scalar(key_node, path) if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str | int | float | bool) or key is None:
                raise self.fail(key_node, path, "mapping keys must be plain strings")
            key = str(key)
            if key in out:
                raise self.fail(key_node, (*path, key), f"duplicate key {key!r}")
            out[key] = self.build(value_node, (*path, key))
            kmark = key_node.start_mark
            self.positions[(*path, key)] = (kmark.line + 1, kmark.column + 1)
        return out

    def _scalar(self, node: ScalarNode, path: Path) -> Any:
        if not isinstance(node.value, str) or "${" not in node.value:
            return self._construct(node, path)
        expanded = self._expand(node, path)
        if node.style is None and node.tag == "tag:yaml.org,2002:str":
            # A plain scalar like `nodes: ${COUNT}` takes the type of what it expands to.
            tag = yaml.resolver.Resolver().resolve(ScalarNode, expanded, (True, False))
            return self._construct(ScalarNode(tag, expanded, node.start_mark), path)
        return expanded

    def _construct(self, node: ScalarNode, path: Path) -> Any:
        try:
            return self.scalars.construct_object(node, deep=True)
        except yaml.YAMLError:  # an unknown or unsafe tag (!!python/...), a bad !!binary
            raise self.fail(node, path, f"cannot read this value (tag {node.tag})") from None

    def _expand(self, node: ScalarNode, path: Path) -> str:
        text = node.value.replace("$${", _ESCAPED)

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if not _ENV_NAME.match(name):
                return m.group(0)  # a node reference like ${pools.x...}, resolved at apply
            if name not in self.env:
                raise self.fail(node, path, f"environment variable {name} is not set")
            return self.env[name]

        return _ENV_REF.sub(sub, text).replace(_ESCAPED, "${")


def load_yaml(text: str | bytes, file: str, env: Mapping[str, str]) -> tuple[Any, Positions]:
    """Parse one YAML document; returns (data, positions by key path)."""
    if len(text) > MAX_BYTES:
        # The caller may have read only MAX_BYTES + 1: say "more than", not a size.
        raise ConfigError(f"file is larger than the limit of {MAX_BYTES} bytes "
                          f"({MAX_BYTES // (1024 * 1024)} MiB)", file)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"not UTF-8 text (byte {exc.start})", file) from None
    if "\x00" in text:
        raise ConfigError("file contains NUL bytes: not a YAML text file", file)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(f"nesting deeper than {MAX_DEPTH} levels", file) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise ConfigError(f"invalid YAML: {exc.problem or exc.context}", file, line, col) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file) from None
    if root is None:
        raise ConfigError("file is empty", file, 1, 1)
    builder = _Builder(file, env)
    data = builder.build(root, ())
    return data, builder.positions

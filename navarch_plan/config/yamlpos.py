"""YAML to plain Python data, keeping where every value came from.

PyYAML's composer gives a node graph with marks; we construct from it ourselves so
that duplicate keys are errors, aliases cannot explode (billion laughs), and every
value's (line, column) is known by its key path for error messages.

A config holds plain JSON-like data only: mappings, sequences, strings, integers,
floats, booleans and null. So:

- every explicit tag is refused where it is written (`!!int`, `!!str`, `!!binary`,
  `!!set`, `!!python/...`, `!Ref`, the bare `!`...): write the plain value, quoted
  if it must stay a string;
- the other implicit YAML 1.1 types become the text as written: an unquoted
  `2020-01-01` (a timestamp to PyYAML), `=` (a "value" key) or `<<` as a value are
  strings, as a user writing them expects. A setting that wants a number still says so;
- numbers no setting can take are refused: NaN and infinity (`.nan`, `.inf`, or a float
  too large for a double), and integers of more than MAX_INT_DIGITS digits (Python
  refuses to read or print them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from navarch_plan.config.desired import REF_FIELDS, REF_PATTERN
from navarch_plan.errors import ConfigError

__all__ = ["Positions", "load_yaml", "MAX_VALUES", "MAX_BYTES", "path_str"]

MAX_BYTES = 5 * 1024 * 1024  # a fleet config is kilobytes; refuse before parsing
MAX_VALUES = 200_000  # bounds alias expansion: every constructed value counts
MAX_DEPTH = 64
MAX_INT_DIGITS = 4300  # Python's own int <-> str limit: beyond it int() raises, str() too

Path = tuple[str | int, ...]
Positions = dict[Path, tuple[int, int]]

_ENV_REF = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ESCAPED = "\x00navarch-dollar\x00"

_YAML_TAG = "tag:yaml.org,2002:"
_INT = _YAML_TAG + "int"
# Implicit YAML 1.1 types that are not JSON's: kept as the text that was written.
_AS_TEXT = frozenset(_YAML_TAG + t for t in ("timestamp", "value", "merge"))
_INT_LIMIT = 10**MAX_INT_DIGITS
_TOO_LARGE = f"number too large: more than {MAX_INT_DIGITS} digits"


def path_str(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _show_tag(tag: str) -> str:
    """A tag as it was written (`!!int`, `!Ref`), printable and short."""
    if tag.startswith(_YAML_TAG):
        tag = "!!" + tag[len(_YAML_TAG):]
    elif not tag.startswith("!"):
        tag = f"!<{tag}>"
    if len(tag) > 60:
        tag = tag[:57] + "..."
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in tag)


class _Composer(yaml.SafeLoader):
    """PyYAML's safe composer, remembering the nodes written with an explicit tag (a
    composed node's tag does not say whether it was written or resolved)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.explicit_tags: dict[Node, str] = {}

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()
        node = super().compose_node(parent, index)
        if node is None:
            return None
        tag = getattr(event, "tag", None)  # an alias has none: its anchor's node is marked
        if tag is not None:
            self.explicit_tags[node] = tag
        return node


class _Builder:
    def __init__(self, file: str, env: Mapping[str, str],
                 explicit_tags: Mapping[Node, str] | None = None) -> None:
        self.file = file
        self.env = env
        self.explicit_tags = explicit_tags or {}
        self.env_values: set[str] = set()  # every value a ${NAME} was replaced by
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
        self._refuse_tag(node, path)
        mark = node.start_mark
        self.positions.setdefault(path, (mark.line + 1, mark.column + 1))
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)  # PyYAML composes only these three kinds
        return self._scalar(node, path)

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            self._refuse_tag(key_node, path)
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

    def _refuse_tag(self, node: Node, path: Path) -> None:
        tag = self.explicit_tags.get(node)
        if tag is not None:
            raise self.fail(node, path, f"YAML tags are not allowed here ({_show_tag(tag)}); "
                            "write the plain value (quote it to keep it a string)")

    def _construct(self, node: ScalarNode, path: Path) -> Any:
        if node.tag in _AS_TEXT:
            return node.value  # an unquoted date, `=` or `<<`: the text as written
        if node.tag == _INT and len(node.value) > MAX_INT_DIGITS:
            raise self.fail(node, path, _TOO_LARGE)  # before int() does quadratic work
        try:
            value = self.scalars.construct_object(node, deep=True)
        except yaml.YAMLError:  # no JSON-like type: every explicit tag was refused before
            raise self.fail(node, path, f"cannot read this value (tag {node.tag})") from None
        except ValueError:  # int(): more digits than Python reads
            raise self.fail(node, path, _TOO_LARGE) from None
        return self._check_number(node, path, value)

    def _check_number(self, node: ScalarNode, path: Path, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            if "inf" in node.value.lower() or "nan" in node.value.lower():
                raise self.fail(node, path, f"NaN and infinity are not allowed "
                                f"({node.value}); write a finite number")
            raise self.fail(node, path, "number too large: it overflows to infinity")
        if isinstance(value, int) and abs(value) >= _INT_LIMIT:  # 0x..., 1:2:3...
            raise self.fail(node, path, _TOO_LARGE)
        return value

    def _expand(self, node: ScalarNode, path: Path) -> str:
        text = node.value.replace("$${", _ESCAPED)

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if not _ENV_NAME.match(name):
                self._check_reference(node, path, m.group(0), text[:m.start()].count("\n"))
                return m.group(0)  # a node reference like ${pools.x...}, resolved at apply
            if name not in self.env:
                raise self.fail(node, path, f"environment variable {name} is not set")
            self.env_values.add(self.env[name])
            return self.env[name]

        return _ENV_REF.sub(sub, text).replace(_ESCAPED, "${")


    def _check_reference(self, node: ScalarNode, path: Path, text: str, row: int) -> None:
        """A `${...}` that is not an environment variable must be a node reference, in
        user_data (the one place apply resolves them): anything else would reach the
        cloud as the literal text. `row`: the value's line the text is on."""
        if not REF_PATTERN.fullmatch(text):
            raise self._fail_at(node, path, text, row, (
                f"{text} is neither an environment variable (${{NAME}}, no dots) nor a "
                "reference to another node (${pools.POOL.nodes[INDEX].FIELD} or "
                f"${{nodes.NAME.FIELD}}, FIELD one of {', '.join(REF_FIELDS)}); $${{ writes "
                "a literal ${"))
        if path[-1:] != ("user_data",):
            raise self._fail_at(node, path, text, row, f"{text}: references to other nodes "
                                "are resolved only in user_data")

    def _fail_at(self, node: ScalarNode, path: Path, text: str, row: int,
                 message: str) -> ConfigError:
        """An error at `text` on the `row`th line of a literal block (`|`), whose lines
        are the file's from the line after its start; elsewhere at the value."""
        mark = node.start_mark
        lines = str(mark.buffer or "").splitlines()
        line = mark.line + 1 + row
        if node.style != "|" or line >= len(lines) or text not in lines[line]:
            return self.fail(node, path, message)
        return ConfigError(message, self.file, line + 1, lines[line].index(text) + 1,
                           path_str(path))


def load_yaml(text: str | bytes, file: str, env: Mapping[str, str],
              env_values: set[str] | None = None) -> tuple[Any, Positions]:
    """Parse one YAML document; returns (data, positions by key path). `env_values`, if
    given, receives every value a `${NAME}` was replaced by (to be kept out of output)."""
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
    root, explicit_tags = _compose(text, file)
    if root is None:
        raise ConfigError("file is empty", file, 1, 1)
    builder = _Builder(file, env, explicit_tags)
    data = builder.build(root, ())
    if env_values is not None:
        env_values.update(builder.env_values)
    return data, builder.positions


def _compose(text: str, file: str) -> tuple[Node | None, dict[Node, str]]:
    """The node graph of one document, and which of its nodes carry an explicit tag."""
    loader = _Composer(text)
    try:
        return loader.get_single_node(), loader.explicit_tags
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(f"nesting deeper than {MAX_DEPTH} levels", file) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise ConfigError(f"invalid YAML: {exc.problem or exc.context}", file, line, col) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file) from None
    finally:
        loader.dispose()

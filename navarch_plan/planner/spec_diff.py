"""What changed inside a node's spec, as plain data for the plan: one entry per changed
value, found by deepdiff, so a nested launch option reads `launch.root_volume_gb: 100 ->
200` instead of two whole option maps side by side. Pure.

A list is one value (`ssh_keys: ["a"] -> ["a", "b"]` says more than an index), and a
spec is compared in its JSON form, where a tuple and a list are the same thing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["changed_fields", "spec_changes"]

#: A spec field holding a digest of a secret; plans name the field without the suffix.
_DIGEST_SUFFIX = "_sha256"

_MISSING = object()


def spec_changes(before: Mapping[str, Any], after: Mapping[str, Any]
                 ) -> tuple[dict[str, Any], ...]:
    """`{"field", "op", "before", "after"}` per changed value, sorted by field: op is
    add, change or remove; `before`/`after` are left out where there is none."""
    # deepdiff costs ~130 ms to import: only plans that replace a node for its spec pay.
    from deepdiff import DeepDiff

    old, new = _as_json(before), _as_json(after)
    tree = DeepDiff(old, new, view="tree", threshold_to_diff_deeper=0)
    paths = {_value_path(level.path(output_format="list"))
             for levels in tree.values() for level in levels}
    return tuple(entry for path in sorted(paths) for entry in _entries(path, old, new))


def changed_fields(changes: tuple[Mapping[str, Any], ...]) -> tuple[str, ...]:
    """The spec's top-level fields that changed, named as plans name them (`user_data`,
    not `user_data_sha256`), in order and once each."""
    return tuple(dict.fromkeys(str(c["field"]).split(".")[0] for c in changes))


def _as_json(spec: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(spec, sort_keys=True, default=list))


def _value_path(path: list[Any]) -> tuple[str, ...]:
    """The path up to the first list index: the list is the value that changed."""
    keys: list[str] = []
    for step in path:
        if isinstance(step, int):
            break
        keys.append(str(step))
    return tuple(keys)


def _entries(path: tuple[str, ...], old: Any, new: Any) -> list[dict[str, Any]]:
    """The change at `path`; a map that appears or goes whole is told key by key."""
    was, now = _at(old, path), _at(new, path)
    whole = now if was is _MISSING else was if now is _MISSING else None
    if isinstance(whole, dict) and whole:
        return [entry for key in sorted(whole) for entry in _entries((*path, key), old, new)]
    head = path[0].removesuffix(_DIGEST_SUFFIX)
    entry: dict[str, Any] = {"field": ".".join((head, *path[1:]))}
    entry["op"] = "add" if was is _MISSING else "remove" if now is _MISSING else "change"
    if was is not _MISSING:
        entry["before"] = was
    if now is not _MISSING:
        entry["after"] = now
    return [entry]


def _at(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return _MISSING
        tree = tree[key]
    return tree

"""What a well-formed state is, checked directly (no per-record jsonschema: validating
10,000 records through jsonschema costs seconds on every run; these checks cost
milliseconds).

Each check returns what is wrong as a phrase (None when nothing is), and the caller
says where. Besides shapes, one invariant the planner relies on: an instance id is held
by at most one place (one address in `nodes`, or one `deposed` entry keyed by that
very id). Two addresses holding one instance would make navarch delete one address's
real instance while "replacing" the other.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from dataclasses import fields
from operator import itemgetter
from typing import Any

from navarch_plan.errors import StateError
from navarch_plan.model import NodeStatus
from navarch_plan.schemas import validator
from navarch_plan.state.model import FORMAT_VERSION, REQUIRED_RECORD_FIELDS, Intent, StateDoc

__all__ = ["DUPLICATE", "check_snapshot", "decode_snapshot", "op_problem", "record_problem"]

_STRINGS = ("id", "provider", "region", "zone", "instance_type", "name", "spec_hash",
            "ip_address", "created_at")
_STATUSES = frozenset(s.value for s in NodeStatus)
_INTENT_REQUIRED = ("id", "address", "provider", "region", "name", "started_at")
_INTENT_FIELDS = frozenset(f.name for f in fields(Intent))
_NO_REFS: dict[str, str] = {}
DUPLICATE = ("navarch would treat one address's instance as the other's and could "
              "delete it")


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def _string_map(value: object, name: str) -> str | None:
    if not isinstance(value, dict):
        return f"{name} is {_kind(value)}, not an object"
    for key, item in value.items():
        if not isinstance(item, str):
            return f"{name}.{key} is {_kind(item)}, not a string"
    return None


_get_strings = itemgetter(*_STRINGS, "status")


def _looks_fine(record: dict[str, Any]) -> bool:
    """The common case at C speed (str.join refuses anything but strings, itemgetter
    a missing field); False sends the record through the detailed check, which says
    what is wrong."""
    try:
        "".join(_get_strings(record))
        labels, spec = record["labels"], record["spec"]
        refs = record.get("ref_values", _NO_REFS)
        if type(labels) is not dict or type(spec) is not dict or type(refs) is not dict:
            return False
        "".join(labels.values())
        if refs:
            "".join(refs.values())
    except (KeyError, TypeError):
        return False
    return record["id"] != "" and record["status"] in _STATUSES


def record_problem(record: object) -> str | None:
    """What is wrong with one node record, or None."""
    if type(record) is dict and _looks_fine(record):
        return None
    if not isinstance(record, dict):
        return f"the record is {_kind(record)}, not an object"
    if not record.keys() >= REQUIRED_RECORD_FIELDS:
        return f"the record lacks {', '.join(sorted(REQUIRED_RECORD_FIELDS - record.keys()))}"
    for name in _STRINGS:
        if not isinstance(record[name], str):
            return f"{name} is {_kind(record[name])}, not a string"
    if not record["id"]:
        return "id is empty"
    status = record["status"]
    if not isinstance(status, str) or status not in _STATUSES:
        return f"status {status!r} is not one of {', '.join(sorted(_STATUSES))}"
    if not isinstance(record["spec"], dict):
        return f"spec is {_kind(record['spec'])}, not an object"
    return _string_map(record["labels"], "labels") or (
        _string_map(record["ref_values"], "ref_values") if "ref_values" in record else None)


def _intent_problem(intent: object) -> str | None:
    if not isinstance(intent, dict):
        return f"intent is {_kind(intent)}, not an object"
    missing = [n for n in _INTENT_REQUIRED if n not in intent]
    if missing:
        return f"intent lacks {', '.join(missing)}"
    unknown = sorted(intent.keys() - _INTENT_FIELDS)
    if unknown:
        return f"intent has unknown field {unknown[0]!r}"
    for name, value in intent.items():
        if not isinstance(value, str):
            return f"intent.{name} is {_kind(value)}, not a string"
    return None


def _fields(op: dict[str, Any], *names: str) -> str | None:
    for name in names:
        if name not in op:
            return f"{op['op']} lacks {name!r}"
        if not isinstance(op[name], str) or not op[name]:
            return f"{op['op']}.{name} is not a non-empty string"
    return None


def _put_problem(op: dict[str, Any]) -> str | None:
    if "record" not in op:
        return "put lacks 'record'"
    problem = _fields(op, "address")
    if problem is None and (problem := record_problem(op["record"])) is not None:
        return f"put record: {problem}"
    return problem


_OPS = {
    "put": _put_problem,
    "remove": lambda op: _fields(op, "address"),
    "depose": lambda op: _fields(op, "address"),
    "forget_deposed": lambda op: _fields(op, "id"),
    "intent": lambda op: _intent_problem(op["intent"]) if "intent" in op
    else "intent lacks 'intent'",
    "intent_done": lambda op: _fields(op, "id"),
    "intent_launched": lambda op: _fields(op, "id", "node_id"),
    "identity": lambda op: _fields(op, "fingerprint_key"),
}


def op_problem(op: object) -> str | None:
    """What is wrong with one journal operation, or None (for record() and replay)."""
    if not isinstance(op, dict):
        return f"{_kind(op)}, not a journal operation (a JSON object)"
    kind = op.get("op")
    check = _OPS.get(kind) if isinstance(kind, str) else None
    if check is None:
        return f"unknown journal operation {kind!r}"
    return check(op)


def check_snapshot(data: object) -> None:
    """Raise ValueError saying what is wrong and where. The schema covers everything
    but the node records; the records are checked directly."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if not isinstance(data.get("format_version"), int) or data["format_version"] > FORMAT_VERSION:
        return  # upgrade() explains versions it cannot read
    errors = list(validator("state").iter_errors({**data, "nodes": {}, "deposed": {}}))
    if errors:
        raise ValueError(f"{'.'.join(map(str, errors[0].absolute_path))}: {errors[0].message}")
    if "nodes" not in data:
        raise ValueError("'nodes' is a required property")
    if data["format_version"] >= 3 and "fingerprint_key" not in data:
        raise ValueError("'fingerprint_key' is a required property")
    holders: dict[str, str] = {}
    for where, records in (("nodes", data["nodes"]), ("deposed", data.get("deposed", {}))):
        if not isinstance(records, dict):
            raise ValueError(f"{where} is {_kind(records)}, not an object")
        for key, record in records.items():
            problem = record_problem(record)
            if problem:
                raise ValueError(f"{where}.{key}: {problem}")
            place = key if where == "nodes" else f"deposed.{key}"
            if where == "deposed" and record["id"] != key:
                raise ValueError(f"{place} holds instance {record['id']}: a deposed entry's "
                                 "key must be its instance id")
            other = holders.setdefault(record["id"], place)
            if other != place:
                raise ValueError(f"{other} and {place} both hold instance {record['id']}: "
                                 f"{DUPLICATE}")


def _settle() -> None:
    """File what was just decoded (four containers per record, in no reference cycle,
    kept for the whole run) with the long-lived objects. Left young, it is walked by the
    next young collections and then, as new long-lived objects, brings on a full one
    (with gc left alone, a no-change plan took ~15% more CPU at 10,000 nodes and ~1 s
    more at 100,000). Freeze then unfreeze moves everything
    tracked to the oldest generation (done only when nothing else is frozen)."""
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()


def decode_snapshot(raw: bytes, path: str, workspace: str, corrupt: Callable[[str], str],
                    point_at: str) -> tuple[StateDoc, dict[str, Any]]:
    """A snapshot's bytes as a StateDoc of `workspace`, and its content as it is stored
    minus serial (what compact() compares against to tell whether anything changed).
    `corrupt` words the error for this backend; `point_at` says what to fix on a
    workspace mismatch."""
    collecting = gc.isenabled()
    gc.disable()  # while decoding: it makes no reference cycles (see _settle)
    try:
        data = json.loads(raw)
        check_snapshot(data)
        doc = StateDoc.from_json(data)
        _settle()
    except (ValueError, KeyError, TypeError) as exc:
        raise StateError(corrupt(f"is not a valid state file ({exc})")) from None
    finally:
        if collecting:
            gc.enable()
    if doc.workspace != workspace:
        raise StateError(f"{path} belongs to workspace {doc.workspace!r}, not "
                         f"{workspace!r}; point {point_at}")
    return doc, {k: v for k, v in data.items() if k not in ("serial", "format_version")}

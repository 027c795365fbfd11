"""The journal's operations as data: one frozen dataclass per kind, one encoder
(`to_json`), one decoder (`decode_op`), and one place that applies them to a document
(`apply_op`). Pure: the stores write and read the lines.

Every change to state between snapshots is one of these, recorded before it counts:

    put              address -> record (a node created, adopted or re-recorded)
    remove           address dropped (its instance terminated or forgotten)
    depose           address's record moved aside, by instance id (create-before-destroy)
    forget_deposed   a deposed instance dropped (terminated)
    intent           a launch is about to be sent (what to look for after a crash)
    intent_launched  the launch answered with this instance id
    intent_done      the launch is settled (recorded, or proven to have made nothing)
    identity         the state's fingerprint key, made durable
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from navarch_plan.errors import StateError
from navarch_plan.state.checks import DUPLICATE, op_problem
from navarch_plan.state.model import Intent, NodeRecord, StateDoc

__all__ = ["Depose", "ForgetDeposed", "Identity", "IntentDone", "IntentLaunched",
           "IntentStarted", "JournalOp", "JournalProblem", "Put", "Remove", "apply_op",
           "decode_op", "replay"]


@dataclass(frozen=True)
class Put:
    OP: ClassVar[str] = "put"
    address: str
    record: NodeRecord

    def to_json(self) -> dict[str, Any]:
        return {"op": self.OP, "address": self.address, "record": self.record.to_json()}


@dataclass(frozen=True)
class Remove:
    OP: ClassVar[str] = "remove"
    address: str

    def to_json(self) -> dict[str, Any]:
        return {"op": self.OP, "address": self.address}


@dataclass(frozen=True)
class Depose:
    OP: ClassVar[str] = "depose"
    address: str

    def to_json(self) -> dict[str, Any]:
        return {"op": self.OP, "address": self.address}


@dataclass(frozen=True)
class ForgetDeposed:
    OP: ClassVar[str] = "forget_deposed"
    id: str

    def to_json(self) -> dict[str, Any]:
        return {"op": self.OP, "id": self.id}


@dataclass(frozen=True)
class IntentStarted:
    OP: ClassVar[str] = "intent"
    intent: Intent

    def to_json(self) -> dict[str, Any]:
        return {"op": self.OP, "intent": self.intent.to_json()}


@dataclass(frozen=True)
class IntentLaunched:
    OP: ClassVar[str] = "intent_launched"
    id: str
    node_id: str

    def to_json(self) -> dict[str, Any]:
        return {"op": self.OP, "id": self.id, "node_id": self.node_id}


@dataclass(frozen=True)
class IntentDone:
    OP: ClassVar[str] = "intent_done"
    id: str

    def to_json(self) -> dict[str, Any]:
        return {"op": self.OP, "id": self.id}


@dataclass(frozen=True)
class Identity:
    OP: ClassVar[str] = "identity"
    fingerprint_key: str

    def to_json(self) -> dict[str, Any]:
        return {"op": self.OP, "fingerprint_key": self.fingerprint_key}


JournalOp = (Put | Remove | Depose | ForgetDeposed | IntentStarted | IntentLaunched
             | IntentDone | Identity)


def decode_op(data: object) -> JournalOp:
    """A journal line's object as its operation. ValueError says what is wrong with it
    (unknown operations are refused, never skipped)."""
    problem = op_problem(data)
    if problem is not None or not isinstance(data, dict):
        raise ValueError(problem or "not an object")
    match data["op"]:
        case "put":
            return Put(data["address"], NodeRecord.from_json(data["record"]))
        case "remove":
            return Remove(data["address"])
        case "depose":
            return Depose(data["address"])
        case "forget_deposed":
            return ForgetDeposed(data["id"])
        case "intent":
            return IntentStarted(Intent(**data["intent"]))
        case "intent_launched":
            return IntentLaunched(data["id"], data["node_id"])
        case "intent_done":
            return IntentDone(data["id"])
        case _:
            return Identity(data["fingerprint_key"])


def apply_op(doc: StateDoc, op: JournalOp) -> None:
    """One operation, applied to `doc` in memory (the store made it durable first)."""
    match op:
        case Put(address, record):
            doc.nodes[address] = record
        case Remove(address):
            doc.nodes.pop(address, None)
        case Depose(address):
            if address in doc.nodes:
                deposed = doc.nodes.pop(address)
                doc.deposed[deposed.id] = deposed
        case ForgetDeposed(node_id):
            doc.deposed.pop(node_id, None)
        case IntentStarted(started):
            doc.intents[started.id] = started
        case IntentLaunched(intent_id, node_id):
            if intent_id in doc.intents:
                doc.intents[intent_id] = replace(doc.intents[intent_id], node_id=node_id)
        case IntentDone(intent_id):
            doc.intents.pop(intent_id, None)
        case Identity(key):
            doc.fingerprint_key = key


class JournalProblem(StateError):
    """A journal operation that is malformed, or would break an invariant of state."""

    def __init__(self, where: str, what: str) -> None:
        self.where, self.what = where, what
        super().__init__(f"{where}: {what}")


class _Holders:
    """Which place holds each instance id, kept up to date while replaying."""

    def __init__(self, doc: StateDoc) -> None:
        self.doc = doc
        self.by_id = {r.id: a for a, r in doc.nodes.items()}
        self.by_id.update((i, f"deposed.{i}") for i in doc.deposed)

    def conflict(self, op: JournalOp) -> str | None:
        if not isinstance(op, Put):
            return None
        node_id, address = op.record.id, op.address
        other = self.by_id.get(node_id, address)
        if other == address:
            return None
        return f"puts instance {node_id} at {address}, but {other} holds it: {DUPLICATE}"

    def track(self, op: JournalOp) -> None:
        """Before `op` is applied (it reads what the op replaces)."""
        doc = self.doc
        if isinstance(op, Put | Remove | Depose):
            old = doc.nodes.get(op.address)
            if old is not None:
                self.by_id.pop(old.id, None)
                if isinstance(op, Depose):
                    self.by_id[old.id] = f"deposed.{old.id}"
            if isinstance(op, Put):
                self.by_id[op.record.id] = op.address
        elif isinstance(op, ForgetDeposed) and op.id in doc.deposed:
            self.by_id.pop(op.id, None)


def replay(doc: StateDoc, ops: Iterable[tuple[str, object]]) -> None:
    """Apply journal operations (each with where it comes from) to `doc`, checking each
    first. Raises JournalProblem at the first bad one."""
    # Built at the first operation: a load without a journal never pays for it.
    holders: _Holders | None = None
    for where, data in ops:
        try:
            op = decode_op(data)
        except ValueError as exc:
            raise JournalProblem(where, str(exc)) from None
        holders = holders or _Holders(doc)
        problem = holders.conflict(op)
        if problem is not None:
            raise JournalProblem(where, problem)
        holders.track(op)
        apply_op(doc, op)

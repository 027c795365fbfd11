"""The state document: what navarch created, by address. Pure data and its versioned form.

Journal operations are applied here too, so the store (files) and the replay
(loading) share one definition of what each operation means.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from navarch_plan.errors import StateError

__all__ = ["FORMAT_VERSION", "NodeRecord", "Intent", "StateDoc", "upgrade",
           "REQUIRED_RECORD_FIELDS"]

# 2: intents carry zone, instance type, idempotency key and node id; 3: a fingerprint key
FORMAT_VERSION = 4


@dataclass(frozen=True)
class NodeRecord:
    id: str
    provider: str
    region: str
    zone: str
    instance_type: str
    name: str
    spec: dict[str, Any]
    spec_hash: str
    status: str
    ip_address: str
    labels: dict[str, str]
    created_at: str
    ref_values: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its deep copies cost seconds at fleet scale.
        data = {name: getattr(self, name) for name in _RECORD_FIELDS}
        for name in ("spec", "labels", "ref_values"):
            data[name] = dict(data[name])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeRecord:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    @classmethod
    def adopt(cls, data: dict[str, Any]) -> NodeRecord:
        """from_json for a dict nothing else will change (one just decoded): a record of
        every field and nothing else takes it as its attributes, with no copy: one dict
        fewer per record (45 MB less peak memory in a plan of 100,000 nodes)."""
        if data.keys() != _FIELD_SET or cls is not NodeRecord:
            return cls.from_json(data)
        record = object.__new__(cls)
        object.__setattr__(record, "__dict__", data)
        return record

    def field_value(self, name: str) -> str:
        return str(getattr(self, name))


_RECORD_FIELDS = tuple(NodeRecord.__dataclass_fields__)
_FIELD_SET = frozenset(_RECORD_FIELDS)
REQUIRED_RECORD_FIELDS = _FIELD_SET - {"ref_values"}


@dataclass(frozen=True)
class Intent:
    """Written before a Provision call: if we crash, the next plan knows what to look for.

    The name and idempotency key are fixed here, before the call, so that a later run
    resolving this intent sends exactly the same request again (EC2 then returns the
    original instance). `node_id` is filled in as soon as the launch answers, so a run
    killed while the node boots leaves the id to look up, not only a name."""

    id: str
    address: str
    provider: str
    region: str
    name: str
    started_at: str
    zone: str = ""
    instance_type: str = ""
    idempotency_key: str = ""
    node_id: str = ""
    # "on-demand", "spot" or "reservation": the placement's purchase model. Written only
    # when not on-demand, so states (and intents written before spot_policy) without it
    # read as on-demand.
    purchase: str = "on-demand"
    # The recorded instance this launch replaces (a replacement's launch; "" for a
    # create): the next plan finishes the replacement with the instance it finds, even
    # one only `--replace` asked for. Written only when set (format 4).
    replaces: str = ""

    @property
    def placement_key(self) -> tuple[str, str, str, str, str]:
        """As `Placement.key`: the candidate this launch was sent to."""
        return (self.provider, self.region, self.zone, self.instance_type, self.purchase)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.purchase == "on-demand":
            del data["purchase"]
        if not self.replaces:
            del data["replaces"]
        return data


@dataclass
class StateDoc:
    lineage: str
    workspace: str
    serial: int = 0
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    deposed: dict[str, NodeRecord] = field(default_factory=dict)  # by node id
    intents: dict[str, Intent] = field(default_factory=dict)  # by intent id
    # The secret that keys every fingerprint of secret-bearing data navarch publishes
    # (user_data, specs, the config): plans carry HMACs that cannot be brute-forced
    # without it. Kept only here (a 0600 file or a private bucket); never printed.
    fingerprint_key: str = field(default_factory=lambda: secrets.token_hex(32))
    # Read from an older format (upgraded in memory, not yet written back).
    upgraded: bool = field(default=False, compare=False)

    @classmethod
    def new(cls, workspace: str, lineage: str | None = None) -> StateDoc:
        return cls(lineage=lineage or str(uuid.uuid4()), workspace=workspace)

    def content(self) -> dict[str, Any]:
        """Everything but the serial: equal content means no new snapshot is due."""
        return {
            "lineage": self.lineage,
            "workspace": self.workspace,
            "fingerprint_key": self.fingerprint_key,
            "nodes": {a: r.to_json() for a, r in self.nodes.items()},
            "deposed": {i: r.to_json() for i, r in self.deposed.items()},
            "intents": [i.to_json() for i in self.intents.values()],
        }

    def to_json(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "serial": self.serial, **self.content()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StateDoc:
        """The document in `data`, which it keeps parts of: `data` must not change after."""
        older = data.get("format_version") != FORMAT_VERSION
        data = upgrade(data)
        return cls(
            lineage=data["lineage"],
            workspace=data["workspace"],
            serial=data["serial"],
            # Decoded data (decode_snapshot): the records may take its dicts as they are.
            nodes={a: NodeRecord.adopt(r) for a, r in data["nodes"].items()},
            deposed={i: NodeRecord.adopt(r) for i, r in data.get("deposed", {}).items()},
            intents={i["id"]: Intent(**i) for i in data.get("intents", [])},
            fingerprint_key=data["fingerprint_key"], upgraded=older,
        )


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Bring an older format up to FORMAT_VERSION; refuse newer ones."""
    version = data.get("format_version")
    if not isinstance(version, int):
        raise StateError("state has no format_version: not a navarch-plan state file")
    if version > FORMAT_VERSION:
        raise StateError(f"state format {version} was written by a newer navarch-plan "
                         f"(this one reads up to {FORMAT_VERSION}); upgrade navarch-plan")
    if version == 1:
        # Format 1 intents had no idempotency key of their own: the intent id was it.
        intents = [{**i, "idempotency_key": i.get("idempotency_key") or i.get("id", "")}
                   for i in data.get("intents", []) if isinstance(i, dict)]
        data = {**data, "format_version": 2, "intents": intents}
    if data["format_version"] == 2:
        # A fresh key: fingerprints written before it stay readable (unkeyed values are
        # still recognised as in spec), new ones are keyed from now on.
        data = {**data, "format_version": 3, "fingerprint_key": secrets.token_hex(32)}
    if data["format_version"] == 3:
        data = {**data, "format_version": 4}  # intents may say what they replace
    return data

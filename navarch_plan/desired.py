"""Desired state: the nodes a config asks for, each with a stable address and spec.

Pure: built from already-validated config data, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from navarch_plan.model import named_address, pool_address

__all__ = ["DesiredNode", "Group", "Ref", "REF_FIELDS", "find_refs", "spec_hash", "render_refs"]

REF_FIELDS = ("ip_address", "id", "region", "zone", "name")
REF_PATTERN = re.compile(
    r"\$\{(?:pools\.(?P<pool>[a-z][a-z0-9-]*)\.nodes\[(?P<index>\d+)\]"
    r"|nodes\.(?P<node>[a-z][a-z0-9-]*))\.(?P<field>[a-z_]+)\}"
)


@dataclass(frozen=True)
class Ref:
    """`${pools.head.nodes[0].ip_address}`: a value of another node, known at apply."""

    text: str
    group: str
    address: str
    field: str


def find_refs(text: str) -> list[Ref]:
    refs = []
    for m in REF_PATTERN.finditer(text):
        if m.group("pool"):
            group, address = m.group("pool"), pool_address(m.group("pool"), int(m.group("index")))
        else:
            group, address = m.group("node"), named_address(m.group("node"))
        refs.append(Ref(m.group(0), group, address, m.group("field")))
    return refs


def render_refs(text: str, values: Mapping[str, str]) -> str:
    """Replace each reference by its value; references missing from `values` stay."""
    return REF_PATTERN.sub(lambda m: values.get(m.group(0), m.group(0)), text)


@dataclass(frozen=True)
class Group:
    """A pool, or a named node (a group of one); the unit of depends_on."""

    name: str
    kind: str  # "pool" | "node"
    provider: str
    count: int
    depends_on: tuple[str, ...]
    prevent_destroy: bool = False
    replace_mode: str = "create_before_destroy"
    max_parallel_terminations: int | None = None


@dataclass(frozen=True)
class DesiredNode:
    address: str
    group: str
    index: int | None
    provider: str
    provider_type: str
    instance_type: str
    region: str
    zone: str
    ssh_keys: tuple[str, ...]
    labels: Mapping[str, str]
    user_data: str
    refs: tuple[Ref, ...] = ()
    spec: Mapping[str, Any] = field(default_factory=dict)
    spec_hash: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        spec = {
            "provider": self.provider,
            "instance_type": self.instance_type,
            "region": self.region,
            "zone": self.zone,
            "ssh_keys": list(self.ssh_keys),
            "labels": dict(sorted(self.labels.items())),
            "user_data_sha256": sha256_text(self.user_data) if self.user_data else "",
        }
        object.__setattr__(self, "spec", MappingProxyType(spec))
        object.__setattr__(self, "spec_hash", spec_hash(spec))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def spec_hash(spec: Mapping[str, Any]) -> str:
    """Short and label-safe: 12 hex chars of the canonical JSON's sha256."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]

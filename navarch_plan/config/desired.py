"""Desired state: the nodes a config asks for, each with a stable address and spec.

Pure: built from already-validated config data, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any

from navarch_plan.model import named_address, pool_address

__all__ = ["DesiredNode", "Group", "Placement", "Ref", "REF_FIELDS", "find_refs", "spec_hash",
           "render_refs", "fingerprint"]

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
    count: int
    depends_on: tuple[str, ...]
    prevent_destroy: bool = False
    replace_mode: str = "create_before_destroy"
    max_parallel_terminations: int | None = None
    max_hourly_cost: float | None = None


def where(provider: str, region: str, zone: str = "") -> str:
    """`lambda/us-east-1`, or `gcp/us-central1-a` when a zone is set: how progress and
    failover lines name a place (a zone names its region)."""
    return "/".join(x for x in (provider, zone or region) if x)


@dataclass(frozen=True)
class Placement:
    """One place a node may run: a candidate of its pool. `priority`, `weight` and
    `entry` (position in the pool's providers list) feed the strategies."""

    provider: str
    provider_type: str
    region: str
    zone: str
    instance_type: str
    priority: int = 0
    weight: int = 1
    entry: int = 0
    # The pool's launch-option overrides for this candidate (canonical JSON, so the
    # placement stays hashable; "" for none): part of the node's spec there.
    launch_json: str = ""

    @property
    def launch(self) -> dict[str, Any]:
        return json.loads(self.launch_json) if self.launch_json else {}

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.provider, self.region, self.zone, self.instance_type)

    @property
    def where(self) -> str:
        return where(self.provider, self.region, self.zone)


@dataclass(frozen=True)
class DesiredNode:
    """A node the config asks for. Its spec is per placement: a node of a fungible pool is
    in spec when it runs on any of its candidates with the same keys, labels and
    user_data. `provider`, `region`, `zone`, `instance_type` name the first candidate."""

    address: str
    group: str
    index: int | None
    ssh_keys: tuple[str, ...]
    labels: Mapping[str, str]
    user_data: str
    candidates: tuple[Placement, ...]
    refs: tuple[Ref, ...] = ()
    strategy: str = "priority"
    spec: Mapping[str, Any] = field(default_factory=dict)
    spec_hash: str = ""
    # The state's fingerprint key: user_data's fingerprint in the spec (and so the spec
    # hash) is an HMAC under it. Empty: the plain sha256, as before keys existed.
    fingerprint_key: str = ""
    # ssh_keys name -> its public key as the config gives it (`ssh_public_keys`): OpenSSH
    # key text, or the path of a .pub file (joined to the config's folder), which apply
    # reads when it launches. Not in the spec: the names are.
    public_keys: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        spec = self.spec_for(self.candidates[0])
        object.__setattr__(self, "spec", MappingProxyType(spec))
        object.__setattr__(self, "spec_hash", self.hash_for(self.candidates[0]))

    @property
    def provider(self) -> str:
        return self.candidates[0].provider

    @property
    def provider_type(self) -> str:
        return self.candidates[0].provider_type

    @property
    def instance_type(self) -> str:
        return self.candidates[0].instance_type

    @property
    def region(self) -> str:
        return self.candidates[0].region

    @property
    def zone(self) -> str:
        return self.candidates[0].zone

    def spec_for(self, placement: Placement) -> dict[str, Any]:
        spec = {
            "provider": placement.provider,
            "instance_type": placement.instance_type,
            "region": placement.region,
            "zone": placement.zone,
            "ssh_keys": list(self.ssh_keys),
            "labels": dict(sorted(self.labels.items())),
            "user_data_sha256": self._user_data_sha256,
        }
        # Only when set: a node without overrides keeps the spec hash it had before
        # launch options existed (no replacement on upgrade).
        if placement.launch_json:
            spec["launch"] = placement.launch
        return spec

    @cached_property
    def _user_data_sha256(self) -> str:
        return fingerprint(self.user_data, self.fingerprint_key)

    def keyed(self, key: str) -> DesiredNode:
        """This node with its fingerprints keyed by a state's key."""
        return replace(self, fingerprint_key=key)

    @cached_property
    def _hashes(self) -> dict[Placement, str]:
        # Computed once per node: the planner and apply ask for these per record,
        # per orphan and per adoption.
        return {p: spec_hash(self.spec_for(p)) for p in self.candidates}

    def hash_for(self, placement: Placement) -> str:
        known = self._hashes.get(placement)
        return known if known is not None else spec_hash(self.spec_for(placement))

    def accepted_hashes(self) -> dict[str, Placement]:
        """Spec hash -> placement, for every candidate: what counts as in spec."""
        return self._accepted

    @cached_property
    def _accepted(self) -> dict[str, Placement]:
        accepted = {h: p for p, h in self._hashes.items()}
        if self.fingerprint_key:
            # Records and labels written before the state had a key stay in spec: a key
            # must never replace a fleet.
            accepted.update(self.keyed("").accepted_hashes())
        return accepted


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(text: str, key: str = "") -> str:
    """A text's fingerprint for plans and state: `hmac:` and the HMAC-SHA256 under a
    state's key (a published plan gives nothing to brute-force), or the plain sha256
    hex without a key. Empty text: empty."""
    if not text:
        return ""
    if not key:
        return sha256_text(text)
    return "hmac:" + hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def spec_hash(spec: Mapping[str, Any]) -> str:
    """Short and label-safe: 12 hex chars of the canonical JSON's sha256."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]

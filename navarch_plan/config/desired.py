"""Desired state: the nodes a config asks for, each with a stable address and spec.

Pure: built from already-validated config data, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from navarch_plan.catalog.facts import ON_DEMAND, RESERVATION, SPOT
from navarch_plan.model import named_address, pool_address

__all__ = ["ON_DEMAND", "RESERVATION", "SPOT", "DesiredNode", "Group", "Placement", "Ref",
           "REF_FIELDS", "find_refs", "spec_hash", "render_refs", "fingerprint"]

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
    # How the node is bought here: "on-demand" or "spot" (`spot_policy`). A spot and an
    # on-demand placement of one type are distinct candidates: failover, intents and
    # plans key them apart, so a spot stock-out never rules out the on-demand fallback.
    purchase: str = ON_DEMAND
    # The capacity reservation this candidate launches into (purchase "reservation"),
    # "" for none. Its purchase keys it apart from the same place's on-demand candidate,
    # so a full reservation never rules out the on-demand fallback.
    reservation: str = ""
    # The pool's `placement: cluster`: its nodes launch into one placement group per
    # region (named by `placement_group_name`), all in one zone.
    cluster: bool = False

    @property
    def launch(self) -> dict[str, Any]:
        return json.loads(self.launch_json) if self.launch_json else {}

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.provider, self.region, self.zone, self.instance_type, self.purchase)

    @property
    def where(self) -> str:
        mark = {SPOT: " (spot)", RESERVATION: " (reserved)"}.get(self.purchase, "")
        return where(self.provider, self.region, self.zone) + mark


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
        specs = _Specs(self.candidates, self.ssh_keys, tuple(dict(self.labels).items()),
                       self.user_data, self.fingerprint_key)
        # `_specs` is not a dataclass field: equality, repr and replace() never see it
        # (replace() runs __post_init__, which builds it again).
        self.__dict__.update(specs.attributes)

    def at(self, address: str, index: int | None) -> DesiredNode:
        """Its pool's node at another address: what the constructor gives for the same
        arguments but these two, without redoing per node what the pool shares."""
        attributes = self.__dict__.copy()
        attributes["address"], attributes["index"] = address, index
        return _with(attributes)

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
        return self._specs.spec_for(placement)

    def keyed(self, key: str) -> DesiredNode:
        """This node with its fingerprints keyed by a state's key: what
        `replace(self, fingerprint_key=key)` gives, without recomputing per node what
        its pool shares (Config.keyed calls this for every node of every plan)."""
        attributes = self.__dict__.copy()
        attributes.update(self._specs.keyed(key).attributes)
        return _with(attributes)

    def hash_for(self, placement: Placement) -> str:
        known = self._specs.hashes.get(placement)
        return known if known is not None else spec_hash(self.spec_for(placement))

    def accepted_hashes(self) -> dict[str, Placement]:
        """Spec hash -> placement, for every candidate: what counts as in spec."""
        return self._specs.accepted()

    # Set by __post_init__ (not a dataclass field: ClassVar keeps it out of fields()).
    _specs: ClassVar[_Specs]


def _with(attributes: dict[str, Any]) -> DesiredNode:
    """A node with these attributes (a copy of another node's, a few of them changed):
    the dict becomes the instance's own, in one step (frozen: setattr would refuse)."""
    node = object.__new__(DesiredNode)
    object.__setattr__(node, "__dict__", attributes)
    return node


class _Specs:
    """What every node of a pool has in common, computed once per pool and key instead of
    once per node: the spec per candidate and its hash (canonical JSON and a sha256: per
    node, 0.25 s of load_config and 0.18 s of Config.keyed at 10,000 nodes), the
    user_data fingerprint, the frozen labels. Immutable once built; shared by the nodes
    it was built for, which never change it."""

    def __init__(self, candidates: tuple[Placement, ...], ssh_keys: tuple[str, ...],
                 label_items: tuple[tuple[str, str], ...], user_data: str, key: str) -> None:
        self.candidates, self.ssh_keys, self.label_items = candidates, ssh_keys, label_items
        self.user_data, self.key = user_data, key
        self.labels: Mapping[str, str] = MappingProxyType(dict(label_items))
        self._sorted_labels = sorted(label_items)
        self.user_data_sha256 = fingerprint(user_data, key)
        self.hashes = {p: spec_hash(self.spec_for(p)) for p in candidates}
        self.first_spec: Mapping[str, Any] = MappingProxyType(self.spec_for(candidates[0]))
        self.first_hash = self.hashes[candidates[0]]
        self._accepted: dict[str, Placement] | None = None
        self._keyed: dict[str, _Specs] = {key: self}
        # What a node built on these holds: set in one step (frozen dataclass, so not
        # through setattr), shared labels and spec included.
        self.attributes: dict[str, Any] = {
            "_specs": self, "labels": self.labels, "spec": self.first_spec,
            "spec_hash": self.first_hash, "fingerprint_key": key}

    def spec_for(self, placement: Placement) -> dict[str, Any]:
        """A fresh dict each time: callers may keep or change it."""
        spec = {
            "provider": placement.provider,
            "instance_type": placement.instance_type,
            "region": placement.region,
            "zone": placement.zone,
            "ssh_keys": list(self.ssh_keys),
            "labels": dict(self._sorted_labels),
            "user_data_sha256": self.user_data_sha256,
        }
        # Only when set: a node without overrides keeps the spec hash it had before
        # launch options existed (no replacement on upgrade).
        if placement.launch_json:
            spec["launch"] = placement.launch
        # Likewise only for spot: on-demand specs are what they were before spot_policy.
        if placement.purchase == SPOT:
            spec["purchase"] = SPOT
        # And only on a reservation: the node launched into it (changing it replaces).
        if placement.reservation:
            spec["reservation"] = placement.reservation
        # And only for a cluster pool: other nodes keep the hash they had before.
        if placement.cluster:
            spec["placement"] = "cluster"
        return spec

    def keyed(self, key: str) -> _Specs:
        known = self._keyed.get(key)
        if known is None:
            known = _Specs(self.candidates, self.ssh_keys, self.label_items, self.user_data,
                           key)
            known._keyed = self._keyed  # one family: keyed("") of it is this one again
            self._keyed[key] = known
        return known

    def accepted(self) -> dict[str, Placement]:
        if self._accepted is None:
            accepted = {h: p for p, h in self.hashes.items()}
            if self.key:
                # Records and labels written before the state had a key stay in spec: a
                # key must never replace a fleet.
                accepted.update(self.keyed("").accepted())
            self._accepted = accepted
        return self._accepted


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

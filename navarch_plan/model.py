"""Plain data shared by every layer: nodes as clouds report them, requests, offers.

Everything here is a frozen dataclass or an enum and does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

__all__ = [
    "Consistency",
    "InstanceType",
    "Listing",
    "Node",
    "NodeStatus",
    "ProvisionRequest",
    "RateLimit",
    "LABEL_WORKSPACE",
    "LABEL_ADDRESS",
    "LABEL_SPEC",
    "LABEL_LINEAGE",
    "RESERVED_LABEL_PREFIX",
    "address_from_label",
    "address_to_label",
    "pool_address",
    "named_address",
    "parse_address",
]


class NodeStatus(StrEnum):
    """The statuses every provider maps its own vocabulary onto (the cloud's own word
    travels beside it, in `Node.cloud_status`).

    `stopped` exists but is not running by someone's choice (EC2 stopped, GCE suspended
    or TERMINATED); `unknown` is a word the provider does not know. Neither is ever
    replaced or deleted because of its status: only `--replace`, a config change or
    destroy acts on them.
    """

    PROVISIONING = "provisioning"
    RUNNING = "running"
    UNHEALTHY = "unhealthy"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    STOPPED = "stopped"
    UNKNOWN = "unknown"

    @property
    def is_alive(self) -> bool:
        """Booting or running: what a plan keeps as it is."""
        return self in (NodeStatus.PROVISIONING, NodeStatus.RUNNING)

    @property
    def is_gone(self) -> bool:
        """Being torn down or already gone: it will not come back."""
        return self in (NodeStatus.TERMINATING, NodeStatus.TERMINATED)

    @property
    def is_held(self) -> bool:
        """Exists, but not in a state navarch may judge: never acted on for its status."""
        return self in (NodeStatus.STOPPED, NodeStatus.UNKNOWN)


def _frozen_labels(labels: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(labels or {}))


@dataclass(frozen=True)
class Node:
    """One instance as a provider sees it."""

    id: str
    provider: str
    region: str
    instance_type: str
    status: NodeStatus
    zone: str = ""
    name: str = ""
    ip_address: str = ""
    gpu_count: int = 0
    gpu_type: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    # The cloud's own word for the status ("stopped", "SUSPENDED", "restarting"), shown
    # beside `status`; empty means the same as `status`.
    cloud_status: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", NodeStatus(self.status))
        object.__setattr__(self, "labels", _frozen_labels(self.labels))

    @property
    def status_word(self) -> str:
        """`stopped`, or `unknown (hibernating)` when the cloud's word says more."""
        word = self.cloud_status
        if not word or word.lower() == self.status.value:
            return self.status.value
        return f"{self.status.value} ({word})"


@dataclass(frozen=True)
class Listing:
    """One provider's listing, honest about what it could not read: `unreachable`
    names the regions or zones (or "*", the whole provider) whose instances are
    missing from `nodes` because the cloud could not say, not because there are none."""

    nodes: tuple[Node, ...]
    unreachable: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "unreachable", tuple(sorted(set(self.unreachable))))

    def covers(self, region: str, zone: str = "") -> bool:
        """Whether absence from this listing says anything about that place."""
        return not ({"*", region} | ({zone} if zone else set())) & set(self.unreachable)


@dataclass(frozen=True)
class Consistency:
    """How far a provider's reads may lag its writes, and how long it takes to boot.

    window: seconds during which a new instance may be missing from list and get (and
      a terminate may answer "not found" for it). Absence of an instance younger than
      this proves nothing; after it, absence confirmed by `get` is proof it is gone.
    boot_timeout: seconds a new instance may stay provisioning before apply gives up.
    idempotent_launch: re-sending a provision with the same name and idempotency key
      returns the original instance instead of a second one (EC2 ClientToken, GCE
      requestId and unique names); without it, a lost launch reply is resolved by name.
    """

    window: float = 60.0
    boot_timeout: float = 900.0
    idempotent_launch: bool = False

    def overridden(self, options: Mapping[str, object]) -> Consistency:
        """This provider's own values with those a config sets (`consistency_window`,
        `boot_timeout`)."""
        window = _number(options.get("consistency_window"))
        boot_timeout = _number(options.get("boot_timeout"))
        return replace(self, window=self.window if window is None else window,
                       boot_timeout=self.boot_timeout if boot_timeout is None
                       else boot_timeout)


@dataclass(frozen=True)
class ProvisionRequest:
    name: str
    instance_type: str
    region: str
    zone: str = ""
    ssh_key_names: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    user_data: str = ""
    # The pool's launch-option overrides for this candidate (only options its provider
    # type declares in `launch_options`); the provider's own options fill in the rest.
    launch: Mapping[str, Any] = field(default_factory=dict)
    # One per attempt (navarch passes its intent id): clouds with idempotency tokens
    # derive them from it, so a retry of this call is deduplicated and a later attempt
    # is not mistaken for it.
    idempotency_key: str = ""
    # Key name -> OpenSSH public key material, for the keys of `ssh_key_names` the config
    # gives material for (`ssh_public_keys`); clouds that install keys themselves (GCE's
    # `ssh-keys` metadata) need it, clouds that know keys by name ignore it.
    ssh_public_keys: Mapping[str, str] = field(default_factory=dict)
    # "on-demand", "spot" (the placement's, from spot_policy) or "reservation": only
    # providers whose type lists the model in `purchase_models` are ever asked for it.
    purchase: str = "on-demand"
    # With purchase "reservation": the capacity reservation to launch into (AWS: cr-... or
    # a reservation group ARN; GCE: a specific reservation's name); "" otherwise.
    reservation: str = ""
    # The placement group this instance launches into (`placement: cluster`), "" for
    # none: the provider creates it (labelled with the request's workspace and lineage
    # and the pool, LABEL_POOL) when it does not exist yet.
    placement_group: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ssh_key_names", tuple(self.ssh_key_names))
        object.__setattr__(self, "ssh_public_keys", MappingProxyType(dict(self.ssh_public_keys)))
        object.__setattr__(self, "labels", _frozen_labels(self.labels))
        object.__setattr__(self, "launch", MappingProxyType(dict(self.launch)))


@dataclass(frozen=True)
class InstanceType:
    """One offer: a type with its GPUs, price and where it can be had."""

    name: str
    gpu_count: int
    gpu_type: str
    memory_gb: float
    vcpus: int
    price_per_hr: float | None
    regions: tuple[str, ...] = ()
    available: bool = True
    # True when `regions` is where the cloud has capacity now (Lambda's live
    # `regions_with_capacity_available`), not merely where the type is sold.
    capacity_live: bool = False
    # Per GPU, when the offer itself says (Lambda's "Tesla V100 (16 GB)"); None: ask the
    # shipped catalog.
    gpu_memory_gb: float | None = None
    # Spot, never guessed from the on-demand price (None/empty: unknown). A cloud that
    # publishes prices per place (EC2: the latest per availability zone) fills
    # `spot_prices`, (region, zone) -> USD/h; `spot_price_per_hr` is one price for
    # everywhere the offer is (a catalog's, the fake cloud's).
    spot_price_per_hr: float | None = None
    spot_prices: Mapping[tuple[str, str], float] = field(default_factory=dict)
    # How it can be bought (catalog.facts.PURCHASE_MODELS words); empty: not said.
    purchase: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "regions", tuple(self.regions))
        object.__setattr__(self, "spot_prices", MappingProxyType(dict(self.spot_prices)))
        object.__setattr__(self, "purchase", tuple(self.purchase))

    def spot_price(self, region: str, zone: str = "") -> float | None:
        """The spot price there: the zone's; for a region alone (the cloud picks the
        zone) the highest of its zones, so a cost is never understated; else the one
        price for everywhere; None when unknown."""
        if (region, zone) in self.spot_prices:
            return self.spot_prices[(region, zone)]
        in_region = [p for (r, _), p in self.spot_prices.items() if r == region]
        if in_region and not zone:
            return max(in_region)
        return self.spot_price_per_hr


@dataclass(frozen=True)
class RateLimit:
    """How hard a provider may be driven. None means no limit. Launches and other calls
    are paced apart (at most one per 1/rate seconds); concurrency counts the actions
    that start on the provider at once."""

    launches_per_second: float | None = None
    calls_per_second: float | None = None
    concurrency: int | None = None

    def overridden(self, options: Mapping[str, object]) -> RateLimit:
        """This limit with the fields a config names replaced (an explicit null lifts
        that limit)."""
        def given(key: str, current: float | None) -> float | None:
            return _number(options[key]) if key in options else current

        concurrency = given("concurrency", self.concurrency)
        return RateLimit(given("launches_per_second", self.launches_per_second),
                         given("calls_per_second", self.calls_per_second),
                         None if concurrency is None else int(concurrency))


def _number(value: object) -> float | None:
    """A number from config options the schema has checked (None stays None)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


# Ownership labels. Their values must satisfy the strictest label rules of the
# clouds we support (GCP: lowercase letters, digits, '_' and '-', at most 63).
LABEL_WORKSPACE = "navarch-workspace"
LABEL_ADDRESS = "navarch-address"
LABEL_SPEC = "navarch-spec"
LABEL_LINEAGE = "navarch-lineage"  # the state's lineage: which state an instance belongs to
LABEL_POOL = "navarch-pool"  # on placement groups: the pool that wants it
RESERVED_LABEL_PREFIX = "navarch-"

NAME_PATTERN = r"[a-z][a-z0-9-]{0,29}"
_POOL_ADDR = re.compile(rf"^pool\.({NAME_PATTERN})\[(\d+)\]$")
_NAMED_ADDR = re.compile(rf"^node\.({NAME_PATTERN})$")
_POOL_LABEL = re.compile(rf"^p_({NAME_PATTERN})_(\d+)$")
_NAMED_LABEL = re.compile(rf"^n_({NAME_PATTERN})$")


def pool_address(pool: str, index: int) -> str:
    return f"pool.{pool}[{index}]"


def named_address(name: str) -> str:
    return f"node.{name}"


def parse_address(address: str) -> tuple[str, str, int | None]:
    """`pool.x[3]` -> ("pool", "x", 3); `node.y` -> ("node", "y", None)."""
    if m := _POOL_ADDR.match(address):
        return "pool", m.group(1), int(m.group(2))
    if m := _NAMED_ADDR.match(address):
        return "node", m.group(1), None
    raise ValueError(f"not a node address: {address!r} (expected pool.NAME[INDEX] or node.NAME)")


def address_to_label(address: str) -> str:
    """Reversible within GCP label rules: names never contain '_', so '_' separates."""
    kind, name, index = parse_address(address)
    return f"p_{name}_{index}" if kind == "pool" else f"n_{name}"


def address_from_label(value: str) -> str | None:
    if m := _POOL_LABEL.match(value):
        return pool_address(m.group(1), int(m.group(2)))
    if m := _NAMED_LABEL.match(value):
        return named_address(m.group(1))
    return None

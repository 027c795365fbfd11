"""The provider interface: one small Protocol, optional capabilities apart; and the
provider *type* (`ProviderType`), which owns what navarch knows about a kind of provider
before it builds one: its options, its label rules, its checks, its defaults."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from navarch_plan.clock import SYSTEM_CLOCK, Clock
from navarch_plan.model import Consistency, InstanceType, Listing, Node, ProvisionRequest, RateLimit

__all__ = ["Provider", "InstanceTypeLister", "NodeGetter", "RateLimited", "PartialLister",
           "EventuallyConsistent", "LabelSetter", "LaunchPrechecked", "PlacementGroupOwner",
           "DEFAULT_CONSISTENCY",
           "ProviderType", "LabelRules", "NodeFacts", "NodeProblem", "BuildContext"]

#: What navarch assumes of a provider that does not say (a plugin without
#: `consistency()`): reads may lag a minute; no idempotent launches.
DEFAULT_CONSISTENCY = Consistency()


@runtime_checkable
class Provider(Protocol):
    name: str

    def provision(self, req: ProvisionRequest) -> Node:
        """Create one instance; returns it (status may still be provisioning)."""
        ...

    def terminate(self, node_id: str) -> bool | None:
        """Idempotent: terminating an unknown or already gone id succeeds. Returns True
        when the cloud accepted it (the instance is shutting down or gone), False when
        the cloud knows no such instance, None when it cannot tell. Callers take only
        True as proof: an eventually consistent cloud may answer "not found" for an
        instance it has just launched, so apply reads the instance back and, within the
        provider's consistency window, terminates again."""
        ...

    def list(self) -> list[Node]:
        """Every instance this provider sees (callers filter by ownership labels)."""
        ...


@runtime_checkable
class InstanceTypeLister(Protocol):
    def list_instance_types(self) -> list[InstanceType]: ...


@runtime_checkable
class NodeGetter(Protocol):
    """Lookup of one node by id: waits for a new node to be running, and confirms by id
    what a listing did not show. None means the cloud says it does not exist, which
    within the consistency window proves nothing."""

    def get(self, node_id: str) -> Node | None: ...


@runtime_checkable
class PartialLister(Protocol):
    """A listing that can say which regions or zones it could not read (GCE's
    `unreachables`, an EC2 region that failed). Without it, a listing is all or an
    error."""

    def listing(self) -> Listing: ...


@runtime_checkable
class EventuallyConsistent(Protocol):
    """The provider's consistency window, boot timeout and whether its launches are
    idempotent; a config's `consistency_window` and `boot_timeout` override it."""

    def consistency(self) -> Consistency: ...


@runtime_checkable
class RateLimited(Protocol):
    """The provider's own idea of how hard its cloud may be driven (its documented API
    limits); a config's `rate_limit` overrides it field by field."""

    def rate_limit(self) -> RateLimit: ...


@runtime_checkable
class LabelSetter(Protocol):
    """Replaces an instance's labels (tags) with exactly these, in place: how navarch
    takes an instance over (`state import`, `state adopt`) and puts back labels changed
    by hand. Clouds without such an API (Lambda) leave it out."""

    def set_labels(self, node_id: str, labels: Mapping[str, str]) -> None: ...


@runtime_checkable
class LaunchPrechecked(Protocol):
    """A look before a launch, taken before the launch waits for its launch slot: raises
    a CapacityError when the cloud already says the launch would fail (Lambda's live
    catalog lists no capacity for the type in the region), so a doomed launch costs no
    launch call and no slot. When it cannot tell, it returns and the launch goes ahead."""

    def check_launch(self, req: ProvisionRequest) -> None: ...


@runtime_checkable
class PlacementGroupOwner(Protocol):
    """A provider that creates placement groups for `placement: cluster` pools
    (`ProvisionRequest.placement_group`) and cleans them up: deletes the groups of this
    workspace and lineage not in `keep` that hold no instances, and returns their names.
    The engine calls it after apply and destroy."""

    def prune_placement_groups(self, workspace: str, lineage: str,
                               keep: set[str]) -> list[str]: ...


# -- provider types ------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelRules:
    """A cloud's rules for label (tag) keys and values, checked when the config loads, so
    a label the cloud would refuse costs no launch. Patterns must match the whole key
    (value); `words` says the rules for people."""

    key_pattern: str
    max_key: int
    max_value: int
    words: str
    value_pattern: str = ""  # "" = any characters
    reserved_prefixes: tuple[str, ...] = ()

    def problem(self, key: str, value: str) -> str | None:
        """Why the cloud would refuse `key=value`, or None."""
        fits = (len(key) <= self.max_key and len(value) <= self.max_value
                and re.fullmatch(self.key_pattern, key) is not None
                and (not self.value_pattern or re.fullmatch(self.value_pattern, value)))
        if fits and not any(key.startswith(p) for p in self.reserved_prefixes):
            return None
        return f"breaks {self.words}"


@dataclass(frozen=True)
class NodeFacts:
    """One candidate placement of a desired node, as a provider type checks it at load."""

    region: str
    zone: str
    instance_type: str
    ssh_keys: tuple[str, ...]
    labels: Mapping[str, str]
    user_data: str
    # The names of `ssh_keys` the config gives public key material for (ssh_public_keys).
    ssh_public_keys: frozenset[str] = frozenset()
    # The capacity reservation this candidate launches into ("" for none).
    reservation: str = ""


@dataclass(frozen=True)
class NodeProblem:
    """What a cloud would refuse at launch. `field` is the node's key it is about
    (`ssh_keys`, `zone`, `labels.KEY`, ...; "" for the node itself); `option`, when set,
    is the provider option that lacks something (`image_id.us-west-2`), so the error
    points at the provider instead."""

    message: str
    field: str = ""
    option: str = ""


@dataclass(frozen=True)
class BuildContext:
    """What building a provider may need beyond its options: the config's folder (for
    relative paths), every region the config's candidates name on it, the clock, and
    whether live spot prices are wanted (False when no candidate on it buys spot, so a
    plan asks the cloud nothing it will not use)."""

    base_dir: str = "."
    regions: tuple[str, ...] = ()
    clock: Clock = field(default=SYSTEM_CLOCK, compare=False)
    spot_prices: bool = True


@runtime_checkable
class ProviderType(Protocol):
    """A kind of provider (`lambda`, `gcp`, a plugin's): everything navarch needs to know
    before building one. Built-ins and plugins register the same way (registry.py).

    options_schema: a JSON Schema object (`properties`, `required`) for the type's own
      options; navarch adds its shared ones (`rate_limit`, `retry`, `consistency_window`,
      `boot_timeout`). None accepts any keys (then `build` must check them).
    label_rules: what the cloud accepts as labels, or None for anything.
    consistency, rate_limit: the cloud's documented behaviour, before a config's
      overrides.
    """

    @property
    def name(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def options_schema(self) -> Mapping[str, Any] | None: ...
    @property
    def label_rules(self) -> LabelRules | None: ...
    @property
    def consistency(self) -> Consistency: ...
    @property
    def rate_limit(self) -> RateLimit: ...
    @property
    def launch_options(self) -> frozenset[str]:
        """The options a pool may set for its own nodes (`launch:`), over the
        provider's: each must be a property of `options_schema`."""
        ...
    @property
    def purchase_models(self) -> frozenset[str]:
        """How this cloud can sell an instance through this provider: "on-demand", and
        "spot" when it can launch spot instances (`spot_policy`)."""
        ...
    @property
    def placement_groups(self) -> bool:
        """Whether a pool may ask for `placement: cluster` here: the provider honours
        `ProvisionRequest.placement_group` (creating the group when it is missing)."""
        ...

    def check_node(self, options: Mapping[str, Any], node: NodeFacts
                   ) -> Sequence[NodeProblem]:
        """What the cloud would refuse about launching `node` with these options."""
        ...

    def build(self, name: str, options: Mapping[str, Any], env: Mapping[str, str],
              context: BuildContext) -> Provider:
        """The provider, from its options (schema-checked, navarch's shared ones
        removed). Imports the cloud's SDK; reads secrets only from `env`."""
        ...

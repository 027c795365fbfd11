"""The provider interface: one small Protocol, optional capabilities apart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from navarch_plan.model import Consistency, InstanceType, Listing, Node, ProvisionRequest, RateLimit

__all__ = ["Provider", "InstanceTypeLister", "NodeGetter", "RateLimited", "PartialLister",
           "EventuallyConsistent", "LabelSetter", "DEFAULT_CONSISTENCY"]

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

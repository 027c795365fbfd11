"""The provider interface: one small Protocol, optional capabilities apart."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from navarch_plan.model import InstanceType, Node, ProvisionRequest, RateLimit

__all__ = ["Provider", "InstanceTypeLister", "NodeGetter", "RateLimited"]


@runtime_checkable
class Provider(Protocol):
    name: str

    def provision(self, req: ProvisionRequest) -> Node:
        """Create one instance; returns it (status may still be provisioning)."""
        ...

    def terminate(self, node_id: str) -> None:
        """Idempotent: terminating an unknown or already gone id succeeds."""
        ...

    def list(self) -> list[Node]:
        """Every instance this provider sees (callers filter by ownership labels)."""
        ...


@runtime_checkable
class InstanceTypeLister(Protocol):
    def list_instance_types(self) -> list[InstanceType]: ...


@runtime_checkable
class NodeGetter(Protocol):
    """Cheap lookup of one node, used to wait for a new node to be running."""

    def get(self, node_id: str) -> Node | None: ...


@runtime_checkable
class RateLimited(Protocol):
    """The provider's own idea of how hard its cloud may be driven (its documented API
    limits); a config's `rate_limit` overrides it field by field."""

    def rate_limit(self) -> RateLimit: ...

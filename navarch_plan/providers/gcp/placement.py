"""Compute Engine compact placement policies for `placement: cluster` pools: a resource
policy with `groupPlacementPolicy.collocation: COLLOCATED` per pool and region, made
before a pool's launch when missing and referenced from the instance's
`resourcePolicies`; deleted once no pool wants it and no instance uses it.

Resource policies carry no labels, so ownership is in the description, written and read
only here: `navarch workspace=W lineage=L pool=P`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import compute_v1

from navarch_plan.model import (
    LABEL_ADDRESS,
    LABEL_LINEAGE,
    LABEL_WORKSPACE,
    address_from_label,
    parse_address,
)

__all__ = ["CompactPolicies", "owner_description", "policy_link"]

Errors = Callable[[], AbstractContextManager[None]]  # client errors -> ProviderErrors
Wait = Callable[[Any, str], Any]  # (region operation, region) -> it, once DONE
Failed = Callable[[Any], Exception]  # a DONE operation with an error -> what to raise

#: GCE's reason for deleting a policy an instance still names: it stays, for later.
_IN_USE = "resourceInUseByAnotherResource"


def owner_description(labels: Mapping[str, str]) -> str:
    address = address_from_label(labels.get(LABEL_ADDRESS, ""))
    pool = parse_address(address)[1] if address else ""
    return (f"navarch workspace={labels.get(LABEL_WORKSPACE, '')} "
            f"lineage={labels.get(LABEL_LINEAGE, '')} pool={pool}")


def _owner(description: str) -> dict[str, str]:
    words = description.split()
    if not words or words[0] != "navarch":
        return {}
    return dict(w.split("=", 1) for w in words[1:] if "=" in w)


def policy_link(project: str, region: str, name: str) -> str:
    return f"projects/{project}/regions/{region}/resourcePolicies/{name}"


class CompactPolicies:
    """The resource policy calls, through a ResourcePoliciesClient; their region
    operations are waited on by the provider's one operation waiter (`wait`)."""

    def __init__(self, project: str, policies: Any, errors: Errors, wait: Wait,
                 failed: Failed) -> None:
        self.project, self._rp = project, policies
        self._errors, self._wait_done, self._failed = errors, wait, failed

    def _wait(self, op: Any, region: str) -> None:
        with self._errors():
            op = self._wait_done(op, region)
        if op.error.errors or op.http_error_status_code >= 400:
            raise self._failed(op)

    def ensure(self, region: str, name: str, labels: Mapping[str, str]) -> None:
        """The policy, made when a get by name finds none (a racing launch that made it
        first is success too)."""
        rp = self._rp
        with self._errors():
            try:
                rp.get(project=self.project, region=region, resource_policy=name)
                return
            except gexc.NotFound:
                pass
            policy = compute_v1.ResourcePolicy(
                name=name, description=owner_description(labels),
                group_placement_policy=compute_v1.ResourcePolicyGroupPlacementPolicy(
                    collocation="COLLOCATED"))
            try:
                op = rp.insert_unary(project=self.project, region=region,
                                     resource_policy_resource=policy)
            except gexc.Conflict:
                return
        self._wait(op, region)

    def prune(self, workspace: str, lineage: str, keep: set[str]) -> list[str]:
        """Deletes this workspace's (and lineage's) policies not in `keep`; one still
        used by an instance stays. Returns the deleted names."""
        rp = self._rp
        with self._errors():
            scopes = list(rp.aggregated_list(project=self.project))
        deleted = []
        for scope, listed in scopes:
            region = scope.rsplit("/", 1)[-1]
            for policy in listed.resource_policies:
                owner = _owner(policy.description)
                if (policy.name in keep or owner.get("workspace") != workspace
                        or (lineage and owner.get("lineage") != lineage)):
                    continue
                if self._delete(rp, region, policy.name):
                    deleted.append(policy.name)
        return sorted(deleted)

    def _delete(self, rp: Any, region: str, name: str) -> bool:
        with self._errors():
            try:
                op = rp.delete_unary(project=self.project, region=region,
                                     resource_policy=name)
            except gexc.NotFound:
                return False  # gone already
            except gexc.BadRequest as exc:
                if not _in_use(exc):
                    raise
                return False  # an instance still names it: the next prune tries again
        self._wait(op, region)
        return True


def _in_use(exc: gexc.BadRequest) -> bool:
    reasons = {str(e.get("reason", "")) for e in exc.errors if isinstance(e, dict)}
    return _IN_USE in reasons | {exc.reason or ""}

"""Google Compute Engine provider, on google-cloud-compute's REST client.

Node ids are ``"{zone}/{instance name}"`` (e.g. ``us-central1-a/research-head-0-x7k2``),
not GCE's numeric id: every per-instance call (get, delete) is addressed by zone and name,
and ``terminate(node_id)`` / ``get(node_id)`` must work from the id alone.

Waiting: inserts and deletes return a zone operation, which we wait for through our own
``ZoneOperationsClient`` built with the same endpoint and credentials. The library's
``ExtendedOperation.result()`` polls through a client it builds itself, which ignores a
custom ``api_endpoint`` (so tests against a local server would poll the real API).

Idempotency: every insert carries ``requestId = uuid5(project/zone/name/idempotency_key)``
(navarch's key is the intent id of the attempt), so a retried insert of the same attempt
returns the original operation, while a later attempt (a new run after a stock-out) is a
new request; a name that already exists (HTTP 409) returns the existing instance.

Beside it: faults.py (exceptions -> ProviderError), nodes.py (Instance -> Node),
launch.py (the insert body), placement.py (compact policies), catalog.py.
"""

from __future__ import annotations

import builtins
import threading
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.api_core.client_options import ClientOptions
from google.cloud import compute_v1

from navarch_plan.clock import SYSTEM_CLOCK, Clock
from navarch_plan.errors import (
    InvalidRequestError,
    NotFoundError,
    ProviderError,
    TransientError,
)
from navarch_plan.model import (
    LABEL_WORKSPACE,
    Consistency,
    InstanceType,
    Listing,
    Node,
    ProvisionRequest,
    RateLimit,
)
from navarch_plan.providers.gcp import catalog
from navarch_plan.providers.gcp.faults import from_operation, gce_error, translating
from navarch_plan.providers.gcp.kind import GCP
from navarch_plan.providers.gcp.launch import DEFAULT_IMAGE, LaunchSettings, instance_body
from navarch_plan.providers.gcp.nodes import (
    google_labels,
    node_from_instance,
    scope_name,
    split_node_id,
)
from navarch_plan.providers.gcp.operations import Poll, until_done
from navarch_plan.providers.gcp.placement import CompactPolicies, policy_link

__all__ = ["DEFAULT_IMAGE", "GcpProvider"]

_REQUEST_NS = uuid.UUID("5f0c3f7e-2a4b-4d0e-9c51-6e1d8a2b7c40")  # fixed: ids must be stable
_CALL_TIMEOUT = 60.0  # seconds per HTTP call (not per operation)
# Reads retry briefly on 503/504/429; the library's default keeps trying for 10 minutes,
# which would stall a whole plan. Writes are not retried here: the executor decides.
_READ_RETRY = gretry.Retry(
    initial=0.2, maximum=5.0, multiplier=2.0, timeout=30.0,
    predicate=gretry.if_exception_type(
        gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.TooManyRequests),
)


class GcpProvider:
    """Provider, InstanceTypeLister and NodeGetter for Compute Engine."""

    def __init__(self, name: str, project: str, *, zones: Sequence[str] = (),
                 endpoint: str | None = None, credentials: Any = None,
                 settings: LaunchSettings | None = None,
                 operation_timeout: float = 600, poll_interval: float = 2.0,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.name, self.project = name, project
        self.zones = tuple(zones)  # fallback zones for requests that name only a region
        self.endpoint = endpoint
        # The provider's launch options; a request's `launch` overrides them per pool.
        self.settings = settings or LaunchSettings()
        self.operation_timeout, self.poll_interval = operation_timeout, poll_interval
        self.clock = clock
        self._credentials = credentials
        self._lock = threading.Lock()
        self._ic: Any = None
        self._zo: Any = None
        self._compact: CompactPolicies | None = None

    def _clients(self) -> tuple[Any, Any]:
        # Built on first use, so constructing the provider (validate, plan rendering)
        # needs no credentials; credentials=None means application-default credentials.
        with self._lock, self._errors():
            if self._ic is None:
                kw = self._client_options()
                self._zo = compute_v1.ZoneOperationsClient(**kw)
                self._ic = compute_v1.InstancesClient(**kw)
            return self._ic, self._zo

    def _client_options(self) -> dict[str, Any]:
        opts = ClientOptions(api_endpoint=self.endpoint) if self.endpoint else None
        return {"credentials": self._credentials, "client_options": opts, "transport": "rest"}

    def _policies(self) -> CompactPolicies:
        """Compact placement policies (`placement: cluster`), their clients made on use."""
        with self._lock, self._errors():
            if self._compact is None:
                kw = self._client_options()
                ro = compute_v1.RegionOperationsClient(**kw)
                self._compact = CompactPolicies(
                    self.project, compute_v1.ResourcePoliciesClient(**kw), self._errors,
                    lambda op, region: self._until_done(op, region, lambda name, t: ro.wait(
                        project=self.project, region=region, operation=name,
                        retry=_READ_RETRY, timeout=t)),
                    lambda op: from_operation(op, self.name, ""))
            return self._compact

    def _errors(self, zone: str = "", instance_type: str = "") -> AbstractContextManager[None]:
        """faults.translating for this provider (CompactPolicies calls it too)."""
        return translating(self.name, zone, instance_type)

    def _err(self, cls: type[ProviderError], message: str, region: str,
             code: str) -> ProviderError:
        return gce_error(self.name, cls, message, region, code)

    # -- operations -----------------------------------------------------------------

    def _wait(self, op: Any, zone: str, instance_type: str = "") -> None:
        """Wait for a zone operation to be DONE, then raise its error if it has one."""
        _, zo = self._clients()
        op = self._until_done(op, catalog.region_of(zone), lambda name, timeout: zo.wait(
            project=self.project, zone=zone, operation=name, retry=_READ_RETRY,
            timeout=timeout))
        if op.error.errors or op.http_error_status_code >= 400:
            raise from_operation(op, self.name, zone, instance_type)

    def _until_done(self, op: Any, region: str, poll: Poll) -> Any:
        return until_done(op, poll, self.clock, self.operation_timeout, self.poll_interval,
                          lambda message: self._err(TransientError, message, region,
                                                    "OPERATION_TIMEOUT"))

    # -- Provider -------------------------------------------------------------------

    def _zone_for(self, req: ProvisionRequest) -> str:
        zone = req.zone.strip() or next(
            (z for z in self.zones if catalog.region_of(z) == req.region), "")
        if not zone:
            raise self._err(InvalidRequestError, "GCP needs a zone (e.g. us-central1-a) "
                            f"for {req.name}", req.region, "ZONE_REQUIRED")
        if req.region and catalog.region_of(zone) != req.region:
            raise self._err(InvalidRequestError, f"zone {zone} is not in region "
                            f"{req.region}", req.region, "ZONE_REGION_MISMATCH")
        return zone

    def _instance_resource(self, req: ProvisionRequest, zone: str) -> Any:
        region = catalog.region_of(zone)
        try:
            machine, accel, count = catalog.parse_instance_type(req.instance_type)
        except ValueError as e:
            raise self._err(InvalidRequestError, str(e), region, "INVALID_INSTANCE_TYPE") from e
        settings = self.settings.over(req.launch)
        if isinstance(settings.subnetwork, Mapping) and not settings.subnetwork_in(region):
            raise self._err(InvalidRequestError, f"subnetwork has no value for region "
                            f"{region}", region, "SUBNETWORK_REQUIRED")
        missing = [k for k in req.ssh_key_names if k not in req.ssh_public_keys]
        if missing:
            raise self._err(InvalidRequestError, f"ssh key {missing[0]!r} has no public key "
                            "material (ssh_public_keys)", region, "SSH_KEY_MATERIAL")
        return instance_body(req, zone, settings, machine, accel, count)

    def provision(self, req: ProvisionRequest) -> Node:
        zone = self._zone_for(req)
        body = self._instance_resource(req, zone)
        if req.placement_group:
            region = catalog.region_of(zone)
            self._policies().ensure(region, req.placement_group, req.labels)
            body.resource_policies = [policy_link(self.project, region, req.placement_group)]
        request = compute_v1.InsertInstanceRequest(
            project=self.project, zone=zone, instance_resource=body,
            request_id=str(uuid.uuid5(_REQUEST_NS, f"{self.project}/{zone}/{req.name}"
                                                   f"/{req.idempotency_key}")))
        ic, _ = self._clients()
        with self._errors(zone, req.instance_type):
            try:
                op = ic.insert_unary(request=request, timeout=_CALL_TIMEOUT)
            except gexc.Conflict:
                op = None  # the name exists: an earlier attempt got through
            if op is not None:
                self._wait(op, zone, req.instance_type)
            inst = ic.get(project=self.project, zone=zone, instance=req.name,
                          retry=_READ_RETRY, timeout=_CALL_TIMEOUT)
        return node_from_instance(self.name, inst)

    def prune_placement_groups(self, workspace: str, lineage: str,
                               keep: set[str]) -> list[str]:
        """PlacementGroupOwner: this workspace's compact placement policies no pool
        wants, deleted in every region (those still used by an instance stay)."""
        return self._policies().prune(workspace, lineage, keep)

    def terminate(self, node_id: str) -> bool:
        """Idempotent. True once the delete operation is done; False when GCE knows no
        such instance (already gone, or deleted by someone else meanwhile)."""
        zone, name = split_node_id(self.name, node_id)
        ic, _ = self._clients()
        try:
            with self._errors(zone):
                try:
                    op = ic.delete_unary(project=self.project, zone=zone, instance=name,
                                         timeout=_CALL_TIMEOUT)
                except gexc.NotFound:
                    return False
                self._wait(op, zone)
        except NotFoundError:
            return False
        return True

    def set_labels(self, node_id: str, labels: Mapping[str, str]) -> None:
        """instances.setLabels with the fingerprint of the labels it replaces; GCE
        refuses (412) if they changed meanwhile: a TransientError, since a retry reads
        the new fingerprint and sets the same labels (setting them is idempotent)."""
        zone, name = split_node_id(self.name, node_id)
        ic, _ = self._clients()
        with self._errors(zone):
            inst = ic.get(project=self.project, zone=zone, instance=name, retry=_READ_RETRY,
                          timeout=_CALL_TIMEOUT)
            # setLabels replaces every label: Google's own are sent back as they are.
            body = compute_v1.InstancesSetLabelsRequest(
                labels={**google_labels(inst.labels), **catalog.sanitize_labels(labels)},
                label_fingerprint=inst.label_fingerprint)
            try:
                op = ic.set_labels_unary(project=self.project, zone=zone, instance=name,
                                         instances_set_labels_request_resource=body,
                                         timeout=_CALL_TIMEOUT)
            except gexc.PreconditionFailed as e:
                raise self._err(TransientError, "the labels changed while navarch set them "
                                "(stale label fingerprint)", catalog.region_of(zone),
                                "conditionNotMet") from e
            self._wait(op, zone)

    def get(self, node_id: str) -> Node | None:
        zone, name = split_node_id(self.name, node_id)
        ic, _ = self._clients()
        with self._errors(zone):
            try:
                inst = ic.get(project=self.project, zone=zone, instance=name,
                              retry=_READ_RETRY, timeout=_CALL_TIMEOUT)
            except gexc.NotFound:
                return None
        return node_from_instance(self.name, inst)

    def list(self) -> list[Node]:
        """Every instance with a navarch-workspace label, in all zones of the project."""
        listing = self.listing()
        if listing.unreachable:
            raise TransientError(f"zones unreachable: {', '.join(listing.unreachable)}",
                                 provider=self.name, code="UNREACHABLE")
        return list(listing.nodes)

    def listing(self) -> Listing:
        """The aggregated list, with the zones it admits it could not read: the page's
        `unreachables` and any scope whose warning is UNREACHABLE. Their instances are
        missing from `nodes` because GCE could not say, not because there are none."""
        ic, _ = self._clients()
        request = compute_v1.AggregatedListInstancesRequest(
            project=self.project, filter=f"labels.{LABEL_WORKSPACE}:*")
        nodes: list[Node] = []
        unreachable: set[str] = set()
        with self._errors():
            pager = ic.aggregated_list(request=request, retry=_READ_RETRY,
                                       timeout=_CALL_TIMEOUT)
            for page in pager.pages:
                unreachable.update(scope_name(s) for s in page.unreachables)
                for scope, scoped in page.items.items():
                    if scoped.warning.code == "UNREACHABLE":
                        unreachable.add(scope_name(scope))
                    nodes.extend(node_from_instance(self.name, inst) for inst in scoped.instances)
        return Listing(tuple(nodes), tuple(unreachable))

    def consistency(self) -> Consistency:
        return GCP.consistency

    def rate_limit(self) -> RateLimit:
        return GCP.rate_limit

    def list_instance_types(self) -> builtins.list[InstanceType]:
        return catalog.instance_types()

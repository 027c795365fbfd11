"""AWS EC2 provider: boto3 calls, typed errors, and a launch that never happens twice.

This module imports boto3 at the top; the package imports it only when a config uses aws.

Launch safety. RunInstances is not idempotent by itself and botocore does not fill in a
ClientToken for it, so (1) every launch carries a deterministic ClientToken, (2) the launch
client makes exactly one attempt (botocore would otherwise retry the HTTP 500 that EC2 uses
for InsufficientInstanceCapacity), and (3) when a launch ends in a timeout, a dropped
connection or a 5xx, the instance is looked up by its Name tag before anyone concludes that
it does not exist.

Beside it: clients.py (boto3 clients, one-attempt launches), run_params.py (the
RunInstances request), instances.py (describe, the listing across regions, instance ->
Node), faults.py, images.py, placement_groups.py, spot_prices.py.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import boto3

from navarch_plan.catalog.facts import purchase_words
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
from navarch_plan.providers.aws.catalog import GPU_TYPES, offers
from navarch_plan.providers.aws.clients import RegionClients
from navarch_plan.providers.aws.faults import translating
from navarch_plan.providers.aws.images import RegionImages
from navarch_plan.providers.aws.instances import (
    LISTED_STATES,
    across_regions,
    described_instances,
    look_for_named,
    node_from_instance,
)
from navarch_plan.providers.aws.kind import AWS
from navarch_plan.providers.aws.launch import (
    DEFAULT_IMAGE,
    LAUNCH_OPTIONS,
    client_token,
)
from navarch_plan.providers.aws.placement_groups import ensure_group, prune_groups
from navarch_plan.providers.aws.run_params import run_instances_params
from navarch_plan.providers.aws.spot_prices import regional_spot_prices

__all__ = ["AwsProvider", "client_token"]

# Codes meaning "no instance with that id here"; Malformed: no instance can have that id.
_ABSENT = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})
_T = TypeVar("_T")


class AwsProvider:
    """EC2 instances in a fixed set of regions.

    `image_id` is an AMI id or `resolve:ssm:NAME` (resolved per region), or a mapping
    region -> either (AMIs are regional); `subnet_id` may map region or zone -> subnet,
    `security_group_ids` region -> groups. Without image_id: AWS's Deep Learning Base
    GPU AMI (launch.DEFAULT_IMAGE). A request's `launch` overrides the launch options
    (launch.LAUNCH_OPTIONS). EC2 takes a single key pair: the first of the request's
    `ssh_key_names` is used, else `key_name`. Credentials come from boto3's usual chain;
    nothing secret is configured here.
    """

    #: Lookups by Name tag after a launch whose outcome is unknown, and the pause between
    #: them (EC2's describe is eventually consistent right after a launch).
    launch_lookup_attempts: int = 3
    launch_lookup_delay: float = 2.0
    #: describe_instances page size (EC2 accepts 5..1000; it counts reservations).
    page_size: int = 1000

    def __init__(self, name: str, region: str, *,
                 image_id: str | Mapping[str, str] = DEFAULT_IMAGE,
                 key_name: str = "", regions: Sequence[str] = (),
                 endpoint_url: str | None = None,
                 subnet_id: str | Mapping[str, str] = "",
                 security_group_ids: Sequence[str] | Mapping[str, Sequence[str]] = (),
                 root_volume_gb: int | None = None, root_volume_type: str | None = None,
                 iam_instance_profile: str = "", session: Any = None,
                 clock: Clock = SYSTEM_CLOCK, spot_prices: bool = True) -> None:
        """`spot_prices`: read EC2's live spot prices when listing instance types (one
        DescribeSpotPriceHistory per region); False leaves them unknown."""
        self.name = name
        self.clock = clock
        self.spot_prices = spot_prices
        self.region = region
        self.regions: tuple[str, ...] = tuple(dict.fromkeys([region, *regions]))
        self.key_name = key_name
        self.endpoint_url = endpoint_url
        #: The launch options as configured; a request's `launch` is laid over them.
        self.launch_defaults: dict[str, Any] = {
            "image_id": image_id, "subnet_id": subnet_id,
            "security_group_ids": (security_group_ids if isinstance(security_group_ids, Mapping)
                                   else tuple(security_group_ids)),
            "root_volume_gb": root_volume_gb, "root_volume_type": root_volume_type,
            "iam_instance_profile": iam_instance_profile}
        self._clients = RegionClients(
            session if session is not None else boto3.session.Session(), endpoint_url)
        self.images = RegionImages(name, self.client, self.ssm_client)
        # instance id -> region (ids do not say); list() threads write distinct keys, which
        # the GIL makes safe without the lock.
        self._region_of: dict[str, str] = {}

    @property
    def security_group_ids(self) -> Any:
        return self.launch_defaults["security_group_ids"]

    # -- clients -------------------------------------------------------------------------

    def client(self, region: str) -> Any:
        """The EC2 client for every call but RunInstances (standard retries)."""
        return self._clients.get(region, "ec2")

    def launch_client(self, region: str) -> Any:
        """The EC2 client RunInstances goes through: one attempt, no botocore retry.
        Public so that callers and tests can hook its event system."""
        return self._clients.get(region, "launch")

    def ssm_client(self, region: str) -> Any:
        """The SSM client `resolve:ssm:` image references are read through."""
        return self._clients.get(region, "ssm")

    def _translating(self, region: str, what: str, instance_type: str = "") -> Any:
        return translating(self.name, region, what, instance_type)

    # -- Provider ------------------------------------------------------------------------

    def provision(self, req: ProvisionRequest) -> Node:
        region = req.region or self.region
        if region not in self.regions:
            # list() would never see it: the instance would leak and be created again.
            raise InvalidRequestError(
                f"region {region} is not one of this provider's regions {list(self.regions)}",
                provider=self.name, region=region, code="RegionNotConfigured")
        params = run_instances_params(req, region, self.launch_settings(req), self.key_name,
                                      self.images)
        if req.placement_group:
            ensure_group(self.client(region), req.placement_group, req.labels,
                         lambda what: self._translating(region, what))
        what = f"launching {req.instance_type} {req.name!r}" + (
            f" into capacity reservation {req.reservation}" if req.reservation else "")
        try:
            with self._translating(region, what, req.instance_type):
                reply = self.launch_client(region).run_instances(**params)
        except TransientError as exc:
            return self._recover_launch(req, region, exc)
        instance = reply["Instances"][0]
        # Not every EC2 answer echoes the tags it applied; the request's tags are the truth.
        instance = {**instance, "Tags": instance.get("Tags") or
                    params["TagSpecifications"][0]["Tags"]}
        node = node_from_instance(self.name, instance, region)
        self._region_of[node.id] = region
        return node

    def launch_settings(self, req: ProvisionRequest) -> dict[str, Any]:
        """The launch options for this request: the provider's, with the pool's
        overrides (only the options a pool may set) laid over them."""
        unknown = set(req.launch) - LAUNCH_OPTIONS
        if unknown:
            raise InvalidRequestError(f"not launch options of aws: {sorted(unknown)}",
                                      provider=self.name, code="UnknownLaunchOption")
        return {**self.launch_defaults, **req.launch}

    def _recover_launch(self, req: ProvisionRequest, region: str,
                        failure: TransientError) -> Node:
        """The launch may have happened although its answer was lost: look, never relaunch."""
        found = look_for_named(lambda filters: self._describe(region, filters), req.name,
                               self.launch_lookup_attempts, self.launch_lookup_delay,
                               self.clock)
        if found is not None:
            return found
        raise TransientError(
            f"{failure.message}; outcome unknown: no instance named {req.name!r} found "
            "(a retry of this same request reuses its ClientToken)",
            provider=self.name, region=region, code=failure.code,
            cloud_message=failure.cloud_message) from failure

    def prune_placement_groups(self, workspace: str, lineage: str,
                               keep: set[str]) -> list[str]:
        """PlacementGroupOwner: this workspace's placement groups no pool wants, deleted
        in every region (those still holding instances stay)."""
        deleted: list[str] = []
        for region in self.regions:
            def translating(what: str, region: str = region) -> Any:
                return self._translating(region, what)

            deleted += prune_groups(self.client(region), workspace, lineage, keep,
                                    translating)
        return deleted

    def list(self) -> list[Node]:
        """Owned-looking instances (tag key navarch-workspace) in every region, or an error:
        a partial listing would make missing nodes look deleted."""
        listing = self.listing()
        if listing.unreachable:
            raise TransientError(f"listing instances failed in {', '.join(listing.unreachable)}",
                                 provider=self.name, code="PartialListing")
        return list(listing.nodes)

    def listing(self) -> Listing:
        """Every region's instances; a region whose listing failed is named unreachable
        (its nodes are then unknown, not deleted). If every region failed, the error."""
        filters = [{"Name": "tag-key", "Values": [LABEL_WORKSPACE]},
                   {"Name": "instance-state-name", "Values": list(LISTED_STATES)}]
        return across_regions(self.regions, lambda region: self._describe(region, filters))

    def _describe(self, region: str, filters: builtins.list[dict[str, Any]]) -> builtins.list[Node]:
        with self._translating(region, "listing instances"):
            instances = described_instances(self.client(region), filters, self.page_size)
        nodes = [node_from_instance(self.name, i, region) for i in instances]
        self._region_of.update((n.id, region) for n in nodes)
        return nodes

    def get(self, node_id: str) -> Node | None:
        """The node wherever it is (terminated ones too, while EC2 still shows them)."""
        def describe(client: Any) -> builtins.list[dict[str, Any]] | None:
            reply = client.describe_instances(InstanceIds=[node_id])
            return [i for r in reply["Reservations"] for i in r["Instances"]] or None

        found = self._where_known(node_id, "describing", describe)
        return node_from_instance(self.name, found[1][0], found[0]) if found else None

    def terminate(self, node_id: str) -> bool:
        """Idempotent. True when some region accepted it; False when no region knows the
        id, which right after a launch EC2 may say of an instance that keeps running."""
        def terminate(client: Any) -> bool:
            client.terminate_instances(InstanceIds=[node_id])
            return True

        return self._where_known(node_id, "terminating", terminate) is not None

    def _where_known(self, node_id: str, what: str,
                     call: Callable[[Any], _T | None]) -> tuple[str, _T] | None:
        """`call(client)` region by region, the one last seen holding the id first,
        until one returns something; a region that does not know the id (or answers
        None) passes it on. The region that answered, and its answer, or None."""
        known = self._region_of.get(node_id)
        for region in ([known] if known else []) + [r for r in self.regions if r != known]:
            try:
                with self._translating(region, f"{what} {node_id}"):
                    answer = call(self.client(region))
            except ProviderError as exc:
                if exc.code in _ABSENT:
                    continue
                raise
            if answer is not None:
                self._region_of[node_id] = region
                return region, answer
        return None

    def set_labels(self, node_id: str, labels: Mapping[str, str]) -> None:
        """Tags become exactly `labels` (plus the Name tag, and AWS's own `aws:*` tags,
        which are left alone): CreateTags for the new values, DeleteTags for the rest."""
        node = self.get(node_id)
        if node is None:
            raise NotFoundError(f"no instance {node_id}", provider=self.name,
                                code="InvalidInstanceID.NotFound")
        client = self.client(node.region)
        stale = [{"Key": k} for k in node.labels if k not in labels]
        with self._translating(node.region, f"tagging {node_id}"):
            if labels:
                client.create_tags(Resources=[node_id], Tags=[
                    {"Key": k, "Value": v} for k, v in labels.items() if k != "Name"])
            if stale:
                client.delete_tags(Resources=[node_id], Tags=stale)

    # -- InstanceTypeLister --------------------------------------------------------------

    def consistency(self) -> Consistency:
        return AWS.consistency

    def rate_limit(self) -> RateLimit:
        return AWS.rate_limit

    def list_instance_types(self) -> builtins.list[InstanceType]:
        """The built-in GPU table (approximate us-east-1 on-demand prices, see aws/catalog.py)
        with EC2's live spot price per zone; EC2 has no cheap "is there capacity" call, so
        every offer says available."""
        spot = (regional_spot_prices(self.regions, GPU_TYPES, self.client,
                                     self._translating, self.clock.time())
                if self.spot_prices else {})
        return offers(self.regions, purchase_words(AWS.purchase_models), spot)

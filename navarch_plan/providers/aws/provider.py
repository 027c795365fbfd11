"""AWS EC2 provider: boto3 calls, typed errors, and a launch that never happens twice.

This module imports boto3 at the top; the package imports it only when a config uses aws.

Launch safety. RunInstances is not idempotent by itself and botocore does not fill in a
ClientToken for it, so (1) every launch carries a deterministic ClientToken, (2) the launch
client makes exactly one attempt (botocore would otherwise retry the HTTP 500 that EC2 uses
for InsufficientInstanceCapacity), and (3) when a launch ends in a timeout, a dropped
connection or a 5xx, the instance is looked up by its Name tag before anyone concludes that
it does not exist.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config

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
    NodeStatus,
    ProvisionRequest,
    RateLimit,
)
from navarch_plan.providers.aws.catalog import EC2_STATUS, GPU_TYPES, SPOT_MARKET, cloud_word
from navarch_plan.providers.aws.faults import translating
from navarch_plan.providers.aws.images import RegionImages
from navarch_plan.providers.aws.kind import AWS
from navarch_plan.providers.aws.launch import (
    DEFAULT_IMAGE,
    LAUNCH_OPTIONS,
    block_device_mappings,
    capacity_reservation,
    client_token,
    instance_profile,
    value_for,
)
from navarch_plan.providers.aws.placement_groups import ensure_group, placement, prune_groups
from navarch_plan.providers.aws.spot_prices import regional_spot_prices

__all__ = ["AwsProvider", "client_token"]

# One attempt only: a botocore retry of RunInstances after an ambiguous failure is a blind
# relaunch. Every other call is read-only or idempotent, so standard retries are safe.
_LAUNCH_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 1},
                        user_agent_extra="navarch-plan")
_CALL_CONFIG = Config(retries={"mode": "standard"}, user_agent_extra="navarch-plan")

# Terminated instances stay visible for about an hour; listing them would only add noise.
_LISTED_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")
# Codes meaning "no instance with that id here"; Malformed: no instance can have that id.
_ABSENT = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})

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
        # boto3 sessions are not thread-safe, their clients are: clients are made under a lock.
        self._session = session if session is not None else boto3.session.Session()
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self.images = RegionImages(name, self.client, self.ssm_client)
        # instance id -> region (ids do not say); list() threads write distinct keys, which
        # the GIL makes safe without the lock.
        self._region_of: dict[str, str] = {}

    @property
    def image_id(self) -> Any:
        return self.launch_defaults["image_id"]

    @property
    def security_group_ids(self) -> Any:
        return self.launch_defaults["security_group_ids"]

    # -- clients -------------------------------------------------------------------------

    def client(self, region: str) -> Any:
        """The EC2 client for every call but RunInstances (standard retries)."""
        return self._client(region, "ec2")

    def launch_client(self, region: str) -> Any:
        """The EC2 client RunInstances goes through: one attempt, no botocore retry.
        Public so that callers and tests can hook its event system."""
        return self._client(region, "launch")

    def ssm_client(self, region: str) -> Any:
        """The SSM client `resolve:ssm:` image references are read through."""
        return self._client(region, "ssm")

    def _client(self, region: str, kind: str) -> Any:
        with self._lock:
            key = (region, kind)
            if key not in self._clients:
                self._clients[key] = self._session.client(
                    "ssm" if kind == "ssm" else "ec2", region_name=region,
                    endpoint_url=self.endpoint_url,
                    config=_LAUNCH_CONFIG if kind == "launch" else _CALL_CONFIG)
            return self._clients[key]

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
        params = self._launch_params(req, region)
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
        node = self._node(instance, region)
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

    def _launch_params(self, req: ProvisionRequest, region: str) -> dict[str, Any]:
        settings = self.launch_settings(req)
        tags = [{"Key": k, "Value": v} for k, v in req.labels.items() if k != "Name"]
        tags.append({"Key": "Name", "Value": req.name})
        image = self._image_for(settings["image_id"], region)
        params: dict[str, Any] = {
            "ImageId": image, "InstanceType": req.instance_type,
            "MinCount": 1, "MaxCount": 1, "ClientToken": client_token(req, region),
            "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}],
        }
        if req.placement_group:
            params["Placement"] = placement(req.placement_group, req.zone)
        elif req.zone:
            params["Placement"] = {"AvailabilityZone": req.zone}
        if key := (req.ssh_key_names[0] if req.ssh_key_names else self.key_name):
            params["KeyName"] = key
        if req.user_data:
            params["UserData"] = req.user_data  # botocore base64-encodes it
        if subnet := value_for(settings["subnet_id"], region, req.zone):
            params["SubnetId"] = subnet
        if groups := value_for(settings["security_group_ids"], region):
            params["SecurityGroupIds"] = list(groups)
        if settings["root_volume_gb"] is not None or settings["root_volume_type"]:
            params["BlockDeviceMappings"] = block_device_mappings(
                self.images.root_device(image, region), settings["root_volume_gb"],
                settings["root_volume_type"])
        if settings["iam_instance_profile"]:
            params["IamInstanceProfile"] = instance_profile(settings["iam_instance_profile"])
        if req.purchase == "spot":
            params["InstanceMarketOptions"] = SPOT_MARKET
        if req.reservation:
            params["CapacityReservationSpecification"] = capacity_reservation(req.reservation)
        return params

    def _image_for(self, image_id: str | Mapping[str, str], region: str) -> str:
        image = value_for(image_id, region)
        if not image:
            raise InvalidRequestError(f"no image_id configured for region {region}",
                                      provider=self.name, region=region, code="NoImageForRegion")
        return self.images.ami(image, region)

    def _recover_launch(self, req: ProvisionRequest, region: str,
                        failure: TransientError) -> Node:
        """The launch may have happened although its answer was lost: look, never relaunch."""
        for attempt in range(max(1, self.launch_lookup_attempts)):
            if attempt:
                self.clock.sleep(self.launch_lookup_delay)
            try:
                found = self._describe(region, [{"Name": "tag:Name", "Values": [req.name]},
                                                {"Name": "instance-state-name",
                                                 "Values": list(_LISTED_STATES)}])
            except ProviderError:
                continue  # the lookup failing proves nothing either way
            if found:
                return found[0]
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
                   {"Name": "instance-state-name", "Values": list(_LISTED_STATES)}]

        def one(region: str) -> list[Node] | ProviderError:
            try:
                return self._describe(region, filters)
            except ProviderError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=min(8, len(self.regions))) as pool:
            per_region = dict(zip(self.regions, pool.map(one, self.regions), strict=True))
        failed = {r: e for r, e in per_region.items() if isinstance(e, ProviderError)}
        if len(failed) == len(self.regions):
            raise next(iter(failed.values()))
        return Listing(tuple(n for nodes in per_region.values() if isinstance(nodes, list)
                             for n in nodes), tuple(failed))

    def _describe(self, region: str, filters: builtins.list[dict[str, Any]]) -> builtins.list[Node]:
        with self._translating(region, "listing instances"):
            pages = self.client(region).get_paginator("describe_instances").paginate(
                Filters=filters, PaginationConfig={"PageSize": self.page_size})
            instances = [i for page in pages for r in page["Reservations"]
                         for i in r["Instances"]]
        nodes = [self._node(i, region) for i in instances]
        self._region_of.update((n.id, region) for n in nodes)
        return nodes

    def get(self, node_id: str) -> Node | None:
        """The node wherever it is (terminated ones too, while EC2 still shows them)."""
        for region in self._search_order(node_id):
            try:
                with self._translating(region, f"describing {node_id}"):
                    reply = self.client(region).describe_instances(InstanceIds=[node_id])
            except ProviderError as exc:
                if exc.code in _ABSENT:
                    continue
                raise
            instances = [i for r in reply["Reservations"] for i in r["Instances"]]
            if instances:
                self._region_of[node_id] = region
                return self._node(instances[0], region)
        return None

    def terminate(self, node_id: str) -> bool:
        """Idempotent. True when some region accepted it; False when no region knows the
        id, which right after a launch EC2 may say of an instance that keeps running."""
        for region in self._search_order(node_id):
            try:
                with self._translating(region, f"terminating {node_id}"):
                    self.client(region).terminate_instances(InstanceIds=[node_id])
            except ProviderError as exc:
                if exc.code in _ABSENT:
                    continue
                raise
            self._region_of[node_id] = region
            return True
        return False

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

    def _search_order(self, node_id: str) -> builtins.list[str]:
        known = self._region_of.get(node_id)
        return ([known] if known else []) + [r for r in self.regions if r != known]

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
        return [InstanceType(name=name, gpu_count=s.gpu_count, gpu_type=s.gpu_type,
                             memory_gb=s.memory_gb, vcpus=s.vcpus, price_per_hr=s.price_per_hr,
                             regions=self.regions, purchase=purchase_words(AWS.purchase_models),
                             spot_prices=spot.get(name, {}))
                for name, s in GPU_TYPES.items()]

    def _node(self, instance: Mapping[str, Any], region: str) -> Node:
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags") or ()}
        shape = GPU_TYPES.get(instance["InstanceType"])
        return Node(
            id=instance["InstanceId"], provider=self.name, region=region,
            instance_type=instance["InstanceType"],
            status=EC2_STATUS.get(instance["State"]["Name"], NodeStatus.UNKNOWN),
            cloud_status=cloud_word(instance),
            zone=instance.get("Placement", {}).get("AvailabilityZone", ""),
            name=tags.get("Name", ""),
            ip_address=instance.get("PublicIpAddress") or instance.get("PrivateIpAddress") or "",
            gpu_count=shape.gpu_count if shape else 0,
            gpu_type=shape.gpu_type if shape else "",
            labels={k: v for k, v in tags.items() if k != "Name" and not k.startswith("aws:")},
        )

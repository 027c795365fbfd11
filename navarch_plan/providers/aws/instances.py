"""Reading EC2 instances: DescribeInstances page by page, one region's reply as Nodes,
and every region's listings gathered in parallel into one Listing that names the
regions it could not read. Apart from provider.py because it is the read side only
(no launch, no terminate); the provider keeps which region each id lives in."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from navarch_plan.clock import Clock
from navarch_plan.errors import ProviderError
from navarch_plan.model import Listing, Node, NodeStatus
from navarch_plan.providers.aws.catalog import EC2_STATUS, GPU_TYPES, cloud_word

__all__ = ["LISTED_STATES", "across_regions", "described_instances", "look_for_named",
           "node_from_instance"]

# Terminated instances stay visible for about an hour; listing them would only add noise.
LISTED_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")


def described_instances(client: Any, filters: list[dict[str, Any]],
                        page_size: int) -> list[dict[str, Any]]:
    """Every instance DescribeInstances returns for `filters`, across all pages (the
    calls happen here: the caller wraps this in its error translation)."""
    pages = client.get_paginator("describe_instances").paginate(
        Filters=filters, PaginationConfig={"PageSize": page_size})
    return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]


def across_regions(regions: Sequence[str],
                   describe: Callable[[str], list[Node]]) -> Listing:
    """`describe` run for every region at once; a region whose call failed is named
    unreachable (its nodes are then unknown, not deleted). If every region failed,
    the first error."""
    def one(region: str) -> list[Node] | ProviderError:
        try:
            return describe(region)
        except ProviderError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=min(8, len(regions))) as pool:
        per_region = dict(zip(regions, pool.map(one, regions), strict=True))
    failed = {r: e for r, e in per_region.items() if isinstance(e, ProviderError)}
    if len(failed) == len(regions):
        raise next(iter(failed.values()))
    return Listing(tuple(n for nodes in per_region.values() if isinstance(nodes, list)
                         for n in nodes), tuple(failed))


def look_for_named(describe: Callable[[list[dict[str, Any]]], list[Node]], name: str,
                   attempts: int, delay: float, clock: Clock) -> Node | None:
    """A live instance with this Name tag, looked for `attempts` times `delay` apart
    (EC2's describe is eventually consistent right after a launch), or None."""
    for attempt in range(max(1, attempts)):
        if attempt:
            clock.sleep(delay)
        try:
            found = describe([{"Name": "tag:Name", "Values": [name]},
                              {"Name": "instance-state-name", "Values": list(LISTED_STATES)}])
        except ProviderError:
            continue  # the lookup failing proves nothing either way
        if found:
            return found[0]
    return None


def node_from_instance(provider: str, instance: Mapping[str, Any], region: str) -> Node:
    """The Name tag is the node's name, not a label; AWS's own `aws:*` tags are neither."""
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags") or ()}
    shape = GPU_TYPES.get(instance["InstanceType"])
    return Node(
        id=instance["InstanceId"], provider=provider, region=region,
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

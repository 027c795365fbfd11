"""Cluster placement on Compute Engine: the real google-cloud-compute client against the
local GCE server (tests/fakes/gce_server.py, policies in gce_policies.py). A launch for a
cluster pool makes the pool's compact placement policy once (get, then insert with
`groupPlacementPolicy.collocation: COLLOCATED`) and names it in the instance's
`resourcePolicies`; pruning deletes the unwanted ones no instance uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.auth.credentials import AnonymousCredentials

from navarch_plan.errors import ProviderError
from navarch_plan.model import ProvisionRequest
from navarch_plan.providers.base import PlacementGroupOwner
from navarch_plan.providers.gcp import GcpProvider
from tests.fakes.gce_server import FakeGce, serve

ZONE, REGION = "us-central1-a", "us-central1"
POLICY = "navarch-research-train-us-central1"
LABELS = {"navarch-workspace": "research", "navarch-lineage": "lin-1",
          "navarch-address": "p_train_0"}


@pytest.fixture
def gce(offline: None) -> Iterator[tuple[GcpProvider, FakeGce]]:
    fake = FakeGce(project="p")
    with serve(fake) as url:
        yield GcpProvider("gcp", "p", endpoint=url, credentials=AnonymousCredentials(),
                          poll_interval=0), fake


def _request(name: str, policy: str = POLICY, labels: dict[str, str] = LABELS
             ) -> ProvisionRequest:
    return ProvisionRequest(name=name, instance_type="a2-highgpu-1g", region=REGION,
                            zone=ZONE, labels=labels, placement_group=policy)


def test_a_cluster_launch_makes_its_policy_once_and_names_it(
        gce: tuple[GcpProvider, FakeGce]) -> None:
    provider, fake = gce
    provider.provision(_request("research-train-0"))
    provider.provision(_request("research-train-1"))
    inserts = [r.body for r in fake.calls("POST") if r.path.endswith("/resourcePolicies")]
    assert inserts == [{
        "name": POLICY, "description": "navarch workspace=research lineage=lin-1 pool=train",
        "groupPlacementPolicy": {"collocation": "COLLOCATED"}}]
    bodies = [r.body for r in fake.calls("POST") if r.path.endswith("/instances")]
    assert [b["resourcePolicies"] for b in bodies] == \
        [[f"projects/p/regions/{REGION}/resourcePolicies/{POLICY}"]] * 2
    assert (REGION, POLICY) in fake.policies


def test_a_launch_without_a_group_names_no_policy(gce: tuple[GcpProvider, FakeGce]) -> None:
    provider, fake = gce
    provider.provision(_request("research-w-0", policy=""))
    [body] = [r.body for r in fake.calls("POST") if r.path.endswith("/instances")]
    assert "resourcePolicies" not in body
    assert not fake.policies


def test_pruning_keeps_wanted_used_and_foreign_policies(
        gce: tuple[GcpProvider, FakeGce]) -> None:
    provider, fake = gce
    assert isinstance(provider, PlacementGroupOwner)
    node = provider.provision(_request("research-train-0"))
    old = provider.provision(_request("research-old-0", "navarch-research-old-us-central1"))
    provider.provision(_request("other-0", "navarch-research-x-us-central1",
                                {**LABELS, "navarch-lineage": "lin-2"}))
    provider.terminate(old.id)
    assert provider.prune_placement_groups("research", "lin-1", {POLICY}) == \
        ["navarch-research-old-us-central1"]
    assert provider.prune_placement_groups("research", "lin-1", set()) == []  # in use
    provider.terminate(node.id)
    assert provider.prune_placement_groups("research", "lin-1", set()) == [POLICY]
    assert sorted(name for _, name in fake.policies) == ["navarch-research-x-us-central1"]


def test_a_policy_is_named_only_once_its_insert_is_done(
        gce: tuple[GcpProvider, FakeGce]) -> None:
    """GCE's operation wait is best effort and may return while the insert still runs:
    the launch waits (poll interval, deadline) until the policy is READY, as an instance
    insert does, however many waits that takes; naming it earlier is refused."""
    provider, fake = gce
    fake.polls_until_done = 40
    provider.provision(_request("research-train-0"))
    assert fake.policies[(REGION, POLICY)]["status"] == "READY"
    bodies = [r.body for r in fake.calls("POST") if r.path.endswith("/instances")]
    assert len(bodies) == 1


def test_a_delete_refused_for_another_reason_than_in_use_is_an_error(
        gce: tuple[GcpProvider, FakeGce]) -> None:
    """Only "still in use" leaves a policy for the next prune; any other 400 is said."""
    provider, fake = gce
    node = provider.provision(_request("research-train-0"))
    provider.terminate(node.id)
    fake.fail_next(400, "Invalid value for field 'resourcePolicy'", "invalid",
                   method="DELETE", path_contains="resourcePolicies")
    with pytest.raises(ProviderError, match="Invalid value"):
        provider.prune_placement_groups("research", "lin-1", set())
    assert (REGION, POLICY) in fake.policies

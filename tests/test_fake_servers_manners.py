"""The real-cloud manners of the Lambda and Compute Engine fakes, each proven on the wire:
raw HTTP (httpx) for Lambda, the real google-cloud-compute client for GCE."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from tests.fakes import gce_server, lambda_server
from tests.fakes.gce_server import FakeGce
from tests.fakes.lambda_server import LAUNCH, TERMINATE, DroppedReply, FakeLambda

KEY = "sk-manners"
LAG = 0.3  # seconds a fresh instance stays unlisted in the lag tests
PROJECT = "manners-project"
# Clients made here fail fast instead of reaching the internet (127.0.0.1 stays direct).
pytestmark = pytest.mark.usefixtures("offline")

LAUNCH_BODY = {"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10",
               "ssh_key_names": ["ops-team"], "name": "fresh"}

# ---------------------------------------------------------------------------- Lambda


def lambda_client(fake: FakeLambda) -> httpx.Client:
    """In-process, no socket."""
    return httpx.Client(transport=httpx.WSGITransport(app=fake),
                        base_url="http://lambda.test/api/v1",
                        headers={"Authorization": f"Bearer {KEY}"})


def launch(http: httpx.Client) -> str:
    reply = http.post(LAUNCH, json=LAUNCH_BODY)
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]["instance_ids"][0]


def listed(http: httpx.Client) -> list[str]:
    reply = http.get("/instances")
    assert reply.status_code == 200
    return [i["id"] for i in reply.json()["data"]]


def test_lambda_hide_new_for_hides_a_fresh_launch_from_list_get_and_terminate() -> None:
    fake = FakeLambda(KEY)
    old = fake.seed_instance(name="old")
    fake.hide_new_for = LAG
    with lambda_client(fake) as http:
        new = launch(http)
        assert listed(http) == [old]
        got = http.get(f"/instances/{new}")
        assert got.status_code == 404
        assert got.json()["error"]["code"] == "global/object-does-not-exist"
        gone = http.post(TERMINATE, json={"instance_ids": [new]})
        assert (gone.status_code, gone.json()["error"]["code"]) == (
            404, "global/object-does-not-exist")
        assert fake.instance_ids() == {old: "active", new: "booting"}  # nothing ended
        time.sleep(LAG)
        assert listed(http) == [old, new]
        assert http.get(f"/instances/{new}").status_code == 200
        assert http.post(TERMINATE, json={"instance_ids": [new]}).status_code == 200
    assert fake.instance_ids()[new] == "terminated"


def test_lambda_hides_nothing_by_default() -> None:
    fake = FakeLambda(KEY)
    with lambda_client(fake) as http:
        new = launch(http)
        assert listed(http) == [new]


def test_lambda_short_listings_answer_200_with_the_first_keep_instances() -> None:
    fake = FakeLambda(KEY)
    ids = [fake.seed_instance(name=f"n{i}") for i in range(3)]
    with lambda_client(fake) as http:
        fake.short_listings(1)
        assert listed(http) == []
        fake.short_listings(2, keep=1)
        assert listed(http) == ids[:1]
        assert listed(http) == ids[:1]
        assert listed(http) == ids
        assert http.get(f"/instances/{ids[2]}").status_code == 200  # get is not affected


def test_lambda_short_listing_does_not_use_up_a_terminated_instances_last_showing() -> None:
    fake = FakeLambda(KEY)
    dead = fake.seed_instance(status="terminated")
    with lambda_client(fake) as http:
        fake.short_listings(1)
        assert listed(http) == []
        assert listed(http) == [dead]  # shown once more, as without the short listing
        assert listed(http) == []


def test_lambda_drop_after_creating_closes_the_connection_without_a_reply() -> None:
    fake = FakeLambda(KEY)
    fake.drop_after_creating()
    with lambda_server.serve(fake) as url, httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=5) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(LAUNCH, json=LAUNCH_BODY)
        assert list(fake.instance_ids().values()) == ["booting"]  # the launch happened
        assert len(listed(http)) == 1


def test_lambda_drop_without_passthrough_loses_the_request() -> None:
    fake = FakeLambda(KEY)
    fake.inject(method="POST", path=LAUNCH, drop=True)
    with lambda_server.serve(fake) as url, httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=5) as http:
        with pytest.raises(httpx.TransportError):
            http.post(LAUNCH, json=LAUNCH_BODY)
        assert fake.instance_ids() == {}
        assert len(fake.requests("POST", LAUNCH)) == 1  # it did arrive


def test_lambda_drop_in_process_raises_dropped_reply() -> None:
    fake = FakeLambda(KEY)
    fake.drop_after_creating()
    with lambda_client(fake) as http, pytest.raises(DroppedReply):
        http.post(LAUNCH, json=LAUNCH_BODY)
    assert len(fake.instance_ids()) == 1


def test_lambda_timeout_after_creating_is_a_read_timeout_with_the_instance_made() -> None:
    fake = FakeLambda(KEY)
    fake.timeout_after_creating(delay=2.0)  # cut short when serve() exits
    with lambda_server.serve(fake) as url, httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=0.2) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.post(LAUNCH, json=LAUNCH_BODY)
        assert len(fake.instance_ids()) == 1


@pytest.mark.parametrize("status", ["restarting", "hibernating", "unhealthy", "active",
                                    "preempted", "terminating"])
def test_lambda_set_status_keeps_any_raw_status(status: str) -> None:
    fake = FakeLambda(KEY, boot_polls=0, terminate_polls=0)
    with lambda_client(fake) as http:
        new = launch(http)
        fake.set_status(new, status)
        for _ in range(3):
            assert [i["status"] for i in http.get("/instances").json()["data"]] == [status]
            assert http.get(f"/instances/{new}").json()["data"]["status"] == status
    assert fake.instance_ids() == {new: status}


def test_lambda_set_status_booting_moves_on_and_terminate_unpins() -> None:
    fake = FakeLambda(KEY, boot_polls=1)
    with lambda_client(fake) as http:
        new = launch(http)
        fake.set_status(new, "unhealthy")
        data = http.get(f"/instances/{new}").json()["data"]
        assert data["status"] == "unhealthy" and data["ip"]  # past booting: has an ip
        fake.set_status(new, "booting")
        assert [http.get(f"/instances/{new}").json()["data"]["status"]
                for _ in range(3)] == ["booting", "active", "active"]
        fake.set_status(new, "active")
        assert http.post(TERMINATE, json={"instance_ids": [new]}).status_code == 200
        assert http.get(f"/instances/{new}").json()["data"]["status"] == "terminated"


def test_lambda_instance_ids_observes_nothing() -> None:
    fake = FakeLambda(KEY, boot_polls=0)
    with lambda_client(fake) as http:
        new = launch(http)
        assert fake.instance_ids() == {new: "booting"}
        assert fake.instance_ids() == {new: "booting"}  # looking did not boot it
        http.get("/instances")
        assert fake.instance_ids() == {new: "active"}


# ------------------------------------------------------------------------------- GCE


@pytest.fixture
def gce() -> FakeGce:
    return FakeGce(project=PROJECT)


@pytest.fixture
def endpoint(gce: FakeGce) -> Iterator[str]:
    with gce_server.serve(gce) as url:
        yield url


@pytest.fixture
def client(endpoint: str) -> compute_v1.InstancesClient:
    return compute_v1.InstancesClient(credentials=AnonymousCredentials(),
                                      client_options=ClientOptions(api_endpoint=endpoint))


@pytest.fixture
def ops(endpoint: str) -> compute_v1.ZoneOperationsClient:
    return compute_v1.ZoneOperationsClient(credentials=AnonymousCredentials(),
                                           client_options=ClientOptions(api_endpoint=endpoint))


def pages(client: compute_v1.InstancesClient) -> list[compute_v1.InstanceAggregatedList]:
    req = compute_v1.AggregatedListInstancesRequest(project=PROJECT,
                                                    filter="labels.navarch-workspace:*")
    return list(client.aggregated_list(request=req).pages)


def names(client: compute_v1.InstancesClient) -> set[str]:
    return {i.name for page in pages(client) for scoped in page.items.values()
            for i in scoped.instances}


def insert(client: compute_v1.InstancesClient, zone: str, name: str) -> compute_v1.Operation:
    body = compute_v1.Instance(name=name, machine_type=f"zones/{zone}/machineTypes/n1-standard-1",
                               labels={"navarch-workspace": "w"})
    return client.insert_unary(project=PROJECT, zone=zone, instance_resource=body)


def seed(gce: FakeGce, zone: str, name: str) -> None:
    gce.add_instance(zone, name, labels={"navarch-workspace": "w"})


def test_gce_unreachable_zones_make_a_partial_aggregated_list(
        gce: FakeGce, client: compute_v1.InstancesClient) -> None:
    gce.page_size = 1
    for zone, name in [("us-central1-a", "a-0"), ("us-central1-a", "a-1"),
                       ("us-central1-b", "b-0"), ("us-east4-a", "e-0")]:
        seed(gce, zone, name)
    gce.unreachable_zones = {"us-central1-b", "us-east4-a"}
    got = pages(client)
    assert len(got) == 2  # a-0, a-1: one a page
    for page in got:
        assert list(page.unreachables) == ["zones/us-central1-b", "zones/us-east4-a"]
        for scope in page.unreachables:
            scoped = page.items[scope]
            assert scoped.warning.code == "UNREACHABLE" and not scoped.instances
            assert [(d.key, d.value) for d in scoped.warning.data] == [("scope", scope)]
        assert page.items["zones/us-central1-c"].warning.code == "NO_RESULTS_ON_PAGE"
    assert names(client) == {"a-0", "a-1"}
    # A zonal get there keeps working by default: GCE's get is its own call.
    got_b = client.get(project=PROJECT, zone="us-central1-b", instance="b-0")
    assert got_b.name == "b-0"
    gce.unreachable_zones = set()
    assert names(client) == {"a-0", "a-1", "b-0", "e-0"}
    assert not pages(client)[0].unreachables


def test_gce_unreachable_zone_gets_fail_with_503(
        gce: FakeGce, client: compute_v1.InstancesClient) -> None:
    seed(gce, "us-central1-b", "b-0")
    seed(gce, "us-central1-a", "a-0")
    gce.unreachable_zones = {"us-central1-b"}
    gce.unreachable_zone_gets = True
    with pytest.raises(gexc.ServiceUnavailable):  # the library retries a 503 for 10 min
        client.get(project=PROJECT, zone="us-central1-b", instance="b-0", retry=None)
    assert client.get(project=PROJECT, zone="us-central1-a", instance="a-0").name == "a-0"


def test_gce_hide_new_for_lags_the_list_not_the_get(
        gce: FakeGce, client: compute_v1.InstancesClient) -> None:
    seed(gce, "us-central1-a", "old")
    gce.hide_new_for = LAG
    insert(client, "us-central1-a", "fresh")
    assert names(client) == {"old"}
    assert client.get(project=PROJECT, zone="us-central1-a", instance="fresh").name == "fresh"
    time.sleep(LAG)
    assert names(client) == {"old", "fresh"}


@pytest.mark.parametrize("status", ["RUNNING", "SUSPENDED", "REPAIRING", "TERMINATED",
                                    "STOPPING", "SUSPENDING", "STAGING", "PROVISIONING",
                                    "HIBERNATING"])
def test_gce_set_status_any_raw_status_reaches_the_client(
        gce: FakeGce, client: compute_v1.InstancesClient, status: str) -> None:
    seed(gce, "us-central1-a", "vm")
    gce.set_status("us-central1-a", "vm", status)
    assert client.get(project=PROJECT, zone="us-central1-a", instance="vm").status == status
    listed_statuses = [i.status for page in pages(client) for s in page.items.values()
                       for i in s.instances]
    assert listed_statuses == [status]


@pytest.mark.parametrize(("status", "after"), [("SUSPENDED", "SUSPENDED"),
                                               ("HIBERNATING", "HIBERNATING"),
                                               ("PROVISIONING", "RUNNING")])
def test_gce_set_status_wins_over_the_insert_finishing(
        gce: FakeGce, client: compute_v1.InstancesClient,
        ops: compute_v1.ZoneOperationsClient, status: str, after: str) -> None:
    op = insert(client, "us-central1-a", "vm")
    gce.set_status("us-central1-a", "vm", status)
    done = ops.get(project=PROJECT, zone="us-central1-a", operation=op.name)
    assert done.status == compute_v1.Operation.Status.DONE
    assert client.get(project=PROJECT, zone="us-central1-a", instance="vm").status == after


def test_gce_insert_without_set_status_still_turns_running(
        client: compute_v1.InstancesClient, ops: compute_v1.ZoneOperationsClient) -> None:
    op = insert(client, "us-central1-a", "vm")
    ops.get(project=PROJECT, zone="us-central1-a", operation=op.name)
    assert client.get(project=PROJECT, zone="us-central1-a", instance="vm").status == "RUNNING"


def test_gce_delete_still_removes_a_pinned_instance(
        gce: FakeGce, client: compute_v1.InstancesClient,
        ops: compute_v1.ZoneOperationsClient) -> None:
    seed(gce, "us-central1-a", "vm")
    gce.set_status("us-central1-a", "vm", "REPAIRING")
    op = client.delete_unary(project=PROJECT, zone="us-central1-a", instance="vm")
    assert client.get(project=PROJECT, zone="us-central1-a", instance="vm").status == "STOPPING"
    ops.get(project=PROJECT, zone="us-central1-a", operation=op.name)
    with pytest.raises(gexc.NotFound):
        client.get(project=PROJECT, zone="us-central1-a", instance="vm")


def test_gce_set_status_of_an_unknown_instance_is_a_key_error(gce: FakeGce) -> None:
    with pytest.raises(KeyError):
        gce.set_status("us-central1-a", "nope", "RUNNING")

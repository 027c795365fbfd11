"""GcpProvider with the real google-cloud-compute REST client against a fake on 127.0.0.1.

Nothing reaches the internet: the client uses AnonymousCredentials (no token fetch), and
an autouse fixture points HTTPS proxies at a closed local port, so any request that
escaped to compute.googleapis.com (e.g. the library's own operation poller) fails fast
instead of passing or hanging.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from navarch_plan.config import parse_config
from navarch_plan.errors import (
    AuthError,
    CapacityError,
    ConfigError,
    InvalidRequestError,
    NotFoundError,
    QuotaError,
    RateLimitError,
    TransientError,
)
from navarch_plan.model import NodeStatus, ProvisionRequest
from navarch_plan.providers.base import BuildContext, InstanceTypeLister, NodeGetter, Provider
from navarch_plan.providers.gcp import DEFAULT_IMAGE, GcpProvider
from navarch_plan.providers.gcp.kind import GCP
from navarch_plan.providers.gcp.launch import run_once_script
from tests.fakes.gce_server import FakeGce, serve

PROJECT = "test-project"
OPS_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOps ops@team"  # the provider passes it as is
WS = {"navarch-workspace": "research"}


pytestmark = pytest.mark.usefixtures("offline")


@pytest.fixture
def fake() -> FakeGce:
    return FakeGce(project=PROJECT)


@pytest.fixture
def endpoint(fake: FakeGce) -> Iterator[str]:
    with serve(fake) as url:
        yield url


@pytest.fixture
def gcp(endpoint: str) -> GcpProvider:
    return GcpProvider("gcp", PROJECT, endpoint=endpoint, credentials=AnonymousCredentials(),
                       poll_interval=0)


def request(name: str = "research-train-0-ab12", instance_type: str = "a3-highgpu-8g",
            zone: str = "us-central1-a", **kw: object) -> ProvisionRequest:
    kw.setdefault("labels", WS)
    return ProvisionRequest(name=name, instance_type=instance_type,
                            region=zone.rsplit("-", 1)[0], zone=zone, **kw)


def insert_bodies(fake: FakeGce) -> list[dict]:
    return [r.body for r in fake.calls("POST") if r.path.endswith("/instances")]


def metadata(body: dict) -> dict[str, str]:
    return {i["key"]: i["value"] for i in body["metadata"]["items"]}


# -- provisioning ---------------------------------------------------------------------

def test_provision_a3_round_trip(gcp: GcpProvider, fake: FakeGce) -> None:
    req = request(labels={**WS, "navarch-address": "p_train_0", "team": "ml"},
                  user_data="#!/bin/bash\necho hi\n", ssh_key_names=("ops-team", "alice"),
                  ssh_public_keys={"ops-team": OPS_KEY, "alice": OPS_KEY + "-2"})
    node = gcp.provision(req)

    assert node.id == "us-central1-a/research-train-0-ab12"
    assert (node.provider, node.region, node.zone) == ("gcp", "us-central1", "us-central1-a")
    assert node.name == "research-train-0-ab12"
    assert node.instance_type == "a3-highgpu-8g"
    assert (node.gpu_count, node.gpu_type) == (8, "H100")
    assert node.status is NodeStatus.RUNNING
    assert node.ip_address.startswith("34.")  # the access config's natIP, not networkIP
    assert dict(node.labels) == {**WS, "navarch-address": "p_train_0", "team": "ml"}

    (call,) = [r for r in fake.calls("POST") if r.path.endswith("/instances")]
    assert call.path == f"/compute/v1/projects/{PROJECT}/zones/us-central1-a/instances"
    body = call.body
    assert body["machineType"] == "zones/us-central1-a/machineTypes/a3-highgpu-8g"
    assert body["scheduling"] == {"onHostMaintenance": "TERMINATE", "automaticRestart": True}
    assert "guestAccelerators" not in body  # A3 has its GPUs built in
    assert body["labels"] == {**WS, "navarch-address": "p_train_0", "team": "ml"}
    meta = metadata(body)
    assert meta["user-data"] == "#!/bin/bash\necho hi\n"
    assert meta["startup-script"] == run_once_script("#!/bin/bash\necho hi\n")
    assert meta["ssh-keys"] == f"navarch:{OPS_KEY}\nnavarch:{OPS_KEY}-2"
    (disk,) = body["disks"]
    assert disk["boot"] and disk["autoDelete"]
    assert disk["initializeParams"]["sourceImage"] == DEFAULT_IMAGE
    assert disk["initializeParams"]["diskSizeGb"] == "200"
    assert body["networkInterfaces"][0]["accessConfigs"][0]["type"] == "ONE_TO_ONE_NAT"
    assert uuid.UUID(call.query["requestId"])


def test_provision_n1_with_accelerator(gcp: GcpProvider, fake: FakeGce) -> None:
    node = gcp.provision(request(instance_type="n1-standard-8+nvidia-tesla-t4:2",
                                 zone="us-central1-b"))
    (body,) = insert_bodies(fake)
    assert body["machineType"] == "zones/us-central1-b/machineTypes/n1-standard-8"
    assert body["guestAccelerators"] == [
        {"acceleratorType": "zones/us-central1-b/acceleratorTypes/nvidia-tesla-t4",
         "acceleratorCount": 2}]
    assert body["scheduling"]["onHostMaintenance"] == "TERMINATE"
    # The live instance maps back to the same type string, so plans compare equal.
    assert node.instance_type == "n1-standard-8+nvidia-tesla-t4:2"
    assert (node.gpu_count, node.gpu_type) == (2, "T4")


def test_request_id_is_deterministic_per_name_and_zone() -> None:
    seen = []
    for name, zone in [("n-a-1", "us-central1-a"), ("n-a-1", "us-central1-a"),
                       ("n-b-1", "us-central1-a"), ("n-a-1", "us-central1-b")]:
        fake = FakeGce(project=PROJECT)
        with serve(fake) as url:
            GcpProvider("gcp", PROJECT, endpoint=url, credentials=AnonymousCredentials(),
                        poll_interval=0).provision(request(name=name, zone=zone,
                                                           instance_type="g2-standard-4"))
        (call,) = [r for r in fake.calls("POST") if r.path.endswith("/instances")]
        seen.append(call.query["requestId"])
    assert seen[0] == seen[1]
    assert len({seen[0], seen[2], seen[3]}) == 3


def test_retried_insert_gets_the_same_operation(gcp: GcpProvider, fake: FakeGce) -> None:
    first = gcp.provision(request())
    second = gcp.provision(request())
    assert second.id == first.id
    assert len(fake.instances) == 1
    posts = [r for r in fake.calls("POST") if r.path.endswith("/instances")]
    assert len(posts) == 2 and posts[0].query == posts[1].query


def test_existing_name_409_returns_the_existing_instance(gcp: GcpProvider,
                                                         fake: FakeGce) -> None:
    fake.add_instance("us-central1-a", "research-train-0-ab12", machine_type="a3-highgpu-8g",
                      status="STAGING", labels=WS)
    node = gcp.provision(request())
    assert node.id == "us-central1-a/research-train-0-ab12"
    assert node.status is NodeStatus.PROVISIONING
    assert (node.gpu_count, node.gpu_type) == (8, "H100")
    assert len(fake.instances) == 1 and not fake.operations  # the insert was refused


def test_operation_is_polled_on_the_local_endpoint() -> None:
    fake = FakeGce(project=PROJECT, polls_until_done=3)
    with serve(fake) as url:
        gcp = GcpProvider("gcp", PROJECT, endpoint=url, credentials=AnonymousCredentials(),
                          poll_interval=0)
        node = gcp.provision(request())
    (op_name,) = fake.operations
    polls = fake.calls(contains=f"/zones/us-central1-a/operations/{op_name}")
    assert len(polls) == 3  # RUNNING, RUNNING, DONE
    assert node.status is NodeStatus.RUNNING  # fetched after the operation finished
    paths = [r.path for r in fake.requests]
    assert paths.index(polls[-1].path) < len(paths) - 1  # the GET came after DONE


def test_operation_timeout_is_transient() -> None:
    fake = FakeGce(project=PROJECT, polls_until_done=10**9)
    with serve(fake) as url:
        gcp = GcpProvider("gcp", PROJECT, endpoint=url, credentials=AnonymousCredentials(),
                          operation_timeout=0.3, poll_interval=0.05)
        with pytest.raises(TransientError) as e:
            gcp.provision(request())
    assert e.value.code == "OPERATION_TIMEOUT"
    assert 2 <= len(fake.calls("POST", "/operations/")) <= 10  # polled, without spinning


def test_labels_are_sanitised_to_gcp_rules(gcp: GcpProvider, fake: FakeGce) -> None:
    gcp.provision(request(labels={**WS, "Team": "ML Ops", "1st": "X" * 80}))
    (body,) = insert_bodies(fake)
    assert body["labels"] == {**WS, "team": "ml_ops", "l1st": "x" * 63}


def test_zone_falls_back_to_configured_zone_of_the_region(endpoint: str,
                                                          fake: FakeGce) -> None:
    gcp = GcpProvider("gcp", PROJECT, zones=("us-central1-c", "us-east4-a"),
                      endpoint=endpoint, credentials=AnonymousCredentials(), poll_interval=0)
    node = gcp.provision(ProvisionRequest(name="x-1", instance_type="g2-standard-4",
                                          region="us-east4", labels=WS))
    assert node.zone == "us-east4-a" and (node.gpu_count, node.gpu_type) == (1, "L4")


@pytest.mark.parametrize("req", [
    ProvisionRequest(name="x-1", instance_type="a3-highgpu-8g", region="us-central1"),
    ProvisionRequest(name="x-1", instance_type="a3-highgpu-8g", region="us-central1",
                     zone="us-east4-a"),
    request(instance_type="a3-highgpu-8g+nvidia-h100-80gb:8"),
    request(instance_type="n1-standard-8+nvidia-tesla-t4:0"),
    request(instance_type="N1 standard"),
], ids=["no-zone", "zone-outside-region", "accel-on-a3", "zero-gpus", "bad-syntax"])
def test_invalid_requests_are_refused_before_any_call(gcp: GcpProvider, fake: FakeGce,
                                                      req: ProvisionRequest) -> None:
    with pytest.raises(InvalidRequestError) as e:
        gcp.provision(req)
    assert e.value.provider == "gcp"
    assert fake.requests == []


# -- reading --------------------------------------------------------------------------

@pytest.mark.parametrize(("gce", "expected"), [
    ("PROVISIONING", NodeStatus.PROVISIONING), ("STAGING", NodeStatus.PROVISIONING),
    ("PENDING", NodeStatus.PROVISIONING), ("RUNNING", NodeStatus.RUNNING),
    ("REPAIRING", NodeStatus.PROVISIONING), ("STOPPING", NodeStatus.STOPPED),
    ("SUSPENDING", NodeStatus.STOPPED), ("PENDING_STOP", NodeStatus.STOPPED),
    ("DEPROVISIONING", NodeStatus.STOPPED), ("STOPPED", NodeStatus.STOPPED),
    ("SUSPENDED", NodeStatus.STOPPED), ("TERMINATED", NodeStatus.STOPPED),
    ("HIBERNATING", NodeStatus.UNKNOWN),
])
def test_status_mapping(gcp: GcpProvider, fake: FakeGce, gce: str,
                        expected: NodeStatus) -> None:
    fake.add_instance("us-central1-a", "vm-1", status=gce, labels=WS)
    node = gcp.get("us-central1-a/vm-1")
    assert node is not None and node.status is expected and node.cloud_status == gce


def test_list_uses_aggregated_list_across_zones_and_pages(gcp: GcpProvider,
                                                          fake: FakeGce) -> None:
    fake.page_size = 2
    for i in range(3):
        fake.add_instance("us-central1-a", f"a-{i}", machine_type="a2-ultragpu-8g", labels=WS)
    for i in range(2):
        fake.add_instance("europe-west4-a", f"e-{i}", machine_type="g2-standard-24",
                          labels={"navarch-workspace": "other"})
    fake.add_instance("us-central1-b", "not-ours")  # no navarch label: filtered server-side

    nodes = {n.id: n for n in gcp.list()}

    assert set(nodes) == {"us-central1-a/a-0", "us-central1-a/a-1", "us-central1-a/a-2",
                          "europe-west4-a/e-0", "europe-west4-a/e-1"}
    assert nodes["europe-west4-a/e-1"].region == "europe-west4"
    assert (nodes["europe-west4-a/e-1"].gpu_count, nodes["europe-west4-a/e-1"].gpu_type) == \
        (2, "L4")
    assert nodes["us-central1-a/a-0"].gpu_type == "A100"
    pages = fake.calls("GET", "/aggregated/instances")
    assert len(pages) == 3
    assert {p.query["filter"] for p in pages} == {"labels.navarch-workspace:*"}
    assert [p.query.get("pageToken") for p in pages] == [None, "2", "4"]


def test_fake_supports_label_equality_and_operation_get(endpoint: str,
                                                         fake: FakeGce) -> None:
    fake.add_instance("us-central1-a", "mine", labels={"navarch-workspace": "research"})
    fake.add_instance("us-central1-b", "theirs", labels={"navarch-workspace": "other"})
    client = compute_v1.InstancesClient(credentials=AnonymousCredentials(),
                                        client_options=ClientOptions(api_endpoint=endpoint))
    req = compute_v1.AggregatedListInstancesRequest(
        project=PROJECT, filter='labels.navarch-workspace = "research"')
    names = [i.name for _, scoped in client.aggregated_list(request=req)
             for i in scoped.instances]
    assert names == ["mine"]
    # Operations answer a plain GET too (the library's own poller uses it).
    opts = ClientOptions(api_endpoint=endpoint)
    zo = compute_v1.ZoneOperationsClient(credentials=AnonymousCredentials(), client_options=opts)
    op = client.delete_unary(project=PROJECT, zone="us-central1-b", instance="theirs")
    assert op.status == compute_v1.Operation.Status.RUNNING
    done = zo.get(project=PROJECT, zone="us-central1-b", operation=op.name)
    assert done.status == compute_v1.Operation.Status.DONE
    assert ("us-central1-b", "theirs") not in fake.instances


def test_list_retries_a_503_then_succeeds(gcp: GcpProvider, fake: FakeGce) -> None:
    fake.add_instance("us-central1-a", "vm-1", labels=WS)
    fake.fail_next(503, "backend unavailable", "backendError", method="GET")
    assert [n.id for n in gcp.list()] == ["us-central1-a/vm-1"]
    assert len(fake.calls("GET", "/aggregated/instances")) == 2


def test_get(gcp: GcpProvider, fake: FakeGce) -> None:
    node = gcp.provision(request())
    assert gcp.get(node.id) == node
    assert gcp.get("us-central1-a/never-existed") is None
    with pytest.raises(InvalidRequestError):
        gcp.get("1234567890")  # a numeric GCE id is not a navarch GCP node id


def test_terminate_is_idempotent(gcp: GcpProvider, fake: FakeGce) -> None:
    node = gcp.provision(request())
    gcp.terminate(node.id)
    assert fake.instances == {}
    assert gcp.get(node.id) is None
    gcp.terminate(node.id)  # 404: already gone is success
    gcp.terminate("us-central1-b/never-existed")
    deletes = fake.calls("DELETE")
    assert len(deletes) == 3
    assert deletes[0].path.endswith("/zones/us-central1-a/instances/research-train-0-ab12")


# -- errors ---------------------------------------------------------------------------

def test_stockout_in_operation_is_capacity_error(gcp: GcpProvider, fake: FakeGce) -> None:
    fake.stockout_zones = {"us-central1-c"}
    with pytest.raises(CapacityError) as e:
        gcp.provision(request(zone="us-central1-c"))
    err = e.value
    assert (err.provider, err.region, err.code) == ("gcp", "us-central1",
                                                    "ZONE_RESOURCE_POOL_EXHAUSTED")
    assert "does not have enough resources" in err.cloud_message
    assert fake.instances == {}
    # The next candidate zone works: the error is per zone, not per provider.
    assert gcp.provision(request(zone="us-central1-a")).status is NodeStatus.RUNNING


def test_regional_quota_in_operation(gcp: GcpProvider, fake: FakeGce) -> None:
    msg = "Quota 'NVIDIA_H100_GPUS' exceeded.  Limit: 0.0 in region us-central1."
    fake.fail_next_operation("QUOTA_EXCEEDED", msg, http_status=403)
    with pytest.raises(QuotaError) as e:
        gcp.provision(request())
    assert (e.value.code, e.value.region, e.value.provider_wide) == \
        ("QUOTA_EXCEEDED", "us-central1", False)
    assert e.value.cloud_message == msg


def test_gpus_all_regions_quota_is_provider_wide(gcp: GcpProvider, fake: FakeGce) -> None:
    fake.fail_next_operation("QUOTA_EXCEEDED",
                             "Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: 0.0 globally.", 403)
    with pytest.raises(QuotaError) as e:
        gcp.provision(request())
    assert e.value.provider_wide is True


def test_gpus_all_regions_in_structured_details_only(gcp: GcpProvider,
                                                     fake: FakeGce) -> None:
    details = [{"quotaInfo": {"metricName": "compute.googleapis.com/gpus_all_regions",
                              "limitName": "GPUS-ALL-REGIONS-per-project", "limit": 0}}]
    fake.fail_next_operation("QUOTA_EXCEEDED", "Quota exceeded.", 403, details=details)
    with pytest.raises(QuotaError) as e:
        gcp.provision(request())
    assert e.value.provider_wide is True


@pytest.mark.parametrize(("message", "wide"), [
    ("Quota 'NVIDIA_A100_GPUS' exceeded. Limit: 0.0 in region us-central1.", False),
    ("Quota 'GPUS_ALL_REGIONS' exceeded. Limit: 0.0 globally.", True),
])
def test_synchronous_403_quota(gcp: GcpProvider, fake: FakeGce, message: str,
                               wide: bool) -> None:
    fake.fail_next(403, message, "quotaExceeded", method="POST")
    with pytest.raises(QuotaError) as e:
        gcp.provision(request())
    assert (e.value.code, e.value.region, e.value.provider_wide) == \
        ("quotaExceeded", "us-central1", wide)
    assert e.value.cloud_message == message


@pytest.mark.parametrize(("status", "reason", "cls"), [
    (403, "forbidden", AuthError),
    (400, "invalid", InvalidRequestError),
    (404, "notFound", NotFoundError),
    (500, "backendError", TransientError),
    (503, "backendError", TransientError),
])
def test_synchronous_http_errors(gcp: GcpProvider, fake: FakeGce, status: int, reason: str,
                                 cls: type) -> None:
    fake.fail_next(status, f"the cloud says {status}", reason, method="POST")
    with pytest.raises(cls) as e:
        gcp.provision(request())
    err = e.value
    assert type(err) is cls
    assert (err.provider, err.region, err.code) == ("gcp", "us-central1", reason)
    assert err.cloud_message == f"the cloud says {status}"
    assert len(fake.calls("POST")) == 1  # writes are not retried by the provider


def test_401_is_auth_error(gcp: GcpProvider, fake: FakeGce) -> None:
    # google-auth's session answers a 401 by refreshing the token and retrying once;
    # anonymous credentials cannot refresh, real ones would get a second 401. Either
    # way the caller sees an AuthError, never a retryable kind.
    fake.fail_next(401, "Request is missing required authentication credential.",
                   "required", method="POST")
    with pytest.raises(AuthError) as e:
        gcp.provision(request())
    assert (e.value.provider, e.value.region) == ("gcp", "us-central1")
    assert fake.instances == {}


def test_rate_limit_carries_retry_after(gcp: GcpProvider, fake: FakeGce) -> None:
    fake.fail_next(429, "Rate Limit Exceeded", "rateLimitExceeded", method="POST",
                   headers={"Retry-After": "7"})
    with pytest.raises(RateLimitError) as e:
        gcp.provision(request())
    assert e.value.retry_after == 7.0


def test_unknown_zone_and_bad_name_come_back_typed(gcp: GcpProvider) -> None:
    with pytest.raises(NotFoundError) as e:
        gcp.provision(request(zone="us-central9-z"))
    assert e.value.region == "us-central9"
    with pytest.raises(InvalidRequestError):
        gcp.provision(request(name="Not_A_Valid_Name"))  # the API's RFC1035 check


def test_500_on_list_and_terminate_is_transient(gcp: GcpProvider, fake: FakeGce) -> None:
    fake.fail_next(500, "internal error", "backendError", method="GET")
    with pytest.raises(TransientError):
        gcp.list()
    fake.add_instance("us-central1-a", "vm-1", labels=WS)
    fake.fail_next(500, "internal error", "backendError", method="DELETE")
    with pytest.raises(TransientError):
        gcp.terminate("us-central1-a/vm-1")
    assert ("us-central1-a", "vm-1") in fake.instances


# -- construction and catalog -----------------------------------------------------------

def test_built_from_its_type_with_anonymous_credentials(endpoint: str, fake: FakeGce) -> None:
    options = {"project": PROJECT, "endpoint": endpoint, "credentials": "anonymous",
               "image": "projects/p/global/images/my-image", "disk_gb": 500}
    gcp = GCP.build("gcp-main", options, {}, BuildContext())
    node = gcp.provision(request())
    assert node.provider == "gcp-main"
    (body,) = insert_bodies(fake)
    params = body["disks"][0]["initializeParams"]
    assert params["sourceImage"] == "projects/p/global/images/my-image"
    assert params["diskSizeGb"] == "500"
    with pytest.raises(ConfigError, match="credentials"):
        parse_config("version: 1\nproviders:\n  g: {type: gcp, project: p, credentials: x}\n",
                     "n.yaml", {})


def test_protocols_and_instance_types() -> None:
    gcp = GcpProvider("gcp", PROJECT)  # no clients, hence no credentials, needed for this
    assert isinstance(gcp, Provider)
    assert isinstance(gcp, InstanceTypeLister)
    assert isinstance(gcp, NodeGetter)
    types = {t.name: t for t in gcp.list_instance_types()}
    assert len(types) == len(gcp.list_instance_types())
    h100 = types["a3-highgpu-8g"]
    assert (h100.gpu_count, h100.gpu_type, h100.available) == (8, "H100", True)
    assert "us-central1" in h100.regions and h100.price_per_hr and h100.price_per_hr > 50
    assert (types["a3-ultragpu-8g"].gpu_type, types["a4-highgpu-8g"].gpu_type) == \
        ("H200", "B200")
    assert [types[f"g2-standard-{n}"].gpu_count for n in (4, 8, 12, 24, 48, 96)] == \
        [1, 1, 1, 2, 4, 8]
    assert [types[f"a2-highgpu-{n}g"].gpu_count for n in (1, 2, 4, 8)] == [1, 2, 4, 8]
    assert all(t.gpu_count > 0 and t.vcpus > 0 and t.memory_gb > 0 for t in types.values())
    assert all(t.price_per_hr is None or t.price_per_hr > 0 for t in types.values())

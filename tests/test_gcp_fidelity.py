"""Compute Engine as the real service behaves: zone-scoped machine and accelerator types,
GPU quotas per model and region, SSH keys with key material, launch options, user_data
run once, and types GCE does not sell on-demand. The real google-cloud-compute client
talks to tests/fakes/gce_server.py on 127.0.0.1; config rules go through parse_config
and the `navarch` command."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from navarch_plan.config import parse_config
from navarch_plan.errors import ConfigError, NotOfferedError, QuotaError
from navarch_plan.model import ProvisionRequest
from navarch_plan.providers.base import BuildContext
from navarch_plan.providers.gcp import GcpProvider
from navarch_plan.providers.gcp.kind import GCP
from navarch_plan.providers.gcp.launch import run_once_script
from tests.conftest import OFFLINE_ENV, Workdir
from tests.fakes.gce_server import FakeGce, serve

PROJECT = "test-project"
WS = {"navarch-workspace": "research"}
_BLOB = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))
KEY = "ssh-ed25519 " + base64.b64encode(_BLOB).decode() + " alice@laptop"
KEY2 = "ssh-ed25519 " + base64.b64encode(_BLOB[:-1] + b"\x01").decode() + " bob"

pytestmark = pytest.mark.usefixtures("offline")


@pytest.fixture
def fake() -> FakeGce:
    return FakeGce(project=PROJECT)


@pytest.fixture
def endpoint(fake: FakeGce) -> Iterator[str]:
    with serve(fake) as url:
        yield url


def provider(endpoint: str, **options: object) -> GcpProvider:
    built = GCP.build("gcp", {"project": PROJECT, "endpoint": endpoint,
                              "credentials": "anonymous", **options}, {}, BuildContext())
    assert isinstance(built, GcpProvider)
    built.poll_interval = 0
    return built


def request(instance_type: str = "a3-highgpu-8g", zone: str = "us-central1-a",
            **kw: object) -> ProvisionRequest:
    return ProvisionRequest(name="research-train-0-ab12", instance_type=instance_type,
                            region=zone.rsplit("-", 1)[0], zone=zone, labels=WS, **kw)


def insert_body(fake: FakeGce) -> dict:
    (call,) = [r for r in fake.calls("POST") if r.path.endswith("/instances")]
    return call.body


def metadata(body: dict) -> dict[str, str]:
    return {i["key"]: i["value"] for i in body["metadata"]["items"]}


# -- 1. zone-scoped machine and accelerator types -------------------------------------------

def test_machine_type_missing_from_zone_is_not_offered(endpoint: str, fake: FakeGce) -> None:
    gcp = provider(endpoint)
    with pytest.raises(NotOfferedError) as e:
        gcp.provision(request(zone="us-central1-b"))  # no A3 there
    assert "does not exist in zone 'us-central1-b'" in e.value.cloud_message
    assert e.value.region == "us-central1" and fake.instances == {}
    assert gcp.provision(request(zone="us-central1-a")).zone == "us-central1-a"


def test_accelerator_missing_from_zone_is_not_offered(endpoint: str) -> None:
    with pytest.raises(NotOfferedError) as e:
        provider(endpoint).provision(
            request("n1-standard-8+nvidia-tesla-v100:1", zone="us-central1-c"))
    assert "acceleratorTypes/nvidia-tesla-v100' was not found" in e.value.cloud_message


def test_unknown_zone_stays_not_found(endpoint: str) -> None:
    with pytest.raises(Exception) as e:
        provider(endpoint).provision(request(zone="us-central9-z"))
    assert not isinstance(e.value, NotOfferedError)


# -- 2. quota scope ---------------------------------------------------------------------------

@pytest.mark.parametrize(("message", "itype", "covered"), [
    ("Quota 'NVIDIA_H100_GPUS' exceeded.  Limit: 0.0 in region us-central1.",
     "a3-highgpu-8g", {"a3-highgpu-1g", "a3-highgpu-2g", "a3-highgpu-4g", "a3-highgpu-8g"}),
    ("Quota 'PREEMPTIBLE_NVIDIA_T4_GPUS' exceeded.", "n1-standard-16+nvidia-tesla-t4:2",
     {"n1-standard-8+nvidia-tesla-t4:1", "n1-standard-16+nvidia-tesla-t4:2"}),
    ("Quota 'NVIDIA_L4_GPUS' exceeded.", "g2-standard-4",
     {f"g2-standard-{n}" for n in (4, 8, 12, 16, 24, 32, 48, 96)}),
])
def test_gpu_quota_rules_out_only_that_model(endpoint: str, fake: FakeGce, message: str,
                                             itype: str, covered: set[str]) -> None:
    fake.fail_next(403, message, "quotaExceeded", method="POST")
    with pytest.raises(QuotaError) as e:
        provider(endpoint).provision(request(itype))
    assert e.value.provider_wide is False
    assert e.value.instance_types == frozenset(covered)


def test_quota_in_operation_details_names_the_model(endpoint: str, fake: FakeGce) -> None:
    details = [{"quotaInfo": {"metricName": "compute.googleapis.com/nvidia_a100_80gb_gpus",
                              "limitName": "NVIDIA-A100-80GB-GPUS-per-project-region"}}]
    fake.fail_next_operation("QUOTA_EXCEEDED", "Quota exceeded.", 403, details=details)
    with pytest.raises(QuotaError) as e:
        provider(endpoint).provision(request("a2-ultragpu-1g"))
    assert e.value.instance_types == frozenset(f"a2-ultragpu-{n}g" for n in (1, 2, 4, 8))


def test_cpu_quota_still_covers_the_region(endpoint: str, fake: FakeGce) -> None:
    fake.fail_next(403, "Quota 'CPUS' exceeded.  Limit: 24.0 in region us-central1.",
                   "quotaExceeded", method="POST")
    with pytest.raises(QuotaError) as e:
        provider(endpoint).provision(request())
    assert (e.value.instance_types, e.value.provider_wide) == (None, False)


# -- 3. SSH keys with key material -----------------------------------------------------------

def test_ssh_keys_metadata_holds_user_and_key_material(endpoint: str, fake: FakeGce) -> None:
    provider(endpoint).provision(request(ssh_key_names=("alice", "bob"),
                                         ssh_public_keys={"alice": KEY, "bob": KEY2}))
    assert metadata(insert_body(fake))["ssh-keys"] == f"navarch:{KEY}\nnavarch:{KEY2}"


def test_ssh_user_is_an_option(endpoint: str, fake: FakeGce) -> None:
    provider(endpoint, ssh_user="ubuntu").provision(
        request(ssh_key_names=("alice",), ssh_public_keys={"alice": KEY}))
    assert metadata(insert_body(fake))["ssh-keys"] == f"ubuntu:{KEY}"


GCP_CONFIG = """\
version: 1
providers:
  g: {{type: gcp, project: p{options}}}
{keys}pools:
  train:
    nodes: 1
    provider: g
    region: us-central1
    zone: us-central1-a
    instance_type: a3-highgpu-8g
    ssh_keys: [alice]
{extra}"""


def config(keys: str = "", options: str = "", extra: str = "", base_dir: str = ".") -> object:
    text = GCP_CONFIG.format(keys=keys, options=options, extra=extra)
    return parse_config(text, "n.yaml", {}, base_dir)


def test_key_without_material_fails_validate_naming_it() -> None:
    with pytest.raises(ConfigError) as e:
        config()
    assert "'alice' has no public key in ssh_public_keys" in str(e.value)
    assert (e.value.line, e.value.path) == (11, "pools.train.ssh_keys")


@pytest.mark.parametrize(("value", "why"), [
    ("ssh-ed25519 AAAAnotbase64!", "is not an OpenSSH public key"),
    ("ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x07ssh-rsa").decode(),
     "not a ssh-ed25519 key"),
    ("~/.ssh/id_ed25519", "never a private key"),
])
def test_bad_key_material_is_refused_at_load(value: str, why: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(keys=f"ssh_public_keys:\n  alice: {json.dumps(value)}\n")
    assert why in str(e.value) and e.value.path == "ssh_public_keys.alice"


def test_inline_key_and_pub_path_are_kept_as_written(tmp_path: Path) -> None:
    inline = config(keys=f"ssh_public_keys:\n  alice: {json.dumps(KEY)}\n")
    (node,) = inline.desired.values()  # type: ignore[attr-defined]
    assert dict(node.public_keys) == {"alice": KEY}
    by_path = config(keys="ssh_public_keys:\n  alice: keys/alice.pub\n",
                     base_dir=str(tmp_path))
    (node,) = by_path.desired.values()  # type: ignore[attr-defined]
    assert dict(node.public_keys) == {"alice": f"{tmp_path}/keys/alice.pub"}
    assert not (tmp_path / "keys").exists()  # nothing read at load


# -- 4. launch options -------------------------------------------------------------------------

def test_launch_options_shape_the_insert_body(endpoint: str, fake: FakeGce) -> None:
    gcp = provider(endpoint, image="projects/p/global/images/family/mine", disk_gb=500,
                   disk_type="pd-ssd", network="research-vpc",
                   subnetwork={"us-central1": "research-central", "us-east4": "r-east"},
                   service_account="runner@p.iam.gserviceaccount.com")
    gcp.provision(request("g2-standard-4"))
    body = insert_body(fake)
    assert body["disks"] == [{"boot": True, "autoDelete": True, "initializeParams": {
        "sourceImage": "projects/p/global/images/family/mine", "diskSizeGb": "500",
        "diskType": "zones/us-central1-a/diskTypes/pd-ssd"}}]
    assert body["networkInterfaces"] == [{
        "network": "global/networks/research-vpc",
        "subnetwork": "regions/us-central1/subnetworks/research-central",
        "accessConfigs": [{"name": "External NAT", "type": "ONE_TO_ONE_NAT"}]}]
    assert body["serviceAccounts"] == [{
        "email": "runner@p.iam.gserviceaccount.com",
        "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}]


def test_defaults_and_a_pools_overrides(endpoint: str, fake: FakeGce) -> None:
    gcp = provider(endpoint, network="projects/host/global/networks/shared")
    gcp.provision(request("a3-ultragpu-8g"))
    gcp.provision(ProvisionRequest(
        name="other-0", instance_type="g2-standard-4", region="us-central1",
        zone="us-central1-a", labels=WS,
        launch={"disk_gb": 80, "disk_type": "pd-ssd", "subnetwork": "projects/h/regions/"
                "us-central1/subnetworks/s", "service_account": "x@p.iam.gserviceaccount.com"}))
    first, second = [r.body for r in fake.calls("POST") if r.path.endswith("/instances")]
    assert first["disks"][0]["initializeParams"]["diskSizeGb"] == "200"
    # A3 Ultra boots only from Hyperdisk; no service account unless asked for.
    assert first["disks"][0]["initializeParams"]["diskType"] == \
        "zones/us-central1-a/diskTypes/hyperdisk-balanced"
    assert first["networkInterfaces"][0]["network"] == "projects/host/global/networks/shared"
    assert "subnetwork" not in first["networkInterfaces"][0]
    assert "serviceAccounts" not in first
    assert second["disks"][0]["initializeParams"]["diskSizeGb"] == "80"
    assert second["networkInterfaces"][0]["subnetwork"] == \
        "projects/h/regions/us-central1/subnetworks/s"
    assert second["serviceAccounts"][0]["email"] == "x@p.iam.gserviceaccount.com"


def test_subnetwork_map_without_a_candidate_region_fails_at_load() -> None:
    keys = f"ssh_public_keys:\n  alice: {json.dumps(KEY)}\n"
    with pytest.raises(ConfigError) as e:
        config(keys=keys, options=", subnetwork: {us-east4: s-east}")
    assert "subnetwork has no value for region us-central1" in str(e.value)
    assert e.value.path == "providers.g.subnetwork"
    with pytest.raises(ConfigError) as e:
        config(keys=keys, extra="    launch: {subnetwork: {us-east4: s}}\n")
    assert e.value.path == "pools.train.launch.subnetwork"


def test_disk_type_the_machine_refuses_fails_at_load() -> None:
    keys = f"ssh_public_keys:\n  alice: {json.dumps(KEY)}\n"
    with pytest.raises(ConfigError) as e:
        config(keys=keys, options=", disk_type: pd-standard")
    assert "a3-highgpu-8g does not take pd-standard" in str(e.value)
    with pytest.raises(ConfigError, match="unknown key|is not one of"):
        config(keys=keys, options=", disk_type: pd-fast")


# -- 5. user_data ---------------------------------------------------------------------------

def test_user_data_is_cloud_init_and_a_script_also_runs_once(endpoint: str,
                                                             fake: FakeGce) -> None:
    gcp = provider(endpoint)
    gcp.provision(request(user_data="#cloud-config\nruncmd: [touch /x]\n"))
    gcp.provision(ProvisionRequest(name="s-0", instance_type="g2-standard-4",
                                   region="us-central1", zone="us-central1-a", labels=WS,
                                   user_data="#!/bin/bash\necho hi\n"))
    cloud_config, script = [metadata(r.body) for r in fake.calls("POST")
                            if r.path.endswith("/instances")]
    assert cloud_config["user-data"] == "#cloud-config\nruncmd: [touch /x]\n"
    assert "startup-script" not in cloud_config
    assert script["user-data"] == "#!/bin/bash\necho hi\n"
    assert script["startup-script"] == run_once_script("#!/bin/bash\necho hi\n")


def test_run_once_script_runs_the_script_once(tmp_path: Path) -> None:
    guard = tmp_path / "navarch" / "ran"
    out = tmp_path / "out"
    text = run_once_script(f"#!/bin/sh\necho ran >> {out}\n").replace(
        "/var/lib/navarch/user-data.ran", str(guard)).replace(
        "/var/lib/navarch", str(guard.parent))
    env = {"PATH": "/usr/bin:/bin"}  # no cloud-init here
    for _ in range(3):  # every boot
        subprocess.run(["sh", "-c", text], check=True, env=env)
    assert out.read_text() == "ran\n"


# -- 6. purchase models ------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "words"), [
    ("instance_type: h100-1x", "h100-1x means a3-highgpu-1g on g; a3-highgpu-1g is not sold "
                               "on-demand on gcp: only as spot, flex-start"),
    ("instance_type: a4-highgpu-8g", "only as spot, reservation, flex-start"),
    ("gpu: H200:8", "no provider of this pool offers the requested GPUs on-demand: "
                    "a3-ultragpu-8g is not sold"),
])
def test_types_not_sold_on_demand_fail_at_load(line: str, words: str) -> None:
    text = GCP_CONFIG.format(keys=f"ssh_public_keys:\n  alice: {json.dumps(KEY)}\n",
                             options="", extra="").replace("instance_type: a3-highgpu-8g",
                                                           line)
    with pytest.raises(ConfigError) as e:
        parse_config(text, "n.yaml", {})
    assert words in str(e.value)
    assert "cloud.google.com/compute/docs/accelerator-optimized-machines" in str(e.value)


def test_gpu_spec_resolves_only_to_on_demand_types() -> None:
    text = GCP_CONFIG.format(keys=f"ssh_public_keys:\n  alice: {json.dumps(KEY)}\n",
                             options="", extra="").replace("instance_type: a3-highgpu-8g",
                                                           "gpu: [H100:8, H100:4]")
    (node,) = parse_config(text, "n.yaml", {}).desired.values()
    assert [c.instance_type for c in node.candidates] == ["a3-highgpu-8g", "a3-megagpu-8g"]


# -- through the navarch command ---------------------------------------------------------------

def test_cli_fails_over_past_a_zone_without_the_type(work: Workdir, tmp_path: Path) -> None:
    fake = FakeGce(project=PROJECT)
    (work.path / "alice.pub").write_text(KEY + "\n")
    with serve(fake) as url:
        work.write(json.dumps({
            "version": 1, "workspace": "test",
            "ssh_public_keys": {"alice": "alice.pub"},
            "providers": {"g": {"type": "gcp", "project": PROJECT, "endpoint": url,
                                "credentials": "anonymous", "consistency_window": 0}},
            "pools": {"train": {"nodes": 1, "ssh_keys": ["alice"], "providers": [{
                "name": "g", "regions": ["us-central1"],
                "zones": ["us-central1-b", "us-central1-a"]}],
                "instance_type": "a3-highgpu-8g"}}}))
        result = work.run("apply", "--auto-approve", env=OFFLINE_ENV)
    assert result.code == 0, result.out + result.err
    assert "not offered" in result.out + result.err
    zones = [r.path.split("/zones/")[1].split("/")[0] for r in fake.calls("POST")
             if r.path.endswith("/instances")]
    assert zones == ["us-central1-b", "us-central1-a"]
    (inst,) = fake.instances.values()
    assert inst["zone"].endswith("/us-central1-a")
    keys = {i["key"]: i["value"] for i in inst["metadata"]["items"]}["ssh-keys"]
    assert keys == f"navarch:{KEY}"


def test_cli_unreadable_pub_file_fails_the_launch_before_any_call(work: Workdir) -> None:
    fake = FakeGce(project=PROJECT)
    (work.path / "bob.pub").write_text("not a key\n")
    with serve(fake) as url:
        work.write(json.dumps({
            "version": 1, "workspace": "test",
            "ssh_public_keys": {"alice": "keys/alice.pub", "bob": "bob.pub"},
            "providers": {"g": {"type": "gcp", "project": PROJECT, "endpoint": url,
                                "credentials": "anonymous", "consistency_window": 0}},
            "nodes": {"a": {"provider": "g", "ssh_keys": ["alice"], "region": "us-central1",
                            "zone": "us-central1-a", "instance_type": "g2-standard-4"},
                      "b": {"provider": "g", "ssh_keys": ["bob"], "region": "us-central1",
                            "zone": "us-central1-a", "instance_type": "g2-standard-4"}}}))
        # validate reads the files (loading a config reads none); apply checks again.
        checked = work.cli("validate", env=OFFLINE_ENV)
        assert checked.code == 1
        assert "ssh_public_keys.alice: alice: cannot read keys/alice.pub" in checked.err
        assert "ssh_public_keys.bob: bob: bob.pub is not an OpenSSH public key" in checked.err
        result = work.cli("apply", "--auto-approve", env=OFFLINE_ENV)
    assert result.code == 1
    assert "ssh_public_keys.alice: cannot read" in result.err + result.out
    assert "ssh_public_keys.bob: " in result.err + result.out
    assert "is not an OpenSSH public key" in result.err + result.out
    assert not [r for r in fake.calls("POST") if r.path.endswith("/instances")]

"""Lambda launch options: `file_systems`, `firewall_rulesets` and `image`, on the provider
and per pool (`launch:`), become Lambda's launch fields (file_system_names,
firewall_rulesets: [{id}], image: {id|family}); the fake refuses what Lambda refuses."""

from __future__ import annotations

import json
import re
import uuid
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from navarch_plan.errors import InvalidRequestError
from navarch_plan.model import ProvisionRequest
from navarch_plan.providers.base import BuildContext
from navarch_plan.providers.lambda_ import LambdaProvider
from navarch_plan.providers.lambda_.kind import LAMBDA
from tests.conftest import Workdir
from tests.fakes.lambda_server import LAUNCH, FakeLambda, serve
from tests.test_e2e_clouds import LambdaCloud

REQ = ProvisionRequest(name="n-0", instance_type="gpu_1x_a10", region="us-east-1",
                       ssh_key_names=("ops-team",), user_data="#cloud-config\n{}\n")
BASE = {"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10",
        "ssh_key_names": ["ops-team"], "name": "n-0", "user_data": "#cloud-config\n{}\n"}
EAST = {"file_systems": ["datasets-east"], "firewall_rulesets": ["fwr-ssh-east"],
        "image": {"family": "lambda-stack-24-04"}}


@pytest.fixture
def key() -> str:
    return f"sk-test-{uuid.uuid4().hex}"


@pytest.fixture
def fake(key: str) -> FakeLambda:
    return FakeLambda(api_key=key)


def provider(fake: FakeLambda, key: str, **launch: Any) -> LambdaProvider:
    return LambdaProvider("lambda", key, base_url="http://lambda.test/api/v1",
                          transport=httpx.WSGITransport(app=fake), launch_interval=0,
                          max_retries=0, launch=launch)


def launch_bodies(fake: FakeLambda) -> list[Any]:
    return [r.body for r in fake.requests("POST", LAUNCH)]


def test_the_providers_launch_options_are_lambdas_launch_fields(fake, key):
    with provider(fake, key, **EAST) as p:
        node = p.provision(REQ)
    assert launch_bodies(fake) == [{**BASE, "file_system_names": ["datasets-east"],
                                    "firewall_rulesets": [{"id": "fwr-ssh-east"}],
                                    "image": {"family": "lambda-stack-24-04"}}]
    held = fake.instances[node.id]
    assert held.file_system_names == ["datasets-east"]
    assert held.firewall_rulesets == [{"id": "fwr-ssh-east"}]


def test_a_pools_launch_options_win_over_the_providers_and_empty_sends_nothing(fake, key):
    req = ProvisionRequest(**{**REQ.__dict__, "launch": {
        "image": {"id": "img-5f1e0c"}, "file_systems": [], "firewall_rulesets": []}})
    with provider(fake, key, **EAST) as p:
        p.provision(req)
    assert launch_bodies(fake) == [{**BASE, "image": {"id": "img-5f1e0c"}}]


@pytest.mark.parametrize(("launch", "code", "words"), [
    ({"file_systems": ["no-such-fs"]}, "global/object-does-not-exist",
     "Filesystem was not found."),
    ({"file_systems": ["datasets-west"]},
     "instance-operations/launch/file-system-in-wrong-region", "is in us-west-1"),
    ({"firewall_rulesets": ["fwr-nope"]}, "global/object-does-not-exist",
     "Firewall ruleset does not exist"),
    ({"image": {"family": "windows-95"}}, "global/object-does-not-exist",
     "Image was not found."),
])
def test_what_the_account_lacks_is_an_invalid_request_and_creates_nothing(
        fake, key, launch, code, words):
    with provider(fake, key, **launch) as p, pytest.raises(InvalidRequestError) as err:
        p.provision(REQ)
    assert (err.value.code, err.value.region) == (code, "us-east-1")
    assert words in str(err.value)
    assert fake.instances == {}


@pytest.mark.parametrize("extra", [
    {"file_system_names": "datasets-east"},
    {"firewall_rulesets": ["fwr-ssh-east"]},  # ids, not {id} objects
    {"image": {"id": "img-5f1e0c", "family": "lambda-stack-24-04"}},
    {"image": "lambda-stack-24-04"},
    {"user_data": 42},
])
def test_the_fake_refuses_malformed_launch_fields_as_lambda_does(fake, key, extra):
    client = httpx.Client(transport=httpx.WSGITransport(app=fake),
                          base_url="http://lambda.test/api/v1",
                          headers={"Authorization": f"Bearer {key}"})
    resp = client.post(LAUNCH, json={**BASE, **extra})
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "global/invalid-parameters"
    assert fake.instances == {}


def test_the_type_builds_the_provider_with_its_launch_and_capacity_options(fake, key):
    """From a config's options (as `navarch` builds it): the launch options reach every
    launch, and capacity_cache_seconds: 0 reads the catalog before each one."""
    with serve(fake) as url:
        built = LAMBDA.build("lambda", {"api_key_env": "K", "base_url": url,
                                        "launch_interval": 0, "capacity_cache_seconds": 0,
                                        **EAST}, {"K": key}, BuildContext())
        with built as p:
            p.provision(REQ)
            p.provision(ProvisionRequest(**{**REQ.__dict__, "name": "n-1"}))
    assert len(fake.requests("GET", "/instance-types")) == 2
    assert [b["image"] for b in launch_bodies(fake)] == [EAST["image"]] * 2
    assert [b["file_system_names"] for b in launch_bodies(fake)] == [["datasets-east"]] * 2


# -- through the navarch command ---------------------------------------------------------------

def _config(lam: LambdaCloud, pool: dict[str, Any], **provider_options: Any) -> str:
    doc = {"version": 1, "workspace": "opts",
           "providers": {"lambda": {**lam.provider, **provider_options}},
           "defaults": {"ssh_keys": ["ops-team"]},
           "pools": {"w": {"provider": "lambda", "instance_type": "gpu_1x_a10",
                           "region": "us-east-1", "nodes": 1, **pool}}}
    return json.dumps(doc, indent=2) + "\n"


def test_apply_sends_the_pools_launch_options(work: Workdir) -> None:
    with ExitStack() as stack:
        lam = LambdaCloud(stack)
        work.write(_config(lam, {"launch": {"file_systems": ["datasets-east"],
                                            "firewall_rulesets": ["fwr-ssh-east"]}},
                           image={"family": "lambda-stack-22-04"}))
        result = work.cli("apply", "--auto-approve", env=lam.env)
        assert result.code == 0, result.out + result.err
        (body,) = launch_bodies(lam.fake)
    assert (body["file_system_names"], body["firewall_rulesets"], body["image"]) == (
        ["datasets-east"], [{"id": "fwr-ssh-east"}], {"family": "lambda-stack-22-04"})
    (record,) = work.state("opts")["nodes"].values()
    assert record["spec"]["launch"] == {"file_systems": ["datasets-east"],
                                        "firewall_rulesets": ["fwr-ssh-east"]}


@pytest.mark.parametrize(("pool", "options", "where", "words"), [
    ({"launch": {"image": {"name": "ubuntu"}}}, {}, "pools.w.launch.image",
     "'name' was unexpected"),
    ({"launch": {"image": {"id": "i", "family": "f"}}}, {}, "pools.w.launch.image",
     "has too many properties"),
    ({"launch": {"file_systems": "datasets-east"}}, {}, "pools.w.launch.file_systems",
     "is not of type 'array'"),
    ({"launch": {"file_systems": ["1-starts-with-a-digit"]}}, {},
     "pools.w.launch.file_systems", "'1-starts-with-a-digit' is not valid (a file system name: "
     "letters, digits and '-', starting with a letter)"),
    ({"launch": {"hostname": "h"}}, {}, "pools.w.launch.hostname",
     "'hostname' is not a launch option of Lambda Cloud provider 'lambda' (a pool may "
     "set: file_systems, firewall_rulesets, image)"),
    ({}, {"firewall_rulesets": [""]}, "providers.lambda.firewall_rulesets[0]",
     "should be non-empty"),
])
def test_bad_launch_options_are_one_line_naming_the_place(work: Workdir, pool, options,
                                                          where, words) -> None:
    with ExitStack() as stack:
        lam = LambdaCloud(stack)
        work.write(_config(lam, pool, **options))
        result = work.cli("validate", env=lam.env)
    assert result.code == 1
    (line,) = result.err.strip().splitlines()
    assert re.match(rf"Error: navarch\.yaml:\d+:\d+: {re.escape(where)}: ", line), line
    assert words in line, line
    assert lam.fake.log == [], "nothing reached the cloud"

"""One fleet's life through the real `navarch` command, on every provider.

The same scenario, with the same expectations, runs against the fake cloud and against
the real client code of Lambda (httpx), GCP (google-cloud-compute) and AWS (boto3), each
talking to a server on 127.0.0.1 that this file starts: FakeLambda, the fake Compute
Engine REST server, and moto's ThreadedMotoServer. Every cloud-side check (ownership
labels, what exists, what is gone) and every out-of-band change goes through the cloud's
own API or the fake's own state, never through navarch.

Nothing may leave 127.0.0.1: each run gets proxies pointing at a closed local port (with
127.0.0.1 exempt), no AWS config or credential files, and no metadata server. The runs
are the command's main() in this process (Workdir.cli, with that environment for the
call): the same parser, engine and exit codes, without an interpreter start (and, for
gcp, a google-cloud-compute import) per run. The installed console script and what a
separate process writes are covered by tests/test_secrets.py and tests/test_crash_kill.py.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OFFLINE_ENV, OPS_KEY, Workdir
from tests.fakes.lambda_server import error_body

WORKSPACE = "e2e"
POOL = "workers"
USER_LABELS = {"team": "ml", "workload": "training"}
AMI = "ami-0123456789abcdef0"  # moto accepts any image id unless told to validate them
LAMBDA_KEY_ENV = "E2E_LAMBDA_API_KEY"
# These local servers show every change at once, so a deletion outside navarch is proven
# by the next lookup; the clouds' lag and its own windows are tests/test_consistency.py's.
CONSISTENT = {"consistency_window": 0}


@dataclass(frozen=True)
class Instance:
    """One instance as the cloud itself reports it."""

    id: str
    name: str
    instance_type: str
    alive: bool  # exists and is not being or already torn down
    running: bool
    labels: dict[str, str]
    ip: str = ""


def _http(method: str, url: str, body: Any = None,
          headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 only
    with opener.open(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


# -- one adapter per cloud: its provider config, its types, and its own view ----------------

class FakeCloud:
    name = "fake"
    type_a, type_b = "gpu_1x_a10", "gpu_1x_a100"
    location = {"region": "us-west-1"}

    def __init__(self, work: Workdir) -> None:
        self.work = work
        self.env: dict[str, str] = {}
        self.provider = {"type": "fake", "path": "state/cloud.db"}

    def instances(self) -> list[Instance]:
        return [Instance(n.id, n.name, n.instance_type, n.status.is_alive,
                         n.status.value == "running", dict(n.labels), n.ip_address)
                for n in self.work.cloud().list()]

    def terminate(self, instance_id: str) -> None:
        self.work.cloud().terminate(instance_id)

    def launches(self) -> int:
        return len(self.work.cloud().calls("provision"))


class LambdaCloud:
    name = "lambda"
    # The fake's catalog has no gpu_1x_a100; gpu_1x_h100_pcie is offered in us-east-1.
    type_a, type_b = "gpu_1x_a10", "gpu_1x_h100_pcie"
    location = {"region": "us-east-1"}

    def __init__(self, stack: ExitStack) -> None:
        from tests.fakes.lambda_server import FakeLambda, serve

        self.key = f"sk-e2e-{uuid.uuid4().hex}"
        self.fake = FakeLambda(api_key=self.key)
        self.base_url = stack.enter_context(serve(self.fake))
        self.env = {LAMBDA_KEY_ENV: self.key}  # only ever in the environment of navarch's runs
        self.provider = {"type": "lambda", "api_key_env": LAMBDA_KEY_ENV,
                         "base_url": self.base_url, "launch_interval": 0, **CONSISTENT}

    def instances(self) -> list[Instance]:
        with self.fake._lock:
            found = list(self.fake.instances.values())
        return [Instance(i.id, i.name, i.type_name, i.status in ("booting", "active"),
                         i.status == "active", {t["key"]: t["value"] for t in i.tags}, i.ip)
                for i in found]

    def terminate(self, instance_id: str) -> None:
        """What a user does in the console: terminate, then watch the instance list until
        it is gone (Lambda shows a terminated instance for a while before dropping it)."""
        auth = {"Authorization": f"Bearer {self.key}"}
        _http("POST", f"{self.base_url}/instance-operations/terminate",
              {"instance_ids": [instance_id]}, auth)
        for _ in range(10):
            listed = _http("GET", f"{self.base_url}/instances", headers=auth)["data"]
            if instance_id not in {i["id"] for i in listed}:
                return
        raise AssertionError(f"{instance_id} still listed after terminate")

    def launches(self) -> int:
        return len(self.fake.requests("POST", "/instance-operations/launch"))


class GcpCloud:
    name = "gcp"
    type_a, type_b = "g2-standard-4", "g2-standard-8"
    location = {"region": "us-central1", "zone": "us-central1-a"}
    project = "e2e-project"

    def __init__(self, stack: ExitStack) -> None:
        from tests.fakes.gce_server import FakeGce, serve

        self.fake = FakeGce(project=self.project)
        self.endpoint = stack.enter_context(serve(self.fake))
        self.env: dict[str, str] = {}
        self.provider = {"type": "gcp", "project": self.project, "endpoint": self.endpoint,
                         "credentials": "anonymous", **CONSISTENT}

    def instances(self) -> list[Instance]:
        with self.fake._lock:
            found = [dict(i) for i in self.fake.instances.values()]
        return [Instance(f"{i['zone'].rsplit('/', 1)[-1]}/{i['name']}", i["name"],
                         i["machineType"].rsplit("/", 1)[-1],
                         i["status"] in ("PROVISIONING", "STAGING", "RUNNING"),
                         i["status"] == "RUNNING", dict(i["labels"]),
                         i["networkInterfaces"][0]["accessConfigs"][0]["natIP"])
                for i in found]

    def terminate(self, instance_id: str) -> None:
        """`gcloud compute instances delete`: DELETE, then wait for the operation."""
        zone, name = instance_id.split("/")
        base = f"{self.endpoint}/compute/v1/projects/{self.project}/zones/{zone}"
        op = _http("DELETE", f"{base}/instances/{name}")
        for _ in range(10):
            if op["status"] == "DONE":
                return
            op = _http("POST", f"{base}/operations/{op['name']}/wait")
        raise AssertionError(f"delete of {instance_id} never finished")

    def launches(self) -> int:
        return len([r for r in self.fake.calls("POST") if r.path.endswith("/instances")])


class AwsCloud:
    name = "aws"
    type_a, type_b = "g5.xlarge", "g6.xlarge"
    location = {"region": "us-east-1"}

    def __init__(self, endpoint: str, home: Path) -> None:
        import boto3

        _http("POST", f"{endpoint}/moto-api/reset")
        creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        self.ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=endpoint,
                                aws_access_key_id="testing", aws_secret_access_key="testing")
        self.env = {**creds, "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_EC2_METADATA_DISABLED": "true",
                    "AWS_CONFIG_FILE": str(home / "no-aws-config"),
                    "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials")}
        self.provider = {"type": "aws", "region": "us-east-1", "image_id": AMI,
                         "endpoint_url": endpoint, **CONSISTENT}

    def instances(self) -> list[Instance]:
        pages = self.ec2.get_paginator("describe_instances").paginate()
        found = [i for page in pages for r in page["Reservations"] for i in r["Instances"]]
        out = []
        for i in found:
            tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
            state = i["State"]["Name"]
            out.append(Instance(i["InstanceId"], tags.pop("Name", ""), i["InstanceType"],
                                state in ("pending", "running"), state == "running", tags,
                                i.get("PublicIpAddress") or i.get("PrivateIpAddress", "")))
        return out

    def terminate(self, instance_id: str) -> None:
        self.ec2.terminate_instances(InstanceIds=[instance_id])

    def launches(self) -> int:
        """EC2 keeps terminated instances visible for a while (moto: for good)."""
        return len(self.instances())


Cloud = FakeCloud | LambdaCloud | GcpCloud | AwsCloud


@pytest.fixture(params=["fake", "lambda", "gcp", "aws"])
def cloud(request: pytest.FixtureRequest, work: Workdir) -> Iterator[Cloud]:
    with ExitStack() as stack:
        if request.param == "fake":
            yield FakeCloud(work)
        elif request.param == "lambda":
            yield LambdaCloud(stack)
        elif request.param == "gcp":
            yield GcpCloud(stack)
        else:
            yield AwsCloud(request.getfixturevalue("moto_endpoint"), work.path)


# -- the scenario -----------------------------------------------------------------------------

class Session:
    """Runs navarch for one cloud and keeps every output, to look for leaked secrets."""

    def __init__(self, work: Workdir, cloud: Cloud) -> None:
        self.work, self.cloud = work, cloud
        self.outputs: list[str] = []

    def configure(self, nodes: int, instance_type: str) -> None:
        pool = {"provider": self.cloud.name, "instance_type": instance_type, "nodes": nodes,
                "labels": {"workload": USER_LABELS["workload"]}, **self.cloud.location}
        doc = {"version": 1, "workspace": WORKSPACE,
               "providers": {self.cloud.name: self.cloud.provider},
               "defaults": {"ssh_keys": ["ops-team"], "labels": {"team": USER_LABELS["team"]}},
               "ssh_public_keys": {"ops-team": OPS_KEY}, "pools": {POOL: pool}}
        self.work.write(json.dumps(doc, indent=2) + "\n")  # JSON is YAML

    def run(self, *args: str) -> str:
        # No AWS settings of the machine running the tests: only what the cloud gives.
        unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("AWS_")}
        result = self.work.cli(*args, env={**unset, **OFFLINE_ENV, **self.cloud.env})
        self.outputs += [result.out, result.err]
        assert result.code == 0, (
            f"navarch {' '.join(args)} exited {result.code}\n"
            f"--- stdout\n{result.out}\n--- stderr\n{result.err}")
        assert "Traceback" not in result.err
        return result.out

    def plan(self) -> dict[str, Any]:
        return json.loads(self.run("plan", "--format", "json"))

    def apply(self) -> str:
        out = self.run("apply", "--auto-approve")
        assert "Apply complete!" in out, out
        return out

    def converged(self) -> None:
        out = self.run("plan", "--detailed-exitcode")
        assert "No changes." in out, out

    def state(self) -> dict[str, Any]:
        return self.work.state(WORKSPACE)

    def owned(self) -> list[Instance]:
        """Live instances carrying this workspace's label, as the cloud reports them."""
        return [i for i in self.cloud.instances()
                if i.alive and i.labels.get("navarch-workspace") == WORKSPACE]


def _actions(plan: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(a["address"], a["action"], a["reason"]) for a in plan["actions"]]


def _check_ownership(s: Session, instance_type: str, count: int) -> None:
    """What the cloud holds matches state, with the ownership labels on every instance."""
    records = s.state()["nodes"]
    assert sorted(records) == [f"pool.{POOL}[{i}]" for i in range(count)]
    owned = {i.id: i for i in s.owned()}
    assert set(owned) == {r["id"] for r in records.values()}, (owned, records)
    for address, record in records.items():
        inst = owned[record["id"]]
        index = address[address.index("[") + 1:-1]
        assert inst.labels == {
            **USER_LABELS, "navarch-workspace": WORKSPACE,
            "navarch-address": f"p_{POOL}_{index}", "navarch-spec": record["spec_hash"],
            "navarch-lineage": s.state()["lineage"],
        }, inst.labels
        assert re.fullmatch(rf"{WORKSPACE}-{POOL}-{index}-[a-z0-9]{{4}}", inst.name), inst.name
        assert inst.name == record["name"]
        assert inst.instance_type == record["instance_type"] == instance_type
        assert inst.running and record["status"] == "running"
        assert inst.ip and record["ip_address"] == inst.ip


def test_fleet_lifecycle(work: Workdir, cloud: Cloud) -> None:
    s = Session(work, cloud)

    # 1. Three nodes from nothing.
    s.configure(3, cloud.type_a)
    text = s.run("plan")
    assert "Plan: 3 to add, 0 to replace, 0 to destroy." in text
    assert s.owned() == [], "plan must not create anything"
    s.apply()
    _check_ownership(s, cloud.type_a, 3)
    s.converged()
    first = {a: r["id"] for a, r in s.state()["nodes"].items()}
    assert len(set(first.values())) == 3

    # 2. Scale down to one: the highest indices go.
    s.configure(1, cloud.type_a)
    plan = s.plan()
    assert _actions(plan) == [(f"pool.{POOL}[1]", "delete", "scaled_down"),
                              (f"pool.{POOL}[2]", "delete", "scaled_down")]
    assert plan["drift"] == [], "state and cloud agreed after the first apply"
    assert [a["node_id"] for a in plan["actions"]] == [first[f"pool.{POOL}[{i}]"]
                                                       for i in (1, 2)]
    s.apply()
    _check_ownership(s, cloud.type_a, 1)
    kept = s.state()["nodes"][f"pool.{POOL}[0]"]["id"]
    assert kept == first[f"pool.{POOL}[0]"], "the remaining node is untouched"
    # (No separate no-changes check here or after step 3: the next step's plan must hold
    # exactly its own actions, which a leftover change would break.)

    # 3. A new instance type: replaced, the new node first, then the old one goes.
    s.configure(1, cloud.type_b)
    plan = s.plan()
    assert _actions(plan) == [(f"pool.{POOL}[0]", "replace", "spec_changed")]
    assert plan["actions"][0]["changed"] == ["instance_type"]
    assert plan["actions"][0]["node_id"] == kept
    assert plan["drift"] == []
    s.apply()
    _check_ownership(s, cloud.type_b, 1)
    replaced = s.state()["nodes"][f"pool.{POOL}[0]"]["id"]
    assert replaced != kept
    assert kept not in {i.id for i in s.owned()}, "the old instance is gone"

    # 4. Drift: the node is terminated behind navarch's back.
    cloud.terminate(replaced)
    assert s.owned() == []
    plan = s.plan()
    assert [(d["address"], d["kind"]) for d in plan["drift"]] == [
        (f"pool.{POOL}[0]", "deleted_outside")]
    assert _actions(plan) == [(f"pool.{POOL}[0]", "create", "deleted_outside")]
    s.apply()
    _check_ownership(s, cloud.type_b, 1)
    assert s.state()["nodes"][f"pool.{POOL}[0]"]["id"] != replaced
    s.converged()

    # 5. Destroy: nothing of this workspace is left in the cloud, nor in state.
    out = s.run("destroy", "--auto-approve")
    assert "1 destroyed" in out, out
    assert s.owned() == []
    assert s.state()["nodes"] == {}

    # 3 created + 1 replacement + 1 re-creation after the drift: no launch twice, no extra.
    assert cloud.launches() == 5

    # The Lambda API key went only into the environment of the runs: never out again.
    if isinstance(cloud, LambdaCloud):
        assert not any(cloud.key in text for text in s.outputs)
        files = [p for p in work.path.rglob("*") if p.is_file()]
        assert any(p.name == f"{WORKSPACE}.json" for p in files)
        for path in files:
            assert cloud.key.encode() not in path.read_bytes(), f"API key leaked into {path}"
        # The key did authenticate every request navarch made.
        assert cloud.fake.log and all(r.authorized for r in cloud.fake.log)


# Lambda keeps listing a terminated instance for a while (as EC2 does shutting-down
# ones). A plan saved while such a leftover is listed must still apply once the cloud
# drops it: nothing the plan depends on changed.
def test_saved_plan_applies_while_terminated_instances_linger(work: Workdir) -> None:
    with ExitStack() as stack:
        cloud = LambdaCloud(stack)
        s = Session(work, cloud)
        s.configure(3, cloud.type_a)
        s.apply()
        s.configure(1, cloud.type_a)
        s.apply()
        lingering = [i for i in cloud.instances() if not i.alive]
        assert len(lingering) == 2, "the scaled-down instances are still listed, terminated"

        # The pull-request workflow: plan --out now, apply exactly that plan later.
        s.configure(1, cloud.type_b)
        plan = json.loads(s.run("plan", "--format", "json", "--out", "plan.json"))
        assert _actions(plan) == [(f"pool.{POOL}[0]", "replace", "spec_changed")]
        s.run("apply", "plan.json")
        _check_ownership(s, cloud.type_b, 1)


def test_failover_from_lambda_stockout_to_ec2(work: Workdir, moto_endpoint: str) -> None:
    """The same failover through the real clients: Lambda says insufficient capacity (its
    HTTP 400 error code), EC2 in moto takes the node."""
    with ExitStack() as stack:
        lam = LambdaCloud(stack)
        # The catalog still lists capacity (a hint, not a reservation); the launch is
        # refused with Lambda's own error.
        lam.fake.inject(400, method="POST", path="/instance-operations/launch",
                        body=error_body("instance-operations/launch/insufficient-capacity",
                                        "Not enough capacity to fulfill launch request."))
        aws = AwsCloud(moto_endpoint, work.path)
        doc = {"version": 1, "workspace": WORKSPACE,
               "providers": {"lambda": lam.provider, "aws": aws.provider},
               "defaults": {"ssh_keys": ["ops-team"]},
               "pools": {"workers": {
                   "providers": [
                       {"name": "lambda", "priority": 1, "regions": ["us-east-1"],
                        "instance_type": "gpu_1x_a10"},
                       {"name": "aws", "priority": 2, "regions": ["us-east-1"],
                        "instance_type": "g5.xlarge"}],
                   "nodes": 1}}}
        (work.path / "navarch.yaml").write_text(json.dumps(doc))
        env = {**OFFLINE_ENV, **lam.env, **aws.env}
        result = work.cli("apply", "--auto-approve", env=env)
        assert result.code == 0, result.out + result.err
        assert "lambda/us-east-1 no capacity -> aws/us-east-1 created" in result.out
        assert lam.launches() == 1 and [i for i in lam.instances() if i.alive] == []
        created = [i for i in aws.instances() if i.alive]
        assert len(created) == 1 and created[0].labels["navarch-address"] == "p_workers_0"
        assert work.state(WORKSPACE)["nodes"]["pool.workers[0]"]["provider"] == "aws"
        again = work.cli("plan", "--detailed-exitcode", env=env)
        assert again.code == 0, again.out + again.err

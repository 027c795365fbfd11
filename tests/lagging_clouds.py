"""The four clouds with a real cloud's manners, behind one small interface, for the
consistency scenarios (tests/test_consistency.py): the fake cloud, EC2 (moto's server
behind tests/fakes/ec2_lag_proxy.py), and the local Lambda and Compute Engine servers.

Each adapter gives navarch a provider config and, on the side, counts what the cloud
holds through the cloud's own state or API, never through navarch's code; and it can
make the cloud misbehave: hide instances from listings and lookups (and make terminates
of them answer "not found"), lose the reply to the next launch, return one short
listing, stop an instance or give it a status word navarch does not know, and make a
region or zone unreadable.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from navarch_plan.providers.fake import FakeProvider
from tests.conftest import FAST_RETRY, Workdir

WINDOW = 4.0  # the consistency window every adapter's provider is configured with
AMI = "ami-0123456789abcdef0"
LAMBDA_KEY_ENV = "LAG_LAMBDA_API_KEY"


@dataclass(frozen=True)
class Instance:
    id: str
    name: str
    alive: bool  # exists and is not being (or already) torn down
    labels: dict[str, str] = field(default_factory=dict)


class FakeAdapter:
    kind = "fake"
    name = "sim"
    instance_type = "gpu_1x_a10"
    location: dict[str, str] = {"region": "us-west-1"}
    far_location: dict[str, str] = {"region": "us-east-1"}  # what `unreachable` hides
    stop_word = "stopped"
    unknown_word = "hibernating"

    def __init__(self, work: Workdir) -> None:
        self.work = work
        self.env: dict[str, str] = {}
        self.options: dict[str, Any] = {}
        self.faults: list[dict[str, Any]] = []

    def provider(self) -> dict[str, Any]:
        return {"type": "fake", "path": "state/cloud.db", "retry": FAST_RETRY,
                "consistency_window": WINDOW, **self.options,
                **({"faults": list(self.faults)} if self.faults else {})}

    def _cloud(self) -> FakeProvider:
        return FakeProvider("sim", path=self.work.cloud_path)

    def instances(self) -> list[Instance]:
        from tests.crash_harness import CloudView

        view = CloudView(self.work.cloud_path)
        return [Instance(n.id, n.name, n.status in ("provisioning", "running", "stopped",
                                                    self.unknown_word), n.labels)
                for n in view.nodes().values()]

    def hide(self, instance_id: str, seconds: float) -> None:
        self._cloud().hide(instance_id, seconds)

    def lag_new(self, seconds: float) -> None:
        self.options["visibility_lag"] = seconds

    def slow_boot(self, seconds: float) -> None:
        """New nodes take this long to run, and as long to show (as a big GPU node)."""
        self.options.update(boot_time=seconds, visibility_lag=seconds)

    def lose_next_launch_reply(self) -> None:
        self.faults.append({"op": "provision", "error": "transient", "effect": True})

    def short_next_listing(self) -> None:
        self.faults.append({"op": "list", "hide": 1})

    def set_status(self, instance_id: str, word: str) -> None:
        self._cloud().set_status(instance_id, word)

    def unreachable(self, on: bool) -> None:
        region = self.far_location["region"]
        self.faults = [f for f in self.faults if "unreachable" not in f]
        if on:
            self.faults.append({"op": "list", "unreachable": [region]})

    def reset_faults(self) -> None:
        self.faults = []


class AwsAdapter:
    kind = "aws"
    name = "aws"
    instance_type = "g5.xlarge"
    location: dict[str, str] = {"region": "us-east-1"}
    far_location: dict[str, str] = {"region": "us-west-2"}
    stop_word = "stopped"
    unknown_word = ""  # moto cannot be made to report a state EC2 does not have

    def __init__(self, moto: str, home: Path, stack: ExitStack) -> None:
        import boto3

        from tests.conftest import reset_moto
        from tests.fakes.ec2_lag_proxy import LaggingEc2, serve_lagging_ec2

        reset_moto(moto)
        self.lag = LaggingEc2(moto)
        endpoint = stack.enter_context(serve_lagging_ec2(self.lag))
        self.clients = {r: boto3.client("ec2", region_name=r, endpoint_url=moto,
                                        aws_access_key_id="testing",
                                        aws_secret_access_key="testing")
                        for r in ("us-east-1", "us-west-2")}
        self.env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                    "AWS_CONFIG_FILE": str(home / "no-aws-config"),
                    "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials")}
        self._provider = {"type": "aws", "region": "us-east-1",
                          "regions": ["us-east-1", "us-west-2"], "image_id": AMI,
                          "endpoint_url": endpoint, "retry": FAST_RETRY,
                          "consistency_window": WINDOW}

    def provider(self) -> dict[str, Any]:
        return dict(self._provider)

    def instances(self) -> list[Instance]:
        out = []
        for client in self.clients.values():
            for page in client.get_paginator("describe_instances").paginate():
                for r in page["Reservations"]:
                    for i in r["Instances"]:
                        tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
                        name = tags.pop("Name", "")
                        out.append(Instance(i["InstanceId"], name, i["State"]["Name"] in (
                            "pending", "running", "stopping", "stopped"), tags))
        return out

    def hide(self, instance_id: str, seconds: float) -> None:
        self.lag.hide(instance_id, seconds)

    def lag_new(self, seconds: float) -> None:
        self.lag.hide_new_for = seconds

    def slow_boot(self, seconds: float) -> None:
        """moto runs instances at once: EC2's pending shows in the launch reply, and the
        lag keeps the apply waiting as a slow boot would."""
        self.lag.hide_new_for = seconds

    def lose_next_launch_reply(self) -> None:
        self.lag.lose_next_launch_replies(1)

    def short_next_listing(self) -> None:
        self.lag.empty_next_describes(1)

    def set_status(self, instance_id: str, word: str) -> None:
        assert word == "stopped"
        for client in self.clients.values():
            if any(i["InstanceId"] == instance_id for r in client.describe_instances()[
                    "Reservations"] for i in r["Instances"]):
                client.stop_instances(InstanceIds=[instance_id])

    def unreachable(self, on: bool) -> None:
        regions = {self.far_location["region"]} if on else set()
        self.lag.unreachable_regions = regions

    def reset_faults(self) -> None:
        self.lag.unreachable_regions = set()


class LambdaAdapter:
    kind = "lambda"
    name = "lambda"
    instance_type = "gpu_1x_a10"
    location: dict[str, str] = {"region": "us-east-1"}
    far_location: dict[str, str] = {}  # Lambda's listing is one call: all or nothing
    stop_word = ""  # Lambda instances cannot be stopped
    unknown_word = "hibernating"

    def __init__(self, stack: ExitStack) -> None:
        from tests.fakes.lambda_server import FakeLambda, serve

        key = f"sk-lag-{uuid.uuid4().hex}"
        self.fake = FakeLambda(api_key=key)
        url = stack.enter_context(serve(self.fake))
        self.env = {LAMBDA_KEY_ENV: key}
        self._provider = {"type": "lambda", "api_key_env": LAMBDA_KEY_ENV, "base_url": url,
                          "launch_interval": 0, "retry": FAST_RETRY,
                          "consistency_window": WINDOW}

    def provider(self) -> dict[str, Any]:
        return dict(self._provider)

    def instances(self) -> list[Instance]:
        with self.fake._lock:
            found = list(self.fake.instances.values())
        return [Instance(i.id, i.name, i.status not in ("terminating", "terminated"),
                         {t["key"]: t["value"] for t in i.tags}) for i in found]

    def hide(self, instance_id: str, seconds: float) -> None:
        self.fake.hide(instance_id, seconds)

    def lag_new(self, seconds: float) -> None:
        self.fake.hide_new_for = seconds

    def slow_boot(self, seconds: float) -> None:
        self.fake.hide_new_for = seconds

    def lose_next_launch_reply(self) -> None:
        self.fake.drop_after_creating()

    def short_next_listing(self) -> None:
        self.fake.short_listings(1)

    def set_status(self, instance_id: str, word: str) -> None:
        self.fake.set_status(instance_id, word)

    def reset_faults(self) -> None:
        self.fake.faults.clear()


class GcpAdapter:
    kind = "gcp"
    name = "gcp"
    instance_type = "g2-standard-4"
    location: dict[str, str] = {"region": "us-central1", "zone": "us-central1-a"}
    far_location: dict[str, str] = {"region": "us-central1", "zone": "us-central1-b"}
    stop_word = "SUSPENDED"
    unknown_word = "HIBERNATING"

    def __init__(self, stack: ExitStack) -> None:
        from tests.fakes.gce_server import FakeGce, serve

        self.fake = FakeGce(project="lag-project")
        endpoint = stack.enter_context(serve(self.fake))
        self.env: dict[str, str] = {}
        self._provider = {"type": "gcp", "project": "lag-project", "endpoint": endpoint,
                          "credentials": "anonymous", "retry": FAST_RETRY,
                          "consistency_window": WINDOW}

    def provider(self) -> dict[str, Any]:
        return dict(self._provider)

    def instances(self) -> list[Instance]:
        with self.fake._lock:
            found = [dict(i) for i in self.fake.instances.values()]
        return [Instance(f"{i['zone'].rsplit('/', 1)[-1]}/{i['name']}", i["name"], True,
                         dict(i["labels"])) for i in found]

    def hide(self, instance_id: str, seconds: float) -> None:
        zone, name = instance_id.split("/")
        self.fake.hide(zone, name, seconds)

    def lag_new(self, seconds: float) -> None:
        self.fake.hide_new_for = seconds

    def slow_boot(self, seconds: float) -> None:
        self.fake.boot_for = seconds

    def lose_next_launch_reply(self) -> None:
        """The insert happens; its reply does not come back (a 503 after the effect)."""
        self.fake.fail_next(503, "backend error", "backendError", method="POST",
                            path_contains="/instances", after_effect=True)

    def short_next_listing(self) -> None:
        self.fake.hide_new_for = 0.0
        with self.fake._lock:
            keys = list(self.fake.instances)
        for zone, name in keys:
            self.fake.hide(zone, name, 0.3)

    def set_status(self, instance_id: str, word: str) -> None:
        zone, name = instance_id.split("/")
        self.fake.set_status(zone, name, word)

    def unreachable(self, on: bool) -> None:
        zone = self.far_location["zone"]
        self.fake.unreachable_zones = {zone} if on else set()

    def reset_faults(self) -> None:
        self.fake.unreachable_zones = set()


Adapter = FakeAdapter | AwsAdapter | LambdaAdapter | GcpAdapter


def adapter(kind: str, work: Workdir, stack: ExitStack, request: Any) -> Iterator[Adapter]:
    if kind == "fake":
        yield FakeAdapter(work)
    elif kind == "aws":
        request.getfixturevalue("aws_credentials")
        yield AwsAdapter(request.getfixturevalue("moto_endpoint"), work.path, stack)
    elif kind == "lambda":
        yield LambdaAdapter(stack)
    elif kind == "gcp":
        yield GcpAdapter(stack)
    else:
        raise ValueError(kind)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"

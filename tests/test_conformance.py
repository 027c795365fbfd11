"""The provider conformance suite (navarch_plan.testing) run by our four providers, each
with its real client code against the local server its own tests use."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import moto.settings
import pytest
from google.auth.credentials import AnonymousCredentials

from navarch_plan.errors import CapacityError
from navarch_plan.model import ProvisionRequest
from navarch_plan.providers.aws import AwsProvider
from navarch_plan.providers.fake import FakeProvider
from navarch_plan.providers.gcp import GcpProvider
from navarch_plan.providers.lambda_ import LambdaProvider
from navarch_plan.testing import (
    CapacityHook,
    ConsistencyScenarios,
    ProviderConformance,
    RequestFactory,
)
from tests.conftest import OPS_KEY
from tests.fakes.gce_server import FakeGce, HttpError
from tests.fakes.gce_server import serve as serve_gce
from tests.fakes.lambda_server import FakeLambda
from tests.fakes.lambda_server import serve as serve_lambda
from tests.fakes.moto_server import AMI, Recorder, error_response

# -- fake --------------------------------------------------------------------------------


class FakeFixtures:
    @pytest.fixture
    def provider(self) -> FakeProvider:
        return FakeProvider("sim", capacity={"gpu_1x_a10": 3})

    @pytest.fixture
    def request_factory(self) -> RequestFactory:
        return lambda name, labels: ProvisionRequest(
            name=name, instance_type="gpu_1x_a10", region="us-west-1",
            ssh_key_names=("ops",), labels=labels)

    @pytest.fixture
    def capacity_exhausted(self, provider: FakeProvider) -> CapacityHook:
        """Capacity runs out the way it does in a cloud: other instances take it."""
        @contextmanager
        def exhausted(req: ProvisionRequest) -> Iterator[None]:
            fillers: list[str] = []
            try:
                for i in range(100):
                    try:
                        fillers.append(provider.provision(
                            replace(req, name=f"filler-{i}", labels={})).id)
                    except CapacityError:
                        break
                yield
            finally:
                for node_id in fillers:
                    provider.terminate(node_id)
        return exhausted


class TestFakeConformance(FakeFixtures, ProviderConformance):
    pass


class TestFakeUnderLag(FakeFixtures, ConsistencyScenarios):
    pass


# -- Lambda Cloud ----------------------------------------------------------------------------


class LambdaFixtures:
    @pytest.fixture
    def cloud(self) -> FakeLambda:
        # A fresh key per test: a key one test leaks into output is never another's.
        return FakeLambda(api_key=f"sk-conformance-{uuid.uuid4().hex}")

    @pytest.fixture
    def provider(self, cloud: FakeLambda) -> Iterator[LambdaProvider]:
        with serve_lambda(cloud) as url, LambdaProvider(
                "lambda", cloud.api_key, base_url=url, launch_interval=0,
                backoff_base=0.001) as p:
            yield p

    @pytest.fixture
    def request_factory(self) -> RequestFactory:
        return lambda name, labels: ProvisionRequest(
            name=name, instance_type="gpu_1x_a10", region="us-west-1",
            ssh_key_names=("ops-team",), labels=labels)

    @pytest.fixture
    def capacity_exhausted(self, cloud: FakeLambda) -> CapacityHook:
        """The fake's own per (type, region) capacity, set to none left."""
        @contextmanager
        def exhausted(req: ProvisionRequest) -> Iterator[None]:
            key = (req.instance_type, req.region)
            cloud.capacity[key] = 0
            try:
                yield
            finally:
                del cloud.capacity[key]
        return exhausted


class TestLambdaConformance(LambdaFixtures, ProviderConformance):
    pass


class TestLambdaUnderLag(LambdaFixtures, ConsistencyScenarios):
    pass


# -- Compute Engine --------------------------------------------------------------------------


@dataclass
class StrictGce(FakeGce):
    """FakeGce that refuses machine types it does not have, as Compute Engine does (a 400
    `invalid` naming the machine type); FakeGce itself accepts any well-formed name."""

    machine_types: frozenset[str] = frozenset(
        {"g2-standard-4", "a3-highgpu-8g", "n1-standard-1", "n1-standard-8"})

    def _validate(self, zone: str, body: dict[str, Any]) -> str:
        name = super()._validate(zone, body)
        machine = body["machineType"].rsplit("/", 1)[-1]
        if machine not in self.machine_types:
            raise HttpError(400, f"Invalid value for field 'resource.machineType': "
                            f"'{body['machineType']}'. Machine type with name '{machine}' "
                            f"does not exist in zone '{zone}'.", "invalid")
        return name


class GcpFixtures:
    @pytest.fixture
    def cloud(self) -> StrictGce:
        return StrictGce(project="conformance-project")

    @pytest.fixture
    def provider(self, cloud: StrictGce) -> Iterator[GcpProvider]:
        with serve_gce(cloud) as url:
            yield GcpProvider("gcp", cloud.project, endpoint=url,
                              credentials=AnonymousCredentials(), poll_interval=0)

    @pytest.fixture
    def request_factory(self) -> RequestFactory:
        return lambda name, labels: ProvisionRequest(
            name=name, instance_type="g2-standard-4", region="us-central1",
            zone="us-central1-a", ssh_key_names=("ops-team",), labels=labels,
            # GCE installs keys from their text (ssh-keys metadata), never by name.
            ssh_public_keys={"ops-team": OPS_KEY})

    @pytest.fixture
    def capacity_exhausted(self, cloud: StrictGce) -> CapacityHook:
        """A zone stock-out: the insert operation ends in ZONE_RESOURCE_POOL_EXHAUSTED."""
        @contextmanager
        def exhausted(req: ProvisionRequest) -> Iterator[None]:
            cloud.stockout_zones.add(req.zone)
            try:
                yield
            finally:
                cloud.stockout_zones.discard(req.zone)
        return exhausted


class TestGcpConformance(GcpFixtures, ProviderConformance):
    pass


class TestGcpUnderLag(GcpFixtures, ConsistencyScenarios):
    pass


# -- EC2 -------------------------------------------------------------------------------------


class AwsFixtures:
    @pytest.fixture(autouse=True)
    def _aws_env(self, monkeypatch: pytest.MonkeyPatch, aws_credentials: None) -> None:
        # moto's own switch (MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION, read at its import):
        # refuse unknown instance types like EC2 does, instead of launching anything.
        monkeypatch.setattr(moto.settings, "EC2_ENABLE_INSTANCE_TYPE_VALIDATION", True)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

    @pytest.fixture
    def provider(self, moto_endpoint: str) -> AwsProvider:
        p = AwsProvider("aws", "us-east-1", image_id=AMI, key_name="ops",
                        endpoint_url=moto_endpoint)
        p.launch_lookup_delay = 0.0
        return p

    @pytest.fixture
    def request_factory(self) -> RequestFactory:
        return lambda name, labels: ProvisionRequest(
            name=name, instance_type="g5.xlarge", region="us-east-1", labels=labels)

    @pytest.fixture
    def capacity_exhausted(self, provider: AwsProvider) -> CapacityHook:
        """EC2's stock-out answer (HTTP 500 InsufficientInstanceCapacity), injected on the
        provider's launch client as tests/test_provider_aws.py does."""
        @contextmanager
        def exhausted(req: ProvisionRequest) -> Iterator[None]:
            events = provider.launch_client(req.region).meta.events
            event = "before-send.ec2.RunInstances"
            refuse = Recorder(error_response(500, "InsufficientInstanceCapacity",
                                             "We currently do not have sufficient capacity."))
            events.register(event, refuse)
            try:
                yield
            finally:
                events.unregister(event, refuse)
            assert refuse.calls >= 1, "the launch never reached the injected stock-out"
        return exhausted


class TestAwsConformance(AwsFixtures, ProviderConformance):
    pass


class TestAwsUnderLag(AwsFixtures, ConsistencyScenarios):
    @pytest.fixture
    def provider(self, moto_endpoint: str) -> Iterator[AwsProvider]:
        """Through the lagging proxy, which keeps EC2's ClientToken promise that moto
        itself does not (the lag here comes from LaggingProvider)."""
        from tests.conftest import reset_moto
        from tests.fakes.ec2_lag_proxy import LaggingEc2, serve_lagging_ec2

        reset_moto(moto_endpoint)
        with serve_lagging_ec2(LaggingEc2(moto_endpoint)) as url:
            p = AwsProvider("aws", "us-east-1", image_id=AMI, key_name="ops",
                            endpoint_url=url)
            p.launch_lookup_delay = 0.0
            yield p


# -- the suite itself ------------------------------------------------------------------------

# Providers that break one rule each, and a correct one without a capacity hook, run by the
# suite in a child pytest: each broken rule must fail its test, and a capacity gap must fail
# unless declared (then it passes with a ConformanceGap warning, never a skip).
SELF_CHECK = '''
import pytest
from navarch_plan.errors import NotFoundError, TransientError
from navarch_plan.model import Node, ProvisionRequest
from navarch_plan.providers.fake import FakeProvider
from navarch_plan.testing import ProviderConformance


class Plain:  # Provider only: no get(), no list_instance_types()
    def __init__(self):
        self.inner, self.name = FakeProvider("p"), "p"
    def provision(self, req):
        return self.inner.provision(req)
    def terminate(self, node_id):
        self.inner.terminate(node_id)
    def list(self):
        return self.inner.list()


class StrictTerminate(Plain):
    def terminate(self, node_id):
        if node_id not in {n.id for n in self.inner.list()}:
            raise NotFoundError("no such instance", provider="p")
        self.inner.terminate(node_id)


class DropsALabel(Plain):
    def list(self):
        return [Node(**{**n.__dict__, "labels": {k: v for k, v in n.labels.items()
                                                 if k != "team"}}) for n in self.inner.list()]


class RetryableTypeError(Plain):
    def provision(self, req):
        if req.instance_type != "gpu_1x_a10":
            raise TransientError("try again", provider="p")
        return self.inner.provision(req)


class Base(ProviderConformance):
    supports_get = supports_instance_types = False
    capacity_unsupported_reason = "these wrappers have no capacity limit to exhaust"

    @pytest.fixture
    def request_factory(self):
        return lambda name, labels: ProvisionRequest(
            name=name, instance_type="gpu_1x_a10", region="us-west-1", labels=labels)


class TestDeclaredGap(Base):
    @pytest.fixture
    def provider(self):
        return Plain()


class TestUndeclaredGap(TestDeclaredGap):
    capacity_unsupported_reason = ""


class TestClaimsGet(TestDeclaredGap):
    supports_get = True


class TestStrictTerminate(Base):
    @pytest.fixture
    def provider(self):
        return StrictTerminate()


class TestDropsALabel(Base):
    @pytest.fixture
    def provider(self):
        return DropsALabel()


class TestRetryableTypeError(Base):
    @pytest.fixture
    def provider(self):
        return RetryableTypeError()
'''


def test_the_suite_fails_broken_providers_and_never_skips(tmp_path: Path) -> None:
    (tmp_path / "test_self_check.py").write_text(SELF_CHECK)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", "--tb=no",
         "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    outcomes = {}
    for line in proc.stdout.splitlines():
        word, _, test = line.partition(" ")
        if word in ("PASSED", "FAILED", "SKIPPED", "ERROR"):
            outcomes[test.split("::", 1)[1].split(" ")[0]] = word
    failed = {t for t, word in outcomes.items() if word != "PASSED"}
    assert failed == {
        "TestUndeclaredGap::test_capacity_error",
        "TestClaimsGet::test_implements_the_protocols",
        "TestClaimsGet::test_get_finds_the_node",
        "TestStrictTerminate::test_terminate_is_idempotent",
        "TestDropsALabel::test_list_shows_the_node_with_its_labels",
        "TestRetryableTypeError::test_invalid_instance_type",
    }, proc.stdout + proc.stderr
    assert "SKIPPED" not in outcomes.values()
    tests = [n for n in dir(ProviderConformance) if n.startswith("test_")]
    assert len(outcomes) == 6 * len(tests) == 66, proc.stdout
    assert "ConformanceGap: TestDeclaredGap: capacity errors not checked" in proc.stdout


def test_importing_the_suite_does_not_import_pytest() -> None:
    probe = ("import sys, navarch_plan.testing; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"

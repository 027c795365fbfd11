"""ExampleProvider against navarch's provider conformance suite, on both of ExampleCloud's
backends, plus the plugin's own option checking and its entry point."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from navarch_example_provider import ExampleCloud, ExampleProvider

from navarch_plan.errors import AuthError, ConfigError
from navarch_plan.model import NodeStatus, ProvisionRequest
from navarch_plan.providers.base import BuildContext, ProviderType
from navarch_plan.providers.registry import provider_type
from navarch_plan.testing import (
    CapacityHook,
    ConsistencyScenarios,
    ProviderConformance,
    RequestFactory,
)


class TestExampleInMemory(ProviderConformance):
    @pytest.fixture
    def cloud(self) -> ExampleCloud:
        return ExampleCloud()

    @pytest.fixture
    def provider(self, cloud: ExampleCloud) -> ExampleProvider:
        return ExampleProvider("example", cloud)

    @pytest.fixture
    def request_factory(self) -> RequestFactory:
        return lambda name, labels: ProvisionRequest(
            name=name, instance_type="ex-l4-1", region="north-1", labels=labels)

    @pytest.fixture
    def capacity_exhausted(self, cloud: ExampleCloud) -> CapacityHook:
        """ExampleCloud's per-type capacity, set to what is already in use."""
        @contextmanager
        def exhausted(req: ProvisionRequest) -> Iterator[None]:
            in_use = sum(i["type"] == req.instance_type for i in cloud.all())
            cloud.capacity[req.instance_type] = in_use
            try:
                yield
            finally:
                del cloud.capacity[req.instance_type]
        return exhausted


class TestExampleOnFile(TestExampleInMemory):
    """The same suite with the cloud in a JSON file, as `navarch` runs use it."""

    @pytest.fixture
    def cloud(self, tmp_path: Path) -> ExampleCloud:
        return ExampleCloud(path=str(tmp_path / "cloud.json"))


class TestExampleUnderLag(ConsistencyScenarios):
    """The scenarios of a lagging cloud, through navarch's own engine."""

    @pytest.fixture
    def provider(self) -> ExampleProvider:
        return ExampleProvider("example", ExampleCloud())

    @pytest.fixture
    def request_factory(self) -> RequestFactory:
        return lambda name, labels: ProvisionRequest(
            name=name, instance_type="ex-l4-1", region="north-1", labels=labels)


def test_two_providers_on_one_file_see_the_same_cloud(tmp_path: Path) -> None:
    path = str(tmp_path / "cloud.json")
    first = ExampleProvider("a", ExampleCloud(path=path, boot_seconds=3600))
    node = first.provision(ProvisionRequest(name="n", instance_type="ex-h100-8",
                                            region="south-1", labels={"team": "ml"}))
    assert (node.status, node.ip_address, node.gpu_count) == (NodeStatus.PROVISIONING, "", 8)
    second = ExampleProvider("b", ExampleCloud(path=path))
    second.cloud.set_status(node.id, "degraded")
    assert [(n.id, n.status, n.provider) for n in first.list()] == [
        (node.id, NodeStatus.UNHEALTHY, "a")]


def test_from_config_checks_its_own_options() -> None:
    built = ExampleProvider.from_config("ex", {"type": "example", "capacity": {"ex-l4-1": 1}},
                                        env={})
    assert built.name == "ex" and built.cloud.capacity == {"ex-l4-1": 1}
    with pytest.raises(ConfigError, match="unknown option.*colour"):
        ExampleProvider.from_config("ex", {"type": "example", "colour": "blue"}, env={})
    with pytest.raises(ConfigError, match="boot_seconds"):
        ExampleProvider.from_config("ex", {"type": "example", "boot_seconds": "soon"}, env={})
    with pytest.raises(AuthError, match="EXAMPLE_TOKEN"):
        ExampleProvider.from_config("ex", {"type": "example", "token_env": "EXAMPLE_TOKEN"},
                                    env={})


def test_entry_point_resolves_to_a_provider_type() -> None:
    """The plugin registers its class; navarch makes it a ProviderType that builds it."""
    kind = provider_type("example")
    assert isinstance(kind, ProviderType) and kind.name == "example"
    built = kind.build("ex", {"capacity": {"ex-l4-1": 2}}, {}, BuildContext())
    assert isinstance(built, ExampleProvider) and built.cloud.capacity == {"ex-l4-1": 2}

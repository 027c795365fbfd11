"""ExampleProvider against navarch's provider conformance suite, on both of ExampleCloud's
backends, plus the plugin's own option checking and its entry point."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from navarch_example_provider import ExampleCloud, ExampleProvider

from navarch_plan.config import parse_config
from navarch_plan.engine import Engine
from navarch_plan.errors import AuthError, ConfigError
from navarch_plan.model import NodeStatus, ProvisionRequest
from navarch_plan.providers.base import BuildContext, ProviderType
from navarch_plan.providers.declared import type_from_class
from navarch_plan.providers.registry import builtin_types, provider_type
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


# -- through the `navarch` command ------------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def navarch(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `navarch` command, as a user runs it, in `folder`."""
    exe = shutil.which("navarch")
    argv = [exe] if exe else [sys.executable, "-m", "navarch_plan"]
    return subprocess.run([*argv, *args], cwd=folder, capture_output=True, text=True,
                          timeout=120)


def readme_config() -> str:
    """The README's "Use it" config, as written there."""
    (block,) = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)
    return block


def test_readme_config_validates(tmp_path: Path) -> None:
    (tmp_path / "navarch.yaml").write_text(readme_config())
    result = navarch(tmp_path, "validate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("The configuration is valid: 3 nodes"), result.stdout


def test_an_option_typo_is_one_line_at_its_place(tmp_path: Path) -> None:
    """`capcity:` is refused by validate (offline), at its line and column, as the README
    promises; plan says the same, without touching the cloud."""
    text = readme_config().replace("capacity:", "capcity:")
    (tmp_path / "navarch.yaml").write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "capcity" in row)
    expected = (f"Error: navarch.yaml:{line}:5: providers.ex.capcity: unknown key 'capcity' "
                "(did you mean 'capacity'?)")
    for command in ("validate", "plan"):
        result = navarch(tmp_path, command)
        assert result.returncode == 1 and result.stderr.strip() == expected, result.stderr
    assert not (tmp_path / "state").exists()


class SchemalessProvider(ExampleProvider):
    """The older contract: no options_schema, so only from_config checks the options."""

    options_schema = None


def test_a_schemaless_types_own_check_names_the_providers_line() -> None:
    types = {**builtin_types(), "bare": type_from_class("bare", SchemalessProvider)}
    text = ("version: 1\nworkspace: w\nproviders:\n  sim: {type: fake}\n"
            "  ex: {type: bare, colour: blue}\n"
            "pools:\n  p: {provider: ex, instance_type: ex-l4-1, region: north-1, nodes: 1}\n")
    config = parse_config(text, "navarch.yaml", {}, ".", types)  # any keys pass the schema
    with pytest.raises(ConfigError) as error:
        Engine(config, env={}, types=types).providers  # noqa: B018 (built on first use)
    assert str(error.value) == ("navarch.yaml:5:3: providers.ex: unknown option colour for "
                                "an example provider (known: boot_seconds, capacity, path, "
                                "token_env)")

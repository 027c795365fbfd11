"""Provider types own their rules: options (schema), label rules and launch checks are
declared once per type, and the config's schema and load-time checks come from them, for
built-ins and plugins alike."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from navarch_plan.config import parse_config
from navarch_plan.config.schema import config_schema
from navarch_plan.errors import ConfigError
from navarch_plan.model import RateLimit
from navarch_plan.providers.base import (
    BuildContext,
    LabelRules,
    NodeFacts,
    NodeProblem,
    Provider,
    ProviderType,
)
from navarch_plan.providers.declared import DeclaredType
from navarch_plan.providers.fake import FakeProvider
from navarch_plan.providers.registry import builtin_types
from navarch_plan.schemas import schema_path


def test_the_published_schema_is_generated_from_the_types() -> None:
    published = json.loads(schema_path("navarch").read_text())
    assert published == config_schema(builtin_types()), (
        "schemas/navarch.schema.json is stale: rewrite it with "
        "python -m navarch_plan.schemas")


def test_every_built_in_is_a_provider_type_with_its_options_declared() -> None:
    for name, kind in builtin_types().items():
        assert isinstance(kind, ProviderType), name
        assert kind.options_schema is not None, f"{name} declares its options"


def config(provider: str, pool: str) -> str:
    return (f"version: 1\nworkspace: t\nproviders:\n  c: {provider}\n"
            f"pools:\n  w: {{provider: c, nodes: 1, {pool}}}\n")


@pytest.mark.parametrize(("kind", "key", "value", "words"), [
    ("gcp", "Team", "ml", "Compute Engine's label rules"),
    ("gcp", "team", "ML", "Compute Engine's label rules"),
    ("gcp", "t" * 64, "ml", "Compute Engine's label rules"),
    ("gcp", "goog-team", "ml", "not with 'goog-'"),
    ("aws", "aws:team", "ml", "EC2's tag rules"),
    ("aws", "team", "v" * 257, "EC2's tag rules"),
    ("lambda", "Team", "ml", "Lambda Cloud's tag rules"),
    ("lambda", "team", "v" * 129, "Lambda Cloud's tag rules"),
])
def test_each_cloud_declares_the_labels_it_refuses(kind: str, key: str, value: str,
                                                   words: str) -> None:
    """The config's own label rule is the portable one (what every cloud accepts); each
    type declares its cloud's, which a plugin's type uses to refuse at load."""
    rules = builtin_types()[kind].label_rules
    assert rules is not None and words in (rules.problem(key, value) or "")
    assert rules.problem("team", "ml-ops_1") is None


# -- a plugin's own type ------------------------------------------------------------------

def _needs_an_image_per_region(options: Mapping[str, Any], node: NodeFacts
                               ) -> Iterator[NodeProblem]:
    if node.region not in options.get("images", {}):
        yield NodeProblem(f"no image for {node.region}", option=f"images.{node.region}")


def _build(name: str, options: Mapping[str, Any], env: Mapping[str, str],
           context: BuildContext) -> Provider:
    return FakeProvider(name)


ACME = DeclaredType(
    name="acme", title="Acme GPU", factory=_build,
    options_schema={"required": ["images"],
                    "properties": {"images": {"type": "object",
                                              "additionalProperties": {"type": "string"}},
                                   "disk_gb": {"type": "integer", "minimum": 10}}},
    launch_options=frozenset({"disk_gb"}),
    label_rules=LabelRules(key_pattern=r"[a-z]+", max_key=8, max_value=8,
                           words="Acme's label rules (a-z, at most 8)"),
    rate_limit=RateLimit(launches_per_second=0.5),
    node_checks=(_needs_an_image_per_region,))
TYPES = {**builtin_types(), "acme": ACME}


def acme(options: str, pool: str = "instance_type: big, region: north") -> str:
    return config("{type: acme, " + options + "}", pool)


def test_a_plugin_type_gets_its_options_checked_by_the_schema() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(acme("images: {north: i-1}, colour: blue"), "navarch.yaml", {}, ".",
                     TYPES)
    assert info.value.path == "providers.c.colour" and "unknown key 'colour'" in str(info.value)
    with pytest.raises(ConfigError, match="'images' is a required property"):
        parse_config(acme("colour: blue").replace("colour: blue", ""), "navarch.yaml", {},
                     ".", TYPES)


def test_a_plugin_type_gets_navarchs_shared_options_and_its_own_checks() -> None:
    good = parse_config(acme("images: {north: i-1}, rate_limit: {calls_per_second: 3}"),
                        "navarch.yaml", {}, ".", TYPES)
    assert [p.region for p in good.desired["pool.w[0]"].candidates] == ["north"]
    with pytest.raises(ConfigError) as info:
        parse_config(acme("images: {south: i-1}"), "navarch.yaml", {}, ".", TYPES)
    assert info.value.path == "providers.c.images.north" and "no image for north" in str(
        info.value)
    with pytest.raises(ConfigError) as info:
        parse_config(acme("images: {north: i-1}", "instance_type: big, region: north, "
                          "labels: {team: toolongvalue}"), "navarch.yaml", {}, ".", TYPES)
    assert info.value.path == "pools.w.labels.team" and "Acme's label rules" in str(info.value)
    text = acme("images: {north: i-1}") + "defaults: {labels: {team: toolongvalue}}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "navarch.yaml", {}, ".", TYPES)
    assert info.value.path == "defaults.labels.team" and "navarch.yaml:7:" in str(info.value)


def test_without_the_plugin_its_type_is_unknown() -> None:
    with pytest.raises(ConfigError, match="unknown provider type 'acme'"):
        parse_config(acme("images: {north: i-1}"), "navarch.yaml", {})


def test_a_pool_overrides_its_providers_launch_options_and_they_are_its_spec() -> None:
    plain = parse_config(acme("images: {north: i-1}, disk_gb: 50"), "navarch.yaml", {}, ".",
                         TYPES).desired["pool.w[0]"]
    assert "launch" not in plain.spec, "no overrides: the spec (and hash) as before"
    text = acme("images: {north: i-1}", "instance_type: big, region: north, "
                "launch: {disk_gb: 500}")
    node = parse_config(text, "navarch.yaml", {}, ".", TYPES).desired["pool.w[0]"]
    assert node.candidates[0].launch == {"disk_gb": 500}
    assert node.spec["launch"] == {"disk_gb": 500} and node.spec_hash != plain.spec_hash


@pytest.mark.parametrize(("launch", "where", "words"), [
    ("{colour: blue}", "pools.w.launch.colour",
     "'colour' is not a launch option of Acme GPU provider 'c' (a pool may set: disk_gb)"),
    ("{disk_gb: 5}", "pools.w.launch.disk_gb", "5 is less than the minimum of 10"),
])
def test_a_launch_option_the_type_does_not_allow_is_one_clear_error(launch: str, where: str,
                                                                    words: str) -> None:
    text = acme("images: {north: i-1}", f"instance_type: big, region: north, launch: {launch}")
    with pytest.raises(ConfigError) as info:
        parse_config(text, "navarch.yaml", {}, ".", TYPES)
    assert info.value.path == where and words in str(info.value), str(info.value)
    assert "navarch.yaml:6:" in str(info.value)

"""A third-party provider through the `navarch` command (its main(), in this process): the
example plugin in examples/plugin, found through its `navarch_plan.providers` entry point.

CI installs it (`pip install -e examples/plugin`); without it these tests fail, saying so.
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from typing import Any

import pytest

from navarch_plan.model import LABEL_ADDRESS, LABEL_WORKSPACE
from navarch_plan.providers.registry import provider_types
from tests.conftest import Workdir

CLOUD = "state/example-cloud.json"  # relative to the working directory navarch runs in


def require_plugin() -> None:
    if "example" not in {ep.name for ep in entry_points(group="navarch_plan.providers")}:
        pytest.fail("the example provider plugin is not installed; install it with: "
                    "pip install -e examples/plugin", pytrace=False)


def example_config(work: Workdir, provider: str = "{type: example, path: " + CLOUD + "}",
                   pools: str = "") -> None:
    work.write(f"""\
        version: 1
        workspace: plug
        providers:
          ex: {provider}
        defaults:
          ssh_keys: [ops]
          labels: {{team: ml}}
        pools:
          workers: {{provider: ex, instance_type: ex-l4-1, region: north-1, nodes: 2}}
        {pools}
        nodes:
          box: {{provider: ex, instance_type: ex-h100-8, region: south-1}}
        """)


def cloud_instances(work: Workdir) -> list[dict[str, Any]]:
    """What the example cloud holds, read straight from its file (its "console")."""
    path = work.path / CLOUD
    return list(json.loads(path.read_text()).values()) if path.exists() else []


def one_line_error(result: Any) -> str:
    assert result.code == 1, result.out + result.err
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


def test_plugin_type_plans_applies_and_destroys(work: Workdir) -> None:
    require_plugin()
    from navarch_example_provider import ExampleCloud, ExampleProvider

    example_config(work)
    validated = work.cli("validate")
    assert validated.code == 0, validated.err
    plan = work.cli("plan")
    assert plan.code == 0, plan.err
    assert "Plan: 3 to add, 0 to replace, 0 to destroy." in plan.out
    assert "+ node.box  create (missing)  ex/south-1  ex-h100-8" in plan.out
    assert "(+$22.70/h)" in plan.out  # 2 x 0.60 + 21.50, from the plugin's price list
    assert cloud_instances(work) == [], "plan must not create anything"

    applied = work.cli("apply", "--auto-approve")
    assert applied.code == 0, applied.err
    assert "Apply complete! Nodes: 3 added" in applied.out
    by_address = {i["tags"][LABEL_ADDRESS]: i for i in cloud_instances(work)}
    assert sorted(by_address) == ["n_box", "p_workers_0", "p_workers_1"]
    assert all(i["tags"][LABEL_WORKSPACE] == "plug" and i["tags"]["team"] == "ml"
               for i in by_address.values())
    state = work.state("plug")["nodes"]
    assert {a: r["id"] for a, r in state.items()} == {
        "node.box": by_address["n_box"]["id"],
        "pool.workers[0]": by_address["p_workers_0"]["id"],
        "pool.workers[1]": by_address["p_workers_1"]["id"]}
    # The same cloud from Python, through the plugin's own provider.
    listed = ExampleProvider("ex", ExampleCloud(path=str(work.path / CLOUD))).list()
    assert {n.id for n in listed} == {r["id"] for r in state.values()}
    assert {n.status.value for n in listed} == {"running"}

    again = work.cli("plan", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    assert "No changes." in again.out

    destroyed = work.cli("destroy", "--auto-approve")
    assert destroyed.code == 0, destroyed.err
    assert "3 destroyed" in destroyed.out
    assert cloud_instances(work) == []
    assert work.state("plug")["nodes"] == {}


def test_plugin_capacity_error_fails_only_what_it_hits(work: Workdir) -> None:
    require_plugin()
    example_config(work, provider="{type: example, path: " + CLOUD + ", capacity: {ex-h100-8: 1}}",
                   pools="  big: {provider: ex, instance_type: ex-h100-8, region: north-1, "
                         "nodes: 1}")
    applied = work.cli("apply", "--auto-approve")
    assert applied.code == 1, applied.out + applied.err
    assert "3 added" in applied.out and "1 failed" in applied.out
    assert "sold out" in applied.out and "(sold-out)" in applied.out  # message and code
    assert len(cloud_instances(work)) == 3
    assert work.cli("destroy", "--auto-approve").code == 0
    assert cloud_instances(work) == []


def test_plugin_checks_its_own_options(work: Workdir) -> None:
    require_plugin()
    example_config(work, provider="{type: example, colour: blue}")
    # Its options_schema is part of the config's: validate refuses the key where it is.
    for command in ("validate", "plan"):
        line = one_line_error(work.cli(command))
        assert line == "Error: navarch.yaml:4:23: providers.ex.colour: unknown key 'colour'"


def test_unknown_provider_type_is_one_clear_line(work: Workdir) -> None:
    example_config(work, provider="{type: examplee, path: " + CLOUD + "}")
    line = one_line_error(work.cli("plan"))
    known = ", ".join(sorted(provider_types()))  # built-ins and installed plugins
    assert line == (f"Error: navarch.yaml:4:8: providers.ex.type: unknown provider type "
                    f"'examplee' (did you mean 'example'?) (known: {known})")
    assert not (work.path / "state" / "plug.json").exists()

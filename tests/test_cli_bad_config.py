"""Bad configs through the CLI: exit 1, one line naming file:line:column, no traceback,
and state left exactly as it was."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import Workdir

GOOD_HEAD = """\
version: 1
workspace: test
providers:
  sim: {type: fake, path: state/cloud.db}
"""

POOL = "pools:\n  w: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: 1}\n"

# (name, config text, expected line:column, a fragment of the message)
CASES = [
    ("yaml syntax", GOOD_HEAD + "pools: [unclosed\n", "6:1", "invalid YAML"),
    ("tab indent", GOOD_HEAD + "pools:\n\tw: {}\n", "6:1", "invalid YAML"),
    ("empty file", "", "1:1", "empty"),
    ("not a mapping", "- 1\n- 2\n", "1:1", "must be a mapping"),
    ("wrong version", GOOD_HEAD.replace("version: 1", "version: 2"), "1:1", "must be 1"),
    ("missing version", "workspace: x\n", "1:1", "'version' is a required property"),
    ("unknown top key", GOOD_HEAD + "pool:\n  w: {}\n", "5:1", "unknown key 'pool'"),
    ("unknown pool key", GOOD_HEAD + POOL.replace("nodes: 1", "nodes: 1, count: 2"), "6:78",
     "unknown key 'count'"),
    ("duplicate key", GOOD_HEAD + POOL + "  w: {provider: sim, nodes: 2}\n", "7:3",
     "duplicate key 'w'"),
    ("negative count", GOOD_HEAD + POOL.replace("nodes: 1", "nodes: -1"), "6:68",
     "less than the minimum"),
    ("huge count", GOOD_HEAD + POOL.replace("nodes: 1", "nodes: 100000000"), "6:68",
     "greater than the maximum"),
    ("count is a string", GOOD_HEAD + POOL.replace("nodes: 1", "nodes: many"), "6:68",
     "is not of type 'integer'"),
    ("unknown provider", GOOD_HEAD + POOL.replace("provider: sim", "provider: aws"), "6:7",
     "unknown provider 'aws'"),
    ("unknown provider type", GOOD_HEAD.replace("type: fake", "type: azure"), "4:9",
     "unknown provider type 'azure'"),
    ("bad fake option", GOOD_HEAD.replace("path:", "latency: fast, path:"), "4:21",
     "is not of type 'number'"),
    ("bad pool name", GOOD_HEAD + POOL.replace("  w:", "  Workers:"), "6:3", "invalid name"),
    ("reserved label", GOOD_HEAD + POOL.replace("nodes: 1", "nodes: 1, labels: {navarch-x: y}"),
     "6:87", "reserved"),
    ("label value", GOOD_HEAD + POOL.replace("nodes: 1", "nodes: 1, labels: {team: ML Ops}"),
     "6:87", "'ML Ops' is not valid (label values: lowercase letters, digits, '_' and '-', "
     "at most 63 characters)"),
    ("depends on unknown", GOOD_HEAD + POOL.replace("nodes: 1", "nodes: 1, depends_on: [db]"),
     "6:91", "unknown pool or node 'db'"),
    ("cycle", GOOD_HEAD + "pools:\n"
     "  a: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: 1, "
     "depends_on: [b]}\n"
     "  b: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: 1, "
     "depends_on: [a]}\n",
     "7:78", "dependency cycle: a -> b -> a"),
    ("self reference", GOOD_HEAD + "pools:\n  a: {provider: sim, instance_type: gpu_1x_a10, "
     "region: us-west-1, nodes: 1, user_data: '#!/bin/sh ${pools.a.nodes[0].ip_address}'}\n",
     "6:78", "a cannot refer to itself"),
    ("ref out of range", GOOD_HEAD + POOL + "  t: {provider: sim, instance_type: gpu_1x_a10, "
     "region: us-west-1, nodes: 1, user_data: '#!/bin/sh ${pools.w.nodes[3].ip_address}'}\n",
     "7:78", "w has 1 node\n"),
    ("ref bad field", GOOD_HEAD + POOL + "  t: {provider: sim, instance_type: gpu_1x_a10, "
     "region: us-west-1, nodes: 1, user_data: '#!/bin/sh ${pools.w.nodes[0].password}'}\n",
     "7:78", "unknown field 'password'"),
    ("unset env", GOOD_HEAD + POOL.replace("region: us-west-1", "region: '${NAVARCH_NO_SUCH}'"),
     "6:57", "NAVARCH_NO_SUCH is not set"),
    ("no region", GOOD_HEAD + POOL.replace("region: us-west-1, ", ""), "6:3",
     "region is required"),
    ("no instance type", GOOD_HEAD + POOL.replace("instance_type: gpu_1x_a10, ", ""), "6:3",
     "instance_type is required"),
    ("abstract type unmapped", GOOD_HEAD + POOL.replace("gpu_1x_a10", "l4-1x").replace(
        "type: fake", "type: fake"), None, None),
    ("bad gpu spec", GOOD_HEAD + POOL.replace("instance_type: gpu_1x_a10", "gpu: 'H100 x8'"),
     "6:22", "bad GPU spec"),
    ("gpu and type", GOOD_HEAD + POOL.replace("nodes: 1", "nodes: 1, gpu: H100:8"), "6:78",
     "either instance_type or gpu"),
    ("no such gpus", GOOD_HEAD + POOL.replace("instance_type: gpu_1x_a10", "gpu: B200:8"),
     "6:22", "offers the requested GPUs"),
    ("unknown strategy", GOOD_HEAD + POOL.replace("nodes: 1", "nodes: 1, strategy: cheap"),
     "6:78", "is not one of"),
    ("s3 state without bucket", GOOD_HEAD + "state: {backend: s3, key: k}\n",
     "5:1", "backend s3 needs a bucket"),
    ("bucket on local state", GOOD_HEAD + "state: {path: s.json, bucket: b}\n",
     "5:23", "bucket is for backend: s3"),
    ("alias bomb", "version: 1\na: &a [x, x, x, x, x, x, x, x, x, x]\n"
     + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, "
               f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
               f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
               for i in range(8)), None, "too large"),
    ("binary junk", "version: 1\n\x00\x01\x02", None, "NUL"),
]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Workdir:
    """One applied fleet for the whole table; each case works on its own copy."""
    work = Workdir(tmp_path_factory.mktemp("bad-config-fleet"))
    work.config(pools={"w": {"nodes": 1}})
    applied = work.cli("apply", "--auto-approve")
    assert applied.code == 0, applied.err
    return work


@pytest.mark.parametrize(("name", "text", "place", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_config_is_one_clear_line(fleet: Workdir, tmp_path: Path, name: str, text: str,
                                      place: str | None, message: str | None) -> None:
    work = fleet.copy_to(tmp_path / "fleet")
    assert work.state()["serial"] == 1 and len(work.state()["nodes"]) == 1
    state_before = (work.path / "state" / "test.json").read_bytes()
    (work.path / "navarch.yaml").write_text(text)
    if message is None:  # a valid config: the control case of the table
        assert work.cli("plan").code == 0
        return
    for command in (["plan"], ["apply", "--auto-approve"], ["validate"]):
        result = work.cli(*command)
        assert result.code == 1, (command, result.out)
        assert result.err.count("\n") == 1, result.err
        assert "Traceback" not in result.err
        assert message in result.err, result.err
        assert result.err.startswith("Error: navarch.yaml")
        if place:
            assert f"navarch.yaml:{place}:" in result.err, result.err
        else:
            assert re.match(r"Error: navarch\.yaml(:\d+:\d+)?: ", result.err)
    assert (work.path / "state" / "test.json").read_bytes() == state_before
    assert not (work.path / "state" / "test.json.lock").exists()


def test_every_independent_error_is_a_line_of_its_own_in_plan_and_apply(
        work: Workdir) -> None:
    """As `terraform plan` does (and navarch validate): every error at once, so a PR's
    config is fixed in one round, each on one line with its place."""
    work.write(GOOD_HEAD + "pools:\n"
               "  a: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: -1}\n"
               "  b: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: 1,"
               " labelz: {}}\n")
    for command in (["plan"], ["apply", "--auto-approve"], ["validate"]):
        result = work.cli(*command)
        assert result.code == 1 and result.out == ""
        assert result.err.splitlines() == [
            "Error: navarch.yaml:6:68: pools.a.nodes: -1 is less than the minimum of 0",
            "Error: navarch.yaml:7:78: pools.b.labelz: unknown key 'labelz' "
            "(did you mean 'labels'?)"], command
    assert not (work.path / "state" / "test.json").exists()


def test_missing_config_file(work: Workdir) -> None:
    result = work.cli("plan", "-c", "nope.yaml")
    assert result.code == 1 and "nope.yaml: no such file" in result.err


def test_env_expansion_types_and_escape(work: Workdir) -> None:
    work.write(GOOD_HEAD + "pools:\n  w:\n    provider: sim\n    instance_type: gpu_1x_a10\n"
               "    region: ${REGION}\n    nodes: ${COUNT}\n"
               "    user_data: 'echo $${HOME} ${GREETING}'\n")
    env = {"REGION": "us-east-1", "COUNT": "2", "GREETING": "hi"}
    plan = work.cli("plan", "--out", "p.plan", env=env)
    assert plan.code == 0, plan.err
    actions = json.loads((work.path / "p.plan").read_text())["actions"]
    assert len(actions) == 2 and actions[0]["region"] == "us-east-1"
    assert "us-east-1" not in plan.out, "a value from the environment is redacted"
    assert work.cli("apply", "--auto-approve", env=env).code == 0
    node_id = work.state()["nodes"]["pool.w[0]"]["id"]
    assert work.cloud().user_data(node_id) == "echo ${HOME} hi"


@pytest.mark.parametrize(("providers", "pool", "place", "message"), [
    ("l: {type: lambda, api_key_env: LAMBDA_KEY}",
     "{provider: l, instance_type: gpu_1x_a10, region: us-east-1, nodes: 1, ssh_keys: [a, b]}",
     "6:76", "exactly one SSH key name; 2 given"),
    ("l: {type: lambda, api_key_env: LAMBDA_KEY}",
     "{provider: l, instance_type: gpu_1x_a10, region: us-east-1, nodes: 1}",
     "6:3", "exactly one SSH key name; 0 given"),
    ("l: {type: lambda, api_key_env: LAMBDA_KEY}",
     "{provider: l, instance_type: gpu_1x_a10, region: us-east-1, zone: us-east-1a, "
     "nodes: 1, ssh_keys: [a]}", "6:66", "Lambda Cloud has no zones"),
    ("g: {type: gcp, project: p}",
     "{provider: g, instance_type: g2-standard-4, region: us-central1, nodes: 1}",
     "6:3", "Compute Engine needs a zone"),
    ("a: {type: aws, region: us-east-1, image_id: not-an-ami}",
     "{provider: a, instance_type: g5.xlarge, nodes: 1}", "4:37",
     "'not-an-ami' is not valid (an AMI id (ami-0123abcd...) or resolve:ssm:/PARAMETER)"),
])
def test_cloud_rules_are_refused_before_any_call(work: Workdir, providers: str, pool: str,
                                                 place: str, message: str) -> None:
    work.write(f"version: 1\nworkspace: test\nproviders:\n  {providers}\npools:\n  w: {pool}\n")
    result = work.cli("validate")
    assert result.code == 1 and message in result.err, result.err
    assert f"navarch.yaml:{place}:" in result.err, result.err
    assert "Traceback" not in result.err


def test_validate_checks_every_candidate_region_against_the_catalog(work: Workdir) -> None:
    work.write("""\
version: 1
workspace: test
providers:
  g: {type: gcp, project: p, credentials: anonymous, endpoint: "http://127.0.0.1:9"}
pools:
  w:
    providers:
      - {name: g, regions: [us-central1, antarctica1],
         zones: [us-central1-a, antarctica1-a]}
    instance_type: a3-highgpu-8g
    nodes: 1
""")
    result = work.cli("validate")
    assert result.code == 1
    assert "region 'antarctica1' does not offer a3-highgpu-8g" in result.err

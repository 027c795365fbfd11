"""`navarch validate` reports every config error it finds at once, each on its own line
as `file:line:col: path: message`, with "did you mean" for a mistyped key or name and
pattern rules in words; `plan` still stops at the first. Both warn about user_data
cloud-init would ignore."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Workdir

LINE = re.compile(r"^Error: navarch\.yaml:(\d+):(\d+): (\S+): (.+)$")

SEVERAL = """\
version: 1
workspace: test
providers:
  sim: {type: fake, path: state/cloud.db, latncy: 0.1}
pools:
  a: {provider: sim, node: 4, instance_type: gpu_1x_a10, region: us-west-1}
  b:
    provider: sim
    nodez: 4
    nodes: 1
    labels: {team: ML Ops}
    instance_type: gpu_1x_a10
    region: us-west-1
"""


def test_every_schema_error_at_once_each_with_its_place(work: Workdir) -> None:
    work.write(SEVERAL)
    result = work.cli("validate")
    assert result.code == 1 and result.out == ""
    assert result.err.splitlines() == [
        "Error: navarch.yaml:4:43: providers.sim.latncy: unknown key 'latncy' (did you mean "
        "'latency'?)",
        "Error: navarch.yaml:6:22: pools.a.node: unknown key 'node' (did you mean 'nodes'?)",
        "Error: navarch.yaml:9:5: pools.b.nodez: unknown key 'nodez' (did you mean 'nodes'?)",
        "Error: navarch.yaml:11:14: pools.b.labels.team: 'ML Ops' is not valid (label values: "
        "lowercase letters, digits, '_' and '-', at most 63 characters)",
    ]
    # The key in the flow mapping is pointed at itself: line 6, the column of `node`.
    assert SEVERAL.splitlines()[5].index("node:") + 1 == 22
    # `node` is there misspelt: its unknown-key error says so, no "'nodes' is required".
    # plan reports the same errors, a line each.
    plan = work.cli("plan")
    assert plan.code == 1 and plan.err == result.err


def test_validate_json_lists_every_error(work: Workdir) -> None:
    work.write(SEVERAL)
    result = work.cli("validate", "-json")
    document = result.json()
    assert result.code == 1 and document["valid"] is False
    assert document["error_count"] == 4 == len(document["diagnostics"])
    places = [(d["path"], d["range"]["start"]["line"], d["range"]["start"]["column"])
              for d in document["diagnostics"]]
    assert places == [("providers.sim.latncy", 4, 43), ("pools.a.node", 6, 22),
                      ("pools.b.nodez", 9, 5), ("pools.b.labels.team", 11, 14)]
    assert all(d["severity"] == "error" and d["range"]["filename"] == "navarch.yaml"
               for d in document["diagnostics"])


REFERENCES = """\
version: 1
workspace: test
providers:
  sim: {type: fake, path: state/cloud.db}
  lam: {type: lamda}
pools:
  a: {provider: simm, instance_type: gpu_1x_a10, region: us-west-1, nodes: 1}
  b: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: 1,
      depends_on: [worker]}
  workers: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: 1}
"""


def test_every_reference_error_at_once_with_close_matches(work: Workdir) -> None:
    work.write(REFERENCES)
    result = work.cli("validate")
    assert result.code == 1
    lines = result.err.splitlines()
    assert all(LINE.match(line) for line in lines), lines
    assert lines[0].startswith("Error: navarch.yaml:5:9: providers.lam.type: unknown provider "
                               "type 'lamda' (did you mean 'lambda'?) (known: ")
    assert lines[1:] == [
        "Error: navarch.yaml:7:7: pools.a.provider: unknown provider 'simm' (did you mean "
        "'sim'?) (known: lam, sim)",
        "Error: navarch.yaml:9:20: pools.b.depends_on[0]: depends_on names unknown pool or "
        "node 'worker' (did you mean 'workers'?)",
    ]


@pytest.mark.parametrize(("text", "place", "words"), [
    ("workspace: Research", "2:1", "'Research' is not valid (a name: lowercase letters, digits "
     "and '-', starting with a letter, at most 30 characters)"),
    ("workspace: test\nproviders_x: 1", "3:1", "unknown key 'providers_x' (did you mean "
     "'providers'?)"),
])
def test_top_level_mistakes_read_as_words(work: Workdir, text: str, place: str,
                                          words: str) -> None:
    work.write(SEVERAL.replace("workspace: test", text).replace(", latncy: 0.1", "")
               .replace("    nodez: 4\n", "").replace("ML Ops", "ml").replace(" node: 4,",
                                                                             " nodes: 4,"))
    result = work.cli("validate")
    assert result.code == 1
    assert result.err.splitlines() == [f"Error: navarch.yaml:{place}: "
                                       f"{text.splitlines()[-1].split(':')[0]}: {words}"]


def test_no_close_match_no_guess(work: Workdir) -> None:
    work.write(SEVERAL.replace("latncy: 0.1", "colour: blue").replace(" node: 4,", " nodes: 4,")
               .replace("    nodez: 4\n", "").replace("ML Ops", "ml"))
    result = work.cli("validate")
    assert result.err.splitlines() == [
        "Error: navarch.yaml:4:43: providers.sim.colour: unknown key 'colour'"]


USER_DATA = """\
version: 1
workspace: test
providers:
  sim: {type: fake, path: state/cloud.db}
pools:
  script:
    provider: sim
    instance_type: gpu_1x_a10
    region: us-west-1
    nodes: 2
    user_data: |
      apt-get install -y nvidia-driver
  config: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: 1,
           user_data: "#cloud-config\\npackages: [git]\\n"}
nodes:
  box: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1,
        user_data: "#!/bin/bash\\necho hi\\n"}
"""

WARNING = ("Warning: navarch.yaml:11:5: pools.script.user_data: user_data starts with "
           "neither #! nor #cloud-config: cloud-init on EC2, GCE and Lambda ignores it, so "
           "the node boots without it")


def test_user_data_cloud_init_ignores_is_warned_by_validate_and_plan(work: Workdir) -> None:
    work.write(USER_DATA)
    validated = work.cli("validate")
    assert validated.code == 0 and validated.err.splitlines() == [WARNING], validated.err
    planned = work.cli("plan")
    assert planned.code == 0 and planned.err.splitlines() == [WARNING], planned.err
    assert "Plan: 4 to add" in planned.out


def test_user_data_with_a_header_is_not_warned(work: Workdir) -> None:
    work.write(USER_DATA.replace("      apt-get install", "      #!/bin/sh\n      apt-get install"))
    result = work.cli("validate")
    assert result.code == 0 and result.err == "", result.err


def test_state_and_pool_errors_are_reported_together(work: Workdir) -> None:
    work.write("""\
version: 1
workspace: test
state: {path: x.json, bucket: b}
providers:
  sim: {type: fake, path: state/cloud.db}
pools:
  a: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: 1, depends_on: [b]}
""")
    result = work.cli("validate")
    assert result.code == 1
    assert result.err.splitlines() == [
        "Error: navarch.yaml:3:23: state.bucket: bucket is for backend: s3",
        "Error: navarch.yaml:7:91: pools.a.depends_on[0]: depends_on names unknown pool or "
        "node 'b'",
    ]


def test_a_mistyped_word_gets_the_closest_allowed_one(work: Workdir) -> None:
    work.write(SEVERAL.replace(", latncy: 0.1", "").replace(" node: 4,", " nodes: 4,")
               .replace("    nodez: 4\n", "    strategy: prioirty\n").replace("ML Ops", "ml"))
    result = work.cli("validate")
    (line,) = result.err.splitlines()
    assert line.startswith("Error: navarch.yaml:9:5: pools.b.strategy: 'prioirty' is not one "
                           "of ["), line
    assert line.endswith("] (did you mean 'priority'?)"), line


ALL_KINDS = """\
version: 1
workspace: test
providers:
  sim: {type: fake, path: state/cloud.db}
pools:
  a: {provider: sim, instance_type: gpu_1x_a1O, region: us-west-1, nodes: 1}
  b: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: 1, depends_on: [c]}
  d: {provider: nope, instance_type: gpu_1x_a10, region: us-west-1, nodes: 1}
  e: {provider: sim, instance_type: gpu_1x_a10, region: us-west-9, nodes: 1,
      user_data: "#!/bin/sh\\necho ${pools.zz.nodes[0].id}"}
"""


def test_catalog_errors_beside_reference_errors_in_one_run(work: Workdir) -> None:
    """A misspelt instance type is reported with an unknown depends_on, an unknown
    provider and an unknown reference, not on the next run once those are fixed."""
    work.write(ALL_KINDS)
    result = work.cli("validate")
    assert result.code == 1
    assert result.err.splitlines() == [
        "Error: navarch.yaml:6:22: pools.a.instance_type: instance type 'gpu_1x_a1O' is not "
        "in navarch's fake catalog (provider sim) (did you mean 'gpu_1x_a10'?)",
        "Error: navarch.yaml:7:91: pools.b.depends_on[0]: depends_on names unknown pool or "
        "node 'c'",
        "Error: navarch.yaml:8:7: pools.d.provider: unknown provider 'nope' (known: sim)",
        "Error: navarch.yaml:9:49: pools.e.region: region 'us-west-9' does not offer "
        "gpu_1x_a10 on sim (did you mean 'us-west-1'?) (regions: us-west-1, us-east-1, "
        "eu-central-1)",
        "Error: navarch.yaml:10:7: pools.e.user_data: ${pools.zz.nodes[0].id} refers to "
        "unknown pool or node 'zz'",
    ]
    document = work.cli("validate", "-json").json()
    assert document["error_count"] == 5 and document["valid"] is False
    # Fixed, the catalog errors are all that is left: they were all there the first time.
    fixed = (ALL_KINDS.replace(", depends_on: [c]", "").replace("provider: nope", "provider: sim")
             .replace("pools.zz", "pools.b"))
    work.write(fixed)
    again = work.cli("validate")
    assert again.err.splitlines() == [result.err.splitlines()[i] for i in (0, 3)]


UNSUPPORTED_REF = """\
version: 1
workspace: test
providers:
  sim: {type: fake, path: state/cloud.db}
pools:
  head: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: 1}
  a:
    provider: sim
    instance_type: gpu_1x_a10
    region: us-west-1
    nodes: 1
    user_data: |
      #!/bin/bash
      echo "head=${pools.head.nodes[0].ip_address} shell=$${HOME}"
      echo "hello from ${self.name}" > /etc/motd
"""


def test_a_dollar_brace_that_is_no_variable_nor_reference_is_refused_at_its_line(
        work: Workdir) -> None:
    """`${self.name}` would reach the instance as literal text: refused where it is
    written (line 15, inside the block), saying what is supported."""
    work.write(UNSUPPORTED_REF)
    for command in ("validate", "plan"):
        result = work.cli(command)
        assert result.code == 1
        assert result.err.splitlines() == [
            "Error: navarch.yaml:15:24: pools.a.user_data: ${self.name} is neither an "
            "environment variable (${NAME}, no dots) nor a reference to another node "
            "(${pools.POOL.nodes[INDEX].FIELD} or ${nodes.NAME.FIELD}, FIELD one of "
            "ip_address, id, region, zone, name); $${ writes a literal ${"]
    # The supported forms pass: a reference, an escaped shell variable.
    work.write(UNSUPPORTED_REF.replace("${self.name}", "$${self.name}"))
    assert work.cli("validate").code == 0


def test_a_reference_outside_user_data_is_refused(work: Workdir) -> None:
    work.write(UNSUPPORTED_REF.replace("region: us-west-1, nodes: 1}",
                                       "region: '${pools.a.nodes[0].region}', nodes: 1}"))
    result = work.cli("validate")
    assert result.code == 1 and result.err.splitlines() == [
        "Error: navarch.yaml:6:60: pools.head.region: ${pools.a.nodes[0].region}: "
        "references to other nodes are resolved only in user_data"]

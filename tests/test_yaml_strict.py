"""A config is plain JSON-like data: YAML tags, NaN, infinity and numbers Python cannot
read are refused through the CLI with one line naming file:line:column and the key path;
an unquoted date is the string it looks like (navarch_plan/yamlpos.py)."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from navarch_plan.config import parse_config
from navarch_plan.config.yamlpos import load_yaml
from tests.conftest import Workdir

# Block style, so that each value sits on a line of its own:
# line 2 workspace (value at column 12), 11 region (column 13), 12 nodes (column 12),
# 13 labels (column 13).
GOOD = """\
version: 1
workspace: test
providers:
  sim:
    type: fake
    path: state/cloud.db
pools:
  w:
    provider: sim
    instance_type: gpu_1x_a10
    region: us-west-1
    nodes: 1
"""

TAG_ADVICE = "write the plain value (quote it to keep it a string)"
TOO_MANY_DIGITS = "number too large: more than 4300 digits"


def tagged(tag: str) -> str:
    return f"YAML tags are not allowed here ({tag}); {TAG_ADVICE}"


def non_finite(literal: str) -> str:
    return f"NaN and infinity are not allowed ({literal}); write a finite number"


def edit(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


def labels(value: str) -> str:
    return GOOD + f"    labels: {value}\n"


class Case(NamedTuple):
    name: str
    config: str
    place: str  # line:column
    path: str
    message: str
    env: dict[str, str] = {}


CASES = [
    # -- explicit tags: every one, valid use included ---------------------------------------
    Case("!!int abc", edit("nodes: 1", "nodes: !!int abc"), "12:12", "pools.w.nodes",
         tagged("!!int")),
    Case("!!int used validly", edit("nodes: 1", "nodes: !!int 1"), "12:12", "pools.w.nodes",
         tagged("!!int")),
    Case("!!float x", edit("nodes: 1", "nodes: !!float x"), "12:12", "pools.w.nodes",
         tagged("!!float")),
    Case("!!str used validly", edit("region: us-west-1", "region: !!str us-west-1"), "11:13",
         "pools.w.region", tagged("!!str")),
    Case("!!timestamp", edit("region: us-west-1", "region: !!timestamp 2020-01-01"), "11:13",
         "pools.w.region", tagged("!!timestamp")),
    Case("!!binary", edit("workspace: test", "workspace: !!binary dGVzdA=="), "2:12",
         "workspace", tagged("!!binary")),
    Case("!!python/object/apply", edit("workspace: test",
                                       "workspace: !!python/object/apply:os.system [id]"),
         "2:12", "workspace", tagged("!!python/object/apply:os.system")),
    Case("!!python/name", edit("workspace: test", "workspace: !!python/name:os.system ''"),
         "2:12", "workspace", tagged("!!python/name:os.system")),
    Case("!!set", labels("!!set {team, ml}"), "13:13", "pools.w.labels", tagged("!!set")),
    Case("!!omap", labels("!!omap [team: ml]"), "13:13", "pools.w.labels", tagged("!!omap")),
    Case("!!pairs", labels("!!pairs [team: ml]"), "13:13", "pools.w.labels", tagged("!!pairs")),
    Case("!!map", labels("!!map {team: ml}"), "13:13", "pools.w.labels", tagged("!!map")),
    Case("custom !Ref", edit("region: us-west-1", "region: !Ref us-west-1"), "11:13",
         "pools.w.region", tagged("!Ref")),
    Case("verbatim tag", edit("region: us-west-1", "region: !<tag:example.com,2000:r> x"),
         "11:13", "pools.w.region", tagged("!<tag:example.com,2000:r>")),
    Case("non-specific !", edit("nodes: 1", "nodes: ! 1"), "12:12", "pools.w.nodes",
         tagged("!")),
    Case("tag in a list", GOOD + "    ssh_keys: [ops, !!str key]\n", "13:21",
         "pools.w.ssh_keys[1]", tagged("!!str")),
    Case("tag on a key", edit("    nodes: 1", "    !!str nodes: 1"), "12:5", "pools.w",
         tagged("!!str")),
    Case("tag behind an anchor", GOOD + "    x: &n !!int 2\n    y: *n\n", "13:8", "pools.w.x",
         tagged("!!int")),
    Case("escape in a tag", edit("region: us-west-1", "region: !%1B[2J x"), "11:13",
         "pools.w.region", tagged("!\\x1b[2J")),
    # -- numbers no setting accepts ----------------------------------------------------------
    Case("5000-digit integer", edit("nodes: 1", "nodes: " + "9" * 5000), "12:12",
         "pools.w.nodes", TOO_MANY_DIGITS),
    Case("huge hex integer", edit("nodes: 1", "nodes: 0x" + "f" * 4000), "12:12",
         "pools.w.nodes", TOO_MANY_DIGITS),
    Case("5000 digits from a variable", edit("nodes: 1", "nodes: ${NAVARCH_T_COUNT}"),
         "12:12", "pools.w.nodes", TOO_MANY_DIGITS, {"NAVARCH_T_COUNT": "1" * 5000}),
    Case(".nan", edit("nodes: 1", "nodes: .nan"), "12:12", "pools.w.nodes", non_finite(".nan")),
    Case(".inf", edit("nodes: 1", "nodes: .inf"), "12:12", "pools.w.nodes", non_finite(".inf")),
    Case("-.Inf", edit("nodes: 1", "nodes: -.Inf"), "12:12", "pools.w.nodes",
         non_finite("-.Inf")),
    Case(".nan from a variable", edit("nodes: 1", "nodes: ${NAVARCH_T_COUNT}"), "12:12",
         "pools.w.nodes", non_finite(".nan"), {"NAVARCH_T_COUNT": ".nan"}),
    Case("float overflow", edit("path: state/cloud.db", "path: state/cloud.db\n"
                                "    latency: 1.0e+400"), "7:14", "providers.sim.latency",
         "number too large: it overflows to infinity"),
    Case(".nan as a key", labels("{.nan: x}"), "13:14", "pools.w.labels", non_finite(".nan")),
    # -- an unquoted date is a string: where a number is wanted, the schema says so ------------
    Case("date where a count is wanted", edit("nodes: 1", "nodes: 2020-01-01"), "12:5",
         "pools.w.nodes", "'2020-01-01' is not of type 'integer'"),
]


def _only_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err[:-1]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_non_json_yaml_is_one_located_line(work: Workdir, case: Case) -> None:
    work.write(case.config)
    for command in ("validate", "plan"):
        result = work.cli(command, env=case.env)
        assert result.code == 1, (command, result.out, result.err)
        line = _only_line(result.err)
        assert line == f"Error: navarch.yaml:{case.place}: {case.path}: {case.message}", line
        assert "Traceback" not in result.err and "internal error" not in result.err
        assert line.isprintable(), repr(line)
        assert result.out == ""
    assert list((work.path / "state").iterdir()) == [], "nothing may be written"


@pytest.mark.parametrize("value", ['"2020-01-01"', "2020-01-01", "'2020-01-01'"])
def test_a_date_is_a_string_label(work: Workdir, value: str) -> None:
    work.write(labels(f"{{date: {value}, team: ml}}"))
    result = work.cli("validate")
    assert result.code == 0, result.err
    assert result.err == ""


def test_an_unquoted_date_is_the_text_as_written() -> None:
    data, _ = load_yaml("a: 2020-01-01\nb: 2001-12-14t21:59:43.10-05:00\nc: =\nd: <<\n",
                        "x.yaml", {})
    assert data == {"a": "2020-01-01", "b": "2001-12-14t21:59:43.10-05:00", "c": "=", "d": "<<"}


def test_quoting_does_not_change_the_config_hash() -> None:
    def config_hash(date: str) -> str:
        return parse_config(labels(f"{{date: {date}}}"), "navarch.yaml", {}).config_hash

    assert config_hash("2020-01-01") == config_hash('"2020-01-01"')


def test_plain_json_like_values_load_unchanged() -> None:
    text = ("a: {b: [1, -2, 0x1f, 2.5, 1.0e+3, true, no, null, ~, x, 'y', \"z\"]}\n"
            "n: " + "9" * 4300 + "\n")
    data, positions = load_yaml(text, "x.yaml", {})
    assert data["a"] == {"b": [1, -2, 31, 2.5, 1000.0, True, False, None, None, "x", "y", "z"]}
    assert data["n"] == int("9" * 4300)
    assert positions[("a", "b", 2)] == (1, 16)

"""`navarch init` writes a starter config that plans on the fake cloud (the real clouds
commented out) and a .gitignore, never overwriting; `navarch graph` prints the plan's
apply DAG as Graphviz DOT, read back here by a DOT parser (pydot)."""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import pydot

from tests.conftest import Workdir


def _fresh(tmp_path: Path) -> Workdir:
    work = Workdir(tmp_path)
    shutil.rmtree(tmp_path / "state")  # an empty folder
    return work


def test_init_writes_a_starter_that_plans_on_the_fake_cloud(tmp_path: Path) -> None:
    work = _fresh(tmp_path)
    init = work.cli("init")
    assert init.code == 0, init.err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore", "navarch.yaml"]
    assert init.out.splitlines()[-1] == "Next: navarch plan"
    validated = work.cli("validate")
    assert validated.code == 0 and validated.err == "", validated.err
    plan = work.cli("plan", "--detailed-exitcode")
    assert plan.code == 2, plan.err
    assert "Plan: 2 to add, 0 to replace, 0 to destroy." in plan.out
    assert "+ pool.trainers[0]" in plan.out
    ignored = (tmp_path / ".gitignore").read_text().splitlines()
    assert {"state/", "*.plan"} <= set(ignored)


def test_init_never_overwrites(tmp_path: Path) -> None:
    work = _fresh(tmp_path)
    assert work.cli("init").code == 0
    (tmp_path / "navarch.yaml").write_text("# mine\n")
    again = work.cli("init")
    assert again.code == 1 and again.out == ""
    assert again.err.splitlines() == [
        "Error: navarch.yaml already exists; navarch init never overwrites (use -c FILE to "
        "write another)"]
    assert (tmp_path / "navarch.yaml").read_text() == "# mine\n"


def test_init_keeps_an_existing_gitignore_and_says_what_it_lacks(tmp_path: Path) -> None:
    work = _fresh(tmp_path)
    (tmp_path / ".gitignore").write_text("__pycache__/\nstate/\n")
    init = work.cli("init", "-c", "fleet/prod.yaml")
    assert init.code == 0, init.err
    assert (tmp_path / "fleet" / "prod.yaml").exists()
    assert (tmp_path / "fleet" / ".gitignore").exists(), "the config's folder gets one"
    assert init.out.splitlines()[-1] == "Next: navarch plan -c fleet/prod.yaml"
    (tmp_path / "fleet" / ".gitignore").write_text("node_modules/\n")
    (tmp_path / "fleet" / "prod.yaml").unlink()
    kept = work.cli("init", "-c", "fleet/prod.yaml")
    assert kept.code == 0
    assert (tmp_path / "fleet" / ".gitignore").read_text() == "node_modules/\n"
    assert kept.err.splitlines() == ["Warning: kept your fleet/.gitignore; add to it: "
                                     "state/, *.plan, plans/"]


def test_the_starters_real_clouds_validate_once_uncommented(tmp_path: Path) -> None:
    """The commented providers are right as written: uncommented, they validate."""
    work = _fresh(tmp_path)
    work.cli("init")
    text = (tmp_path / "navarch.yaml").read_text()
    commented = re.findall(r"^  # (lambda|gcp|aws): ", text, re.M)
    assert commented == ["lambda", "gcp", "aws"]
    work.write(re.sub(r"^  # (lambda|gcp|aws): ", r"  \1: ", text, flags=re.M))
    result = work.cli("validate", env={"LAMBDA_API_KEY": None})
    assert result.code == 0, result.err
    assert "on 4 providers" in result.out


CHAIN = """\
version: 1
workspace: test
providers:
  sim: {type: fake, path: state/cloud.db}
pools:
  db: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: 1}
  app: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: 2,
        depends_on: [db]}
nodes:
  box: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1}
"""


def _dot(text: str) -> pydot.Dot:
    with warnings.catch_warnings():  # pydot's own use of an old pyparsing name
        warnings.simplefilter("ignore", DeprecationWarning)
        (graph,) = pydot.graph_from_dot_data(text)
    return graph


def _clusters(graph: pydot.Dot) -> dict[str, list[str]]:
    return {sub.get_name().strip('"'): [n.get_name().strip('"') for n in sub.get_nodes()]
            for sub in graph.get_subgraphs()}


def test_graph_is_dot_with_an_edge_for_depends_on(work: Workdir) -> None:
    work.write(CHAIN)
    result = work.cli("graph")
    assert result.code == 0, result.err
    graph = _dot(result.out)
    assert graph.get_type() == "digraph"
    assert _clusters(graph) == {"cluster_build:db": ["pool.db[0]"],
                                "cluster_build:app": ["pool.app[0]", "pool.app[1]"],
                                "cluster_build:box": ["node.box"]}
    edges = [(e.get_source().strip('"'), e.get_destination().strip('"'),
              e.get("ltail").strip('"'), e.get("lhead").strip('"')) for e in graph.get_edges()]
    assert edges == [("pool.db[0]", "pool.app[0]", "cluster_build:db", "cluster_build:app")]
    assert work.cli("graph").out == result.out, "the same plan, the same graph"


def test_graph_of_a_destroy_deletes_dependents_first(work: Workdir) -> None:
    work.write(CHAIN)
    assert work.cli("apply", "--auto-approve").code == 0
    plain = _dot(work.cli("graph").out)
    assert plain.get_edges() == [] and _clusters(plain) == {}, "nothing to do: no nodes"
    destroy = work.cli("graph", "--destroy", "--out", "x")
    assert destroy.code == 1 and "unknown option --out" in destroy.err
    graph = _dot(work.cli("graph", "--destroy").out)
    assert set(_clusters(graph)) == {"cluster_delete:db", "cluster_delete:app",
                                     "cluster_delete:box"}
    ((tail, head),) = [(e.get("ltail"), e.get("lhead")) for e in graph.get_edges()]
    assert (tail.strip('"'), head.strip('"')) == ("cluster_delete:app", "cluster_delete:db")


def test_graph_of_a_saved_plan(work: Workdir) -> None:
    work.write(CHAIN)
    assert work.cli("plan", "--out", "saved.plan").code == 0
    work.write(CHAIN.replace("nodes: 2", "nodes: 3"))  # the graph is of the saved plan
    saved = _dot(work.cli("graph", "saved.plan").out)
    assert _clusters(saved)["cluster_build:app"] == ["pool.app[0]", "pool.app[1]"]

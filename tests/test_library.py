"""The Python API as the README presents it: an Engine plans and applies on its own
(taking the state lock itself), and a plan made earlier is checked before it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from navarch_plan import Engine, FakeProvider, StalePlanError, parse_config

CONFIG = """version: 1
workspace: lib
providers: {sim: {type: fake, path: cloud.db}}
state: {path: state.json}
pools:
  w: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: NODES}
"""


def _engine(folder: Path, nodes: int) -> Engine:
    text = CONFIG.replace("NODES", str(nodes))
    return Engine(parse_config(text, str(folder / "navarch.yaml"), {}, str(folder)))


def test_an_engine_plans_and_applies_without_the_caller_locking(tmp_path: Path) -> None:
    engine = _engine(tmp_path, 2)
    plan = engine.plan()
    assert plan.summary()["create"] == 2
    assert engine.apply(plan).ok
    assert len(FakeProvider("sim", path=str(tmp_path / "cloud.db")).list()) == 2
    assert not _engine(tmp_path, 2).plan().has_changes


def test_a_plan_applied_after_the_world_moved_is_refused(tmp_path: Path) -> None:
    first = _engine(tmp_path, 1)
    plan = first.plan()
    assert _engine(tmp_path, 1).apply(_engine(tmp_path, 1).plan()).ok  # someone applied
    with pytest.raises(StalePlanError):
        first.apply(plan)

"""The Python API as the README presents it: an Engine plans and applies on its own
(taking the state lock itself), a plan made earlier is checked before it runs, and an
engine used as a context manager closes what its providers opened."""

from __future__ import annotations

import os
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
    with _engine(tmp_path, 2) as engine:
        plan = engine.plan()
        assert plan.summary()["create"] == 2
        assert engine.apply(plan).ok
    with FakeProvider("sim", path=str(tmp_path / "cloud.db")) as cloud:
        assert len(cloud.list()) == 2
    with _engine(tmp_path, 2) as engine:
        assert not engine.plan().has_changes


def test_a_plan_applied_after_the_world_moved_is_refused(tmp_path: Path) -> None:
    with _engine(tmp_path, 1) as first, _engine(tmp_path, 1) as other:
        plan = first.plan()
        assert other.apply(other.plan()).ok  # someone applied
        with pytest.raises(StalePlanError):
            first.apply(plan)


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_leaving_the_with_block_closes_the_files_the_engine_opened(tmp_path: Path) -> None:
    """A long-lived caller (a service, a notebook, a test run) builds many engines; each
    one's cloud connections must not stay open until the garbage collector finds them."""
    before = open_files()
    with _engine(tmp_path, 3) as engine:
        assert engine.apply(engine.plan()).ok
        assert open_files() > before  # the fake cloud's file, opened per worker thread
    assert open_files() == before

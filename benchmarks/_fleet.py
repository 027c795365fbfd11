"""Shared by the benchmarks: a config of N nodes in P pools on a persistent fake cloud,
and an in-process engine to plan and apply it (the same code path the CLI drives)."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any

from navarch_plan.engine import Engine, load_config
from navarch_plan.planner import PlanOptions


def write_config(folder: Path, nodes: int, pools: int, instance_type: str = "gpu_1x_a10",
                 latency: float = 0.0, changed_pools: int = 0) -> Path:
    per_pool = nodes // pools
    doc: dict[str, Any] = {
        "version": 1, "workspace": "bench",
        "providers": {"sim": {"type": "fake", "path": "cloud.db", "latency": latency}},
        "defaults": {"ssh_keys": ["ops"], "labels": {"team": "ml"}},
        "pools": {
            f"pool-{i:03d}": {"provider": "sim", "region": "us-west-1", "nodes": per_pool,
                              "instance_type": "gpu_1x_a100" if i < changed_pools
                              else instance_type}
            for i in range(pools)
        },
    }
    path = folder / "navarch.yaml"
    path.write_text(json.dumps(doc, indent=1))
    return path


def engine(config_path: Path) -> Engine:
    return Engine(load_config(str(config_path)))


def apply(config_path: Path, parallelism: int = 10) -> tuple[float, int]:
    """Plan and apply; returns (seconds for the apply alone, actions done)."""
    eng = engine(config_path)
    with eng.locked("apply"):
        plan = eng.plan(PlanOptions())
        started = time.perf_counter()
        result = eng.apply(plan, parallelism)
        took = time.perf_counter() - started
    assert result.ok, result.failed
    return took, len(result.done)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

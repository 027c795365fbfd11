"""Shared by the benchmarks: a config of N nodes in P pools on a persistent fake cloud,
an in-process engine to plan and apply it (the same code path the CLI drives), a fast
way to build a large fleet without applying it, and the small statistics and reporting
helpers every benchmark prints with.

Every benchmark takes `--report FILE`: it then also writes its summary rows there as
JSON (run_all.py collects them into one table)."""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from navarch_plan.config.desired import render_refs
from navarch_plan.engine import Engine, load_config
from navarch_plan.model import ProvisionRequest
from navarch_plan.planner import PlanOptions
from navarch_plan.planner.actions import instance_name
from navarch_plan.planner.ownership import ownership_labels
from navarch_plan.providers.fake import FakeProvider
from navarch_plan.state.model import NodeRecord
from navarch_plan.state.ops import Put
from navarch_plan.state.stores.local import LocalStateStore

HERE = Path(__file__).resolve().parent


# -- configs --------------------------------------------------------------------------
def write_doc(folder: Path, doc: Mapping[str, Any]) -> Path:
    path = folder / "navarch.yaml"
    path.write_text(json.dumps(doc, indent=1))  # JSON is YAML
    return path


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
    return write_doc(folder, doc)


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


def build_direct(config_path: Path, batch: int = 2000) -> int:
    """What an apply of every create would leave behind, without the apply: one fake
    `provision` per desired node (latency forced to 0) and state records written in
    batches, through navarch's own public functions, so labels, spec hashes and records
    are exactly what the executor writes (actions.ActionRunner._provision/_record).
    Every node goes on its first candidate. Returns the number of nodes built."""
    config = load_config(str(config_path))
    workspace = config.workspace
    clouds: dict[str, FakeProvider] = {}
    for name, pc in config.providers.items():
        assert pc.type == "fake", "build_direct builds fake clouds only"
        path = os.path.join(config.base_dir, pc.options["path"])
        clouds[name] = FakeProvider(name, path=path)
    store = LocalStateStore(config.state.path, workspace)
    store.load()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    ops: list[Put] = []
    for address, node in config.desired.items():
        placement = node.candidates[0]
        assert not node.refs, "build_direct does not resolve ${...} references"
        request = ProvisionRequest(
            name=instance_name(workspace, node, uuid.uuid4().hex[:4]),
            instance_type=placement.instance_type, region=placement.region,
            zone=placement.zone, ssh_key_names=node.ssh_keys,
            labels=ownership_labels(workspace, node, placement),
            user_data=render_refs(node.user_data, {}), idempotency_key=uuid.uuid4().hex)
        created = clouds[placement.provider].provision(request)
        record = NodeRecord(
            id=created.id, provider=created.provider, region=created.region,
            zone=created.zone, instance_type=created.instance_type, name=created.name,
            spec=node.spec_for(placement), spec_hash=node.hash_for(placement),
            status=created.status.value, ip_address=created.ip_address,
            labels=dict(created.labels), created_at=now, ref_values={})
        ops.append(Put(address, record))
        if len(ops) >= batch:
            store.record(*ops)
            ops.clear()
    if ops:
        store.record(*ops)
    store.compact()
    store.close_journal()
    return len(config.desired)


def installed_env(folder: Path) -> dict[str, str]:
    """The environment for a `navarch` subprocess that runs as an installed copy would:
    with cached bytecode (this machine sets PYTHONDONTWRITEBYTECODE, which would compile
    every module on every run), kept under `folder`, out of the checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    return env


# -- statistics -----------------------------------------------------------------------
def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def spread(values: Sequence[float]) -> str:
    """`median (min-max, n=K)` for a figure measured K times."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{median(values):.3f} ({min(values):.3f}-{max(values):.3f}, n={len(values)})"


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log(y) on log(x): 1.0 is linear growth."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(max(y, 1e-12)) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / den if den else 0.0


def peak_rss_mb() -> float:
    """This process's peak resident set size. On Linux VmHWM, not ru_maxrss: the latter
    survives exec, so a child started by a big parent would report the parent's size."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Current resident set size (Linux)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def load_note() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


# -- reporting ------------------------------------------------------------------------
@dataclass
class Row:
    """One figure with a target, as run_all.py tabulates it."""

    benchmark: str
    figure: str
    target: str
    measured: str
    ok: bool | None  # None: informational, no target

    @property
    def verdict(self) -> str:
        return "-" if self.ok is None else ("ok" if self.ok else "OVER")


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("ok" if ok else "OVER TARGET")


def write_report(path: str | None, rows: Sequence[Row]) -> None:
    for row in rows:
        print(f"  [{row.verdict:>4}] {row.figure}: {row.measured} (target {row.target})")
    if path:
        Path(path).write_text(json.dumps([asdict(r) for r in rows], indent=1))

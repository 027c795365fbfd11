"""Plan N desired nodes (100 per pool) against a fake cloud and a state that already hold
them all (a no-change plan), and again with 10% of them changed (10% of the pools switch
instance type: that many replaces), at N = 1,000 / 10,000 / 50,000.

For each N and plan it prints:
- wall time (and CPU time) of an in-process `navarch plan` (config, lock, state, one list()
  per provider, planning; rendering timed apart): each measurement runs in a fresh process
  after a warm-up plan of a tiny fleet, and --repeat rounds measure every size in turn
  (interleaved, so a change in machine load hits all sizes alike); medians;
- the raw bound (_bound.py): in a fresh interpreter, the time merely to parse the same
  inputs with stock parsers (the config with PyYAML's C loader, the state with
  json.loads, every row of the fake cloud's SQLite table), and the ratio plan / raw;
- the time for navarch merely to load its inputs (parse the config, read the state,
  list the fake cloud), and the ratio plan / load;
- peak memory, measured in a fresh subprocess that plans once (as the CLI would), and
  its increase over the interpreter with navarch imported;
- per-node time at each N and the growth exponent of a log-log fit over the sizes
  (1.0 is linear).

Targets: the no-change plan proposes nothing (0 changes, N unchanged, no drift); ratios
plan / raw and plan / load <= 3; plan <= 0.2 ms per node (2 s at 10,000); peak <= 30 KB
per node (300 MB at 10,000, and never less than 300 MB); growth exponent of plan time
(over all sizes, and between the two largest) and of memory <= 1.15.

The fleet is built directly by default (one fake provision per node and the state records
the executor would write, through navarch's public functions: seconds, not minutes, at
50,000); `--setup apply` builds it with a real apply instead.

    python benchmarks/plan_scale.py [--sizes 1000 10000 50000] [--per-pool 100]
                                    [--repeat 5] [--setup direct|apply] [--report FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bound import raw_bound
from _fleet import (
    apply,
    build_direct,
    engine,
    fleet_files,
    load_note,
    peak_rss_mb,
    rss_mb,
    write_config,
    write_report,
)
from _plan_report import VARIANTS, growth_rows, size_rows

from navarch_plan import engine as navarch_engine
from navarch_plan.engine import load_config
from navarch_plan.planner import PlanOptions
from navarch_plan.providers.fake import FakeProvider
from navarch_plan.render import render_plan_text
from navarch_plan.state.stores.local import LocalStateStore


def _load_inputs(config_path: Path) -> dict[str, float]:
    """navarch's own loading: parse the config, read the state, list the cloud."""
    t0 = time.perf_counter()
    config = load_config(str(config_path))
    t1 = time.perf_counter()
    LocalStateStore(config.state.path, config.workspace).load()
    t2 = time.perf_counter()
    for name, pc in config.providers.items():
        FakeProvider(name, path=str(config_path.parent / pc.options["path"])).list()
    t3 = time.perf_counter()
    return {"load_s": t3 - t0, "load_config_s": t1 - t0, "load_state_s": t2 - t1,
            "load_list_s": t3 - t2}


_planning: list[float] = []


def _timed_make_plan(*args: Any, **kwargs: Any) -> Any:
    started = time.perf_counter()
    try:
        return _make_plan(*args, **kwargs)
    finally:
        _planning.append(time.perf_counter() - started)


# Time the pure planner inside Engine.plan (benchmark-side instrumentation only).
_make_plan = navarch_engine.make_plan
navarch_engine.make_plan = _timed_make_plan


def _plan_once(config_path: Path) -> tuple[dict[str, float], Any]:
    """What `navarch plan` does, in-process, phase by phase."""
    t0 = time.perf_counter()
    eng = engine(config_path)
    t1 = time.perf_counter()
    with eng.locked("plan"):
        t2 = time.perf_counter()
        plan = eng.plan(PlanOptions())
        t3 = time.perf_counter()
    t4 = time.perf_counter()
    planning = _planning.pop()
    phases = {"plan_s": t4 - t0, "config_s": t1 - t0, "lock_state_s": t2 - t1,
              "refresh_s": (t3 - t2) - planning, "planning_s": planning, "unlock_s": t4 - t3}
    t5 = time.perf_counter()
    render_plan_text(plan.to_json())
    phases["render_s"] = time.perf_counter() - t5
    return phases, plan


def measure(folder: Path, nodes: int, pools: int, changed: int, warm: Path) -> dict[str, Any]:
    """In a fresh process: a warm-up plan of a tiny fleet (one-off costs: lazy imports,
    the schema validator), then one timed load of the inputs and one timed plan."""
    _plan_once(warm)
    config_path = write_config(folder, nodes, pools, changed_pools=changed)
    cpu = time.process_time()
    run = _load_inputs(config_path)
    run["load_cpu_s"] = time.process_time() - cpu
    cpu = time.process_time()
    phases, plan = _plan_once(config_path)
    run.update(phases, plan_cpu_s=time.process_time() - cpu)
    summary = plan.summary()
    changes = sum(v for k, v in summary.items() if k not in ("unchanged", "drift"))
    return {"run": run, "summary": summary, "changes": changes,
            "has_changes": plan.has_changes}


def memory(folder: Path, nodes: int, pools: int, changed: int) -> dict[str, float]:
    """In a fresh process: one plan, as the CLI would make it (with its rendering)."""
    config_path = write_config(folder, nodes, pools, changed_pools=changed)
    before = rss_mb()
    _plan_once(config_path)
    return {"baseline_mb": before, "peak_mb": peak_rss_mb()}


def _child(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"measurement failed:\n{proc.stderr}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _fleet_size(size: int, per_pool: int) -> tuple[int, int]:
    pools = max(1, size // per_pool)
    return (pools * per_pool if size >= per_pool else size), pools


def _setup(root: Path, args: argparse.Namespace) -> tuple[Path, dict[int, tuple[Path, int]]]:
    """The warm-up fleet, and one fleet per size: {nodes: (folder, pools)}."""
    warm = write_config(_mkdir(root / "warm"), 10, 1)
    build_direct(warm)
    folders: dict[int, tuple[Path, int]] = {}
    for size in args.sizes:
        nodes, pools = _fleet_size(size, args.per_pool)
        folder = _mkdir(root / str(nodes))
        config_path = write_config(folder, nodes, pools)
        started = time.perf_counter()
        built = apply(config_path)[1] if args.setup == "apply" else build_direct(config_path)
        print(f"setup ({args.setup}): {built} nodes in {pools} pools in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        folders[nodes] = (folder, pools)
    return warm, folders


Key = tuple[str, int]


def _rounds(folders: dict[int, tuple[Path, int]], warm: Path, repeat: int
            ) -> tuple[dict[Key, list[dict[str, Any]]], dict[Key, dict[str, Any]]]:
    """Every size and variant once per round, each plan in a fresh process, each followed
    by the raw bound of the same inputs in a fresh interpreter."""
    runs: dict[Key, list[dict[str, Any]]] = {}
    last: dict[Key, dict[str, Any]] = {}
    for round_ in range(repeat):
        for nodes, (folder, pools) in folders.items():
            for label, percent in VARIANTS:
                r = _child(["--measure", str(folder), str(nodes), str(pools),
                            str(pools * percent // 100), str(warm)])
                # The child wrote this variant's config: the bound parses that one.
                r["run"].update(raw_bound(*fleet_files(folder / "navarch.yaml")))
                runs.setdefault((label, nodes), []).append(r["run"])
                last[(label, nodes)] = r
        print(f"round {round_ + 1}/{repeat} done ({load_note()})", flush=True)
    return runs, last


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 50_000])
    parser.add_argument("--per-pool", type=int, default=100, help="nodes per pool")
    parser.add_argument("--repeat", type=int, default=5,
                        help="rounds; each round measures every size once, interleaved")
    parser.add_argument("--setup", choices=("direct", "apply"), default="direct")
    parser.add_argument("--report", metavar="FILE", help="also write the summary rows here")
    parser.add_argument("--measure", nargs=5, metavar=("DIR", "N", "POOLS", "CHANGED", "WARM"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--memory", nargs=4, metavar=("DIR", "N", "POOLS", "CHANGED"),
                        help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = _args()
    if args.measure:
        d, n, p, c, w = args.measure
        print(json.dumps(measure(Path(d), int(n), int(p), int(c), Path(w))))
        return
    if args.memory:
        d, n, p, c = args.memory
        print(json.dumps(memory(Path(d), int(n), int(p), int(c))))
        return
    print(f"plan_scale: sizes {args.sizes}, {args.per_pool} nodes per pool; {args.repeat} "
          f"rounds, sizes interleaved, each measurement in a fresh process after a warm-up; "
          f"medians; {load_note()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="plan-scale-") as tmp:
        warm, folders = _setup(Path(tmp), args)
        runs, last = _rounds(folders, warm, args.repeat)
        mem = {(label, nodes): _child(["--memory", str(folder), str(nodes), str(pools),
                                       str(pools * percent // 100)])
               for nodes, (folder, pools) in folders.items() for label, percent in VARIANTS}
    results, rows = size_rows(folders, runs, last, mem, args.per_pool)
    rows += growth_rows(sorted(folders), results)
    print(f"\nSummary ({load_note()}):")
    write_report(args.report, rows)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


if __name__ == "__main__":
    main()

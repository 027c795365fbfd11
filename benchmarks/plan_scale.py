"""Plan 10,000 desired nodes in 100 pools against a fake cloud and a state that already
hold them all (a no-change plan), and again with 10% of them changed.

Prints wall time, peak memory, and the ratio of plan time to the time it takes merely to
load the inputs (YAML, state, the fake cloud's listing). Targets on this machine: ratio
<= 3, under 2 s and 300 MB.

    python benchmarks/plan_scale.py [--nodes 10000] [--pools 100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _fleet import apply, engine, peak_rss_mb, write_config

from navarch_plan.engine import load_config
from navarch_plan.planner import PlanOptions
from navarch_plan.providers.fake import FakeProvider
from navarch_plan.state.store import LocalStateStore


def measure(folder: Path, nodes: int, pools: int, changed_pools: int) -> dict[str, float]:
    """Runs in a fresh process so that its peak memory is the plan's alone."""
    config_path = write_config(folder, nodes, pools, changed_pools=changed_pools)
    started = time.perf_counter()
    config = load_config(str(config_path))
    LocalStateStore(config.state.path, config.workspace).load()
    FakeProvider("sim", path=str(folder / "cloud.db")).list()
    load = time.perf_counter() - started

    eng = engine(config_path)
    started = time.perf_counter()
    with eng.locked("plan"):
        plan = eng.plan(PlanOptions())
    took = time.perf_counter() - started
    summary = plan.summary()
    return {"load_s": load, "plan_s": took, "ratio": took / load, "peak_mb": peak_rss_mb(),
            "replace": summary["replace"], "unchanged": summary["unchanged"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--pools", type=int, default=100)
    parser.add_argument("--measure", nargs=2, metavar=("DIR", "CHANGED_POOLS"))
    args = parser.parse_args()
    if args.measure:
        folder, changed = Path(args.measure[0]), int(args.measure[1])
        print(json.dumps(measure(folder, args.nodes, args.pools, changed)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        took, done = apply(write_config(folder, args.nodes, args.pools))
        print(f"setup: applied {done} creates in {took:.1f} s")
        for label, changed in (("no-change", 0), ("10% changed", args.pools // 10)):
            out = subprocess.run(
                [sys.executable, __file__, "--nodes", str(args.nodes), "--pools",
                 str(args.pools), "--measure", tmp, str(changed)],
                check=True, capture_output=True, text=True).stdout
            r = json.loads(out)
            ok = r["ratio"] <= 3 and r["plan_s"] < 2 and r["peak_mb"] < 300
            print(f"{label:>12} plan of {args.nodes} nodes: {r['plan_s']:.3f} s, load "
                  f"{r['load_s']:.3f} s, ratio {r['ratio']:.2f}, peak {r['peak_mb']:.0f} MB, "
                  f"{r['replace']} to replace, {r['unchanged']} unchanged "
                  f"[{'ok' if ok else 'OVER TARGET'}]")


if __name__ == "__main__":
    main()

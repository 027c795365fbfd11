"""N creates on the fake cloud with per-call latency L and parallelism P: how close does
apply come to the physical bound ceil(N/P) x L?

Measured two ways, each --repeat times in a fresh folder (median reported):
- the apply phase alone, in-process (Engine.apply on a plan made just before), and the
  whole in-process run (config, lock, plan with its list() round trip, apply, compaction);
- the whole command, `python -m navarch_plan apply --auto-approve` in a subprocess
  (interpreter start, imports, plan, apply, output; bytecode cached as in an installed
  copy).

From the fake cloud's call log it also prints how the provision calls were spread over
time: when the first started, the effective concurrency (sum of call time / span), and
how long the first call ran alone (navarch probes a new placement with one call before
sending the rest).

Target: apply phase / bound <= 1.15 for N = 200, L = 0.2 s, P = 20. The whole command is
reported against the bound plus one list() round trip (the plan's refresh), for
information.

    python benchmarks/apply_throughput.py [--nodes 200] [--latency 0.2] [--parallelism 20]
                                          [--pools 2] [--repeat 5] [--report FILE]
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _fleet import (
    Row,
    engine,
    installed_env,
    load_note,
    median,
    spread,
    verdict,
    write_config,
    write_report,
)

from navarch_plan.planner import PlanOptions
from navarch_plan.providers.fake import FakeProvider

TARGET = 1.15


def call_profile(db: Path, since: float, op: str = "provision") -> dict[str, float]:
    calls = FakeProvider("sim", path=str(db)).calls(op)
    if not calls:
        return {"calls": 0}
    starts = sorted(c["started"] for c in calls)
    first_end = min(c["ended"] for c in calls)
    span = max(c["ended"] for c in calls) - starts[0]
    busy = sum(c["ended"] - c["started"] for c in calls)
    second = starts[1] if len(starts) > 1 else starts[0]
    return {"calls": len(calls), "first_start_s": starts[0] - since, "span_s": span,
            "concurrency": busy / span if span else 0.0,
            "alone_s": max(0.0, min(second, first_end) - starts[0]),
            "last_end_s": max(c["ended"] for c in calls) - since}


def in_process(nodes: int, pools: int, latency: float, parallelism: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="apply-throughput-") as tmp:
        config = write_config(Path(tmp), nodes, pools, latency=latency)
        t0 = time.perf_counter()
        eng = engine(config)
        with eng.locked("apply"):
            t1 = time.perf_counter()
            plan = eng.plan(PlanOptions())
            t2 = time.perf_counter()
            wall_start = time.time()
            result = eng.apply(plan, parallelism)
            t3 = time.perf_counter()
        t4 = time.perf_counter()
        assert result.ok and len(result.done) == nodes, (result.failed, len(result.done))
        profile = call_profile(Path(tmp) / "cloud.db", wall_start)
        return {"apply_s": t3 - t2, "whole_s": t4 - t0, "plan_s": t2 - t1,
                "setup_s": t1 - t0, "finish_s": t4 - t3, **profile}


def whole_command(nodes: int, pools: int, latency: float, parallelism: int, cache: Path
                  ) -> float:
    with tempfile.TemporaryDirectory(prefix="apply-throughput-cli-") as tmp:
        config = write_config(Path(tmp), nodes, pools, latency=latency)
        env = installed_env(cache)
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "navarch_plan", "apply", "--auto-approve",
                               "--parallelism", str(parallelism), "-c", str(config)],
                              cwd=tmp, capture_output=True, text=True, env=env)
        took = time.perf_counter() - started
        if proc.returncode != 0 or f"{nodes} added" not in proc.stdout:
            raise SystemExit(f"navarch apply failed ({proc.returncode}):\n{proc.stderr}"
                             f"{proc.stdout[-2000:]}")
        return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per fake call")
    parser.add_argument("--parallelism", type=int, default=20)
    parser.add_argument("--pools", type=int, default=2, help="pools the nodes are split into")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--report", metavar="FILE", help="also write the summary rows here")
    args = parser.parse_args()
    n, lat, par = args.nodes, args.latency, args.parallelism
    bound = math.ceil(n / par) * lat
    print(f"apply_throughput: N={n} creates in {args.pools} pool(s), L={lat} s, P={par}; "
          f"bound ceil(N/P) x L = {bound:.2f} s; {args.repeat} runs each; {load_note()}")

    runs = []
    for i in range(args.repeat):
        r = in_process(n, args.pools, lat, par)
        runs.append(r)
        print(f"  in-process run {i + 1}: apply {r['apply_s']:.3f} s (ratio "
              f"{r['apply_s'] / bound:.3f}), whole {r['whole_s']:.3f} s; first provision at "
              f"+{r['first_start_s']:.3f} s, ran alone {r['alone_s']:.3f} s, concurrency "
              f"{r['concurrency']:.1f} of {par}, last call ended +{r['last_end_s']:.3f} s")
    cli = []
    with tempfile.TemporaryDirectory(prefix="apply-throughput-pyc-") as cache:
        subprocess.run([sys.executable, "-m", "navarch_plan", "--version"], check=True,
                       env=installed_env(Path(cache)), capture_output=True)
        for i in range(args.repeat + 1):
            took = whole_command(n, args.pools, lat, par, Path(cache))
            if i == 0:
                continue  # the first run fills the bytecode cache
            cli.append(took)
            print(f"  command run {i}: {cli[-1]:.3f} s")

    apply_s = median(r["apply_s"] for r in runs)
    whole_s = median(r["whole_s"] for r in runs)
    cli_s = median(cli)
    ratio = apply_s / bound
    print(f"\napply phase: {spread([r['apply_s'] for r in runs])} s -> ratio {ratio:.3f} "
          f"[{verdict(ratio <= TARGET)}, target <= {TARGET}]")
    print(f"  of which: first provision started +{median(r['first_start_s'] for r in runs):.3f}"
          f" s, first call alone {median(r['alone_s'] for r in runs):.3f} s, effective "
          f"concurrency {median(r['concurrency'] for r in runs):.1f} of {par}, last call ended "
          f"+{median(r['last_end_s'] for r in runs):.3f} s")
    print(f"whole run in-process: {spread([r['whole_s'] for r in runs])} s (setup "
          f"{median(r['setup_s'] for r in runs):.3f}, plan "
          f"{median(r['plan_s'] for r in runs):.3f}, apply {apply_s:.3f}, finish "
          f"{median(r['finish_s'] for r in runs):.3f}) -> ratio {whole_s / bound:.3f} to the "
          f"bound, {whole_s / (bound + lat):.3f} to bound + one list() ({bound + lat:.2f} s)")
    print(f"whole command (CLI): {spread(cli)} s -> ratio {cli_s / bound:.3f} to the bound, "
          f"{cli_s / (bound + lat):.3f} to bound + one list()")
    rows = [
        Row("apply_throughput", f"apply phase N={n} L={lat} P={par}: wall / (ceil(N/P) x L)",
            f"<= {TARGET}", f"{ratio:.3f} ({apply_s:.3f} s / {bound:.2f} s)", ratio <= TARGET),
        Row("apply_throughput", "whole in-process run / (bound + one list())", "info",
            f"{whole_s / (bound + lat):.3f} ({whole_s:.3f} s)", None),
        Row("apply_throughput", "whole command `navarch apply` / (bound + one list())", "info",
            f"{cli_s / (bound + lat):.3f} ({cli_s:.3f} s; {cli_s / bound:.3f} x bound)", None),
    ]
    print(f"\nSummary ({load_note()}):")
    write_report(args.report, rows)


if __name__ == "__main__":
    main()

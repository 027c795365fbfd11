"""Time per action of apply at 1,000 and 10,000 creates on a persistent fake cloud (SQLite
file) with latency 0 and a persistent local state (snapshot + fsynced journal): it must
not grow with N (target: per-action time at 10,000 / at 1,000 <= 1.5). Anything on the
path of one action that costs O(N) shows here.

Sizes are measured in turn, --repeat rounds (interleaved, so a change in machine load
hits every size alike); medians. Within each run it also compares the first and the last
tenth of the actions to complete (time per action late in the run / early in it), which
shows per-action cost growing with what is already in state or in the cloud.

    python benchmarks/apply_scale.py [--sizes 1000 10000] [--parallelism 10] [--repeat 3]
                                     [--report FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _fleet import Row, engine, load_note, median, spread, verdict, write_config, write_report

from navarch_plan.apply.hooks import Hooks
from navarch_plan.planner import PlanOptions

TARGET = 1.5


class Stamps(Hooks):
    def __init__(self) -> None:
        self.done: list[float] = []
        self._lock = threading.Lock()

    def action_done(self, action: Any) -> None:
        with self._lock:
            self.done.append(time.perf_counter())


def run(size: int, parallelism: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"apply-scale-{size}-") as tmp:
        config = write_config(Path(tmp), size, pools=max(1, size // 100))
        eng = engine(config)
        eng.hooks = stamps = Stamps()
        with eng.locked("apply"):
            plan = eng.plan(PlanOptions())
            started = time.perf_counter()
            result = eng.apply(plan, parallelism)
            took = time.perf_counter() - started
    assert result.ok and len(result.done) == size, result.failed
    done = stamps.done
    tenth = max(1, size // 10)
    early = (done[tenth - 1] - started) / tenth
    late = (done[-1] - done[-tenth - 1]) / tenth if size > tenth else early
    return {"apply_s": took, "per_action_ms": 1000 * took / size, "early_ms": 1000 * early,
            "late_ms": 1000 * late}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--parallelism", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--report", metavar="FILE", help="also write the summary rows here")
    args = parser.parse_args()
    print(f"apply_scale: creates at latency 0, P={args.parallelism}, persistent fake cloud and "
          f"state; {args.repeat} rounds; {load_note()}")
    runs: dict[int, list[dict[str, float]]] = {s: [] for s in args.sizes}
    for round_ in range(args.repeat):
        for size in args.sizes:
            r = run(size, args.parallelism)
            runs[size].append(r)
            print(f"  round {round_ + 1}: {size:>6} creates in {r['apply_s']:7.2f} s, "
                  f"{r['per_action_ms']:.3f} ms/action (first tenth {r['early_ms']:.3f}, last "
                  f"tenth {r['late_ms']:.3f} ms/action)")
    per = {s: median(r["per_action_ms"] for r in rs) for s, rs in runs.items()}
    print()
    for size, rs in runs.items():
        drift = median(r["late_ms"] / r["early_ms"] for r in rs)
        print(f"apply {size:>6} creates: {spread([r['apply_s'] for r in rs])} s, "
              f"{per[size]:.3f} ms/action; last tenth / first tenth {drift:.2f}")
    small, large = min(per), max(per)
    ratio = per[large] / per[small]
    print(f"per-action time ratio {large} / {small}: {ratio:.2f} [{verdict(ratio <= TARGET)}, "
          f"target <= {TARGET}]")
    rows = [Row("apply_scale", f"per-action time {large} / {small} creates", f"<= {TARGET}",
                f"{ratio:.2f} ({per[large]:.3f} / {per[small]:.3f} ms)", ratio <= TARGET),
            Row("apply_scale", f"{large} creates: last tenth / first tenth per action", "info",
                f"{median(r['late_ms'] / r['early_ms'] for r in runs[large]):.2f}", None)]
    print(f"\nSummary ({load_note()}):")
    write_report(args.report, rows)


if __name__ == "__main__":
    main()

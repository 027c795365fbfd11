"""Run every benchmark, one after another (each in its own process), then print one table:
benchmark, figure, target, measured, ok/over. Exits 1 if any target was missed.

    python benchmarks/run_all.py [--only startup list_fanout ...] [--quick] [--log DIR]

--quick passes smaller settings (plan_scale without 50,000 nodes, fewer repeats) for a
first look; the figures that count come from a full run. Each benchmark's own output is
shown as it runs (and saved to DIR/NAME.txt with --log). crash_soak.py is a soak test,
not a benchmark, and is not run here. versus_terraform.py has no target (its ratios are
informational) and is skipped, saying so, without a `terraform` on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _fleet import HERE, Row, load_note

BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    # name: (full arguments, --quick arguments)
    "startup": ([], ["--repeat", "5"]),
    "list_fanout": ([], ["--repeat", "3"]),
    "apply_throughput": ([], ["--repeat", "3"]),
    "mixed_providers": ([], ["--repeat", "2"]),
    "apply_scale": ([], ["--repeat", "1"]),
    "plan_scale": ([], ["--sizes", "1000", "10000", "--repeat", "3"]),
    # Informational; says "skipped" (and still reports) when no terraform is on PATH.
    "versus_terraform": ([], ["--resources", "2000", "--repeat", "2"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="smaller settings, a first look")
    parser.add_argument("--log", metavar="DIR", help="save each benchmark's output here")
    args = parser.parse_args()
    if args.log:
        os.makedirs(args.log, exist_ok=True)
    print(f"run_all: {', '.join(args.only)}{' (quick)' if args.quick else ''}; "
          f"{load_note()}\n", flush=True)
    rows: list[Row] = []
    took: dict[str, float] = {}
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="run-all-") as tmp:
        for name in args.only:
            full, quick = BENCHMARKS[name]
            report = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, str(HERE / f"{name}.py"), *(quick if args.quick else full),
                   "--report", str(report)]
            print(f"=== {name}: {' '.join(cmd[1:-2])}", flush=True)
            started = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=HERE, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            assert proc.stdout is not None
            lines = []
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                lines.append(line)
            code = proc.wait()
            took[name] = time.perf_counter() - started
            if args.log:
                Path(args.log, f"{name}.txt").write_text("".join(lines))
            if code != 0 or not report.exists():
                failed.append(name)
                rows.append(Row(name, "benchmark ran", "exit 0", f"exit {code}", False))
            else:
                rows.extend(Row(**r) for r in json.loads(report.read_text()))
            print(f"=== {name} took {took[name]:.0f} s\n", flush=True)

    widths = [max(len(getattr(r, f)) for r in rows) for f in ("benchmark", "figure")]
    widths += [max(len(r.target) for r in rows), max(len(r.measured) for r in rows)]
    head = ("benchmark", "figure", "target", "measured")
    print(f"Summary ({load_note()}; durations: "
          + ", ".join(f"{n} {t:.0f} s" for n, t in took.items()) + ")\n")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + "  result")
    print("  ".join("-" * w for w in widths) + "  ------")
    for r in rows:
        cells = (r.benchmark, r.figure, r.target, r.measured)
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
              + f"  {r.verdict}")
    over = [r for r in rows if r.ok is False]
    print(f"\n{len(rows)} figures: {sum(r.ok is True for r in rows)} ok, {len(over)} over "
          f"target, {sum(r.ok is None for r in rows)} informational"
          + (f"; failed to run: {', '.join(failed)}" if failed else ""))
    return 1 if over or failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Crash soak: SIGKILL the real `navarch apply` N times at seeded moments and targeted
windows (tests/crash_harness.py), checking after every kill that the plan is exactly
right and at the end of every chain of kills that apply converges.

    python benchmarks/crash_soak.py [--kills 500] [--seed 1] [--workers 3]
                                    [--scenarios fleet deps ...] [--chain 4]
                                    [--change-config 0.3] [--lag 0.5]

Prints kills survived, where they landed, instances leaked, duplicated and discarded
(all must be 0) and every problem found; exits 1 if anything went wrong. With --lag,
new instances stay invisible to navarch that long (list, get and terminate), and each
plan after a kill is checked for what lag must never cause rather than exactly.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import Workdir  # noqa: E402
from tests.crash_harness import SCENARIOS, Stats, run_scenario  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=500, help="kills in all (default 500)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=3, help="scenarios run at once")
    parser.add_argument("--scenarios", nargs="+", choices=sorted(SCENARIOS),
                        default=list(SCENARIOS))
    parser.add_argument("--chain", type=int, default=4, help="most kills before converging")
    parser.add_argument("--change-config", type=float, default=0.0, metavar="P",
                        help="chance that the config flips to the scenario's other fleet "
                             "after a kill, before the plan check (default 0)")
    parser.add_argument("--lag", type=float, default=0.0, metavar="SECONDS",
                        help="visibility lag of new instances (default 0: none)")
    parser.add_argument("--batch", type=int, default=12,
                        help="kills per scenario run (each run starts in a fresh folder)")
    args = parser.parse_args()

    jobs = []
    remaining, i = args.kills, 0
    while remaining > 0:
        name = args.scenarios[i % len(args.scenarios)]
        jobs.append((name, args.seed * 100_003 + i, min(args.batch, remaining)))
        remaining -= args.batch
        i += 1

    def one(job: tuple[str, int, int]) -> Stats:
        name, seed, kills = job
        with tempfile.TemporaryDirectory(prefix=f"crash-{name}-") as tmp:
            return run_scenario(Workdir(Path(tmp)), SCENARIOS[name], seed, kills, args.chain,
                                args.change_config, args.lag)

    total = Stats()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for done, stats in enumerate(pool.map(one, jobs), 1):
            total.merge(stats)
            print(f"[{done}/{len(jobs)}] kills {total.kills}, problems "
                  f"{len(total.problems)}, {time.monotonic() - started:.0f}s", flush=True)
    took = time.monotonic() - started

    print()
    print(f"kills survived:      {total.kills} ({total.missed} more attempts finished first)")
    print(f"chains converged:    {total.chains}")
    print(f"instances leaked:    {total.leaked} (must be 0)")
    print(f"duplicates:          {total.duplicates} (must be 0)")
    print(f"discarded:           {total.discarded} (must be 0)")
    print(f"problems:            {len(total.problems)}")
    print(f"wall time:           {took:.0f} s ({took / max(1, total.kills):.2f} s per kill)")
    print("kills by strategy:   " + ", ".join(f"{k} {v}" for k, v in
                                              sorted(total.by_strategy.items())))
    print("where kills landed:")
    for where, count in total.landed.most_common():
        print(f"  {count:5d}  {where}")
    for problem in total.problems[:20]:
        print(f"PROBLEM: {problem}")
    ok = not total.problems and total.leaked == total.duplicates == total.discarded == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Time per action of apply at 1,000 and 10,000 creates on a persistent fake cloud with
latency 0 and a persistent local state: it must not grow with N (target ratio <= 1.5).

    python benchmarks/apply_scale.py [--sizes 1000 10000] [--parallelism 10]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _fleet import apply, write_config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--parallelism", type=int, default=10)
    args = parser.parse_args()
    per_action = {}
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            config = write_config(Path(tmp), size, pools=max(1, size // 100))
            took, done = apply(config, args.parallelism)
            per_action[size] = took / done
            print(f"apply {size:>6} creates: {took:7.2f} s, {1000 * took / done:6.3f} ms/action")
    small, large = min(per_action), max(per_action)
    ratio = per_action[large] / per_action[small]
    verdict = "ok" if ratio <= 1.5 else "OVER TARGET"
    print(f"per-action time ratio {large} / {small}: {ratio:.2f} (target <= 1.5: {verdict})")


if __name__ == "__main__":
    main()

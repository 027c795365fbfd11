"""A slow provider must not hold back a fast one. One pool on a provider limited to one
launch per 2 s, another on an unlimited provider with per-call latency L; one apply with
parallelism P. The unlimited pool must finish as if it were alone: within 1.15 x its own
bound ceil(N/P) x L, and within 1.15 x the time it takes when really alone (measured).

The slow pool comes first in the config, so its actions are the first the executor
starts: the adversarial order.

The limit uses navarch's per-provider option (`rate_limit: {launches_per_second: 0.5}` on
the provider) when this navarch accepts it; the slow fake's call log then shows whether
the launches were really spaced. When the option does not exist yet, the slow provider is
EMULATED with a fake latency of 2 s per call: that is latency (every call takes 2 s, and
calls may overlap), not a rate limit; the output says so. `--emulate` forces it.

    python benchmarks/mixed_providers.py [--fast-nodes 200] [--slow-nodes 5] [--latency 0.2]
                                         [--parallelism 20] [--repeat 3] [--emulate]
                                         [--report FILE]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _fleet import Row, load_note, median, spread, verdict, write_doc, write_report

from navarch_plan.apply.hooks import Hooks
from navarch_plan.engine import Engine, load_config
from navarch_plan.errors import ConfigError
from navarch_plan.planner import PlanOptions
from navarch_plan.providers.fake import FakeProvider

TARGET = 1.15
SLOW_INTERVAL = 2.0  # seconds per launch on the slow provider
# The option the lead is adding; edit here if it lands under another name.
RATE_LIMIT = {"rate_limit": {"launches_per_second": 1 / SLOW_INTERVAL}}


class Finish(Hooks):
    """When each pool's last action completed (monotonic seconds)."""

    def __init__(self) -> None:
        self.done: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self._lock = threading.Lock()

    def action_done(self, action: Any) -> None:
        with self._lock:
            self.done[action.group] = time.monotonic()
            self.count[action.group] = self.count.get(action.group, 0) + 1


def config_doc(fast: int, slow: int, latency: float, emulate: bool) -> dict[str, Any]:
    slow_provider: dict[str, Any] = {"type": "fake", "path": "slow.db"}
    if emulate:
        slow_provider["latency"] = SLOW_INTERVAL
    else:
        slow_provider.update(latency=latency, **RATE_LIMIT)
    pools: dict[str, Any] = {}
    if slow:
        pools["slow-pool"] = {"provider": "slow", "region": "us-west-1", "nodes": slow,
                              "instance_type": "gpu_1x_a10"}
    pools["fast-pool"] = {"provider": "fast", "region": "us-west-1", "nodes": fast,
                          "instance_type": "gpu_1x_a10"}
    return {"version": 1, "workspace": "bench",
            "providers": {"slow": slow_provider,
                          "fast": {"type": "fake", "path": "fast.db", "latency": latency}},
            "defaults": {"ssh_keys": ["ops"]}, "pools": pools}


def rate_limit_supported() -> tuple[bool, str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_doc(Path(tmp), config_doc(1, 1, 0.0, emulate=False))
        try:
            load_config(str(path))
        except ConfigError as exc:
            return False, str(exc)
    return True, ""


def run(fast: int, slow: int, latency: float, parallelism: int, emulate: bool
        ) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mixed-providers-") as tmp:
        hooks = Finish()
        eng = Engine(load_config(str(write_doc(Path(tmp), config_doc(fast, slow, latency,
                                                                      emulate)))),
                     hooks=hooks)
        with eng.locked("apply"):
            plan = eng.plan(PlanOptions())
            started, wall = time.monotonic(), time.time()
            result = eng.apply(plan, parallelism)
            took = time.monotonic() - started
        assert result.ok, result.failed
        assert hooks.count.get("fast-pool") == fast, hooks.count
        out: dict[str, Any] = {"apply_s": took, "fast_s": hooks.done["fast-pool"] - started}
        calls = FakeProvider("fast", path=str(Path(tmp) / "fast.db")).calls("provision")
        span = max(c["ended"] for c in calls) - min(c["started"] for c in calls)
        out["fast_concurrency"] = sum(c["ended"] - c["started"] for c in calls) / span
        if slow:
            out["slow_s"] = hooks.done["slow-pool"] - started
            starts = sorted(c["started"] - wall for c in
                            FakeProvider("slow", path=str(Path(tmp) / "slow.db")).calls(
                                "provision"))
            gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
            out["slow_min_gap_s"] = min(gaps) if gaps else 0.0
            out["slow_first_s"] = starts[0] if starts else 0.0
            out["slow_starts"] = starts
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast-nodes", type=int, default=200)
    parser.add_argument("--slow-nodes", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.2,
                        help="seconds per call on the fast provider")
    parser.add_argument("--parallelism", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--emulate", action="store_true",
                        help="emulate the slow provider with latency even if rate_limit exists")
    parser.add_argument("--report", metavar="FILE", help="also write the summary rows here")
    args = parser.parse_args()
    fast, slow, lat, par = args.fast_nodes, args.slow_nodes, args.latency, args.parallelism
    supported, why = rate_limit_supported()
    emulate = args.emulate or not supported
    bound = math.ceil(fast / par) * lat
    if emulate:
        mode = (f"EMULATED: slow provider = fake latency {SLOW_INTERVAL} s per call. This is "
                f"LATENCY (each launch takes {SLOW_INTERVAL} s, launches may overlap), NOT a "
                f"rate limit of one launch per {SLOW_INTERVAL} s")
        if not supported:
            mode += f". navarch has no per-provider rate limit option yet ({why})"
    else:
        mode = (f"rate limit: slow provider has {RATE_LIMIT} (one launch per "
                f"{SLOW_INTERVAL} s) and latency {lat} s")
    print(f"mixed_providers: slow-pool {slow} nodes (first in the config), fast-pool {fast} "
          f"nodes at L={lat} s, P={par}; fast pool's own bound ceil(N/P) x L = {bound:.2f} s; "
          f"{args.repeat} runs each; {load_note()}\n  mode: {mode}")

    alone = []
    for i in range(args.repeat):
        r = run(fast, 0, lat, par, emulate)
        alone.append(r["fast_s"])
        print(f"  fast pool alone, run {i + 1}: {alone[-1]:.3f} s; fast calls in flight on "
              f"average {r['fast_concurrency']:.1f} of {par}")
    mixed = []
    for i in range(args.repeat):
        r = run(fast, slow, lat, par, emulate)
        mixed.append(r)
        print(f"  mixed run {i + 1}: fast pool done at {r['fast_s']:.3f} s (fast calls in "
              f"flight on average {r['fast_concurrency']:.1f} of {par}), slow pool at "
              f"{r['slow_s']:.3f} s; slow launches: first at +{r['slow_first_s']:.3f} s, "
              f"closest two {r['slow_min_gap_s']:.3f} s apart; slow launches started at "
              f"+[{', '.join(f'{t:.2f}' for t in r['slow_starts'])}] s")

    alone_s = median(alone)
    fast_s = median(r["fast_s"] for r in mixed)
    slow_s = median(r["slow_s"] for r in mixed)
    gap = median(r["slow_min_gap_s"] for r in mixed)
    to_bound, to_alone = fast_s / bound, fast_s / alone_s
    print(f"\nfast pool alone: {spread(alone)} s (ratio {alone_s / bound:.3f} to its bound)")
    print(f"fast pool beside the slow one: {spread([r['fast_s'] for r in mixed])} s -> "
          f"{to_bound:.3f} x its bound [{verdict(to_bound <= TARGET)}], {to_alone:.3f} x "
          f"alone [{verdict(to_alone <= TARGET)}]")
    # Paced: the last launch starts (slow - 1) intervals after the first, then takes L.
    slow_bound = ((slow - 1) * SLOW_INTERVAL + lat) if not emulate \
        else SLOW_INTERVAL * math.ceil(slow / par)
    print(f"slow pool: {slow_s:.3f} s (its own bound {slow_bound:.2f} s); closest slow "
          f"launches {gap:.3f} s apart" + ("" if emulate else f" (must be >= ~{SLOW_INTERVAL})"))
    rows = [
        Row("mixed_providers", f"fast pool beside slow / own bound (N={fast}, L={lat}, P={par})"
            + (" [slow provider EMULATED by latency]" if emulate else ""),
            f"<= {TARGET}", f"{to_bound:.3f} ({fast_s:.3f} s / {bound:.2f} s)",
            to_bound <= TARGET),
        Row("mixed_providers", "fast pool beside slow / fast pool alone (measured)",
            f"<= {TARGET}", f"{to_alone:.3f} ({fast_s:.3f} s / {alone_s:.3f} s)",
            to_alone <= TARGET),
    ]
    if not emulate:
        rows.append(Row("mixed_providers", "slow provider: closest two launches",
                        f">= {0.95 * SLOW_INTERVAL:.2f} s", f"{gap:.3f} s",
                        gap >= 0.95 * SLOW_INTERVAL))
    print(f"\nSummary ({load_note()}):")
    write_report(args.report, rows)


if __name__ == "__main__":
    main()

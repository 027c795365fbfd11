"""A plan lists every provider once, all at once. Three fake providers whose every call
takes 1 s (fake `latency: 1.0`), each with its own pool already applied: a plan must take
about one round trip (bound 1 s; target <= 1.3 s) and call list() exactly once per
provider (counted from each fake's call log).

Measured in-process (config, lock, state, refresh, planning: what `navarch plan` does
short of printing) and as the whole command (`python -m navarch_plan plan`, interpreter
start included, bytecode cached as in an installed copy), --repeat times each; medians.

    python benchmarks/list_fanout.py [--providers 3] [--latency 1.0] [--nodes 10]
                                     [--repeat 5] [--report FILE]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _fleet import (
    Row,
    build_direct,
    engine,
    installed_env,
    load_note,
    median,
    spread,
    verdict,
    write_doc,
    write_report,
)

from navarch_plan.planner import PlanOptions
from navarch_plan.providers.fake import FakeProvider

TARGET_S = 1.3


def config_doc(providers: int, latency: float, nodes: int) -> dict[str, Any]:
    names = [f"cloud-{chr(ord('a') + i)}" for i in range(providers)]
    return {
        "version": 1, "workspace": "bench",
        "providers": {n: {"type": "fake", "path": f"{n}.db", "latency": latency}
                      for n in names},
        "defaults": {"ssh_keys": ["ops"]},
        "pools": {f"pool-{n}": {"provider": n, "region": "us-west-1", "nodes": nodes,
                                "instance_type": "gpu_1x_a10"} for n in names},
    }


def counted(folder: Path, names: list[str], op: str) -> dict[str, int]:
    return {n: len(FakeProvider(n, path=str(folder / f"{n}.db")).calls(op)) for n in names}


def one(folder: Path, names: list[str], how: Callable[[], Any]) -> dict[str, Any]:
    lists = counted(folder, names, "list")
    types = counted(folder, names, "list_instance_types")
    started = time.perf_counter()
    out = how()
    took = time.perf_counter() - started
    after_l = counted(folder, names, "list")
    after_t = counted(folder, names, "list_instance_types")
    return {"wall_s": took, "out": out,
            "lists": {n: after_l[n] - lists[n] for n in names},
            "types": {n: after_t[n] - types[n] for n in names}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--providers", type=int, default=3)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per fake call")
    parser.add_argument("--nodes", type=int, default=10, help="nodes per provider's pool")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--report", metavar="FILE", help="also write the summary rows here")
    args = parser.parse_args()
    bound = args.latency
    print(f"list_fanout: {args.providers} fake providers, every call {args.latency} s, "
          f"{args.nodes} nodes each (already applied); bound: one round trip = {bound:.2f} s; "
          f"{args.repeat} runs each; {load_note()}")
    with tempfile.TemporaryDirectory(prefix="list-fanout-") as tmp:
        folder = Path(tmp)
        doc = config_doc(args.providers, args.latency, args.nodes)
        names = list(doc["providers"])
        config = write_doc(folder, doc)
        build_direct(config)
        env = installed_env(folder)

        def in_process() -> Any:
            eng = engine(config)
            with eng.locked("plan"):
                plan = eng.plan(PlanOptions())
            return plan.summary()

        def command() -> Any:
            proc = subprocess.run([sys.executable, "-m", "navarch_plan", "plan",
                                   "--detailed-exitcode", "-c", str(config)],
                                  cwd=tmp, capture_output=True, text=True, env=env)
            if proc.returncode not in (0, 2):
                raise SystemExit(f"navarch plan failed:\n{proc.stderr}")
            return proc.returncode

        command()  # untimed: fills the bytecode cache
        results: dict[str, list[dict[str, Any]]] = {"in-process plan": [], "navarch plan": []}
        for i in range(args.repeat):
            for label, how in (("in-process plan", in_process), ("navarch plan", command)):
                r = one(folder, names, how)
                results[label].append(r)
                print(f"  {label} run {i + 1}: {r['wall_s']:.3f} s; list() calls "
                      f"{r['lists']}; list_instance_types() calls {r['types']}")

    rows = []
    print()
    for label, runs in results.items():
        wall = median(r["wall_s"] for r in runs)
        exact = all(v == 1 for r in runs for v in r["lists"].values())
        per = sorted({v for r in runs for v in r["lists"].values()})
        print(f"{label}: {spread([r['wall_s'] for r in runs])} s -> {wall / bound:.2f} x one "
              f"round trip [{verdict(wall <= TARGET_S)}, target <= {TARGET_S} s]; list() per "
              f"provider per plan: {per} [{verdict(exact)}]")
        if label == "navarch plan":
            codes = {r["out"] for r in runs}
            print(f"  exit codes with --detailed-exitcode: {sorted(codes)} (0 = no changes)")
        else:
            s = runs[-1]["out"]
            print(f"  plan: {s['unchanged']} unchanged, {s['drift']} drift")
        rows.append(Row("list_fanout", f"{label}: wall ({args.providers} providers x "
                        f"{args.latency} s list)", f"<= {TARGET_S} s",
                        f"{wall:.3f} s ({wall / bound:.2f} x bound)", wall <= TARGET_S))
        rows.append(Row("list_fanout", f"{label}: list() calls per provider per plan",
                        "exactly 1", ", ".join(map(str, per)), exact))
    print(f"\nSummary ({load_note()}):")
    write_report(args.report, rows)


if __name__ == "__main__":
    main()

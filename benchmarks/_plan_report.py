"""plan_scale.py's figures: what it prints per size and variant, the growth with N, and
the summary rows with their targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _fleet import Row, loglog_slope, median, spread

__all__ = ["VARIANTS", "growth_rows", "size_rows"]

RATIO_TARGET = 3.0
MS_PER_NODE_TARGET = 0.2
KB_PER_NODE_TARGET = 30.0
EXPONENT_TARGET = 1.15

VARIANTS = (("no-change", 0), ("10% changed", 10))  # percent of pools changed

Key = tuple[str, int]
Runs = dict[Key, list[dict[str, Any]]]


def size_rows(folders: dict[int, tuple[Path, int]], runs: Runs, last: dict[Key, Any],
              mem: dict[Key, Any], per_pool: int) -> tuple[dict[Key, dict[str, Any]], list[Row]]:
    """Print every size and variant; return the medians by (variant, N), and the rows."""
    rows: list[Row] = []
    results: dict[Key, dict[str, Any]] = {}
    for nodes, (_, pools) in folders.items():
        print(f"\nN = {nodes} ({pools} pools)")
        for label, percent in VARIANTS:
            key = (label, nodes)
            rs, m = runs[key], mem[key]
            med = {k: median(run[k] for run in rs) for k in rs[0]}
            res = {**med, "ratio": med["plan_s"] / med["load_s"],
                   "raw_ratio": med["plan_s"] / med["raw_s"], **m}
            results[key] = res
            _print_variant(label, nodes, rs, res, last[key]["summary"])
            rows += _variant_rows(f"{label} N={nodes}", percent, nodes, pools * percent // 100
                                  * per_pool, last[key], res)
    return results, rows


def _print_variant(label: str, nodes: int, rs: list[dict[str, Any]], med: dict[str, Any],
                   s: dict[str, int]) -> None:
    print(f"  {label:>11}: plan {spread([x['plan_s'] for x in rs])} s, cpu "
          f"{med['plan_cpu_s']:.3f} s [config {med['config_s']:.3f}, lock+state "
          f"{med['lock_state_s']:.3f}, list {med['refresh_s']:.3f}, planning "
          f"{med['planning_s']:.3f}, unlock {med['unlock_s']:.3f}; render "
          f"{med['render_s']:.3f}]")
    print(f"  {'':>11}  raw bound {spread([x['raw_s'] for x in rs])} s [yaml (C) "
          f"{med['raw_yaml_s']:.3f}, json {med['raw_json_s']:.3f}, sqlite "
          f"{med['raw_sqlite_s']:.3f}] -> ratio plan/raw {med['raw_ratio']:.2f}")
    print(f"  {'':>11}  load {spread([x['load_s'] for x in rs])} s [config "
          f"{med['load_config_s']:.3f}, state {med['load_state_s']:.3f}, list "
          f"{med['load_list_s']:.3f}] -> ratio plan/load {med['ratio']:.2f}")
    print(f"  {'':>11}  {1e6 * med['plan_s'] / nodes:.1f} us/node; peak "
          f"{med['peak_mb']:.0f} MB (+{med['peak_mb'] - med['baseline_mb']:.0f} MB over "
          f"{med['baseline_mb']:.0f} MB with navarch imported)")
    print(f"  {'':>11}  plan: {s['replace']} replace, {s['create']} create, "
          f"{s['delete']} delete, {s['unchanged']} unchanged, {s['drift']} drift")


def _variant_rows(name: str, percent: int, nodes: int, want: int, r: dict[str, Any],
                  res: dict[str, Any]) -> list[Row]:
    s = r["summary"]
    if percent == 0:
        right = r["changes"] == 0 and s["unchanged"] == nodes and s["drift"] == 0 \
            and not r["has_changes"]
        rows = [Row("plan_scale", f"{name}: changes / unchanged / drift", f"0 / {nodes} / 0",
                    f"{r['changes']} / {s['unchanged']} / {s['drift']}", right)]
    else:
        right = s["replace"] == want and s["unchanged"] == nodes - want
        rows = [Row("plan_scale", f"{name}: replace / unchanged", f"{want} / {nodes - want}",
                    f"{s['replace']} / {s['unchanged']}", right)]
    plan_s, limit = res["plan_s"], MS_PER_NODE_TARGET * nodes / 1000
    mb_limit = max(300.0, KB_PER_NODE_TARGET * nodes / 1024)
    return rows + [
        Row("plan_scale", f"{name}: plan / raw bound", f"<= {RATIO_TARGET}",
            f"{res['raw_ratio']:.2f} ({plan_s:.3f} s / {res['raw_s']:.3f} s)",
            res["raw_ratio"] <= RATIO_TARGET),
        Row("plan_scale", f"{name}: plan / load", f"<= {RATIO_TARGET}",
            f"{res['ratio']:.2f} ({plan_s:.3f} s / {res['load_s']:.3f} s)",
            res["ratio"] <= RATIO_TARGET),
        Row("plan_scale", f"{name}: plan wall", f"<= {limit:.2f} s", f"{plan_s:.3f} s",
            plan_s <= limit),
        Row("plan_scale", f"{name}: peak memory", f"<= {mb_limit:.0f} MB",
            f"{res['peak_mb']:.0f} MB", res["peak_mb"] <= mb_limit),
    ]


def growth_rows(sizes: list[int], results: dict[Key, dict[str, Any]]) -> list[Row]:
    """Print how time and memory grow with N (log-log slopes of the medians)."""
    if len(sizes) < 2:
        return []
    print("\nGrowth with N (log-log least-squares slope of the medians; 1.0 = linear):")
    rows: list[Row] = []
    for label, _ in VARIANTS:
        def fit(key: str, ns: list[int], lbl: str = label) -> float:
            return loglog_slope(ns, [results[(lbl, n)][key] for n in ns])

        per_node = ", ".join(f"{n}: {1e6 * results[(label, n)]['plan_s'] / n:.1f} us"
                             for n in sizes)
        mem_slope = loglog_slope(sizes, [max(1.0, results[(label, n)]["peak_mb"]
                                             - results[(label, n)]["baseline_mb"])
                                         for n in sizes])
        top = sizes[-2:]
        print(f"  {label:>11}: plan time per node {per_node}")
        print(f"  {'':>11}  exponent over {sizes[0]}..{sizes[-1]}: plan "
              f"{fit('plan_s', sizes):.2f} (cpu {fit('plan_cpu_s', sizes):.2f}), raw bound "
              f"{fit('raw_s', sizes):.2f}, load {fit('load_s', sizes):.2f}, planning alone "
              f"{fit('planning_s', sizes):.2f}, memory over baseline {mem_slope:.2f}")
        print(f"  {'':>11}  exponent {top[0]} -> {top[1]}: plan {fit('plan_s', top):.2f} "
              f"(cpu {fit('plan_cpu_s', top):.2f}), raw bound {fit('raw_s', top):.2f}, load "
              f"{fit('load_s', top):.2f}, config {fit('config_s', top):.2f}, lock+state "
              f"{fit('lock_state_s', top):.2f}, list {fit('refresh_s', top):.2f}, planning "
              f"{fit('planning_s', top):.2f}")
        all_fit, top_fit = fit("plan_s", sizes), fit("plan_s", top)
        rows += [
            Row("plan_scale", f"{label}: growth exponent of plan time, {sizes[0]}..{sizes[-1]}",
                f"<= {EXPONENT_TARGET}", f"{all_fit:.2f}", all_fit <= EXPONENT_TARGET),
            Row("plan_scale", f"{label}: growth exponent of plan time, {top[0]}->{top[1]}",
                f"<= {EXPONENT_TARGET}", f"{top_fit:.2f} (cpu {fit('plan_cpu_s', top):.2f})",
                top_fit <= EXPONENT_TARGET),
            Row("plan_scale", f"{label}: growth exponent of memory", f"<= {EXPONENT_TARGET}",
                f"{mem_slope:.2f}", mem_slope <= EXPONENT_TARGET),
        ]
    return rows

"""Start-up cost: `navarch --version` and a fake-only `navarch plan` must import no cloud
SDK (boto3/botocore, google.*, grpc, httpx). Checked twice, each in a fresh interpreter:
by listing sys.modules after navarch's own entry point ran, and from `python -X importtime`.

Prints the -X importtime totals (sum of the cumulative microseconds of the top-level
imports: all of them, the interpreter's own start-up, and navarch's; median of three
runs), the slowest top-level imports, and wall times (median of --repeat runs) against
the floor of `python -c pass`. Measured with bytecode cached (as an installed copy runs;
the cache is kept in a temporary PYTHONPYCACHEPREFIX, out of the checkout) and, when
PYTHONDONTWRITEBYTECODE is set as on this machine, also as set.

    python benchmarks/startup.py [--repeat 9] [--report FILE]
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
from typing import Any

from _fleet import Row, load_note, median, spread, write_doc, write_report

SDKS = ("boto3", "botocore", "s3transfer", "google", "grpc", "httpx", "httpcore")
# What the console script `navarch` does (see [project.scripts]).
LAUNCH = "import sys; from navarch_plan.cli.main import main; sys.exit(main())"
PROBE = f"""
import json, sys
from navarch_plan.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sdks = sorted(m for m in sys.modules if m.split(".")[0] in {SDKS!r})
print("\\n" + json.dumps({{"code": code, "sdks": sdks, "modules": len(sys.modules)}}))
"""


def probe(cwd: Path, argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=cwd, capture_output=True,
                          text=True, env=env)
    *out, last = proc.stdout.rstrip("\n").split("\n")
    report = json.loads(last)
    report["out"] = "\n".join(out)
    return report


def importtime(cwd: Path, argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", LAUNCH, *argv], cwd=cwd,
                          capture_output=True, text=True, env=env)
    top: list[tuple[str, int]] = []
    every: list[str] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if not cumulative.strip().isdigit():
            continue  # the header
        every.append(name.strip())
        if not name.startswith("  ", 1):  # top level: one space after the bar, no indent
            top.append((name.strip(), int(cumulative)))
    first_ours = next((i for i, (n, _) in enumerate(top) if n.startswith("navarch_plan")),
                      len(top))
    return {
        "total_us": sum(us for _, us in top),
        "interpreter_us": sum(us for _, us in top[:first_ours]),
        "navarch_us": sum(us for n, us in top if n.startswith("navarch_plan")),
        "after_us": sum(us for _, us in top[first_ours:]),
        "slowest": sorted(top[first_ours:], key=lambda t: -t[1])[:6],
        "modules": len(every),
        "sdks": sorted({n for n in every if n.split(".")[0] in SDKS}),
        "code": proc.returncode,
    }


def walls(cwd: Path, cmds: dict[str, tuple[list[str], dict[str, str]]], repeat: int
          ) -> dict[str, list[float]]:
    """Wall time of each command, `repeat` rounds of all of them in turn (interleaved, so
    a change in machine load hits every command alike)."""
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(repeat):
        for name, (cmd, env) in cmds.items():
            started = time.perf_counter()
            subprocess.run(cmd, cwd=cwd, capture_output=True, check=False, env=env)
            times[name].append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--report", metavar="FILE", help="also write the summary rows here")
    args = parser.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        folder = Path(tmp)
        config = write_doc(folder, {
            "version": 1, "workspace": "startup",
            "providers": {"sim": {"type": "fake", "path": "cloud.db"}},
            "defaults": {"ssh_keys": ["ops"]},
            "pools": {"workers": {"provider": "sim", "region": "us-west-1", "nodes": 1,
                                  "instance_type": "gpu_1x_a10"}}})
        cases = (("navarch --version", ["--version"], "navarch "),
                 ("navarch plan (fake only)", ["plan", "-c", str(config)], "Plan: 1 to add"))
        # Bytecode cached as an installed wheel has it, kept out of the checkout.
        cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        envs = {"bytecode cached": cached}
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            envs["as set here (PYTHONDONTWRITEBYTECODE: every module compiled every run)"] = \
                dict(os.environ)
        for _, argv, _ in cases:  # fill the bytecode cache
            subprocess.run([sys.executable, "-c", LAUNCH, *argv], cwd=folder, env=cached,
                           capture_output=True, check=False)
        print(f"startup: Python {sys.version.split()[0]}; wall times are medians of "
              f"{args.repeat}, commands interleaved; {load_note()}")
        cmds: dict[str, tuple[list[str], dict[str, str]]] = {
            "floor": ([sys.executable, "-c", "pass"], cached)}
        for mode, env in envs.items():
            for label, argv, _ in cases:
                cmds[f"{label} [{mode}]"] = ([sys.executable, "-c", LAUNCH, *argv], env)
        timed = walls(folder, cmds, args.repeat)
        floor = median(timed["floor"])
        print(f"  floor `python -c pass`: {spread(timed['floor'])} s")
        for mode, env in envs.items():
            print(f"\n-- {mode}")
            for label, argv, expect in cases:
                p = probe(folder, argv, env)
                its = [importtime(folder, argv, env) for _ in range(3)]
                it = dict(sorted(its, key=lambda x: x["total_us"])[1])  # the median run
                ran = p["code"] == 0 and expect in p["out"] and it["code"] == 0
                times = timed[f"{label} [{mode}]"]
                w = median(times)
                print(f"{label}: {'ran' if ran else 'DID NOT RUN AS EXPECTED'} "
                      f"(exit {p['code']})")
                print(f"  cloud SDK modules: sys.modules {p['sdks'] or 'none'}; -X importtime "
                      f"{it['sdks'] or 'none'} ({p['modules']} modules in sys.modules)")
                print(f"  -X importtime: all top-level imports {it['total_us'] / 1000:.1f} ms "
                      f"cumulative = interpreter start-up {it['interpreter_us'] / 1000:.1f} ms "
                      f"+ from the entry point on {it['after_us'] / 1000:.1f} ms (navarch_plan "
                      f"modules {it['navarch_us'] / 1000:.1f} ms); {it['modules']} modules")
                print("  slowest top-level imports after start-up: " + ", ".join(
                    f"{n} {us / 1000:.1f} ms" for n, us in it["slowest"]))
                print(f"  wall: {spread(times)} s = {w / floor:.2f} x the bare interpreter "
                      f"(+{(w - floor) * 1000:.0f} ms)")
                short = mode.split(" (")[0]
                clean = not p["sdks"] and not it["sdks"] and ran
                rows.append(Row("startup", f"{label} [{short}]: cloud SDKs imported", "none",
                                ", ".join(p["sdks"] + it["sdks"]) or "none", clean))
                rows.append(Row("startup", f"{label} [{short}]: -X importtime total "
                                "(navarch_plan part)", "info", f"{it['total_us'] / 1000:.1f} ms "
                                f"({it['navarch_us'] / 1000:.1f} ms)", None))
                rows.append(Row("startup", f"{label} [{short}]: wall / `python -c pass`",
                                "info", f"{w:.3f} s / {floor:.3f} s = {w / floor:.2f}", None))
    print(f"\nSummary ({load_note()}):")
    write_report(args.report, rows)


if __name__ == "__main__":
    main()

"""Side by side with Terraform: N resources (10,000 by default) created from nothing
(`apply`), then a plan that finds nothing to do, each tool run as its command: wall time
and peak memory of every run, and the ratios terraform / navarch (above 1: navarch is
faster or smaller).

- Terraform: `terraform_data` resources (built into Terraform: no provider to download,
  `terraform init` works offline), `count = N`, a local backend; `terraform apply
  -auto-approve` and `terraform plan -detailed-exitcode` (exit 0: no changes), with
  TF_IN_AUTOMATION and CHECKPOINT_DISABLE set, -input=false.
- navarch: N nodes (100 per pool) on the fake cloud (a SQLite file), a local state
  (snapshot + fsynced journal); `navarch apply --auto-approve` and `navarch plan
  --detailed-exitcode`, run as installed (bytecode cached, see _fleet.installed_env).

Both apply with their default parallelism (10). What each resource costs is not the same
work: a `terraform_data` create is a state entry; a navarch create is a fake cloud call
(a SQLite transaction) and a journal line fsynced. The plans compare what a no-change
plan costs each tool at N: reading its state and config and refreshing every resource.

Peak memory is each command's own (ru_maxrss of a process started by a small launcher:
ru_maxrss survives exec, so the benchmark's own size must not be its starting point).
Each plan is measured --repeat times (interleaved: terraform, navarch, terraform, ...),
medians; the applies once each (--apply-repeat). Without a `terraform` on PATH the
benchmark says so and reports nothing else.

    python benchmarks/versus_terraform.py [--resources 10000] [--repeat 3]
                                          [--apply-repeat 1] [--report FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from _fleet import Row, installed_env, load_note, median, spread, write_config, write_report

# The launcher: forks, execs the command, waits for it; prints its wall time, exit code
# and peak RSS (KiB). Run with -S (no site): its own size stays small, and that is where
# the command's ru_maxrss starts from.
_LAUNCHER = """
import json, os, sys, time
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"wall_s": time.perf_counter() - t, "rc": os.waitstatus_to_exitcode(status),
                  "peak_mb": usage.ru_maxrss / 1024}))
"""

TF_CONFIG = """terraform {
  backend "local" {}
}

resource "terraform_data" "node" {
  count = %d
  input = {
    pool          = "pool-${floor(count.index / 100)}"
    index         = count.index %% 100
    instance_type = "gpu_1x_a10"
    region        = "us-west-1"
  }
}
"""


def run(cmd: Sequence[str], cwd: Path, env: dict[str, str], ok: Sequence[int] = (0,)
        ) -> dict[str, float]:
    """One command under the launcher: wall time and peak memory (stdout dropped)."""
    proc = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, *cmd], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"launcher failed for {' '.join(cmd)}:\n{proc.stderr}")
    result = dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    if result["rc"] not in ok:
        raise SystemExit(f"{' '.join(cmd)} exited {result['rc']} (expected {list(ok)}):\n"
                         f"{proc.stderr[-2000:]}")
    return result


def terraform_env() -> dict[str, str]:
    env = dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
    if not Path(env.get("TF_CLI_CONFIG_FILE", "/")).is_file():
        env.pop("TF_CLI_CONFIG_FILE", None)  # a missing one only adds a warning
    return env


class Terraform:
    def __init__(self, binary: str, folder: Path, resources: int) -> None:
        self.binary, self.folder, self.env = binary, folder, terraform_env()
        folder.mkdir(parents=True)
        (folder / "main.tf").write_text(TF_CONFIG % resources)
        run([binary, "init", "-input=false", "-no-color"], folder, self.env)

    def apply(self) -> dict[str, float]:
        for leftover in ("terraform.tfstate", "terraform.tfstate.backup"):
            (self.folder / leftover).unlink(missing_ok=True)
        return run([self.binary, "apply", "-auto-approve", "-input=false", "-no-color"],
                   self.folder, self.env)

    def plan(self) -> dict[str, float]:
        return run([self.binary, "plan", "-input=false", "-no-color", "-detailed-exitcode",
                    "-lock=true"], self.folder, self.env)


class Navarch:
    def __init__(self, folder: Path, resources: int) -> None:
        self.folder = folder
        folder.mkdir(parents=True)
        self.config = write_config(folder, resources, max(1, resources // 100))
        self.env = installed_env(folder)
        self.cmd = [sys.executable, "-m", "navarch_plan"]
        run([*self.cmd, "--version"], folder, self.env)  # compiles the bytecode cache

    def apply(self) -> dict[str, float]:
        shutil.rmtree(self.folder / "state", ignore_errors=True)
        for leftover in self.folder.glob("cloud.db*"):
            leftover.unlink()
        return run([*self.cmd, "apply", "--auto-approve", "--no-color", "-c",
                    str(self.config)], self.folder, self.env)

    def plan(self) -> dict[str, float]:
        return run([*self.cmd, "plan", "--no-color", "--detailed-exitcode", "-c",
                    str(self.config)], self.folder, self.env)


def measure(binary: str, resources: int, repeat: int, apply_repeat: int
            ) -> dict[str, dict[str, list[dict[str, float]]]]:
    """{tool: {"apply": [runs], "plan": [runs]}}, interleaved tool by tool."""
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        tool: {"apply": [], "plan": []} for tool in ("terraform", "navarch")}
    with tempfile.TemporaryDirectory(prefix="versus-terraform-") as tmp:
        tools = {"terraform": Terraform(binary, Path(tmp, "tf"), resources),
                 "navarch": Navarch(Path(tmp, "navarch"), resources)}
        for step, times in (("apply", apply_repeat), ("plan", repeat)):
            for i in range(times):
                for name, tool in tools.items():
                    result = getattr(tool, step)()
                    runs[name][step].append(result)
                    print(f"  {step} {i + 1}/{times} {name}: {result['wall_s']:.2f} s, "
                          f"peak {result['peak_mb']:.0f} MB", flush=True)
    return runs


def report(runs: dict[str, dict[str, list[dict[str, float]]]], resources: int) -> list[Row]:
    rows: list[Row] = []
    print(f"\n{resources} resources (medians; ratios terraform / navarch):")
    for step in ("apply", "plan"):
        tf, nv = runs["terraform"][step], runs["navarch"][step]
        walls = [median(r["wall_s"] for r in rs) for rs in (tf, nv)]
        peaks = [median(r["peak_mb"] for r in rs) for rs in (tf, nv)]
        what = "apply from nothing" if step == "apply" else "no-change plan"
        print(f"  {what:>18}: terraform {spread([r['wall_s'] for r in tf])} s, peak "
              f"{peaks[0]:.0f} MB | navarch {spread([r['wall_s'] for r in nv])} s, peak "
              f"{peaks[1]:.0f} MB | wall x{walls[0] / walls[1]:.2f}, memory "
              f"x{peaks[0] / peaks[1]:.2f}")
        rows += [Row("versus_terraform", f"{what}, {resources}: wall terraform / navarch",
                     "info", f"{walls[0] / walls[1]:.2f} ({walls[0]:.2f} s / {walls[1]:.2f} s)",
                     None),
                 Row("versus_terraform", f"{what}, {resources}: peak memory terraform / "
                     "navarch", "info", f"{peaks[0] / peaks[1]:.2f} ({peaks[0]:.0f} MB / "
                     f"{peaks[1]:.0f} MB)", None)]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--resources", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="no-change plans per tool")
    parser.add_argument("--apply-repeat", type=int, default=1, help="applies per tool")
    parser.add_argument("--report", metavar="FILE", help="also write the summary rows here")
    args = parser.parse_args()
    binary = shutil.which("terraform")
    if binary is None:
        print("versus_terraform: skipped: no `terraform` on PATH (terraform_data needs no "
              "provider: any Terraform >= 1.4 will do)")
        write_report(args.report, [Row("versus_terraform", "terraform on PATH", "present",
                                       "absent: skipped", None)])
        return
    version = subprocess.run([binary, "version"], capture_output=True, text=True,
                             env=terraform_env()).stdout.splitlines()[0]
    print(f"versus_terraform: {args.resources} resources; {version}; {args.apply_repeat} "
          f"apply and {args.repeat} no-change plans per tool, interleaved; {load_note()}",
          flush=True)
    rows = report(measure(binary, args.resources, args.repeat, args.apply_repeat),
                  args.resources)
    print(f"\nSummary ({load_note()}):")
    write_report(args.report, rows)


if __name__ == "__main__":
    main()

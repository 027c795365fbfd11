"""The raw bound of a plan: in a fresh interpreter, the time merely to parse its inputs
with the fastest stock parsers, and nothing else (no navarch code at all):

- the config: `yaml.load(text, Loader=yaml.CSafeLoader)` (libyaml);
- the state snapshot: `json.loads`;
- each fake cloud's SQLite file: every row of its instances table (`fetchall`).

Files are read inside the timing (a plan reads them too); imports are not (a plan is
timed after its imports, see plan_scale.py). Run as a script, it prints the figures as
JSON; `raw_bound()` runs it so in a subprocess.

    python benchmarks/_bound.py CONFIG STATE CLOUD.db [CLOUD.db ...]
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

__all__ = ["raw_bound"]


def measure(config: Path, state: Path, clouds: list[Path]) -> dict[str, float]:
    """The three parses, timed one after another in this interpreter."""
    t0 = time.perf_counter()
    yaml.load(config.read_text(), Loader=yaml.CSafeLoader)
    t1 = time.perf_counter()
    json.loads(state.read_bytes())
    t2 = time.perf_counter()
    rows = 0
    for path in clouds:
        conn = sqlite3.connect(path)
        try:
            rows += len(conn.execute("SELECT * FROM instances").fetchall())
        finally:
            conn.close()
    t3 = time.perf_counter()
    return {"raw_s": t3 - t0, "raw_yaml_s": t1 - t0, "raw_json_s": t2 - t1,
            "raw_sqlite_s": t3 - t2, "raw_rows": float(rows)}


def raw_bound(config: Path, state: Path, clouds: list[Path]) -> dict[str, float]:
    """`measure` in a fresh interpreter (its own heap, as a plan's process has)."""
    proc = subprocess.run([sys.executable, __file__, str(config), str(state),
                           *map(str, clouds)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"raw bound failed:\n{proc.stderr}")
    return dict(json.loads(proc.stdout))


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] in ("-h", "--help"):
        raise SystemExit(__doc__)
    args = [Path(a) for a in sys.argv[1:]]
    print(json.dumps(measure(args[0], args[1], args[2:])))

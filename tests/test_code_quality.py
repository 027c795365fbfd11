"""The code stays as checked as it was left: ruff finds nothing, and mypy (strict on the
pure core, see [tool.mypy] in pyproject.toml) finds no type error. Run here so the
README's one test command checks them too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    result = run("ruff", "check", "navarch_plan", "tests", "benchmarks", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_no_type_error() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr

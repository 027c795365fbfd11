"""`navarch init`: a starter config that plans on the fake cloud (the real clouds'
providers commented out) and a .gitignore for state and saved plans. It never
overwrites: an existing config is refused, an existing .gitignore kept."""

from __future__ import annotations

import argparse
import os
from importlib import resources

from navarch_plan.cli.command_line import suggested
from navarch_plan.cli.common import IO
from navarch_plan.errors import UsageError

__all__ = ["cmd_init"]


def _starter(name: str) -> str:
    return resources.files("navarch_plan").joinpath("data").joinpath(name).read_text(
        encoding="utf-8")


def _create(path: str, text: str) -> bool:
    """Write `text` to a new file; False (nothing written) when `path` exists. The
    exclusive open makes "exists" and "write" one step: no race can lose a file."""
    try:
        with open(path, "x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        return False
    return True


def cmd_init(args: argparse.Namespace, io: IO) -> int:
    config = args.config
    folder = os.path.dirname(config) or "."
    if os.path.exists(config):
        raise UsageError(f"{config} already exists; navarch init never overwrites (use -c "
                         "FILE to write another)")
    os.makedirs(folder, exist_ok=True)
    if not _create(config, _starter("starter.yaml")):
        raise UsageError(f"{config} already exists; navarch init never overwrites")
    io.out(f"Wrote {config}: a pool of 2 nodes on the fake cloud (the real clouds are "
           "commented out).")
    ignore = os.path.join(folder, ".gitignore") if folder != "." else ".gitignore"
    wanted = _starter("starter.gitignore")
    if _create(ignore, wanted):
        io.out(f"Wrote {ignore}: state/ and saved plans stay out of git.")
    else:
        with open(ignore, encoding="utf-8", errors="replace") as f:
            have = {line.strip() for line in f}
        missing = [line for line in wanted.splitlines()
                   if line and not line.startswith("#") and line not in have]
        if missing:
            io.err(f"Warning: kept your {ignore}; add to it: {', '.join(missing)}")
    io.out(f"Next: {suggested(args, 'plan')}")
    return 0

"""The local rescue copy of a state that could not be saved to its backend.

Written when a remote write fails mid-run (the server is gone, or the lock was lost):
the newest state this process knows, with the serial the failed compaction would have
given it, so `navarch state migrate --state FILE --to URL` can restore it later.
"""

from __future__ import annotations

import json
import os

from navarch_plan.state.model import StateDoc

__all__ = ["write_rescue"]


def write_rescue(doc: StateDoc, directory: str = ".") -> str:
    """Atomically write `navarch-state-rescue-<lineage>-<serial>.json` (mode 0600) and
    return its absolute path. The same run rewrites the same file: the newest wins."""
    data = {**doc.to_json(), "serial": doc.serial + 1}
    name = f"navarch-state-rescue-{doc.lineage}-{data['serial']}.json"
    path = os.path.abspath(os.path.join(directory, name))
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path

"""The local rescue copy of a state that could not be saved to its backend.

Written when a remote write fails mid-run (the server is gone, or the lock was lost):
the newest state this process knows, with the serial the failed compaction would have
given it, so `navarch state migrate --state FILE --to URL` can restore it later.
"""

from __future__ import annotations

import os

from navarch_plan.state.files import write_json_atomically
from navarch_plan.state.model import StateDoc

__all__ = ["write_rescue"]


def write_rescue(doc: StateDoc, directory: str = ".") -> str:
    """Atomically write `navarch-state-rescue-<lineage>-<serial>.json` (created 0600,
    never chmod'ed) and return its absolute path. The same run rewrites the same file:
    the newest wins. Raises a one-line StateError naming the file when it cannot."""
    data = {**doc.to_json(), "serial": doc.serial + 1}
    name = f"navarch-state-rescue-{doc.lineage}-{data['serial']}.json"
    path = os.path.abspath(os.path.join(directory, name))
    write_json_atomically(path, data)
    return path

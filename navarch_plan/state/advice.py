"""The sentences the local store says when a state file cannot be written or read
back: what failed, what is true now (which files are intact, what the cloud already
did) and what is safe to do. Each is one line.

What is true at each point follows from the order of writes (actions.py): the launch
intent is durable before every Provision call, the instance id right after it answers,
the node record once it runs. Every instance also carries the workspace's labels, so
the next plan adopts an instance whose record was lost.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence
from typing import Any

from navarch_plan.state.files import Files, reason, what_to_do
from navarch_plan.state.journal import Journal, op_address
from navarch_plan.words import plural

__all__ = ["journal_failed", "restore_advice", "some"]


def some(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _addresses(ops: Sequence[dict[str, Any]]) -> str:
    found: list[str] = []
    for op in ops:
        address = op_address(op) or op.get("id")
        if isinstance(address, str) and address not in found:
            found.append(address)
    return some(found) or "state"


def journal_failed(ops: Sequence[dict[str, Any]], journal: str, path: str,
                   exc: OSError) -> str:
    """A record() whose append failed: nothing of `ops` is in state (in memory or on
    disk), and the store records nothing more in this run."""
    kinds = [op["op"] for op in ops]
    todo = what_to_do(exc)
    failed = f"{reason(exc)}; {path} is intact. This run records nothing more"
    if "put" in kinds:
        put = ops[kinds.index("put")]
        return (f"the record of instance {put['record']['id']} at {put['address']} could "
                f"not be written to {journal}: {failed}. The instance exists in the cloud "
                f"and carries this workspace's labels, so nothing is lost: {todo}, then run "
                "`navarch plan`, which adopts it")
    if "intent_launched" in kinds:
        op = ops[kinds.index("intent_launched")]
        return (f"instance {op['node_id']} was launched, but its id could not be written "
                f"to {journal}: {failed}. Its launch intent is recorded, so it is not lost: "
                f"{todo}, then run `navarch plan`, which finds it and adopts it")
    if kinds == ["intent"]:
        return (f"the launch intent of {_addresses(ops)} could not be written to {journal}: "
                f"{reason(exc)}; {path} is intact. That launch was not started, and no "
                f"other starts in this run (each needs its intent recorded first): {todo}, "
                "then run `navarch apply` again")
    return (f"{' and '.join(dict.fromkeys(kinds))} of {_addresses(ops)} could not be "
            f"written to {journal}: {failed}, and state still says what it said before: "
            f"{todo}, then run `navarch plan`, which compares state with the cloud again")


def restore_advice(path: str, backup: str, journal: Journal, files: Files) -> str:
    """How to restore `path` from its backup (a clause starting with '; '), saying what
    the journal holds that the backup lacks: restoring would silently discard it (a
    journal naming a serial other than the snapshot's is skipped and then deleted)."""
    if not os.path.exists(backup):
        return ""
    try:
        serial = json.loads(files.read(backup)).get("serial")
    except (OSError, ValueError, AttributeError):
        return f"; the previous version, {backup}, cannot be read either"
    advice = (f"; the previous version is {backup} (serial {serial}): inspect it, then "
              f"copy it over {path} to restore")
    try:
        lines = journal.read()
    except OSError:
        lines = None
    newer = lines is not None and (lines.serial is None or not isinstance(serial, int)
                                   or lines.serial > serial)
    held = journal.summary() if newer else None
    if held is None or not held.count:
        return advice
    on = f" (on {some(held.addresses)})" if held.addresses else ""
    saved = shlex.quote(journal.path + ".saved")
    then = (f"finds instances {some(held.instances)} by this workspace's labels and adopts "
            "them" if held.instances else "compares the restored state with the cloud")
    return (f"{advice}. But {journal.path} holds {plural(held.count, 'operation')} recorded after "
            f"serial {serial}{on} that the backup lacks, and loading the backup would "
            f"silently discard them: first move it aside with "
            f"`mv {shlex.quote(journal.path)} {saved}` to keep their record; the next "
            f"`navarch plan` then {then}")

"""The engine's state bookkeeping: holding the state lock for one command (folding the
journal into a snapshot on the way in and out), making a new state's identity durable,
and the journal ops that make state say what the cloud says (`drift --update-state`).
Apart from engine.py because it is about the state store alone, whatever the command:
no provider is called here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from navarch_plan.errors import LockError
from navarch_plan.planner.observed import Observed, Seen
from navarch_plan.state.backends import StateStore
from navarch_plan.state.model import NodeRecord, StateDoc
from navarch_plan.state.ops import Identity, JournalOp, Put, Remove

__all__ = ["drift_ops", "holding_state", "keep_identity"]


@contextmanager
def holding_state(store: StateStore, operation: str, lock_timeout: float,
                  notice: Callable[[str], None], read_only: bool) -> Iterator[StateDoc]:
    """Hold the state lock; load state; fold any journal into a snapshot on the way in
    (a crashed run's leftovers) and on the way out (this run's). `read_only` writes
    nothing at all (drift checks promise that). The lock is released however it ends."""
    _lock(store, operation, lock_timeout, notice)
    try:
        dead = store.took_over
        if dead is not None:
            notice(f"Note: took over the state lock left by {dead.describe()}: that "
                   "process no longer exists on this machine.")
        doc = store.load()
        if not read_only and store.has_journal():
            store.compact()
        try:
            yield doc
        finally:
            if not read_only:
                store.compact()
    finally:
        store.unlock()


def _lock(store: StateStore, operation: str, lock_timeout: float,
          notice: Callable[[str], None]) -> None:
    """Take the state lock; when it is held and a lock timeout allows waiting, say so
    once (Terraform's words) before waiting in silence."""
    if lock_timeout <= 0:
        store.lock(operation, 0.0)
        return
    try:
        store.lock(operation, 0.0)
    except LockError:
        notice("Acquiring state lock. This may take a few moments...")
        store.lock(operation, lock_timeout)


def keep_identity(store: StateStore, snapshot: bool) -> None:
    """Make the loaded state's lineage and fingerprint key durable now if they exist
    only in memory (see Engine.keep_identity); `snapshot`: fold them into one now."""
    doc = store.loaded
    if store.exists() and not doc.upgraded:
        return
    store.record(Identity(doc.fingerprint_key))
    if snapshot:
        store.compact()
    doc.upgraded = False


def drift_ops(doc: StateDoc, observed: Observed) -> list[JournalOp]:
    """What makes state say what the cloud says, for the nodes it knows: a proven
    absence removes a record; a live node's status, labels, type, place and address
    replace the recorded ones. A node not seen yet (or in a zone not read) stays."""
    ops: list[JournalOp] = []
    for address, record in doc.nodes.items():
        presence = observed.presence(record.provider, record.id, record.region,
                                     record.zone, record.created_at)
        live = presence.node
        if presence.seen == Seen.GONE:
            ops.append(Remove(address))
        if presence.seen != Seen.LIVE or live is None:
            continue
        seen = {"status": live.status.value, "labels": dict(live.labels),
                "instance_type": live.instance_type, "region": live.region,
                "zone": live.zone, "ip_address": live.ip_address or record.ip_address}
        updated = {**record.to_json(), **seen}
        if updated != record.to_json():
            ops.append(Put(address, NodeRecord.from_json(updated)))
    return ops

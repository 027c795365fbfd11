"""Which state store a config (or a `--state URL`) means, and moving state between two.

The S3 store is imported only when a config uses it: boto3 is heavy.
"""

from __future__ import annotations

from typing import Protocol

from navarch_plan.clock import SYSTEM_CLOCK, Clock
from navarch_plan.config import StateConfig
from navarch_plan.errors import StateError, UsageError
from navarch_plan.state.lock import LockInfo
from navarch_plan.state.model import StateDoc
from navarch_plan.state.ops import JournalOp
from navarch_plan.state.stores.local import LocalStateStore

__all__ = ["StateStore", "migrate_state", "open_store", "state_from_url", "state_location"]


class StateStore(Protocol):
    """What the engine, the executor and the commands use; both backends provide it."""

    path: str  # where the state is, for messages: a file path or s3://bucket/key
    doc: StateDoc | None

    def lock(self, operation: str, timeout: float = 0.0) -> LockInfo: ...
    @property
    def took_over(self) -> LockInfo | None:
        """The dead holder whose lock the last lock() took over, if it did."""
        ...
    @property
    def loaded(self) -> StateDoc:
        """The loaded state; StateError if used before load()."""
        ...
    def unlock(self) -> None: ...
    def force_unlock(self, lock_id: str, force: bool = False) -> LockInfo: ...
    def still_held(self) -> bool: ...
    def check_held(self) -> None: ...
    def load(self) -> StateDoc: ...
    def exists(self) -> bool: ...
    def has_journal(self) -> bool: ...
    def record(self, *ops: JournalOp) -> None: ...
    def close_journal(self) -> None: ...
    def compact(self) -> bool: ...
    def import_doc(self, doc: StateDoc) -> None: ...


def state_from_url(url: str, base: StateConfig) -> StateConfig:
    """`s3://bucket/key` or a local path (relative to the working directory). An S3 URL
    keeps the config's region and endpoint_url when the config uses S3 too; otherwise
    boto3 finds them as usual (AWS_REGION, AWS_ENDPOINT_URL_S3, ~/.aws/config)."""
    if url.startswith("s3://"):
        bucket, _, key = url[len("s3://"):].partition("/")
        if not bucket or not key or key.endswith("/"):
            raise UsageError(f"--state {url}: an S3 state is s3://BUCKET/KEY")
        same = base.backend == "s3"
        return StateConfig(backend="s3", path="", bucket=bucket, key=key,
                           region=base.region if same else "",
                           endpoint_url=base.endpoint_url if same else "")
    if not url or url.endswith("/"):
        raise UsageError(f"--state {url!r}: give a state file path or s3://BUCKET/KEY")
    return StateConfig(backend="local", path=url)


def state_location(state: StateConfig) -> str:
    return f"s3://{state.bucket}/{state.key}" if state.backend == "s3" else state.path


def open_store(state: StateConfig, workspace: str, clock: Clock = SYSTEM_CLOCK) -> StateStore:
    if state.backend == "s3":
        from navarch_plan.state.stores.s3 import S3StateStore

        return S3StateStore(state.bucket, state.key, workspace, region=state.region,
                            endpoint_url=state.endpoint_url, clock=clock)
    return LocalStateStore(state.path, workspace, clock=clock)


def migrate_state(source: StateStore, target: StateStore,
                  timeout: float = 0.0) -> tuple[StateDoc, bool]:
    """Copy the state, lineage and serial unchanged, holding both locks. Returns the
    state and whether anything was written. Refuses a target of another lineage, a
    newer target, and a target of the same serial with other content: each would lose
    state that only the target holds."""
    if source.path == target.path:
        raise StateError(f"{source.path} is already where the state is")
    source.lock("state migrate", timeout)
    try:
        target.lock("state migrate", timeout)
        try:
            return _copy(source, target)
        finally:
            target.unlock()
    finally:
        source.unlock()


def _copy(source: StateStore, target: StateStore) -> tuple[StateDoc, bool]:
    doc = source.load()
    if not source.exists():
        raise StateError(f"there is no state at {source.path} to migrate")
    if source.has_journal():
        source.compact()  # a crashed run's journal: fold it, so the serial says it all
    there = target.load()
    if target.exists():
        if there.lineage != doc.lineage:
            raise StateError(f"{target.path} holds another state (lineage {there.lineage}, "
                             f"not {doc.lineage}): refusing to overwrite it. Nothing was "
                             "changed")
        if there.serial > doc.serial:
            raise StateError(f"{target.path} is newer (serial {there.serial}) than "
                             f"{source.path} (serial {doc.serial}): refusing to overwrite it. "
                             "Nothing was changed")
        if there.serial == doc.serial:
            if there.content() == doc.content():
                return doc, False
            raise StateError(f"{target.path} and {source.path} both are serial {doc.serial} "
                             "of this lineage but differ: refusing to pick one. Nothing was "
                             "changed")
    target.import_doc(doc)
    return doc, True

"""The S3 state lock: an object `<key>.lock` created with `If-None-Match: *`.

Invariants:
- S3 creates an object under If-None-Match: * for exactly one of any number of
  concurrent writers, so at most one process holds the lock;
- the holder knows its lock object by ETag (the body holds a fresh UUID, so two locks
  never share one); every later check and the release compare that ETag, and the
  release is a conditional delete, so a lock that was force-unlocked and taken by
  someone else is never mistaken for ours nor removed by us.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict

from navarch_plan.clock import SYSTEM_CLOCK, Clock
from navarch_plan.errors import LockError
from navarch_plan.state.lock_info import (
    LockInfo,
    LockLost,
    holder_to_force,
    lock_held_error,
    lost_lock_message,
    new_lock_info,
)
from navarch_plan.state.stores.s3_bucket import Bucket, S3Conflict

__all__ = ["LockLost", "S3Lock"]


class S3Lock:
    def __init__(self, bucket: Bucket, state_key: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self.bucket, self.clock = bucket, clock
        self.key = state_key + ".lock"
        self.where = bucket.url(state_key)
        self.info: LockInfo | None = None
        self.etag: str | None = None

    def acquire(self, operation: str, timeout: float = 0.0) -> LockInfo:
        info = new_lock_info(operation, self.where, self.clock)
        body = json.dumps(asdict(info)).encode()
        deadline = self.clock.monotonic() + timeout
        while True:
            try:
                self.etag = self.bucket.put(self.key, body, create_only=True)
            except S3Conflict:
                if self.clock.monotonic() >= deadline:
                    found = self.read()
                    raise lock_held_error(found[0] if found else None, self.where) from None
                self.clock.sleep(min(0.5, deadline - self.clock.monotonic()))
                continue
            self.info = info
            return info

    def read(self) -> tuple[LockInfo, str] | None:
        """The lock held now and its ETag; None when nobody holds it."""
        found = self.bucket.get(self.key)
        if found is None:
            return None
        raw, etag = found
        try:
            return LockInfo(**json.loads(raw)), etag
        except (ValueError, TypeError):
            return LockInfo("unreadable", "unknown", "unknown", 0, "", "", self.where), etag

    def check_held(self) -> None:
        """Raise LockLost unless our lock object is still the one in the bucket.
        One HEAD: cheap enough to run before every state write."""
        if self.etag is None:
            return  # never locked (tests and read-only use): nothing to lose
        current = self.bucket.head(self.key)
        if current != self.etag:
            raise LockLost(self._lost_message())

    def _lost_message(self) -> str:
        found = self.read()
        return lost_lock_message(self.info, found[0] if found else None, self.where)

    def release(self) -> None:
        """Remove our lock object, and only ours (conditional delete on its ETag)."""
        etag, self.etag, self.info = self.etag, None, None
        if etag is None:
            return
        # Force-unlocked (and maybe re-taken) meanwhile: then it is not ours to remove.
        with contextlib.suppress(S3Conflict):
            self.bucket.delete(self.key, if_match=etag)

    def force(self, lock_id: str) -> LockInfo:
        holder, etag = self.read() or (None, "")
        holder = holder_to_force(holder, lock_id, self.where)
        try:
            self.bucket.delete(self.key, if_match=etag)
        except S3Conflict:
            raise LockError(f"the lock on {self.where} changed while releasing it; "
                            "look again") from None
        return holder

"""The fake cloud's console: what a person at a real cloud's console could do to an
instance behind navarch's back (stop it, reclaim it, hide it from a lagging index), and
what tests read that no Provider call returns (its user data, purchase, placement group,
the call log). Apart from provider.py because none of it is the Provider protocol."""

from __future__ import annotations

from typing import Any

from navarch_plan.clock import Clock
from navarch_plan.model import NodeStatus
from navarch_plan.providers.fake.store import CloudFile

__all__ = ["ConsoleControls"]


class ConsoleControls:
    """Mixed into FakeProvider, whose cloud file and clock these act on. Direct writes:
    not logged calls, and no fault reaches them."""

    _file: CloudFile
    clock: Clock

    def set_status(self, node_id: str, status: NodeStatus | str) -> None:
        """Simulate a cloud-side change: a node turning unhealthy, stopped by someone,
        or in a status word navarch does not know (`hibernating` reads as unknown)."""
        word = status.value if isinstance(status, NodeStatus) else str(status)
        with self._file.transaction() as db:
            db.execute("UPDATE instances SET status = ?, ready_at = 0 WHERE id = ?",
                       (word, node_id))

    def preempt(self, node_id: str, listed: bool = False) -> None:
        """Take a spot instance back, as a cloud does: gone from listings and gets (GCE
        with instanceTerminationAction DELETE), or, `listed`, still shown as terminated
        with the cloud's word "preempted" (EC2 for a while after an interruption)."""
        with self._file.transaction() as db:
            if listed:
                db.execute("UPDATE instances SET status = 'preempted' WHERE id = ?", (node_id,))
            else:
                db.execute("UPDATE instances SET deleted = 1, status = 'terminated', "
                           "gone_at = ? WHERE id = ?", (self.clock.time(), node_id))

    def hide(self, node_id: str, seconds: float) -> None:
        """Make an instance invisible to list and get (and deaf to terminate) for a
        while, as a lagging cloud index would."""
        with self._file.transaction() as db:
            db.execute("UPDATE instances SET visible_at = ? WHERE id = ?",
                       (self.clock.time() + seconds, node_id))

    def purchase(self, node_id: str) -> str:
        """How the instance was bought: "on-demand" or "spot"."""
        return self._column(node_id, "purchase")

    def placement_group(self, node_id: str) -> str:
        """The placement group the instance was launched into ("" for none)."""
        return self._column(node_id, "placement_group")

    def user_data(self, node_id: str) -> str:
        """What the instance was booted with, as its cloud-init would see it."""
        return self._column(node_id, "user_data")

    def _column(self, node_id: str, column: str) -> str:
        with self._file.transaction() as db:
            row = db.execute(f"SELECT {column} FROM instances WHERE id = ?",
                             (node_id,)).fetchone()
        return row[0] if row else ""

    def calls(self, op: str | None = None) -> list[dict[str, Any]]:
        """The call log, oldest first: op, target, address, started, ended, ok, error, pid."""
        return self._file.calls(op)

"""Telling a spot node the cloud took back from one deleted outside navarch. Pure.

Decided from the state record (its spec says it was bought spot) and what the cloud
shows: an instance no longer there at all (GCE deletes a reclaimed spot VM when its
termination action is DELETE; EC2 drops a terminated instance from listings within the
hour) tells nothing more, so a spot node that vanished counts as preempted; an instance
still shown as ended counts only when the cloud's own status word says preemption.
"""

from __future__ import annotations

from navarch_plan.config.desired import SPOT
from navarch_plan.model import Node
from navarch_plan.plan import Reason
from navarch_plan.state.model import NodeRecord

__all__ = ["PREEMPTION_WORDS", "gone_reason", "was_preempted"]

#: Parts of a cloud's status word that mean a spot reclaim ("preempted", EC2's
#: "Server.SpotInstanceTermination", "interrupted", "reclaimed").
PREEMPTION_WORDS = ("preempt", "spot", "interrupt", "reclaim")


def was_preempted(record: NodeRecord, node: Node | None) -> bool:
    """`node`: what the cloud still shows of the recorded instance (None: nothing)."""
    if record.spec.get("purchase") != SPOT:
        return False
    if node is None:
        return True
    word = node.cloud_status.lower()
    return node.status.is_gone and any(w in word for w in PREEMPTION_WORDS)


def gone_reason(record: NodeRecord, node: Node | None) -> Reason:
    """Why a recorded instance the cloud shows gone is recreated."""
    return Reason.PREEMPTED if was_preempted(record, node) else Reason.DELETED_OUTSIDE

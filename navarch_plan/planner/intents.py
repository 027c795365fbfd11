"""Interrupted provisions: what the next plan does with each open intent. Pure.

An intent is written (and fsynced) before every Provision call and closed when the node
record replaces it; an open one means a run died, or lost the launch's reply, in
between. Its instance is looked for by the id the launch returned (recorded as soon as
it answered) or else by the name the intent fixed. Then:

| what the reads show                                   | kind       |
|-------------------------------------------------------|------------|
| the instance exists                                   | `found`    |
| it may exist: the provider re-sends launches safely   | `resume`   |
| not seen, the launch is younger than the window       | `settling` |
| its region or zone could not be read                  | `unknown`  |
| not seen after the window (or it is gone)             | `drop`     |

The planner turns `found` into an adoption, the end of an interrupted replacement, or a
delete (the intent proves the instance is ours, so it is never called an orphan), and
`resume` into a create that re-sends the same request (EC2's documented recovery:
the same ClientToken returns the original instance).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from navarch_plan.errors import PlanError
from navarch_plan.model import Node
from navarch_plan.planner.observed import Observed, Seen
from navarch_plan.state.model import Intent

__all__ = ["IntentOutcome", "resolve_intent"]


@dataclass(frozen=True)
class IntentOutcome:
    intent: Intent
    kind: str  # found | resume | settling | unknown | drop
    node: Node | None = None
    detail: str = ""

    @property
    def instance(self) -> Node:
        """The instance a `found` outcome found (every `found` carries one)."""
        if self.node is None:
            raise PlanError(f"interrupted launch {self.intent.id}: no instance was found")
        return self.node


def resolve_intent(intent: Intent, observed: Observed, idempotent: Iterable[str]
                   ) -> IntentOutcome:
    """What the reads say about one open intent (see the module docstring)."""
    if intent.node_id:
        return _by_id(intent, observed)
    node = observed.named(intent.provider, intent.name)
    if node is not None and not node.status.is_gone:
        return IntentOutcome(intent, "found", node, f"instance {node.id} exists")
    listing = observed.listings.get(intent.provider)
    if listing is None or not listing.covers(intent.region, intent.zone):
        return IntentOutcome(intent, "unknown", detail=f"{intent.provider} could not read "
                             f"{intent.zone or intent.region}: whether the launch created an "
                             "instance cannot be told yet")
    if intent.provider in set(idempotent) and intent.instance_type and _key(intent):
        return IntentOutcome(intent, "resume", detail=(
            "the launch's outcome is unknown: apply re-sends it with the same name and "
            "idempotency key, which returns its instance if it was created"))
    left = observed.settling(intent.provider, intent.started_at)
    if left is not None:
        return IntentOutcome(intent, "settling", detail=(
            f"no instance named {intent.name} is visible yet; {intent.provider} may take "
            f"{left:.0f}s more to show one, so nothing is done for this address until then"))
    return IntentOutcome(intent, "drop", detail=(
        f"no instance named {intent.name} appeared within {intent.provider}'s consistency "
        "window: the launch created nothing, and the intent is dropped"))


def _by_id(intent: Intent, observed: Observed) -> IntentOutcome:
    presence = observed.presence(intent.provider, intent.node_id, intent.region,
                                 intent.zone, intent.started_at)
    node = presence.node
    if presence.seen == Seen.LIVE and node is not None and not node.status.is_gone:
        return IntentOutcome(intent, "found", node, f"instance {node.id} exists")
    if presence.seen == Seen.NOT_YET_VISIBLE:
        return IntentOutcome(intent, "settling", detail=f"instance {intent.node_id}: "
                             f"{presence.detail}")
    if presence.seen == Seen.UNKNOWN:
        return IntentOutcome(intent, "unknown", detail=f"instance {intent.node_id}: "
                             f"{presence.detail}")
    return IntentOutcome(intent, "drop", detail=f"instance {intent.node_id} is gone: the "
                         "intent is dropped")


def _key(intent: Intent) -> str:
    return intent.idempotency_key or intent.id

"""How the engine reports progress: override what you need; every hook defaults to nothing.

Hooks may be called from worker threads; implementations must be thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from navarch_plan.plan import Action

if TYPE_CHECKING:
    from navarch_plan.apply.failover import Attempt

__all__ = ["Hooks"]


class Hooks:
    def refresh_start(self, providers: Sequence[str]) -> None:
        """The engine starts reading what these providers hold, all at once (before a
        plan, a drift report, or a saved plan's check)."""

    def provider_listed(self, provider: str, instances: int) -> None:
        """One provider's listing was read: it showed this many instances."""

    def action_start(self, action: Action) -> None:
        """An action was handed to a worker."""

    def action_progress(self, action: Action, message: str) -> None:
        """Something worth telling happened inside an action (e.g. waiting to boot)."""

    def action_waiting(self, action: Action, message: str) -> None:
        """The action went back to the queue (its provider asked to slow down) and will
        start again, with action_start, when its provider has a slot."""

    def failover_attempt(self, action: Action, attempt: Attempt) -> None:
        """A candidate failed with a capacity or quota error; the next one is tried."""

    def action_done(self, action: Action) -> None:
        """The action completed and its result is durable in state."""

    def action_failed(self, action: Action, error: BaseException) -> None:
        """The action failed; state holds exactly what exists."""

    def action_skipped(self, action: Action, because: str) -> None:
        """The action was not started because something it depends on failed."""

    def placement_groups_pruned(self, provider: str, deleted: Sequence[str],
                                error: str = "") -> None:
        """After the actions: the placement groups no pool wants that the provider
        deleted, or why it could not look (they are tried again next run)."""

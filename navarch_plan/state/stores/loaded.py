"""What every store shares: the document it loaded, or a StateError saying it has not."""

from __future__ import annotations

from navarch_plan.errors import StateError
from navarch_plan.state.model import StateDoc

__all__ = ["LoadedState"]


class LoadedState:
    """`doc` is None until load(); `path` names the state in messages."""

    path: str
    doc: StateDoc | None

    @property
    def loaded(self) -> StateDoc:
        """The state as load() read it and record() changed it; StateError before that
        (using state before loading it under the lock is a bug, never silently empty)."""
        if self.doc is None:
            raise StateError(f"{self.path}: state was used before it was loaded")
        return self.doc

"""The waits of one apply, each bounded by its provider's consistency window or boot
timeout: for a new node to show and run, for a terminate to be acknowledged, and for a
launch whose reply was lost to be found (or proven never made).

Invariants:
- "not found" within the consistency window of a launch is "not visible yet": waited
  for, never taken as the instance's end;
- a terminate is done only when the cloud acknowledged it, shows the instance going,
  or still cannot find it once the window since its launch has passed;
- a launch is re-sent only to a provider whose launches are idempotent (the same name
  and key return the original instance); elsewhere the instance is looked for by name.
Setting `stop` cuts every wait short with the error of its kind: state then keeps what
the next plan needs to settle it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from navarch_plan.apply.hooks import Hooks
from navarch_plan.clock import SYSTEM_CLOCK, Clock
from navarch_plan.errors import (
    BootTimeoutError,
    LaunchLostError,
    NotRunningError,
    NotSentError,
    ProviderError,
    RateLimitError,
    TerminateTimeoutError,
    TransientError,
    VanishedError,
)
from navarch_plan.model import LABEL_WORKSPACE, Consistency, Node, NodeStatus, ProvisionRequest
from navarch_plan.plan import Action
from navarch_plan.providers.base import DEFAULT_CONSISTENCY, NodeGetter, Provider

__all__ = ["CloudWaits"]

_FIRST_DELAY, _MAX_DELAY = 0.05, 5.0
#: Seconds between the reminders that a node is still being waited for.
_REMIND = 30.0
_RESENDS = 3  # re-sends of a launch whose reply was lost, on idempotent providers
# How long a visible instance may take to show a terminate the cloud did not acknowledge.
_TERMINATE_TIMEOUT = 600.0


class CloudWaits:
    def __init__(self, providers: Mapping[str, Provider], hooks: Hooks,
                 consistency: Mapping[str, Consistency] | None = None,
                 clock: Clock = SYSTEM_CLOCK, stop: threading.Event | None = None) -> None:
        self.providers, self.hooks, self.clock = providers, hooks, clock
        self.consistency = dict(consistency or {})
        self.stop = stop or threading.Event()

    def of(self, provider: str) -> Consistency:
        return self.consistency.get(provider, DEFAULT_CONSISTENCY)

    def get(self, provider_name: str, node_id: str) -> Node | None:
        provider = self.providers[provider_name]
        if isinstance(provider, NodeGetter):
            return provider.get(node_id)
        return next((n for n in provider.list() if n.id == node_id), None)

    def _pause(self, delay: float) -> float:
        """Sleep (cut short by stop); the next, longer delay."""
        self.clock.wait(self.stop, delay)
        return min(delay * 2, _MAX_DELAY)

    # -- a new node ------------------------------------------------------------------
    def wait_running(self, action: Action, node: Node, launched: float) -> Node:
        """Until `node` runs. `launched`: clock.monotonic() when its launch began."""
        c = self.of(node.provider)
        delay = _FIRST_DELAY
        current: Node | None = node
        said, said_at = "", 0.0
        while current is None or current.status == NodeStatus.PROVISIONING:
            waited = self.clock.monotonic() - launched
            if current is None and waited >= c.window:
                raise VanishedError(f"{action.address}: new instance {node.id} was not seen "
                                    f"again within {c.window:.0f}s of its launch")
            if waited > c.boot_timeout or self.stop.is_set():
                why = ("stopped waiting: interrupted" if self.stop.is_set()
                       else f"boot_timeout {c.boot_timeout:.0f}s")
                raise BootTimeoutError(f"{action.address}: {node.id} still provisioning "
                                       f"after {waited:.0f}s ({why}); the next plan "
                                       "settles it")
            what = (f"waiting for {node.id} to boot" if current
                    else f"waiting for {node.id} to become visible")
            # Said when it changes, then every _REMIND seconds with the time waited
            # (Terraform's "Still creating... [30s elapsed]"), not at every poll.
            if what != said or waited - said_at >= _REMIND:
                self.hooks.action_progress(action, what if what != said
                                           else f"{what} ({waited:.0f}s elapsed)")
                said, said_at = what, waited
            delay = self._pause(delay)
            current = self.get(node.provider, node.id)
        if current.status != NodeStatus.RUNNING:
            raise NotRunningError(f"{action.address}: new instance {node.id} is "
                                  f"{current.status_word}")
        return current

    def find(self, action: Action, provider: str, node_id: str) -> Node:
        """A node seen at plan time, read again now (a lagging read is retried within
        the window)."""
        c = self.of(provider)
        start, delay = self.clock.monotonic(), _FIRST_DELAY
        while (node := self.get(provider, node_id)) is None:
            if self.clock.monotonic() - start >= c.window or self.stop.is_set():
                raise VanishedError(f"{action.address}: instance {node_id} was not seen "
                                    f"again within {c.window:.0f}s")
            delay = self._pause(delay)
        return node

    # -- terminating -----------------------------------------------------------------
    def terminate(self, action: Action, launched_at: float | None) -> None:
        """Terminate until the cloud confirms it. `launched_at`: epoch seconds of the
        instance's launch (None: unknown, so the whole window counts from now)."""
        c = self.of(action.provider)
        now = self.clock.time()
        window_end = (launched_at if launched_at is not None else now) + c.window
        deadline = self.clock.monotonic() + c.window + _TERMINATE_TIMEOUT
        delay = _FIRST_DELAY
        while True:
            if self._terminated(action, window_end):
                return
            if self.clock.monotonic() > deadline or self.stop.is_set():
                raise TerminateTimeoutError(f"{action.address}: the cloud has not confirmed "
                                            f"the terminate of {action.node_id}; its record "
                                            "stays, and the next plan settles it")
            delay = self._pause(delay)

    def _terminated(self, action: Action, window_end: float) -> bool:
        """One terminate call and, unless the cloud acknowledged it, one read back."""
        self.hooks.action_progress(action, f"terminating {action.node_id}")
        failure: ProviderError | None = None
        try:
            if self.providers[action.provider].terminate(action.node_id):
                return True
        except ProviderError as exc:
            # It may have happened all the same (a timeout after the cloud acted): the
            # read below decides; if the instance is still there, the error stands.
            failure = exc
        try:
            node = self.get(action.provider, action.node_id)
        except ProviderError:
            if failure is not None:
                raise failure from None
            return False
        if node is not None:
            if failure is not None and not node.status.is_gone:
                raise failure
            return node.status.is_gone
        return self.clock.time() >= window_end  # not found: proof only after the window

    # -- a lost launch reply -----------------------------------------------------------
    def recover_launch(self, provider_name: str, req: ProvisionRequest,
                       failure: TransientError, launched: float) -> Node:
        """The launch's reply was lost: the instance may or may not exist."""
        if self.of(provider_name).idempotent_launch:
            return self._resend(provider_name, req, failure)
        return self._look_for(provider_name, req, failure, launched)

    def _resend(self, provider_name: str, req: ProvisionRequest,
                failure: ProviderError) -> Node:
        """Same name, same key: the cloud returns the first launch's instance, or makes
        the one it never made (EC2's documented recovery for a lost RunInstances). A
        re-send refused for rate proves nothing about the first launch: it is re-sent
        again after the wait the cloud asked for, never given up as if nothing was made."""
        delay = _FIRST_DELAY
        hold = 0.0
        for _ in range(_RESENDS):
            if self.stop.is_set():
                break
            delay = self._pause(max(delay, hold))
            try:
                return self.providers[provider_name].provision(req)
            except TransientError as exc:
                failure, hold = exc, 0.0
            except RateLimitError as exc:
                failure, hold = exc, exc.retry_after or 0.0
            except NotSentError:
                # Stopped before this re-send went out: says nothing about the first
                # launch, whose outcome stays unknown (its intent must stay open).
                break
        raise TransientError(f"{failure.message}; outcome unknown after {_RESENDS} re-sends "
                             "with the same idempotency key: the next plan settles it",
                             provider=provider_name, region=req.region,
                             code=failure.code) from failure

    def _look_for(self, provider_name: str, req: ProvisionRequest,
                  failure: TransientError, launched: float) -> Node:
        c = self.of(provider_name)
        delay = _FIRST_DELAY
        while True:
            found = self.named(provider_name, req)
            if found is not None:
                return found
            waited = self.clock.monotonic() - launched
            if waited >= c.window:
                raise LaunchLostError(
                    f"{failure.message}; no instance named {req.name!r} appeared within "
                    f"the {c.window:.0f}s consistency window: nothing was created",
                    provider=provider_name, region=req.region, code=failure.code)
            if self.stop.is_set():
                raise failure
            delay = self._pause(min(delay, c.window - waited))

    def named(self, provider_name: str, req: ProvisionRequest) -> Node | None:
        workspace = req.labels.get(LABEL_WORKSPACE)
        try:
            listed = self.providers[provider_name].list()
        except ProviderError:
            return None
        return next((n for n in listed if n.name == req.name and not n.status.is_gone
                     and n.labels.get(LABEL_WORKSPACE, workspace) == workspace), None)

"""Real clouds' manners for any provider, and the scenarios every provider must come
through with them (docs/providers.md, "Consistency").

`LaggingProvider(inner, hide_new_for=2.0)` wraps a provider as an eventually consistent
cloud shows it: an instance it launched stays missing from `list` and `get` for that
long, and a terminate of it answers "not found" and does nothing (EC2 documents both);
`lose_next_reply()` lets the next launch happen and then loses its answer;
`short_next_listing()` makes the next listing come back empty.

`ConsistencyScenarios` is a pytest class to subclass, with the same two fixtures as
`ProviderConformance` (`provider`, `request_factory`). Each test plans and applies with
navarch's own engine, in this process, against the wrapped provider, and then counts
what the provider itself (unwrapped) holds: nothing leaked, nothing launched twice,
nothing of a finished destroy left running. Every test destroys what it made.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from navarch_plan.errors import TransientError
from navarch_plan.model import (
    LABEL_ADDRESS,
    LABEL_WORKSPACE,
    Consistency,
    Node,
    ProvisionRequest,
)
from navarch_plan.providers.base import (
    DEFAULT_CONSISTENCY,
    EventuallyConsistent,
    NodeGetter,
    Provider,
)
from navarch_plan.providers.declared import DeclaredType

__all__ = ["ConsistencyScenarios", "LaggingProvider"]


class LaggingProvider:
    """`inner` with a lagging index; thread-safe. Other capabilities of `inner`
    (list_instance_types, rate_limit) pass through."""

    def __init__(self, inner: Provider, hide_new_for: float = 0.0,
                 window: float | None = None) -> None:
        self.inner, self.name = inner, inner.name
        self.hide_new_for = hide_new_for
        own = inner.consistency() if isinstance(inner, EventuallyConsistent) \
            else DEFAULT_CONSISTENCY
        # The lag comes on top of the cloud's own: the window must cover both.
        self._consistency = Consistency(
            window=window if window is not None else own.window + 3 * hide_new_for,
            boot_timeout=own.boot_timeout, idempotent_launch=own.idempotent_launch)
        self._hidden: dict[str, float] = {}
        self._lose = self._short = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name in ("list_instance_types", "rate_limit"):
            return getattr(self.inner, name)
        raise AttributeError(name)

    def hide(self, node_id: str, seconds: float) -> None:
        with self._lock:
            self._hidden[node_id] = time.monotonic() + seconds

    def lose_next_reply(self) -> None:
        with self._lock:
            self._lose += 1

    def short_next_listing(self) -> None:
        with self._lock:
            self._short += 1

    def _is_hidden(self, node_id: str) -> bool:
        with self._lock:
            return self._hidden.get(node_id, 0.0) > time.monotonic()

    def _take(self, what: str) -> bool:
        with self._lock:
            left = getattr(self, what)
            setattr(self, what, max(0, left - 1))
            return left > 0

    def provision(self, req: ProvisionRequest) -> Node:
        node = self.inner.provision(req)
        if self.hide_new_for:
            self.hide(node.id, self.hide_new_for)
        if self._take("_lose"):
            raise TransientError("the launch's reply was lost (LaggingProvider)",
                                 provider=self.name, region=req.region, code="lost-reply")
        return node

    def terminate(self, node_id: str) -> bool | None:
        if self._is_hidden(node_id):
            return False  # "not found", and the instance keeps running
        return self.inner.terminate(node_id)

    def list(self) -> list[Node]:
        listed = self.inner.list()
        if self._take("_short"):
            return []
        return [n for n in listed if not self._is_hidden(n.id)]

    def get(self, node_id: str) -> Node | None:
        if self._is_hidden(node_id):
            return None
        if isinstance(self.inner, NodeGetter):
            return self.inner.get(node_id)
        return next((n for n in self.inner.list() if n.id == node_id), None)

    def consistency(self) -> Consistency:
        return self._consistency


def _built_by_the_harness(*args: object) -> Provider:
    raise AssertionError("the harness hands the engine its provider; none is built")


# One type for every rig: the config's validators are cached per set of types.
_UNDER_TEST = DeclaredType(name="conformance", title="under test",
                           factory=_built_by_the_harness)


class _Rig:
    """One workspace of two nodes on the wrapped provider, planned and applied by
    navarch's engine in this process; state in `folder`."""

    def __init__(self, wrapped: LaggingProvider, request_factory: Callable[..., Any],
                 folder: Path, nodes: int = 2) -> None:
        from navarch_plan.config import parse_config
        from navarch_plan.engine import Engine

        self.wrapped, self.inner = wrapped, wrapped.inner
        self.workspace = f"lag{uuid.uuid4().hex[:6]}"
        sample: ProvisionRequest = request_factory("probe", {})
        zone = f", zone: {sample.zone}" if sample.zone else ""
        keys = ", ".join(sample.ssh_key_names) or "ops"
        # The sample's key material too (JSON is YAML): clouds such as GCE need it.
        material = (f"ssh_public_keys: {json.dumps(dict(sample.ssh_public_keys))}\n"
                    if sample.ssh_public_keys else "")
        text = (f"version: 1\nworkspace: {self.workspace}\n{material}"
                f"providers: {{{wrapped.name}: {{type: conformance}}}}\n"
                f"defaults: {{ssh_keys: [{keys}]}}\n"
                f"pools:\n  w: {{provider: {wrapped.name}, instance_type: "
                f"{sample.instance_type}, region: {sample.region}{zone}, nodes: {nodes}}}\n")
        types = {"conformance": _UNDER_TEST}
        config = parse_config(text, str(folder / "navarch.yaml"), {}, str(folder), types)
        self.engine = Engine(config, providers={wrapped.name: wrapped}, types=types)

    def plan(self, destroy: bool = False) -> Any:
        from navarch_plan.planner import PlanOptions

        with self.engine.locked("plan"):
            return self.engine.plan(PlanOptions(destroy=destroy))

    def apply(self, destroy: bool = False) -> Any:
        from navarch_plan.planner import PlanOptions

        with self.engine.locked("apply"):
            plan = self.engine.plan(PlanOptions(destroy=destroy))
            result = self.engine.apply(plan)
        assert result.ok, f"apply failed: {result.failed or result.skipped}"
        return plan

    def records(self) -> dict[str, str]:
        doc = self.engine.store.load()
        return {address: r.id for address, r in doc.nodes.items()}

    def alive(self) -> list[Node]:
        """What the provider itself holds for this workspace, lag or no lag."""
        return [n for n in self.inner.list()
                if n.labels.get(LABEL_WORKSPACE) == self.workspace and n.status.is_alive]

    def accounted(self) -> None:
        alive = self.alive()
        per_address = Counter(n.labels.get(LABEL_ADDRESS) for n in alive)
        assert all(count == 1 for count in per_address.values()), f"duplicated: {alive}"
        assert {n.id for n in alive} == set(self.records().values()), \
            f"state {self.records()} does not match the cloud {alive}"

    def destroyed(self) -> None:
        self.apply(destroy=True)
        assert self.alive() == [], "destroy finished while an owned instance runs"


class ConsistencyScenarios:
    """The contract under lag (module docstring). `lag` is how long new instances hide."""

    lag: float = 0.6

    def rig(self, provider: Provider, request_factory: Callable[..., Any],
            folder: Path) -> _Rig:
        return _Rig(LaggingProvider(provider, hide_new_for=self.lag), request_factory, folder)

    def test_destroy_during_lag_leaves_nothing_running(
            self, provider: Provider, request_factory: Callable[..., Any],
            tmp_path: Path) -> None:
        rig = self.rig(provider, request_factory, tmp_path)
        rig.apply()
        for node_id in rig.records().values():
            rig.wrapped.hide(node_id, self.lag)
        rig.destroyed()

    def test_second_apply_during_lag_launches_nothing(
            self, provider: Provider, request_factory: Callable[..., Any],
            tmp_path: Path) -> None:
        rig = self.rig(provider, request_factory, tmp_path)
        rig.apply()
        first = rig.records()
        for node_id in first.values():
            rig.wrapped.hide(node_id, self.lag)
        plan = rig.apply()
        assert plan.actions == (), f"acted on nodes it could not see yet: {plan.actions}"
        assert {u.kind for u in plan.unsettled} == {"not_yet_visible"}
        assert rig.records() == first
        rig.accounted()
        rig.destroyed()

    def test_lost_launch_reply_makes_no_duplicate(
            self, provider: Provider, request_factory: Callable[..., Any],
            tmp_path: Path) -> None:
        rig = self.rig(provider, request_factory, tmp_path)
        rig.wrapped.lose_next_reply()
        rig.apply()
        rig.accounted()
        rig.destroyed()

    def test_short_listing_changes_nothing(
            self, provider: Provider, request_factory: Callable[..., Any],
            tmp_path: Path) -> None:
        rig = self.rig(provider, request_factory, tmp_path)
        rig.apply()
        time.sleep(self.lag)
        rig.wrapped.short_next_listing()
        plan = rig.plan()
        assert plan.actions == () and plan.drift == (), "each record was found by id"
        rig.accounted()
        rig.destroyed()

    def test_interrupted_launch_is_adopted(
            self, provider: Provider, request_factory: Callable[..., Any],
            tmp_path: Path) -> None:
        """A run that died after its launch, before it heard back: the intent names the
        instance; later applies adopt it (after waiting for it to show, or by re-sending
        the same launch where that is safe), never launch a second or delete it."""
        from navarch_plan.planner.ownership import ownership_labels
        from navarch_plan.state.model import Intent
        from navarch_plan.state.ops import IntentStarted

        rig = self.rig(provider, request_factory, tmp_path)
        create = next(a for a in rig.plan().actions if a.address == "pool.w[0]")
        node = rig.engine.config.desired["pool.w[0]"]
        key = uuid.uuid4().hex
        with rig.engine.locked("apply"):
            rig.engine.store.record(IntentStarted(Intent(
                id=key, address=create.address, provider=create.provider,
                region=create.region, zone=create.zone, idempotency_key=key,
                instance_type=create.instance_type, name=create.name,
                started_at=rig.engine.clock.now_iso())))
            labels = ownership_labels(rig.workspace, node, node.candidates[0],
                                      rig.engine.store.loaded.lineage)
            made = rig.wrapped.provision(dataclasses.replace(
                request_factory(create.name, labels), idempotency_key=key))
        rig.apply()
        time.sleep(self.lag)
        rig.apply()
        assert rig.records()["pool.w[0]"] == made.id, "the interrupted launch was not adopted"
        rig.accounted()
        rig.destroyed()

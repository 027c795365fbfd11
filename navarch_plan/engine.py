"""The engine: reads the config, talks to providers, holds the state lock, and joins the
pure planner to the effectful executor. It never prints; the CLI does."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property
from typing import TypeVar

from navarch_plan.apply import ApplyResult, Executor
from navarch_plan.config import Config, parse_config
from navarch_plan.errors import ConfigError, PlanError, StalePlanError
from navarch_plan.hooks import Hooks
from navarch_plan.model import Node
from navarch_plan.plan import ActionKind, Plan
from navarch_plan.planner import PlanInputs, PlanOptions, live_fingerprint, make_plan, owned_nodes
from navarch_plan.providers.base import InstanceTypeLister, Provider
from navarch_plan.providers.registry import build_provider, known_types
from navarch_plan.state.backends import StateStore, open_store
from navarch_plan.state.model import StateDoc
from navarch_plan.strategies import offer_tables
from navarch_plan.throttle import gate_for, retry_policy, retrying
from navarch_plan.yamlpos import MAX_BYTES

__all__ = ["Engine", "load_config", "plan_timestamp"]

T = TypeVar("T")

def plan_timestamp() -> str:
    """Now, or SOURCE_DATE_EPOCH when set (reproducible plans, as reproducible builds do)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.fromtimestamp(int(epoch), UTC) if epoch and epoch.isdigit() \
        else datetime.now(UTC)
    return when.isoformat(timespec="seconds")


def load_config(path: str, env: Mapping[str, str] | None = None) -> Config:
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_BYTES + 1)  # enough to know it is too large
    except FileNotFoundError:
        raise ConfigError("no such file (use -c FILE to pick another config)", path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path) from None
    base_dir = os.path.dirname(path) or "."
    return parse_config(text, path, os.environ if env is None else env, base_dir, known_types())


class Engine:
    def __init__(self, config: Config, env: Mapping[str, str] | None = None,
                 hooks: Hooks | None = None, lock_timeout: float = 0.0,
                 notice: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.notice = notice or (lambda message: None)
        self.env = os.environ if env is None else env
        self.hooks = hooks or Hooks()
        self.lock_timeout = lock_timeout
        self.live: dict[str, list[Node]] = {}
        self.prices: dict[tuple[str, str], float | None] = {}
        self.availability: dict[tuple[str, str], tuple[str, ...]] = {}

    @cached_property
    def store(self) -> StateStore:
        """Opened on first use: commands that never touch state (instance-types,
        validate) must not import an S3 SDK for it."""
        return open_store(self.config.state, self.config.workspace)

    @cached_property
    def providers(self) -> dict[str, Provider]:
        built = {}
        for name, pc in self.config.providers.items():
            try:
                built[name] = build_provider(pc, self.env, self.config.base_dir,
                                             self.config.regions_of(name))
            except ConfigError as exc:
                if exc.file:
                    raise
                # A provider's own option check knows its options, not the file.
                raise ConfigError(exc.message, self.config.file,
                                  path=exc.path or f"providers.{name}") from None
        return built

    @contextmanager
    def locked(self, operation: str, read_only: bool = False) -> Iterator[StateDoc]:
        """Hold the state lock; load state; fold any journal into a snapshot on the way
        in (a crashed run's leftovers) and on the way out (this run's). `read_only`
        writes nothing at all (drift checks promise that)."""
        self.store.lock(operation, self.lock_timeout)
        dead = getattr(self.store, "took_over", None)
        if dead is not None:
            self.notice(f"Note: took over the state lock left by {dead.describe()}: that "
                        "process no longer exists on this machine.")
        try:
            doc = self.store.load()
            if not read_only and self.store.has_journal():
                self.store.compact()
            try:
                yield doc
            finally:
                if not read_only:
                    self.store.compact()
        finally:
            self.store.unlock()

    def record_drift(self, plan: Plan) -> int:
        """`drift --update-state`: make state say what the cloud says, for the nodes it
        knows. Never provisions or terminates; unmanaged instances are left to plan."""
        doc = self.store.doc
        assert doc is not None
        owned = owned_nodes(self.live, self.config.workspace)
        ops: list[dict[str, object]] = []
        for address, record in doc.nodes.items():
            live = owned.get(record.id)
            if live is None:
                ops.append({"op": "remove", "address": address})
                continue
            seen = {"status": live.status.value, "labels": dict(live.labels),
                    "instance_type": live.instance_type, "region": live.region,
                    "zone": live.zone, "ip_address": live.ip_address or record.ip_address}
            updated = {**record.to_json(), **seen}
            if updated != record.to_json():
                ops.append({"op": "put", "address": address, "record": updated})
        if ops:
            self.store.record(*ops)
        return len(ops)

    def refresh(self) -> dict[str, list[Node]]:
        """One list() per provider, all providers at once; prices from those that list
        them. Both are reads, so a rate limit or a transient failure is retried."""
        providers = self.providers
        with ThreadPoolExecutor(max_workers=max(1, 2 * len(providers))) as pool:
            lists = {name: pool.submit(self._read, name, "list", p.list)
                     for name, p in providers.items()}
            offers = {name: pool.submit(self._read, name, "instance types",
                                        p.list_instance_types)
                      for name, p in providers.items() if isinstance(p, InstanceTypeLister)}
            self.live = {name: future.result() for name, future in lists.items()}
            listed = [(name, offer) for name, future in offers.items()
                      for offer in future.result()]
        self.prices, self.availability = offer_tables(listed)
        return self.live

    def _read(self, provider: str, what: str, call: Callable[[], T]) -> T:
        policy = retry_policy(self.config.providers[provider].options)
        return retrying(call, policy, random.Random(), lambda m: self.notice(f"Note: {m}"),
                        f"{provider} {what}")

    def plan(self, options: PlanOptions) -> Plan:
        assert self.store.doc is not None, "plan() inside locked()"
        self.refresh()
        inputs = PlanInputs(
            workspace=self.config.workspace, desired=self.config.desired,
            groups=self.config.groups, state=self.store.doc, live=self.live,
            prices=self.prices, availability=self.availability,
            max_hourly_cost=self.config.max_hourly_cost, config_hash=self.config.config_hash,
            created_at=plan_timestamp(),
        )
        return make_plan(inputs, options)

    def check_fresh(self, plan: Plan, source: str) -> None:
        """A saved plan runs only against exactly what it was planned against."""
        doc = self.store.doc
        assert doc is not None
        against = plan.planned_against
        if not self.store.exists() and doc.serial == 0:
            # State not yet born has no identity: it takes the one the plan was made with.
            doc.lineage = against["lineage"]
        if plan.workspace != self.config.workspace or against["lineage"] != doc.lineage:
            raise StalePlanError(f"{source} does not match the given state (it was planned for "
                                 f"lineage {against['lineage']}, state has {doc.lineage})")
        if against["config_hash"] != self.config.config_hash:
            raise StalePlanError(f"Saved plan is stale: {self.config.file} changed since "
                                 f"{source} was made; make a new plan")
        if against["serial"] != doc.serial:
            raise StalePlanError(f"Saved plan is stale: state serial is {doc.serial}, the plan "
                                 f"was made at serial {against['serial']}; make a new plan")
        self.refresh()
        owned = owned_nodes(self.live, self.config.workspace)
        if live_fingerprint(owned) != against["live_fingerprint"]:
            raise StalePlanError(f"Saved plan is stale: the instances in the cloud changed "
                                 f"since {source} was made; make a new plan")
        # The checksum catches accidents, not edits: whatever the file says, only this
        # workspace's instances are ever touched, and only desired addresses are built.
        for action in plan.actions:
            if action.action in (ActionKind.DELETE, ActionKind.REPLACE, ActionKind.ADOPT) \
                    and action.node_id not in owned:
                raise PlanError(f"{source}: {action.key} acts on instance {action.node_id}, "
                                f"which is not owned by workspace {self.config.workspace}; "
                                "refusing the plan (was it edited?)")
            if action.action in (ActionKind.CREATE, ActionKind.REPLACE, ActionKind.ADOPT) \
                    and action.address not in self.config.desired:
                raise PlanError(f"{source}: {action.key} builds {action.address}, which "
                                f"{self.config.file} does not define; refusing the plan")

    def apply(self, plan: Plan, parallelism: int = 10,
              stop: threading.Event | None = None) -> ApplyResult:
        """Run the plan. Setting `stop` starts no new action; running ones finish."""
        gates = {name: gate_for(name, provider, self.config.providers[name].options)
                 for name, provider in self.providers.items()}
        executor = Executor(plan, desired=self.config.desired, groups=self.config.groups,
                            providers=self.providers, store=self.store, hooks=self.hooks,
                            parallelism=parallelism, gates=gates)
        if stop is not None:
            executor.stop = stop
        return executor.run()

"""The engine: reads the config, talks to providers, holds the state lock, and joins the
pure planner to the effectful executor. It never prints; the CLI does.

Beside it: refresh.py reads the clouds (listings, offers, lookups by id);
bookkeeping.py holds the state lock and derives state-only changes."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property

from navarch_plan.apply.executor import ApplyResult, Executor
from navarch_plan.apply.hooks import Hooks
from navarch_plan.apply.placement_groups import clustered_providers, prune_placement_groups
from navarch_plan.apply.throttle import gate_for
from navarch_plan.bookkeeping import drift_ops, holding_state, keep_identity
from navarch_plan.clock import SYSTEM_CLOCK, Clock
from navarch_plan.config import Config, parse_config
from navarch_plan.config.yamlpos import MAX_BYTES
from navarch_plan.errors import (
    ConfigError,
    StalePlanError,
    StateError,
)
from navarch_plan.model import Consistency, InstanceType, Node
from navarch_plan.plan import Plan
from navarch_plan.planner import PlanInputs, PlanOptions, live_fingerprint, make_plan
from navarch_plan.planner.checks import check_saved_actions
from navarch_plan.planner.observed import Observed
from navarch_plan.planner.strategies import capacity_table, offer_tables, spot_offers
from navarch_plan.providers.base import (
    BuildContext,
    EventuallyConsistent,
    LabelSetter,
    Provider,
    ProviderType,
)
from navarch_plan.providers.registry import build_provider, provider_types
from navarch_plan.refresh import CloudReader
from navarch_plan.state.backends import StateStore, open_store
from navarch_plan.state.model import StateDoc

__all__ = ["Engine", "load_config", "plan_timestamp"]


def plan_timestamp(clock: Clock = SYSTEM_CLOCK) -> str:
    """Now, or SOURCE_DATE_EPOCH when set (reproducible plans, as reproducible builds do)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), UTC).isoformat(timespec="seconds")
    return clock.now_iso()


def load_config(path: str, env: Mapping[str, str] | None = None) -> Config:
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_BYTES + 1)  # enough to know it is too large
    except FileNotFoundError:
        raise ConfigError("no such file (use -c FILE to pick another config)", path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path) from None
    base_dir = os.path.dirname(path) or "."
    return parse_config(text, path, os.environ if env is None else env, base_dir, provider_types())


class Engine:
    def __init__(self, config: Config, env: Mapping[str, str] | None = None,
                 hooks: Hooks | None = None, lock_timeout: float = 0.0,
                 notice: Callable[[str], None] | None = None, clock: Clock = SYSTEM_CLOCK,
                 providers: Mapping[str, Provider] | None = None,
                 types: Mapping[str, ProviderType] | None = None,
                 all_spot_prices: bool = False) -> None:
        """`providers`: provider objects to use instead of building them from the config
        (the library's way to plan and apply with objects it made itself). `types`: the
        provider types the config was read with (default: built-ins and plugins).
        `all_spot_prices`: read live spot prices from every provider, not only from those
        a spot candidate may use (the offers table shows them all)."""
        self.config = config
        self.all_spot_prices = all_spot_prices
        self.types = provider_types() if types is None else types
        self.clock = clock
        self._built_here = providers is None
        if providers is not None:
            self.__dict__["providers"] = dict(providers)
        self.notice = notice or (lambda message: None)
        self.env = os.environ if env is None else env
        self.hooks = hooks or Hooks()
        self.lock_timeout = lock_timeout
        self.live: dict[str, list[Node]] = {}
        self.observed = Observed({})
        self._held = False  # inside locked()
        self.prices: dict[tuple[str, str], float | None] = {}
        self.availability: dict[tuple[str, str], tuple[str, ...]] = {}
        self.spot_offers: dict[tuple[str, str], InstanceType] = {}
        self.capacity: dict[tuple[str, str], tuple[str, ...]] = {}

    @cached_property
    def store(self) -> StateStore:
        """Opened on first use: commands that never touch state (instance-types,
        validate) must not import an S3 SDK for it."""
        return open_store(self.config.state, self.config.workspace, self.clock)

    @cached_property
    def providers(self) -> dict[str, Provider]:
        built = {}
        for name, pc in self.config.providers.items():
            try:
                context = BuildContext(
                    self.config.base_dir, tuple(self.config.regions_of(name)), self.clock,
                    spot_prices=self.all_spot_prices or self.config.buys_spot_on(name))
                built[name] = build_provider(pc, self.env, context, self.types)
            except ConfigError as exc:
                if exc.file:
                    raise
                # A provider's own option check (a type without options_schema) knows
                # its options, not the file: the error points at the provider's line.
                place = self.config.error(("providers", name), exc.message)
                raise ConfigError(exc.message, place.file, place.line, place.column,
                                  exc.path or place.path) from None
        return built

    def close(self) -> None:
        """Release what the providers it built hold (connections, files); those handed
        in by the caller are the caller's to close."""
        if not self._built_here:
            return
        for provider in self.__dict__.get("providers", {}).values():
            close = getattr(provider, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def locked(self, operation: str, read_only: bool = False) -> Iterator[StateDoc]:
        """Hold the state lock; load state; fold any journal into a snapshot on the way
        in (a crashed run's leftovers) and on the way out (this run's). `read_only`
        writes nothing at all (drift checks promise that)."""
        with holding_state(self.store, operation, self.lock_timeout, self.notice,
                           read_only) as doc:
            self._held = True
            try:
                self.config = self.config.keyed(doc.fingerprint_key)
                yield doc
            finally:
                self._held = False

    @cached_property
    def consistency(self) -> dict[str, Consistency]:
        """Each provider's window and boot timeout: its own (else its type's), then the
        config's."""
        return {name: (p.consistency() if isinstance(p, EventuallyConsistent)
                       else self._type_of(name).consistency
                       ).overridden(self.config.providers[name].options)
                for name, p in self.providers.items()}

    def _type_of(self, provider: str) -> ProviderType:
        return self.types[self.config.providers[provider].type]

    def keep_identity(self, snapshot: bool = True) -> None:
        """Make the state's lineage and fingerprint key durable now if they exist only in
        memory (a state not born yet, or one read from an older format): a saved plan
        is made against them, and a launch labels its instance with them, so a run killed
        before its first snapshot must not take them along. `snapshot`: also fold them
        into a snapshot now (a saved plan names the serial it was made at)."""
        keep_identity(self.store, snapshot)

    def record_drift(self, plan: Plan) -> int:
        """`drift --update-state`: make state say what the cloud says, for the nodes it
        knows. Never provisions or terminates; unmanaged instances are left to plan, and
        a node that cannot be seen yet (or whose zone could not be read) is left as it
        is: only a proven absence removes a record."""
        self._require_lock("record_drift")
        ops = drift_ops(self.store.loaded, self.observed)
        if ops:
            self.store.record(*ops)
        return len(ops)

    def refresh(self) -> dict[str, list[Node]]:
        """One listing per provider, all providers at once, and prices from those that
        list them; then, by id, every instance state knows that a listing did not show.
        All are reads, so a rate limit or a transient failure is retried."""
        reader = CloudReader(self.providers, self.config.providers, self.hooks, self.notice,
                             self.clock)
        listings, listed = reader.listings_and_offers()
        self.prices, self.availability = offer_tables(listed)
        self.spot_offers = spot_offers(listed)
        self.capacity = capacity_table(listed)
        doc = self.store.doc if self._held else None
        lookups = {} if doc is None else reader.confirm(listings, doc)
        self.observed = Observed(listings, lookups,
                                 {n: c.window for n, c in self.consistency.items()},
                                 self.clock.time())
        self.live = {name: list(listing.nodes) for name, listing in listings.items()}
        for (name, _), lookup in lookups.items():
            if lookup.node is not None:
                self.live[name].append(lookup.node)
        return self.live

    def plan(self, options: PlanOptions | None = None) -> Plan:
        """A plan against the clouds and state as they are now. Outside `locked()` it
        takes the state lock itself for the plan's duration, and makes a new state's
        identity durable, so that `apply(plan)` later finds what it was planned against."""
        if not self._held:
            with self.locked("plan"):
                self.keep_identity()
                return self.plan(options)
        self.refresh()
        inputs = PlanInputs(
            workspace=self.config.workspace, desired=self.config.desired,
            groups=self.config.groups, state=self.store.loaded, live=self.live,
            prices=self.prices, availability=self.availability, spot_offers=self.spot_offers,
            capacity=self.capacity,
            max_hourly_cost=self.config.max_hourly_cost,
            config_hash=self.config.published_hash,
            created_at=plan_timestamp(self.clock), observed=self.observed,
            idempotent=frozenset(n for n, c in self.consistency.items()
                                 if c.idempotent_launch),
            label_setters=frozenset(n for n, p in self.providers.items()
                                    if isinstance(p, LabelSetter)),
        )
        return make_plan(inputs, options or PlanOptions())

    def _require_lock(self, method: str) -> None:
        if not self._held:
            raise StateError(f"Engine.{method} reads the state, so it runs under the state "
                             f"lock: call it inside `with engine.locked(\"{method}\"):` "
                             "(Engine.plan and Engine.apply take the lock themselves)")

    def check_fresh(self, plan: Plan, source: str) -> None:
        """A saved plan runs only against exactly what it was planned against."""
        self._require_lock("check_fresh")
        doc = self.store.loaded
        against = plan.planned_against
        if plan.workspace != self.config.workspace or against["lineage"] != doc.lineage:
            raise StalePlanError(f"{source} does not match the given state (it was planned for "
                                 f"lineage {against['lineage']}, state has {doc.lineage})")
        if against["config_hash"] != self.config.published_hash:
            raise StalePlanError(f"Saved plan is stale: {self.config.file} changed since "
                                 f"{source} was made; make a new plan")
        if against["serial"] != doc.serial:
            raise StalePlanError(f"Saved plan is stale: state serial is {doc.serial}, the plan "
                                 f"was made at serial {against['serial']}; make a new plan")
        self.refresh()
        owned = self.observed.ownership(self.config.workspace, doc.lineage).ours
        if live_fingerprint(owned) != against["live_fingerprint"]:
            raise StalePlanError(f"Saved plan is stale: the instances in the cloud changed "
                                 f"since {source} was made; make a new plan")
        # The checksum catches accidents, not edits: whatever the file says, it may only
        # do what this config and state allow (planner_checks.check_saved_actions).
        check_saved_actions(plan, self.config, doc, set(owned), source)

    def apply(self, plan: Plan, parallelism: int = 10, stop: threading.Event | None = None,
              abort: threading.Event | None = None) -> ApplyResult:
        """Run the plan. Setting `stop` starts no new action; running ones finish.
        Setting `abort` too cuts their waits (boots, confirmations) short, keeping every
        intent and record for the next plan to settle.
        Outside `locked()` it takes the lock itself and first checks, as for a saved
        plan, that nothing it was planned against has moved."""
        if not self._held:
            with self.locked("apply"):
                self.check_fresh(plan, "the plan")
                return self.apply(plan, parallelism, stop, abort)
        if plan.actions:
            self.keep_identity(snapshot=False)
        gates = {name: gate_for(name, provider, self.config.providers[name].options,
                                self.clock, self._type_of(name).rate_limit)
                 for name, provider in self.providers.items()}
        executor = Executor(plan, desired=self.config.desired, groups=self.config.groups,
                            providers=self.providers, store=self.store, hooks=self.hooks,
                            parallelism=parallelism, gates=gates,
                            consistency=self.consistency, clock=self.clock, stop=stop,
                            abort=abort)
        doc = self.store.loaded
        clustered = clustered_providers(self.config.desired.values(), doc.nodes.values())
        result = executor.run()
        if clustered:
            prune_placement_groups(self.providers, clustered, self.config.workspace,
                                   doc.lineage, self.config.desired.values(), plan.options,
                                   self.hooks)
        return result


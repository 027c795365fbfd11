"""The fake cloud: a real Provider with no cloud behind it, shipped like httpx's mock
transport so users and tests can run every plan and apply offline.

Its instances and its call log live in SQLite: in memory by default, or in a file
(`path`) that separate `navarch` runs and tests share. Every call is one transaction,
so a kill -9 leaves the file whole, and concurrent processes see each other's writes.

It can have the manners of a real cloud (all off by default):
- `visibility_lag`: a new instance is missing from list and get, and a terminate of it
  answers "not found" and does nothing, for that many seconds (EC2's eventual
  consistency after RunInstances);
- `terminate_lag`: a terminated instance stays listed as `terminating` that long;
- `idempotent` (on by default): a provision re-sent with the same idempotency key
  returns the original instance, as EC2's ClientToken does; off, like Lambda;
- faults (faults.py): lost replies, short or empty listings, listings that admit
  unreachable regions or zones, lookups that answer "not found";
- `set_status` with any word: a stopped instance, or a status navarch does not know.
- `preempt`: a spot instance taken back (gone, or listed as terminated "preempted").

Beside it: store.py (connections, transactions, call log), lag.py (how a row reads at a
moment), controls.py (the console: set_status, preempt, hide, ...), db.py, faults.py.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import random
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from navarch_plan.catalog.facts import FAKE_CATALOG, FAKE_REGIONS
from navarch_plan.clock import SYSTEM_CLOCK, Clock
from navarch_plan.errors import (
    CapacityError,
    InvalidRequestError,
    ProviderError,
    TransientError,
)
from navarch_plan.model import (
    Consistency,
    InstanceType,
    Listing,
    Node,
    ProvisionRequest,
)
from navarch_plan.providers.fake.controls import ConsoleControls
from navarch_plan.providers.fake.faults import Fault, FaultQueue
from navarch_plan.providers.fake.lag import COLUMNS, TYPES, lagging_filter, row_as_node, shown_node
from navarch_plan.providers.fake.store import CloudFile

__all__ = ["FakeProvider"]


class FakeProvider(ConsoleControls):
    """Provider, InstanceTypeLister and NodeGetter over a SQLite-backed fake cloud.

    Every instance reports its type's GPUs from the fake catalog (`gpu_8x_h100`: 8 x
    H100). `gpu_count` is a test override, not a setting: when given, every instance
    this object launches reports that many GPUs whatever its type, to simulate a cloud
    whose report disagrees with its catalog. Leave it out otherwise."""

    def __init__(self, name: str = "fake", *, path: str | None = None, latency: float = 0.0,
                 capacity: Mapping[str, int] | None = None, fail_rate: float = 0.0,
                 seed: int | None = None, boot_time: float = 0.0,
                 gpu_count: int | None = None,
                 faults: Iterable[Fault | Mapping[str, Any]] = (),
                 visibility_lag: float = 0.0, terminate_lag: float = 0.0,
                 idempotent: bool = True, spot_prices: Mapping[str, float] | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.name = name
        self.clock = clock  # timestamps in the file are wall-clock seconds (clock.time)
        self.path = path
        self.latency = latency
        self.capacity = dict(capacity or {})
        self.fail_rate = fail_rate
        self.boot_time = boot_time
        self.gpu_count = gpu_count
        self.faults = FaultQueue(faults)  # see faults.py: consumed in order, per object
        self.visibility_lag, self.terminate_lag = visibility_lag, terminate_lag
        self.idempotent = idempotent
        # type -> its spot price everywhere; a type left out has no known spot price.
        self.spot_prices = dict(spot_prices or {})
        self._random = random.Random(seed)
        self._random_lock = threading.Lock()
        self._file = CloudFile(name, path, clock)

    def close(self) -> None:
        """Close every connection this object opened (each thread has its own): a
        long-lived process that builds many providers would otherwise hold their files
        open until the garbage collector finds them."""
        self._file.close()

    def __enter__(self) -> FakeProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the call wrapper ----------------------------------------------------------
    def _call(self, op: str, target: str, address: str, effect: Any, region: str = "",
              purchase: str = "") -> Any:
        return self._invoke(op, target, address, effect, region, purchase)[0]

    def _invoke(self, op: str, target: str, address: str, effect: Any,
                region: str = "", purchase: str = "") -> tuple[Any, Fault | None]:
        """Latency, fault injection, the effect and the call log, as one transaction; an
        injected `delay` comes after the commit, so other processes see the effect.
        Returns the effect's result and the fault that shaped the call (if any)."""
        started = self.clock.time()
        if self.latency:
            self.clock.sleep(self.latency)
        fault = self.faults.take(op, address, purchase)
        error = fault.exception(self.name, region) if fault else self._random_fault(op)
        failure: ProviderError | None = None
        with self._file.transaction() as db:
            try:
                if error and not (fault and fault.effect):
                    raise error
                result = effect(db)
                if error:
                    raise error  # the call took effect, then failed
            except ProviderError as exc:
                # Logged and committed; raised once the transaction is closed.
                self._file.log_call(db, op, target, address, started, exc)
                failure = exc
            else:
                self._file.log_call(db, op, target, address, started, None)
        if fault and fault.delay:
            self.clock.sleep(fault.delay)
        if failure is not None:
            raise failure
        return result, fault

    def inject(self, *faults: Fault | Mapping[str, Any]) -> None:
        """Queue faults for this object's next matching calls (see faults.py)."""
        self.faults.add(*faults)

    def _random_fault(self, op: str) -> TransientError | None:
        # Faults hit the calls that change the cloud; reads stay reliable so that a plan
        # can always see the damage.
        if not self.fail_rate or op not in ("provision", "terminate"):
            return None
        with self._random_lock:
            hit = self._random.random() < self.fail_rate
        return TransientError("injected fault", provider=self.name, code="fake/injected") if hit \
            else None

    # -- Provider ------------------------------------------------------------------
    def provision(self, req: ProvisionRequest) -> Node:
        address = req.labels.get("navarch-address", "")
        return self._call("provision", req.name, address, lambda db: self._insert(db, req),
                          req.region, req.purchase)

    def _insert(self, db: sqlite3.Connection, req: ProvisionRequest) -> Node:
        if self.idempotent and req.idempotency_key:
            row = db.execute(f"SELECT {COLUMNS} FROM instances WHERE idem_key = ? AND "
                             "name = ?", (req.idempotency_key, req.name)).fetchone()
            if row is not None:  # a re-sent launch: the original instance, as EC2 does
                return self._as_node(row)
        offer = TYPES.get(req.instance_type)
        if offer is None:
            raise InvalidRequestError(f"unknown instance type {req.instance_type!r}",
                                      provider=self.name, region=req.region,
                                      code="fake/unknown-type")
        if req.region not in FAKE_REGIONS:
            raise InvalidRequestError(f"unknown region {req.region!r}", provider=self.name,
                                      region=req.region, code="fake/unknown-region")
        # A reservation is capacity held apart from the cloud's stock: a reserved launch
        # always has room here (a fault with purchase: reservation plays a full one).
        scopes = () if req.purchase == "reservation" else (
            ("", "", ""), (f"@{req.region}", "region", req.region),
            (f"@{req.zone}", "zone", req.zone))
        for scope, column, value in scopes:
            self._check_capacity(db, req, req.instance_type + scope, column, value)
        now = self.clock.time()
        node_id = "fake-" + uuid.uuid4().hex[:12]
        cur = db.execute(
            "INSERT INTO instances (id, name, region, zone, instance_type, status, ip, labels,"
            " gpu_count, created, ready_at, user_data, idem_key, visible_at, purchase,"
            " placement_group)"
            " VALUES (?, ?, ?, ?, ?, 'provisioning', '', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (node_id, req.name, req.region, req.zone, req.instance_type,
             json.dumps(dict(req.labels)), self.gpu_count, now, now + self.boot_time,
             req.user_data, req.idempotency_key, now + self.visibility_lag, req.purchase,
             req.placement_group),
        )
        seq = cur.lastrowid or 0
        ip = f"10.{(seq >> 16) & 255}.{(seq >> 8) & 255}.{seq & 255}"
        db.execute("UPDATE instances SET ip = ? WHERE seq = ?", (ip, seq))
        # The launch's own reply shows the instance, however late listings catch up.
        return self._as_node(db.execute(f"SELECT {COLUMNS} FROM instances WHERE id = ?",
                                        (node_id,)).fetchone())

    def _check_capacity(self, db: sqlite3.Connection, req: ProvisionRequest, key: str,
                        column: str, value: str) -> None:
        """`capacity` limits live instances of a type: `TYPE` everywhere, `TYPE@REGION`
        in a region, `TYPE@ZONE` in a zone."""
        limit = self.capacity.get(key)
        if limit is None or (column and not value):
            return
        where = f" AND {column} = ?" if column else ""
        (used,) = db.execute("SELECT COUNT(*) FROM instances WHERE deleted = 0 AND "
                             "instance_type = ? AND status NOT IN ('terminated', 'preempted')"
                             + where,
                             (req.instance_type, *((value,) if column else ()))).fetchone()
        if used >= limit:
            raise CapacityError(f"no capacity for {key}", provider=self.name,
                                region=req.region, code="fake/insufficient-capacity")

    def terminate(self, node_id: str) -> bool:
        """True when it took effect; False for an id this cloud does not show (gone,
        never existed, or launched too recently to be visible: then nothing happens, as
        EC2 may answer InvalidInstanceID.NotFound for an instance that keeps running)."""
        def effect(db: sqlite3.Connection) -> bool:
            if self._fetch(db, node_id) is None:
                return False
            db.execute("UPDATE instances SET deleted = 1, status = 'terminated', gone_at = ?"
                       " WHERE id = ?", (self.clock.time(), node_id))
            return True

        return bool(self._call("terminate", node_id, self._address_of(node_id), effect))

    def listing(self) -> Listing:
        """What a listing shows now: visible instances, minus what a `list` fault hides
        (silently) or declares unreachable (admitted in `Listing.unreachable`)."""
        def effect(db: sqlite3.Connection) -> list[Node]:
            lagging, args = lagging_filter(self.clock.time(), self.terminate_lag)
            rows = db.execute(f"SELECT {COLUMNS} FROM instances WHERE deleted = 0"
                              + lagging + " ORDER BY seq", args)
            return [n for row in rows if (n := self._node(row)) is not None]

        nodes, fault = self._invoke("list", "*", "", effect)
        if fault is None:
            return Listing(tuple(nodes))
        far = set(fault.unreachable)
        nodes = [n for n in nodes if n.region not in far and n.zone not in far]
        return Listing(tuple(nodes[:len(nodes) - round(len(nodes) * fault.hide)]), tuple(far))

    def list(self) -> list[Node]:
        return list(self.listing().nodes)

    def get(self, node_id: str) -> Node | None:
        found, fault = self._invoke("get", node_id, "", lambda db: self._fetch(db, node_id))
        return None if fault is not None and fault.hide else found

    def consistency(self) -> Consistency:
        """No lag, no window: this cloud is consistent unless told otherwise; with lag,
        three times the longest of it."""
        lag = max(self.visibility_lag, self.terminate_lag)
        return Consistency(window=3 * lag, boot_timeout=max(900.0, 3 * self.boot_time),
                           idempotent_launch=self.idempotent)

    def list_instance_types(self) -> builtins.list[InstanceType]:
        offers = [dataclasses.replace(t, spot_price_per_hr=self.spot_prices.get(t.name))
                  for t in FAKE_CATALOG]
        return self._call("list_instance_types", "*", "", lambda db: offers)

    # -- the console (controls.py) has set_status, preempt, hide, calls, ...
    def set_labels(self, node_id: str, labels: Mapping[str, str]) -> None:
        """Exactly these labels, as EC2 tags and GCE labels become; a logged call that
        faults can hit (op `set_labels`), like every call that changes the cloud."""
        def effect(db: sqlite3.Connection) -> None:
            db.execute("UPDATE instances SET labels = ? WHERE id = ?",
                       (json.dumps(dict(labels)), node_id))

        self._call("set_labels", node_id, self._address_of(node_id), effect)

    # -- helpers -------------------------------------------------------------------
    def _address_of(self, node_id: str) -> str:
        with self._file.transaction() as db:
            row = db.execute("SELECT labels FROM instances WHERE id = ?", (node_id,)).fetchone()
        return json.loads(row[0]).get("navarch-address", "") if row else ""

    def _fetch(self, db: sqlite3.Connection, node_id: str) -> Node | None:
        row = db.execute(f"SELECT {COLUMNS} FROM instances WHERE id = ?",
                         (node_id,)).fetchone()
        return self._node(row) if row else None

    def _node(self, row: tuple[Any, ...]) -> Node | None:
        return shown_node(self.name, row, self.clock.time(), self.terminate_lag)

    def _as_node(self, row: tuple[Any, ...]) -> Node:
        return row_as_node(self.name, row, self.clock.time(), self.terminate_lag)

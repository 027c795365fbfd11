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
- faults (fake_faults.py): lost replies, short or empty listings, listings that admit
  unreachable regions or zones, lookups that answer "not found";
- `set_status` with any word: a stopped instance, or a status navarch does not know.
- `preempt`: a spot instance taken back (gone, or listed as terminated "preempted").
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import os
import random
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
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
    NodeStatus,
    ProvisionRequest,
)
from navarch_plan.providers.fake.db import check_cloud_file, row_to_node, upgrade_cloud_file
from navarch_plan.providers.fake.faults import Fault, FaultQueue

__all__ = ["FakeProvider"]

_TYPES = {t.name: t for t in FAKE_CATALOG}
_COLUMNS = ("id, name, region, zone, instance_type, status, ip, labels, gpu_count, ready_at,"
            " visible_at, deleted, gone_at")


class FakeProvider:
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
        self.faults = FaultQueue(faults)  # see fake_faults: consumed in order, per object
        self.visibility_lag, self.terminate_lag = visibility_lag, terminate_lag
        self.idempotent = idempotent
        # type -> its spot price everywhere; a type left out has no known spot price.
        self.spot_prices = dict(spot_prices or {})
        self._random = random.Random(seed)
        self._random_lock = threading.Lock()
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []  # every thread's, for close()
        self._shared_lock = threading.Lock()  # in-memory mode: one connection for all threads
        self._memory = (None if path else
                        sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None))
        try:
            upgrade_cloud_file(self._memory or self._conn())
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None

    # -- storage -----------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            assert self.path is not None
            # Used by its own thread only; close() may run on another once they are done.
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None,
                                   check_same_thread=False)
            check_cloud_file(conn)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._shared_lock:
                self._opened.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection this object opened (each thread has its own): a
        long-lived process that builds many providers would otherwise hold their files
        open until the garbage collector finds them."""
        with self._shared_lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> FakeProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            if self._memory is not None:
                with self._shared_lock, self._transaction(self._memory) as db:
                    yield db
            else:
                with self._transaction(self._conn()) as db:
                    yield db
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None

    def _unusable(self, exc: sqlite3.Error) -> ProviderError:
        """A damaged, foreign or unreachable cloud file: one clear error, file untouched."""
        return ProviderError(f"the fake cloud's file {self.path} cannot be used ({exc}); "
                             "restore it, or point the provider's path at another file",
                             provider=self.name, code="fake/unusable-file")

    @staticmethod
    @contextmanager
    def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

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
        with self._tx() as db:
            try:
                if error and not (fault and fault.effect):
                    raise error
                result = effect(db)
                if error:
                    raise error  # the call took effect, then failed
            except ProviderError as exc:
                # Logged and committed; raised once the transaction is closed.
                self._log(db, op, target, address, started, exc)
                failure = exc
            else:
                self._log(db, op, target, address, started, None)
        if fault and fault.delay:
            self.clock.sleep(fault.delay)
        if failure is not None:
            raise failure
        return result, fault

    def inject(self, *faults: Fault | Mapping[str, Any]) -> None:
        """Queue faults for this object's next matching calls (see fake_faults)."""
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

    def _log(self, db: sqlite3.Connection, op: str, target: str, address: str,
             started: float, error: Exception | None) -> None:
        db.execute(
            "INSERT INTO calls (op, target, address, started, ended, ok, error, pid)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (op, target, address, started, self.clock.time(), error is None,
             str(error) if error else "", os.getpid()),
        )

    # -- Provider ------------------------------------------------------------------
    def provision(self, req: ProvisionRequest) -> Node:
        address = req.labels.get("navarch-address", "")
        return self._call("provision", req.name, address, lambda db: self._insert(db, req),
                          req.region, req.purchase)

    def _insert(self, db: sqlite3.Connection, req: ProvisionRequest) -> Node:
        if self.idempotent and req.idempotency_key:
            row = db.execute(f"SELECT {_COLUMNS} FROM instances WHERE idem_key = ? AND "
                             "name = ?", (req.idempotency_key, req.name)).fetchone()
            if row is not None:  # a re-sent launch: the original instance, as EC2 does
                return self._as_node(row)
        offer = _TYPES.get(req.instance_type)
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
        return self._as_node(db.execute(f"SELECT {_COLUMNS} FROM instances WHERE id = ?",
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
            rows = db.execute(f"SELECT {_COLUMNS} FROM instances WHERE deleted = 0"
                              + self._lagging_sql() + " ORDER BY seq", self._lagging_args())
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

    # -- controls for tests and demos (what a cloud console would let you do) ------
    def set_status(self, node_id: str, status: NodeStatus | str) -> None:
        """Simulate a cloud-side change: a node turning unhealthy, stopped by someone,
        or in a status word navarch does not know (`hibernating` reads as unknown)."""
        word = status.value if isinstance(status, NodeStatus) else str(status)
        with self._tx() as db:
            db.execute("UPDATE instances SET status = ?, ready_at = 0 WHERE id = ?",
                       (word, node_id))

    def preempt(self, node_id: str, listed: bool = False) -> None:
        """Take a spot instance back, as a cloud does: gone from listings and gets (GCE
        with instanceTerminationAction DELETE), or, `listed`, still shown as terminated
        with the cloud's word "preempted" (EC2 for a while after an interruption)."""
        with self._tx() as db:
            if listed:
                db.execute("UPDATE instances SET status = 'preempted' WHERE id = ?", (node_id,))
            else:
                db.execute("UPDATE instances SET deleted = 1, status = 'terminated', "
                           "gone_at = ? WHERE id = ?", (self.clock.time(), node_id))

    def purchase(self, node_id: str) -> str:
        """How the instance was bought: "on-demand" or "spot"."""
        return self._column(node_id, "purchase")

    def placement_group(self, node_id: str) -> str:
        """The placement group the instance was launched into ("" for none)."""
        return self._column(node_id, "placement_group")

    def _column(self, node_id: str, column: str) -> str:
        with self._tx() as db:
            row = db.execute(f"SELECT {column} FROM instances WHERE id = ?",
                             (node_id,)).fetchone()
        return row[0] if row else ""

    def hide(self, node_id: str, seconds: float) -> None:
        """Make an instance invisible to list and get (and deaf to terminate) for a
        while, as a lagging cloud index would."""
        with self._tx() as db:
            db.execute("UPDATE instances SET visible_at = ? WHERE id = ?",
                       (self.clock.time() + seconds, node_id))

    def set_labels(self, node_id: str, labels: Mapping[str, str]) -> None:
        """Exactly these labels, as EC2 tags and GCE labels become; a logged call that
        faults can hit (op `set_labels`), like every call that changes the cloud."""
        def effect(db: sqlite3.Connection) -> None:
            db.execute("UPDATE instances SET labels = ? WHERE id = ?",
                       (json.dumps(dict(labels)), node_id))

        self._call("set_labels", node_id, self._address_of(node_id), effect)

    def user_data(self, node_id: str) -> str:
        """What the instance was booted with, as its cloud-init would see it."""
        with self._tx() as db:
            row = db.execute("SELECT user_data FROM instances WHERE id = ?", (node_id,)).fetchone()
        return row[0] if row else ""

    def calls(self, op: str | None = None) -> builtins.list[dict[str, Any]]:
        """The call log, oldest first: op, target, address, started, ended, ok, error, pid."""
        with self._tx() as db:
            db.row_factory = sqlite3.Row
            try:
                query = "SELECT * FROM calls" + (" WHERE op = ?" if op else "") + " ORDER BY seq"
                return [dict(r) for r in db.execute(query, (op,) if op else ())]
            finally:
                db.row_factory = None

    # -- helpers -------------------------------------------------------------------
    def _address_of(self, node_id: str) -> str:
        with self._tx() as db:
            row = db.execute("SELECT labels FROM instances WHERE id = ?", (node_id,)).fetchone()
        return json.loads(row[0]).get("navarch-address", "") if row else ""

    def _lagging_sql(self) -> str:
        """Rows a listing shows beside the live ones: none not yet visible, and the
        recently terminated while terminate lag lasts."""
        return " AND visible_at <= ?" + (
            " OR (deleted = 1 AND gone_at > ?)" if self.terminate_lag else "")

    def _lagging_args(self) -> tuple[float, ...]:
        now = self.clock.time()
        return (now,) + ((now - self.terminate_lag,) if self.terminate_lag else ())

    def _fetch(self, db: sqlite3.Connection, node_id: str) -> Node | None:
        row = db.execute(f"SELECT {_COLUMNS} FROM instances WHERE id = ?",
                         (node_id,)).fetchone()
        return self._node(row) if row else None

    def _node(self, row: tuple[Any, ...]) -> Node | None:
        """The row as listings and gets show it now, or None when they show nothing:
        not yet visible, or deleted longer ago than terminate_lag."""
        visible_at, deleted, gone_at = row[-3:]
        now = self.clock.time()
        if now < visible_at or (deleted and now >= gone_at + self.terminate_lag):
            return None
        return self._as_node(row)

    def _as_node(self, row: tuple[Any, ...]) -> Node:
        """The row as the instance is, whatever listings show (a launch's own reply)."""
        itype, word, gpus, ready_at, _, deleted, gone_at = (row[4], row[5], *row[8:])
        now = self.clock.time()
        if deleted:
            word = "terminating" if now < gone_at + self.terminate_lag else "terminated"
        elif word == "provisioning" and now >= ready_at:
            word = "running"
        offer = _TYPES.get(itype)
        return row_to_node(self.name, row, word,
                           gpus if gpus is not None else (offer.gpu_count if offer else 0),
                           offer.gpu_type if offer else "")

"""A small fake of the Compute Engine REST API, for the real google-cloud-compute client.

Only what navarch uses: instances insert/get/delete/aggregatedList and zone operations
get/wait, all under /compute/v1/projects/{project}/... . The shapes follow the real API
closely enough for the client's strict parser (numeric ids as digit strings, proto field
types) and its error mapping (`{"error": {"code", "message", "errors": [{reason}]}}`).

Deterministic, clock-free (but for `hide_new_for`): an operation starts RUNNING and is
DONE on its N-th poll (`polls_until_done`); a new instance is PROVISIONING until its insert
operation is done.

Faults: `stockout_zones` (the insert operation fails with ZONE_RESOURCE_POOL_EXHAUSTED, as
GCE reports stock-outs), `fail_next_operation(...)` (any operation error, e.g.
QUOTA_EXCEEDED), and `fail_next(...)` (a synchronous HTTP error such as 403 quotaExceeded,
401, 500). Every request is logged in `requests` as (method, path, query, body).

Strict where GCE is: machine and accelerator types exist only in some zones
(`zone_offers`: zone -> machine type prefixes and accelerator names; by default A3 is
missing from us-central1-b, A2 from us-east4-a, V100 from us-central1-c and us-east4-a).
An insert of a machine type its zone lacks answers 400 "Invalid value for field
'resource.machineType': ... Machine type with name 'M' does not exist in zone 'Z'.", of an
accelerator type 404 "The resource '.../acceleratorTypes/A' was not found", as GCE does.
Metadata keys must be unique, as in GCE.

Reservations: `reservations` maps (zone, name) to the VMs still free in that specific
reservation. An insert whose reservationAffinity is SPECIFIC_RESERVATION takes one; one
naming a reservation the zone lacks answers 400 "... Could not find the given reservation
with the following name: N" (GCE's words, as the cluster autoscaler matches them), a full
one 400 "Specified reservations [...] do not have available resources for the request."
(the words gcloud users report; the status code is the fake's guess).

Manners of the real service, each off by default (shared/reference/cloud-apis.md section 5):

- `unreachable_zones`: aggregatedList leaves those zones' instances out, and says so the
  way compute v1 does (`InstanceAggregatedList.unreachables` = ["zones/Z", ...], and the
  scope "zones/Z" holds only a `warning` with code UNREACHABLE and data scope=zones/Z): a
  partial listing, not an empty one. Zonal calls there keep working, unless
  `unreachable_zone_gets` is set: then zonal GETs there (instance, operation) answer 503
  backendError, a zone's outage seen from both sides (the library's default retry keeps
  retrying that for 10 minutes: call with retry=None or a short Retry).
- `hide_new_for` (seconds, time.monotonic): an instance inserted less than that long ago is
  missing from aggregatedList (a list that lags its inserts, as peers report of every
  cloud's listings); a zonal get finds it at once. Seeded instances count as old.
- `boot_for` (seconds): an insert operation is DONE, and its instance RUNNING, that long
  after the insert, polled or not (a GPU VM boots whether or not its client waits).
- `hide(zone, name, seconds)`: leave one instance out of aggregatedList for a while.
- `set_status(zone, name, status)`: any raw status string (RUNNING, SUSPENDED, REPAIRING,
  TERMINATED = a stopped VM, STOPPING, STAGING, ... or an unknown word), kept: the insert
  operation finishing no longer makes it RUNNING. Only "PROVISIONING" leaves that automatic
  move on; a DELETE still stops and removes the instance.

    fake = FakeGce(project="p")
    with serve(fake) as endpoint:      # "http://127.0.0.1:PORT"
        ...
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.gce_policies import check_policies, route_policies

__all__ = ["FakeGce", "LoggedRequest", "serve"]

API = "https://www.googleapis.com/compute/v1"
_ALL = ("n1-", "a2-", "a3-", "a4-", "g2-")
_ACCELS = ("nvidia-tesla-t4", "nvidia-tesla-v100", "nvidia-tesla-a100", "nvidia-l4")
# zone -> (machine type prefixes, accelerator types) it sells; zones not listed sell all.
ZONE_OFFERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "us-central1-b": (("n1-", "a2-", "g2-"), _ACCELS),
    "us-central1-c": (_ALL, ("nvidia-tesla-t4", "nvidia-tesla-a100", "nvidia-l4")),
    "us-east4-a": (("n1-", "a3-", "g2-"), ("nvidia-tesla-t4", "nvidia-l4")),
}
GPU_FAMILIES = ("a2-", "a3-", "a4-", "a4x-", "g2-", "g4-")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_FILTER_TERM = re.compile(
    r'\(?\s*labels\.([a-z0-9_-]+)\s*(?::\s*\*|=\s*"([^"]*)"|=\s*([a-z0-9_-]+))\s*\)?\s*')


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class _Op:
    body: dict[str, Any]
    polls_left: int
    on_done: Any = None          # callable run once when the op becomes DONE
    error: dict[str, Any] | None = None
    done_at: float = 0.0         # with boot_for: time.monotonic() when it is DONE anyway


class HttpError(Exception):
    after_effect = False  # fail_next(after_effect=True): raised after the request's effect

    def __init__(self, status: int, message: str, reason: str = "", domain: str = "global",
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.reason, self.domain = status, message, reason, domain
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        err = {"message": self.message, "domain": self.domain, "reason": self.reason}
        return {"error": {"code": self.status, "message": self.message, "errors": [err]}}


@dataclass
class FakeGce:
    project: str = "test-project"
    zones: tuple[str, ...] = ("us-central1-a", "us-central1-b", "us-central1-c",
                              "us-east4-a", "europe-west4-a")
    polls_until_done: int = 1
    page_size: int = 500                 # aggregatedList default maxResults
    stockout_zones: set[str] = field(default_factory=set)
    reservations: dict[tuple[str, str], int] = field(default_factory=dict)
    # (region, name) -> compact placement policy (tests/fakes/gce_policies.py)
    policies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[LoggedRequest] = field(default_factory=list)
    instances: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, _Op] = field(default_factory=dict)
    unreachable_zones: set[str] = field(default_factory=set)
    unreachable_zone_gets: bool = False  # True: zonal GETs in unreachable zones answer 503
    hide_new_for: float = 0.0            # seconds an inserted instance stays unlisted
    boot_for: float = 0.0                # >0: an insert is DONE (and RUNNING) after this
                                         # many seconds, polled or not, instead of on polls
    zone_offers: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(
        default_factory=lambda: dict(ZONE_OFFERS))

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(4_000_000_000_000_000_001)
        self._ip = itertools.count(2)
        self._by_request_id: dict[str, str] = {}
        self._faults: list[tuple[str | None, str | None, HttpError]] = []
        self._op_faults: list[dict[str, Any]] = []
        self._inserted_at: dict[tuple[str, str], float] = {}  # time.monotonic() of insert
        self._hidden_until: dict[tuple[str, str], float] = {}  # hide(): unlisted until
        self._pinned: set[tuple[str, str]] = set()  # statuses from set_status

    # -- fault injection ------------------------------------------------------------

    def fail_next(self, status: int, message: str, reason: str = "", *,
                  method: str | None = None, path_contains: str | None = None,
                  headers: dict[str, str] | None = None, after_effect: bool = False) -> None:
        """The next matching request gets this synchronous HTTP error (once); with
        `after_effect`, only after it was carried out (a reply lost on the way back)."""
        err = HttpError(status, message, reason, headers=headers)
        err.after_effect = after_effect
        with self._lock:
            self._faults.append((method, path_contains, err))

    def fail_next_operation(self, code: str, message: str, http_status: int = 400,
                            details: list[dict[str, Any]] | None = None) -> None:
        """The next insert operation finishes DONE with this error (no instance stays)."""
        err: dict[str, Any] = {"code": code, "message": message}
        if details:
            err["errorDetails"] = details
        with self._lock:
            self._op_faults.append({"httpErrorStatusCode": http_status,
                                    "httpErrorMessage": _STATUS_TEXT.get(http_status, "ERROR"),
                                    "error": {"errors": [err]}})

    def add_instance(self, zone: str, name: str, *, machine_type: str = "n1-standard-1",
                     status: str = "RUNNING", labels: dict[str, str] | None = None) -> dict:
        """Seed an instance as if made outside the code under test."""
        body = {"name": name, "machineType": f"zones/{zone}/machineTypes/{machine_type}",
                "labels": labels or {},
                "networkInterfaces": [{"accessConfigs": [{"type": "ONE_TO_ONE_NAT"}]}]}
        with self._lock:
            inst = self._new_instance(zone, body)
            inst["status"] = status
            return inst

    def hide(self, zone: str, name: str, seconds: float) -> None:
        """Leave an instance out of aggregatedList for `seconds` (zonal GETs, which are
        consistent in GCE, still find it)."""
        with self._lock:
            self._hidden_until[(zone, name)] = time.monotonic() + seconds

    def set_status(self, zone: str, name: str, status: str) -> None:
        """Give an existing instance any raw status; it stays (see the module docstring)."""
        with self._lock:
            self.instances[(zone, name)]["status"] = status
            if status == "PROVISIONING":
                self._pinned.discard((zone, name))
            else:
                self._pinned.add((zone, name))

    def calls(self, method: str | None = None, contains: str = "") -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and contains in r.path]

    # -- request handling -----------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str],
               body: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.requests.append(LoggedRequest(method, path, query, body))
            try:
                fault = self._take_fault(method, path)
                if fault is not None and not fault.after_effect:
                    raise fault
                reply = self._route(method, path, query, body)
                if fault is not None:
                    raise fault
                return 200, reply, {}
            except HttpError as e:
                return e.status, e.body(), e.headers

    def _take_fault(self, method: str, path: str) -> HttpError | None:
        for i, (m, part, err) in enumerate(self._faults):
            if (m is None or m == method) and (part is None or part in path):
                del self._faults[i]
                return err
        return None

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> dict:
        prefix = f"/compute/v1/projects/{self.project}/"
        if not path.startswith(prefix):
            raise HttpError(404, f"The resource '{path}' was not found", "notFound")
        parts = path[len(prefix):].split("/")
        if parts == ["aggregated", "instances"] and method == "GET":
            return self._aggregated_list(query)
        if (policy_reply := route_policies(self, method, parts, body)) is not None:
            return policy_reply
        if len(parts) < 3 or parts[0] != "zones":
            raise HttpError(404, f"unknown path {path}", "notFound")
        zone, rest = parts[1], parts[2:]
        if zone not in self.zones:
            raise HttpError(404, f"The resource 'projects/{self.project}/zones/{zone}' "
                            "was not found", "notFound")
        if method == "GET" and self.unreachable_zone_gets and zone in self.unreachable_zones:
            raise HttpError(503, f"The zone 'projects/{self.project}/zones/{zone}' is "
                            "currently unavailable.", "backendError")
        if rest == ["instances"] and method == "POST":
            return self._insert(zone, query, body)
        if len(rest) == 2 and rest[0] == "instances":
            if method == "GET":
                return self._get(zone, rest[1])
            if method == "DELETE":
                return self._delete(zone, rest[1])
        if len(rest) == 3 and rest[0] == "instances" and rest[2] == "setLabels" \
                and method == "POST":
            return self._set_labels(zone, rest[1], body or {})
        is_poll = (method, rest[2:]) in (("GET", []), ("POST", ["wait"]))
        if rest[0] == "operations" and len(rest) in (2, 3) and is_poll:
            return self._poll(rest[1])
        raise HttpError(400, f"unsupported {method} {path}", "invalid")

    # -- instances ------------------------------------------------------------------

    def _validate(self, zone: str, body: dict[str, Any]) -> str:
        name = body.get("name", "")
        if not _NAME.match(name):
            raise HttpError(400, f"Invalid value for field 'resource.name': '{name}'.",
                            "invalid")
        mt = body.get("machineType", "")
        if not re.match(rf"^(.*/)?zones/{re.escape(zone)}/machineTypes/[a-z0-9-]+$", mt):
            raise HttpError(400, f"Invalid value for field 'resource.machineType': '{mt}'.",
                            "invalid")
        for k, v in body.get("labels", {}).items():
            if not _LABEL_KEY.match(k) or not _LABEL_VALUE.match(v):
                raise HttpError(400, f"Invalid value for field 'labels': '{k}'.", "invalid")
        machine = mt.rsplit("/", 1)[-1]
        accels = body.get("guestAccelerators", [])
        self._check_offered(zone, mt, machine, accels)
        _check_metadata(body.get("metadata", {}))
        if accels and machine.startswith(GPU_FAMILIES):
            raise HttpError(400, f"Machine type {machine} does not support guest accelerators",
                            "invalid")
        on_maint = body.get("scheduling", {}).get("onHostMaintenance", "MIGRATE")
        if (accels or machine.startswith(GPU_FAMILIES)) and on_maint != "TERMINATE":
            raise HttpError(400, "Instances with guest accelerators do not support live "
                            "migration.", "invalid")
        return name

    def _check_offered(self, zone: str, field_value: str, machine: str,
                       accels: list[dict[str, Any]]) -> None:
        machines, accelerators = self.zone_offers.get(zone, (_ALL, _ACCELS))
        if not machine.startswith(machines):
            raise HttpError(400, f"Invalid value for field 'resource.machineType': "
                            f"'{field_value}'. Machine type with name '{machine}' does not "
                            f"exist in zone '{zone}'.", "invalid")
        for accel in accels:
            name = accel.get("acceleratorType", "").rsplit("/", 1)[-1]
            if name not in accelerators:
                raise HttpError(404, f"The resource 'projects/{self.project}/zones/{zone}/"
                                f"acceleratorTypes/{name}' was not found", "notFound")

    def _insert(self, zone: str, query: dict[str, str], body: Any) -> dict:
        request_id = query.get("requestId", "")
        if request_id in self._by_request_id:       # a retried request: same operation
            return self.operations[self._by_request_id[request_id]].body
        name = self._validate(zone, body or {})
        if (zone, name) in self.instances:
            raise HttpError(409, f"The resource 'projects/{self.project}/zones/{zone}/"
                            f"instances/{name}' already exists", "alreadyExists")
        self._take_reservation(zone, (body or {}).get("reservationAffinity") or {})
        check_policies(self, zone, body or {})
        fault = self._op_faults.pop(0) if self._op_faults else None
        if fault is None and zone in self.stockout_zones:
            fault = _stockout(self.project, zone)
        op = self._new_op(zone, "insert", name, fault)
        if fault is None:
            self._new_instance(zone, body)
            self._inserted_at[(zone, name)] = time.monotonic()
            self._pinned.discard((zone, name))
            op.on_done = lambda: self._set_status(zone, name, "RUNNING")
        if request_id:
            self._by_request_id[request_id] = op.body["name"]
        return op.body

    def _take_reservation(self, zone: str, affinity: dict[str, Any]) -> None:
        if affinity.get("consumeReservationType") != "SPECIFIC_RESERVATION":
            return
        [name] = affinity.get("values") or [""]
        path = f"projects/{self.project}/zones/{zone}/reservations/{name}"
        if (zone, name) not in self.reservations:
            raise HttpError(400, "Invalid value for field 'resource.reservationAffinity': "
                            f"'{name}'. Could not find the given reservation with the "
                            f"following name: {name}", "invalid")
        if self.reservations[(zone, name)] < 1:
            raise HttpError(400, f"Specified reservations [{path}] do not have available "
                            "resources for the request.", "invalid")
        self.reservations[(zone, name)] -= 1

    def _new_instance(self, zone: str, body: dict[str, Any]) -> dict[str, Any]:
        name, n = body["name"], next(self._ip)
        z = f"{API}/projects/{self.project}/zones/{zone}"
        nics = []
        for nic in body.get("networkInterfaces", [{}]):
            acs = [dict(ac, natIP=f"34.1.{n // 250}.{n % 250}", kind="compute#accessConfig")
                   for ac in nic.get("accessConfigs", [])]
            nics.append({"kind": "compute#networkInterface", "name": "nic0",
                         "network": f"{API}/projects/{self.project}/global/networks/default",
                         "networkIP": f"10.128.{n // 250}.{n % 250}", "accessConfigs": acs})
        inst = {
            "kind": "compute#instance", "id": str(next(self._ids)), "name": name,
            "zone": z, "machineType": f"{z}/machineTypes/"
                                      + body["machineType"].rsplit("/", 1)[-1],
            "status": "PROVISIONING", "labels": dict(body.get("labels", {})),
            "labelFingerprint": "42WmSpB8rSM=", "networkInterfaces": nics,
            "guestAccelerators": [
                {"acceleratorType": f"{z}/acceleratorTypes/"
                                    + a["acceleratorType"].rsplit("/", 1)[-1],
                 "acceleratorCount": a.get("acceleratorCount", 1)}
                for a in body.get("guestAccelerators", [])],
            "scheduling": body.get("scheduling", {}),
            "metadata": dict(body.get("metadata", {}), kind="compute#metadata",
                             fingerprint="x3Dz3fmPzUk="),
            "disks": body.get("disks", []),
            "resourcePolicies": list(body.get("resourcePolicies", [])),
            "creationTimestamp": "2025-01-01T00:00:00.000-08:00",
            "selfLink": f"{z}/instances/{name}",
        }
        self.instances[(zone, name)] = inst
        return inst

    def _set_status(self, zone: str, name: str, status: str) -> None:
        """An automatic move: set_status's pinned statuses win over it."""
        if (zone, name) in self.instances and (zone, name) not in self._pinned:
            self.instances[(zone, name)]["status"] = status

    def label_as_google(self, zone: str, name: str, key: str, value: str) -> None:
        """One of Google's services labels the instance (the Ops Agent policy puts
        `goog-ops-agent-policy` on the VMs it covers): the labels and their fingerprint
        change, as another writer's setLabels would change them."""
        with self._lock:
            inst = self._get(zone, name)
            self._store_labels(inst, {**inst["labels"], key: value})

    def _store_labels(self, inst: dict[str, Any], labels: dict[str, str]) -> None:
        inst["labels"] = labels
        inst["labelFingerprint"] = base64.b64encode(
            hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).digest()[:8]).decode()

    def _set_labels(self, zone: str, name: str, body: dict[str, Any]) -> dict:
        """instances.setLabels: the whole label set, guarded by the fingerprint of the
        labels it replaces (a stale fingerprint is 412 conditionNotMet, as in GCE)."""
        inst = self._get(zone, name)
        if body.get("labelFingerprint") != inst["labelFingerprint"]:
            raise HttpError(412, "Labels fingerprint either invalid or resource labels have "
                            "changed", "conditionNotMet")
        labels = dict(body.get("labels") or {})
        for k, v in labels.items():
            if not _LABEL_KEY.match(k) or not _LABEL_VALUE.match(v):
                raise HttpError(400, f"Invalid value for field 'labels': '{k}'.", "invalid")
        self._store_labels(inst, labels)
        op = self._new_op(zone, "setLabels", name, None)
        op.polls_left = 0
        op.body.update(status="DONE", progress=100)
        return op.body

    def _get(self, zone: str, name: str) -> dict:
        self._booted()
        if (zone, name) not in self.instances:
            raise HttpError(404, f"The resource 'projects/{self.project}/zones/{zone}/"
                            f"instances/{name}' was not found", "notFound")
        return self.instances[(zone, name)]

    def _delete(self, zone: str, name: str) -> dict:
        inst = self._get(zone, name)
        inst["status"] = "STOPPING"
        self._pinned.discard((zone, name))  # a delete is the client's move, not automatic
        op = self._new_op(zone, "delete", name, None)
        op.on_done = lambda: self._forget(zone, name)
        return op.body

    def _forget(self, zone: str, name: str) -> None:
        self.instances.pop((zone, name), None)
        self._inserted_at.pop((zone, name), None)
        self._pinned.discard((zone, name))

    def _listed(self, zone: str, name: str) -> bool:
        """Shown by aggregatedList: zone reachable, and not inserted too recently."""
        if zone in self.unreachable_zones:
            return False
        now = time.monotonic()
        if now < self._hidden_until.get((zone, name), 0.0):
            return False
        inserted = self._inserted_at.get((zone, name))
        return (self.hide_new_for <= 0 or inserted is None
                or now - inserted >= self.hide_new_for)

    def _aggregated_list(self, query: dict[str, str]) -> dict:
        self._booted()
        terms = _parse_filter(query.get("filter", ""))
        matching = sorted(
            (inst for (zone, name), inst in self.instances.items()
             if self._listed(zone, name) and _matches(inst, terms)),
            key=lambda i: (i["zone"], i["name"]))
        size = int(query.get("maxResults") or self.page_size)
        start = int(query.get("pageToken") or 0)
        page = matching[start:start + size]
        items: dict[str, Any] = {f"zones/{z}": {"warning": {
            "code": "NO_RESULTS_ON_PAGE", "message": "There are no results for scope "
            f"'zones/{z}' on this page."}} for z in self.zones}
        unreachable = sorted(f"zones/{z}" for z in self.unreachable_zones)
        for scope in unreachable:
            items[scope] = {"warning": _unreachable(scope)}
        for inst in page:
            scope = items.setdefault("zones/" + inst["zone"].rsplit("/", 1)[-1], {})
            scope.pop("warning", None)
            scope.setdefault("instances", []).append(inst)
        out = {"kind": "compute#instanceAggregatedList", "id": f"projects/{self.project}/"
               "aggregated/instances", "items": items,
               "selfLink": f"{API}/projects/{self.project}/aggregated/instances"}
        if start + size < len(matching):
            out["nextPageToken"] = str(start + size)
        if unreachable:
            out["unreachables"] = unreachable
        return out

    # -- operations -----------------------------------------------------------------

    def _new_op(self, zone: str, kind: str, target: str, fault: dict | None) -> _Op:
        op_id = str(next(self._ids))
        z = f"{API}/projects/{self.project}/zones/{zone}"
        body = {"kind": "compute#operation", "id": op_id, "name": f"operation-{op_id}",
                "operationType": kind, "status": "RUNNING", "progress": 0, "zone": z,
                "targetLink": f"{z}/instances/{target}",
                "selfLink": f"{z}/operations/operation-{op_id}"}
        op = _Op(body=body, polls_left=self.polls_until_done, error=fault,
                 done_at=time.monotonic() + self.boot_for)
        self.operations[body["name"]] = op
        return op

    def _booted(self) -> None:
        """With `boot_for`, operations finish with time, whether anyone polls or not (a
        client killed mid-wait leaves a VM that still boots)."""
        if self.boot_for <= 0:
            return
        now = time.monotonic()
        for name, op in list(self.operations.items()):
            if op.body["status"] != "DONE" and now >= op.done_at:
                op.polls_left = 1
                self._poll(name)

    def _poll(self, name: str) -> dict:
        op = self.operations.get(name)
        if op is None:
            raise HttpError(404, f"The resource 'operation {name}' was not found", "notFound")
        if op.body["status"] != "DONE":
            op.polls_left -= 1
            if self.boot_for > 0:
                op.polls_left = 0 if time.monotonic() >= op.done_at else 1
            if op.polls_left <= 0:
                op.body.update(status="DONE", progress=100, **(op.error or {}))
                if op.on_done is not None:
                    op.on_done()
        return op.body


_STATUS_TEXT = {400: "BAD REQUEST", 403: "FORBIDDEN", 404: "NOT FOUND", 503: "SERVICE UNAVAILABLE"}


def _stockout(project: str, zone: str) -> dict[str, Any]:
    message = (f"The zone 'projects/{project}/zones/{zone}' does not have enough resources "
               "available to fulfill the request.  Try a different zone, or try again later.")
    return {"httpErrorStatusCode": 503, "httpErrorMessage": "SERVICE UNAVAILABLE",
            "error": {"errors": [{"code": "ZONE_RESOURCE_POOL_EXHAUSTED", "message": message}]}}


def _unreachable(scope: str) -> dict[str, Any]:
    """The per-scope warning of a zone that aggregatedList could not reach (compute v1
    Warning code UNREACHABLE; the message text is the fake's own)."""
    return {"code": "UNREACHABLE", "message": f"Scope '{scope}' is unreachable; its "
            "resources are missing from this list.", "data": [{"key": "scope", "value": scope}]}


def _check_metadata(metadata: dict[str, Any]) -> None:
    items = metadata.get("items", [])
    keys = [i.get("key", "") for i in items]
    if len(set(keys)) < len(keys):
        raise HttpError(400, "Invalid value for field 'resource.metadata': duplicate keys.",
                        "invalid")


def _parse_filter(text: str) -> list[tuple[str, str | None]]:
    """`labels.k:*` -> (k, None); `labels.k = "v"` -> (k, v); terms side by side are ANDed."""
    terms, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _FILTER_TERM.match(text, pos)
        if not m:
            raise HttpError(400, f"Invalid list filter expression '{text}'.", "invalid")
        terms.append((m.group(1), m.group(2) if m.group(2) is not None else m.group(3)))
        pos = m.end()
    return terms


def _matches(inst: dict[str, Any], terms: list[tuple[str, str | None]]) -> bool:
    labels = inst.get("labels", {})
    return all(k in labels and (v is None or labels[k] == v) for k, v in terms)


def _handler(fake: FakeGce) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, payload, headers = fake.handle(self.command, url.path, query, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep pytest output clean; the fake keeps its own request log

    return Handler


@contextmanager
def serve(fake: FakeGce) -> Iterator[str]:
    """Serve `fake` on 127.0.0.1 (a free port) in a daemon thread; yields the endpoint."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    # A short poll interval keeps shutdown() (and so every test's teardown) fast.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-gce",
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

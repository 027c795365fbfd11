"""A small fake of the Compute Engine REST API, for the real google-cloud-compute client.

Only what navarch uses: instances insert/get/delete/aggregatedList and zone operations
get/wait, all under /compute/v1/projects/{project}/... . The shapes follow the real API
closely enough for the client's strict parser (numeric ids as digit strings, proto field
types) and its error mapping (`{"error": {"code", "message", "errors": [{reason}]}}`).

Deterministic, clock-free: an operation starts RUNNING and is DONE on its N-th poll
(`polls_until_done`); a new instance is PROVISIONING until its insert operation is done.

Faults: `stockout_zones` (the insert operation fails with ZONE_RESOURCE_POOL_EXHAUSTED, as
GCE reports stock-outs), `fail_next_operation(...)` (any operation error, e.g.
QUOTA_EXCEEDED), and `fail_next(...)` (a synchronous HTTP error such as 403 quotaExceeded,
401, 500). Every request is logged in `requests` as (method, path, query, body).

    fake = FakeGce(project="p")
    with serve(fake) as endpoint:      # "http://127.0.0.1:PORT"
        ...
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeGce", "LoggedRequest", "serve"]

API = "https://www.googleapis.com/compute/v1"
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


class HttpError(Exception):
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
    requests: list[LoggedRequest] = field(default_factory=list)
    instances: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, _Op] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(4_000_000_000_000_000_001)
        self._ip = itertools.count(2)
        self._by_request_id: dict[str, str] = {}
        self._faults: list[tuple[str | None, str | None, HttpError]] = []
        self._op_faults: list[dict[str, Any]] = []

    # -- fault injection ------------------------------------------------------------

    def fail_next(self, status: int, message: str, reason: str = "", *,
                  method: str | None = None, path_contains: str | None = None,
                  headers: dict[str, str] | None = None) -> None:
        """The next matching request gets this synchronous HTTP error (once)."""
        err = HttpError(status, message, reason, headers=headers)
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
                self._maybe_fault(method, path)
                return 200, self._route(method, path, query, body), {}
            except HttpError as e:
                return e.status, e.body(), e.headers

    def _maybe_fault(self, method: str, path: str) -> None:
        for i, (m, part, err) in enumerate(self._faults):
            if (m is None or m == method) and (part is None or part in path):
                del self._faults[i]
                raise err

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> dict:
        prefix = f"/compute/v1/projects/{self.project}/"
        if not path.startswith(prefix):
            raise HttpError(404, f"The resource '{path}' was not found", "notFound")
        parts = path[len(prefix):].split("/")
        if parts == ["aggregated", "instances"] and method == "GET":
            return self._aggregated_list(query)
        if len(parts) < 3 or parts[0] != "zones":
            raise HttpError(404, f"unknown path {path}", "notFound")
        zone, rest = parts[1], parts[2:]
        if zone not in self.zones:
            raise HttpError(404, f"The resource 'projects/{self.project}/zones/{zone}' "
                            "was not found", "notFound")
        if rest == ["instances"] and method == "POST":
            return self._insert(zone, query, body)
        if len(rest) == 2 and rest[0] == "instances":
            if method == "GET":
                return self._get(zone, rest[1])
            if method == "DELETE":
                return self._delete(zone, rest[1])
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
        if accels and machine.startswith(GPU_FAMILIES):
            raise HttpError(400, f"Machine type {machine} does not support guest accelerators",
                            "invalid")
        on_maint = body.get("scheduling", {}).get("onHostMaintenance", "MIGRATE")
        if (accels or machine.startswith(GPU_FAMILIES)) and on_maint != "TERMINATE":
            raise HttpError(400, "Instances with guest accelerators do not support live "
                            "migration.", "invalid")
        return name

    def _insert(self, zone: str, query: dict[str, str], body: Any) -> dict:
        request_id = query.get("requestId", "")
        if request_id in self._by_request_id:       # a retried request: same operation
            return self.operations[self._by_request_id[request_id]].body
        name = self._validate(zone, body or {})
        if (zone, name) in self.instances:
            raise HttpError(409, f"The resource 'projects/{self.project}/zones/{zone}/"
                            f"instances/{name}' already exists", "alreadyExists")
        fault = self._op_faults.pop(0) if self._op_faults else None
        if fault is None and zone in self.stockout_zones:
            fault = _stockout(self.project, zone)
        op = self._new_op(zone, "insert", name, fault)
        if fault is None:
            self._new_instance(zone, body)
            op.on_done = lambda: self._set_status(zone, name, "RUNNING")
        if request_id:
            self._by_request_id[request_id] = op.body["name"]
        return op.body

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
            "creationTimestamp": "2025-01-01T00:00:00.000-08:00",
            "selfLink": f"{z}/instances/{name}",
        }
        self.instances[(zone, name)] = inst
        return inst

    def _set_status(self, zone: str, name: str, status: str) -> None:
        if (zone, name) in self.instances:
            self.instances[(zone, name)]["status"] = status

    def _get(self, zone: str, name: str) -> dict:
        if (zone, name) not in self.instances:
            raise HttpError(404, f"The resource 'projects/{self.project}/zones/{zone}/"
                            f"instances/{name}' was not found", "notFound")
        return self.instances[(zone, name)]

    def _delete(self, zone: str, name: str) -> dict:
        inst = self._get(zone, name)
        inst["status"] = "STOPPING"
        op = self._new_op(zone, "delete", name, None)
        op.on_done = lambda: self.instances.pop((zone, name), None)
        return op.body

    def _aggregated_list(self, query: dict[str, str]) -> dict:
        terms = _parse_filter(query.get("filter", ""))
        matching = sorted(
            (inst for inst in self.instances.values() if _matches(inst, terms)),
            key=lambda i: (i["zone"], i["name"]))
        size = int(query.get("maxResults") or self.page_size)
        start = int(query.get("pageToken") or 0)
        page = matching[start:start + size]
        items: dict[str, Any] = {f"zones/{z}": {"warning": {
            "code": "NO_RESULTS_ON_PAGE", "message": "There are no results for scope "
            f"'zones/{z}' on this page."}} for z in self.zones}
        for inst in page:
            scope = items.setdefault("zones/" + inst["zone"].rsplit("/", 1)[-1], {})
            scope.pop("warning", None)
            scope.setdefault("instances", []).append(inst)
        out = {"kind": "compute#instanceAggregatedList", "id": f"projects/{self.project}/"
               "aggregated/instances", "items": items,
               "selfLink": f"{API}/projects/{self.project}/aggregated/instances"}
        if start + size < len(matching):
            out["nextPageToken"] = str(start + size)
        return out

    # -- operations -----------------------------------------------------------------

    def _new_op(self, zone: str, kind: str, target: str, fault: dict | None) -> _Op:
        op_id = str(next(self._ids))
        z = f"{API}/projects/{self.project}/zones/{zone}"
        body = {"kind": "compute#operation", "id": op_id, "name": f"operation-{op_id}",
                "operationType": kind, "status": "RUNNING", "progress": 0, "zone": z,
                "targetLink": f"{z}/instances/{target}",
                "selfLink": f"{z}/operations/operation-{op_id}"}
        op = _Op(body=body, polls_left=self.polls_until_done, error=fault)
        self.operations[body["name"]] = op
        return op

    def _poll(self, name: str) -> dict:
        op = self.operations.get(name)
        if op is None:
            raise HttpError(404, f"The resource 'operation {name}' was not found", "notFound")
        if op.body["status"] != "DONE":
            op.polls_left -= 1
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

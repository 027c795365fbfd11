"""A stateful fake of the Lambda Cloud API v1 as a WSGI app (standard library only).

Use it in-process through `httpx.WSGITransport(app=fake)`, or on a socket with
`with serve(fake) as base_url:` when a test needs real timeouts or concurrency. It keeps
the wire shapes of shared/reference/cloud-apis.md section 1 and is stricter than the real
API where that catches client bugs (unknown launch fields are refused).

State moves only when it is observed, never with the clock: a new instance stays `booting`
for `boot_polls` GETs that return it, a terminated one is shown once more by the next list
and then disappears. Faults queued with `inject` answer the next matching requests.

Manners of the real cloud, each off by default (shared/reference/cloud-apis.md sections 1
and 5: "a list page can fail or come back empty for a moment", "a lost launch reply is
resolved by name", no idempotency key on launch):

- `hide_new_for` (seconds, the one use of the clock): an instance launched through the API
  less than that long ago (time.monotonic) is missing from `GET /instances`, and
  `GET /instances/{id}` and terminate answer 404 `global/object-does-not-exist` for it, as
  for an unknown id (terminate then ends nothing). Seeded instances count as old.
- `short_listings(n, keep=0)`: the next n `GET /instances` answer 200 with only the first
  `keep` instances; the ones left out are not observed (nothing moves for them).
- `Fault(drop=True)` / `drop_after_creating()`: the connection closes with no reply at all
  (a client sees "server disconnected"), after the launch was carried out if passthrough;
  `timeout_after_creating()` is the lost reply seen as a read timeout.
- `set_status(id, status)`: any raw status, kept until the next `set_status` or terminate
  (the spec's enum is booting, active, unhealthy, terminating, terminated, preempted, and
  grows: e.g. restarting). Only "booting" moves on to active by itself, as after a launch.
- `instance_ids()`: every instance held, hidden ones included, without observing any.
"""

from __future__ import annotations

import contextlib
import fnmatch
import http
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

__all__ = ["DEFAULT_CATALOG", "DroppedReply", "Fault", "FakeLambda", "LoggedRequest",
           "error_body", "serve"]

PREFIX = "/api/v1"
LAUNCH = "/instance-operations/launch"
TERMINATE = "/instance-operations/terminate"
ALIVE = ("booting", "active", "unhealthy")
LAUNCH_FIELDS = {"region_name", "instance_type_name", "ssh_key_names", "file_system_names",
                 "file_system_mounts", "hostname", "name", "image", "user_data", "tags",
                 "firewall_rulesets", "quantity"}
TAG_KEY = re.compile(r"^[a-z][a-z0-9-:]+$")
REGION_NAMES = {"us-east-1": "Virginia, USA", "us-west-1": "California, USA",
                "us-west-2": "Arizona, USA", "europe-central-1": "Germany"}


def _offer(name: str, gpu: str, cents: int, gpus: int, vcpus: int, mem: int,
           regions: list[str]) -> dict[str, Any]:
    return {"instance_type": {"name": name, "description": f"{gpus}x {gpu}",
                              "gpu_description": gpu, "price_cents_per_hour": cents,
                              "specs": {"vcpus": vcpus, "memory_gib": mem,
                                        "storage_gib": 512 * gpus, "gpus": gpus}},
            "regions": regions}


# `regions`: where the type is offered with unlimited capacity (unless `capacity` says).
DEFAULT_CATALOG: dict[str, dict[str, Any]] = {
    "gpu_1x_a10": _offer("gpu_1x_a10", "A10 (24 GB PCIe)", 75, 1, 30, 200,
                         ["us-east-1", "us-west-1"]),
    "gpu_1x_h100_pcie": _offer("gpu_1x_h100_pcie", "H100 (80 GB PCIe)", 249, 1, 26, 200,
                               ["us-east-1"]),
    "gpu_8x_h100_sxm5": _offer("gpu_8x_h100_sxm5", "H100 (80 GB SXM5)", 2392, 8, 208, 1800,
                               ["us-west-2", "us-east-1"]),
    "gpu_8x_a100": _offer("gpu_8x_a100", "A100 (40 GB SXM4)", 1032, 8, 124, 1800, []),
    "gpu_8x_v100": _offer("gpu_8x_v100", "Tesla V100 (16 GB)", 440, 8, 92, 448,
                          ["us-west-2"]),
}
# What the account holds besides instances: file systems and firewall rulesets (name or
# id -> its region), images (ids and families, in every region).
DEFAULT_FILE_SYSTEMS = {"datasets-east": "us-east-1", "datasets-west": "us-west-1"}
DEFAULT_FIREWALL_RULESETS = {"fwr-ssh-east": "us-east-1", "fwr-ssh-west": "us-west-1"}
DEFAULT_IMAGES = {"id": {"img-5f1e0c"}, "family": {"lambda-stack-22-04",
                                                   "lambda-stack-24-04"}}


def error_body(code: str, message: str = "", suggestion: str = "") -> dict[str, Any]:
    err = {"code": code, "message": message or f"fake error {code}"}
    if suggestion:
        err["suggestion"] = suggestion
    return {"error": err}


@dataclass
class Fault:
    """Answers the next `times` requests matching method and path (path below /api/v1,
    fnmatch patterns allowed; None matches anything).

    status None: answer normally. passthrough: run the real handler first (so a launch
    creates its instance), then wait `delay` and answer with the fault; otherwise wait
    `delay` first. A delay longer than the client's timeout is a timeout.

    drop: after that, close the connection without any reply (status is then unused); a
    real client sees a connection error. On the socket server only: in-process through
    httpx.WSGITransport the `DroppedReply` (a ConnectionAbortedError) reaches the caller.
    """

    method: str | None = None
    path: str | None = None
    status: int | None = None
    body: Any = None  # dict/list -> JSON; str/bytes -> as is; None -> empty body
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    passthrough: bool = False
    times: int = 1
    drop: bool = False

    def matches(self, method: str, path: str) -> bool:
        return ((self.method is None or self.method == method)
                and (self.path is None or fnmatch.fnmatchcase(path, self.path)))


class DroppedReply(ConnectionAbortedError):
    """Raised by the app for a `drop` fault; wsgiref's server then closes the connection
    without writing anything (it swallows ConnectionAbortedError from the app)."""


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # below /api/v1 when under it
    time: float  # time.monotonic() on arrival
    body: Any  # parsed JSON body, or None
    authorized: bool


@dataclass
class _Instance:
    id: str
    type_name: str
    region: str
    status: str
    ssh_key_names: list[str]
    name: str = ""
    tags: list[dict[str, str]] = field(default_factory=list)
    user_data: str = ""
    file_system_names: list[str] = field(default_factory=list)
    firewall_rulesets: list[dict[str, str]] = field(default_factory=list)
    ip: str = ""
    polls_left: int = 0
    shown_terminated: bool = False
    launched: float | None = None  # time.monotonic() of an API launch; None: seeded
    pinned: bool = False  # a status from set_status: no automatic transition
    hidden_until: float = 0.0  # time.monotonic(): hidden by hide() until then


Reply = tuple[int, Any, dict[str, str]]


class FakeLambda:
    """The fake cloud. Thread-safe: one lock guards the state and the logs."""

    def __init__(self, api_key: str = "fake-key", *,
                 catalog: Mapping[str, dict[str, Any]] | None = None,
                 capacity: Mapping[tuple[str, str], int] | None = None,
                 ssh_keys: Iterable[str] = ("ops-team",), boot_polls: int = 0,
                 terminate_polls: int = 0, quota: int | None = None,
                 hide_new_for: float = 0.0) -> None:
        self.api_key = api_key
        self.catalog = dict(catalog or DEFAULT_CATALOG)
        self.capacity = dict(capacity or {})  # (type, region) -> max live instances
        self.ssh_keys = set(ssh_keys)
        self.file_systems = dict(DEFAULT_FILE_SYSTEMS)
        self.firewall_rulesets = dict(DEFAULT_FIREWALL_RULESETS)
        self.images = {k: set(v) for k, v in DEFAULT_IMAGES.items()}
        self.boot_polls, self.terminate_polls, self.quota = boot_polls, terminate_polls, quota
        self.instances: dict[str, _Instance] = {}
        self.log: list[LoggedRequest] = []
        self.faults: list[Fault] = []
        self.hide_new_for = hide_new_for  # seconds a launched instance stays unlisted
        self._short_left, self._short_keep = 0, 0  # short_listings(n, keep)
        self._lock = threading.RLock()
        self._wake = threading.Event()  # set by serve() on exit: cuts delays short
        self._ips = 0

    # -- test helpers ---------------------------------------------------------------------

    def inject(self, status: int | None = None, *, method: str | None = None,
               path: str | None = None, **kw: Any) -> Fault:
        fault = Fault(method=method, path=path, status=status, **kw)
        with self._lock:
            self.faults.append(fault)
        return fault

    def timeout_after_creating(self, delay: float) -> Fault:
        """The next launch creates its instance, then answers only after `delay` s."""
        return self.inject(method="POST", path=LAUNCH, delay=delay, passthrough=True)

    def drop_after_creating(self, delay: float = 0.0) -> Fault:
        """The next launch creates its instance, then (after `delay` s) the connection
        closes with no reply: the lost launch reply (socket server only)."""
        return self.inject(method="POST", path=LAUNCH, delay=delay, passthrough=True,
                           drop=True)

    def short_listings(self, n: int, keep: int = 0) -> None:
        """The next `n` GET /instances answer 200 with only the first `keep` instances
        (0: an empty list). Replaces any short listings still pending."""
        with self._lock:
            self._short_left, self._short_keep = n, keep

    def instance_ids(self) -> dict[str, str]:
        """id -> status of every instance held, hidden ones included; observes nothing."""
        with self._lock:
            return {i.id: i.status for i in self.instances.values()}

    def requests(self, method: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self.log if (method is None or r.method == method)
                    and (path is None or fnmatch.fnmatchcase(r.path, path))]

    def seed_instance(self, instance_type: str = "gpu_1x_a10", region: str = "us-east-1", *,
                      name: str = "", status: str = "active",
                      tags: Mapping[str, str] | None = None) -> str:
        """An instance made outside the client under test (by hand, by someone else)."""
        with self._lock:
            inst = self._create(instance_type, region, ["ops-team"], name,
                                [{"key": k, "value": v} for k, v in (tags or {}).items()], "")
            inst.status = status
            if status != "booting" and not inst.ip:
                inst.ip = self._next_ip()
            return inst.id

    def hide(self, instance_id: str, seconds: float) -> None:
        """Hide an instance as if it had just been launched, for `seconds`."""
        with self._lock:
            self.instances[instance_id].hidden_until = time.monotonic() + seconds

    def set_status(self, instance_id: str, status: str) -> None:
        """Any raw status string, kept until the next set_status or a terminate; only
        "booting" moves on to active by itself. An instance past booting gets an ip."""
        with self._lock:
            inst = self.instances[instance_id]
            inst.status, inst.pinned = status, status != "booting"
            if status != "booting" and not inst.ip:
                inst.ip = self._next_ip()

    # -- WSGI -----------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        sub = path[len(PREFIX):] if path.startswith(PREFIX + "/") else None
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = ...  # marks unparsable JSON
        authorized = environ.get("HTTP_AUTHORIZATION") == f"Bearer {self.api_key}"
        with self._lock:
            self.log.append(LoggedRequest(method, sub or path, time.monotonic(),
                                          None if body is ... else body, authorized))
            fault = self._take_fault(method, sub or path)
        if fault is None:
            reply = self._handle(method, sub, body, authorized)
        else:
            reply = self._faulty(fault, lambda: self._handle(method, sub, body, authorized))
        return self._respond(start_response, *reply)

    def _faulty(self, fault: Fault, handle: Callable[[], Reply]) -> Reply:
        """The answer under `fault`: see Fault. Raises DroppedReply for a drop."""
        if not fault.passthrough:
            self._wake.wait(fault.delay)
        reply: Reply | None = None
        if fault.passthrough or (fault.status is None and not fault.drop):
            reply = handle()
        if fault.passthrough:
            self._wake.wait(fault.delay)
        if fault.drop:
            raise DroppedReply("the fake dropped the connection without a reply")
        if fault.status is not None:
            return fault.status, fault.body, fault.headers
        assert reply is not None  # status None without drop: the handler ran
        return reply

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _respond(start_response: Callable[..., Any], status: int, body: Any,
                 headers: Mapping[str, str]) -> list[bytes]:
        if body is None:
            data, ctype = b"", None
        elif isinstance(body, bytes | str):
            data = body.encode() if isinstance(body, str) else body
            ctype = "text/plain"
        else:
            data, ctype = json.dumps(body).encode(), "application/json"
        out = [("Content-Length", str(len(data)))] + [(k, str(v)) for k, v in headers.items()]
        if ctype:
            out.append(("Content-Type", ctype))
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        start_response(f"{status} {phrase}", out)
        return [data]

    # -- the API --------------------------------------------------------------------------

    def _handle(self, method: str, sub: str | None, body: Any, authorized: bool) -> Reply:
        if sub is None:
            return 404, error_body("global/object-does-not-exist", "No such route."), {}
        if not authorized:
            return 401, error_body("global/invalid-api-key",
                                   "API key was invalid, expired, or deleted."), {}
        if body is ...:
            return 400, error_body("global/invalid-parameters", "Body is not JSON."), {}
        with self._lock:
            if method == "GET" and sub == "/instance-types":
                return 200, {"data": self._instance_types()}, {}
            if method == "GET" and sub == "/instances":
                return 200, {"data": self._list()}, {}
            if method == "GET" and sub.startswith("/instances/"):
                return self._get(sub[len("/instances/"):])
            if method == "POST" and sub == LAUNCH:
                return self._launch(body)
            if method == "POST" and sub == TERMINATE:
                return self._terminate(body)
        return 404, error_body("global/object-does-not-exist", "No such route."), {}

    def _instance_types(self) -> dict[str, Any]:
        out = {}
        for name, entry in self.catalog.items():
            regions = set(entry["regions"]) | {r for (t, r) in self.capacity if t == name}
            out[name] = {"instance_type": entry["instance_type"],
                         "regions_with_capacity_available": [
                             {"name": r, "description": REGION_NAMES.get(r, r)}
                             for r in sorted(regions) if self._remaining(name, r) > 0]}
        return out

    def _list(self) -> list[dict[str, Any]]:
        keep = None
        if self._short_left > 0:
            self._short_left -= 1
            keep = self._short_keep
        out: list[dict[str, Any]] = []
        for inst in list(self.instances.values()):
            if keep is not None and len(out) >= keep:
                break
            if self._hidden(inst):
                continue
            self._observe(inst)
            if inst.status == "terminated":
                if inst.shown_terminated:
                    del self.instances[inst.id]
                    continue
                inst.shown_terminated = True
            out.append(self._wire(inst))
        return out

    def _get(self, instance_id: str) -> Reply:
        inst = self.instances.get(instance_id)
        if inst is None or self._hidden(inst):
            return 404, error_body("global/object-does-not-exist",
                                   "Specified instance does not exist."), {}
        self._observe(inst)
        return 200, {"data": self._wire(inst)}, {}

    def _launch(self, body: Any) -> Reply:
        problem = self._check_launch(body)
        if problem:
            return problem
        inst = self._create(body["instance_type_name"], body["region_name"],
                            list(body["ssh_key_names"]), body.get("name", ""),
                            list(body.get("tags") or []), body.get("user_data", ""))
        inst.polls_left, inst.launched = self.boot_polls, time.monotonic()
        inst.file_system_names = list(body.get("file_system_names") or [])
        inst.firewall_rulesets = list(body.get("firewall_rulesets") or [])
        return 200, {"data": {"instance_ids": [inst.id]}}, {}

    def _check_launch(self, body: Any) -> Reply | None:
        def bad(message: str, code: str = "global/invalid-parameters", status: int = 400,
                suggestion: str = "") -> Reply:
            return status, error_body(code, message, suggestion), {}
        if not isinstance(body, dict):
            return bad("Invalid request data.")
        if set(body) - LAUNCH_FIELDS:
            return bad(f"Unknown fields: {sorted(set(body) - LAUNCH_FIELDS)}")
        if not body.get("region_name") or not body.get("instance_type_name"):
            return bad("region_name and instance_type_name are required.")
        if body.get("quantity", 1) != 1:
            return bad("Requested too many instances.")
        keys = body.get("ssh_key_names")
        if not isinstance(keys, list) or len(keys) != 1:
            return bad("Exactly one SSH key must be specified.")
        tags = body.get("tags") or []
        if not all(isinstance(t, dict) and set(t) == {"key", "value"}
                   and TAG_KEY.match(str(t["key"])) and len(t["key"]) <= 55
                   and len(str(t["value"])) <= 128 for t in tags):
            return bad("Invalid tags.")
        if len(body.get("name", "")) > 64:
            return bad("name is longer than 64 characters.")
        if body["instance_type_name"] not in self.catalog or keys[0] not in self.ssh_keys:
            return bad("Specified instance type or SSH key does not exist.",
                       "global/object-does-not-exist", 404)
        attached = self._check_attachments(body)
        if attached:
            return bad(*attached)
        alive = sum(i.status in ALIVE for i in self.instances.values())
        if self.quota is not None and alive >= self.quota:
            return bad("Quota exceeded.", "global/quota-exceeded")
        if self._remaining(body["instance_type_name"], body["region_name"]) <= 0:
            return bad("Not enough capacity to fulfill launch request.",
                       "instance-operations/launch/insufficient-capacity",
                       suggestion="Choose an instance type with more availability, or try "
                                  "again later.")
        return None

    def _check_attachments(self, body: dict[str, Any]) -> tuple[str, str] | None:
        """Lambda's launch shapes for user_data, file systems, firewall rulesets and the
        image, strictly: (message, code) of the 400 the real API answers, or None."""
        region = body["region_name"]
        invalid = "global/invalid-parameters"
        missing = "global/object-does-not-exist"
        if not isinstance(body.get("user_data", ""), str) or \
                len(body.get("user_data", "").encode()) > 1 << 20:
            return "user_data must be plain text of at most 1 MB.", invalid
        names = body.get("file_system_names", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return "file_system_names must be a list of names.", invalid
        for name in names:
            if name not in self.file_systems:
                return "Filesystem was not found.", missing
            if self.file_systems[name] != region:
                return (f"File system {name!r} is in {self.file_systems[name]}, not "
                        f"{region}.", "instance-operations/launch/file-system-in-wrong-region")
        rulesets = body.get("firewall_rulesets", [])
        if not isinstance(rulesets, list) or not all(
                isinstance(r, dict) and set(r) == {"id"} and isinstance(r["id"], str)
                for r in rulesets):
            return "firewall_rulesets must be a list of {id} objects.", invalid
        for ruleset in rulesets:
            if self.firewall_rulesets.get(ruleset["id"]) != region:
                return ("Firewall ruleset does not exist or you do not have permission to "
                        "access it.", missing)
        return self._check_image(body.get("image"))

    def _check_image(self, image: Any) -> tuple[str, str] | None:
        if image is None:
            return None
        if not isinstance(image, dict) or len(image) != 1 or \
                next(iter(image)) not in ("id", "family") or \
                not isinstance(next(iter(image.values())), str):
            return "image must be {id} or {family}.", "global/invalid-parameters"
        (kind, value), = image.items()
        if value not in self.images[kind]:
            return "Image was not found.", "global/object-does-not-exist"
        return None

    def _terminate(self, body: Any) -> Reply:
        ids = body.get("instance_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids:
            return 400, error_body("global/invalid-parameters", "instance_ids is required."), {}
        if any(i not in self.instances or self._hidden(self.instances[i]) for i in ids):
            return 404, error_body("global/object-does-not-exist",
                                   "Specified instance does not exist."), {}
        for instance_id in ids:
            inst = self.instances[instance_id]
            # Anything not already going goes: restarting, or a status set by set_status.
            if inst.status not in ("terminating", "terminated", "preempted"):
                inst.pinned = False
                inst.status = "terminating" if self.terminate_polls else "terminated"
                inst.polls_left = self.terminate_polls
        return 200, {"data": {"terminated_instances": [
            self._wire(self.instances[i]) for i in ids]}}, {}

    # -- state ----------------------------------------------------------------------------

    def _create(self, type_name: str, region: str, keys: list[str], name: str,
                tags: list[dict[str, str]], user_data: str) -> _Instance:
        inst = _Instance(id=uuid.uuid4().hex, type_name=type_name, region=region,
                         status="booting", ssh_key_names=keys, name=name, tags=tags,
                         user_data=user_data)
        self.instances[inst.id] = inst
        return inst

    def _remaining(self, type_name: str, region: str) -> int:
        if (type_name, region) in self.capacity:
            used = sum(i.type_name == type_name and i.region == region and i.status in ALIVE
                       for i in self.instances.values())
            return self.capacity[(type_name, region)] - used
        return 1 << 30 if region in self.catalog[type_name]["regions"] else 0

    def _hidden(self, inst: _Instance) -> bool:
        """Launched less than `hide_new_for` s ago, or hidden by hide(): not visible to
        GETs and terminate yet."""
        now = time.monotonic()
        return now < inst.hidden_until or (
            self.hide_new_for > 0 and inst.launched is not None
            and now - inst.launched < self.hide_new_for)

    def _observe(self, inst: _Instance) -> None:
        """A GET saw the instance: booting and terminating move on after enough looks,
        unless set_status pinned the status."""
        if inst.pinned or inst.status not in ("booting", "terminating"):
            return
        if inst.polls_left > 0:
            inst.polls_left -= 1
        elif inst.status == "booting":
            inst.status, inst.ip = "active", self._next_ip()
        else:
            inst.status = "terminated"

    def _next_ip(self) -> str:
        self._ips += 1
        return f"198.51.{100 + self._ips // 250}.{self._ips % 250 + 1}"

    def _wire(self, inst: _Instance) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": inst.id, "status": inst.status, "ssh_key_names": inst.ssh_key_names,
            "file_system_names": inst.file_system_names,
            "region": {"name": inst.region,
                       "description": REGION_NAMES.get(inst.region, inst.region)},
            "instance_type": self.catalog[inst.type_name]["instance_type"],
            "tags": inst.tags, "firewall_rulesets": inst.firewall_rulesets,
            "actions": {"terminate": {"available": inst.status in ALIVE}}}
        if inst.name:
            out["name"] = inst.name
        if inst.ip:
            out |= {"ip": inst.ip, "private_ip": f"10.0.0.{inst.ip.rsplit('.', 1)[1]}",
                    "hostname": inst.ip.replace(".", "-") + ".cloud.lambdalabs.com"}
        return out


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False  # a handler sleeping in a fault must not hold up shutdown


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve(fake: FakeLambda) -> Iterator[str]:
    """Serves `fake` on 127.0.0.1 (a free port) in a daemon thread; yields the base URL."""
    server = make_server("127.0.0.1", 0, fake, server_class=_Server,
                         handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    fake._wake.clear()
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}{PREFIX}"
    finally:
        fake._wake.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

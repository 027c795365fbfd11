"""An HTTP proxy in front of moto's server that gives EC2 the manners of the real one.

The EC2 developer guide ("Eventual consistency in the Amazon EC2 API") warns that right after
RunInstances, DescribeInstances may not return the new instance yet (filtered listings omit
it; a lookup by id answers InvalidInstanceID.NotFound), and that TerminateInstances may
answer InvalidInstanceID.NotFound for an instance that is running. "Ensuring idempotency"
documents the recovery: re-sending RunInstances with the same ClientToken returns the
original reservation instead of launching again, and the same token with other parameters
is IdempotentParameterMismatch. moto is consistent at once and ignores ClientToken; this
proxy (standard library only) adds, per `LaggingEc2` and settable while it runs: new
instances hidden for `hide_new_for` seconds (or any by `hide()`), ClientToken idempotency,
lost replies (forwarded, then the connection closes unanswered) and empty listings. Only
EC2 query requests (SigV4 scope service `ec2`) are looked at; S3 and the rest pass as is.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

EC2_VERSION = "2016-11-15"
# Headers of one connection, not of the message; Content-Length is recomputed.
_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
                  "trailer", "upgrade", "expect", "content-length"})
_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/([^/,\s]+)/")
_REQUEST_ID = re.compile(rb"<requestId>[^<]*</requestId>")
_INSTANCE_ID_PARAM = re.compile(r"InstanceId\.\d+")
# Actions naming instances by InstanceId.N that answer NotFound while one of them is hidden.
BY_ID_ACTIONS = frozenset({"DescribeInstances", "TerminateInstances", "StopInstances",
                           "StartInstances", "RebootInstances"})
_MISMATCH = ("Arguments on this idempotent request are inconsistent with arguments used in "
             "previous request(s).")


class Call(NamedTuple):
    """One EC2 request seen by the proxy; status None: the reply was dropped."""
    action: str
    params: dict[str, str]
    status: int | None


class Request(NamedTuple):
    method: str
    path: str
    headers: Message  # as http.server parsed them: case-insensitive get()
    body: bytes


class Reply(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class LaggingEc2:
    """The proxy's behaviour and state, apart from the HTTP server; thread-safe."""

    def __init__(self, upstream: str, hide_new_for: float = 0.0) -> None:
        split = urlsplit(upstream)
        self.upstream = upstream.rstrip("/")
        self._host, self._port = split.hostname or "127.0.0.1", split.port or 80
        self._lock = threading.RLock()
        self._hide_new_for = hide_new_for
        self._hidden_until: dict[str, float] = {}  # instance id -> time.monotonic() deadline
        self._launched: list[str] = []
        self._tokens: dict[tuple[str, str], tuple[dict[str, str], Reply]] = {}
        self._token_locks: dict[tuple[str, str], threading.Lock] = {}
        self._pending: dict[str, int] = {}  # "lose:<Action>" / "empty" -> requests still to spoil
        # Regions whose listings (DescribeInstances without ids) answer 503: an outage.
        self.unreachable_regions: set[str] = set()
        self._calls: list[Call] = []

    @property
    def hide_new_for(self) -> float:
        """Seconds an instance stays hidden after the RunInstances reply first naming it
        (fixed then: changing this later does not move earlier deadlines)."""
        with self._lock:
            return self._hide_new_for

    @hide_new_for.setter
    def hide_new_for(self, seconds: float) -> None:
        with self._lock:
            self._hide_new_for = seconds

    def hide(self, instance_id: str, seconds: float) -> None:
        """Hides any instance, launched through the proxy or not, for `seconds` from now."""
        with self._lock:
            self._hidden_until[instance_id] = time.monotonic() + seconds

    def reveal_all(self) -> None:
        with self._lock:
            self._hidden_until.clear()

    def hidden_ids(self) -> set[str]:
        now = time.monotonic()
        with self._lock:
            return {i for i, until in self._hidden_until.items() if until > now}

    def lose_next(self, action: str, n: int = 1) -> None:
        """The next n `action` requests are forwarded (their effect happens), then the
        connection closes without a reply."""
        self._add(f"lose:{action}", n)

    def lose_next_launch_replies(self, n: int = 1) -> None:
        self.lose_next("RunInstances", n)

    def empty_next_describes(self, n: int = 1) -> None:
        """The next n DescribeInstances without InstanceIds answer an empty reservationSet."""
        self._add("empty", n)

    def calls(self, action: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if action is None or c.action == action]

    def launched(self) -> list[str]:
        """Instance ids in the order RunInstances replies first named them (lost ones too)."""
        with self._lock:
            return list(self._launched)

    def _add(self, key: str, n: int) -> None:
        with self._lock:
            self._pending[key] = self._pending.get(key, 0) + n

    def _take(self, key: str) -> bool:
        with self._lock:
            if self._pending.get(key, 0) <= 0:
                return False
            self._pending[key] -= 1
            return True

    def handle(self, req: Request) -> Reply | None:
        """moto's reply, maybe rewritten, or one made here; None: drop the connection."""
        params = _params(req)
        action = params.get("Action", "")
        if not action or _scope(req, params)[1] != "ec2":
            return self.forward(req)
        lost = self._take(f"lose:{action}")
        reply = self._answer(req, action, params)
        with self._lock:
            self._calls.append(Call(action, params, None if lost else reply.status))
        return None if lost else reply

    def _answer(self, req: Request, action: str, params: dict[str, str]) -> Reply:
        if action == "RunInstances":
            return self._run(req, params)
        ids = [v for k, v in params.items() if _INSTANCE_ID_PARAM.fullmatch(k)]
        hidden_now = self.hidden_ids() if action in BY_ID_ACTIONS and ids else set()
        if hidden := [i for i in ids if i in hidden_now]:
            what = f"ID '{hidden[0]}' does" if len(hidden) == 1 else f"IDs '{', '.join(hidden)}' do"
            return ec2_error_reply(400, "InvalidInstanceID.NotFound",
                                   f"The instance {what} not exist")
        if action == "DescribeInstances" and not ids and \
                _scope(req, params)[0] in self.unreachable_regions:
            return ec2_error_reply(503, "Unavailable", "The service is unavailable.")
        empty = action == "DescribeInstances" and not ids and self._take("empty")
        reply = self.forward(req)
        if action == "DescribeInstances" and reply.status == 200:
            return self._rewrite_describe(reply, empty)
        return reply

    def _run(self, req: Request, params: dict[str, str]) -> Reply:
        token = params.get("ClientToken")
        if not token:
            return self._record_launch(self.forward(req))
        key = (_scope(req, params)[0], token)
        with self._lock:
            token_lock = self._token_locks.setdefault(key, threading.Lock())
        with token_lock:  # the same token sent twice at once launches once
            with self._lock:
                stored = self._tokens.get(key)
            if stored is not None:
                return _replay(stored, params)
            reply = self._record_launch(self.forward(req))
            if reply.status == 200:
                with self._lock:
                    self._tokens[key] = (_without_token(params), reply)
            return reply

    def _record_launch(self, reply: Reply) -> Reply:
        if reply.status != 200:
            return reply
        root = ET.fromstring(reply.body)
        ns = _ns(root)
        ids = [e.text or "" for e in root.iterfind(f"{ns}instancesSet/{ns}item/{ns}instanceId")]
        with self._lock:
            until = time.monotonic() + self._hide_new_for
            for instance_id in (i for i in ids if i not in self._launched):
                self._launched.append(instance_id)
                if self._hide_new_for > 0:
                    self._hidden_until[instance_id] = until
        return reply

    def _rewrite_describe(self, reply: Reply, empty: bool) -> Reply:
        """Drops hidden instances (and reservations left empty); all of them when `empty`.
        Only reservationSet (and, when emptied, nextToken) changes: paging keeps working."""
        hidden = self.hidden_ids()
        if not hidden and not empty:
            return reply
        root = ET.fromstring(reply.body)
        ns = _ns(root)
        reservations = root.find(f"{ns}reservationSet")
        if reservations is None:
            return reply
        changed = _drop_instances(reservations, ns, lambda i: empty or i in hidden)
        next_token = root.find(f"{ns}nextToken")
        if empty and next_token is not None:
            root.remove(next_token)
            changed = True
        if not changed:
            return reply
        text = ET.tostring(root, encoding="unicode", default_namespace=ns[1:-1] or None)
        return _with_body(reply, f'<?xml version="1.0" encoding="UTF-8"?>\n{text}'.encode())

    def forward(self, req: Request) -> Reply:
        """Sends the request to moto as it came (Host included) and reads the whole reply."""
        conn = http.client.HTTPConnection(self._host, self._port, timeout=60)
        try:
            conn.putrequest(req.method, req.path, skip_host=bool(req.headers.get("Host")),
                            skip_accept_encoding=True)
            for name, value in req.headers.items():
                if name.lower() not in _HOP:
                    conn.putheader(name, value)
            if req.body or req.method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(req.body)))
            conn.endheaders(req.body or None)
            resp = conn.getresponse()
            body = resp.read()
            keep = {"content-length"} if req.method == "HEAD" else set()
            headers = [(k, v) for k, v in resp.getheaders()
                       if k.lower() not in _HOP or k.lower() in keep]
            return Reply(resp.status, headers, body)
        finally:
            conn.close()


def _params(req: Request) -> dict[str, str]:
    pairs = parse_qsl(urlsplit(req.path).query, keep_blank_values=True)
    if "x-www-form-urlencoded" in req.headers.get("Content-Type", ""):
        pairs += parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True)
    return dict(pairs)


def _scope(req: Request, params: dict[str, str]) -> tuple[str, str]:
    """(region, service) of the SigV4 credential scope, guessed when unsigned."""
    if found := _SCOPE.search(req.headers.get("Authorization", "")):
        return found.group(1), found.group(2)
    return "us-east-1", "ec2" if params.get("Version") == EC2_VERSION else ""


def _ns(root: ET.Element) -> str:
    """"{namespace}" of the root (moto: the EC2 doc URL without its trailing slash), or ""."""
    return root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""


def _drop_instances(reservations: ET.Element, ns: str, drop: Callable[[str], bool]) -> bool:
    """Removes the instance items whose id `drop` accepts, and the reservation items this
    leaves without instances; True when anything was removed."""
    changed = False
    for reservation in list(reservations):
        instances = reservation.find(f"{ns}instancesSet")
        if instances is None:
            continue
        doomed = [item for item in instances if drop(item.findtext(f"{ns}instanceId") or "")]
        for item in doomed:
            instances.remove(item)
        if doomed and len(instances) == 0:
            reservations.remove(reservation)
        changed = changed or bool(doomed)
    return changed


def _without_token(params: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in params.items() if k != "ClientToken"}


def _with_body(reply: Reply, body: bytes, request_id: str | None = None) -> Reply:
    headers = [(k, request_id if request_id and k.lower() == "x-amzn-requestid" else v)
               for k, v in reply.headers if k.lower() != "content-length"]
    return Reply(reply.status, headers, body)


def _replay(stored: tuple[dict[str, str], Reply], params: dict[str, str]) -> Reply:
    """The original launch's answer under a fresh request id, or the mismatch error."""
    original_params, original = stored
    if original_params != _without_token(params):
        return ec2_error_reply(400, "IdempotentParameterMismatch", _MISMATCH)
    request_id = str(uuid.uuid4())
    body = _REQUEST_ID.sub(f"<requestId>{request_id}</requestId>".encode(), original.body)
    return _with_body(original, body, request_id)


def ec2_error_reply(status: int, code: str, message: str) -> Reply:
    """An error as EC2 words it; botocore's EC2 parser reads Code, Message and RequestID."""
    request_id = str(uuid.uuid4())
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}'
            f"</Code><Message>{message}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>").encode()
    return Reply(status, [("Content-Type", "text/xml;charset=UTF-8"),
                          ("x-amzn-RequestId", request_id)], body)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 for Expect: 100-continue, yet one request per connection (as moto does): no
    # kept-alive connection, and so no handler thread, outlives the server.
    protocol_version = "HTTP/1.1"
    lag: LaggingEc2  # set on a subclass per server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: no line on stderr per request

    def _read_body(self) -> bytes:
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = []  # chunked (S3 streaming uploads): chunks, then trailers up to a blank line
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            parts.append(self.rfile.read(size + 2)[:size])
        while self.rfile.readline().strip():
            pass
        return b"".join(parts)

    def _proxy(self) -> None:
        req = Request(self.command, self.path, self.headers, self._read_body())
        try:
            reply = self.lag.handle(req)
        except Exception as exc:  # upstream down, unparsable XML: say so rather than hang
            reply = Reply(502, [("Content-Type", "text/plain")], repr(exc).encode())
        if reply is None:  # a lost reply: close without sending a byte
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response_only(reply.status)
        for name, value in [*reply.headers, ("Connection", "close")]:
            self.send_header(name, value)
        if not any(k.lower() == "content-length" for k, _ in reply.headers):
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _proxy


@contextmanager
def serve_lagging_ec2(lag: LaggingEc2) -> Iterator[str]:
    """Runs the proxy on 127.0.0.1 (a free port) and yields its URL; stops it on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"lag": lag}))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="ec2-lag-proxy", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

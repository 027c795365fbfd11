"""Lambda Cloud provider: the public REST API v1 over a sync httpx client.

Wire facts (shared/reference/cloud-apis.md, section 1): Bearer auth; replies wrapped in
{"data": ...} or {"error": {"code", "message", "suggestion"}}; one instance per launch call;
launches limited to about one per 12 s per account; no idempotency token on launch, so a
launch is never retried blindly: after a timeout or 5xx we look for the instance by name.
Beside it: replies.py (HTTP errors -> ProviderError), wire.py (JSON -> Node/InstanceType).
"""

from __future__ import annotations

import builtins
import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx

from navarch_plan.apply.throttle import Pacer, RetryPolicy, retrying
from navarch_plan.clock import SYSTEM_CLOCK, Clock
from navarch_plan.errors import (
    AuthError,
    InvalidRequestError,
    NoCapacityListedError,
    NotFoundError,
    ProviderError,
    RateLimitError,
    TransientError,
)
from navarch_plan.model import (
    Consistency,
    InstanceType,
    Node,
    NodeStatus,
    ProvisionRequest,
    RateLimit,
)
from navarch_plan.providers.base import NodeFacts
from navarch_plan.providers.lambda_.capacity import CapacityCache
from navarch_plan.providers.lambda_.kind import (
    CAPACITY_CACHE_SECONDS,
    DEFAULT_BASE_URL,
    LAMBDA,
    LAUNCH_INTERVAL,
    launch_fields,
)
from navarch_plan.providers.lambda_.replies import error_from_reply, reply_json
from navarch_plan.providers.lambda_.wire import node_from_wire, offer_from_wire

__all__ = ["LambdaProvider"]

# The longest we sleep before a retry. A longer Retry-After goes back to the caller, which
# can schedule other work instead of parking a thread.
_MAX_WAIT = 60.0

class LambdaProvider:
    """Provider, InstanceTypeLister and NodeGetter for Lambda Cloud."""

    def __init__(self, name: str, api_key: str, *, base_url: str = DEFAULT_BASE_URL,
                 launch_interval: float = LAUNCH_INTERVAL, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, max_retries: int = 4,
                 backoff_base: float = 1.0, self_paced: bool = True,
                 clock: Clock = SYSTEM_CLOCK,
                 capacity_cache_seconds: float = CAPACITY_CACHE_SECONDS,
                 launch: Mapping[str, Any] | None = None) -> None:
        """`self_paced`: space launches `launch_interval` apart here (library use). Built
        from a config, apply's scheduler does the pacing (from `rate_limit()`) and the
        retries, with the same Pacer and retry code (apply/throttle.py).
        `capacity_cache_seconds`: how long one `GET /instance-types` answers the
        capacity check of every launch. `launch`: the provider's launch options
        (file_systems, firewall_rulesets, image), under a request's own."""
        if not api_key:
            raise AuthError("no Lambda Cloud API key given", provider=name)
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.launch_interval = float(launch_interval)
        self.clock = clock
        self._retry = RetryPolicy(max_attempts=max_retries + 1, base_delay=backoff_base,
                                  max_delay=_MAX_WAIT)
        paced = 1.0 / self.launch_interval if self_paced and self.launch_interval > 0 else None
        self._pacer = Pacer(paced, clock)
        self.launch_defaults = dict(launch or {})
        self._capacity = CapacityCache(
            lambda: self._offers(self._send("GET", "/instance-types")),
            float(capacity_cache_seconds), clock)
        # The key lives only in the client's headers, which httpx masks in its reprs.
        self._client = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport,
            follow_redirects=False,  # a redirected POST is unsafe; make base_url explicit
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"})

    def __repr__(self) -> str:
        return f"LambdaProvider(name={self.name!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LambdaProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the Provider protocol ------------------------------------------------------------

    def provision(self, req: ProvisionRequest) -> Node:
        body = self._launch_body(req)
        self.check_launch(req)  # apply's scheduler asked already: then from the cache
        try:
            data = self._launch(body, req.region)
            instance_id = str(data["instance_ids"][0])
        except TransientError as exc:
            return self._recover_launch(req, exc)
        except (KeyError, IndexError, TypeError):
            bad = TransientError("launch reply carried no instance id", provider=self.name,
                                 region=req.region, code="bad-response")
            return self._recover_launch(req, bad)
        return self._after_launch(req, instance_id)

    def terminate(self, node_id: str) -> bool:
        """Idempotent: True when Lambda accepted it, False when it knows no such instance.
        The cloud's answer for an id that is gone is not pinned down by the spec, so a
        refusal is checked against the instance itself before it is raised."""
        body = {"instance_ids": [node_id]}
        try:
            self._request("POST", "/instance-operations/terminate", body)
        except NotFoundError:
            return False
        except InvalidRequestError:
            node = self.get(node_id)
            if node is None:
                return False
            if node.status in (NodeStatus.TERMINATED, NodeStatus.TERMINATING):
                return True
            raise
        return True

    def list(self) -> list[Node]:
        """Every instance of the account; the caller filters by ownership labels."""
        data = self._request("GET", "/instances")
        if not isinstance(data, list):
            raise TransientError("GET /instances did not return a list", provider=self.name,
                                 code="bad-response")
        return [node_from_wire(self.name, item) for item in data]

    def get(self, node_id: str) -> Node | None:
        if not node_id:
            return None
        try:
            data = self._request("GET", f"/instances/{quote(node_id, safe='')}")
        except NotFoundError:
            return None
        return node_from_wire(self.name, data)

    def consistency(self) -> Consistency:
        return LAMBDA.consistency

    def rate_limit(self) -> RateLimit:
        """The type's limits, with launches paced at this provider's launch_interval."""
        return replace(LAMBDA.rate_limit, launches_per_second=1.0 / self.launch_interval
                       if self.launch_interval > 0 else None)

    def list_instance_types(self) -> builtins.list[InstanceType]:
        offers = self._offers(self._request("GET", "/instance-types"))
        self._capacity.remember(offers)
        return offers

    # -- capacity: look before launching ------------------------------------------------

    def check_launch(self, req: ProvisionRequest) -> None:
        """LaunchPrechecked: NoCapacityListedError when the live catalog lists the type
        and not this region among `regions_with_capacity_available`. A type it does not
        list, or a catalog that cannot be read now, is the launch's to answer. The list
        is a hint, not a reservation: a launch it lets through may still be refused."""
        regions = self._capacity.regions(req.instance_type, req.region)
        if regions is None or req.region in regions:
            return
        where = ", ".join(sorted(regions)) or "no region"
        raise NoCapacityListedError(
            f"GET /instance-types lists no capacity for {req.instance_type} in "
            f"{req.region} (capacity now: {where}); no launch was sent",
            provider=self.name, region=req.region, code="navarch/no-capacity-listed")

    def _offers(self, data: Any) -> builtins.list[InstanceType]:
        if not isinstance(data, Mapping):
            raise TransientError("GET /instance-types did not return a mapping",
                                 provider=self.name, code="bad-response")
        return [offer_from_wire(key, entry) for key, entry in sorted(data.items())]

    # -- launching ------------------------------------------------------------------------

    def _launch_body(self, req: ProvisionRequest) -> dict[str, Any]:
        """Checks what Lambda would refuse, before any HTTP call or launch slot is spent."""
        def invalid(message: str) -> InvalidRequestError:
            return InvalidRequestError(message, provider=self.name, region=req.region,
                                       code="navarch/invalid-request")
        facts = NodeFacts(req.region, req.zone, req.instance_type, req.ssh_key_names,
                          req.labels, req.user_data)
        for problem in LAMBDA.check_node({}, facts):
            raise invalid(problem.message)
        body: dict[str, Any] = {"region_name": req.region,
                                "instance_type_name": req.instance_type,
                                "ssh_key_names": [req.ssh_key_names[0]]}
        if req.name:
            body["name"] = req.name
        if req.labels:
            body["tags"] = [{"key": k, "value": v} for k, v in sorted(req.labels.items())]
        if req.user_data:
            body["user_data"] = req.user_data
        return body | launch_fields({**self.launch_defaults, **req.launch})

    def _launch(self, body: dict[str, Any], region: str) -> Any:
        """Paced; retried only after a 429, which means nothing was created. A launch
        naming something Lambda does not have (a file system, a ruleset, an image, the
        SSH key) made nothing and will not work elsewhere: an invalid request."""
        def once() -> Any:
            self._pacer.wait()
            try:
                return self._send("POST", "/instance-operations/launch", body, region)
            except NotFoundError as exc:
                raise InvalidRequestError(exc.message, provider=self.name, region=region,
                                          code=exc.code,
                                          cloud_message=exc.cloud_message) from exc
        return self._retrying(once, (RateLimitError,))

    def _recover_launch(self, req: ProvisionRequest, cause: TransientError) -> Node:
        """The launch may or may not have created an instance; launching again could make
        a second one, so look for the name we gave it instead."""
        kw = {"provider": self.name, "region": req.region, "code": cause.code,
              "cloud_message": cause.cloud_message}
        if not req.name:
            raise TransientError(f"launch outcome unknown: {cause.message}", **kw) from cause
        try:
            nodes = self.list()
        except ProviderError as exc:
            raise TransientError(f"launch outcome unknown ({cause.message}); listing "
                                 f"instances failed too: {exc.message}", **kw) from cause
        for node in nodes:
            if node.name == req.name and node.status is not NodeStatus.TERMINATED:
                return node
        raise TransientError(f"launch failed ({cause.message}) and no instance named "
                             f"{req.name!r} was found", **kw) from cause

    def _after_launch(self, req: ProvisionRequest, instance_id: str) -> Node:
        """The instance exists now; a failed read must not hide that from the caller, so
        fall back to what we asked for."""
        try:
            node = self.get(instance_id)
        except ProviderError:
            node = None
        return node or Node(id=instance_id, provider=self.name, region=req.region,
                            instance_type=req.instance_type, name=req.name,
                            status=NodeStatus.PROVISIONING, labels=req.labels)

    # -- HTTP -----------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        """An idempotent call: safe to retry on rate limits and transient failures."""
        return self._retrying(lambda: self._send(method, path, body),
                              (RateLimitError, TransientError))

    def _retrying(self, call: Callable[[], Any],
                  retry_on: tuple[type[ProviderError], ...]) -> Any:
        """Runs `call` until it succeeds, raises something else, or retries run out (a
        Retry-After longer than a caller should block for ends it at once)."""
        return retrying(call, self._retry, random.Random(), lambda message: None,
                        f"{self.name}", clock=self.clock, retry_on=retry_on)

    def _send(self, method: str, path: str, body: Any = None, region: str = "") -> Any:
        """One exchange: the `data` of a success, or a typed ProviderError."""
        kw = {"provider": self.name, "region": region}
        try:
            resp = self._client.request(method, path, json=body)
        except httpx.TimeoutException as exc:
            raise TransientError(f"{method} {path} timed out", code="timeout", **kw) from exc
        except httpx.RequestError as exc:  # connection refused or reset, bad reply...
            raise TransientError(f"{method} {path} failed: {type(exc).__name__}: {exc}",
                                 code="connection-error", **kw) from exc
        if not resp.is_success:
            raise error_from_reply(resp, self.name, region, self._scrub)
        payload = reply_json(resp)
        if not isinstance(payload, dict) or "data" not in payload:
            raise TransientError(f"{method} {path}: the reply is not a Lambda API envelope",
                                 code="bad-response", **kw)
        return payload["data"]

    def _scrub(self, text: str) -> str:
        """Some errors echo the request back: the key never leaves the client's headers."""
        key = self._client.headers["Authorization"].removeprefix("Bearer ")
        return text.replace(key, "[redacted]") if key else text

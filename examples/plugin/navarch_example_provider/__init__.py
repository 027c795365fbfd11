"""ExampleCloud and its navarch provider: a worked example of a third-party provider.

ExampleCloud stands in for a cloud API. Its instances live in memory, or in a JSON file
(`path`) that separate `navarch` runs share the way they would share a real cloud. It has
its own vocabulary, as every cloud does: statuses `booting`, `up`, `degraded`, `stopping`,
`gone`, and refusals with codes such as `sold-out`. ExampleProvider does what every navarch
provider does: it turns that vocabulary into navarch's statuses and its error classes
(a word it does not know is `unknown`, which navarch never acts on), keeps navarch's
labels as the cloud's tags, exactly, and says whether a terminate found its instance.

Registered in pyproject.toml under the entry-point group `navarch_plan.providers`:

    [project.entry-points."navarch_plan.providers"]
    example = "navarch_example_provider:ExampleProvider"
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from navarch_plan.errors import (
    AuthError,
    CapacityError,
    ConfigError,
    InvalidRequestError,
    NotFoundError,
    ProviderError,
)
from navarch_plan.model import InstanceType, Node, NodeStatus, ProvisionRequest

__all__ = ["CATALOG", "REGIONS", "CloudError", "ExampleCloud", "ExampleProvider"]

REGIONS = ("north-1", "south-1")
CATALOG: tuple[InstanceType, ...] = (
    InstanceType("ex-l4-1", 1, "L4", 32, 8, 0.60, REGIONS),
    InstanceType("ex-h100-8", 8, "H100", 1800, 192, 21.50, REGIONS),
    InstanceType("ex-cpu-4", 0, "", 16, 4, 0.08, REGIONS[:1]),
)
_TYPES = {t.name: t for t in CATALOG}

# The cloud's words for an instance's life -> navarch's statuses.
STATUSES = {"booting": NodeStatus.PROVISIONING, "up": NodeStatus.RUNNING,
            "degraded": NodeStatus.UNHEALTHY, "stopping": NodeStatus.TERMINATING,
            "gone": NodeStatus.TERMINATED}
# The cloud's refusal codes -> navarch's error classes (act on codes, never on messages).
ERRORS: dict[str, type[ProviderError]] = {
    "sold-out": CapacityError, "no-such-type": InvalidRequestError,
    "no-such-region": InvalidRequestError, "no-such-instance": NotFoundError}


class CloudError(Exception):
    """ExampleCloud's own refusal: a code and a message, like an API error body."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class ExampleCloud:
    """The "API". `capacity`: most live instances per instance type (absent: no limit)."""

    def __init__(self, path: str | None = None, capacity: Mapping[str, int] | None = None,
                 boot_seconds: float = 0.0) -> None:
        self.path, self.capacity, self.boot_seconds = path, dict(capacity or {}), boot_seconds
        self._memory: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def _instances(self, write: bool = False) -> Iterator[dict[str, dict[str, Any]]]:
        """Every instance by id, under a lock: threads here, other processes on the file."""
        with self._lock:
            if self.path is None:
                yield self._memory
                return
            with open(self.path + ".lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    with open(self.path) as f:
                        data = json.load(f)
                except FileNotFoundError:
                    data = {}
                yield data
                if write:  # atomically: a reader never sees half a file
                    with open(self.path + ".tmp", "w") as f:
                        json.dump(data, f, indent=1, sort_keys=True)
                    os.replace(self.path + ".tmp", self.path)

    def create(self, name: str, type_name: str, region: str, tags: Mapping[str, str]
               ) -> dict[str, Any]:
        offer = _TYPES.get(type_name)
        if offer is None:
            raise CloudError("no-such-type", f"there is no instance type {type_name!r}")
        if region not in offer.regions:
            raise CloudError("no-such-region", f"{type_name} is not sold in {region!r}")
        with self._instances(write=True) as instances:
            used = sum(i["type"] == type_name for i in instances.values())
            if used >= self.capacity.get(type_name, used + 1):
                raise CloudError("sold-out", f"{type_name} is sold out in {region}")
            inst: dict[str, Any] = {
                "id": f"ex-{secrets.token_hex(6)}", "name": name, "type": type_name,
                "region": region, "tags": dict(tags), "status": "booting",
                "ip": f"192.0.2.{len(instances) % 250 + 1}",
                "ready_at": time.time() + self.boot_seconds}
            instances[inst["id"]] = inst
            return self._observe(inst)

    def delete(self, instance_id: str) -> None:
        with self._instances(write=True) as instances:
            if instances.pop(instance_id, None) is None:
                raise CloudError("no-such-instance", f"no instance {instance_id!r}")

    def describe(self, instance_id: str) -> dict[str, Any]:
        with self._instances() as instances:
            if instance_id not in instances:
                raise CloudError("no-such-instance", f"no instance {instance_id!r}")
            return self._observe(dict(instances[instance_id]))

    def all(self) -> list[dict[str, Any]]:
        with self._instances() as instances:
            return [self._observe(dict(i)) for i in instances.values()]

    def set_status(self, instance_id: str, status: str) -> None:
        """The console: make an instance `degraded`, say."""
        with self._instances(write=True) as instances:
            instances[instance_id].update(status=status, ready_at=0)

    @staticmethod
    def _observe(inst: dict[str, Any]) -> dict[str, Any]:
        if inst["status"] == "booting" and time.time() >= inst["ready_at"]:
            inst["status"] = "up"
        return inst


class ExampleProvider:
    """navarch Provider, NodeGetter and InstanceTypeLister for ExampleCloud."""

    # Its options as JSON Schema: navarch puts it into the config's schema, so `navarch
    # validate` refuses an unknown or ill-typed option with its file:line:col. from_config
    # checks the same options again for Python callers, who bypass the config.
    options_schema: Mapping[str, Any] = {
        "properties": {
            "path": {"description": "a JSON file the cloud lives in (absent: in memory)",
                     "type": "string"},
            "capacity": {"description": "most live instances per instance type",
                         "type": "object",
                         "additionalProperties": {"type": "integer", "minimum": 0}},
            "boot_seconds": {"description": "how long a new instance stays `booting`",
                             "type": "number", "minimum": 0},
            "token_env": {"description": "a variable that must be set (how secrets are "
                                         "passed)",
                          "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
                          "patternErrorMessage": "an environment variable's name"},
        },
    }
    OPTIONS = frozenset(options_schema["properties"])

    def __init__(self, name: str = "example", cloud: ExampleCloud | None = None) -> None:
        self.name = name
        self.cloud = cloud if cloud is not None else ExampleCloud()

    @classmethod
    def from_config(cls, name: str, cfg: Mapping[str, Any],
                    env: Mapping[str, str]) -> ExampleProvider:
        """`cfg` is the provider's YAML mapping (with `type`). A config's options were
        checked against `options_schema` when it loaded; a Python caller's are checked
        here, with a ConfigError."""
        where = f"providers.{name}"
        unknown = sorted(set(cfg) - cls.OPTIONS - {"type"})
        if unknown:
            raise ConfigError(f"unknown option{'s' if len(unknown) > 1 else ''} "
                              f"{', '.join(unknown)} for an example "
                              f"provider (known: {', '.join(sorted(cls.OPTIONS))})", path=where)
        capacity = cfg.get("capacity", {})
        if not isinstance(capacity, Mapping) or not all(
                isinstance(v, int) and v >= 0 for v in capacity.values()):
            raise ConfigError("capacity must map instance types to counts >= 0", path=where)
        boot = cfg.get("boot_seconds", 0)
        if isinstance(boot, bool) or not isinstance(boot, int | float) or boot < 0:
            raise ConfigError("boot_seconds must be a number >= 0", path=where)
        if not isinstance(cfg.get("path", ""), str):
            raise ConfigError("path must be a file name", path=where)
        var = cfg.get("token_env")  # secrets come from the environment, never the file
        if var and not env.get(var):
            raise AuthError(f"environment variable {var} is not set", provider=name)
        cloud = ExampleCloud(path=cfg.get("path"), capacity=capacity,
                             boot_seconds=float(boot))
        return cls(name, cloud)

    def provision(self, req: ProvisionRequest) -> Node:
        try:
            inst = self.cloud.create(req.name, req.instance_type, req.region, req.labels)
        except CloudError as exc:
            raise self._error(exc, req.region) from None
        return self._node(inst)

    def terminate(self, node_id: str) -> bool:
        """True: the cloud took it; False: it knows no such instance (already gone, which
        is success, as navarch's contract asks)."""
        try:
            self.cloud.delete(node_id)
        except CloudError as exc:
            if exc.code != "no-such-instance":
                raise self._error(exc, "") from None
            return False
        return True

    def list_instance_types(self) -> list[InstanceType]:  # before `list`, which shadows it
        return [*CATALOG]

    def list(self) -> list[Node]:
        return [self._node(inst) for inst in self.cloud.all()]

    def get(self, node_id: str) -> Node | None:
        try:
            return self._node(self.cloud.describe(node_id))
        except CloudError as exc:
            if exc.code == "no-such-instance":
                return None
            raise self._error(exc, "") from None

    def _error(self, exc: CloudError, region: str) -> ProviderError:
        cls = ERRORS.get(exc.code, InvalidRequestError)
        return cls(exc.message, provider=self.name, region=region, code=exc.code)

    def _node(self, inst: Mapping[str, Any]) -> Node:
        offer = _TYPES.get(inst["type"])
        status = STATUSES.get(inst["status"], NodeStatus.UNKNOWN)  # never acted on
        return Node(id=inst["id"], provider=self.name, region=inst["region"],
                    instance_type=inst["type"], status=status, name=inst["name"],
                    ip_address=inst["ip"] if status is NodeStatus.RUNNING else "",
                    gpu_count=offer.gpu_count if offer else 0,
                    gpu_type=offer.gpu_type if offer else "", labels=inst["tags"],
                    cloud_status=inst["status"])

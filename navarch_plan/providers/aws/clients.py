"""boto3 clients per region and purpose, made once each under a lock (boto3 sessions are
not thread-safe, their clients are). Apart from provider.py because how a client is
configured is the launch-safety invariant: RunInstances goes through a client that
makes exactly one attempt, every other call through one with standard retries."""

from __future__ import annotations

import threading
from typing import Any, Literal

from botocore.config import Config

__all__ = ["RegionClients"]

# One attempt only: a botocore retry of RunInstances after an ambiguous failure is a blind
# relaunch. Every other call is read-only or idempotent, so standard retries are safe.
_LAUNCH_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 1},
                        user_agent_extra="navarch-plan")
_CALL_CONFIG = Config(retries={"mode": "standard"}, user_agent_extra="navarch-plan")


class RegionClients:
    """`kind`: "ec2" (standard retries), "launch" (EC2, one attempt) or "ssm"."""

    def __init__(self, session: Any, endpoint_url: str | None) -> None:
        self._session, self.endpoint_url = session, endpoint_url
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def get(self, region: str, kind: Literal["ec2", "launch", "ssm"]) -> Any:
        with self._lock:
            key = (region, kind)
            if key not in self._clients:
                self._clients[key] = self._session.client(
                    "ssm" if kind == "ssm" else "ec2", region_name=region,
                    endpoint_url=self.endpoint_url,
                    config=_LAUNCH_CONFIG if kind == "launch" else _CALL_CONFIG)
            return self._clients[key]

"""Shared test helpers: run the real `navarch` command in a folder, write configs,
and open the fake cloud's database to look at what happened."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from navarch_plan.providers.fake import FakeProvider

ROOT = Path(__file__).resolve().parent.parent


def navarch_argv() -> list[str]:
    """The installed console script, as a user runs it; `python -m` when not installed."""
    exe = shutil.which("navarch")
    return [exe] if exe else [sys.executable, "-m", "navarch_plan"]


# For commands whose clients could reach the internet: a proxy-aware client (httpx,
# requests, botocore, google-auth) fails fast instead, 127.0.0.1 stays reachable, and no
# GCE metadata server is ever asked for credentials.
# ops-team's public key, for configs whose nodes name it on GCE (which installs keys
# from their text): an ed25519 key nobody holds the private half of.
OPS_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGW5ZlEhYkw1VmXrSDsBmNvzkQ5GhGkQpUqMR3sEOLfB ops"
OFFLINE_ENV = {
    "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    "GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_IP": "127.0.0.1:9",
}

# Retry waits for tests that inject faults: the same tries as in production, in
# milliseconds instead of seconds (a cloud's Retry-After of up to 2 s is still honoured).
FAST_RETRY = {"base_delay": 0.01, "max_delay": 2.0}


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Workdir:
    """A folder holding navarch.yaml, its state/ and a persistent fake cloud."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "state").mkdir(exist_ok=True)

    @property
    def cloud_path(self) -> str:
        return str(self.path / "state" / "cloud.db")

    def cloud(self, **options: Any) -> FakeProvider:
        return FakeProvider("sim", path=self.cloud_path, **options)

    def write(self, text: str, name: str = "navarch.yaml") -> Path:
        target = self.path / name
        target.write_text(textwrap.dedent(text))
        return target

    def config(self, pools: dict[str, dict[str, Any]] | None = None,
               nodes: dict[str, dict[str, Any]] | None = None, workspace: str = "test",
               sim: dict[str, Any] | None = None, extra: str = "") -> Path:
        """A config on the fake cloud; each pool/node is a dict of YAML keys."""
        doc: dict[str, Any] = {
            "version": 1, "workspace": workspace,
            "providers": {"sim": {"type": "fake", "path": "state/cloud.db", **(sim or {})}},
            "defaults": {"ssh_keys": ["ops"], "labels": {"team": "ml"}},
        }
        defaults = {"provider": "sim", "instance_type": "gpu_1x_a10", "region": "us-west-1"}
        if pools:
            doc["pools"] = {n: {**defaults, **p} for n, p in pools.items()}
        if nodes:
            doc["nodes"] = {n: {**defaults, **p} for n, p in nodes.items()}
        target = self.path / "navarch.yaml"
        target.write_text(json.dumps(doc, indent=2) + "\n" + extra)  # JSON is YAML
        return target

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120,
            env: dict[str, str] | None = None) -> Result:
        proc = subprocess.run(
            [*navarch_argv(), *args], cwd=self.path, input=stdin if stdin is not None else "",
            capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def cli(self, *args: str, stdin: str = "", env: Mapping[str, str] | None = None) -> Result:
        """The `navarch` command in this process (its `main`, argv and all), for tests
        where no process boundary is under test: the same parser, engine and exit code
        as a subprocess, without an interpreter start per call."""
        from navarch_plan.cli.main import main

        out, err = io.StringIO(), io.StringIO()
        with _environment(env or {}), contextlib.chdir(self.path), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                _stdin(stdin):
            code = main(list(args))
        return Result(code, out.getvalue(), err.getvalue())

    def state(self, workspace: str = "test") -> dict[str, Any]:
        return json.loads((self.path / "state" / f"{workspace}.json").read_text())

    def plan_json(self, *args: str) -> dict[str, Any]:
        result = self.run("plan", "--format", "json", *args)
        assert result.code == 0, result.err
        return result.json()


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _stdin(text: str) -> Iterator[None]:
    saved = sys.stdin
    sys.stdin = io.StringIO(text)
    try:
        yield
    finally:
        sys.stdin = saved


@pytest.fixture
def work(tmp_path: Path) -> Workdir:
    return Workdir(tmp_path)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """OFFLINE_ENV for clients created in the test process itself."""
    for var, value in OFFLINE_ENV.items():
        monkeypatch.setenv(var, value)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy AWS credentials for this process and the `navarch` processes it starts: no
    profile, config file, endpoint override or instance metadata can reach a real AWS."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask 169.254.169.254
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")


def reset_moto(endpoint: str) -> None:
    """moto forgets everything: each test starts from an empty cloud."""
    reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).close()


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's EC2 and S3 server on 127.0.0.1, one per test module."""
    from tests.fakes.moto_server import serve_moto

    with serve_moto() as url:
        yield url


def actions_of(plan: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
    return [a for a in plan["actions"] if kind is None or a["action"] == kind]


def owned(cloud: FakeProvider, workspace: str = "test") -> list[Any]:
    return [n for n in cloud.list() if n.labels.get("navarch-workspace") == workspace]


def max_in_flight(calls: list[dict[str, Any]]) -> int:
    """The most calls of a fake cloud's call log that overlapped in time."""
    edges = sorted([(c["started"], 1) for c in calls] + [(c["ended"], -1) for c in calls])
    peak = now = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak

"""Shared test helpers: run the real `navarch` command in a folder, write configs,
and open the fake cloud's database to look at what happened.

Hypothesis profiles: "ci" (the default) runs fewer examples, derandomized (the same
examples every run, so CI is repeatable) and without deadlines; "full" runs the full
counts with fresh random examples, for a soak:

    HYPOTHESIS_PROFILE=full python -m pytest -p no:cacheprovider tests/test_properties.py \
        tests/test_fault_schedules.py

Tests that name their own example counts write `examples(n)`: n under "full", a fraction
of it (at least a few) under "ci".

The suite runs in parallel (`pytest -n 4`, pytest-xdist): every test works in its own
tmp_path, servers listen on free ports, and environment variables go through monkeypatch
or the `env=` of `Workdir.run`/`Workdir.cli`, never straight into os.environ.

Two ways to run the command. `Workdir.cli` calls `navarch_plan.cli.main.main(argv)` in
this process (the same parser, engine and exit codes, without an interpreter start per
call); it is the default. The installed `navarch` console script runs as a child process
(`Workdir.run`, or Popen/pexpect on `navarch_argv()`) where the process boundary is what
is tested:

- tests/test_in_process_cli.py: the two side by side, same folder, same output;
- tests/test_secrets.py: the two sweeps of every command (everything a separate process
  writes, warnings and log lines included, searched for the key);
- tests/test_crash_kill.py, tests/crash_harness.py: every apply that is killed (-9,
  SIGTERM) is a process, and the single-window tests check with fresh processes after;
- tests/test_cli_apply.py: SIGTERM during an apply (exit 143), and the holder of the
  lock in the concurrent-apply test; tests/test_force_unlock.py: the apply stopped by a
  forced unlock;
- tests/test_lock_takeover.py, tests/test_state_files.py: lock holders that die, a
  command waiting on one, a read-only or full disk (a shell script under unshare);
- tests/test_state_s3.py: two applies at once, an apply cut off by an S3 outage;
  tests/test_consistency.py: a run killed while booting;
- tests/test_live_display.py: the live view and colours in a pseudo-terminal (pexpect);
- tests/test_hostile_input.py: the cases built to exhaust memory or time, under an
  address-space limit; tests/test_cli_lifecycle.py: apply with standard input at EOF;
- tests/test_cli_review.py: the workflow steps, as a shell runs them;
- tests/test_lazy_imports.py, tests/test_layout.py, tests/test_catalog.py: what a fresh
  interpreter imports, and the built wheel.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from navarch_plan.providers.fake import FakeProvider

ROOT = Path(__file__).resolve().parent.parent

# -- Hypothesis profiles -----------------------------------------------------------------

HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
CI_EXAMPLES = 1 / 3  # the share of a test's full example count that "ci" runs
settings.register_profile("ci", max_examples=25, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("full", max_examples=100, derandomize=False, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.load_profile(HYPOTHESIS_PROFILE)


def examples(full: int, least: int = 5) -> int:
    """A test's example count: `full` under the "full" profile, a third of it (but at
    least `least`, and never more than `full`) under "ci"."""
    if HYPOTHESIS_PROFILE == "full":
        return full
    return min(full, max(least, math.ceil(full * CI_EXAMPLES)))


def navarch_argv() -> list[str]:
    """The installed console script, as a user runs it; `python -m` when not installed."""
    exe = shutil.which("navarch")
    return [exe] if exe else [sys.executable, "-m", "navarch_plan"]


def spawn_in_pty(argv: list[str], cwd: Path, env: Mapping[str, str] | None = None,
                 columns: int = 200) -> Any:
    """`argv` in a pseudo-terminal of 50 lines, read with poll(): pexpect's default,
    select(), fails on a descriptor over 1023, which a long test worker can reach."""
    import pexpect

    return pexpect.spawn(argv[0], argv[1:], cwd=str(cwd), encoding="utf-8",
                         env=dict(os.environ if env is None else env),
                         dimensions=(50, columns), timeout=60, use_poll=True)


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
            env: Mapping[str, str | None] | None = None) -> Result:
        """The installed `navarch` command in a child process: for tests where the
        process boundary is the point (signals, kills, concurrent runs, what a process
        prints or leaks). An `env` value of None unsets that variable for the child."""
        child_env = {**os.environ, **(env or {})}
        proc = subprocess.run(
            [*navarch_argv(), *args], cwd=self.path, input=stdin if stdin is not None else "",
            capture_output=True, text=True, timeout=timeout,
            env={k: v for k, v in child_env.items() if v is not None},
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def cli(self, *args: str, stdin: str = "",
            env: Mapping[str, str | None] | None = None) -> Result:
        """The `navarch` command in this process: `navarch_plan.cli.main.main(argv)`, for
        tests where no process boundary is under test: the same parser, engine and exit
        code as a subprocess, without an interpreter start per call.

        What a fresh process would not inherit is reset around the call (`_fresh_process`):
        the working folder, standard streams, the redactor's secrets, the cached rich
        console, the SIGINT/SIGTERM handlers `main` installs, the root logger, and the
        warning filters (a warning raised during the call is written to its stderr, as a
        process would print it). A SystemExit (argparse: 2 on a usage error, 0 on --help)
        becomes the exit code. An `env` value of None unsets that variable for the call.
        Log records of the cloud SDKs go to pytest's log capture, not to `err`: tests about
        what a process writes use `run`. Off the main thread (cwd, stdout and signals are
        the process's), it runs the command as `run` does."""
        if threading.current_thread() is not threading.main_thread():
            return self.run(*args, stdin=stdin, env=env)
        cli_main = importlib.import_module("navarch_plan.cli.main")

        out, err = io.StringIO(), io.StringIO()
        with _environment(env or {}), contextlib.chdir(self.path), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                _stdin(stdin), _fresh_process(cli_main, err):
            try:
                code = cli_main.main(list(args))
            except SystemExit as exc:  # what sys.exit would make of it in a process
                if exc.code is None or isinstance(exc.code, int):
                    code = exc.code or 0
                else:
                    print(exc.code, file=sys.stderr)
                    code = 1
        return Result(code, out.getvalue(), err.getvalue())

    def state(self, workspace: str = "test") -> dict[str, Any]:
        return json.loads((self.path / "state" / f"{workspace}.json").read_text())

    def plan_json(self, *args: str) -> dict[str, Any]:
        result = self.cli("plan", "--format", "json", *args)
        assert result.code == 0, result.err
        return result.json()

    def copy_to(self, path: Path) -> Workdir:
        """A copy of this folder (config, state, fake cloud) at `path`: a fleet built
        once serves many cases. The fake cloud's WAL is folded into its file first."""
        fold_wal(self.cloud_path)
        shutil.copytree(self.path, path)
        return Workdir(path)


def fold_wal(db_path: str) -> None:
    """Fold a SQLite file's write-ahead log into it, so the file alone is the database."""
    if os.path.exists(db_path):
        import sqlite3

        db = sqlite3.connect(db_path)
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()


@contextlib.contextmanager
def _environment(env: Mapping[str, str | None]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# The warning filters a Python process starts with (no -W, no PYTHONWARNINGS): see
# https://docs.python.org/3/library/warnings.html#default-warning-filter
_PROCESS_WARNING_FILTERS = (
    ("default", DeprecationWarning, "__main__"),
    ("ignore", DeprecationWarning, ""),
    ("ignore", PendingDeprecationWarning, ""),
    ("ignore", ImportWarning, ""),
    ("ignore", ResourceWarning, ""),
)


@contextlib.contextmanager
def _fresh_process(cli_main: Any, err: io.StringIO) -> Iterator[None]:
    """Around one in-process run: the process-wide state a new `navarch` process starts
    without, set up as it would be, and put back afterwards so no run leaks into the next.

    - `_REDACT`, the secrets to redact: a new, empty redactor (the module's would keep
      every earlier run's secrets);
    - `_console()`, cached once per process around the stdout of its first call: the
      cache is cleared before and after;
    - the SIGINT and SIGTERM handlers `main` and apply install: restored;
    - the root logger's handlers, level and `logging.disable`: restored;
    - warnings: the filters of a fresh process; those raised are written to `err`."""
    saved_redactor = cli_main._REDACT
    cli_main._REDACT = type(saved_redactor)()
    cli_main._console.cache_clear()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    root = logging.getLogger()
    root_handlers, root_level = root.handlers[:], root.level
    disabled = logging.root.manager.disable
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.resetwarnings()
            for action, category, module in reversed(_PROCESS_WARNING_FILTERS):
                warnings.filterwarnings(action, category=category, module=module)
            try:
                yield
            finally:
                for w in caught:
                    err.write(warnings.formatwarning(w.message, w.category, w.filename,
                                                     w.lineno, w.line))
    finally:
        cli_main._REDACT = saved_redactor
        cli_main._console.cache_clear()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        root.handlers[:] = root_handlers
        root.setLevel(root_level)
        logging.disable(disabled)


@contextlib.contextmanager
def _stdin(text: str) -> Iterator[None]:
    saved = sys.stdin
    sys.stdin = io.StringIO(text)
    try:
        yield
    finally:
        sys.stdin = saved


# A worker runs hundreds of tests; files a test leaves open pile up until one that needs a
# new descriptor (a pseudo-terminal, a socket) fails far from the test that leaked. A
# leak is reported at the test that crosses this line, on systems that show /proc.
OPEN_FILES_LIMIT = 400


@pytest.fixture(autouse=True)
def no_pile_of_open_files() -> Iterator[None]:
    yield
    with contextlib.suppress(FileNotFoundError):
        count = len(os.listdir("/proc/self/fd"))
        assert count < OPEN_FILES_LIMIT, (
            f"{count} files open in this test process: a test leaves engines, providers "
            "or clients unclosed")


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

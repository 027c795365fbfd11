"""Secrets never leave the environment: every command runs with a canary API key, on a
config that uses it (a `lambda` provider against the fake Lambda API on 127.0.0.1),
including runs where the cloud's errors echo the request back, key and all. Every byte
navarch writes (stdout, stderr, every file under the work folder) is searched for the
canary, raw and encoded. user_data, which often carries secrets of its own, appears in
plans only as a hash.

The two sweeps of every command run the installed command in child processes: what a
separate process writes, warnings and all, is the point. The tests about what plans and
files hold run its main() in this process (Session.cli).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from navarch_plan.config.desired import spec_hash
from tests.conftest import OFFLINE_ENV, Workdir, navarch_argv
from tests.fakes.lambda_server import FakeLambda, error_body, serve

KEY_ENV = "NAVARCH_SECRET_CANARY_KEY"
USER_DATA = "#!/bin/bash\nexport DB_PASSWORD=ud-canary-{token}\n"


@dataclass
class Session:
    work: Workdir
    fake: FakeLambda
    key: str
    user_data: str
    outputs: list[tuple[str, bytes]] = field(default_factory=list)

    def run(self, *args: str, expect: tuple[int, ...] = (0,),
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([*navarch_argv(), *args], cwd=self.work.path, input=b"",
                              capture_output=True, timeout=120,
                              env={**os.environ, **OFFLINE_ENV, KEY_ENV: self.key, **(env or {})})
        self.outputs.append((" ".join(args), proc.stdout + proc.stderr))
        assert proc.returncode in expect, (args, proc.returncode, proc.stdout, proc.stderr)
        return proc

    def cli(self, *args: str, expect: tuple[int, ...] = (0,),
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """The same command in this process (Workdir.cli), for the tests about what
        files and plans hold rather than what a process writes; its output is kept
        and searched all the same."""
        result = self.work.cli(*args, env={**OFFLINE_ENV, KEY_ENV: self.key, **(env or {})})
        proc = subprocess.CompletedProcess(list(args), result.code, result.out.encode(),
                                           result.err.encode())
        self.outputs.append((" ".join(args), proc.stdout + proc.stderr))
        assert proc.returncode in expect, (args, proc.returncode, proc.stdout, proc.stderr)
        return proc

    def echo(self, status: int, method: str, path: str, code: str = "") -> None:
        """The next matching request is answered with an error that echoes the request:
        its Authorization header and its body, as some proxies and APIs do."""
        echoed = (f"request rejected: headers={{'Authorization': 'Bearer {self.key}', "
                  f"'Accept': 'application/json'}} api_key={self.key}")
        body = error_body(code or "global/invalid-parameters", echoed,
                          suggestion=f"retry with key {self.key}") if code != "text" \
            else f"<html>502 from upstream; Authorization: Bearer {self.key}</html>"
        self.fake.inject(status, method=method, path=path, body=body)

    def leaks(self) -> list[str]:
        needles = {
            "raw": self.key.encode(),
            "base64": base64.b64encode(self.key.encode()),
            "base64 of the header": base64.b64encode(f"Bearer {self.key}".encode())[:-4],
            "hex": self.key.encode().hex().encode(),
            "sha256": hashlib.sha256(self.key.encode()).hexdigest().encode(),
            "user_data": self.user_data.split("=")[1].strip().encode(),
        }
        found = []
        for source, data in self.outputs + [(str(p.relative_to(self.work.path)), p.read_bytes())
                                            for p in self.work.path.rglob("*") if p.is_file()]:
            for what, needle in needles.items():
                if what == "user_data" and source == "navarch.yaml":
                    continue  # where the user wrote it
                if needle in data:
                    found.append(f"{what} in {source}")
        return found


@pytest.fixture
def session(work: Workdir) -> Iterator[Session]:
    token = uuid.uuid4().hex
    key = f"secret_canary_{token}"
    fake = FakeLambda(api_key=key)
    with serve(fake) as base_url:
        user_data = USER_DATA.format(token=token)
        # The local server is consistent: a launch whose reply was lost is looked for
        # by name for one second, not Lambda's two minutes.
        provider = {"type": "lambda", "api_key_env": KEY_ENV, "base_url": base_url,
                    "launch_interval": 0, "consistency_window": 1}
        doc = {"version": 1, "workspace": "test", "providers": {"lam": provider},
               "pools": {"w": {"provider": "lam", "instance_type": "gpu_1x_a10",
                               "region": "us-east-1", "nodes": 2, "ssh_keys": ["ops-team"],
                               "user_data": user_data}}}
        (work.path / "navarch.yaml").write_text(json.dumps(doc, indent=2))
        yield Session(work, fake, key, user_data)


def _scale(s: Session, nodes: int) -> None:
    doc = json.loads((s.work.path / "navarch.yaml").read_text())
    doc["pools"]["w"]["nodes"] = nodes
    (s.work.path / "navarch.yaml").write_text(json.dumps(doc))


def test_no_command_ever_writes_the_api_key(session: Session) -> None:
    s = session
    s.run("validate")
    s.run("validate", "--live")
    s.run("instance-types")
    s.run("instance-types", "--json")
    s.run("plan")
    s.run("plan", "--format", "json")
    s.run("plan", "--format", "markdown")
    s.run("plan", "--out", "first.plan")
    s.run("show", "first.plan")
    s.run("show", "first.plan", "--json")
    s.run("apply", "first.plan")
    s.run("show")
    s.run("show", "--json")
    s.run("state", "list")
    s.run("state", "list", "--json")
    s.run("state", "show", "pool.w[0]")
    s.run("drift", expect=(0, 2))
    s.run("drift", "--format", "json", expect=(0, 2))
    _scale(s, 3)
    s.run("apply", "--auto-approve", "--json")
    # Errors that do not echo: a launch answered by an HTML page, a wrong key.
    _scale(s, 4)
    s.echo(502, "POST", "/instance-operations/launch", code="text")
    s.run("apply", "--auto-approve", "--debug", expect=(1,))
    s.run("destroy", "--auto-approve")
    s.run("state", "list")
    assert s.fake.log and all(r.authorized for r in s.fake.log), \
        "the key did authenticate every request navarch made"
    s.run("plan", "--debug", expect=(1,), env={KEY_ENV: "wrong"})
    assert len(s.outputs) >= 20
    assert not s.leaks(), s.leaks()


def test_cloud_errors_that_echo_the_key_never_reach_the_output(session: Session) -> None:
    s = session
    s.run("apply", "--auto-approve")
    _scale(s, 3)
    s.echo(400, "POST", "/instance-operations/launch")
    s.run("apply", "--auto-approve", expect=(1,))
    s.echo(400, "POST", "/instance-operations/launch")
    s.run("apply", "--auto-approve", "--json", expect=(1,))
    for command in (("plan",), ("drift",), ("validate", "--live"), ("instance-types",)):
        s.echo(401, "GET", "/instance*", code="global/invalid-api-key")
        s.run(*command, expect=(1,))
    s.echo(403, "GET", "/instances", code="global/forbidden")
    s.run("plan", "--debug", expect=(1,))
    s.echo(400, "POST", "/instance-operations/terminate")
    s.run("destroy", "--auto-approve", expect=(1,))
    assert sum(b"request rejected" in out for _, out in s.outputs) >= 7, \
        "the echoing errors were reported (their text, minus the key)"
    assert not s.leaks(), s.leaks()


def _keyed(s: Session) -> str:
    """user_data's fingerprint as navarch publishes it: an HMAC under the state's key."""
    key = json.loads((s.work.path / "state" / "test.json").read_text())["fingerprint_key"]
    return "hmac:" + hmac.new(key.encode(), s.user_data.encode(), hashlib.sha256).hexdigest()


def test_user_data_appears_in_plans_only_as_a_keyed_fingerprint(session: Session) -> None:
    """Published plans carry an HMAC of user_data under a key kept in state (0600), so
    a short secret in it cannot be found by hashing guesses, neither from the
    fingerprint nor from the spec hash."""
    s = session
    s.cli("plan", "--out", "p.plan")  # a saved plan: state (and its key) exist from here
    plan = json.loads((s.work.path / "p.plan").read_text())
    after = plan["actions"][0]["after"]
    assert after["user_data_sha256"] == _keyed(s)
    plain = hashlib.sha256(s.user_data.encode()).hexdigest()
    unkeyed_spec = {**{k: v for k, v in after.items()
                       if k not in ("spec_hash", "refs")}, "user_data_sha256": plain}
    assert spec_hash(unkeyed_spec) != after["spec_hash"]
    text = s.cli("plan").stdout.decode()
    assert s.user_data.split("\n")[1] not in text
    assert _keyed(s)[5:17] in text and plain[:12] not in text
    s.cli("apply", "p.plan")
    for name in ("p.plan", "state/test.json"):
        text = (s.work.path / name).read_text()
        assert plain not in text and s.user_data not in text
    key = json.loads((s.work.path / "state" / "test.json").read_text())["fingerprint_key"]
    assert key not in s.cli("show", "--json").stdout.decode()
    assert not s.leaks(), s.leaks()


def test_plans_show_user_data_as_sensitive_with_its_fingerprint(session: Session) -> None:
    s = session
    s.cli("plan", "--out", "p.plan")
    digest = _keyed(s)
    text = s.cli("plan").stdout.decode()
    assert f"user_data: (sensitive, hmac:{digest[5:17]})" in text
    shown = s.cli("plan", "--show-sensitive", "--out", "p.plan").stdout.decode()
    assert "export DB_PASSWORD=ud-canary-" in shown
    saved = (s.work.path / "p.plan").read_text()
    assert digest in saved and "ud-canary-" not in saved, "a saved plan never holds user_data"


def test_state_and_plan_files_are_private(session: Session) -> None:
    s = session
    s.cli("plan", "--out", "p.plan")
    s.cli("apply", "p.plan")
    s.cli("apply", "--auto-approve")  # a second snapshot: the backup exists now
    doc = json.loads((s.work.path / "navarch.yaml").read_text())
    doc["pools"]["w"]["nodes"] = 1
    (s.work.path / "navarch.yaml").write_text(json.dumps(doc))
    s.cli("apply", "--auto-approve")
    files = [s.work.path / "p.plan", *sorted((s.work.path / "state").glob("test.json*"))]
    assert {p.name for p in files} >= {"p.plan", "test.json", "test.json.backup"}
    for path in files:
        assert path.stat().st_mode & 0o077 == 0, f"{path.name} is readable by others"


def test_any_value_from_the_environment_is_kept_out_of_every_output(work: Workdir) -> None:
    """A `${NAME}` in user_data (not only the API key) never reaches stdout or stderr,
    --debug tracebacks included, even when the cloud's error echoes the launch request
    back; nor does a redirect's Location that carries the key."""
    token = uuid.uuid4().hex
    key, canary = f"sk-{token}", f"pw-canary-{token}"
    fake = FakeLambda(api_key=key)
    with serve(fake) as base_url:
        doc = {"version": 1, "workspace": "test",
               "providers": {"lam": {"type": "lambda", "api_key_env": KEY_ENV,
                                     "base_url": base_url, "launch_interval": 0}},
               "pools": {"w": {"provider": "lam", "instance_type": "gpu_1x_a10",
                               "region": "us-east-1", "nodes": 1, "ssh_keys": ["ops-team"],
                               "user_data": "#!/bin/bash\nexport PW=${DB_PASSWORD}\n"}}}
        (work.path / "navarch.yaml").write_text(json.dumps(doc))
        env = {**OFFLINE_ENV, KEY_ENV: key, "DB_PASSWORD": canary}
        outputs = []
        fake.inject(400, method="POST", path="/instance-operations/launch",
                    body=error_body("global/invalid-parameters",
                                    f"bad request: user_data=export PW={canary}"))
        for args in (("apply", "--auto-approve", "--debug"), ("plan", "--format", "json")):
            result = work.cli(*args, env=env)
            outputs.append(result.out + result.err)
        assert "bad request: user_data=export PW=[redacted]" in outputs[0]
        fake.inject(301, method="GET", path="/instances",
                    headers={"Location": f"https://elsewhere.example/api?key={key}"})
        moved = work.cli("plan", env=env)
        outputs.append(moved.out + moved.err)
        assert "redirects to https://elsewhere.example;" in moved.err
    for text in outputs:
        assert canary not in text and key not in text

"""Secrets never leave the environment: every command runs with a canary API key, on a
config that uses it (a `lambda` provider against the fake Lambda API on 127.0.0.1),
including runs where the cloud's errors echo the request back, key and all. Every byte
navarch writes (stdout, stderr, every file under the work folder) is searched for the
canary, raw and encoded. user_data, which often carries secrets of its own, appears in
plans only as a hash.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

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
        provider = {"type": "lambda", "api_key_env": KEY_ENV, "base_url": base_url,
                    "launch_interval": 0}
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
    for command in (("plan",), ("drift",), ("validate",), ("instance-types",)):
        s.echo(401, "GET", "/instance*", code="global/invalid-api-key")
        s.run(*command, expect=(1,))
    s.echo(403, "GET", "/instances", code="global/forbidden")
    s.run("plan", "--debug", expect=(1,))
    s.echo(400, "POST", "/instance-operations/terminate")
    s.run("destroy", "--auto-approve", expect=(1,))
    assert sum(b"request rejected" in out for _, out in s.outputs) >= 7, \
        "the echoing errors were reported (their text, minus the key)"
    assert not s.leaks(), s.leaks()


def test_user_data_appears_in_plans_only_as_its_hash(session: Session) -> None:
    s = session
    plan = json.loads(s.run("plan", "--format", "json").stdout)
    digest = hashlib.sha256(s.user_data.encode()).hexdigest()
    assert plan["actions"][0]["after"]["user_data_sha256"] == digest
    text = s.run("plan").stdout.decode()
    s.run("plan", "--out", "p.plan")
    s.run("apply", "p.plan")
    state = (s.work.path / "state" / "test.json").read_text()
    assert digest in state and s.user_data not in state
    assert s.user_data.split("\n")[1] not in text
    assert not s.leaks(), s.leaks()


def test_plans_show_user_data_as_sensitive_with_its_hash(session: Session) -> None:
    s = session
    digest = hashlib.sha256(s.user_data.encode()).hexdigest()
    text = s.run("plan").stdout.decode()
    assert f"user_data: (sensitive, sha256:{digest[:12]})" in text
    shown = s.run("plan", "--show-sensitive", "--out", "p.plan").stdout.decode()
    assert "export DB_PASSWORD=ud-canary-" in shown
    saved = (s.work.path / "p.plan").read_text()
    assert digest in saved and "ud-canary-" not in saved, "a saved plan never holds user_data"


def test_state_and_plan_files_are_private(session: Session) -> None:
    s = session
    s.run("plan", "--out", "p.plan")
    s.run("apply", "p.plan")
    s.run("apply", "--auto-approve")  # a second snapshot: the backup exists now
    doc = json.loads((s.work.path / "navarch.yaml").read_text())
    doc["pools"]["w"]["nodes"] = 1
    (s.work.path / "navarch.yaml").write_text(json.dumps(doc))
    s.run("apply", "--auto-approve")
    files = [s.work.path / "p.plan", *sorted((s.work.path / "state").glob("test.json*"))]
    assert {p.name for p in files} >= {"p.plan", "test.json", "test.json.backup"}
    for path in files:
        assert path.stat().st_mode & 0o077 == 0, f"{path.name} is readable by others"

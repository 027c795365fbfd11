"""Hostile input through the CLI, table-driven: malformed and enormous YAML, schema
violations, names and labels the clouds would refuse, unicode and terminal escapes,
unset variables, foreign or damaged state, plan and cloud files.

Every case starts from the same applied fleet (a copy of one folder) and must give:
exit 1, one line on stderr naming the place, no traceback, bounded time and memory,
and nothing written: every file under the folder is byte-for-byte as before (the fake
cloud's own call log aside, which is the cloud's business), the cloud's instances are
untouched and no cloud call changed them. The cases built to exhaust memory or time
(bombs, huge files, deep nesting, huge counts) run the installed command in a child
process under an address-space limit; the others run `navarch` in this process (the
same main()), their Python allocations bounded by tracemalloc's peak.
tests/test_cli_bad_config.py holds the everyday config mistakes; these are the nasty ones.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sqlite3
import subprocess
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from navarch_plan.model import ProvisionRequest
from navarch_plan.plan import checksum_of
from navarch_plan.providers.fake import FakeProvider
from tests.conftest import OFFLINE_ENV, Workdir, navarch_argv

GOOD = """\
version: 1
workspace: test
providers:
  sim: {type: fake, path: state/cloud.db}
pools:
  w: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: 2}
"""
HEAD = GOOD.split("pools:")[0]
POOL = "  w: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: 2%s}\n"
MEMORY_LIMIT = 2 * 1024 ** 3  # address space of the navarch process
IN_PROCESS_PEAK = 256 * 1024 ** 2  # Python allocations of an in-process run
TIME_LIMIT = 15.0


def pool(extra: str) -> str:
    return HEAD + "pools:\n" + POOL % extra


@dataclass(frozen=True)
class Case:
    name: str
    command: tuple[str, ...]
    message: str  # a fragment of the error line
    place: str  # where: file:line:column, or the file the error is about
    config: str | bytes | None = None  # replaces navarch.yaml
    setup: Callable[[Path], None] | None = None
    env: dict[str, str] = field(default_factory=dict)


# -- setups: each damages one thing in the copied folder ----------------------------------

def write(name: str, data: bytes | str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
    return setup


def edit_state(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        path = folder / "state" / "test.json"
        doc = json.loads(path.read_text())
        result = change(doc)
        path.write_text(json.dumps(doc if result is None else result))
    return setup


def edit_plan(name: str, change: Callable[[dict], object], rechecksum: bool = False
              ) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        path = folder / "plans" / name
        doc = json.loads(path.read_text())
        result = change(doc)
        doc = doc if result is None else result
        if rechecksum and isinstance(doc, dict):
            doc["checksum"] = checksum_of(doc)
        path.write_text(json.dumps(doc))
    return setup


def truncate(name: str, keep: float) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        path = folder / name
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
    return setup


def journal(*lines: bytes) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        doc = json.loads((folder / "state" / "test.json").read_text())
        begin = json.dumps({"op": "begin", "lineage": doc["lineage"],
                            "serial": doc["serial"]}).encode()
        body = b"\n".join(line.replace(b"LINEAGE", doc["lineage"].encode())
                          for line in (begin, *lines))
        (folder / "state" / "test.json.journal").write_bytes(body + b"\n")
    return setup


def forge_foreign_delete(doc: dict) -> None:
    """A plan edited by hand, its checksum recomputed: delete another workspace's node."""
    doc["actions"] = [{"key": "pool.w[7]#x", "address": "pool.w[7]", "action": "delete",
                       "reason": "orphan", "group": "w", "provider": "sim",
                       "region": "us-west-1", "node_id": doc["_foreign"]}]
    doc.pop("_foreign")
    doc["summary"]["delete"] = 1


def alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "version: 1\n" + "\n".join(lines) + "\n"


def corrupt_cloud(data: bytes | None, keep: float = 1.0) -> Callable[[Path], None]:
    """Replace the cloud's file by `data`, or cut it to `keep` of its length."""
    def setup(folder: Path) -> None:
        for suffix in ("-wal", "-shm"):
            (folder / "state" / f"cloud.db{suffix}").unlink(missing_ok=True)
        path = folder / "state" / "cloud.db"
        whole = path.read_bytes()
        path.write_bytes(data if data is not None else whole[: int(len(whole) * keep)])
    return setup


def other_schema_cloud(folder: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (folder / "state" / f"cloud.db{suffix}").unlink(missing_ok=True)
    db = sqlite3.connect(folder / "state" / "cloud.db")
    db.execute("CREATE TABLE instances (id TEXT)")
    db.commit()
    db.close()


LAMBDA = (HEAD.replace("  sim: {type: fake, path: state/cloud.db}\n",
                       "  lam: {type: lambda, api_key_env: HOSTILE_KEY, "
                       "base_url: 'http://127.0.0.1:9/api/v1', launch_interval: 0}\n")
          + "pools:\n  w: {provider: lam, instance_type: gpu_1x_a10, region: us-east-1, "
            "nodes: 1, ssh_keys: [ops]%s}\n")

CASES = [
    # -- malformed YAML -----------------------------------------------------------------
    Case("tab indentation", ("plan",), "invalid YAML", "navarch.yaml:2:",
         "version: 1\n\tworkspace: test\n"),
    Case("duplicate top-level key", ("validate",), "duplicate key 'version'",
         "navarch.yaml:2:1", "version: 1\nversion: 1\n"),
    Case("duplicate provider", ("plan",), "duplicate key 'sim'", "navarch.yaml:5:3",
         GOOD.replace("pools:", "  sim: {type: fake}\npools:")),
    Case("billion laughs", ("plan",), "too large", "navarch.yaml:", alias_bomb()),
    Case("merge-key bomb", ("plan",), "merge keys", "navarch.yaml:3:",
         "version: 1\nbase: &b {x: 1}\nworkspace: {<<: *b}\n"),
    Case("50 MB file", ("plan",), "larger than the limit of 5242880 bytes", "navarch.yaml",
         "version: 1\nworkspace: test\n# " + "x" * (50 * 1024 * 1024) + "\n"),
    Case("binary junk", ("validate",), "not UTF-8", "navarch.yaml",
         bytes(range(256)) * 64),
    Case("NUL bytes", ("plan",), "NUL", "navarch.yaml", "version: 1\x00\nworkspace: t\n"),
    Case("UTF-16 file", ("plan",), "not UTF-8", "navarch.yaml", GOOD.encode("utf-16")),
    Case("deep flow nesting", ("plan",), "nesting", "navarch.yaml",
         "version: 1\nworkspace: " + "[" * 50_000 + "\n"),
    Case("deep block nesting", ("plan",), "nesting deeper than", "navarch.yaml:",
         "version: 1\n" + "".join(" " * i + f"k{i}:\n" for i in range(200)) + " " * 200 + "v\n"),
    Case("python object tag", ("plan",), "tag", "navarch.yaml:2:",
         "version: 1\nworkspace: !!python/object:os.system x\n"),
    Case("python tag on a list", ("plan",), "YAML tags are not allowed here", "navarch.yaml:2:",
         "version: 1\nworkspace: !!python/object/apply:os.system [id]\n"),
    Case("binary tag", ("validate",), "YAML tags are not allowed here", "navarch.yaml:2:",
         "version: 1\nworkspace: !!binary aGVsbG8=\n"),
    Case("two documents", ("plan",), "invalid YAML", "navarch.yaml:2:", "version: 1\n---\nx: 1\n"),
    Case("list as a key", ("plan",), "mapping keys must be plain strings", "navarch.yaml:2:",
         "version: 1\n? [a, b]\n: 1\n"),
    # -- schema violations and numbers ----------------------------------------------------
    Case("nodes 100000000", ("apply", "--auto-approve"), "greater than the maximum",
         "navarch.yaml:6:", pool("").replace("nodes: 2", "nodes: 100000000")),
    Case("nodes -5", ("plan",), "less than the minimum", "navarch.yaml:6:",
         pool("").replace("nodes: 2", "nodes: -5")),
    Case("nodes 1e400", ("plan",), "pools.w.nodes", "navarch.yaml:6:",
         pool("").replace("nodes: 2", "nodes: 1e400")),
    Case("nodes .nan", ("plan",), "pools.w.nodes", "navarch.yaml:6:",
         pool("").replace("nodes: 2", "nodes: .nan")),
    Case("nodes 2.5", ("plan",), "is not of type 'integer'", "navarch.yaml:6:",
         pool("").replace("nodes: 2", "nodes: 2.5")),
    Case("nodes true", ("plan",), "is not of type 'integer'", "navarch.yaml:6:",
         pool("").replace("nodes: 2", "nodes: true")),
    Case("fleet over the total limit", ("apply", "--auto-approve"), "the limit is 100000",
         "navarch.yaml", HEAD + "pools:\n" + "".join(
             f"  p{i}: {{provider: sim, instance_type: gpu_1x_a10, region: us-west-1, "
             f"nodes: 10000}}\n" for i in range(11))),
    Case("version as a string", ("validate",), "must be 1", "navarch.yaml:1:",
         GOOD.replace("version: 1", "version: '1'")),
    Case("user_data over 64 KiB", ("plan",), "is too long", "navarch.yaml:6:",
         pool(", user_data: '" + "x" * 70_000 + "'")),
    Case("lifecycle replace unknown", ("plan",), "is not one of", "navarch.yaml:6:",
         pool(", lifecycle: {replace: yolo}")),
    Case("max_parallel_terminations 0", ("plan",), "less than the minimum", "navarch.yaml:6:",
         pool(", max_parallel_terminations: 0")),
    # -- names and labels the clouds would refuse, unicode, escapes -------------------------
    Case("workspace with capitals", ("plan",), "'Research' is not valid (a name: lowercase",
         "navarch.yaml:2:",
         GOOD.replace("workspace: test", "workspace: Research")),
    Case("workspace 31 characters", ("plan",), "is not valid (a name: lowercase letters, "
         "digits and '-', starting with a letter, at most 30 characters)", "navarch.yaml:2:",
         GOOD.replace("workspace: test", "workspace: " + "w" * 31)),
    Case("unicode pool name", ("plan",), "invalid name 'trainér'", "navarch.yaml:6:3",
         GOOD.replace("  w:", "  trainér:")),
    Case("homoglyph provider", ("plan",), "'ѕim' is not valid (a name:", "navarch.yaml:6:",
         GOOD.replace("provider: sim", "provider: ѕim")),
    Case("emoji label value", ("plan",), "is not valid (label values:", "navarch.yaml:6:",
         pool(", labels: {team: 🚀}")),
    Case("label key 56 characters", ("plan",), "invalid name", "navarch.yaml:6:",
         pool(", labels: {" + "k" * 56 + ": v}")),
    Case("33 labels", ("plan",), "too many properties", "navarch.yaml:6:",
         pool(", labels: {" + ", ".join(f"k{i}: v" for i in range(33)) + "}")),
    Case("terminal escape in a name", ("plan",), "\\x1b[2J", "navarch.yaml:2:",
         GOOD.replace("workspace: test", 'workspace: "\\e[2J\\e[31mpwned"')),
    Case("zero-width space in a key", ("plan",), "unknown key", "navarch.yaml:2:1",
         GOOD.replace("workspace: test", "work\u200bspace: test")),
    Case("lambda tag key Lambda refuses", ("validate",), "tag", "navarch.yaml:6:",
         LAMBDA % ", labels: {team_name: ml}", env=OFFLINE_ENV),  # no key: refused before any call
    # -- environment variables -------------------------------------------------------------
    Case("unset variable in the provider path", ("plan",),
         "environment variable NAVARCH_HOSTILE_UNSET is not set", "navarch.yaml:4:",
         GOOD.replace("path: state/cloud.db", "path: '${NAVARCH_HOSTILE_UNSET}/c.db'")),
    Case("variable expanding to YAML", ("plan",), "is not of type 'integer'",
         "navarch.yaml:10:", HEAD + "pools:\n  w:\n    provider: sim\n    instance_type: "
         "gpu_1x_a10\n    region: us-west-1\n    nodes: ${HOSTILE_COUNT}\n",
         env={"HOSTILE_COUNT": "2\nfoo: bar"}),
    # -- state ---------------------------------------------------------------------------
    Case("state of another workspace", ("show",), "belongs to workspace 'other'",
         "state/test.json", setup=edit_state(lambda d: d.update(workspace="other"))),
    Case("state that is a JSON list", ("state", "list"), "is not a valid state file",
         "state/test.json", setup=write("state/test.json", "[1, 2, 3]")),
    Case("state nodes of the wrong type", ("plan",), "is not a valid state file",
         "state/test.json", setup=edit_state(lambda d: d.update(nodes=[1]))),
    Case("state truncated", ("apply", "--auto-approve"), "is not a valid state file",
         "state/test.json", setup=truncate("state/test.json", 0.5)),
    Case("state path is a folder", ("plan",), "cannot read the state file", "state",
         GOOD.replace("providers:", "state: {path: state}\nproviders:")),
    Case("journal of another lineage", ("plan",), "does not belong to",
         "state/test.json.journal",
         setup=write("state/test.json.journal",
                     '{"op": "begin", "lineage": "other", "serial": 1}\n')),
    Case("journal with a corrupt middle line", ("plan",), "line 2 is corrupt",
         "state/test.json.journal",
         setup=journal(b"{not json", b'{"op": "remove", "address": "pool.w[0]"}')),
    Case("journal with an unknown operation", ("plan",), "unknown journal operation",
         "state/test.json.journal", setup=journal(b'{"op": "explode"}')),
    Case("journal line missing its fields", ("plan",), "state/test.json.journal",
         "state/test.json.journal", setup=journal(b'{"op": "put"}')),
    # -- plan files ------------------------------------------------------------------------
    Case("plan of another workspace", ("apply", "plans/other.plan"), "does not match",
         "plans/other.plan"),
    Case("plan edited by hand", ("apply", "plans/grow.plan"), "modified after it was written",
         "plans/grow.plan",
         setup=edit_plan("grow.plan", lambda d: d["actions"][0].update(instance_type="x"))),
    Case("plan truncated", ("apply", "plans/grow.plan"), "not valid JSON", "plans/grow.plan",
         setup=truncate("plans/grow.plan", 0.6)),
    Case("plan not JSON", ("show", "plans/junk.plan"), "not valid JSON", "plans/junk.plan",
         setup=write("plans/junk.plan", b"\x89PNG\r\n\x1a\n" + bytes(200))),
    Case("plan from the future", ("apply", "plans/grow.plan"), "plan format 2.0",
         "plans/grow.plan",
         setup=edit_plan("grow.plan", lambda d: d.update(format_version="2.0"), True)),
    Case("state file given as a plan", ("apply", "state/test.json"),
         "is not a navarch plan file", "state/test.json"),
    Case("plan with a mangled action", ("apply", "plans/grow.plan"), "not a valid plan file",
         "plans/grow.plan",
         setup=edit_plan("grow.plan", lambda d: d["actions"][0].update(action="explode"),
                         True)),
    Case("plan path is a folder", ("show", "plans"), "plans", "plans"),
    Case("forged plan deleting a foreign node", ("apply", "plans/current.plan"),
         "not owned", "plans/current.plan",
         setup=edit_plan("current.plan", forge_foreign_delete, True)),
    # -- the fake cloud's file ---------------------------------------------------------------
    Case("cloud file of random bytes", ("plan",), "state/cloud.db", "state/cloud.db",
         setup=corrupt_cloud(bytes((i * 7919) % 256 for i in range(8192)))),
    Case("cloud file truncated", ("plan",), "state/cloud.db", "state/cloud.db",
         setup=corrupt_cloud(None, 0.3)),
    Case("cloud file of another schema", ("plan",), "state/cloud.db", "state/cloud.db",
         setup=other_schema_cloud),
]


# The cases built to exhaust memory or time: the installed command in a child process,
# under an address-space limit (the others run in this process).
IN_A_CHILD = {"billion laughs", "merge-key bomb", "50 MB file", "binary junk",
              "deep flow nesting", "deep block nesting", "nodes 100000000", "nodes 1e400",
              "fleet over the total limit", "user_data over 64 KiB"}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An applied fleet, a foreign instance and saved plans, copied by every case."""
    root = tmp_path_factory.mktemp("hostile")
    for name in ("fleet", "other-ws"):
        (root / name).mkdir()
    work, other = Workdir(root / "fleet"), Workdir(root / "other-ws")
    (work.path / "navarch.yaml").write_text(GOOD)
    assert work.cli("apply", "--auto-approve").code == 0
    (work.path / "plans").mkdir()
    assert work.cli("plan", "--out", "plans/current.plan").code == 0
    foreign = FakeProvider("sim", path=work.cloud_path).provision(ProvisionRequest(
        "theirs", "gpu_1x_a10", "us-west-1", labels={"navarch-workspace": "other"})).id
    current = json.loads((work.path / "plans" / "current.plan").read_text())
    current["_foreign"] = foreign  # for the forging case; the file is refused as it is
    (work.path / "plans" / "current.plan").write_text(json.dumps(current))
    (work.path / "navarch.yaml").write_text(GOOD.replace("nodes: 2", "nodes: 3"))
    assert work.cli("plan", "--out", "plans/grow.plan").code == 0
    (work.path / "navarch.yaml").write_text(GOOD)
    (other.path / "navarch.yaml").write_text(GOOD.replace("workspace: test", "workspace: ot"))
    assert other.cli("plan", "--out", str(work.path / "plans" / "other.plan")).code == 0
    shutil.rmtree(other.path)
    db = sqlite3.connect(work.cloud_path)  # fold the WAL in: the file alone is the cloud
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return work.path


def _files(folder: Path, with_cloud: bool) -> dict[str, bytes]:
    """Every file's bytes; the cloud's file too when it was damaged on purpose (a sound
    one legitimately logs the calls a command made)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))  # SQLite's own
            and (with_cloud or not p.name.startswith("cloud.db"))}


def _cloud(folder: Path) -> tuple[list[tuple], int]:
    """The cloud's instances, and how many calls changed anything, read without navarch."""
    try:
        db = sqlite3.connect(f"file:{folder / 'state' / 'cloud.db'}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT id, status, deleted FROM instances ORDER BY seq").fetchall()
            (changes,) = db.execute("SELECT COUNT(*) FROM calls WHERE op IN "
                                    "('provision', 'terminate')").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return [], -1  # a case that damaged the file on purpose
    return rows, changes


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_input_is_one_clear_line_and_changes_nothing(
        template: Path, tmp_path: Path, case: Case) -> None:
    folder = tmp_path / "fleet"
    shutil.copytree(template, folder)
    if case.config is not None:
        data = case.config.encode() if isinstance(case.config, str) else case.config
        (folder / "navarch.yaml").write_bytes(data)
    if case.setup:
        case.setup(folder)
    cloud_before = _cloud(folder)
    damaged_cloud = cloud_before[1] < 0
    before = _files(folder, damaged_cloud)
    started = time.monotonic()
    if case.name in IN_A_CHILD:
        proc = subprocess.run([*navarch_argv(), *case.command], cwd=folder, input="",
                              capture_output=True, timeout=60, preexec_fn=_limit_memory,
                              env={**os.environ, **case.env})
        code, out, err_bytes = proc.returncode, proc.stdout, proc.stderr
    else:
        tracemalloc.start()
        try:
            result = Workdir(folder).cli(*case.command, env=case.env)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < IN_PROCESS_PEAK, f"allocated {peak / 1024 ** 2:.0f} MiB at the peak"
        code, out, err_bytes = result.code, result.out.encode(), result.err.encode()
    took = time.monotonic() - started
    err = err_bytes.decode("utf-8", "replace")
    assert code == 1, (code, err, out[-500:])
    assert err.count("\n") == 1 and err.startswith("Error: "), err
    assert "Traceback" not in err and "internal error" not in err, err
    assert case.message in err, err
    assert case.place in err, err
    assert b"\x1b" not in err_bytes + out, "a raw terminal escape was echoed"
    assert took < TIME_LIMIT, f"took {took:.1f}s"
    assert _files(folder, damaged_cloud) == before, "a file was written, created or removed"
    if not damaged_cloud:
        assert _cloud(folder) == cloud_before, "the cloud was changed"


def test_a_huge_count_is_refused_before_any_cloud_call(tmp_path: Path) -> None:
    """On a fresh folder: not even the cloud's file is created, so no call was made."""
    work = Workdir(tmp_path)
    (work.path / "navarch.yaml").write_text(GOOD.replace("nodes: 2", "nodes: 100000000"))
    for command in (("plan",), ("apply", "--auto-approve"), ("validate",)):
        result = work.cli(*command)
        assert result.code == 1 and "greater than the maximum" in result.err
    assert sorted(p.name for p in work.path.rglob("*")) == ["navarch.yaml", "state"]


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.name for c in CASES} >= IN_A_CHILD, "every bounded case is in the table"


@pytest.mark.parametrize("value", ["nan", "-5s", "inf m"])
def test_a_lock_timeout_that_is_no_duration_is_refused(work: Workdir, value: str) -> None:
    work.config(pools={"p": {"nodes": 1}})
    result = work.cli("plan", f"--lock-timeout={value}")
    assert result.code == 1, "a usage error, like every bad argument (2 means changes)"
    assert f"not a duration: {value!r}" in result.err
    assert not (work.path / "state" / "test.json").exists()

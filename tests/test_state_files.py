"""The state's files on disk: one lock per real file (symlinks stay symlinks), files
created private, a living lock holder respected by force-unlock, and every OS error
(full disk, quota, read-only or unreadable folder) a one-line sentence that leaves the
previous snapshot intact.

A full and a read-only file system are real ones where the test can mount a tmpfs in
a private mount namespace (`unshare -m`, as root); the rest are injected through the
state package's file layer (navarch_plan.state.files.use_files)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from navarch_plan.errors import LockError, StateError
from navarch_plan.state import FileLock, LocalStateStore, LockLost, force_unlock
from navarch_plan.state.files import Files, use_files
from navarch_plan.state.lock_info import current_boot_id
from navarch_plan.state.model import NodeRecord
from navarch_plan.state.ops import Put, Remove
from navarch_plan.state.rescue import write_rescue
from tests.conftest import Result, Workdir, navarch_argv

STATE = "state/test.json"


def one_error(result: Result, *fragments: str) -> str:
    assert result.code == 1, (result.out, result.err)
    errors = [line for line in result.err.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in result.err, result.err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def applied(work: Workdir, nodes: int = 2) -> bytes:
    work.config(pools={"w": {"nodes": nodes}})
    result = work.cli("apply", "--auto-approve")
    assert result.code == 0, result.err
    return (work.path / STATE).read_bytes()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".tmp" in p.name)


def alive(work: Workdir) -> int:
    return sum(1 for n in work.cloud().list() if n.status.is_alive)


# -- one lock per real file ------------------------------------------------------------

@pytest.fixture
def linked(work: Workdir) -> Workdir:
    """state/test.json (the config's path) is a symlink to prod.json, not there yet."""
    (work.path / STATE).symlink_to("prod.json")
    return work


def test_a_symlinked_state_stays_a_symlink_and_the_target_holds_the_state(
        linked: Workdir) -> None:
    work, link = linked, linked.path / STATE
    applied(work, 2)
    applied(work, 3)  # a second snapshot: a backup is made
    assert link.is_symlink() and os.readlink(link) == "prod.json"
    assert len(json.loads((work.path / "state" / "prod.json").read_text())["nodes"]) == 3
    names = sorted(p.name for p in (work.path / "state").iterdir()
                   if not p.name.startswith("cloud.db"))
    assert names == ["prod.json", "prod.json.backup", "test.json"], names
    result = work.cli("plan", "--state", "state/prod.json", "--detailed-exitcode")
    assert result.code == 0, "the same state through either path"


@pytest.mark.parametrize(("held", "used"), [("prod.json", ()),
                                            ("test.json", ("--state", "state/prod.json"))])
def test_two_paths_to_one_file_share_one_lock(linked: Workdir, held: str,
                                              used: tuple[str, ...]) -> None:
    work = linked
    applied(work, 1)
    holder = FileLock(str(work.path / "state" / held))
    info = holder.acquire("apply")
    try:
        err = one_error(work.cli("plan", *used), "Error acquiring the state lock on state/",
                        info.id, f"pid {os.getpid()}")
        if not used:
            assert "state/test.json (a link to " in err and "prod.json)" in err
    finally:
        holder.release()
    assert work.cli("plan", *used).code == 0


def test_two_paths_to_one_file_share_one_journal(linked: Workdir) -> None:
    work = linked
    applied(work, 2)
    by_link = LocalStateStore(str(work.path / STATE), "test")
    by_link.load()
    by_link.record(Remove("pool.w[1]"))
    by_link.close_journal()
    assert (work.path / "state" / "prod.json.journal").exists()
    assert not (work.path / "state" / "test.json.journal").exists()
    seen = LocalStateStore(str(work.path / "state" / "prod.json"), "test").load()
    assert sorted(seen.nodes) == ["pool.w[0]"]


# -- files are created private ---------------------------------------------------------

class Recording(Files):
    """The real files, noting every open."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, int, int]] = []

    def open(self, path: str, flags: int, mode: int = 0o600) -> int:
        self.opened.append((path, flags, mode))
        return super().open(path, flags, mode)


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    saved = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(saved)


def no_chmod(*args: object, **kwargs: object) -> None:
    raise AssertionError(f"a state file was chmod'ed: {args}")


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077], indirect=True)
def test_every_state_file_is_created_private(work: Workdir, umask: int,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("chmod", "fchmod", "lchmod"):
        monkeypatch.setattr(os, name, no_chmod, raising=False)
    recording = Recording()
    with use_files(recording):
        applied(work, 1)
        applied(work, 2)
        assert work.cli("plan", "--out", "plans/p.plan").code == 0
        store = LocalStateStore(str(work.path / STATE), "test")
        info = store.lock("apply")
        doc = store.load()
        store.record(Remove("pool.w[1]"))
        rescue = Path(write_rescue(doc, str(work.path)))
        files = {"snapshot": work.path / STATE, "backup": work.path / f"{STATE}.backup",
                 "journal": work.path / f"{STATE}.journal",
                 "lock": work.path / f"{STATE}.lock", "plan": work.path / "plans" / "p.plan",
                 "rescue": rescue}
        modes = {name: oct(path.stat().st_mode & 0o777) for name, path in files.items()}
        assert store.still_held() and info.id in files["lock"].read_text()
        store.unlock()
    assert modes == dict.fromkeys(files, oct(0o600)), modes
    created = [(p, f, m) for p, f, m in recording.opened if f & os.O_CREAT]
    assert {m for _, _, m in created} == {0o600}, created
    kinds = {Path(p).name.split(".tmp")[0] for p, f, _ in created if f & os.O_EXCL}
    assert {"test.json", "test.json.backup", "test.json.lock", "p.plan"} <= kinds, kinds
    assert any(p.endswith(".journal") for p, _, _ in created)
    assert any(rescue.name in p for p, _, _ in created)
    assert leftovers(work.path) == []


# -- force-unlock and a living holder ----------------------------------------------------

HOLD = """
import sys, time
from navarch_plan.state.lock import FileLock
info = FileLock(sys.argv[1]).acquire("apply")
print(info.id, flush=True)
time.sleep(120)
"""


def test_force_unlock_refuses_a_living_holder_unless_forced(work: Workdir) -> None:
    before = applied(work, 2)
    path = str(work.path / STATE)
    store = LocalStateStore(path, "test")
    info = store.lock("apply")
    store.load()
    assert store.still_held()
    one_error(work.cli("force-unlock", info.id, stdin="yes\n"),
              f"held by {info.who} (pid {os.getpid()})", "still running on this machine",
              f"navarch force-unlock --force {info.id}")
    with pytest.raises(LockError, match="still running"):
        force_unlock(path, info.id)
    assert store.still_held() and Path(path + ".lock").exists()
    assert force_unlock(path, info.id, force=True).id == info.id
    assert not store.still_held()
    with pytest.raises(LockLost, match=f"state lock {info.id} on .* is no longer ours"):
        store.check_held()
    with pytest.raises(LockLost, match="records nothing more"):
        store.record(Remove("pool.w[0]"))
    successor = FileLock(path)
    successor.acquire("plan")
    with pytest.raises(LockLost):
        store.compact()
    store.unlock()  # the forced-out holder leaves the new holder's lock alone
    assert successor.still_held()
    successor.release()
    assert (work.path / STATE).read_bytes() == before, "the forced-out holder wrote nothing"
    assert not Path(path + ".journal").exists()


def test_a_holder_in_another_process_is_respected_until_it_dies(work: Workdir) -> None:
    applied(work, 1)
    path = str(work.path / STATE)
    proc = subprocess.Popen([sys.executable, "-c", HOLD, path], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        lock_id = proc.stdout.readline().strip()
        one_error(work.cli("force-unlock", lock_id, stdin="yes\n"), f"(pid {proc.pid})",
                  "still running")
        assert Path(path + ".lock").exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert force_unlock(path, lock_id).id == lock_id  # dead now: no --force needed
    assert not Path(path + ".lock").exists()


def test_a_lock_no_process_holds_is_released_without_force(work: Workdir) -> None:
    """Written by hand (or an old navarch): nothing proves a holder alive."""
    applied(work, 1)
    body = {"id": "hand", "operation": "apply", "who": f"me@{socket.gethostname()}",
            "pid": os.getpid(), "version": "0", "created": "2026-01-01T00:00:00+00:00",
            "path": STATE, "flock": True, "boot_id": current_boot_id()}
    (work.path / f"{STATE}.lock").write_text(json.dumps(body))
    assert work.cli("force-unlock", "hand", stdin="yes\n").code == 0


# -- OS errors: a real full and read-only file system ----------------------------------------

SCRIPT = """
set -u
out=$PWD/out
mount -t tmpfs -o size=64k tmpfs state || exit 97
run() {  # name, navarch arguments...
    name=$1; shift
    "$NAVARCH" "$@" > "$out/$name.out" 2> "$out/$name.err"; echo $? > "$out/$name.rc"
    ls -a state > "$out/$name.ls"; cp state/test.json "$out/$name.snapshot" 2>/dev/null
}
run first apply --auto-approve
dd if=/dev/zero of=state/filler bs=4k count=64 2>/dev/null  # every block
run full apply -c grow.yaml --auto-approve
rm state/filler  # then room for the lock, the journal and the backup, not the snapshot
free=$(df -k --output=avail state | tail -1)
dd if=/dev/zero of=state/filler bs=1k count=$((free - 12)) 2>/dev/null
run tight apply -c grow.yaml --auto-approve
mount -o remount,ro state
run readonly plan -c grow.yaml
run readonly-apply apply -c grow.yaml --auto-approve
mount -o remount,rw state && rm state/filler
run recovered plan -c grow.yaml --detailed-exitcode
"""


@pytest.fixture(scope="module")
def tmpfs_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to mount a private tmpfs")
    folder = tmp_path_factory.mktemp("tmpfs")
    work = Workdir(folder)
    (folder / "out").mkdir()
    sim = {"path": str(folder / "cloud.db")}  # the cloud lives outside the small disk
    work.config(pools={"w": {"nodes": 2}}, sim=sim)
    shutil.copy(work.config(pools={"w": {"nodes": 3}}, sim=sim), folder / "grow.yaml")
    work.config(pools={"w": {"nodes": 2}}, sim=sim)
    proc = subprocess.run(["unshare", "-m", "sh", "-c", textwrap.dedent(SCRIPT)], cwd=folder,
                          env={**os.environ, "NAVARCH": navarch_argv()[0]},
                          capture_output=True, text=True, timeout=300)
    if proc.returncode == 97 or "unshare failed" in proc.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    return folder / "out"


def step(out: Path, name: str) -> Result:
    return Result(int((out / f"{name}.rc").read_text()), (out / f"{name}.out").read_text(),
                  (out / f"{name}.err").read_text())


def test_a_full_disk_stops_at_the_lock(tmpfs_run: Path) -> None:
    assert step(tmpfs_run, "first").code == 0
    one_error(step(tmpfs_run, "full"), "cannot write the state lock state/test.json.lock: "
              "No space left on device; nothing was changed", "free space")
    assert (tmpfs_run / "full.snapshot").read_bytes() == (
        tmpfs_run / "first.snapshot").read_bytes()
    assert (tmpfs_run / "full.ls").read_text().split() == [".", "..", "filler", "test.json"]


def test_a_disk_full_at_the_snapshot_keeps_the_old_one_and_the_journal(tmpfs_run: Path
                                                                        ) -> None:
    one_error(step(tmpfs_run, "tight"),
              "the snapshot state/test.json could not be written (No space left on device)",
              "state/test.json was not replaced and still holds serial 1",
              "state/test.json.journal keeps what this run recorded")
    assert (tmpfs_run / "tight.snapshot").read_bytes() == (
        tmpfs_run / "first.snapshot").read_bytes()
    files = (tmpfs_run / "tight.ls").read_text().split()
    assert "test.json.journal" in files and not [f for f in files if ".tmp" in f], files
    recovered = step(tmpfs_run, "recovered")
    assert recovered.code == 0, recovered.err  # the journal was folded in: nothing to do
    assert len(json.loads((tmpfs_run / "recovered.snapshot").read_text())["nodes"]) == 3


@pytest.mark.parametrize("name", ["readonly", "readonly-apply"])
def test_a_read_only_state_folder_is_one_sentence(tmpfs_run: Path, name: str) -> None:
    one_error(step(tmpfs_run, name), "cannot create the state lock state/test.json.lock: "
              "Read-only file system; nothing was changed", "writable file system")
    assert (tmpfs_run / f"{name}.snapshot").read_bytes() == (
        tmpfs_run / "tight.snapshot").read_bytes()


# -- OS errors: injected through the file layer --------------------------------------------

class Faulty(Files):
    """Raise OSError(code) from `method` where `match(path, data)` holds; with
    `partial`, a write first puts half of its data in the file."""

    def __init__(self, method: str, match: Callable[[str, bytes], bool], code: int,
                 partial: bool = False) -> None:
        self.method, self.match, self.code, self.partial = method, match, code, partial
        self.hits = 0

    def _fault(self, method: str, path: str, data: bytes = b"") -> None:
        if method == self.method and self.match(path, data):
            self.hits += 1
            raise OSError(self.code, os.strerror(self.code), path)

    def open(self, path: str, flags: int, mode: int = 0o600) -> int:
        self._fault("open", path)
        return super().open(path, flags, mode)

    def write(self, fd: int, data: bytes, path: str) -> None:
        if self.partial and self.method == "write" and self.match(path, data):
            os.write(fd, data[: len(data) // 2])
        self._fault("write", path, data)
        super().write(fd, data, path)

    def read(self, path: str) -> bytes:
        self._fault("read", path)
        return super().read(path)

    def fsync_dir(self, path: str) -> None:
        self._fault("fsync_dir", path)
        super().fsync_dir(path)


def journal_with(marker: bytes) -> Callable[[str, bytes], bool]:
    return lambda path, data: path.endswith(".journal") and marker in data


def test_a_journal_write_failing_after_a_launch_loses_no_instance(work: Workdir) -> None:
    applied(work, 2)
    work.config(pools={"w": {"nodes": 3}})
    faulty = Faulty("write", journal_with(b'"op":"put"'), errno.EDQUOT)
    with use_files(faulty):
        result = work.cli("apply", "--auto-approve")
    one_error(result, "the record of instance fake-", "at pool.w[2] could not be written "
              "to state/test.json.journal: Disk quota exceeded", "raise the quota",
              "then run `navarch plan`, which adopts it")
    assert "failed:  pool.w[2]" in result.out
    planned = work.cli("plan", "--format", "json")
    assert [a["action"] for a in planned.json()["actions"]] == ["adopt"], planned.out
    assert work.cli("apply", "--auto-approve").code == 0
    assert alive(work) == 3 and len(work.state()["nodes"]) == 3, "adopted, not launched again"


def test_a_failed_launch_intent_starts_no_launch(work: Workdir) -> None:
    applied(work, 1)
    work.config(pools={"w": {"nodes": 3}})
    with use_files(Faulty("write", journal_with(b'"op":"intent"'), errno.ENOSPC)):
        result = work.cli("apply", "--auto-approve")
    assert result.code == 1 and "could not be written to state/test.json.journal" in result.out
    assert "That launch was not started" in result.out
    assert alive(work) == 1, "no instance was launched without its intent recorded"


@pytest.mark.parametrize(("faulty", "fragments"), [
    (Faulty("open", lambda p, _: ".backup.tmp." in p, errno.EACCES),
     ("the backup state/test.json.backup could not be written (Permission denied)",
      "ive this user read and write access")),
    (Faulty("write", lambda p, _: "test.json.tmp." in p, errno.ENOSPC, partial=True),
     ("the snapshot state/test.json could not be written (No space left on device)",)),
    (Faulty("open", lambda p, _: "test.json.tmp." in p, errno.EROFS),
     ("the snapshot state/test.json could not be written (Read-only file system)",)),
], ids=["backup EACCES", "snapshot ENOSPC mid-write", "snapshot EROFS"])
def test_a_snapshot_that_cannot_be_written_leaves_the_old_one(
        work: Workdir, faulty: Faulty, fragments: tuple[str, ...]) -> None:
    before = applied(work, 1)
    work.config(pools={"w": {"nodes": 2}})
    with use_files(faulty):
        result = work.cli("apply", "--auto-approve")
    one_error(result, *fragments, "still holds serial 1",
              "state/test.json.journal keeps what this run recorded")
    assert "Apply finished" in result.out or "Apply complete" in result.out
    assert (work.path / STATE).read_bytes() == before
    assert leftovers(work.path) == []
    assert work.cli("plan", "--detailed-exitcode").code == 0, "the journal was folded in"
    assert work.state()["serial"] == 2 and len(work.state()["nodes"]) == 2


class SyncFails(Files):
    """The folder's fsync fails on its `nth` call (1: the backup's, 2: the snapshot's)."""

    def __init__(self, nth: int) -> None:
        self.nth, self.calls = nth, 0

    def fsync_dir(self, path: str) -> None:
        self.calls += 1
        if self.calls == self.nth:
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        super().fsync_dir(path)


@pytest.mark.parametrize(("nth", "fragment"), [
    (1, "the backup state/test.json.backup could not be synced to disk (Input/output "
        "error); state/test.json was not replaced and still holds serial 1"),
    (2, "the snapshot state/test.json was written (serial 2), but its folder could not be "
        "synced to disk (Input/output error)"),
])
def test_a_folder_that_cannot_be_synced_keeps_the_journal(work: Workdir, nth: int,
                                                          fragment: str) -> None:
    applied(work, 1)
    work.config(pools={"w": {"nodes": 2}})
    with use_files(SyncFails(nth)):
        result = work.cli("apply", "--auto-approve")
    one_error(result, fragment, "state/test.json.journal keeps what this run recorded")
    assert (work.path / f"{STATE}.journal").exists()
    assert work.cli("plan", "--detailed-exitcode").code == 0
    assert work.state()["serial"] == 2 and len(work.state()["nodes"]) == 2


@pytest.mark.parametrize(("faulty", "command", "fragments"), [
    (Faulty("write", lambda p, _: p.endswith(".lock"), errno.ENOSPC), ("plan",),
     ("cannot write the state lock state/test.json.lock: No space left on device",)),
    (Faulty("open", lambda p, _: p.endswith(".lock"), errno.EDQUOT), ("apply",),
     ("cannot create the state lock state/test.json.lock: Disk quota exceeded",)),
    (Faulty("read", lambda p, _: p.endswith("test.json"), errno.EACCES), ("plan",),
     ("cannot read the state file state/test.json: Permission denied",)),
    (Faulty("read", lambda p, _: p.endswith(".journal"), errno.EIO), ("plan",),
     ("cannot read the journal state/test.json.journal: Input/output error",)),
    (Faulty("open", lambda p, _: "p.plan" in p, errno.ENOSPC), ("plan", "--out", "p.plan"),
     ("could not write p.plan: No space left on device; it was left as it was and no "
      "temporary file remains",)),
], ids=["lock ENOSPC", "lock EDQUOT", "snapshot EACCES", "journal EIO", "saved plan"])
def test_an_os_error_is_one_sentence_naming_the_file(
        work: Workdir, faulty: Faulty, command: tuple[str, ...],
        fragments: tuple[str, ...]) -> None:
    before = applied(work, 1)
    (work.path / f"{STATE}.journal").write_bytes(b"")  # something for the journal to read
    work.config(pools={"w": {"nodes": 2}})
    with use_files(faulty):
        one_error(work.cli(*command), *fragments)
    assert faulty.hits, "the fault was reached"
    assert (work.path / STATE).read_bytes() == before
    assert not (work.path / f"{STATE}.lock").exists() and leftovers(work.path) == []


def test_a_failed_journal_append_is_cut_back_to_its_last_good_line(tmp_path: Path) -> None:
    path = str(tmp_path / "s.json")
    faulty = Faulty("write", journal_with(b"pool.a[1]"), errno.ENOSPC, partial=True)
    store = LocalStateStore(path, "ws", files=faulty)
    store.load()
    record = {"id": "i-1", "provider": "sim", "region": "r", "zone": "", "instance_type": "t",
              "name": "n", "spec": {}, "spec_hash": "h", "status": "running",
              "ip_address": "", "labels": {}, "created_at": "now"}
    store.record(Put("pool.a[0]", NodeRecord.from_json(record)))
    with pytest.raises(StateError, match="could not be written to .*s.json.journal: No space"):
        store.record(Remove("pool.a[9]"),
                     Put("pool.a[1]", NodeRecord.from_json({**record, "id": "i-2"})))
    assert sorted(store.doc.nodes) == ["pool.a[0]"], "memory never runs ahead of the disk"
    with pytest.raises(StateError, match="nothing more is recorded in this run"):
        store.record(Remove("pool.a[0]"))
    again = LocalStateStore(path, "ws").load()  # the file holds whole lines only
    assert sorted(again.nodes) == ["pool.a[0]"]
    assert faulty.hits == 1 and Path(path + ".journal").read_bytes().endswith(b"\n")

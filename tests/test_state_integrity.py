"""State that is wrong is refused, precisely: every damaged snapshot and journal below
gives exit 1 and exactly one `Error:` line naming the file and the place, and leaves
every state file byte-for-byte as it was. Restoring a backup that would drop newer
journal operations says so, and how to keep them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result, Workdir

STATE = "state/test.json"
JOURNAL = "state/test.json.journal"
INTACT = f"; {STATE} itself is intact. Nothing was changed"


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three nodes applied (serial 1), copied by every case."""
    work = Workdir(tmp_path_factory.mktemp("integrity"))
    work.config(pools={"w": {"nodes": 3}})
    assert work.cli("apply", "--auto-approve").code == 0
    return work.path


@pytest.fixture
def work(applied: Path, tmp_path: Path) -> Workdir:
    shutil.copytree(applied, tmp_path / "fleet")
    return Workdir(tmp_path / "fleet")


def state_files(work: Workdir) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((work.path / "state").iterdir())
            if p.is_file() and not p.name.startswith("cloud.db")}


def refused(work: Workdir, *fragments: str, command: tuple[str, ...] = ("plan",)) -> str:
    """Run `command`: it must fail with one Error line holding every fragment, and
    write nothing."""
    before = state_files(work)
    result: Result = work.cli(*command)
    assert result.code == 1, (result.out, result.err)
    assert result.err.count("\n") == 1 and result.err.startswith("Error: "), result.err
    for fragment in fragments:
        assert fragment in result.err, result.err
    assert state_files(work) == before, "a state file was written, created or removed"
    return result.err


def edit(work: Workdir, change: Callable[[dict[str, Any]], None]) -> None:
    doc = work.state()
    change(doc)
    (work.path / STATE).write_text(json.dumps(doc, indent=2))


def node(doc: dict[str, Any], index: int) -> dict[str, Any]:
    return doc["nodes"][f"pool.w[{index}]"]


def set_field(index: int, name: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda doc: node(doc, index).__setitem__(name, value)


def set_label(doc: dict[str, Any]) -> None:
    node(doc, 1)["labels"]["team"] = 5


# -- the snapshot ------------------------------------------------------------------

def test_two_addresses_holding_one_instance_are_refused(work: Workdir) -> None:
    doc = work.state()
    shared = node(doc, 0)["id"]
    edit(work, set_field(2, "id", shared))
    refused(work, STATE, f"pool.w[0] and pool.w[2] both hold instance {shared}",
            "could delete it")
    refused(work, STATE, "both hold", command=("apply", "--auto-approve"))
    cloud = work.cloud()
    assert len([n for n in cloud.list() if n.status.is_alive]) == 3, "nothing deleted"


def test_a_node_and_a_deposed_entry_holding_one_instance_are_refused(work: Workdir) -> None:
    def depose_a_copy(doc: dict[str, Any]) -> None:
        record = node(doc, 1)
        doc["deposed"] = {record["id"]: dict(record)}

    edit(work, depose_a_copy)
    shared = node(work.state(), 1)["id"]
    refused(work, STATE, f"pool.w[1] and deposed.{shared} both hold instance {shared}")


def test_a_deposed_entry_keyed_by_another_id_is_refused(work: Workdir) -> None:
    def misfile(doc: dict[str, Any]) -> None:
        record = doc["nodes"].pop("pool.w[2]")
        doc["deposed"] = {"i-elsewhere": record}

    edit(work, misfile)
    refused(work, STATE, "deposed.i-elsewhere holds instance",
            "a deposed entry's key must be its instance id")


@pytest.mark.parametrize(("change", "fragment"), [
    (set_field(1, "labels", ["team"]), "nodes.pool.w[1]: labels is an array, not an object"),
    (set_label, "nodes.pool.w[1]: labels.team is a number, not a string"),
    (set_field(1, "spec", "big"), "nodes.pool.w[1]: spec is a string, not an object"),
    (set_field(1, "ref_values", 3), "nodes.pool.w[1]: ref_values is a number, not an object"),
    (set_field(1, "ref_values", {"x": None}), "nodes.pool.w[1]: ref_values.x is null"),
    (set_field(1, "status", "exploded"), "nodes.pool.w[1]: status 'exploded' is not one of"),
    (set_field(1, "status", ["running"]), "nodes.pool.w[1]: status ['running'] is not one"),
    (set_field(1, "ip_address", 5), "nodes.pool.w[1]: ip_address is a number, not a string"),
    (set_field(1, "name", None), "nodes.pool.w[1]: name is null, not a string"),
    (set_field(1, "zone", []), "nodes.pool.w[1]: zone is an array, not a string"),
    (set_field(1, "id", ""), "nodes.pool.w[1]: id is empty"),
    (lambda doc: node(doc, 1).pop("created_at"), "nodes.pool.w[1]: the record lacks created_at"),
    (lambda doc: doc["nodes"].__setitem__("pool.w[1]", "x"),
     "nodes.pool.w[1]: the record is a string, not an object"),
    (lambda doc: doc.__setitem__("deposed", []), "deposed is an array, not an object"),
    (lambda doc: doc.__setitem__("intents", [{"id": "t", "address": "pool.w[0]",
                                               "provider": "sim", "region": "r",
                                               "name": "n", "started_at": 5}]),
     "intents.0.started_at: 5 is not of type 'string'"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_malformed_record_is_refused_naming_its_place(
        work: Workdir, change: Callable[[dict[str, Any]], None], fragment: str) -> None:
    edit(work, change)
    refused(work, f"{STATE} is not a valid state file", fragment)


# -- the journal -------------------------------------------------------------------

def write_journal(work: Workdir, *lines: bytes, serial: int | None = None,
                  end: bytes = b"\n") -> None:
    doc = work.state()
    begin = json.dumps({"op": "begin", "lineage": doc["lineage"],
                        "serial": doc["serial"] if serial is None else serial}).encode()
    (work.path / JOURNAL).write_bytes(b"\n".join((begin, *lines)) + end)


def good_record(work: Workdir, index: int) -> dict[str, Any]:
    return dict(node(work.state(), index))


def put(address: str, record: object) -> bytes:
    return json.dumps({"op": "put", "address": address, "record": record}).encode()


INTENT = {"id": "t1", "address": "pool.w[3]", "provider": "sim", "region": "us-west-1",
          "name": "n", "started_at": "2026-01-01T00:00:00+00:00"}


@pytest.mark.parametrize(("line", "what"), [
    (b"[]", "an array, not a journal operation (a JSON object)"),
    (b"5", "a number, not a journal operation"),
    (b'"x"', "a string, not a journal operation"),
    (b"null", "null, not a journal operation"),
    (b"{}", "unknown journal operation None"),
    (b'{"op": "explode"}', "unknown journal operation 'explode'"),
    (b'{"op": 7}', "unknown journal operation 7"),
    (b'{"op": "begin", "lineage": "x", "serial": 1}', "unknown journal operation 'begin'"),
    (b'{"op": "put"}', "put lacks 'record'"),
    (b'{"op": "put", "address": "pool.w[0]", "record": []}',
     "put record: the record is an array, not an object"),
    (b'{"op": "put", "address": "pool.w[0]", "record": {"id": "i-9"}}',
     "put record: the record lacks"),
    (b'{"op": "remove"}', "remove lacks 'address'"),
    (b'{"op": "remove", "address": 5}', "remove.address is not a non-empty string"),
    (b'{"op": "depose", "address": ""}', "depose.address is not a non-empty string"),
    (b'{"op": "forget_deposed", "id": ["i-1"]}', "forget_deposed.id is not a non-empty string"),
    (b'{"op": "intent_done"}', "intent_done lacks 'id'"),
    (b'{"op": "intent_launched", "id": "t1"}', "intent_launched lacks 'node_id'"),
    (b'{"op": "intent"}', "intent lacks 'intent'"),
    (b'{"op": "intent", "intent": "t1"}', "intent is a string, not an object"),
    (b'{"op": "intent", "intent": {"id": "t1"}}',
     "intent lacks address, provider, region, name, started_at"),
    (json.dumps({"op": "intent", "intent": {**INTENT, "zone": 5}}).encode(),
     "intent.zone is a number, not a string"),
    (json.dumps({"op": "intent", "intent": {**INTENT, "colour": "red"}}).encode(),
     "intent has unknown field 'colour'"),
    (b"{not json", None),
], ids=lambda v: v.decode()[:40] if isinstance(v, bytes) else "")
def test_a_bad_journal_line_is_refused_with_its_number(
        work: Workdir, line: bytes, what: str | None) -> None:
    write_journal(work, b'{"op": "remove", "address": "pool.w[0]"}', line,
                  b'{"op": "remove", "address": "pool.w[1]"}')
    expected = (f"{JOURNAL} line 3 is corrupt" if what is None
                else f"{JOURNAL} line 3: {what}")
    err = refused(work, expected)
    assert err.startswith(f"Error: {expected}") and err.endswith(f"{INTACT}\n"), err


def test_a_put_that_would_give_one_instance_two_addresses_is_refused(work: Workdir) -> None:
    taken = good_record(work, 0)
    write_journal(work, put("pool.w[2]", taken))
    refused(work, f"{JOURNAL} line 2: puts instance {taken['id']} at pool.w[2], but "
                  f"pool.w[0] holds it", INTACT)


def test_a_put_onto_a_deposed_instance_is_refused(work: Workdir) -> None:
    deposed = good_record(work, 1)
    write_journal(work, b'{"op": "depose", "address": "pool.w[1]"}',
                  put("pool.w[3]", deposed))
    refused(work, f"{JOURNAL} line 3: puts instance {deposed['id']} at pool.w[3], but "
                  f"deposed.{deposed['id']} holds it")


def test_moves_and_replacements_in_the_journal_are_accepted(work: Workdir) -> None:
    """What the executor writes: a replacement (depose, put, forget), a record moved by
    remove + put, and a record refreshed in place."""
    old, moved = good_record(work, 1), good_record(work, 2)
    new = {**old, "id": "fake-new"}
    write_journal(work, b'{"op": "depose", "address": "pool.w[1]"}', put("pool.w[1]", new),
                  json.dumps({"op": "forget_deposed", "id": old["id"]}).encode(),
                  b'{"op": "remove", "address": "pool.w[2]"}', put("pool.w[2]", moved),
                  put("pool.w[2]", {**moved, "status": "unhealthy"}))
    from navarch_plan.state import LocalStateStore

    doc = LocalStateStore(str(work.path / STATE), "test").load()
    assert doc.nodes["pool.w[1]"].id == "fake-new" and doc.deposed == {}
    assert doc.nodes["pool.w[2]"].status == "unhealthy"


def test_a_begin_line_that_is_not_one_is_refused(work: Workdir) -> None:
    (work.path / JOURNAL).write_bytes(b'[1]\n{"op": "remove", "address": "pool.w[0]"}\n')
    refused(work, f"{JOURNAL} line 1: not a begin line naming the snapshot", INTACT)
    (work.path / JOURNAL).write_bytes(b'{"op": "begin", "serial": 1}\n')
    refused(work, f"{JOURNAL} line 1: not a begin line")


def test_a_torn_last_line_is_still_ignored(work: Workdir) -> None:
    write_journal(work, b'{"op": "remove", "address": "pool.w[0]"}',
                  b'{"op": "remove", "address": "pool.w[1]"', end=b"")
    from navarch_plan.state import LocalStateStore

    doc = LocalStateStore(str(work.path / STATE), "test").load()
    assert sorted(doc.nodes) == ["pool.w[1]", "pool.w[2]"], "line 2 replayed, torn 3 not"
    result = work.cli("plan")
    assert result.code == 0, result.err


# -- restoring the backup --------------------------------------------------------------

@pytest.fixture
def grown(work: Workdir) -> Workdir:
    """Serial 2 (four nodes) over a backup of serial 1 (three)."""
    work.config(pools={"w": {"nodes": 4}})
    assert work.cli("apply", "--auto-approve").code == 0
    assert work.state()["serial"] == 2
    return work


def damage(work: Workdir) -> None:
    data = (work.path / STATE).read_bytes()
    (work.path / STATE).write_bytes(data[: len(data) // 2])


def test_restoring_a_backup_that_lacks_newer_journal_operations_says_so(grown: Workdir
                                                                          ) -> None:
    work = grown
    fifth = {**good_record(work, 0), "id": "fake-fifth"}
    write_journal(work, put("pool.w[4]", fifth),
                  b'{"op": "intent_launched", "id": "t9", "node_id": "fake-sixth"}',
                  b'{"op": "remove", "address": "pool.w[3]"}')
    damage(work)
    err = refused(work, f"{STATE} is not a valid state file",
                  f"the previous version is {STATE}.backup (serial 1): inspect it, then "
                  f"copy it over {STATE} to restore",
                  f"But {JOURNAL} holds 3 operations recorded after serial 1 "
                  "(on pool.w[4], pool.w[3]) that the backup lacks",
                  f"`mv {JOURNAL} {JOURNAL}.saved`",
                  "finds instances fake-fifth, fake-sixth by this workspace's labels")
    assert err.endswith("Nothing was changed\n")


def test_a_journal_that_is_not_newer_than_the_backup_is_not_mentioned(grown: Workdir
                                                                        ) -> None:
    work = grown
    write_journal(work, b'{"op": "remove", "address": "pool.w[0]"}', serial=1)
    damage(work)
    err = refused(work, f"the previous version is {STATE}.backup (serial 1)")
    assert "journal" not in err


def test_following_the_advice_keeps_what_the_journal_knew(grown: Workdir) -> None:
    """A run whose end-of-run snapshot failed left its operations in the journal; then
    the snapshot was damaged. Moving the journal aside and restoring the backup loses
    no instance: the next plan finds the newer ones by their labels."""
    work = grown
    work.config(pools={"w": {"nodes": 3}})
    assert work.cli("apply", "--auto-approve").code == 0  # serial 3 over a backup of 2
    work.config(pools={"w": {"nodes": 5}})
    from navarch_plan.state.files import Files, use_files

    class NoSnapshot(Files):
        def open(self, path: str, flags: int, mode: int = 0o600) -> int:
            if ".tmp." in path:
                raise OSError(28, "No space left on device", path)
            return super().open(path, flags, mode)

    with use_files(NoSnapshot()):
        assert work.cli("apply", "--auto-approve").code == 1  # pool.w[3], pool.w[4] made
    damage(work)  # serial 3; the backup is serial 2 (its write failed too)
    err = refused(work, f"{STATE}.backup (serial 2)", "recorded after serial 2 (on pool.w[")
    assert "pool.w[3]" in err and "pool.w[4]" in err
    assert f"`mv {JOURNAL} {JOURNAL}.saved`" in err
    (work.path / JOURNAL).rename(work.path / f"{JOURNAL}.saved")
    shutil.copyfile(work.path / f"{STATE}.backup", work.path / STATE)
    planned = work.cli("plan", "--format", "json")
    assert planned.code == 0, planned.err
    kinds = {a["address"]: a["action"] for a in planned.json()["actions"]}
    assert kinds.get("pool.w[4]") == "adopt", kinds  # made after the backup
    assert work.cli("apply", "--auto-approve").code == 0
    alive = [n for n in work.cloud().list() if n.status.is_alive]
    assert len(alive) == 5 and len(work.state()["nodes"]) == 5, "no instance leaked"

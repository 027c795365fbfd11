"""Trust no single listing: the eight ways a real cloud misleads a reconciler, on every
provider, through the `navarch` command (issue "Trust no single listing").

Each scenario ends with the cloud counted on its own terms (tests/lagging_clouds.py):
no instance of this workspace leaked (alive but in no record), none duplicated (two
alive for one address), none discarded (every instance a killed run made is alive and
recorded), and `destroy` never exits 0 while an owned instance still runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from tests.conftest import OFFLINE_ENV, OPS_KEY, Result, Workdir, navarch_argv
from tests.lagging_clouds import WINDOW, Adapter, adapter

WS = "lag"
POOL = "w"


class Session:
    def __init__(self, work: Workdir, cloud: Adapter) -> None:
        self.work, self.cloud = work, cloud

    def configure(self, nodes: int = 2, far: int = 0, **provider: Any) -> None:
        pools = {POOL: {"provider": self.cloud.name, "instance_type": self.cloud.instance_type,
                        "nodes": nodes, **self.cloud.location}}
        if far:
            pools["far"] = {"provider": self.cloud.name, "nodes": far,
                            "instance_type": self.cloud.instance_type, **self.cloud.far_location}
        doc = {"version": 1, "workspace": WS,
               "providers": {self.cloud.name: {**self.cloud.provider(), **provider}},
               "defaults": {"ssh_keys": ["ops-team"]}, "pools": pools,
               "ssh_public_keys": {"ops-team": OPS_KEY}}
        self.work.write(json.dumps(doc, indent=1) + "\n")

    def run(self, *args: str) -> Result:
        return self.work.cli(*args, env={**OFFLINE_ENV, **self.cloud.env})

    def ok(self, *args: str) -> Result:
        result = self.run(*args)
        assert result.code == 0, f"navarch {' '.join(args)}: {result.out}\n{result.err}"
        return result

    def plan(self, *args: str) -> dict[str, Any]:
        return json.loads(self.ok("plan", "--format", "json", *args).out)

    def state(self) -> dict[str, Any]:
        return self.work.state(WS)

    def owned(self) -> list[Any]:
        return [i for i in self.cloud.instances()
                if i.alive and i.labels.get("navarch-workspace") == WS]

    def accounted(self, killed_made: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        """0 leaked, 0 duplicated, 0 discarded, counted from the cloud itself."""
        live = {i.id: i for i in self.owned()}
        recorded = {r["id"] for r in self.state()["nodes"].values()}
        per_address = Counter(i.labels.get("navarch-address") for i in live.values())
        assert set(live) - recorded == set(), f"leaked: {set(live) - recorded}"
        assert [a for a, n in per_address.items() if n > 1] == [], f"duplicated: {per_address}"
        assert recorded <= set(live), f"state names gone instances: {recorded - set(live)}"
        assert killed_made <= recorded, f"discarded: {killed_made - recorded}"


CLOUDS = ["fake", "aws", "lambda", "gcp"]
# Clouds whose fakes can report a status word navarch does not know (moto cannot).
WORDY = ["fake", "lambda", "gcp"]
STOPPABLE = ["fake", "aws", "gcp"]  # Lambda has no stopped instances
SCOPED = ["fake", "aws", "gcp"]  # Lambda's listing is one call: it fails whole or not at all
# GCE's reads by name are consistent: only its aggregated list lags.
LAGGING_GETS = {"fake", "aws", "lambda"}


def _session(request: pytest.FixtureRequest, work: Workdir) -> Iterator[Session]:
    with ExitStack() as stack:
        yield from (Session(work, c) for c in adapter(request.param, work, stack, request))


@pytest.fixture(params=CLOUDS)
def s(request: pytest.FixtureRequest, work: Workdir) -> Iterator[Session]:
    yield from _session(request, work)


@pytest.fixture(params=WORDY)
def wordy(request: pytest.FixtureRequest, work: Workdir) -> Iterator[Session]:
    yield from _session(request, work)


@pytest.fixture(params=STOPPABLE)
def stoppable(request: pytest.FixtureRequest, work: Workdir) -> Iterator[Session]:
    yield from _session(request, work)


@pytest.fixture(params=SCOPED)
def scoped(request: pytest.FixtureRequest, work: Workdir) -> Iterator[Session]:
    yield from _session(request, work)


def _hide_all(s: Session, seconds: float) -> None:
    for record in s.state()["nodes"].values():
        s.cloud.hide(record["id"], seconds)


def _actions(plan: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(a["address"], a["action"], a["reason"]) for a in plan["actions"]]


def _unsettled(plan: dict[str, Any]) -> list[tuple[str, str]]:
    return [(u["address"], u["kind"]) for u in plan["unsettled"]]


# 1 and 4: destroy while the new instances are not visible yet -------------------------

def test_destroy_during_lag_terminates_what_it_cannot_see_yet(s: Session) -> None:
    s.configure(nodes=2)
    s.ok("apply", "--auto-approve")
    _hide_all(s, 1.5)  # the listing, lookups and terminates lag, as right after a launch
    plan = s.plan("--destroy")
    assert sorted(_actions(plan)) == [(f"pool.{POOL}[{i}]", "delete", "destroy") for i in (0, 1)]
    if s.cloud.kind in LAGGING_GETS:
        assert all("not listed" in a["detail"] for a in plan["actions"])
    result = s.ok("destroy", "--auto-approve")
    assert "2 destroyed" in result.out
    assert s.owned() == [], "destroy exited 0 while an owned instance runs"
    assert s.state()["nodes"] == {}


# 2: apply twice during lag --------------------------------------------------------------

def test_second_apply_during_lag_launches_nothing(s: Session) -> None:
    s.configure(nodes=2)
    s.ok("apply", "--auto-approve")
    first = {r["id"] for r in s.state()["nodes"].values()}
    _hide_all(s, 1.5)
    plan = s.plan()
    assert plan["actions"] == []
    if s.cloud.kind in LAGGING_GETS:
        assert _unsettled(plan) == [(f"pool.{POOL}[{i}]", "not_yet_visible") for i in (0, 1)]
        assert "cannot be settled yet" in plan["no_changes_reason"]
    else:
        assert plan["unsettled"] == [], "found by id: nothing to wait for"
    again = s.ok("apply", "--auto-approve")
    assert "No changes" in again.out
    time.sleep(1.6)
    assert s.plan()["actions"] == [] and s.plan()["unsettled"] == []
    assert {i.id for i in s.owned()} == first
    s.accounted()


# 3: the node cannot be read back right after its launch ---------------------------------

def test_apply_waits_for_a_new_node_to_become_visible(s: Session) -> None:
    s.cloud.lag_new(1.0)
    s.configure(nodes=2)
    s.ok("apply", "--auto-approve")
    assert len(s.owned()) == 2
    assert sorted(s.state()["nodes"]) == [f"pool.{POOL}[0]", f"pool.{POOL}[1]"]
    s.accounted()


# 5: a lost launch reply, with lag; one empty listing -------------------------------------

def test_a_lost_launch_reply_under_lag_makes_no_duplicate(s: Session) -> None:
    s.cloud.lag_new(1.0)
    s.cloud.lose_next_launch_reply()
    s.configure(nodes=2)
    s.ok("apply", "--auto-approve", "--parallelism", "1")
    assert len(s.owned()) == 2
    s.cloud.reset_faults()
    s.configure(nodes=2)
    assert s.plan()["actions"] == []
    s.accounted()


def test_one_empty_listing_changes_nothing(s: Session) -> None:
    s.configure(nodes=3)
    s.ok("apply", "--auto-approve")
    s.cloud.short_next_listing()
    s.configure(nodes=3)
    plan = s.plan()
    assert plan["actions"] == [] and plan["drift"] == [], "each record was found by id"
    s.cloud.short_next_listing()
    s.configure(nodes=3)
    s.ok("apply", "--auto-approve")
    assert len(s.owned()) == 3
    s.accounted()


# 6: an apply killed while its nodes boot -----------------------------------------------

def test_a_run_killed_while_booting_is_adopted_not_orphaned(s: Session) -> None:
    s.cloud.slow_boot(2.0)  # the apply waits for its nodes to boot: the window to kill in
    s.configure(nodes=2, consistency_window=WINDOW + 2)
    proc = subprocess.Popen([*navarch_argv(), "apply", "--auto-approve"], cwd=s.work.path,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env={**os.environ, **OFFLINE_ENV, **s.cloud.env})
    deadline = time.monotonic() + 30
    while len(s.owned()) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, "never launched"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    made = {i.id for i in s.owned()}
    journal = s.work.path / "state" / f"{WS}.json.journal"
    assert len(made) == 2 and b'"op":"intent"' in journal.read_bytes(), "nothing to settle"
    plan = s.plan()
    assert {a["action"] for a in plan["actions"]} <= {"adopt"}, plan["actions"]
    time.sleep(2.1)
    plan = s.plan()
    assert sorted(_actions(plan)) == [(f"pool.{POOL}[{i}]", "adopt", "interrupted")
                                      for i in (0, 1)]
    assert all("orphan" not in i["outcome"] for i in plan["intents"])
    s.ok("apply", "--auto-approve")
    s.accounted(killed_made=made)
    assert s.state()["intents"] == []


# 7: statuses that are not death --------------------------------------------------------

def _left_alone(s: Session, status: str) -> None:
    s.configure(nodes=2)
    s.ok("apply", "--auto-approve")
    target = s.state()["nodes"][f"pool.{POOL}[1]"]["id"]
    s.cloud.set_status(target, status)
    plan = s.plan()
    assert plan["actions"] == []
    [held] = plan["unsettled"]
    assert (held["address"], held["kind"]) == (f"pool.{POOL}[1]", "held")
    assert status in held["detail"]
    text = s.run("plan").out
    assert f"Left alone this run (each line says why):\n  ? pool.{POOL}[1]: held: " in text
    drift = s.run("drift")
    assert drift.code == 2 and "status_changed" in drift.out and status in drift.out
    replace = s.plan("--replace", f"pool.{POOL}[1]")
    assert _actions(replace) == [(f"pool.{POOL}[1]", "replace", "requested")]
    assert target in {i.id for i in s.owned()}, "nobody terminated it"


def test_a_stopped_node_is_left_alone(stoppable: Session) -> None:
    _left_alone(stoppable, stoppable.cloud.stop_word)


def test_a_status_navarch_does_not_know_is_left_alone(wordy: Session) -> None:
    _left_alone(wordy, wordy.cloud.unknown_word)


# 8: a listing that admits it could not read a region or zone -----------------------------

def test_nodes_in_an_unreadable_place_are_never_recreated(scoped: Session) -> None:
    """The known nodes there are looked up by id (and kept, or unknown if that fails
    too); what state does not know there cannot be seen, so drift cannot say "clean"."""
    s = scoped
    s.configure(nodes=1, far=2)
    s.ok("apply", "--auto-approve")
    before = {i.id for i in s.owned()}
    s.cloud.unreachable(True)
    s.configure(nodes=2, far=2)
    plan = s.plan()
    assert _actions(plan) == [(f"pool.{POOL}[1]", "create", "missing")]
    assert all(kind == "unknown" for _, kind in _unsettled(plan))
    assert plan["unreachable"] == {s.cloud.name: [s.cloud.far_location.get(
        "zone", s.cloud.far_location["region"])]}
    assert any("could not read" in w for w in plan["warnings"])
    assert "could not read" in s.ok("plan").out
    drift = s.run("drift", "--format", "json")
    assert drift.code == 1 and "could not read" in drift.err, drift
    assert json.loads(drift.out)["complete"] is False
    s.ok("apply", "--auto-approve")
    s.cloud.unreachable(False)
    s.configure(nodes=2, far=2)
    assert s.plan()["actions"] == []
    assert before <= {i.id for i in s.owned()}
    assert s.run("drift").code == 0
    s.accounted()


# Bad input ------------------------------------------------------------------------------

def test_not_found_forever_is_gone_once_the_window_has_passed(work: Workdir) -> None:
    """A node deleted outside navarch right after its launch: not yet visible while the
    window lasts (nothing is done), then gone, with how long after launch that was."""
    work.config(pools={POOL: {"nodes": 1}}, workspace=WS,
                sim={"consistency_window": 1.5})
    assert work.cli("apply", "--auto-approve").code == 0
    [record] = work.state(WS)["nodes"].values()
    work.cloud().terminate(record["id"])
    early = json.loads(work.cli("plan", "--format", "json").out)
    assert early["actions"] == [] and early["drift"] == []
    assert _unsettled(early) == [(f"pool.{POOL}[0]", "not_yet_visible")]
    time.sleep(1.6)
    late = json.loads(work.cli("plan", "--format", "json").out)
    assert _actions(late) == [(f"pool.{POOL}[0]", "create", "deleted_outside")]
    [drift] = late["drift"]
    assert drift["kind"] == "deleted_outside"
    assert "confirmed by id that it does not exist" in drift["detail"]
    assert "s after launch, past the 2s consistency window" in drift["detail"]


def test_a_listing_item_without_an_id_is_one_clear_error(work: Workdir) -> None:
    from tests.fakes.lambda_server import FakeLambda, serve

    fake = FakeLambda(api_key="sk-bad-listing")
    with serve(fake) as url:
        fake.inject(200, method="GET", path="/instances", times=50,
                    body={"data": [{"status": "active", "name": "no-id"}]})
        work.write(json.dumps({
            "version": 1, "workspace": WS,
            "providers": {"lam": {"type": "lambda", "api_key_env": "BAD_LISTING_KEY",
                                  "base_url": url, "retry": {"base_delay": 0.01}}},
            "defaults": {"ssh_keys": ["ops-team"]},
            "pools": {POOL: {"provider": "lam", "instance_type": "gpu_1x_a10",
                             "region": "us-east-1", "nodes": 1}}}))
        result = work.cli("plan", env={**OFFLINE_ENV, "BAD_LISTING_KEY": "sk-bad-listing"})
    assert result.code == 1
    errors = [line for line in result.err.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: lam: an instance in the reply has no id (bad-response)"], \
        result.err  # the notes before it are the retries of the listing
    assert "Traceback" not in result.err
    assert not (work.path / "state" / f"{WS}.json").exists(), "nothing written"


def test_destroy_never_exits_0_while_a_node_cannot_be_seen(work: Workdir) -> None:
    """Its region unreadable and its lookup failing: destroy removes what it can, and
    exits 1 naming what it could not settle; the next destroy, with the cloud back,
    finishes."""
    work.config(pools={"near": {"nodes": 1}, "far": {"nodes": 1, "region": "us-east-1"}},
                workspace=WS, sim={"retry": {"base_delay": 0.01}})
    assert work.cli("apply", "--auto-approve").code == 0
    outage = [{"op": "list", "unreachable": ["us-east-1"]},
              *[{"op": "get", "error": "transient"}] * 8]
    work.config(pools={"near": {"nodes": 1}, "far": {"nodes": 1, "region": "us-east-1"}},
                workspace=WS, sim={"retry": {"base_delay": 0.01}, "faults": outage})
    result = work.cli("destroy", "--auto-approve")
    assert result.code == 1, result.out + result.err
    assert "destroy is not finished" in result.err and "pool.far[0]" in result.err
    far = work.state(WS)["nodes"]["pool.far[0]"]["id"]
    assert [n.id for n in work.cloud().list()] == [far], "near went, far is still there"
    work.config(pools={"near": {"nodes": 1}, "far": {"nodes": 1, "region": "us-east-1"}},
                workspace=WS)
    assert work.cli("destroy", "--auto-approve").code == 0
    assert work.cloud().list() == []

"""Kill -9 harness: runs the real `navarch apply --auto-approve` against a persistent fake
cloud with latency and SIGKILLs it at seeded moments, then checks what a user relies on.

After every kill:
- `navarch plan --format json` succeeds (the dead apply's lock is taken over) and shows
  exactly the actions an independent model derives from the config, the state files
  (snapshot + journal, replayed here without navarch's code) and the cloud's own table;
- the plan reports every interrupted provision with the right outcome.
At the end of every chain of kills, `navarch apply` converges: one owned live instance per
desired address, state ids == owned live ids, no intents, nothing deposed, references
rendered with the current values, a foreign instance never touched, the next plan empty.

Kill moments ("strategies"): `random` (a seeded fraction of the expected run time) and
windows targeted by watching the cloud, the journal and the output:
- `refresh`: during the plan's listing, before any intent (a slow `list` reply);
- `intent`: right after the k-th intent reaches the journal (the Provision in flight);
- `created`: the cloud created the instance, navarch has not heard yet (a slow reply);
- `terminated`: the cloud terminated an instance, navarch has not heard yet;
- `finish`: right after the last action was reported: during the final state write.
Shared by tests/test_crash_kill.py and benchmarks/crash_soak.py (which only counts).
The killed applies are always `navarch` processes of their own; the plans and applies
that check them run the command's main() in-process (Workdir.cli) on the main thread,
and as processes of their own from the soak's worker threads.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from navarch_plan.engine import load_config
from navarch_plan.model import ProvisionRequest, address_from_label
from navarch_plan.planner.references import topological
from tests.conftest import FAST_RETRY, Workdir, navarch_argv

WS = "test"
LATENCY = 0.1
PARALLELISM = 3
HEAD_REF = "HEAD=${pools.head.nodes[0].ip_address}\n"
_SETTLED = ("apply_complete", "apply_errored", "apply_skipped")
STRATEGIES = ("random", "refresh", "intent", "created", "terminated", "finish")


@dataclass(frozen=True)
class Scenario:
    name: str
    during: dict[str, Any]  # pools (and "nodes") of the config whose applies get killed
    before: dict[str, Any] | None = None  # applied to convergence first
    strategies: tuple[str, ...] = STRATEGIES


def _pools(**pools: dict[str, Any]) -> dict[str, Any]:
    return pools


SCENARIOS = {s.name: s for s in (
    Scenario("fleet", _pools(w={"nodes": 6}),
             strategies=("random", "refresh", "intent", "created", "finish")),
    Scenario("deps", _pools(
        head={"nodes": 1},
        trainers={"nodes": 3, "user_data": HEAD_REF, "depends_on": ["head"]},
        eval={"nodes": 2, "depends_on": ["trainers"],
              "user_data": "T0=${pools.trainers.nodes[0].name}"}),
        strategies=("random", "refresh", "intent", "created", "finish")),
    Scenario("replace-cbd",
             _pools(head={"nodes": 1, "instance_type": "gpu_1x_a100"},
                    trainers={"nodes": 3, "user_data": HEAD_REF}),
             before=_pools(head={"nodes": 1}, trainers={"nodes": 3, "user_data": HEAD_REF})),
    Scenario("replace-dbc",
             _pools(w={"nodes": 4, "instance_type": "gpu_1x_a100",
                       "lifecycle": {"replace": "destroy_before_create"},
                       "max_parallel_terminations": 2}),
             before=_pools(w={"nodes": 4})),
    Scenario("scale-down", _pools(w={"nodes": 2}),
             before=_pools(w={"nodes": 6}, old={"nodes": 2}),
             strategies=("random", "terminated", "finish")),
    Scenario("mixed",
             {**_pools(head={"nodes": 1, "instance_type": "gpu_1x_a100"},
                       trainers={"nodes": 4, "user_data": HEAD_REF}),
              "nodes": {"box": {"user_data": "H=${pools.head.nodes[0].name}"}}},
             before=_pools(head={"nodes": 1}, trainers={"nodes": 2, "user_data": HEAD_REF},
                           old={"nodes": 2})),
)}


@dataclass
class Stats:
    kills: int = 0
    missed: int = 0  # the process had finished before the kill
    chains: int = 0
    leaked: int = 0
    duplicates: int = 0
    discarded: int = 0  # instances a killed run made, fitting, that a plan then deleted
    by_strategy: Counter[str] = field(default_factory=Counter)
    landed: Counter[str] = field(default_factory=Counter)  # where kills landed
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def merge(self, other: Stats) -> None:
        for name in ("kills", "missed", "chains", "leaked", "duplicates", "discarded",
                     "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.by_strategy += other.by_strategy
        self.landed += other.landed
        self.problems += other.problems


# -- reading what is on disk and in the cloud, without navarch's code ---------------------

def read_state(work: Workdir) -> dict[str, Any]:
    """Snapshot with the journal replayed over it, as docs/state.md describes."""
    path = work.path / "state" / f"{WS}.json"
    doc: dict[str, Any] = {"serial": 0, "nodes": {}, "deposed": {}, "intents": []}
    if path.exists():
        doc = json.loads(path.read_bytes())  # never torn: written by atomic rename
    intents = {i["id"]: i for i in doc.get("intents", [])}
    nodes, deposed = dict(doc["nodes"]), dict(doc.get("deposed", {}))
    journal = Path(str(path) + ".journal")
    lines = journal.read_bytes().split(b"\n")[:-1] if journal.exists() else []
    ops = [json.loads(line) for line in lines]  # a torn last line has no newline: dropped
    if ops and ops[0]["serial"] == doc["serial"]:
        for op in ops[1:]:
            kind = op["op"]
            if kind == "intent":
                intents[op["intent"]["id"]] = op["intent"]
            elif kind == "intent_done":
                intents.pop(op["id"], None)
            elif kind == "identity":
                doc["fingerprint_key"] = op["fingerprint_key"]
            elif kind == "intent_launched":
                if op["id"] in intents:
                    intents[op["id"]] = {**intents[op["id"]], "node_id": op["node_id"]}
            elif kind == "put":
                nodes[op["address"]] = op["record"]
            elif kind == "remove":
                nodes.pop(op["address"], None)
            elif kind == "depose":
                record = nodes.pop(op["address"], None)
                if record:
                    deposed[record["id"]] = record
            elif kind == "forget_deposed":
                deposed.pop(op["id"], None)
            else:
                raise AssertionError(f"unknown journal op {kind}")
    return {"nodes": nodes, "deposed": deposed, "intents": list(intents.values()),
            "fingerprint_key": doc.get("fingerprint_key", "")}


def keyed_config(work: Workdir, state: dict[str, Any] | None = None) -> Any:
    """The config as navarch plans it against this state: its fingerprints keyed by the
    state's key (the spec hashes on the instances' labels are)."""
    state = state if state is not None else read_state(work)
    return load_config(str(work.path / "navarch.yaml"), env={}).keyed(
        state["fingerprint_key"])


@dataclass(frozen=True)
class LiveNode:
    id: str
    name: str
    provider: str
    region: str
    zone: str
    status: str
    ip_address: str
    labels: dict[str, str]
    user_data: str


class CloudView:
    """The fake cloud's own table, read-only: no call log entries, no write locks."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if not os.path.exists(self.path):
            return []
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        try:
            return db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []  # navarch is creating the cloud file this very moment
            raise
        finally:
            db.close()

    def nodes(self) -> dict[str, LiveNode]:
        rows = self._query("SELECT id, name, region, zone, status, ip, labels, ready_at,"
                           " user_data FROM instances WHERE deleted = 0")
        now = time.time()
        return {r[0]: LiveNode(r[0], r[1], "sim", r[2], r[3],
                               "running" if r[4] == "provisioning" and now >= r[7] else r[4],
                               r[5], json.loads(r[6]), r[8]) for r in rows}

    def owned(self) -> dict[str, LiveNode]:
        return {i: n for i, n in self.nodes().items()
                if n.labels.get("navarch-workspace") == WS}

    def list_calls_by(self, pid: int) -> int:
        rows = self._query("SELECT COUNT(*) FROM calls WHERE op = 'list' AND pid = ?", (pid,))
        return rows[0][0] if rows else 0


def expected_actions(work: Workdir, state: dict[str, Any],
                     live: dict[str, Any]) -> dict[str, tuple[str, str, str, str]]:
    """What docs/planning.md's tables say the plan must hold: key -> (address, action,
    reason, node id acted on). The fake cloud here has no lag (a consistency window of
    0: absence is final at once) and honours idempotency keys."""
    config = keyed_config(work, state)
    desired, groups = config.desired, config.groups
    acts: dict[str, tuple[str, str, str, str]] = {}
    filled: set[str] = set()
    spares: dict[str, str] = {}  # address -> instance an interrupted launch made
    pending, claimed = _intents_by_address(state, live)
    for address in dict.fromkeys([*state["nodes"], *pending]):
        rec, want = state["nodes"].get(address), desired.get(address)
        found, resume = pending.get(address, ([], None))
        fit = None
        for node in found:
            if fit is None and want is not None and _fits(node, want):
                fit = node
            else:
                reason = _delete_reason(address, groups) if want is None else "spec_changed"
                acts[f"{address}#{node.id}"] = (address, "delete", reason, node.id)
        gone = rec is not None and rec["id"] not in live
        stale = rec is not None and want is not None and rec["spec_hash"] != want.spec_hash
        if fit is not None:
            filled.add(address)
            if rec is None or gone:
                acts[address] = (address, "adopt", "interrupted", fit.id)
            elif stale:
                acts[address] = (address, "replace", "spec_changed", rec["id"])
            else:
                spares[address] = fit.id
            continue
        if resume is not None and want is not None and resume["instance_type"] == \
                want.instance_type and (rec is None or gone or stale):
            filled.add(address)
            acts[address] = ((address, "create", "missing" if rec is None else
                              "deleted_outside", "") if rec is None or gone
                             else (address, "replace", "spec_changed", rec["id"]))
            continue
        if rec is None:
            continue
        if gone:
            acts[address] = ((address, "create", "deleted_outside", "") if want
                             else (address, "forget", "deleted_outside", rec["id"]))
        elif want is None:
            acts[address] = (address, "delete", _delete_reason(address, groups), rec["id"])
        else:
            filled.add(address)
            if stale:
                acts[address] = (address, "replace", "spec_changed", rec["id"])
    for node_id, rec in state["deposed"].items():
        address = next((a for a, r in state["nodes"].items() if r["id"] == node_id), "") \
            or address_from_label(rec["labels"].get("navarch-address", "")) or "?"
        acts[f"{address}#{node_id}"] = (address, "delete" if node_id in live else "forget",
                                        "deposed", node_id)
    known = {r["id"] for r in state["nodes"].values()} | set(state["deposed"]) | claimed
    for node in sorted(live.values(), key=lambda n: (n.provider, n.name, n.id)):
        if node.id in known:
            continue
        address = address_from_label(node.labels.get("navarch-address", "")) or f"?{node.id}"
        want = desired.get(address)
        if (want is not None and address not in filled
                and node.status in ("running", "provisioning") and _fits(node, want)):
            filled.add(address)
            acts[address] = (address, "adopt", "orphan_matches", node.id)
        else:
            acts[f"{address}#{node.id}"] = (address, "delete", "orphan", node.id)
    for address in desired:
        if address not in filled and address not in acts:
            acts[address] = (address, "create", "missing", "")
    _reference_pass(groups, desired, state, live, acts, spares)
    return acts


def _intents_by_address(state: dict[str, Any], live: dict[str, Any]
                        ) -> tuple[dict[str, tuple[list[Any], Any]], set[str]]:
    """Each address's interrupted launches: the instances they made (found by the id
    the launch returned, else by name), and one to re-send (the fake is idempotent);
    with no lag, any other is proven to have made nothing."""
    pending: dict[str, tuple[list[Any], Any]] = {}
    claimed: set[str] = set()
    for intent in state["intents"]:
        found, resume = pending.get(intent["address"], ([], None))
        node = (live.get(intent["node_id"]) if intent.get("node_id") else
                next((n for n in sorted(live.values(), key=lambda n: n.id)
                      if n.name == intent["name"]), None))
        if node is not None:
            found = [*found, node]
            claimed.add(node.id)
        elif not intent.get("node_id") and intent.get("instance_type") and resume is None:
            resume = intent
        pending[intent["address"]] = (found, resume)
    return pending, claimed


def _fits(node: Any, want: Any) -> bool:
    return node.labels.get("navarch-spec") == want.spec_hash


def _delete_reason(address: str, groups: Any) -> str:
    group = groups.get(address.split(".")[1].split("[")[0])
    index = int(address.split("[")[1][:-1]) if "[" in address else None
    return ("scaled_down" if group and group.kind == "pool" and index is not None
            and index >= group.count else "not_in_config")


def _reference_pass(groups: Any, desired: Any, state: dict[str, Any], live: dict[str, Any],
                    acts: dict[str, tuple[str, str, str, str]], spares: dict[str, str]) -> None:
    """Nodes whose references change are replaced, in dependency order; a spare (an
    interrupted apply's instance) serves as the replacement when its values are current,
    and is deleted otherwise."""
    for group in topological(groups):
        for want in desired.values():
            if want.group != group or not want.refs:
                continue
            if want.address in acts:
                _unadopt_if_stale(want, acts)
                continue
            rec = state["nodes"].get(want.address)
            if rec is None or rec["id"] not in live or not any(
                    _ref_changes(r, rec, acts, state, live) for r in want.refs):
                continue
            spare = spares.pop(want.address, None)
            if spare is not None and _rebuilding(want, acts):
                acts[f"{want.address}#{spare}"] = (want.address, "delete", "interrupted", spare)
            acts[want.address] = (want.address, "replace", "dependency_changed", rec["id"])
    for address, spare in spares.items():
        acts[f"{address}#{spare}"] = (address, "delete", "interrupted", spare)


def _rebuilding(want: Any, acts: dict[str, tuple[str, str, str, str]]) -> bool:
    return any(acts.get(r.address, ("", "", "", ""))[1] in ("create", "replace")
               for r in want.refs)


def _unadopt_if_stale(want: Any, acts: dict[str, tuple[str, str, str, str]]) -> None:
    """An orphan booted with the values its references had then: when a node it refers
    to is rebuilt now, adopting it would record values it never saw, so it is deleted and
    the address created afresh (the planner fix proposed with the kill suite)."""
    _, kind, reason, node_id = acts[want.address]
    if kind == "adopt" and _rebuilding(want, acts):
        gone_reason = "interrupted" if reason == "interrupted" else "orphan"
        acts[f"{want.address}#{node_id}"] = (want.address, "delete", gone_reason, node_id)
        acts[want.address] = (want.address, "create", "dependency_changed", "")


def _ref_changes(ref: Any, rec: dict[str, Any], acts: dict[str, tuple[str, str, str, str]],
                 state: dict[str, Any], live: dict[str, Any]) -> bool:
    target = acts.get(ref.address)
    if target is not None and target[1] in ("create", "replace"):
        return True
    if target is not None and target[1] == "adopt":
        current = str(getattr(live[target[3]], ref.field))
    else:
        record = state["nodes"].get(ref.address)
        current = str(record[ref.field]) if record else ""
    return rec.get("ref_values", {}).get(ref.text) != current


# -- one scenario: chains of killed applies, each chain ending in convergence -------------

class CrashRun:
    def __init__(self, work: Workdir, scenario: Scenario, seed: int,
                 change_config: float = 0.0, lag: float = 0.0) -> None:
        self.work, self.scenario = work, scenario
        # With lag, new instances stay invisible to navarch (list, get and terminate) for
        # that long: plans are then checked for what must never happen (a launch beside
        # a fitting instance, a delete of one a killed run made) instead of exactly.
        self.lag = lag
        self.window = 3 * lag + 1
        self.made: set[str] = set()  # instances killed runs made
        self.change_config = change_config  # chance that the config changes after a kill
        self.rng = random.Random(seed)
        self.stats = Stats()
        self.view = CloudView(work.cloud_path)
        self.foreign = ""
        self.target: dict[str, Any] = scenario.during
        self._turns: list[str] = []
        self._faults: list[dict[str, Any]] = []
        self._tmp_before: set[str] = set()
        self.where = f"{scenario.name}/seed={seed}"

    def next_strategy(self) -> str:
        """Every strategy in turn, in a seeded order; `random` twice as often."""
        if not self._turns:
            self._turns = [*self.scenario.strategies, "random"]
            self.rng.shuffle(self._turns)
        return self._turns.pop()

    def problem(self, text: str) -> None:
        self.stats.problems.append(f"{self.where}: {text}")

    # config -------------------------------------------------------------------------
    def configure(self, pools: dict[str, Any], faults: list[dict[str, Any]] = ()) -> None:
        pools = dict(pools)
        nodes = pools.pop("nodes", None)
        sim: dict[str, Any] = {"latency": LATENCY, "retry": FAST_RETRY}
        if self.lag:
            sim.update(visibility_lag=self.lag, consistency_window=self.window)
        if faults:
            sim["faults"] = list(faults)
        self.work.config(pools=pools or None, nodes=nodes, workspace=WS, sim=sim)

    def setup(self) -> bool:
        # Someone else's instance, labelled like ours but for another workspace.
        self.foreign = self.work.cloud().provision(ProvisionRequest(
            "other-w-0-abcd", "gpu_1x_a10", "us-west-1",
            labels={"navarch-workspace": "other", "navarch-address": "p_w_0"})).id
        if self.scenario.before:
            self.configure(self.scenario.before)
            done = self.work.cli("apply", "--auto-approve", "--parallelism", "10")
            if done.code != 0:
                self.problem(f"setup apply failed: {done.err or done.out}")
                return False
        return True

    # a chain ---------------------------------------------------------------------------
    def chain(self, max_kills: int) -> int:
        """Kill applies towards the next target config (the scenario's `during`, then back
        to `before`, and so on) until the chain ends, then converge; returns the kills."""
        self.stats.chains += 1
        self.target = (self.scenario.during if self.stats.chains % 2
                       else self.scenario.before or {})
        self.configure(self.target)
        kills = 0
        while kills < max_kills:
            if not self.killed_apply(self.next_strategy()):
                break  # it finished first (or had nothing to do): check that it converged
            kills += 1
            if self.rng.random() < self.change_config:
                # The user pushes another config before running again: aim elsewhere.
                self.target = (self.scenario.before or {}) if self.target is \
                    self.scenario.during else self.scenario.during
                self.configure(self.target)
            self.check_plan()
            if self.rng.random() < 0.3:
                break
        self.converge()
        return kills

    def killed_apply(self, strategy: str) -> bool:
        expected = expected_actions(self.work, read_state(self.work), self.view.owned())
        if not expected:
            return False
        builds = sorted(a for a, kind, _, _ in expected.values()
                        if kind in ("create", "replace"))
        destroys = [node_id for _, kind, _, node_id in expected.values()
                    if kind in ("delete", "replace")]
        faults: list[dict[str, Any]] = []
        if strategy == "refresh":
            faults = [{"op": "list", "delay": 2.0}]
        elif strategy == "created" and builds:
            target = self.rng.choice(builds)
            faults = [{"op": "provision", "delay": 2.0, "address": _label(target)}]
        elif strategy == "terminated" and destroys:
            faults = [{"op": "terminate", "delay": 2.0}]
        elif strategy in ("created", "terminated"):
            strategy = "random"
        self.configure(self.target, faults)
        self._faults = faults
        before_ids = set(self.view.owned())
        serial = self._serial()
        self._tmp_before = self._tmp_files()
        proc = subprocess.Popen(
            [*navarch_argv(), "apply", "--auto-approve", "--json",
             "--parallelism", str(PARALLELISM)],
            cwd=self.work.path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        out: list[str] = []
        reader = threading.Thread(target=_drain, args=(proc, out), daemon=True)
        reader.start()
        try:
            fired = self._wait_for(strategy, proc, out, expected, builds, before_ids)
            if fired and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(timeout=5)
        self.configure(self.target)  # the faults were for that run only
        landed = self._landed(serial) if proc.returncode == -signal.SIGKILL else ""
        if landed == "after the run (exiting)":
            self.stats.missed += 1  # a kill, but not one that could hurt: not counted
            return False
        if proc.returncode != -signal.SIGKILL:
            self.stats.missed += 1
            if proc.returncode not in (0,):
                self.problem(f"unkilled apply ({strategy}) exited {proc.returncode}: "
                             + "".join(out)[-500:])
            return False
        self.stats.kills += 1
        self.made |= set(self.view.owned()) - before_ids
        self.stats.by_strategy[strategy] += 1
        self.stats.landed[landed] += 1
        if self.rng.random() < 0.15:
            self._tear_journal()
        return True

    def _wait_for(self, strategy: str, proc: subprocess.Popen[str], out: list[str],
                  expected: dict[str, Any], builds: list[str], before_ids: set[str]) -> bool:
        n_builds, n_actions = len(builds), len(expected)
        watch = next((f["address"] for f in self._faults if "address" in f), "")
        if strategy == "random":
            # A seeded fraction of the expected run time, counted from the plan's listing
            # (the start-up before it depends on how loaded the machine is).
            deadline = time.monotonic() + 30
            while (proc.poll() is None and time.monotonic() < deadline
                   and self.view.list_calls_by(proc.pid) == 0):
                time.sleep(0.004)
            time.sleep(self.rng.uniform(0, LATENCY * (1 + 2 * n_actions / PARALLELISM)))
            return True
        journal = self.work.path / "state" / f"{WS}.json.journal"
        nth = self.rng.randint(1, max(1, n_builds))
        jitter = self.rng.uniform(0, 0.006)
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            if strategy == "refresh":
                hit = self.view.list_calls_by(proc.pid) > 0
            elif strategy == "intent":
                hit = journal.exists() and journal.read_bytes().count(b'"op":"intent"') >= nth
            elif strategy == "created":
                hit = any(n.labels.get("navarch-address") == watch
                          for i, n in self.view.owned().items() if i not in before_ids)
            elif strategy == "terminated":
                hit = bool(before_ids - set(self.view.owned()))
            else:  # finish: every action reported done, failed or skipped
                hit = sum(any(f'"type": "{kind}"' in line for kind in _SETTLED)
                          for line in list(out)) >= n_actions
            if hit:
                if strategy == "finish":
                    time.sleep(jitter)
                return True
            time.sleep(0.001 if strategy == "finish" else 0.004)
        return False

    def _serial(self) -> int:
        path = self.work.path / "state" / f"{WS}.json"
        return json.loads(path.read_bytes())["serial"] if path.exists() else 0

    def _tmp_files(self) -> set[str]:
        return {p.name for p in (self.work.path / "state").glob(f"{WS}.json.tmp.*")}

    def _landed(self, serial_before: int) -> str:
        state_dir = self.work.path / "state"
        files = {p.name for p in state_dir.iterdir()}
        if self._tmp_files() - self._tmp_before:
            return "mid snapshot write (temporary file left behind)"
        if f"{WS}.json.journal" not in files:
            if self._serial() == serial_before:
                return "before any state write"
            return ("state saved, lock still held" if f"{WS}.json.lock" in files
                    else "after the run (exiting)")
        if self._serial() != serial_before:
            return "snapshot renamed, journal not yet removed"
        state = read_state(self.work)
        live = self.view.owned()
        if state["intents"]:
            named = {n.name for n in live.values()}
            if any(i["name"] in named for i in state["intents"]):
                return "provisioned, not recorded"
            return "intent written, nothing provisioned"
        recorded = {r["id"] for r in state["nodes"].values()} | set(state["deposed"])
        if recorded - set(live):
            return "terminated, not recorded"
        return "between actions"

    def _tear_journal(self) -> None:
        """A write torn mid-line (power loss rather than kill): must be ignored."""
        journal = self.work.path / "state" / f"{WS}.json.journal"
        if journal.exists():
            with open(journal, "ab") as f:
                f.write(b'{"op":"put","address":"pool.w[9')
            self.stats.landed["(torn journal line added)"] += 1

    # checks ------------------------------------------------------------------------------
    def check_plan(self) -> None:
        state = read_state(self.work)
        live = self.view.owned()
        result = self.work.cli("plan", "--format", "json")
        if result.code != 0:
            self.problem(f"plan after a kill exited {result.code}: {result.err.strip()}")
            return
        if (self.work.path / "state" / f"{WS}.json.lock").exists():
            self.problem("plan left the lock file behind")
        plan = result.json()
        if self.lag:
            self._check_plan_under_lag(plan, live)
            return
        want = expected_actions(self.work, state, live)
        if os.environ.get("CRASH_DEBUG"):
            print(self.where, "want", sorted(want.values()))
        got = {a["key"]: (a["address"], a["action"], a["reason"], a["node_id"] or "")
               for a in plan["actions"]}
        if got != want:
            missing = sorted(set(want.values()) - set(got.values()))
            extra = sorted(set(got.values()) - set(want.values()))
            self.problem(f"plan after a kill: expected but missing {missing}; unexpected "
                         f"{extra}")
        names = {n.name for n in live.values()}
        outcomes = {i["name"]: i["outcome"] for i in plan["intents"]}
        for intent in state["intents"]:
            outcome = outcomes.get(intent["name"], "")
            exists = intent["name"] in names
            if exists != ("exists" in outcome):
                self.problem(f"intent {intent['name']}: outcome {outcome!r}, instance "
                             f"exists: {exists}")

    def _check_plan_under_lag(self, plan: dict[str, Any], live: dict[str, LiveNode]) -> None:
        """What lag must never cause: a launch at an address where a fitting instance
        already exists (a duplicate in the making), or the delete of a fitting instance
        a killed run made (a discarded GPU); references being rebuilt excuse both."""
        config = keyed_config(self.work)
        acts = {a["address"]: a for a in plan["actions"] if a["key"] == a["address"]}
        deleted = {a["node_id"] for a in plan["actions"] if a["action"] == "delete"}
        for node in live.values():
            address = address_from_label(node.labels.get("navarch-address", "")) or ""
            want = config.desired.get(address)
            if want is None or node.labels.get("navarch-spec") != want.spec_hash:
                continue
            act = acts.get(address, {})
            rebuilt = act.get("reason") == "dependency_changed"
            # A create that re-sends an interrupted launch (same name and key) gets the
            # original instance back from the cloud: no duplicate in the making.
            resent = bool(act.get("intent_id"))
            if act.get("action") == "create" and node.id not in deleted and not rebuilt \
                    and not resent:
                self.problem(f"plan launches {address} beside fitting {node.id}")
            replaced = any(a["node_id"] == node.id and a["reason"] == "deposed"
                           for a in plan["actions"])  # a newer node took its place
            if node.id in deleted and node.id in self.made and not rebuilt and not replaced:
                self.stats.discarded += 1
                why = next(f"{a['key']} {a['reason']}" for a in plan["actions"]
                           if a["action"] == "delete" and a["node_id"] == node.id)
                self.problem(f"plan deletes {node.id}, made for {address} by a killed run "
                             f"({why}; {address}: {act.get('action')} {act.get('reason')})")

    def converge(self) -> None:
        if self.lag:
            # Past the consistency window: every instance is visible, and an interrupted
            # launch that made nothing is proven to have made nothing.
            time.sleep(self.window + 0.2)
        result = self.work.cli("apply", "--auto-approve", "--parallelism", "10")
        if result.code != 0:
            self.problem(f"apply after kills exited {result.code}: "
                         f"{(result.err or result.out).strip()[-600:]}")
        state = read_state(self.work)
        config = keyed_config(self.work, state)
        live = self.view.owned()
        per_address = Counter(n.labels.get("navarch-address") for n in live.values())
        duplicates = sum(c - 1 for c in per_address.values() if c > 1)
        tracked = {r["id"] for r in state["nodes"].values()}
        leaked = len(set(live) - tracked)
        self.stats.duplicates += duplicates
        self.stats.leaked += leaked
        if duplicates or leaked:
            self.problem(f"{leaked} leaked, {duplicates} duplicated: {dict(per_address)}")
        if tracked - set(live):
            self.problem(f"state names instances that do not exist: {tracked - set(live)}")
        if sorted(state["nodes"]) != sorted(config.desired):
            self.problem(f"state addresses {sorted(state['nodes'])} != desired")
        if state["intents"] or state["deposed"]:
            self.problem(f"left in state: intents {state['intents']}, deposed "
                         f"{list(state['deposed'])}")
        for address, want in config.desired.items():
            record = state["nodes"].get(address)
            if record is None or record["id"] not in live:
                continue
            node = live[record["id"]]
            if node.labels.get("navarch-spec") != want.spec_hash:
                self.problem(f"{address} runs spec {node.labels.get('navarch-spec')}, "
                             f"desired {want.spec_hash}")
            if want.refs:
                values = {r.text: str(state["nodes"][r.address][r.field]) for r in want.refs}
                rendered = want.user_data
                for text, value in values.items():
                    rendered = rendered.replace(text, value)
                if node.user_data != rendered:
                    self.problem(f"{address} booted with {node.user_data!r}, "
                                 f"but its references now say {rendered!r}")
        if self.foreign not in self.view.nodes():
            self.problem("the foreign workspace's instance was terminated")
        again = self.work.cli("plan", "--detailed-exitcode")
        if again.code != 0:
            self.problem(f"plan after convergence exited {again.code}: {again.out[-400:]}")
        leftovers = [p.name for p in (self.work.path / "state").iterdir()
                     if p.name.endswith((".lock", ".journal"))]
        if leftovers:
            self.problem(f"left behind after convergence: {leftovers}")


def _label(address: str) -> str:
    from navarch_plan.model import address_to_label

    return address_to_label(address)


def _drain(proc: subprocess.Popen[str], out: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        out.append(line)


def run_scenario(work: Workdir, scenario: Scenario, seed: int, kills: int,
                 chain_max: int = 3, change_config: float = 0.0, lag: float = 0.0, *,
                 until: Callable[[Stats], bool] | None = None) -> Stats:
    """Chains of kills on one scenario until `kills` kills were made (or attempts ran
    out); every chain ends in a converging apply. With `until`, the chains go on past
    `kills` until it holds for the stats so far (within the same bound on attempts)."""
    started = time.monotonic()
    run = CrashRun(work, scenario, seed, change_config, lag)

    def wanted() -> int:
        if until is not None and not until(run.stats):
            return max(1, kills - run.stats.kills)
        return kills - run.stats.kills

    if run.setup():
        attempts, limit = 0, 4 * max(kills, len(scenario.strategies) + 1)
        while wanted() > 0 and attempts < limit:
            attempts += 1
            run.chain(min(chain_max, wanted()))
            if run.stats.problems:
                break
    run.stats.seconds = time.monotonic() - started
    return run.stats

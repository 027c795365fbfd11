"""A saved plan can only do what the config allows: edited plans with a recomputed
checksum (which anyone can recompute) are refused by `navarch apply PLANFILE`, and
nothing is touched."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from navarch_plan.plan import checksum_of
from tests.conftest import Workdir


def _saved(work: Workdir, lifecycle: dict[str, Any]) -> dict[str, Any]:
    work.config(pools={"w": {"nodes": 2, "lifecycle": lifecycle}})
    assert work.cli("apply", "--auto-approve").code == 0
    work.config(pools={"w": {"nodes": 3, "lifecycle": lifecycle}})
    assert work.cli("plan", "--out", "p.plan").code == 0
    return json.loads((work.path / "p.plan").read_text())


def _forge(work: Workdir, plan: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> None:
    change(plan)
    body = {k: v for k, v in plan.items() if k != "checksum"}
    plan["checksum"] = checksum_of(body)
    (work.path / "p.plan").write_text(json.dumps(plan))


def _delete_of(work: Workdir, address: str, key: str | None = None) -> Callable[[dict], None]:
    node_id = work.state()["nodes"][address]["id"]

    def change(plan: dict[str, Any]) -> None:
        plan["actions"].append({**plan["actions"][0], "key": key or address,
                                "address": address, "action": "delete", "reason": "orphan",
                                "node_id": node_id, "candidates": []})
    return change


@pytest.mark.parametrize(("lifecycle", "key", "said"), [
    ({"prevent_destroy": True}, None, "prevent_destroy"),
    ({}, None, "which navarch.yaml desires"),
    ({}, "pool.w[0]#x", "which navarch.yaml desires"),  # dressed up as an orphan delete
])
def test_an_edited_plan_that_deletes_a_desired_node_is_refused(
        work: Workdir, lifecycle: dict[str, Any], key: str | None, said: str) -> None:
    plan = _saved(work, lifecycle)
    _forge(work, plan, _delete_of(work, "pool.w[0]", key))
    before = {n.id for n in work.cloud().list()}
    assert "delete" in work.cli("show", "p.plan").out
    result = work.cli("apply", "p.plan")
    assert result.code == 1 and said in result.err, result.err
    assert {n.id for n in work.cloud().list()} == before, "nothing was touched"


def test_an_edited_replace_of_another_addresses_node_is_refused(work: Workdir) -> None:
    plan = _saved(work, {})
    other = work.state()["nodes"]["pool.w[1]"]["id"]

    def change(p: dict[str, Any]) -> None:
        p["actions"] = [{**p["actions"][0], "action": "replace", "reason": "requested",
                         "address": "pool.w[0]", "key": "pool.w[0]", "node_id": other}]
    _forge(work, plan, change)
    result = work.cli("apply", "p.plan")
    assert result.code == 1 and "which state does not hold at pool.w[0]" in result.err

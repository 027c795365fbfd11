"""The shortcuts a large plan takes give exactly what the long way gives: the planner's
check for an unchanged node, DesiredNode's shared per-pool specs (keyed, at), the
record decoding, and the lookups of ids the listings missed."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from navarch_plan.config.desired import DesiredNode
from navarch_plan.model import Listing, Node, NodeStatus
from navarch_plan.planner import base
from navarch_plan.planner.observed import ids_to_confirm
from navarch_plan.state.model import NodeRecord, StateDoc
from tests.planner_world import BASE, World, config

MULTI = """
version: 1
workspace: ws
providers: {sim: {type: fake}}
defaults: {labels: {team: ml, a: b}}
pools:
  head: {provider: sim, instance_type: gpu_1x_a10, region: us-west-1, nodes: 2}
  workers:
    providers: [{name: sim, regions: [us-west-1, us-east-1], instance_type: gpu_1x_a100}]
    nodes: 3
    labels: {z: y}
    user_data: "#!/bin/sh\\necho ${pools.head.nodes[0].ip_address}\\n"
  idle: {provider: sim, instance_type: gpu_1x_l4, region: us-west-1, nodes: 0}
"""

STATUSES = [s.value for s in NodeStatus]


@st.composite
def _edits(draw: Any) -> list[tuple[str, int, Any]]:
    kinds = st.sampled_from(["live_status", "record_status", "label", "type", "region",
                             "zone", "spec_hash", "vanish", "replace"])
    return draw(st.lists(st.tuples(kinds, st.integers(0, 4), st.sampled_from(STATUSES)),
                         max_size=4))


def _apply(world: World, edits: list[tuple[str, int, Any]]) -> dict[str, Any]:
    """Change the world as the edits say; returns the plan options they ask for."""
    options: dict[str, Any] = {}
    addresses = list(world.state.nodes)
    for kind, i, status in edits:
        address = addresses[i % len(addresses)]
        record = world.state.nodes[address]
        at = next(k for k, n in enumerate(world.live) if n.id == record.id) \
            if any(n.id == record.id for n in world.live) else None
        if kind == "replace":
            options["replace"] = (address,)
        elif kind in ("record_status", "spec_hash"):
            value = status if kind == "record_status" else "0" * 12
            world.state.nodes[address] = dataclasses.replace(record, **{
                "status" if kind == "record_status" else "spec_hash": value})
        elif at is not None and kind == "vanish":
            del world.live[at]
        elif at is not None:
            live = world.live[at]
            changes = {"live_status": {"status": NodeStatus(status)},
                       "label": {"labels": {**live.labels, "team": "other"}},
                       "type": {"instance_type": "gpu_1x_l4"}, "region": {"region": "x"},
                       "zone": {"zone": "x-1"}}[kind]
            world.live[at] = dataclasses.replace(live, **changes)
    return options


@settings(max_examples=150, deadline=None)
@given(_edits(), st.booleans(), st.sampled_from(["", "k" * 64]), st.booleans())
def test_the_unchanged_shortcut_plans_as_the_long_way(
        edits: list[tuple[str, int, Any]], multi: bool, key: str, keyed_records: bool) -> None:
    """`keyed_records` False: records written before the state had its key."""
    cfg = config(MULTI if multi else BASE)
    world = World(cfg.keyed(key) if keyed_records else cfg)
    options = _apply(world, edits)
    fast = world.plan(cfg.keyed(key), **options)
    original = base.PlannerBase._unchanged
    try:
        base.PlannerBase._unchanged = lambda self, address, record: False  # type: ignore
        slow = world.plan(cfg.keyed(key), **options)
    finally:
        base.PlannerBase._unchanged = original  # type: ignore[method-assign]
    assert json.dumps(fast) == json.dumps(slow)


@pytest.mark.parametrize("key", ["", "k" * 64, "other"])
def test_keyed_and_at_are_the_constructor(key: str) -> None:
    for node in config(MULTI).desired.values():
        made = dataclasses.replace(node, fingerprint_key=key)
        keyed = node.keyed(key)
        assert keyed == made and repr(keyed) == repr(made)
        assert keyed.accepted_hashes() == made.accepted_hashes()
        for p in node.candidates:
            assert keyed.hash_for(p) == made.hash_for(p)
            assert keyed.spec_for(p) == made.spec_for(p)
        twin = node.at("pool.x[7]", 7)
        assert twin == dataclasses.replace(node, address="pool.x[7]", index=7)
        assert list(twin.labels.items()) == list(node.labels.items())


def _snapshot() -> dict[str, Any]:
    world = World(config(MULTI))
    doc = world.state
    doc.deposed["i-99"] = dataclasses.replace(next(iter(doc.nodes.values())), id="i-99")
    return json.loads(json.dumps(doc.to_json()))


def test_decoded_records_equal_constructed_ones() -> None:
    data = _snapshot()
    doc = StateDoc.from_json(copy.deepcopy(data))
    for address, raw in data["nodes"].items():
        built = NodeRecord(**raw)
        assert doc.nodes[address] == built and repr(doc.nodes[address]) == repr(built)
        assert NodeRecord.adopt(dict(raw)) == built
    older = {k: v for k, v in next(iter(data["nodes"].values())).items() if k != "ref_values"}
    assert NodeRecord.adopt(older) == NodeRecord(**older)  # the long way: defaults filled


def _confirm_reference(listings: dict[str, Listing], known: list[tuple[str, str]]
                       ) -> dict[str, list[str]]:
    """ids_to_confirm as it was written first."""
    listed = {(n.provider, n.id) for listing in listings.values() for n in listing.nodes}
    wanted: dict[str, list[str]] = {}
    for provider, node_id in known:
        if provider in listings and node_id and (provider, node_id) not in listed:
            wanted.setdefault(provider, [])
            if node_id not in wanted[provider]:
                wanted[provider].append(node_id)
    return wanted


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from("123")), max_size=6),
       st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["", "1", "2", "3",
                                                                           "4"])), max_size=9))
def test_ids_to_confirm_as_before(listed: list[tuple[str, str]],
                                  known: list[tuple[str, str]]) -> None:
    listings = {name: Listing(tuple(Node(i, p, "r", "t", NodeStatus.RUNNING)
                                    for p, i in listed if p == name)) for name in ("a", "b")}
    assert ids_to_confirm(listings, known) == _confirm_reference(listings, known)


def test_a_pool_of_no_nodes_has_no_nodes() -> None:
    assert not [n for n in config(MULTI).desired.values() if n.group == "idle"]
    assert isinstance(next(iter(config(MULTI).desired.values())), DesiredNode)

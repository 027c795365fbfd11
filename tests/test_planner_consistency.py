"""The planner under eventual consistency, as a pure function (docs/planning.md, "No
single listing is the truth" and "Interrupted launches"): absence within the window,
lookups by id, unreadable places, statuses that are not death, and open intents."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from navarch_plan.clock import iso_to_epoch
from navarch_plan.model import Listing, Node, NodeStatus
from navarch_plan.planner.observed import Lookup, Observed
from navarch_plan.planner.ownership import ownership_labels
from navarch_plan.schemas import validator
from navarch_plan.state.model import Intent
from tests.planner_world import BASE, World, config

LAUNCHED = iso_to_epoch("2026-01-01T00:00:00+00:00") or 0.0
WINDOW = 60.0
W1 = "pool.workers[1]"


def rows(plan: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(a["address"], a["action"], a["reason"]) for a in plan["actions"]]


def unsettled(plan: dict[str, Any]) -> list[tuple[str, str]]:
    return [(u["address"], u["kind"]) for u in plan["unsettled"]]


def seen(world: World, *, age: float = 5.0, hide: tuple[str, ...] = (),
         lookups: dict[str, Lookup] | None = None,
         unreachable: tuple[str, ...] = ()) -> Observed:
    """The world's listing minus `hide`, looked up by id as the engine would, `age`
    seconds after the records' launch."""
    listed = tuple(n for n in world.live if n.id not in hide)
    found = {("sim", i): (lookups or {}).get(i, Lookup(None)) for i in hide}
    return Observed({"sim": Listing(listed, unreachable)}, found, {"sim": WINDOW},
                    LAUNCHED + age)


def checked(plan: dict[str, Any]) -> dict[str, Any]:
    errors = list(validator("plan").iter_errors(plan))
    assert not errors, errors[0].message
    return plan


def worker(world: World, index: int = 1) -> Node:
    record = world.state.nodes[f"pool.workers[{index}]"]
    return next(n for n in world.live if n.id == record.id)


# -- absence -----------------------------------------------------------------------------

def test_a_record_missing_within_the_window_is_not_yet_visible() -> None:
    world = World(config())
    gone = worker(world).id
    plan = checked(world.plan(observed=seen(world, hide=(gone,))))
    assert plan["actions"] == [] and plan["drift"] == []
    assert unsettled(plan) == [(W1, "not_yet_visible")]
    assert "3 of 4 desired nodes" in plan["no_changes_reason"]
    assert "1 cannot be settled yet" in plan["no_changes_reason"]


def test_a_record_missing_past_the_window_is_gone_saying_how_long() -> None:
    world = World(config())
    gone = worker(world).id
    plan = checked(world.plan(observed=seen(world, age=300, hide=(gone,))))
    assert rows(plan) == [(W1, "create", "deleted_outside")]
    [drift] = plan["drift"]
    assert "confirmed by id" in drift["detail"]
    assert "300s after launch, past the 60s consistency window" in drift["detail"]


def test_a_short_listing_is_made_whole_by_lookups() -> None:
    world = World(config())
    hidden = tuple(n.id for n in world.live)
    lookups = {n.id: Lookup(n) for n in world.live}
    plan = world.plan(observed=seen(world, age=900, hide=hidden, lookups=lookups))
    assert plan["actions"] == [] and plan["drift"] == [] and plan["unsettled"] == []


def test_a_lookup_that_shows_it_terminated_is_deleted_outside() -> None:
    world = World(config())
    node = worker(world)
    ended = replace(node, status=NodeStatus.TERMINATED, cloud_status="terminated")
    plan = world.plan(observed=seen(world, hide=(node.id,), lookups={node.id: Lookup(ended)}))
    assert rows(plan) == [(W1, "create", "deleted_outside")]


def test_a_failed_lookup_or_an_unreadable_place_is_unknown() -> None:
    world = World(config())
    node = worker(world)
    failed = world.plan(observed=seen(world, hide=(node.id,),
                                      lookups={node.id: Lookup(error="timeout")}))
    assert failed["actions"] == [] and unsettled(failed) == [(W1, "unknown")]
    far = checked(world.plan(observed=replace(seen(world, hide=(node.id,)),
                                              listings={"sim": Listing(
                                                  tuple(n for n in world.live
                                                        if n.id != node.id), ("us-west-1",))},
                                              lookups={})))
    assert far["actions"] == [] and unsettled(far) == [(W1, "unknown")]
    assert far["unreachable"] == {"sim": ["us-west-1"]}
    assert any("could not read us-west-1" in w for w in far["warnings"])


def test_a_node_not_yet_visible_is_still_destroyed_by_id() -> None:
    world = World(config())
    gone = worker(world).id
    plan = world.plan(observed=seen(world, hide=(gone,)), destroy=True)
    assert (W1, "delete", "destroy") in rows(plan)
    assert plan["unsettled"] == []


# -- statuses ------------------------------------------------------------------------------

def test_stopped_and_unknown_nodes_are_held_not_replaced() -> None:
    world = World(config())
    for index, status, word in ((1, NodeStatus.STOPPED, "SUSPENDED"),
                                (2, NodeStatus.UNKNOWN, "hibernating")):
        node = worker(world, index)
        world.live[world.live.index(node)] = replace(node, status=status, cloud_status=word)
    plan = checked(world.plan())
    assert plan["actions"] == []
    assert unsettled(plan) == [(W1, "held"), ("pool.workers[2]", "held")]
    assert "stopped (SUSPENDED)" in plan["unsettled"][0]["detail"]
    assert [d["detail"] for d in plan["drift"]] == ["status running -> stopped (SUSPENDED)",
                                                    "status running -> unknown (hibernating)"]
    assert rows(world.plan(replace=(W1,))) == [(W1, "replace", "requested")]
    smaller = config(BASE.replace("nodes: 3", "nodes: 1"))
    assert rows(world.plan(smaller)) == [(W1, "delete", "scaled_down"),
                                         ("pool.workers[2]", "delete", "scaled_down")]


def test_a_held_orphan_is_never_deleted_but_destroy_deletes_it() -> None:
    world = World(config())
    node = worker(world)
    del world.state.nodes[W1]
    world.live[world.live.index(node)] = replace(
        node, status=NodeStatus.STOPPED, labels={**node.labels, "navarch-address": "p_x_0"})
    plan = world.plan()
    assert all(a["node_id"] != node.id for a in plan["actions"])
    assert ("pool.x[0]", "held") in unsettled(plan)
    assert node.id in {a["node_id"] for a in world.plan(destroy=True)["actions"]}


def test_a_booting_orphan_that_fits_is_adopted_not_deleted() -> None:
    world = World(config())
    node = worker(world)
    del world.state.nodes[W1]
    world.live[world.live.index(node)] = replace(node, status=NodeStatus.PROVISIONING)
    plan = world.plan()
    assert rows(plan) == [(W1, "adopt", "orphan_matches")]
    assert "apply waits for it to run" in plan["actions"][0]["detail"]


# -- interrupted launches ---------------------------------------------------------------

def _interrupted(world: World, node: Node | None, *, node_id: str = "",
                 instance_type: str = "gpu_1x_a100", address: str = W1) -> Intent:
    """State as a killed run leaves it: the record gone, an intent open (and, with no
    `node`, no instance either)."""
    record = world.state.nodes.pop(address, None)
    if node is None and record is not None:
        world.live = [n for n in world.live if n.id != record.id]
    intent = Intent(id="i-1", address=address, provider="sim", region="us-west-1",
                    name=node.name if node else "ws-workers-1-zzzz",
                    started_at="2026-01-01T00:00:00+00:00", instance_type=instance_type,
                    idempotency_key="key-1", node_id=node_id)
    world.state.intents[intent.id] = intent
    return intent


def test_the_instance_of_an_interrupted_launch_is_adopted_never_an_orphan() -> None:
    world = World(config())
    node = worker(world)
    _interrupted(world, node, node_id=node.id)
    plan = checked(world.plan(observed=seen(world)))
    assert rows(plan) == [(W1, "adopt", "interrupted")]
    assert plan["actions"][0]["intent_id"] == "i-1"
    assert [i["kind"] for i in plan["intents"]] == ["adopt"]
    assert plan["drift"] == [] or all(d["kind"] != "unmanaged" for d in plan["drift"]
                                      if d["node_id"] == node.id)


def test_a_launch_of_unknown_outcome_is_resent_unchanged_where_the_cloud_dedupes() -> None:
    world = World(config())
    _interrupted(world, None)
    plan = checked(world.plan(observed=seen(world), idempotent=frozenset({"sim"})))
    [action] = [a for a in plan["actions"] if a["address"] == W1]
    assert (action["action"], action["intent_id"], action["idempotency_key"],
            action["name"]) == ("create", "i-1", "key-1", "ws-workers-1-zzzz")
    assert [i["kind"] for i in plan["intents"]] == ["resume"]


def test_elsewhere_it_settles_within_the_window_and_is_dropped_after() -> None:
    world = World(config())
    _interrupted(world, None)
    early = checked(world.plan(observed=seen(world)))
    assert early["actions"] == [] and unsettled(early) == [(W1, "settling")]
    late = world.plan(observed=seen(world, age=300))
    assert rows(late) == [(W1, "create", "missing")]
    assert [i["kind"] for i in late["intents"]] == ["drop"]
    assert late["actions"][0]["intent_id"] == ""


def test_an_interrupted_instance_that_no_longer_fits_is_deleted_as_ours() -> None:
    world = World(config())
    node = worker(world)
    node = replace(node, labels={**node.labels, "navarch-spec": "0" * 12})
    world.live[1] = node if world.live[1].id == node.id else world.live[1]
    world.live = [node if n.id == node.id else n for n in world.live]
    _interrupted(world, node, node_id=node.id)
    plan = world.plan(observed=seen(world))
    assert sorted(rows(plan)) == [(W1, "create", "missing"), (W1, "delete", "spec_changed")]
    assert all(a["reason"] != "orphan" for a in plan["actions"])


def test_an_interrupted_replacement_is_finished_with_its_new_instance() -> None:
    world = World(config())
    old = worker(world)
    changed = config(BASE.replace("gpu_1x_a100", "gpu_1x_h100"))
    wanted = changed.desired[W1]
    new = Node(id="i-new", provider="sim", region="us-west-1", instance_type="gpu_1x_h100",
               status=NodeStatus.PROVISIONING, name="ws-workers-1-newx",
               labels=ownership_labels("ws", wanted, wanted.candidates[0]))
    world.live.append(new)
    record = world.state.nodes[W1]
    _interrupted(world, new, node_id=new.id, instance_type="gpu_1x_h100")
    world.state.nodes[W1] = record
    plan = checked(world.plan(changed, observed=seen(world)))
    [action] = [a for a in plan["actions"] if a["address"] == W1]
    assert (action["action"], action["node_id"], action["new_node_id"]) == (
        "replace", old.id, "i-new")
    # The config went back: the new instance fits nothing, and goes.
    again = world.plan(observed=seen(world))
    assert rows(again) == [(W1, "delete", "spec_changed")]
    assert again["actions"][0]["node_id"] == "i-new"


def test_a_spare_from_an_interrupted_launch_goes_when_nothing_needs_it() -> None:
    world = World(config())
    record = world.state.nodes[W1]
    twin = replace(worker(world), id="i-twin", name="ws-workers-1-twin")
    world.live.append(twin)
    _interrupted(world, twin, node_id=twin.id)
    world.state.nodes[W1] = record
    plan = world.plan(observed=seen(world))
    assert rows(plan) == [(W1, "delete", "interrupted")]
    assert (plan["actions"][0]["node_id"], plan["intents"][0]["kind"]) == ("i-twin", "delete")

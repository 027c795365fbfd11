"""Partial plans say true things: with --target/--exclude the no-changes summary counts
only what the plan compared and says how many desired nodes were left outside; a
--replace that names a pool, or a named node spelt as a pool, says which address it
most likely meant. Through `navarch plan` on the fake cloud."""

from __future__ import annotations

from tests.conftest import Workdir


def applied(work: Workdir) -> None:
    work.config(pools={"a": {"nodes": 6}, "b": {"nodes": 2}}, nodes={"head": {}})
    assert work.run("apply", "--auto-approve", "--target", "pool.a").code == 0


def test_an_excluding_plan_does_not_claim_every_desired_node_exists(work: Workdir) -> None:
    applied(work)
    plan = work.run("plan", "--exclude", "pool.b", "--exclude", "node.head",
                    "--detailed-exitcode")
    assert plan.code == 0, plan.err
    assert "all 9" not in plan.out and "all 6 desired nodes exist" not in plan.out
    assert ("all 6 desired nodes in this partial plan exist, are running or provisioning, "
            "and match the configured spec; 3 more are outside it (--exclude pool.b, "
            "--exclude node.head) and were not compared") in plan.out
    assert "this partial plan covers matches the configuration" in plan.out


def test_a_targeted_plan_counts_only_its_target(work: Workdir) -> None:
    applied(work)
    reason = work.plan_json("--target", "pool.a")["no_changes_reason"]
    assert reason.startswith("all 6 desired nodes in this partial plan exist")
    assert "3 more are outside it (--target pool.a)" in reason


def test_a_whole_plan_counts_pools_and_named_nodes(work: Workdir) -> None:
    applied(work)
    assert work.run("apply", "--auto-approve").code == 0
    reason = work.plan_json()["no_changes_reason"]
    assert reason.startswith("all 9 desired nodes in 2 pools and 1 named node exist")


def test_replace_of_a_pool_asks_for_one_of_its_nodes(work: Workdir) -> None:
    applied(work)
    bad = work.run("plan", "--replace", "pool.a")
    assert bad.code == 1
    assert "did you mean pool.a[0]?" in bad.err
    assert "pool a has pool.a[0] ... pool.a[5] in state" in bad.err
    assert "(pool a has pool.a[0] ... pool.a[5] in state)" in \
        work.run("plan", "--replace", "pool.a[9]").err


def test_replace_of_a_named_node_spelt_as_a_pool_gets_its_address(work: Workdir) -> None:
    applied(work)
    assert work.run("apply", "--auto-approve").code == 0
    bad = work.run("plan", "--replace", "pool.head")
    assert bad.code == 1 and "did you mean node.head?" in bad.err
    good = work.plan_json("--replace", "node.head")
    assert [a["address"] for a in good["actions"]] == ["node.head"]

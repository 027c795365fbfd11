"""What a new user met following the README and docs/commands.md, each through the real
`navarch` command: options a saved plan cannot take, the hints' command lines, a closed
pipe, refresh-only that cannot rule drift out, force-unlock, JSON summaries and small
usage errors."""

from __future__ import annotations

import pytest

from tests.conftest import Workdir


@pytest.mark.parametrize(("command", "options", "named"), [
    ("apply", ["--target", "pool.w[2]", "--replace", "pool.w[0]"], "--target, --replace"),
    ("apply", ["-exclude=pool.w"], "--exclude"),
    ("graph", ["--destroy"], "--destroy"),
], ids=["apply-target-replace", "apply-exclude", "graph-destroy"])
def test_a_saved_plan_refuses_options_that_shape_a_plan(
        work: Workdir, command: str, options: list[str], named: str) -> None:
    work.config(pools={"w": {"nodes": 3}})
    assert work.cli("apply", "--auto-approve").code == 0
    before = work.state()
    assert work.cli("plan", "--replace", "pool.w[1]", "-out=r2.plan").code == 0
    refused = work.cli(command, "r2.plan", *options, "--auto-approve"
                       if command == "apply" else "--no-color")
    assert refused.code == 1 and refused.out == ""
    assert refused.err.splitlines() == [
        f"Error: {named} cannot be used with a saved plan (r2.plan), which is used exactly "
        f"as it was made; give {'them' if ',' in named else 'it'} to `navarch plan` instead"]
    assert work.state() == before, "nothing was done"
    assert work.cli("apply", "r2.plan").code == 0, "the plan itself still applies"
    assert work.state()["nodes"]["pool.w[1]"]["id"] != before["nodes"]["pool.w[1]"]["id"]

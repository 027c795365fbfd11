"""What a new user met following the README and docs/commands.md, each through the real
`navarch` command: options a saved plan cannot take, the hints' command lines, a closed
pipe, refresh-only that cannot rule drift out, force-unlock, JSON summaries and small
usage errors."""

from __future__ import annotations

import json

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


def _as_printed(line: str) -> list[str]:
    """The arguments of a `navarch ...` command line as a hint prints it."""
    import shlex

    words = shlex.split(line)
    assert words[0] == "navarch", line
    return words[1:]


def test_suggested_commands_carry_the_runs_config_and_state(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 2}})
    (work.path / "navarch.yaml").rename(work.path / "qs2.yaml")
    unsaved = work.cli("plan", "-c", "qs2.yaml")
    assert "if you run `navarch apply -c qs2.yaml` now." in unsaved.out
    missing = work.cli("output", "-c", "qs2.yaml", "pool.nope")
    assert missing.err.strip().endswith("(see navarch state list -c qs2.yaml)")
    shown = work.cli("show", "-c", "qs2.yaml")
    assert "(navarch apply -c qs2.yaml creates it)" in shown.out

    mine = ("-c", "qs2.yaml", "--state", "state/my state.json")
    planned = work.cli("plan", *mine, "-out=t.plan")
    assert planned.code == 0, planned.err
    command = planned.out.splitlines()[-1].split("run: ", 1)[1]
    assert command == "navarch apply -c qs2.yaml --state 'state/my state.json' t.plan"
    applied = work.cli(*_as_printed(command))
    assert applied.code == 0, applied.err
    assert (work.path / "state" / "my state.json").exists()

    gone = json.loads((work.path / "state" / "my state.json").read_text())
    work.cloud().terminate(gone["nodes"]["pool.w[0]"]["id"])
    drift = work.cli("drift", *mine)
    assert drift.code == 2, drift.err
    assert drift.out.splitlines()[-1] == ("Run `navarch plan -c qs2.yaml --state "
                                          "'state/my state.json'` to see what apply would "
                                          "do about it.")


def test_init_with_a_config_path_names_it_in_its_next_step(work: Workdir) -> None:
    made = work.cli("init", "-c", "fleet/gpu.yaml")
    assert made.code == 0, made.err
    assert made.out.splitlines()[-1] == "Next: navarch plan -c fleet/gpu.yaml"
    assert work.cli(*_as_printed(made.out.splitlines()[-1][len("Next: "):])).code == 0


@pytest.mark.parametrize("flags", [["--detailed-exitcode"], [], ["--json"]],
                         ids=["detailed", "plain", "json"])
def test_refresh_only_that_cannot_read_a_region_agrees_with_drift(
        work: Workdir, flags: list[str]) -> None:
    work.config(pools={"w": {"nodes": 1}}, sim={
        "faults": [{"op": "list", "unreachable": ["us-west-1"]}]})
    said = "Error: drift cannot be ruled out: could not read sim: us-west-1 (exit 1, not 0)"
    drift = work.cli("drift")
    assert drift.code == 1 and said in drift.err.splitlines()
    refresh = work.cli("plan", "--refresh-only", *flags)
    assert refresh.code == 1, refresh.out + refresh.err
    assert said in refresh.err.splitlines()
    # The plan's own words agree: it never says "no drift found" then.
    assert "no drift found" not in refresh.out
    if flags != ["--json"]:
        assert "drift cannot be ruled out where a listing failed" in refresh.out


def test_refresh_only_exit_codes_otherwise_as_before(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    assert work.cli("apply", "--auto-approve").code == 0
    assert work.cli("plan", "--refresh-only", "--detailed-exitcode").code == 0
    work.cloud().terminate(work.state()["nodes"]["pool.w[0]"]["id"])
    assert work.cli("plan", "--refresh-only", "--detailed-exitcode").code == 2
    assert work.cli("plan", "--refresh-only").code == 0


ZERO_SUMMARY = {"type": "summary", "ok": True, "failed": {}, "skipped": {}, "not_started": [],
                "done": {k: 0 for k in ("create", "replace", "delete", "adopt", "forget",
                                        "update")}}


def test_json_apply_and_destroy_with_nothing_to_do_end_with_the_summary(
        work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    for command in ("destroy", "apply"):  # nothing owned yet: destroy has nothing to do
        assert work.cli(command, "-json", "-auto-approve").code == 0
    assert work.cli("plan", "-out=same.plan").code == 0  # no changes now
    for args in (["apply", "-json", "-auto-approve"], ["apply", "--json", "same.plan"]):
        result = work.cli(*args)
        assert result.code == 0, result.err
        assert [json.loads(line) for line in result.out.splitlines()] == [ZERO_SUMMARY]
    assert work.cli("apply", "same.plan").out == "No changes to apply.\n", "text: as before"
    assert work.cli("destroy", "-json", "-auto-approve").code == 0
    empty = work.cli("destroy", "-json", "-auto-approve")
    assert [json.loads(line) for line in empty.out.splitlines()] == [ZERO_SUMMARY]


def test_state_list_of_an_empty_state_prints_nothing(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    empty = work.cli("state", "list")
    assert (empty.code, empty.out) == (0, "")
    assert work.cli("apply", "--auto-approve").code == 0
    assert work.cli("state", "list").out == "pool.w[0]\n"


def test_a_failed_action_is_named_once_per_line(work: Workdir) -> None:
    """The launch is made, then never seen again (every get and listing hides it):
    the error names its node, and the lines that show it name it once."""
    hidden = [{"op": "get", "hide": 1}] * 6 + [{"op": "list", "hide": 1}] * 3
    work.config(pools={"w": {"nodes": 1}}, sim={
        "boot_time": 0.2, "retry": {"base_delay": 0.01, "max_delay": 0.1}, "faults": hidden})
    result = work.cli("apply", "--auto-approve")
    assert result.code == 1
    failed = [line for line in result.out.splitlines() if "fail" in line.lower()]
    assert any(line.startswith("  failed:  pool.w[0]: new instance ") for line in failed)
    assert any(" pool.w[0]: FAILED: new instance " in line for line in failed)
    assert not any("pool.w[0]: pool.w[0]" in line for line in failed), failed


def test_command_lines_in_errors_carry_the_runs_config_too(work: Workdir) -> None:
    """Errors written where -c is not known (the planner, state stores) get it put in."""
    work.config(pools={"w": {"nodes": 1}})
    (work.path / "navarch.yaml").rename(work.path / "qs2.yaml")
    assert work.cli("apply", "-c", "qs2.yaml", "--state", "other.json",
                    "--auto-approve").code == 0
    held = work.cli("plan", "-c", "qs2.yaml")  # the default state: another lineage's node
    assert held.code == 1
    adopt = held.err.split("`navarch state adopt ", 1)[1].split("`", 1)[0]
    assert adopt.startswith("-c qs2.yaml --lineage ")
    assert work.cli("state", "adopt", *adopt.split()).code == 0, "works as printed"
    assert work.cli("plan", "-c", "qs2.yaml", "--detailed-exitcode").code == 0

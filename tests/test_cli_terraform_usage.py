"""The command line as a Terraform user types it: usage errors exit 1 (2 is only
"changes" or "drift"), Terraform's single-dash spellings, global options before or after
the command, NAVARCH_CONFIG, every spelling of JSON output, and a reader that goes away
(`navarch plan | head -1`). Every run is the real `navarch` command."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import Workdir, navarch_argv


@pytest.mark.parametrize(("args", "named"), [
    (["drift", "--fromat", "json"], "unknown option --fromat (did you mean --format?)"),
    (["plan", "--format", "jsn"], "argument --format: invalid choice: 'jsn'"),
    (["plan", "--lock-timeout", "soon"], "not a duration: 'soon'"),
    (["force-unlock"], "required: lock_id"),
    (["plna"], "unknown command 'plna' (did you mean plan?)"),
    (["state", "lst"], "unknown command 'lst' (did you mean list?)"),
    (["apply", "--parallelism", "many"], "argument --parallelism: invalid int value"),
    (["plan", "--", "-x"], "unexpected argument '-x'"),
    (["-x"], "unknown option -x"),
    (["force-unlock", "-x"], "unknown option -x"),
    (["output", "-raw=pool.head[0]"], "option --raw takes no value (got 'pool.head[0]')"),
    (["plan", "--json=yes"], "option --json takes no value (got 'yes')"),
], ids=["unknown-option", "bad-choice", "bad-duration", "missing-argument",
        "unknown-command", "unknown-subcommand", "bad-int", "after-double-dash",
        "unknown-option-without-command", "unknown-option-before-argument",
        "value-for-a-flag", "value-for-json"])
def test_usage_errors_exit_1_with_one_line_naming_the_problem(
        work: Workdir, args: list[str], named: str) -> None:
    work.config(pools={"w": {"nodes": 1}})
    result = work.run(*args)
    assert result.code == 1, result.err
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert named in lines[0]
    command = " ".join(a for a in args[:2] if a in ("drift", "plan", "force-unlock",
                                                    "apply", "state", "output"))
    assert lines[0].startswith("Error: ")
    assert lines[0].endswith(f"see navarch{' ' + command if command else ''} --help")


def test_a_flag_given_true_or_false_as_terraforms_go_flags_take_it(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    assert work.cli("plan", "-detailed-exitcode=true").code == 2
    assert work.cli("plan", "--detailed-exitcode=TRUE").code == 2
    assert work.cli("plan", "-detailed-exitcode=false").code == 0
    assert work.cli("apply", "-auto-approve=true", "-json=true").code == 0
    assert work.cli("output", "-raw=true", "pool.w[0]").out.count(".") == 3, "an IPv4"


def test_terraforms_pr_workflow_spelling_saves_the_plan(work: Workdir) -> None:
    """`plan -detailed-exitcode -out x`: exit 2 with the plan saved, not a usage error."""
    work.config(pools={"w": {"nodes": 2}})
    result = work.run("plan", "-detailed-exitcode", "-out", "x.plan", "-no-color")
    assert result.code == 2, result.err
    assert "Plan: 2 to add" in result.out
    assert json.loads((work.path / "x.plan").read_text())["actions"]
    applied = work.run("apply", "-auto-approve", "x.plan")
    assert applied.code == 0, applied.err
    assert len(work.state()["nodes"]) == 2


@pytest.mark.parametrize("spelling", [
    ["-out=p.plan", "-target=pool.a", "-replace=pool.a[0]", "-lock-timeout=10s", "-json"],
    ["--out=p.plan", "--target=pool.a", "--replace=pool.a[0]", "--lock-timeout=10s",
     "--json"],
    ["-out", "p.plan", "-target", "pool.a", "-replace", "pool.a[0]", "-lock-timeout",
     "10s", "--format", "json"],
], ids=["single-dash=", "double-dash=", "separate-values"])
def test_single_dash_long_options_mean_the_same(work: Workdir, spelling: list[str]) -> None:
    work.config(pools={"a": {"nodes": 1}, "b": {"nodes": 1}})
    assert work.run("apply", "--auto-approve", "--target", "pool.a").code == 0
    result = work.run("plan", *spelling)
    assert result.code == 0, result.err
    plan = result.json()
    assert [(a["address"], a["action"]) for a in plan["actions"]] == [
        ("pool.a[0]", "replace")], "targeted a, replaced on request; b left out"
    assert json.loads((work.path / "p.plan").read_text())["actions"]


def test_state_destroy_and_refresh_only_single_dash(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    assert work.run("apply", "-auto-approve").code == 0
    destroy = work.run("plan", "-destroy", "-json").json()
    assert [a["action"] for a in destroy["actions"]] == ["delete"]
    refresh = work.run("plan", "-refresh-only", "-json").json()
    assert refresh["actions"] == [] and refresh["options"]["refresh_only"] is True
    (work.path / "state" / "test.json").rename(work.path / "elsewhere.json")
    moved = work.run("state", "list", "-state=elsewhere.json")
    assert moved.code == 0 and moved.out.split() == ["pool.w[0]"]


def test_short_c_is_never_taken_for_a_single_dash_long_option(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    (work.path / "navarch.yaml").rename(work.path / "cfg.yaml")
    # `-config` is --config; `-c` and `-cFILE` stay the short option.
    for args in (["-c", "cfg.yaml"], ["-ccfg.yaml"], ["-config=cfg.yaml"],
                 ["--config", "cfg.yaml"]):
        result = work.run("plan", *args)
        assert result.code == 0, (args, result.err)
        assert "Plan: 1 to add" in result.out


@pytest.mark.parametrize("order", ["before", "after", "both"])
def test_global_options_go_before_or_after_the_command(work: Workdir, order: str) -> None:
    work.config(pools={"w": {"nodes": 1}})
    (work.path / "navarch.yaml").rename(work.path / "f.yaml")
    given = {"before": (["-c", "f.yaml", "--no-color"], ["--json"]),
             "after": ([], ["-c", "f.yaml", "--no-color", "--json"]),
             "both": (["-c", "missing.yaml"], ["-c", "f.yaml", "--json"])}[order]
    result = work.run(*given[0], "plan", *given[1])
    assert result.code == 0, result.err
    assert [a["address"] for a in result.json()["actions"]] == ["pool.w[0]"]


def test_global_state_option_before_a_state_subcommand(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    assert work.run("apply", "--auto-approve", "--state", "other.json").code == 0
    listed = work.run("--state", "other.json", "state", "list")
    assert listed.code == 0 and listed.out.split() == ["pool.w[0]"]
    assert work.run("state", "list").out.split() == [], "the default state is untouched"


def test_navarch_config_names_the_default_config(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 3}})
    (work.path / "navarch.yaml").rename(work.path / "from-env.yaml")
    result = work.run("plan", env={"NAVARCH_CONFIG": "from-env.yaml"})
    assert result.code == 0, result.err
    assert "Plan: 3 to add" in result.out
    work.config(pools={"w": {"nodes": 1}})
    explicit = work.run("plan", "-c", "navarch.yaml", env={"NAVARCH_CONFIG": "from-env.yaml"})
    assert "Plan: 1 to add" in explicit.out, "an explicit -c wins"
    missing = work.run("plan", env={"NAVARCH_CONFIG": "nope.yaml"})
    assert missing.code == 1 and "nope.yaml" in missing.err


@pytest.mark.parametrize("flag", [["--json"], ["-json"], ["--format", "json"],
                                  ["--format=json"]])
def test_every_json_spelling_wherever_json_is_offered(work: Workdir, flag: list[str]) -> None:
    work.config(pools={"w": {"nodes": 1}})
    applied = work.run("apply", "--auto-approve", *flag)
    assert applied.code == 0, applied.err
    assert json.loads(applied.out.splitlines()[-1])["type"] == "summary"
    assert work.run("plan", "--out", "p.plan").code == 0
    for command in (["plan"], ["drift"], ["show"], ["show", "p.plan"], ["state", "list"],
                    ["validate"], ["instance-types"], ["output"],
                    ["state", "show", "pool.w[0]"]):
        result = work.cli(*command, *flag)  # in process: the parser is under test here
        assert result.code == 0, (command, result.err)
        assert isinstance(result.json(), (dict, list)), command
    assert work.cli("validate", *flag).json()["valid"] is True
    assert work.cli("state", "show", "pool.w[0]", *flag).json()["address"] == "pool.w[0]"


def test_state_show_gives_json_only(work: Workdir) -> None:
    """Its output is JSON whatever is asked: `--format text` is refused, not ignored."""
    work.config(pools={"w": {"nodes": 1}})
    assert work.cli("apply", "--auto-approve").code == 0
    text = work.cli("state", "show", "pool.w[0]", "--format", "text")
    assert text.code == 1 and "invalid choice: 'text'" in text.err, text.err


def test_validate_json_reports_an_invalid_config_as_terraform_does(work: Workdir) -> None:
    work.write("version: 1\nworkspace: t\npools:\n  w: {nodes: 4, providr: x}\n")
    result = work.run("validate", "-json")
    assert result.code == 1
    report = result.json()
    assert report["valid"] is False and report["error_count"] == 1
    diagnostic = report["diagnostics"][0]
    assert diagnostic["severity"] == "error"
    assert diagnostic["range"]["filename"] == "navarch.yaml"
    assert diagnostic["range"]["start"]["line"] == 4


def _piped(work: Workdir, reader: str, *args: str) -> tuple[int, str]:
    """navarch's exit status and stderr with its stdout piped into `reader`."""
    script = f'{" ".join(navarch_argv())} {" ".join(args)} 2>err.txt | {reader} >/dev/null; ' \
             'echo "${PIPESTATUS[0]}"'
    proc = subprocess.run(["bash", "-c", script], cwd=work.path, capture_output=True,
                          text=True, timeout=120)
    return int(proc.stdout.splitlines()[-1]), (work.path / "err.txt").read_text()


def test_a_reader_that_goes_away_ends_output_quietly_with_141(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 200}})  # ~175 KB of JSON plan
    # `true` has left before navarch writes: every write meets a closed pipe.
    code, err = _piped(work, "true", "plan", "--json")
    assert err == "", "no 'internal error: BrokenPipeError', no 'Exception ignored'"
    assert code == 141, "as git and Terraform: 128 + SIGPIPE"
    # `head -1` leaves after the first line: whether navarch writes again after that
    # depends on the pipe and the scheduler (exit 141 if it did, else 0); quiet either way.
    code, err = _piped(work, "head -1", "plan", "--json")
    assert err == "" and code in (0, 141)


def test_an_apply_whose_reader_goes_away_still_finishes_and_records(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 3}})
    code, err = _piped(work, "true", "apply", "--auto-approve")
    assert err == "" and code == 141
    assert len(work.state()["nodes"]) == 3, "every action ran and was recorded"


def test_every_command_exits_141_when_its_reader_leaves_mid_output(work: Workdir) -> None:
    """Outputs far larger than a pipe's buffer, so the reader has surely left while
    navarch still writes: the same 141 from every command (Python's buffered stdout
    would drop the rest of a short write silently, and exit 0)."""
    work.write("version: 1\nworkspace: test\nproviders:\n  sim: {type: fake, path: "
               "state/cloud.db}\ndefaults: {ssh_keys: [ops]}\npools:\n" + "".join(
                   f"  p{i}: {{provider: sim, instance_type: gpu_1x_a10, region: "
                   f"us-west-1, nodes: 1}}\n" for i in range(1500)))
    assert work.run("plan", "-out=x.plan").code == 0
    for reader, args in (("head -c 10", ["show", "x.plan", "--json"]),
                         ("head -1", ["show", "x.plan"]),
                         ("head -1", ["graph", "x.plan"]),
                         ("head -1", ["plan", "--detailed-exitcode"])):
        code, err = _piped(work, reader, *args)
        assert (code, err) == (141, ""), (args, err)


def test_a_closed_pipe_wins_over_the_detailed_exit_code_not_over_an_error(
        work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 2}})
    code, err = _piped(work, "true", "plan", "--detailed-exitcode")
    assert (code, err) == (141, ""), "changes present (2), but the plan was not read"
    work.write("version: 1\npools: {w: {nodes: 1}}\n")
    code, err = _piped(work, "true", "plan", "--detailed-exitcode")
    assert code == 1 and err.startswith("Error: "), "an error keeps its own code"
    assert _piped(work, "true", "plan", "--help") == (141, ""), "help's output too"

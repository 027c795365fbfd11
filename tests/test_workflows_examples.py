"""The example GitHub workflows work as written: actionlint (with shellcheck on every
`run:` script) accepts them, and each step that runs navarch is run here, script and
all, by bash against the fake cloud, in the order a pull request lives: plan, merge
(apply the saved plan), then the hourly drift check."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from tests.conftest import ROOT, Workdir

WORKFLOWS = ROOT / "examples" / "github"
PLAN, APPLY, DRIFT = "plan-on-pull-request.yml", "apply-on-merge.yml", "drift-check.yml"


def workflow(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def steps(name: str, job: str) -> dict[str, dict[str, Any]]:
    return {s.get("name", s.get("uses", "")): s for s in workflow(name)["jobs"][job]["steps"]}


def run_step(work: Workdir, name: str, job: str, step: str) -> tuple[int, dict[str, str]]:
    """Run one step's script as GitHub does (`bash -e`, with the workflow's env, secrets
    empty), in the work folder; returns its exit code and what it wrote to
    $GITHUB_OUTPUT."""
    doc = workflow(name)
    script = steps(name, job)[step]["run"]
    output = work.path / "github-output.txt"
    output.write_text("")
    env = {**os.environ, **{k: str(v) for k, v in doc["env"].items()},
           "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(work.path / "summary.md"),
           "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/fleet",
           "GITHUB_RUN_ID": "1", "LAMBDA_API_KEY": ""}
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          cwd=work.path, env=env, capture_output=True, text=True, timeout=120)
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if line)
    return proc.returncode, outputs


def navarch_lines(name: str) -> list[str]:
    """Every navarch command line of a workflow's scripts, continuation lines joined."""
    lines = []
    for job in workflow(name)["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "").replace("\\\n", " ")
            lines += [line.strip() for line in script.splitlines()
                      if line.strip().startswith("navarch ")]
    return lines


def test_actionlint_and_shellcheck_accept_every_workflow() -> None:
    actionlint = shutil.which("actionlint")
    assert actionlint, "actionlint is missing: pip install -e '.[test]'"
    assert shutil.which("shellcheck"), "shellcheck is missing: pip install -e '.[test]'"
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} == {PLAN, APPLY, DRIFT}
    proc = subprocess.run([actionlint, "-no-color", *map(str, files)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_misspelt_input(tmp_path: Path) -> None:
    """The lint is real: it knows the actions' inputs, so the test above means something."""
    bad = tmp_path / "bad.yml"
    bad.write_text((WORKFLOWS / PLAN).read_text().replace("overwrite: true", "overwrte: true"))
    proc = subprocess.run([str(shutil.which("actionlint")), "-no-color", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and 'input "overwrte" is not defined' in proc.stdout


@pytest.mark.parametrize("name", [PLAN, APPLY, DRIFT])
def test_navarch_is_installed_from_its_repository(name: str) -> None:
    doc = workflow(name)
    requirement = Requirement(doc["env"]["NAVARCH_SOURCE"])
    assert requirement.name == "navarch-plan" and requirement.extras == {"all"}
    assert requirement.url and requirement.url.startswith("git+https://github.com/")
    installs = [s["run"] for job in doc["jobs"].values() for s in job["steps"]
                if s.get("name") == "Install navarch"]
    assert installs and all(run.strip() == 'pip install "$NAVARCH_SOURCE"' for run in installs)


@pytest.mark.parametrize("name", [PLAN, APPLY, DRIFT])
def test_cloud_credentials_come_from_oidc(name: str) -> None:
    doc = workflow(name)
    assert doc["permissions"]["id-token"] == "write"
    for job_name, job in doc["jobs"].items():
        if job_name == "validate-fork":
            continue
        aws = [s for s in job["steps"]
               if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
        assert len(aws) == 1 and aws[0]["with"]["role-to-assume"]
        assert "aws-access-key-id" not in aws[0]["with"]


def test_plan_workflow_serialises_per_pull_request_and_handles_forks() -> None:
    doc = workflow(PLAN)
    assert "github.event.pull_request.number" in doc["concurrency"]["group"]
    fork, plan = doc["jobs"]["validate-fork"], doc["jobs"]["plan"]
    assert "!= github.repository" in fork["if"] and "== github.repository" in plan["if"]
    assert "secrets." not in yaml.safe_dump(fork)  # a fork's run gets none
    upload = steps(PLAN, "plan")["Keep the plan file (apply-on-merge applies exactly this)"]
    assert upload["with"]["overwrite"] is True and "navarch.plan" in upload["with"]["path"]
    comment = steps(PLAN, "plan")["Comment the plan, or that it failed"]
    assert comment["if"].startswith("always()") and comment["with"]["path"] == "comment.md"


def test_apply_and_drift_never_run_two_at_once() -> None:
    for name in (APPLY, DRIFT):
        assert workflow(name)["concurrency"]["cancel-in-progress"] is False
    assert "--lock-timeout" in " ".join(navarch_lines(DRIFT))
    uses_output = [s for s in workflow(DRIFT)["jobs"]["drift"]["steps"]
                   if "steps.drift.outputs.drift" in s.get("if", "")]
    assert len(uses_output) == 2


def test_every_navarch_command_line_is_run_by_the_tests_below() -> None:
    ran = {"navarch validate -c \"$NAVARCH_CONFIG\"",
           "navarch plan -c \"$NAVARCH_CONFIG\" --out navarch.plan --format markdown "
           "--detailed-exitcode --lock-timeout 5m > plan.md 2> plan-error.txt",
           "navarch show -c \"$NAVARCH_CONFIG\" navarch.plan > plan.txt",
           "navarch apply -c \"$NAVARCH_CONFIG\" --lock-timeout 10m reviewed/navarch.plan "
           "> apply.txt 2>&1",
           "navarch drift -c \"$NAVARCH_CONFIG\" --format markdown --lock-timeout 10m "
           "> drift.md 2> drift-error.txt"}
    found = {" ".join(line.split()) for name in (PLAN, APPLY, DRIFT)
             for line in navarch_lines(name)}
    assert found == ran


def _fleet(work: Workdir, nodes: int = 2) -> None:
    work.config(pools={"w": {"nodes": nodes}}, extra="")


def test_a_pull_request_is_planned_applied_on_merge_and_checked_for_drift(
        work: Workdir) -> None:
    _fleet(work)
    assert run_step(work, PLAN, "validate-fork", "Validate (offline)")[0] == 0
    assert "no plan was made" in (work.path / "summary.md").read_text()
    code, out = run_step(work, PLAN, "plan", "Plan")
    assert code == 0 and out == {"exitcode": "2", "changes": "true"}
    comment = (work.path / "comment.md").read_text()
    assert "Plan: 2 to add" in comment and comment == (work.path / "plan.md").read_text()
    assert "pool.w[1]" in (work.path / "plan.txt").read_text()
    # The artifact, as apply-on-merge downloads it.
    (work.path / "reviewed").mkdir()
    shutil.copy(work.path / "navarch.plan", work.path / "reviewed" / "navarch.plan")
    code, _ = run_step(work, APPLY, "apply", "Apply the reviewed plan")
    assert code == 0, (work.path / "apply.txt").read_text()
    assert "navarch apply: done" in (work.path / "comment.md").read_text()
    assert len(work.state()["nodes"]) == 2
    code, out = run_step(work, DRIFT, "drift", "Check drift")
    assert code == 0 and out == {"drift": "false"}
    cloud = work.cloud()
    cloud.terminate(cloud.list()[0].id)
    code, out = run_step(work, DRIFT, "drift", "Check drift")
    assert code == 0 and out == {"drift": "true"}
    assert "deleted_outside" in (work.path / "drift.md").read_text()


def test_a_failed_plan_replaces_the_comment_with_a_failure_notice(work: Workdir) -> None:
    work.write("version: 1\nworkspace: test\npools: {w: {nodes: two}}\n")
    code, out = run_step(work, PLAN, "plan", "Plan")
    assert code == 0 and out["exitcode"] == "1"  # the last step fails the check
    comment = (work.path / "comment.md").read_text()
    assert comment.startswith("### navarch plan failed (exit 1)")
    assert "navarch.yaml:3" in comment and "No plan is current" in comment
    fail = steps(PLAN, "plan")["Fail the check when the plan failed"]
    assert "'1'" not in fail["if"] and "!= '0'" in fail["if"] and "!= '2'" in fail["if"]


def test_apply_on_merge_refuses_a_stale_plan(work: Workdir) -> None:
    _fleet(work)
    assert run_step(work, PLAN, "plan", "Plan")[1]["exitcode"] == "2"
    (work.path / "reviewed").mkdir()
    shutil.copy(work.path / "navarch.plan", work.path / "reviewed" / "navarch.plan")
    assert work.run("apply", "--auto-approve").code == 0  # someone applied meanwhile
    code, _ = run_step(work, APPLY, "apply", "Apply the reviewed plan")
    assert code == 1
    assert "stale" in (work.path / "apply.txt").read_text()
    assert "navarch apply failed (exit 1)" in (work.path / "comment.md").read_text()
    assert len(work.state()["nodes"]) == 2  # nothing was done twice


def test_a_drift_check_that_fails_says_so_and_fails_the_run(work: Workdir) -> None:
    work.write("version: [\n")
    code, out = run_step(work, DRIFT, "drift", "Check drift")
    assert code == 1 and out == {"drift": "error"}


def doc_commands(name: str) -> list[str]:
    """The navarch command lines of a doc's ```sh blocks, continuations joined."""
    text = (ROOT / "docs" / name).read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    lines = [line.strip() for block in blocks
             for line in re.sub(r"\\\n\s*", " ", textwrap.dedent(block)).splitlines()]
    return [line for line in lines if line.startswith("navarch ")]


def test_the_ci_commands_of_the_docs_run_as_written(work: Workdir) -> None:
    """In the order of the loop: plan the pull request, apply it on merge, then check
    drift in every format."""
    _fleet(work)
    commands = doc_commands("reviewing-plans.md") + doc_commands("drift.md")
    assert len(commands) >= 5
    codes = []
    for command in commands:
        proc = subprocess.run(["bash", "-c", command], cwd=work.path, capture_output=True,
                              text=True, timeout=120)
        codes.append((command.split()[1], proc.returncode))
        assert proc.returncode in (0, 2), f"{command}: {proc.stderr}"
    assert codes[:2] == [("plan", 2), ("apply", 0)]
    assert {code for verb, code in codes if verb == "drift"} == {0}
    assert len(work.state()["nodes"]) == 2

"""`navarch output` (addresses, ids and IPs from state, for scripts) and `navarch
completion bash|zsh|fish` (scripts generated from the parser; bash's is run in bash)."""

from __future__ import annotations

import subprocess

from tests.conftest import Workdir


def test_output_lists_addresses_ids_and_ips_from_state(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 2}}, nodes={"box": {}})
    empty = work.run("output")
    assert empty.code == 0 and empty.out == ""
    assert work.run("apply", "--auto-approve").code == 0
    nodes = work.state()["nodes"]
    table = work.run("output")
    assert table.code == 0, table.err
    rows = [line.split("\t") for line in table.out.splitlines()]
    assert rows == [[a, nodes[a]["id"], nodes[a]["ip_address"]] for a in sorted(nodes)]
    pool = work.run("output", "pool.w", "-json").json()
    assert sorted(pool) == ["pool.w[0]", "pool.w[1]"]
    assert pool["pool.w[1]"]["ip_address"] == nodes["pool.w[1]"]["ip_address"]
    raw = work.run("output", "-raw", "node.box")
    assert raw.out == nodes["node.box"]["ip_address"] + "\n"


def test_output_of_an_unknown_address_or_raw_of_many_is_an_error(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 2}})
    assert work.run("apply", "--auto-approve").code == 0
    unknown = work.run("output", "pool.nope")
    assert unknown.code == 1 and "pool.nope is not in state" in unknown.err
    many = work.run("output", "--raw", "pool.w")
    assert many.code == 1 and "--raw needs the address of one node" in many.err


def _complete(script: str, *words: str) -> list[str]:
    """What bash offers after `navarch WORDS` (the last word is the one being typed)."""
    line = " ".join(f"'{w}'" for w in ("navarch", *words))
    proc = subprocess.run(
        ["bash", "-c", f'{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words)}; '
         '_navarch; printf "%s\\n" "${COMPREPLY[@]}"'],
        capture_output=True, text=True, timeout=30, check=True)
    return proc.stdout.split()


def test_bash_completion_is_valid_bash_and_completes(work: Workdir) -> None:
    result = work.run("completion", "bash")
    assert result.code == 0, result.err
    script = result.out
    subprocess.run(["bash", "-n"], input=script, text=True, check=True, timeout=30)
    assert _complete(script, "pl") == ["plan"]
    assert _complete(script, "-c", "x.yaml", "dr") == ["drift"]
    assert _complete(script, "state", "r") == ["rm"]
    assert "--detailed-exitcode" in _complete(script, "plan", "--d")
    assert _complete(script, "apply", "--auto") == ["--auto-approve"]


def test_zsh_and_fish_completion_scripts(work: Workdir) -> None:
    zsh = work.run("completion", "zsh")
    assert zsh.code == 0 and zsh.out.startswith("#compdef navarch\n")
    # zsh runs the bash function through bashcompinit: the same syntax, checked by bash
    # (no zsh or fish on this machine to run them).
    subprocess.run(["bash", "-n"], input=zsh.out, text=True, check=True, timeout=30)
    fish = work.run("completion", "fish")
    assert fish.code == 0
    lines = fish.out.splitlines()
    assert "complete -c navarch -n __fish_use_subcommand -a plan -d 'show what apply " \
           "would change'" in lines
    assert "complete -c navarch -n '__fish_seen_subcommand_from plan' -l " \
           "detailed-exitcode" in lines
    assert all(line.startswith(("#", "complete -c navarch ")) for line in lines)

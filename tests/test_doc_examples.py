"""Every YAML example in docs/configuration.md and docs/clouds/*.md passes `navarch
validate` (offline), without a warning. A whole config (it has `version:`) is validated as
written. A fragment is validated inside the smallest config around it: the providers of
configuration.md's Providers section, a `head` pool and an SSH key, with the fragment's
keys over them (a fragment of one pool, such as a `user_data:` example, is a pool of its
own). So an example a reader copies into a config works there."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from navarch_plan.schemas import load_schema
from tests.conftest import OFFLINE_ENV, OPS_KEY, ROOT, Workdir

DOCS = [ROOT / "docs" / "configuration.md", *sorted((ROOT / "docs" / "clouds").glob("*.md"))]
BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)
TOP_LEVEL = frozenset(load_schema("navarch")["properties"])


def yaml_examples() -> list[tuple[str, str]]:
    """(file:line, text) of each ```yaml block of the docs."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for m in BLOCK.finditer(text):
            found.append((f"{doc.name}:{text[:m.start()].count(chr(10)) + 1}", m.group(1)))
    return found


EXAMPLES = yaml_examples()


def is_whole(text: str) -> bool:
    return re.search(r"^version:", text, re.M) is not None


def around(fragment: dict[str, Any]) -> dict[str, Any]:
    """The smallest config a fragment fits in: configuration.md's providers (its first
    example), a `head` pool to refer to, an SSH key with its text."""
    providers = yaml.safe_load(next(t for _, t in EXAMPLES if t.startswith("providers:")))
    base = {"version": 1, "workspace": "docs", **providers,
            "defaults": {"ssh_keys": ["ops-team"]},
            "ssh_public_keys": {"ops-team": OPS_KEY},
            "pools": {"head": {"provider": "sim", "instance_type": "gpu_1x_a10",
                               "region": "us-west-1", "nodes": 1}}}
    if not TOP_LEVEL & set(fragment):  # one pool's keys
        fragment = {"pools": {"example": {**base["pools"]["head"], **fragment}}}
    return merged(base, fragment)


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merged(out[key], value) if both else value
    return out


def test_the_docs_have_whole_configs_and_fragments() -> None:
    """The control: the extraction finds the examples (a count that shrinks to zero would
    pass every test below)."""
    whole = [place for place, text in EXAMPLES if is_whole(text)]
    assert {p.split(":")[0] for p in whole} >= {"aws.md", "gcp.md", "lambda.md"}, whole
    assert len(EXAMPLES) - len(whole) >= 8


@pytest.mark.parametrize(("place", "text"), EXAMPLES, ids=[p for p, _ in EXAMPLES])
def test_each_yaml_example_validates(work: Workdir, tmp_path: Path, place: str,
                                     text: str) -> None:
    home = tmp_path / "home"  # for docs/clouds/gcp.md's `alice: ~/keys/alice.pub`
    (home / "keys").mkdir(parents=True)
    (home / "keys" / "alice.pub").write_text(OPS_KEY + "\n")
    work.write(text if is_whole(text) else json.dumps(around(yaml.safe_load(text))))
    result = work.cli("validate", env={**OFFLINE_ENV, "HOME": str(home)})
    assert result.code == 0 and result.err == "", f"{place}:\n{result.err}"
    assert result.out.startswith("The configuration is valid: "), result.out

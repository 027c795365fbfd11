"""Facts the docs state that the code decides: the state format they describe, the
modules they point to, the options of the commands they name. Each is checked against
the code (or the `navarch` command), so the docs cannot go stale silently."""

from __future__ import annotations

import re

from navarch_plan.state import FORMAT_VERSION
from tests.conftest import ROOT, Workdir

DOCS = [*sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs" / "clouds").glob("*.md"))]
PY_PATH = re.compile(r"[A-Za-z0-9_]+(?:/[A-Za-z0-9_]+)*/[A-Za-z0-9_]+\.py\b")


def test_the_state_doc_describes_the_format_navarch_writes(work: Workdir) -> None:
    work.config(pools={"w": {"nodes": 1}})
    assert work.cli("apply", "--auto-approve").code == 0
    assert work.state()["format_version"] == FORMAT_VERSION
    text = (ROOT / "docs" / "state.md").read_text()
    assert f"Format {FORMAT_VERSION} (this version, `format_version: {FORMAT_VERSION}`)" in text
    stale = [n for n in re.findall(r"Format (\d+) \(this version", text)
             if int(n) != FORMAT_VERSION]
    assert stale == []


def test_every_module_path_in_the_docs_exists() -> None:
    """A path like `navarch_plan/providers/fake/faults.py` (or one relative to the
    package, `providers/base.py`) names a file that is there."""
    named = {(doc.name, path) for doc in DOCS for path in PY_PATH.findall(doc.read_text())}
    assert ("configuration.md", "navarch_plan/providers/fake/faults.py") in named
    missing = [(doc, path) for doc, path in sorted(named)
               if not (ROOT / path).is_file() and not (ROOT / "navarch_plan" / path).is_file()]
    assert missing == []


def test_destroy_is_described_with_the_options_it_has(work: Workdir) -> None:
    """`navarch destroy` has no --target (a targeted destroy is `plan --destroy
    --target`): the docs do not speak of one."""
    work.config(pools={"w": {"nodes": 1}})
    refused = work.cli("destroy", "--target", "pool.w")
    assert refused.code == 1 and "unknown option --target" in refused.err, refused.err
    for doc in DOCS:
        assert not re.search(r"`navarch destroy` \(without `-?-target`\)", doc.read_text()), doc

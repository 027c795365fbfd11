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


LOST = {"op": "provision", "error": "transient"}  # a launch whose reply never came


def lost_launch_section() -> str:
    text = (ROOT / "docs" / "planning.md").read_text()
    start = text.index("### A launch whose reply is lost")
    return " ".join(text[start:text.index("\n## ", start)].split())


def test_a_lost_launch_is_re_sent_with_its_key_as_planning_md_says(work: Workdir) -> None:
    """The fake's launches are idempotent, like EC2's and GCE's: the same launch is re-sent
    up to 3 times with its key, and never makes a second instance."""
    section = lost_launch_section()
    assert "re-sent up to 3 times" in section
    # The launch made its instance but its reply was lost; so were two re-sends' replies:
    # the third re-send returns that instance.
    work.config(pools={"w": {"nodes": 1}}, sim={"faults": [{**LOST, "effect": True}, LOST,
                                                           LOST]})
    assert work.cli("apply", "--auto-approve").code == 0
    assert len(work.cloud().list()) == 1
    # The launch and all 3 re-sends lost: the action fails in the docs' words, its
    # intent stays, and the next apply settles it.
    work.config(pools={"w": {"nodes": 2}}, sim={"faults": [LOST] * 4})
    failed = work.cli("apply", "--auto-approve")
    words = ("outcome unknown after 3 re-sends with the same idempotency key: the next plan "
             "settles it")
    assert failed.code == 1 and words in failed.out + failed.err, failed.out + failed.err
    assert f"`{words}`" in section
    assert len(work.state()["intents"]) == 1
    work.config(pools={"w": {"nodes": 2}})
    assert work.cli("apply", "--auto-approve").code == 0
    assert len(work.cloud().list()) == 2 and work.state()["intents"] == []


def test_a_lost_launch_without_a_key_is_looked_for_by_name(work: Workdir) -> None:
    """`idempotent: false` (as Lambda): nothing is re-sent; not found by name within the
    window (the fake's is 0 s), the launch made nothing and its intent goes."""
    work.config(pools={"w": {"nodes": 1}}, sim={"idempotent": False, "faults": [LOST]})
    failed = work.cli("apply", "--auto-approve")
    said = failed.out + failed.err
    assert failed.code == 1 and "appeared within the 0s consistency window: nothing was " \
        "created" in said, said
    assert "appeared within the ...s consistency window: nothing was created" in \
        lost_launch_section()
    assert work.cloud().list() == [] and work.state()["intents"] == []

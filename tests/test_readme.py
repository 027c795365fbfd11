"""The README's Python examples run as written (offline: they use the fake cloud)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_python_example_in_the_readme_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    session: dict[str, object] = {"__name__": "readme"}  # one session, as a reader's
    for block in blocks:
        exec(compile(block, "README.md", "exec"), session)

"""Colour for the text renderings of plans and drift reports, on a terminal only.

The text is rendered exactly as for a pipe (render/text.py, render/drift.py) and styled
afterwards line by line, so the coloured and plain outputs cannot say different things:
strip the colour and the bytes are the same. `rich` is imported only when colouring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from navarch_plan.render.text import SYMBOLS

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["KIND_STYLES", "line_style", "colorize"]

# Terraform's convention: green adds, red deletes, yellow replaces and updates in
# place; adopt and forget change no instance, so they are quieter.
KIND_STYLES = {"create": "green", "delete": "red", "replace": "yellow", "adopt": "cyan",
               "forget": "dim", "update": "yellow"}

_SYMBOL_STYLES = {SYMBOLS[kind]: style for kind, style in KIND_STYLES.items()
                  if kind in SYMBOLS}
_SYMBOL_STYLES.update({"-/+": KIND_STYLES["replace"], "+/-": KIND_STYLES["replace"]})

# Lines recognised by how they start; action heads are matched separately below.
_PREFIX_STYLES = (
    ("Warning: ", "bold yellow"),
    ("Objects have changed outside of navarch", "bold"),
    ("Drift in workspace ", "bold"),
    ("  ! ", "magenta"),
    ("Interrupted provision of ", "yellow"),
    ("  # ", "bold"),
    ("Plan: ", "bold"),
    ("No changes.", "green"),
    ("No drift:", "green"),
)


def line_style(line: str) -> str | None:
    """The style of one rendered line, or None to leave it plain.

    Action heads are `"  " + symbol right-aligned in 3 + " " + address` (text.py), so the
    symbol sits in columns 2-4; field lines under them are indented 8 and stay plain."""
    head = line[2:5]
    if line.startswith("  ") and line[5:6] == " " and head.strip() in _SYMBOL_STYLES \
            and head == f"{head.strip():>3}":
        return _SYMBOL_STYLES[head.strip()]
    return next((style for prefix, style in _PREFIX_STYLES if line.startswith(prefix)), None)


def colorize(text: str) -> Text:
    """`text` as a rich Text with each line styled; the characters are unchanged."""
    from rich.text import Text

    styled = Text(end="")
    for number, line in enumerate(text.split("\n")):
        if number:
            styled.append("\n")  # unstyled, so no colour runs on past the end of a line
        styled.append(line, style=line_style(line))
    return styled

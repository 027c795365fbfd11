"""Counted nouns, said right: "1 node", "2 nodes", never "node(s)" or "1 nodes". A leaf
module (no imports), so the planner, the renderings and the CLI can all use it."""

from __future__ import annotations

__all__ = ["plural"]

_IRREGULAR = {"address": "addresses", "was": "were", "is": "are", "has": "have"}


def plural(count: int, word: str, many: str | None = None) -> str:
    """`count` and `word`, the word in the plural unless count is 1 (`many` when the
    plural is not `word + "s"` and not one of the few irregular words we use)."""
    if count == 1:
        return f"{count} {word}"
    if many is None:  # the last word takes the plural: "more address" -> "more addresses"
        head, _, last = word.rpartition(" ")
        many = head + (" " if head else "") + _IRREGULAR.get(last, last + "s")
    return f"{count} {many}"

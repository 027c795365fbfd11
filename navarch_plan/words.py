"""Counted nouns, said right: "1 node", "2 nodes", never "node(s)" or "1 nodes"; and the
"did you mean" hint for a mistyped name. A leaf module (the standard library only), so
the config, the planner, the renderings and the CLI can all use it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean", "noun", "plural"]

_IRREGULAR = {"address": "addresses", "was": "were", "is": "are", "has": "have"}


def plural(count: int, word: str, many: str | None = None) -> str:
    """`count` and `word`, the word in the plural unless count is 1 (`many` when the
    plural is not `word + "s"` and not one of the few irregular words we use)."""
    return f"{count} {noun(count, word, many)}"


def noun(count: int, word: str, many: str | None = None) -> str:
    """`word` as it goes with `count`, without the number: "is"/"are", "node"/"nodes"."""
    if count == 1:
        return word
    if many is None:  # the last word takes the plural: "more address" -> "more addresses"
        head, _, last = word.rpartition(" ")
        many = head + (" " if head else "") + _IRREGULAR.get(last, last + "s")
    return many


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """" (did you mean 'x'?)" naming the closest known word, or "" when none is close."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""

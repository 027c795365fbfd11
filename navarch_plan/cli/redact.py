"""Keeping secrets out of output: every value the config took from the environment
(`${NAME}`) and every key a provider reads from it is replaced by `[redacted]` in all
that the CLI prints, errors and tracebacks included. Values shorter than MIN_LENGTH
are left alone: redacting `1` or `us` would garble every line (keep non-secret settings
literal in the config, or short)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TextIO

__all__ = ["MIN_LENGTH", "Redactor", "RedactingStream"]

MIN_LENGTH = 4
MARK = "[redacted]"


class Redactor:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        new = {v for v in values if len(v) >= MIN_LENGTH} - self._values
        if new:
            self._values |= new
            # Longest first: a value that contains another is replaced whole.
            alternatives = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in alternatives))

    def __call__(self, text: str) -> str:
        return self._pattern.sub(MARK, text) if self._pattern is not None else text


class RedactingStream:
    """A text stream that redacts what is written to it (for rich's console): every
    other attribute is the wrapped stream's, so terminal detection still works."""

    def __init__(self, stream: TextIO, redact: Redactor) -> None:
        self._stream, self._redact = stream, redact

    def write(self, text: str) -> int:
        return self._stream.write(self._redact(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

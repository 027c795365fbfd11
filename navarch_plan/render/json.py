"""The JSON rendering: the versioned document itself, stable key order."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["render_json"]


def render_json(document: dict[str, Any] | list[Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"

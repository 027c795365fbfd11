"""The JSON Schemas in `schemas/`: one source of truth, shipped as package data.

An installed wheel carries them as `navarch_plan/schemas/` (hatch force-include);
a source checkout (editable install, tests) reads the top-level `schemas/` folder.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["load_schema", "schema_path", "validator", "write_config_schema"]

_PACKAGED = Path(__file__).parent / "schemas"
_SOURCE = Path(__file__).parent.parent / "schemas"


def schema_path(name: str) -> Path:
    folder = _PACKAGED if _PACKAGED.is_dir() else _SOURCE
    return folder / f"{name}.schema.json"


@cache
def load_schema(name: str) -> dict[str, Any]:
    return json.loads(schema_path(name).read_text())


@cache
def validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema(name))


def write_config_schema() -> None:
    """Rewrite schemas/navarch.schema.json from the built-in provider types (a
    developer's tool: `python -m navarch_plan.schemas`), after a type's options change."""
    from navarch_plan.config.schema import config_schema
    from navarch_plan.providers.registry import builtin_types

    text = json.dumps(config_schema(builtin_types()), indent=2) + "\n"
    schema_path("navarch").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write_config_schema()

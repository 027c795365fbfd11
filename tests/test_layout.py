"""The layout keeps the pure core pure: importing the planner, the config or the plan
loads no effect (no state store, lock or file layer, no executor, provider, engine or
CLI, no cloud SDK), and no module of the package imports in a circle."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "navarch_plan"
EFFECTS = ("navarch_plan.state.lock", "navarch_plan.state.stores", "navarch_plan.state.files",
           "navarch_plan.state.journal", "navarch_plan.apply", "navarch_plan.providers",
           "navarch_plan.engine", "navarch_plan.refresh", "navarch_plan.bookkeeping",
           "navarch_plan.cli", "boto3", "botocore", "google",
           "httpx", "sqlite3", "rich")
# The provider interface is pure data and Protocols: the config checks nodes against a
# provider type's declared rules without building a provider.
INTERFACE = ("navarch_plan.providers", "navarch_plan.providers.base")


def _loaded_by(module: str) -> list[str]:
    probe = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


def test_the_pure_core_imports_no_effect() -> None:
    for core in ("navarch_plan.planner", "navarch_plan.config", "navarch_plan.plan",
                 "navarch_plan.render.text", "navarch_plan.render.markdown"):
        loaded = _loaded_by(core)
        bad = [m for m in loaded if m.startswith(EFFECTS) and m not in INTERFACE]
        assert bad == [], f"{core} loads {bad}"


def _module_level(tree: ast.Module) -> list[ast.AST]:
    """Statements run when the module loads (also inside `if TYPE_CHECKING:` and
    `try:`), not those in function bodies: a function's import is deferred on purpose
    (a provider type's factory importing its SDK-backed client) and cannot make a cycle
    at import time."""
    found: list[ast.AST] = []
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        found.append(node)
        if isinstance(node, ast.If | ast.Try):
            todo.extend([*node.body, *node.orelse,
                         *(getattr(node, "finalbody", [])),
                         *(s for h in getattr(node, "handlers", []) for s in h.body)])
    return found


def _imports(path: Path, names: set[str]) -> set[str]:
    found = set()
    for node in _module_level(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found & names


def test_no_module_imports_in_a_circle() -> None:
    """At load time (see _module_level); type-checking imports count too."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = {m: _imports(p, set(modules)) - {m} for m, p in modules.items()}
    # A package's __init__ re-exporting its children is not a cycle of theirs.
    for m in graph:
        graph[m] = {t for t in graph[m] if not m.startswith(t + ".")}
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            assert state.get(t) != 1, " -> ".join([*trail, m, t])
            if t not in state:
                visit(t, [*trail, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_the_public_face_lists_names_that_resolve_and_imports_nothing_early() -> None:
    import navarch_plan

    # Only the few lines that make the names lazy load with the package.
    loaded = [m for m in _loaded_by("navarch_plan") if m.startswith("navarch_plan.")]
    assert loaded == ["navarch_plan.lazy"]
    for name in navarch_plan.__all__:
        assert getattr(navarch_plan, name) is not None, name
    assert navarch_plan.FakeProvider is __import__(
        "navarch_plan.providers.fake", fromlist=["FakeProvider"]).FakeProvider

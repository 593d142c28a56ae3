"""The package structure docs/architecture.md draws, checked from the source.

- Each package imports only itself and the packages below it (``LAYERS``), so ``core`` imports
  no domain and nothing but ``web`` imports ``web``.
- No two modules import each other at module level, directly or through others.
- No module outside ``tests/`` and ``bench/`` is over 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
# Bottom to top: a package may import the ones before it in this list.
LAYERS = ["core", "staff", "workers", "nlu", "knowledge", "conversations", "handoff",
          "analytics", "bot", "web"]
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path, *, module_level: bool) -> list[tuple[int, str]]:
    """(line, imported module) for every absolute import; with ``module_level``, only those
    that run when the module is imported (not inside functions or ``TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes: list[ast.AST] = []
    if module_level:
        stack: list[ast.AST] = list(tree.body)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.If | ast.Try | ast.With):
                stack.extend(ast.iter_child_nodes(node))
            nodes.append(node)
    else:
        nodes = list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return out


def test_each_package_imports_only_itself_and_the_packages_below_it() -> None:
    wrong = []
    for name, path in _modules().items():
        package = name.split(".")[0]
        allowed = set(LAYERS[:LAYERS.index(package) + 1])
        for line, imported in _imports(path, module_level=False):
            top = imported.split(".")[0]
            if top in LAYERS and top not in allowed:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {top}")
    assert not wrong, "imports that run up the layers:\n" + "\n".join(sorted(set(wrong)))


def test_no_import_cycle_at_module_level() -> None:
    modules = _modules()
    graph = {name: sorted({imported for _, imported in _imports(path, module_level=True)
                           if imported in modules and imported != name})
             for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while (member := stack.pop()) != node:
                on_stack.discard(member)
                component.append(member)
            on_stack.discard(node)
            if component:
                cycles.append(sorted([node, *component]))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, f"module-level import cycles: {cycles}"


def test_no_module_over_400_lines() -> None:
    long = {str(path.relative_to(ROOT)): n for path in _modules().values()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"

"""The import graph of pytest_mlcheck: no cycles, and nothing imports the plugin module back.

Read from the source with ``ast`` (nothing is imported), counting imports inside
functions too: a lazy import that closes a cycle is still a cycle, it only fails later.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_mlcheck

PACKAGE = Path(pytest_mlcheck.__file__).parent
NAME = "pytest_mlcheck"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _known(target: str, modules: dict[str, Path]) -> str:
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target


def import_graph() -> dict[str, set[str]]:
    """Return module -> the package modules it imports (at module level or lazily)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [f"{module}.{a.name}" for a in node.names] + [module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                if target == NAME or target.startswith(NAME + "."):
                    hit = _known(target, modules)
                    if hit and hit != name:
                        graph[name].add(hit)
                        break
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return every cycle a depth-first walk meets, each as a path back to its start."""
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def test_the_package_has_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 20 and "pytest_mlcheck.compare" in graph["pytest_mlcheck.metrics"]
    assert find_cycles(graph) == []


def test_nothing_imports_the_plugin_module():
    graph = import_graph()
    assert [m for m, targets in graph.items() if "pytest_mlcheck.plugin" in targets] == []


def test_the_cycle_finder_finds_a_seeded_cycle():
    # Seeded fault: metrics importing the plugin that imports metrics (the old design).
    graph = {"plugin": {"metrics", "session"}, "metrics": {"plugin", "compare"},
             "session": set(), "compare": set()}
    assert find_cycles(graph) == [["metrics", "plugin", "metrics"]]
    graph["metrics"].discard("plugin")
    assert find_cycles(graph) == []

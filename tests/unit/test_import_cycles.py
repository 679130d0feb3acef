"""No import cycle among the project's packages, nor among the modules inside them.

Read from the source (AST), not by importing, so an import done inside a function counts too: a
cycle hidden in a function still ties two modules' start-up together and breaks when one of them
is imported first from a new place.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from stackctl import paths

PACKAGES = ("stackctl", "loadtest", "bench", "handlers", "models")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(paths.ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in (paths.ROOT / package).rglob("*.py")}


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules that `path` (module `name`) imports, anywhere in its body."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports the module pkg.mod when there is one, else pkg itself
            candidates = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in known:  # `import a.b.c` -> the deepest project module
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                found.add(candidate)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def module_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imported(path, name, set(modules)) for name, path in modules.items()}


def test_no_cycle_between_modules(module_graph) -> None:
    assert cycles(module_graph) == []


def test_no_cycle_between_packages(module_graph) -> None:
    packages: dict[str, set[str]] = {}
    for name, targets in module_graph.items():
        top = name.split(".")[0]
        packages.setdefault(top, set()).update(t.split(".")[0] for t in targets if t.split(".")[0] != top)
    assert cycles(packages) == [], packages


def test_the_cycle_finder_finds_cycles() -> None:
    # the two cycles this test was written against, as they were
    assert cycles({"stackctl": {"loadtest"}, "loadtest": {"stackctl"}, "bench": {"loadtest"}}) == [
        ["loadtest", "stackctl"]]
    native = {"native": {"readiness"}, "readiness": {"token_auth"}, "token_auth": {"native"}, "paths": set()}
    assert cycles(native) == [["native", "readiness", "token_auth"]]


def test_function_level_and_relative_imports_count(tmp_path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from stackctl.serve.native import free_port\n\nfrom . import paths\n")
    known = {"stackctl.serve.native", "stackctl.paths", "stackctl"}
    assert imported(source, "stackctl.mod", known) == {"stackctl.serve.native", "stackctl.paths"}

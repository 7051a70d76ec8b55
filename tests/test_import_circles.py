"""No import circles in the core or in a plugin: modules whose imports lead back to themselves.

Every import counts, wherever it is written (at the top, inside a function, under
``TYPE_CHECKING``): a circle hidden in a function is still two modules that need each other. A
module's import of its own parent packages does not (Python imports those first in any case).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from _support import ROOT


def _modules(root: Path) -> dict[str, Path]:
    """Every module of the core and the plugins under ``root``, by dotted name."""
    out = {}
    for src in [root / "core" / "src", *sorted((root / "plugins").glob("*/src"))]:
        for path in src.rglob("*.py"):
            parts = path.relative_to(src).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The modules of ``known`` that ``name`` imports, its own parent packages left out."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                yield target


def _circles(root: Path = ROOT) -> list[frozenset[str]]:
    """The strongly connected components of the import graph that hold more than one module."""
    known = _modules(root)
    graph = {name: set(_imports(name, path, known)) for name, path in known.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def test_no_import_circles_in_the_core_or_the_plugins():
    circles = _circles()
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(sorted(c)) for c in circles)


def test_the_circle_finder_finds_a_circle(tmp_path):
    src = tmp_path / "core" / "src" / "pkg"
    src.mkdir(parents=True)
    (tmp_path / "plugins").mkdir()
    (src / "__init__.py").write_text("")
    (src / "a.py").write_text("def f():\n    from pkg.b import g\n")  # a lazy import counts
    (src / "b.py").write_text("from . import a\nfrom pkg import c\n")
    (src / "c.py").write_text("import pkg\n")  # its own package: not an arrow
    assert _circles(tmp_path) == [frozenset({"pkg.a", "pkg.b"})]

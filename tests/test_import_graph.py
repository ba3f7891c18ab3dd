"""No import circle inside ``tl_toolkit/``: every runtime import counts, those inside functions included.

The graph is read from the source with ``ast``: an edge ``a -> b`` for each
``from .b import ...`` / ``from . import b`` / ``import tl_toolkit.b`` in module
``a`` outside ``if TYPE_CHECKING:`` blocks (those never run). A function-level
import still closes a circle at run time, so it counts like a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tl_toolkit"

# Circles that exist on main and still need breaking; a new one fails the test.
KNOWN: set[frozenset[str]] = set()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, modules: set[str]) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(a.name for a in node.names)
            elif node.module and node.module.startswith("tl_toolkit."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("tl_toolkit."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found & modules


def import_graph() -> dict[str, set[str]]:
    """Module name -> the package modules it imports at run time."""
    files = {p.stem: p for p in PACKAGE.glob("*.py")}
    return {name: _imports(ast.parse(path.read_text()), set(files)) - {name} for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_checker_finds_a_function_level_circle() -> None:
    a = ast.parse("def f():\n    from ._b import x\n")
    b = ast.parse("from ._a import y\nif TYPE_CHECKING:\n    from ._c import z\n")
    graph = {"_a": _imports(a, {"_a", "_b", "_c"}), "_b": _imports(b, {"_a", "_b", "_c"}), "_c": set()}
    assert graph["_b"] == {"_a"}  # the TYPE_CHECKING import never runs
    assert cycles(graph) == [frozenset({"_a", "_b"})]


def test_no_new_import_circle_in_the_package() -> None:
    found = set(cycles(import_graph()))
    new = sorted(sorted(c) for c in found - KNOWN)
    assert not new, f"import circles in tl_toolkit/: {new}"

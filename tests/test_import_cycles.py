"""No import cycles in `src/countersign`, neither at module level nor hidden in a function.

A cycle makes the import order matter: whichever module a process happens to import first sees
the other half-initialised. Moving the import into a function hides the cycle without removing
it, so imports inside functions count here too. Imports under `if TYPE_CHECKING:` never run and
do not count (ORM relationships between `models/` files use them with string targets).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "countersign"


def _module_names() -> dict[str, Path]:
    names: dict[str, Path] = {}
    for path in (SRC / PACKAGE).rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(
    node: ast.AST, *, in_function: bool
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under `node` that runs, and whether it sits in a function."""
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for branch in node.orelse:
            yield from _imports(branch, in_function=in_function)
        return
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node, in_function
        return
    inside = in_function or isinstance(
        node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
    )
    for child in ast.iter_child_nodes(node):
        yield from _imports(child, in_function=inside)


def _targets(
    statement: ast.Import | ast.ImportFrom,
    module: str,
    is_package: bool,
    names: dict[str, Path],
) -> set[str]:
    """The project modules an import statement loads (a `from x import y` loads `x.y` if it is a
    module, else `x`)."""
    found: set[str] = set()
    if isinstance(statement, ast.Import):
        found.update(alias.name for alias in statement.names if alias.name in names)
    else:
        if statement.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - statement.level + 1]
            target = ".".join(
                [*base, *([statement.module] if statement.module else [])]
            )
        else:
            target = statement.module or ""
        for alias in statement.names:
            submodule = f"{target}.{alias.name}"
            if submodule in names:
                found.add(submodule)
            elif target in names:
                found.add(target)
    found.discard(module)
    return found


def _graphs() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module-level imports, all imports that run) of every project module."""
    names = _module_names()
    top: dict[str, set[str]] = {name: set() for name in names}
    every: dict[str, set[str]] = {name: set() for name in names}
    for name, path in names.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for statement, in_function in _imports(tree, in_function=False):
            targets = _targets(statement, name, path.name == "__init__.py", names)
            every[name].update(targets)
            if not in_function:
                top[name].update(targets)
    return top, every


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
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


def _describe(cycles: list[list[str]]) -> str:
    return "; ".join(" <-> ".join(cycle) for cycle in cycles)


def test_the_scan_sees_the_package() -> None:
    top, every = _graphs()
    assert "countersign.app" in top
    assert "countersign.wiring" in top["countersign.app"]
    assert "countersign.app" in every["countersign.cli"]  # imported inside cmd_serve


def test_no_module_level_import_cycle() -> None:
    top, _ = _graphs()
    cycles = _cycles(top)
    assert not cycles, f"module-level import cycles: {_describe(cycles)}"


def test_no_cycle_hidden_behind_a_function_local_import() -> None:
    _, every = _graphs()
    cycles = _cycles(every)
    assert not cycles, (
        "import cycles once imports inside functions count (move the shared part to a module "
        f"both can import, e.g. countersign.wiring): {_describe(cycles)}"
    )


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ],
)
def test_the_cycle_finder(
    graph: dict[str, set[str]], expected: list[list[str]]
) -> None:
    assert _cycles(graph) == expected

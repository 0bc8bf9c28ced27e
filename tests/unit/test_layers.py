"""The shape of the package, checked on its source: the pure core imports no I/O, modules import
each other without cycles and only at the top, and no hand-written module grows past ~400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "luasched"
GENERATED = PACKAGE / "_sync"
MODULES = sorted(PACKAGE.rglob("*.py"))
HAND_WRITTEN = [p for p in MODULES if GENERATED not in p.parents]
PURE = sorted((PACKAGE / "core").glob("*.py")) + [PACKAGE / "errors.py"]
#: What the pure core must never import, directly or from a submodule.
IO_MODULES = ("redis", "asyncio", "threading", "fakeredis", "hiredis")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports(path: Path, *, runtime_top_level: bool) -> list[tuple[str, int]]:
    """(module imported, line) for each import in ``path``: with ``runtime_top_level`` only those
    that run when the module is imported (top level or a top-level try, not under TYPE_CHECKING),
    else all."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes: list[ast.AST] = []
    if runtime_top_level:
        for node in tree.body:
            if isinstance(node, ast.If) and is_type_checking(node):
                continue
            # ``try: import x`` / ``except ImportError`` at the top (an optional extra) runs on import too
            nodes.extend(node.body if isinstance(node, ast.Try) else [node])
    else:
        nodes = list(ast.walk(tree))
    found = []
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names]
            found += [(n if _is_module(n) else base, node.lineno) for n in names]
    return found


def _is_module(dotted: str) -> bool:
    if not dotted.startswith("luasched"):
        return False
    relative = Path(*dotted.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").exists() or (PACKAGE / relative / "__init__.py").exists()


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_core_imports_no_io(path: Path) -> None:
    bad = [(name, line) for name, line in imports(path, runtime_top_level=False)
           if name.split(".")[0] in IO_MODULES]
    assert bad == [], f"{path.relative_to(PACKAGE)} imports I/O: {bad}"


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_core_imports_only_the_core(path: Path) -> None:
    outside = [(name, line) for name, line in imports(path, runtime_top_level=False)
               if name.startswith("luasched") and not name.startswith(("luasched.core", "luasched.errors"))]
    assert outside == [], f"{path.relative_to(PACKAGE)} reaches out of the core: {outside}"


def test_luasched_modules_are_imported_at_the_top_only() -> None:
    """An import inside a function is how a cycle hides: there are none."""
    late = []
    for path in MODULES:
        top = set(imports(path, runtime_top_level=True))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {(name, line) for node in tree.body if isinstance(node, ast.If) and is_type_checking(node)
                       for name, line in imports_in(node, path)}
        for name, line in imports(path, runtime_top_level=False):
            if name.startswith("luasched") and (name, line) not in top | typing_only:
                late.append(f"{path.relative_to(PACKAGE)}:{line} imports {name}")
    assert late == []


def imports_in(node: ast.If, path: Path) -> list[tuple[str, int]]:
    lines = {n.lineno for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return [(name, line) for name, line in imports(path, runtime_top_level=False) if line in lines]


def find_cycles(graph: dict[str, set[str]]) -> list[str]:
    cycles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        me = module_name(path)
        graph[me] = {name for name, _ in imports(path, runtime_top_level=True)
                     if name.startswith("luasched.") and name != me}
    assert find_cycles(graph) == []


def test_the_checks_are_not_vacuous(tmp_path: Path) -> None:
    sample = PACKAGE / "core" / "ops.py"
    found = dict(imports(sample, runtime_top_level=True))
    assert "luasched.core.calls" in found and "luasched.errors" in found
    assert any(name == "luasched.core.tasks" for name in found)
    assert len(HAND_WRITTEN) > 20 and len(PURE) >= 8
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    assert find_cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


@pytest.mark.parametrize("path", HAND_WRITTEN, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_hand_written_module_is_over_400_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= 400, f"{path.relative_to(PACKAGE)} has {lines} lines: split it by what its parts do"

"""The house rules of the source tree: packages talk through public modules, the data flows
one way (coordinator -> diagnose_redis -> diagnose), and no module-level import cycle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGES = ("diagnose", "diagnose_redis", "coordinator")
# Who may import whom: the data flows one way.
ALLOWED = {
    "diagnose": {"diagnose"},
    "diagnose_redis": {"diagnose_redis", "diagnose"},
    "coordinator": {"coordinator", "diagnose_redis", "diagnose"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (SRC / package).rglob("*.py"):
            parts = list(path.relative_to(SRC).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(path: Path, module: str, *, top_level_only: bool) -> Iterator[str]:
    """Yield the absolute names of the modules path imports."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(nodes: list[ast.stmt]) -> Iterator[ast.stmt]:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            yield node
            if not top_level_only:
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.stmt):
                        yield from visit([child])

    for node in visit(tree.body):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            yield base
            for alias in node.names:
                yield f"{base}.{alias.name}"


def test_packages_import_each_other_through_public_modules_only() -> None:
    """No module imports a private module (a ``_name`` part) of another package, and no
    package imports one downstream of it (diagnose never imports diagnose_redis...)."""
    modules = _modules()
    assert "diagnose_redis.protocol.codec" in modules and "coordinator.cli" in modules
    wrong = []
    for module, path in modules.items():
        own = module.split(".")[0]
        for name in _imports(path, module, top_level_only=False):
            other = name.split(".")[0]
            if other not in PACKAGES:
                continue
            if other not in ALLOWED[own]:
                wrong.append(f"{module} imports {name} (against the data flow)")
            elif other != own and any(part.startswith("_") for part in name.split(".")[1:]):
                wrong.append(f"{module} imports {name} (private to {other})")
    assert wrong == []


def test_no_module_level_import_cycle() -> None:
    """The modules' top-level imports form no cycle, so any module imports first."""
    modules = _modules()
    assert "diagnose.managers" in modules
    graph = {
        module: {
            name
            for name in _imports(path, module, top_level_only=True)
            if name in modules and name != module
        }
        for module, path in modules.items()
    }
    # A package's __init__ is imported with any of its modules: not an edge of a cycle.
    for module, edges in graph.items():
        edges -= {m for m in edges if module.startswith(m + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(module: str, stack: list[str]) -> None:
        state[module] = 1
        for name in sorted(graph[module]):
            if state.get(name) == 1:
                cycles.append(stack[stack.index(name) :] + [name])
            elif name not in state:
                walk(name, [*stack, name])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert cycles == []

"""The architecture's boundaries, checked: trio only where IO happens, aiohttp only in web/."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRIO_ALLOWED = {"relay/bus.py", "relay/app.py"}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def relay_import_graph() -> dict[str, set[str]]:
    """Each relay module -> the relay modules it imports, at any depth in the file (a lazy import
    inside a function still ties the two modules) except under ``if TYPE_CHECKING``."""
    modules = {module_name(p): p for p in (ROOT / "relay").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
                   for n in ast.walk(node)}
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] when the graph is acyclic."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str]:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return []
        path.append(node)
        for target in sorted(graph[node]):
            if cycle := visit(target):
                return cycle
        path.pop()
        done.add(node)
        return []

    for node in sorted(graph):
        if cycle := visit(node):
            return cycle
    return []


def test_find_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_relay_has_no_import_cycle() -> None:
    graph = relay_import_graph()
    assert "relay.app" in graph["relay.cli"]  # the graph sees lazy imports
    assert find_cycle(graph) == []


def test_trio_only_in_drivers_bus_and_app() -> None:
    offenders = [
        str(p.relative_to(ROOT)) for p in (ROOT / "relay").rglob("*.py")
        if "trio" in imports(p)
        and str(p.relative_to(ROOT)) not in TRIO_ALLOWED
        and "drivers" not in p.parts
    ]
    assert offenders == []


def relay_modules(path: Path) -> set[str]:
    """The relay modules ``path`` imports, by full name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {name for name in names if name.split(".")[0] == "relay"}


def test_aiohttp_only_in_web_and_web_imports_only_the_status_schema_of_relay() -> None:
    assert [p for p in (ROOT / "relay").rglob("*.py") if "aiohttp" in imports(p)] == []
    for path in (ROOT / "web").rglob("*.py"):
        if "node_modules" in path.parts:
            continue
        assert "trio" not in imports(path), path
        assert relay_modules(path) <= {"relay.status_schema", "relay.backoff"}, path
    # the one shared module: the standard library and msgspec, nothing of either process
    assert imports(ROOT / "relay" / "status_schema.py") == {"__future__", "msgspec"}
    assert imports(ROOT / "relay" / "backoff.py") == {"random"}

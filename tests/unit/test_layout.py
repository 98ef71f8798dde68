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
        assert relay_modules(path) <= {"relay.status_schema"}, path
    # the one shared module: the standard library and msgspec, nothing of either process
    assert imports(ROOT / "relay" / "status_schema.py") == {"__future__", "msgspec"}

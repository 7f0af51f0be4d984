"""Architecture contracts: the layers import only downwards, nothing imports in a circle, and the
engine, report, config and CLI never import Qt."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "tl_desktop"

QT_FREE_MODULES = [
    "tl_desktop.config",
    "tl_desktop.cli",
    "tl_desktop.engine",
    "tl_desktop.report",
]

# Floors, lowest first: a module may import only from its own floor or from floors below it.
# The engine's wings are floors of their own, in this order.
LAYERS: list[tuple[str, ...]] = [
    ("tl_desktop.fileio", "tl_desktop.resources", "tl_desktop"),
    ("tl_desktop.config",),
    ("tl_desktop.engine.runtime",),
    ("tl_desktop.engine.data",),
    ("tl_desktop.engine.models",),
    ("tl_desktop.engine.deploy",),
    ("tl_desktop.engine.caching",),
    ("tl_desktop.engine.training",),
    ("tl_desktop.engine.evaluation",),
    ("tl_desktop.engine.workflows",),
    ("tl_desktop.report",),
    ("tl_desktop.gui", "tl_desktop.commands"),
    ("tl_desktop.selftest", "tl_desktop.window_command", "tl_desktop.cli", "tl_desktop.__main__"),
]
# Rooms on one floor that must not import each other.
SEPARATE = [("tl_desktop.gui", "tl_desktop.commands")]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every tl_desktop module ``path`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != here:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    graph = {name: imported_modules(path, known) for name, path in files.items()}
    # A package's __init__ is imported on the way to any of its modules; that edge is not a dependency.
    return {name: {t for t in targets if not name.startswith(t + ".") and t != "tl_desktop"}
            for name, targets in graph.items()}


def floor(module: str) -> tuple[int, str]:
    best = (-1, "")
    for index, room in ((i, r) for i, rooms in enumerate(LAYERS) for r in rooms):
        if (module == room or module.startswith(room + ".")) and len(room) > len(best[1]):
            best = (index, room)
    assert best[0] >= 0, f"{module} is on no floor: add it to LAYERS"
    return best


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for source, targets in sorted(graph.items()):
        level, room = floor(source)
        for target in sorted(targets):
            target_level, target_room = floor(target)
            if target_level > level:
                bad.append(f"{source} -> {target} (floor {level} imports floor {target_level})")
            elif {room, target_room} in [set(pair) for pair in SEPARATE]:
                bad.append(f"{source} -> {target} ({room} and {target_room} must not import each other)")
    return bad


def test_import_graph_has_no_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_nothing_imports_upwards():
    bad = upward_imports(import_graph())
    assert not bad, "imports from a lower floor to a higher one:\n" + "\n".join(bad)


def test_the_checks_see_a_planted_cycle_and_an_upward_import():
    graph = {"tl_desktop.engine.data.a": {"tl_desktop.engine.data.b"},
             "tl_desktop.engine.data.b": {"tl_desktop.engine.data.a", "tl_desktop.report.html"},
             "tl_desktop.report.html": set()}
    assert find_cycles(graph) == [["tl_desktop.engine.data.a", "tl_desktop.engine.data.b"]]
    assert upward_imports(graph) == [
        "tl_desktop.engine.data.b -> tl_desktop.report.html (floor 3 imports floor 10)"]


def test_modules_stay_small():
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines: {long}"


def test_functions_fit_on_a_screen():
    """No function over 60 lines, except the constructors of the window's pages (they lay out widgets)."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        constructors_allowed = path.parent.name == "pages"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60 and not (constructors_allowed and node.name == "__init__"):
                    long.append(f"{module_name(path)}.{node.name} ({lines} lines)")
    assert not long, "functions over 60 lines: " + ", ".join(sorted(long))


def _engine_modules() -> list[str]:
    return sorted(name for name in import_graph() if name.startswith(("tl_desktop.engine", "tl_desktop.report")))


def test_engine_report_cli_import_without_qt():
    modules = QT_FREE_MODULES + _engine_modules()
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6', 'tl_desktop.gui')))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_parser_builds_without_heavy_imports():
    code = (
        "import sys\n"
        "from tl_desktop.cli import build_parser\n"
        "build_parser()\n"
        "heavy = sorted(m for m in ('torch', 'matplotlib', 'PySide6') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

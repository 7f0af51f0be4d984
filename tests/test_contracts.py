"""Architecture contracts: the engine, report, config and CLI never import Qt."""

import subprocess
import sys

QT_FREE_MODULES = [
    "tl_desktop.config",
    "tl_desktop.cli",
    "tl_desktop.engine",
    "tl_desktop.report",
]


def _engine_modules() -> list[str]:
    import pkgutil

    import tl_desktop.engine
    import tl_desktop.report

    names = []
    for package in (tl_desktop.engine, tl_desktop.report):
        names += [f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    return names


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

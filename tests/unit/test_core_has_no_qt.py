"""The core runs without Qt: the CLI, the engine process and the tests drive it alone."""

import pkgutil
import subprocess
import sys

import desktop_app.core


def core_modules() -> list[str]:
    """Every module under desktop_app.core, sub-packages included (migrations are
    Alembic's scripts, loaded by path, not imported)."""
    found = pkgutil.walk_packages(desktop_app.core.__path__, prefix="desktop_app.core.")
    return sorted(m.name for m in found if ".migrations." not in m.name)


def test_core_imports_no_qt() -> None:
    modules = core_modules()
    assert "desktop_app.core.transfers.scheduler" in modules  # sub-packages are walked
    assert len(modules) >= 40
    script = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in modules)
        + "bad = sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken', 'PyQt',"
        " 'desktop_app.gui')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"core pulled in Qt: {result.stdout}"

import pkgutil
import subprocess
import sys

import desktop_app.core


def test_core_imports_no_qt() -> None:
    modules = [
        f"desktop_app.core.{m.name}" for m in pkgutil.iter_modules(desktop_app.core.__path__)
    ]
    assert len(modules) >= 10
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

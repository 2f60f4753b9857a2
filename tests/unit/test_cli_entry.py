"""The ``ferry`` entry point: `--version` answers before the commands are imported."""

from __future__ import annotations

import subprocess
import sys

from desktop_app import __version__


def test_version_is_answered_without_importing_the_commands() -> None:
    # Imports are what a command's start-up costs (SQLAlchemy, boto3, the
    # catalog: about half a second); time itself is measured in bench/, not here.
    probe = (
        "import sys\n"
        "from desktop_app.cli import main\n"
        "code = main(['--version'])\n"
        "heavy = sorted(m for m in ('sqlalchemy', 'boto3', 'botocore', 'desktop_app.cli.commands')"
        " if m in sys.modules)\n"
        "print(code, heavy)\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert answer.stdout.splitlines() == [f"ferry {__version__}", "0 []"]


def test_every_other_invocation_reaches_the_commands() -> None:
    answer = subprocess.run(
        [sys.executable, "-m", "desktop_app", "--help"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert "upload" in answer.stdout and "--version" in answer.stdout

"""The ``ferry`` entry point: `--version` answers before the commands are imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from desktop_app import __version__


def _lines_printed_by(probe: str) -> list[str]:
    """What a fresh interpreter running ``probe`` prints: nothing imported before."""
    answer = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return answer.stdout.splitlines()


def test_version_is_answered_without_importing_the_commands() -> None:
    # Imports are what a command's start-up costs (SQLAlchemy, boto3, the
    # catalog: about half a second); time itself is measured in bench/, not here.
    probe = (
        "import sys\n"
        "from desktop_app.cli import main\n"
        "code = main(['--version'])\n"
        # The commands are every module of the package (dispatch, parser, handlers).
        "heavy = sorted(m for m in sys.modules if m in ('sqlalchemy', 'boto3', 'botocore')"
        " or m.startswith('desktop_app.cli.'))\n"
        "print(code, heavy)\n"
    )
    assert _lines_printed_by(probe) == [f"ferry {__version__}", "0 []"]


def test_a_command_reads_no_version_and_version_after_options_still_answers() -> None:
    # The version is read (importlib.metadata, some 20 ms) only when asked for.
    probe = (
        "import sys\n"
        "from desktop_app.cli.parser import build_parser\n"
        "build_parser().parse_args(['status'])\n"
        "print('importlib.metadata' in sys.modules)\n"
    )
    assert _lines_printed_by(probe) == ["False"]
    late = subprocess.run(
        [sys.executable, "-m", "desktop_app", "--profile", "p", "--version"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (late.returncode, late.stdout) == (0, f"ferry {__version__}\n")


def test_every_other_invocation_reaches_the_commands() -> None:
    answer = subprocess.run(
        [sys.executable, "-m", "desktop_app", "--help"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert "upload" in answer.stdout
    assert "--version" in answer.stdout


def _home_with_transfers(home: Path) -> dict[str, str]:
    """A profile (SQLite catalog, a relay named) and a journal with transfers; the
    environment a command runs in there, with keys in the environment."""
    from desktop_app.core.catalog.service import open_catalog
    from desktop_app.core.journal.facts import NewTransfer
    from desktop_app.core.journal.records import SourceIdentity
    from desktop_app.core.journal.store import Journal
    from desktop_app.core.settings.paths import FerryPaths
    from desktop_app.core.settings.profiles import Profile, ProfileStore

    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FERRY_"))}
    environ.update(
        FERRY_HOME=str(home),
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        AWS_ACCESS_KEY_ID="key",
        AWS_SECRET_ACCESS_KEY="not-a-secret",
    )
    paths = FerryPaths.from_environment(environ)
    paths.ensure()
    profile = Profile(
        name="p",
        bucket="bucket",
        catalog_url=paths.default_catalog_url("p"),
        endpoint_url="http://127.0.0.1:9",  # nothing listens: nothing may ask it
        relay_nats_url="nats://127.0.0.1:4222",
    )
    ProfileStore(paths.profiles_file).save(profile, make_default=True)
    open_catalog(profile.catalog_url, owner="me").close()
    journal = Journal(paths.journal_file)
    try:
        journal.add_many(
            [
                NewTransfer(
                    f"/data/{n}.txt",
                    SourceIdentity(n + 1, n, 1, n),
                    "p",
                    "bucket",
                    f"{n}.txt",
                    "text/plain",
                    16 * 1024 * 1024,
                    1,
                )
                for n in range(5)
            ]
        )
    finally:
        journal.close()
    return environ


HEAVY = ("boto3", "botocore", "sqlalchemy", "alembic", "PySide6", "desktop_app.core.runtime.ferry")


@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["status", "--all"]])
def test_status_loads_neither_boto3_sqlalchemy_alembic_nor_qt(
    tmp_path: Path, args: list[str]
) -> None:
    # What `ferry status` reads (journal, outbox backlog) needs sqlite3 alone; the
    # time it takes is bench/startup.py's business, what it loads is checked here.
    environ = _home_with_transfers(tmp_path / "home")
    probe = (
        "import sys\n"
        "from desktop_app.cli import main\n"
        f"code = main({args!r})\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print(code, heavy, file=sys.stderr)\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=environ, timeout=60
    )
    assert answer.stderr.splitlines()[-1] == "0 []", answer.stderr
    if "--json" in args:
        document = json.loads(answer.stdout)
        assert len(document["transfers"]) == 5
        assert document["relay"] == "nats://127.0.0.1:4222"
        assert document["events"] == {"waiting": 0, "skipped": 0, "oldest_waiting": None}
    else:
        assert len(answer.stdout.splitlines()) == 5
        assert "queued" in answer.stdout


def test_the_parsers_choices_are_the_enums_values() -> None:
    from desktop_app.cli.parser import FILE_STATUSES, FINDING_KINDS
    from desktop_app.core.catalog.schema import FileStatus
    from desktop_app.core.check.findings import FindingKind

    assert tuple(s.value for s in FileStatus) == FILE_STATUSES
    assert tuple(k.value for k in FindingKind) == FINDING_KINDS

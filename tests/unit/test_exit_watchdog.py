"""The test run ends even when a test leaves a thread running (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_pytest_on(test_file: Path, patience: float) -> tuple[int, str, float]:
    """Run pytest on one file with the project's conftest; (status, stderr, seconds)."""
    env = dict(os.environ, FERRY_TEST_EXIT_PATIENCE=str(patience))
    started = time.monotonic()
    pytest_args = ["-q", "-p", "no:cacheprovider", "-p", "tests.conftest"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *pytest_args,
            "--rootdir",
            str(test_file.parent),
            str(test_file),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stderr, time.monotonic() - started


@pytest.mark.parametrize("test_passes", [True, False])
def test_a_thread_left_running_ends_the_run_with_a_failure_not_a_hang(
    tmp_path: Path, test_passes: bool
) -> None:
    test_file = tmp_path / "test_left_behind.py"
    test_file.write_text(
        "import threading, time\n\n"
        "def test_leaves_a_client_uploading():\n"
        "    threading.Thread(target=time.sleep, args=(3600,), name='client-7').start()\n"
        f"    assert {test_passes}\n"
    )
    status, stderr, seconds = run_pytest_on(test_file, patience=2)
    assert status == 1
    assert "client-7" in stderr
    assert "did not" in stderr
    assert seconds < 60


def test_a_run_that_leaves_nothing_ends_at_once_with_its_own_status(tmp_path: Path) -> None:
    test_file = tmp_path / "test_tidy.py"
    test_file.write_text("def test_tidy():\n    assert True\n")
    status, stderr, seconds = run_pytest_on(test_file, patience=30)
    assert status == 0, stderr
    assert "did not" not in stderr
    assert seconds < 25

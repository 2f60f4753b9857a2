"""The real window under Xvfb, used hard: a folder -> upload -> clear -> quit, repeated.

Each round starts `ferry FOLDER` (what a file dropped on the launcher runs)
as its own process on a virtual X screen, with faulthandler on, screenshots
of the whole screen taken every second while 1000 files upload, then presses
Ctrl+Shift+L (Clear finished, again while rows are still settling) and
Ctrl+Q with xdotool. A round passes when
the process exits 0 with no "Fatal Python error" or segfault, every file is
in the bucket and the journal says the rows were cleared. The suite runs
``FERRY_STRESS_ROUNDS`` rounds (2 by default); `make stress` runs 20.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import WeedServer
from tests.integration.transfers.test_crash import ferry_env, journal_rows

ROUNDS = int(os.environ.get("FERRY_STRESS_ROUNDS", "2"))
FILES = 1000


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: tools/ensure-system-packages installs it", pytrace=False)
    return found


@pytest.fixture(scope="module")
def xvfb() -> Iterator[str]:
    """A virtual X screen of our own (display :97 upwards, whichever is free)."""
    binary = _tool("Xvfb")
    for number in range(97, 120):
        if Path(f"/tmp/.X11-unix/X{number}").exists():
            continue
        server = subprocess.Popen(
            [binary, f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not Path(f"/tmp/.X11-unix/X{number}").exists():
            time.sleep(0.1)
        if server.poll() is None:
            try:
                yield f":{number}"
            finally:
                server.terminate()
                server.wait(timeout=10)
            return
    pytest.fail("Xvfb did not start on any display from :97 to :119", pytrace=False)


def _wait(condition: Callable[[], bool], timeout: float, every: Callable[[], None]) -> bool:
    """Wait for ``condition`` (looked at ten times a second), doing ``every`` once a
    second meanwhile (a screenshot, a key pressed again)."""
    deadline = time.monotonic() + timeout
    next_time = time.monotonic()
    while time.monotonic() < deadline:
        if condition():
            return True
        if time.monotonic() >= next_time:
            every()
            next_time = time.monotonic() + 1.0
        time.sleep(0.1)
    return condition()


@pytest.mark.parametrize("round_number", range(ROUNDS))
def test_folder_upload_clear_and_quit_under_xvfb(
    round_number: int, xvfb: str, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    xdotool, screenshot = _tool("xdotool"), _tool("import")
    home = tmp_path / "home"
    environ = {**ferry_env(home), "DISPLAY": xvfb, "QT_QPA_PLATFORM": "xcb"}
    added = subprocess.run(
        [sys.executable, "-m", "desktop_app", "profile", "add", "stress", "--bucket", bucket,
         "--endpoint-url", weed.endpoint_url],
        env=environ, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    folder = tmp_path / f"round-{round_number}"
    folder.mkdir()
    for n in range(FILES):
        (folder / f"f{n:04d}.txt").write_bytes(f"round {round_number} file {n}\n".encode() * 50)
    shots = tmp_path / "shots"
    shots.mkdir()
    window = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "desktop_app", str(folder)],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    taken: list[Path] = []

    def take_screenshot() -> None:
        target = shots / f"{len(taken):03d}.png"
        subprocess.run(
            [screenshot, "-display", xvfb, "-window", "root", str(target)],
            capture_output=True,
            timeout=30,
        )
        taken.append(target)

    def done() -> int:
        rows = journal_rows(home, "SELECT count(*) FROM transfers WHERE state = 'done'")
        if not rows:
            return 0
        count = rows[0][0]
        assert isinstance(count, int)
        return count

    try:
        assert _wait(lambda: done() == FILES or window.poll() is not None, 240, take_screenshot), (
            f"{done()} of {FILES} done"
        )
        assert window.poll() is None, "the window ended before the uploads did"

        def press(keys: str) -> None:
            found = subprocess.run(
                [xdotool, "search", "--sync", "--onlyvisible", "--name", "^Ferry$"],
                env=environ, capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            window_id = found.stdout.split()[0]
            subprocess.run(
                [xdotool, "windowfocus", "--sync", window_id, "key", "--clearmodifiers", keys],
                env=environ, check=True, timeout=30,
            )  # fmt: skip

        # The journal can be ahead of the window by a tick or two: Clear finished
        # clears what the window shows as finished, so a person presses again.
        cleared = "SELECT count(*) FROM transfers WHERE cleared_at IS NOT NULL"

        def clear() -> None:
            take_screenshot()
            press("ctrl+shift+l")

        assert _wait(lambda: journal_rows(home, cleared) == [(FILES,)], 30, clear), journal_rows(
            home, cleared
        )
        press("ctrl+q")
        code = window.wait(timeout=60)
    finally:
        if window.poll() is None:
            window.kill()
        _out, err_bytes = window.communicate(timeout=30)
    err = err_bytes.decode(errors="replace")
    assert code == 0, err[-3000:]
    assert "Fatal Python error" not in err, err[-3000:]
    assert "Segmentation fault" not in err, err[-3000:]
    assert len(taken) >= 2
    assert all(p.stat().st_size > 0 for p in taken)
    sample = folder / "f0500.txt"
    key = f"{folder.name}/f0500.txt"  # a folder keeps its name in the bucket
    body = weed.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(sample.read_bytes()).digest()
    with sqlite3.connect(home / "data" / "catalog-stress.sqlite3") as catalog:
        assert catalog.execute("SELECT count(*) FROM files WHERE status = 'active'").fetchone() == (
            FILES,
        )

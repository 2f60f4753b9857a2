"""Process hygiene: the window's engine process and sandbox server end with it.

A real `ferry sandbox --open` (the window on Qt's offscreen platform, its
engine process and the weed mini it starts) is ended the two ways a person
ends it: SIGKILL (a crash, `kill -9`, the session logging out) and a normal
quit (SIGTERM, which the window handles as Ctrl+Q). Nothing it started may
be left running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> set[int]:
    seen: set[int] = set()
    todo = [pid]
    while todo:
        for child in _children(todo.pop()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def handles_sigterm(pid: int) -> bool:
    """Whether the process has a handler of its own for SIGTERM (its SigCgt mask)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1)


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


StartWindow = Callable[[], tuple[subprocess.Popen[bytes], int, int]]


@pytest.fixture
def window_process(tmp_path: Path) -> Iterator[StartWindow]:
    """Starts `ferry sandbox --open`; returns it with its engine's and weed's pids."""
    started: list[subprocess.Popen[bytes]] = []
    spawned: set[int] = set()

    def start() -> tuple[subprocess.Popen[bytes], int, int]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FERRY_"))}
        environ.update(
            FERRY_HOME=str(tmp_path / "home"),
            QT_QPA_PLATFORM="offscreen",
            PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        )
        window = subprocess.Popen(
            [sys.executable, "-m", "desktop_app", "sandbox", "--open"],
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "window.log").open("wb"),
        )
        started.append(window)

        def find(word: str) -> int | None:
            matches = [p for p in descendants(window.pid) if word in command_line(p)]
            spawned.update(descendants(window.pid))
            return matches[0] if matches else None

        state_file = tmp_path / "home" / "data" / "sandbox" / "server.json"
        assert wait_for(lambda: find("spawn_main") is not None and state_file.exists(), 60), (
            tmp_path / "window.log"
        ).read_text()
        engine = find("spawn_main")
        weed = json.loads(state_file.read_text())["pid"]
        assert engine is not None
        assert alive(weed)
        return window, engine, weed

    yield start
    for window in started:
        if window.poll() is None:
            window.kill()
            window.wait()
    for pid in spawned:  # never leave a server behind, even when the test failed
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_sigkill_of_the_window_leaves_no_engine_and_no_sandbox_after_5_s(
    window_process: StartWindow,
) -> None:
    window, engine, weed = window_process()
    everything = descendants(window.pid)
    window.send_signal(signal.SIGKILL)
    window.wait()
    assert wait_for(lambda: not any(alive(p) for p in everything), 5), [
        command_line(p)[:120] for p in everything if alive(p)
    ]
    assert not alive(engine)
    assert not alive(weed)


def test_quitting_stops_the_sandbox_within_3_s(window_process: StartWindow, tmp_path: Path) -> None:
    window, _engine, weed = window_process()
    log = tmp_path / "home" / "logs" / "ferry.log"
    # The window has opened (its TERM handler, set after it shows, is the quit)
    # and the engine is connected (the host's log line).
    assert wait_for(
        lambda: handles_sigterm(window.pid) and "Connected: profile" in read_text(log), 60
    ), read_text(log)
    asked = time.monotonic()
    window.send_signal(signal.SIGTERM)  # what Ctrl+Q does: window.quit()
    assert wait_for(lambda: not alive(weed), 3), "the sandbox server still runs 3 s after quit"
    stopped_after = time.monotonic() - asked
    assert window.wait(timeout=30) == 0
    print(f"sandbox stopped {stopped_after:.2f} s after quit")

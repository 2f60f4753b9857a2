"""Closing and quitting the real window, against a real weed mini (#34 item 21).

Closing the window leaves Ferry in the tray while uploads or watched folders
run (said once per session, until "Don't show this again"); without a tray,
or with nothing running, closing quits. Quit asks only while uploads run,
with buttons that say what they do. Quitting mid-upload ends within 2 s and
the upload resumes at the next start, sending only what the server lacks.

The offscreen platform has no tray: tests that need one say it has.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.runtime.watcher import WatchedFolder
from desktop_app.gui import tray
from desktop_app.gui.main_window import MainWindow
from desktop_app.gui.quitting import EXPLAIN_TRAY_KEY
from tests.conftest import WeedServer
from tests.faults import Fault, FaultProxy, Request, is_part_upload
from tests.integration.transfers.test_crash import journal_rows

MIB = 1024 * 1024
QUIT_AND_RESUME = "Quit and resume later"
KEEP_UPLOADING = "Keep uploading"
KEEP_IN_TRAY = "Keep running in the tray"

MakeWindow = Callable[[], MainWindow]


def answer_when_shown(
    box_of: Callable[[], QMessageBox | None], button: str, *, silence: bool = False
) -> list[str]:
    """Click ``button`` of the box once it shows (ticking its "Don't show this
    again" first if ``silence``); the list gets the box's text, for the test."""
    seen: list[str] = []
    deadline = time.monotonic() + 30

    def look() -> None:
        box = box_of()
        if box is None or not box.isVisible():
            if time.monotonic() < deadline:
                QTimer.singleShot(20, look)
            return
        seen.append(f"{box.windowTitle()}: {box.text()} {box.informativeText()}")
        if silence:
            check = box.checkBox()
            assert check is not None
            check.setChecked(True)
        [chosen] = [b for b in box.buttons() if b.text().replace("&", "") == button]
        chosen.click()

    QTimer.singleShot(0, look)
    return seen


def with_tray(monkeypatch: pytest.MonkeyPatch) -> None:
    """A desktop with a tray (the offscreen platform has none)."""
    monkeypatch.setattr(tray, "system_tray_available", lambda: True)


def uploading(window: MainWindow) -> bool:
    return any(s.state is TransferState.UPLOADING for s in window.model.snapshots())


def journal(env: Environment, sql: str) -> list[tuple[object, ...]]:
    """Rows of the window's journal, read as another program would."""
    return journal_rows(env.paths.data_dir.parent, sql)


def stopped(window: MainWindow) -> bool:
    """The window quit: hidden, its engine process stopped."""
    return not window.isVisible() and window.backend._link is None


def slow_parts(from_part: int, seconds: float) -> Fault:
    """Parts numbered ``from_part`` and up wait ``seconds`` at the server: on the wire
    when Quit comes, as on a slow link."""

    def later_part(request: Request) -> bool:
        number = dict(p.partition("=")[::2] for p in request.query.split("&")).get("partNumber")
        return is_part_upload(request) and int(number or 0) >= from_part

    return Fault(later_part, "delay", times=1000, delay=seconds)


def test_quit_mid_upload_ends_within_2_s_and_the_upload_resumes_where_it_stopped(
    proxy_profile: Callable[..., None],
    proxy: FaultProxy,
    qtbot: QtBot,
    window_for: MakeWindow,
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    proxy_profile(part_size=5 * MIB)
    big = tmp_path / "scan.bin"
    big.write_bytes(bytes(range(256)) * (4 * 20 * 1024))  # 20 MiB: four parts
    proxy.faults.append(slow_parts(3, 60))  # parts 1 and 2 arrive; 3 and 4 hang
    window = window_for()
    window.commands.queue_paths([big])
    confirmed = "SELECT count(*) FROM parts WHERE confirmed_at IS NOT NULL"
    qtbot.waitUntil(lambda: journal(ferry_env, confirmed) == [(2,)], timeout=60_000)
    qtbot.waitUntil(lambda: uploading(window), timeout=10_000)

    asked = answer_when_shown(lambda: window.close_questions.quit_question, QUIT_AND_RESUME)
    started = time.monotonic()
    window.quit()
    took = time.monotonic() - started
    assert asked
    assert "1 upload(s) are running" in asked[0]
    assert stopped(window)
    # Before: 60 s, the wait for the parts on the wire (then killed at 90 s).
    assert took < 2.0, f"quitting took {took:.1f} s"

    # Interrupted, not failed: no attempt counted, no error kept.
    rows = journal(ferry_env, "SELECT state, attempts, error_title FROM transfers")
    assert rows == [("uploading", 0, None)]

    proxy.faults.clear()
    sent_before = len(proxy.seen)
    again = window_for()  # the next start
    qtbot.waitUntil(
        lambda: [s.state for s in again.model.snapshots()] == [TransferState.DONE],
        timeout=60_000,
    )
    body = weed.client().get_object(Bucket=bucket, Key="scan.bin")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(big.read_bytes()).digest()
    resent = sorted(
        r.query.split("partNumber=")[1].split("&")[0]
        for r in proxy.seen[sent_before:]
        if is_part_upload(r)
    )
    assert resent == ["3", "4"], "parts the server confirmed are not sent again"


def test_without_a_tray_closing_mid_upload_asks_as_quit_does(
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    window_for: MakeWindow,
    tmp_path: Path,
) -> None:
    weed_profile(part_size=5 * MIB, bandwidth_limit=2 * MIB)  # about 10 s of uploading
    big = tmp_path / "scan.bin"
    big.write_bytes(b"\x5a" * (20 * MIB))
    window = window_for()
    assert window.tray.icon is None  # offscreen: no tray
    window.commands.queue_paths([big])
    qtbot.waitUntil(lambda: uploading(window), timeout=30_000)

    asked = answer_when_shown(lambda: window.close_questions.quit_question, KEEP_UPLOADING)
    window.close()
    assert asked
    assert asked[0].startswith("Quit Ferry?: 1 upload(s) are running.")
    assert window.isVisible()
    assert window.backend._link is not None

    answer_when_shown(lambda: window.close_questions.quit_question, QUIT_AND_RESUME)
    window.close()
    assert stopped(window)


def test_closing_goes_to_the_tray_while_uploading_says_so_once_and_quit_from_the_tray_asks(
    monkeypatch: pytest.MonkeyPatch,
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    window_for: MakeWindow,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    with_tray(monkeypatch)
    weed_profile(part_size=5 * MIB, bandwidth_limit=4 * MIB)  # about 5 s of uploading
    big = tmp_path / "scan.bin"
    big.write_bytes(b"\xa5" * (20 * MIB))
    window = window_for()
    assert window.tray.icon is not None
    window.commands.queue_paths([big])
    qtbot.waitUntil(lambda: uploading(window), timeout=30_000)

    said = answer_when_shown(lambda: window.close_questions.tray_notice, KEEP_IN_TRAY)
    window.close()
    assert said
    assert "1 upload(s) go on" in said[0]
    assert "Quit (Ctrl+Q)" in said[0]
    assert not window.isVisible()
    assert window.backend._link is not None

    window.bring_to_front()  # a click on the tray icon
    assert window.isVisible()
    window.close()  # said once a session: the second time, straight to the tray
    assert not window.isVisible()
    assert window.close_questions.tray_notice is None

    # Quit in the tray's menu while the upload runs: asked, and "Keep uploading" keeps it.
    [quit_item] = [
        a for a in window.tray.icon.contextMenu().actions() if a is window.window_actions.quit
    ]
    answer_when_shown(lambda: window.close_questions.quit_question, KEEP_UPLOADING)
    quit_item.trigger()
    assert window.backend._link is not None
    qtbot.waitUntil(
        lambda: [s.state for s in window.model.snapshots()] == [TransferState.DONE],
        timeout=60_000,
    )
    body = weed.client().get_object(Bucket=bucket, Key="scan.bin")["Body"].read()
    assert body == big.read_bytes()
    # Nothing runs now: no question. Hidden in the tray, the window never "closes"
    # for Qt: the application ends on this signal.
    with qtbot.waitSignal(window.quitted, timeout=10_000):
        quit_item.trigger()
    assert stopped(window)


def test_closing_while_idle_quits_but_watched_folders_keep_ferry_in_the_tray(
    monkeypatch: pytest.MonkeyPatch,
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    window_for: MakeWindow,
    tmp_path: Path,
) -> None:
    with_tray(monkeypatch)
    weed_profile()
    idle = window_for()
    idle.close()  # nothing runs: closing is quitting, and nothing is asked
    assert stopped(idle)
    assert idle.close_questions.tray_notice is None
    assert idle.close_questions.quit_question is None

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    watching = window_for()
    watching.backend.call(Ferry.set_watched_folders, [WatchedFolder(inbox)])
    qtbot.waitUntil(lambda: bool(watching.backend.folder_statuses()), timeout=10_000)
    said = answer_when_shown(
        lambda: watching.close_questions.tray_notice, KEEP_IN_TRAY, silence=True
    )
    watching.close()
    assert said
    assert "1 watched folder(s) are still watched" in said[0]
    assert not watching.isVisible()
    assert watching.backend._link is not None
    assert watching.settings.value(EXPLAIN_TRAY_KEY, type=bool) is False
    (inbox / "saved.txt").write_text("dropped into a watched folder while in the tray")
    qtbot.waitUntil(
        lambda: [s.state for s in watching.model.snapshots()] == [TransferState.DONE],
        timeout=30_000,
    )
    watching.quit()
    assert stopped(watching)

    # "Don't show this again" is remembered in the window's settings: the next
    # session goes to the tray without a word.
    later = window_for()
    qtbot.waitUntil(lambda: bool(later.backend.folder_statuses()), timeout=10_000)
    later.close()
    assert not later.isVisible()
    assert later.close_questions.tray_notice is None
    assert later.backend._link is not None


def test_the_system_asking_ferry_to_stop_mid_upload_is_not_asked_back(
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    window_for: MakeWindow,
    tmp_path: Path,
) -> None:
    """TERM at logout, Ctrl-C in a terminal: quit_now, no question that no one answers."""
    weed_profile(part_size=5 * MIB, bandwidth_limit=2 * MIB)
    big = tmp_path / "scan.bin"
    big.write_bytes(b"\x33" * (20 * MIB))
    window = window_for()
    window.commands.queue_paths([big])
    qtbot.waitUntil(lambda: uploading(window), timeout=30_000)
    window.quit_now()
    assert stopped(window)
    assert window.close_questions.quit_question is None

"""The real window driven with the keyboard alone, against a real weed mini (#34 item 21).

A whole upload (Ctrl+O, the path typed into Qt's own file dialog), a retry of
what failed (Alt+2 to the Failed view, Alt+A for Retry all), Quit asked while
an upload runs (Ctrl+Q, answered Alt+K: keep uploading), a check (F5) and Quit:
every key goes to whatever has the focus, as a person's would.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog, QWidget
from pytestqt.qtbot import QtBot

from desktop_app.core.model.states import TransferState
from desktop_app.gui.main_window import MainWindow
from tests.conftest import WeedServer
from tests.faults import Fault, FaultProxy, Request

Key = Qt.Key
Mod = Qt.KeyboardModifier


def press(key: Key, modifier: Mod = Mod.NoModifier) -> None:
    """One key, to the widget that has the focus."""
    focused = QApplication.focusWidget()
    assert focused is not None, "nothing has the keyboard focus"
    QTest.keyClick(focused, key, modifier)


def when_focused(window_of: Callable[[], QWidget | None], act: Callable[[QWidget], None]) -> None:
    """Once the window (a dialog) shows and has the focus, act on its focused widget."""
    deadline = time.monotonic() + 30

    def look() -> None:
        window = window_of()
        focused = QApplication.focusWidget()
        if window is None or focused is None or focused.window() is not window:
            if time.monotonic() < deadline:
                QTimer.singleShot(20, look)  # not shown yet, or not yet given the focus
            return
        act(focused)

    QTimer.singleShot(0, look)


def type_into_file_dialog_when_shown(path: Path) -> list[str]:
    """Once Qt's file dialog shows, type the path where the focus is (its File name
    field) and press Enter; the list gets the dialog's title."""
    seen: list[str] = []

    def dialog() -> QWidget | None:
        shown = QApplication.activeModalWidget()
        return shown if isinstance(shown, QFileDialog) else None

    def type_path(focused: QWidget) -> None:
        seen.append(focused.window().windowTitle())
        QTest.keyClicks(focused, str(path))
        QTest.keyClick(focused, Key.Key_Return)

    when_focused(dialog, type_path)
    return seen


def focus_back(qtbot: QtBot, window: MainWindow) -> None:
    """What the window manager does when a dialog closes: the window has the focus
    again (the offscreen platform has no window manager)."""
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None, timeout=5_000)


def add_file_with_keys(qtbot: QtBot, window: MainWindow, path: Path) -> None:
    asked = type_into_file_dialog_when_shown(path)
    press(Key.Key_O, Mod.ControlModifier)  # Add files…
    assert asked == ["Add files to upload"]
    focus_back(qtbot, window)


def test_an_upload_a_retry_and_a_check_with_the_keyboard_alone(
    proxy_profile: Callable[..., None],
    proxy: FaultProxy,
    qtbot: QtBot,
    window_for: Callable[[], MainWindow],
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    proxy_profile(bandwidth_limit=2 * 1024 * 1024)
    report = tmp_path / "report.txt"
    report.write_bytes(b"quarterly figures\n" * 2000)

    def sending_report(request: Request) -> bool:
        return request.method == "PUT" and request.path.endswith("/report.txt")

    # The first attempt is refused as a person must fix it (and then retry).
    proxy.faults.append(Fault(sending_report, "status", status=403, code="AccessDenied"))
    window = window_for()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None, timeout=5_000)

    add_file_with_keys(qtbot, window, report)
    qtbot.waitUntil(
        lambda: [s.state for s in window.model.snapshots()] == [TransferState.FAILED],
        timeout=30_000,
    )
    qtbot.waitUntil(lambda: window.failed_view.model.rowCount() == 1, timeout=5_000)

    press(Key.Key_2, Mod.AltModifier)  # View → Failed, the focus in it
    assert window.tabs.currentWidget() is window.failed_view
    focused = QApplication.focusWidget()
    assert focused is not None
    assert window.failed_view.isAncestorOf(focused)
    press(Key.Key_A, Mod.AltModifier)  # Retry &all
    qtbot.waitUntil(
        lambda: [s.state for s in window.model.snapshots()] == [TransferState.DONE],
        timeout=30_000,
    )
    body = weed.client().get_object(Bucket=bucket, Key="report.txt")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(report.read_bytes()).digest()

    scan = tmp_path / "scan.bin"
    scan.write_bytes(b"\x42" * (10 * 1024 * 1024))  # 5 s at 2 MiB/s
    add_file_with_keys(qtbot, window, scan)
    qtbot.waitUntil(lambda: window.model.totals().active == 1, timeout=10_000)
    asked: list[str] = []

    def keep_uploading(focused: QWidget) -> None:
        asked.append(focused.window().windowTitle())
        QTest.keyClick(focused, Key.Key_K, Mod.AltModifier)  # &Keep uploading

    when_focused(lambda: window.close_questions.quit_question, keep_uploading)
    press(Key.Key_Q, Mod.ControlModifier)
    assert asked == ["Quit Ferry?"]
    focus_back(qtbot, window)
    assert window.isVisible()
    assert window.backend._link is not None
    qtbot.waitUntil(
        lambda: [s.state for s in window.model.snapshots()] == [TransferState.DONE] * 2,
        timeout=30_000,
    )

    press(Key.Key_F5)  # check bucket and catalog
    view = window.consistency_view
    assert window.tabs.currentWidget() is view
    qtbot.waitUntil(lambda: view.summary.text().startswith("Checked "), timeout=30_000)
    assert view.findings_model.rowCount() == 0

    press(Key.Key_Q, Mod.ControlModifier)  # Quit: nothing runs, so nothing is asked
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5_000)
    assert window.backend._link is None

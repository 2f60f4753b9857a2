"""The Failed inbox as a person reads it: errors legible, Remove says what it did."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from desktop_app.gui.failed_view import FailedColumn
from desktop_app.gui.main_window import MainWindow


def test_errors_are_legible_and_remove_says_the_transfers_were_removed(
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    window_for: Callable[[], MainWindow],
    tmp_path: Path,
) -> None:
    weed_profile()
    window = window_for()
    window.resize(1000, 600)  # the window's first size
    fifos = [tmp_path / f"Payroll-{n}.xlsx" for n in range(2)]
    for fifo in fifos:
        os.mkfifo(fifo)  # not a regular file: fails at once, for good
    window.queue_paths(fifos)
    inbox = window.failed_view
    qtbot.waitUntil(lambda: inbox.model.rowCount() == 2, timeout=30_000)
    window.tabs.setCurrentWidget(inbox)
    qtbot.waitExposed(inbox.table)

    error = inbox.proxy.index(0, FailedColumn.ERROR)
    title = "Not a regular file:"
    assert error.data().startswith(title)
    needed = inbox.table.fontMetrics().horizontalAdvance(f"{title} /tmp/pytest-of-someone/")
    assert inbox.table.columnWidth(FailedColumn.ERROR) >= needed  # not "Not a r…"
    window.resize(1600, 600)  # wider: the Error column takes the room
    qtbot.waitUntil(lambda: inbox.table.columnWidth(FailedColumn.ERROR) > 700, timeout=5_000)
    # whatever does not fit is in the tooltip, whole
    assert error.data(Qt.ItemDataRole.ToolTipRole) == error.data()

    # The batch's failure notice comes first (as a person would see it), so that
    # it cannot land on top of what Remove says.
    qtbot.waitUntil(
        lambda: "2 uploads failed" in window.statusBar().currentMessage(), timeout=10_000
    )
    inbox.table.selectAll()
    inbox.remove_button.click()
    qtbot.waitUntil(lambda: inbox.model.rowCount() == 0, timeout=10_000)
    qtbot.waitUntil(
        lambda: (
            window.statusBar().currentMessage() == "2 transfer(s) removed from the Failed list."
        ),
        timeout=10_000,
    )

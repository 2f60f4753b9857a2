"""The Failed inbox as a person reads it: errors legible, Remove says what it did."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QRect, Qt
from pytestqt.qtbot import QtBot

from desktop_app.gui.main_window import MainWindow
from desktop_app.gui.views.failed_model import FailedColumn
from desktop_app.gui.widgets import first_window_geometry

# The free area of a 1366×768 screen under icewm (its taskbar takes 28 px).
LAPTOP_FREE = QRect(0, 0, 1366, 740)


def test_errors_are_legible_and_remove_says_the_transfers_were_removed(
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    window_for: Callable[[], MainWindow],
    tmp_path: Path,
) -> None:
    weed_profile()
    window = window_for()
    window.setGeometry(first_window_geometry(LAPTOP_FREE))  # its first size on a laptop
    fifos = [tmp_path / f"Payroll-{n}.xlsx" for n in range(2)]
    for fifo in fifos:
        os.mkfifo(fifo)  # not a regular file: fails at once, for good
    window.commands.queue_paths(fifos)
    inbox = window.failed_view
    qtbot.waitUntil(lambda: inbox.model.rowCount() == 2, timeout=30_000)
    window.tabs.setCurrentWidget(inbox)
    qtbot.waitExposed(inbox.table)

    error = inbox.proxy.index(0, FailedColumn.ERROR)
    title = "Not a regular file:"
    assert error.data().startswith(title)
    needed = inbox.table.fontMetrics().horizontalAdvance(f"{title} /tmp/pytest-of-someone/")
    assert inbox.table.columnWidth(FailedColumn.ERROR) >= needed  # not "Not a r…"
    # Every column in view, none cut ("never:"), no scrolling sideways.
    assert not inbox.table.horizontalScrollBar().isVisible()
    next_try = inbox.proxy.index(0, FailedColumn.NEXT_TRY)
    assert next_try.data() == "never"
    assert inbox.table.columnWidth(
        FailedColumn.NEXT_TRY
    ) >= inbox.table.fontMetrics().horizontalAdvance("never")
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


def test_the_first_window_takes_three_quarters_of_the_screen_within_its_free_area() -> None:
    laptop = first_window_geometry(LAPTOP_FREE)
    assert (laptop.width(), laptop.height()) == (1200, 600)  # its minimum on a laptop
    assert LAPTOP_FREE.contains(laptop)
    assert laptop.top() >= 40
    desktop = first_window_geometry(QRect(0, 0, 1920, 1052))
    assert (desktop.width(), desktop.height()) == (1440, 789)
    assert desktop.center().x() == 960 - 1  # centred, not in a corner
    small = first_window_geometry(QRect(0, 0, 1024, 600))
    assert small.width() == 1024
    assert small.bottom() < 600

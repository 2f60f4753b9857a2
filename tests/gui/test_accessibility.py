"""What assistive technology gets from the real window (#34 item 21).

Read through Qt's accessibility interfaces, as a screen reader reads them:
every control of every view and dialog has a name and a description, Tab
visits a view's controls in the order they are laid out, and progress and
state are text.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QHeaderView,
    QLineEdit,
    QMenu,
    QScrollBar,
    QTabBar,
    QWidget,
)
from pytestqt.qtbot import QtBot

from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.gui.dialogs.about import AboutDialog
from desktop_app.gui.dialogs.first_run import FirstRunDialog
from desktop_app.gui.dialogs.settings_dialog import SettingsDialog
from desktop_app.gui.dialogs.sign_in import SignInDialog
from desktop_app.gui.main_window import MainWindow
from desktop_app.gui.models import Column

MIB = 1024 * 1024
MakeWindow = Callable[[], MainWindow]


def said(widget: QWidget, what: QAccessible.Text) -> str:
    interface = QAccessible.queryAccessibleInterface(widget)
    assert interface is not None, widget
    return interface.text(what)


def controls(top: QWidget) -> list[QWidget]:
    """Every control a person can use in this window or dialog, shown now or not:
    buttons, and what Tab can reach. Qt's own parts of a control (scroll bars,
    headers, a spin box's editor, a combo box's list, a field's clear button, the
    tab bar's scroll arrows) speak through it or have keys of their own."""
    found = []
    for widget in [top, *top.findChildren(QWidget)]:
        if widget.window() is not top or widget.objectName().startswith("qt_"):
            continue
        if isinstance(widget, QScrollBar | QHeaderView | QMenu):
            continue
        if isinstance(widget.parentWidget(), QAbstractSpinBox | QComboBox | QLineEdit | QTabBar):
            continue
        if isinstance(widget, QAbstractButton) or widget.focusPolicy() & Qt.FocusPolicy.TabFocus:
            found.append(widget)
    return found


def unnamed(top: QWidget) -> list[str]:
    """Controls without an accessible name or description, in words for the failure."""
    return [
        f"{top.windowTitle()}: {type(w).__name__} {said(w, QAccessible.Text.Name)!r} "
        f"in {type(w.parentWidget()).__name__}"
        for w in controls(top)
        if not said(w, QAccessible.Text.Name) or not said(w, QAccessible.Text.Description)
    ]


def test_every_control_of_every_view_and_dialog_has_a_name_and_a_description(
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    window_for: MakeWindow,
    ferry_env: Environment,
    tmp_path: Path,
) -> None:
    weed_profile()
    window = window_for()
    note = tmp_path / "note.txt"
    note.write_text("a row in the list")
    window.commands.queue_paths([note])
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=30_000)
    missing = unnamed(window)  # every tab's page, shown or not
    assert len(controls(window)) > 30  # every view's buttons, fields and lists
    dialogs = [
        SettingsDialog(ferry_env, window.backend.profile_name, window),
        AboutDialog(window.backend, window),
        FirstRunDialog(ferry_env, window),
        SignInDialog(ferry_env, window.backend.profile_name, window),
    ]
    for dialog in dialogs:
        qtbot.addWidget(dialog)
        missing += unnamed(dialog)
    assert missing == [], "\n".join(missing)


def tab_through(qtbot: QtBot, first: QWidget, presses: int) -> list[str]:
    """The accessible names of the controls Tab visits from ``first``."""
    first.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is first, timeout=5_000)
    visited = [said(first, QAccessible.Text.Name)]
    for _ in range(presses):
        focused = QApplication.focusWidget()
        assert focused is not None
        QTest.keyClick(focused, Qt.Key.Key_Tab)
        now = QApplication.focusWidget()
        assert now is not None
        visited.append(said(now, QAccessible.Text.Name))
    return visited


def test_tab_visits_each_view_in_the_order_it_is_laid_out(
    weed_profile: Callable[..., None], qtbot: QtBot, window_for: MakeWindow, tmp_path: Path
) -> None:
    weed_profile()
    window = window_for()
    window.activateWindow()
    note = tmp_path / "note.txt"
    note.write_text("done soon")
    window.commands.queue_paths([note])
    qtbot.waitUntil(
        lambda: [s.state for s in window.model.snapshots()] == [TransferState.DONE],
        timeout=30_000,
    )
    qtbot.waitUntil(window.transfers_view.clear_button.isEnabled, timeout=5_000)
    # Top to bottom, left to right; from the last control back to the tabs.
    assert tab_through(qtbot, window.transfers_view.filter_edit, 3) == [
        "Filter transfers",
        "Clear finished",
        "Transfers",
        "Transfers",  # the tab bar, named by its current tab
    ]
    window.tabs.setCurrentWidget(window.consistency_view)
    view = window.consistency_view
    assert tab_through(qtbot, view.check_button, 7) == [
        "Check now",
        "Check without grace",
        "Findings",  # Stop, Repair, Delete and Export wait for a check: disabled
        "Search the catalog",
        "Key prefix",
        "Owner",
        "Any status",  # on Linux a combo box's name is its value (Qt: "use relations")
        "Search",
    ]
    window.tabs.setCurrentWidget(window.folders_view)
    assert tab_through(qtbot, window.folders_view.table, 2) == [
        "Watched folders",
        "Add folder…",
        "Watched folders",  # Remove and Pause wait for a folder: back to the tab bar
    ]


def test_progress_and_state_reach_assistive_technology_as_words(
    weed_profile: Callable[..., None], qtbot: QtBot, window_for: MakeWindow, tmp_path: Path
) -> None:
    weed_profile(part_size=5 * MIB, bandwidth_limit=4 * MIB)  # about 5 s of uploading
    big = tmp_path / "scan.bin"
    big.write_bytes(b"\x11" * (20 * MIB))
    window = window_for()
    window.commands.queue_paths([big])
    table = QAccessible.queryAccessibleInterface(window.transfers_view.table)

    def cells() -> list[str]:
        assert table is not None
        return [
            table.child(k).text(QAccessible.Text.Name)
            for k in range(table.childCount())
            if table.child(k).role() is QAccessible.Role.Cell
        ]

    def uploading_words() -> bool:
        row = cells()
        return len(row) == len(Column) and row[Column.STATE] == "Uploading"

    qtbot.waitUntil(uploading_words, timeout=30_000)
    row = cells()
    assert row[Column.NAME] == "scan.bin"
    assert row[Column.PROGRESS].endswith(" %")
    qtbot.waitUntil(
        lambda: "files" in said(window.status_panel.batch_bar, QAccessible.Text.Description)
    )
    assert said(window.status_panel.batch_bar, QAccessible.Text.Description).startswith(
        "0/1 files · "
    )
    assert said(window.status_panel.totals_label, QAccessible.Text.Name).startswith("1 active · ")
    qtbot.waitUntil(lambda: cells()[Column.STATE] == "Done", timeout=60_000)
    assert cells()[Column.PROGRESS] == "100 %"
    qtbot.waitUntil(lambda: said(window.status_panel.totals_label, QAccessible.Text.Name) == "Idle")

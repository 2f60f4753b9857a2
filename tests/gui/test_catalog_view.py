"""The Bucket & catalog view's browse: deleting files, as a person does it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMenu, QMessageBox
from pytestqt.qtbot import QtBot

from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.gui.main_window import MainWindow
from desktop_app.gui.views.consistency_view import ConsistencyView
from tests.conftest import WeedServer
from tests.gui.conftest import live_row

NAMES = ("a-report.pdf", "b-scan.tif", "c-notes.txt")


def uploaded_and_listed(
    qtbot: QtBot, window_for: Callable[[], MainWindow], tmp_path: Path
) -> tuple[MainWindow, ConsistencyView]:
    window = window_for()
    paths = []
    for name in NAMES:
        path = tmp_path / name
        path.write_bytes(f"the bytes of {name}".encode() * 50)
        paths.append(path)
    window.commands.queue_paths(paths)
    qtbot.waitUntil(
        lambda: [s.state for s in window.model.snapshots()] == [TransferState.DONE] * 3,
        timeout=30_000,
    )
    view = window.consistency_view
    window.tabs.setCurrentWidget(view)
    view.browser.search()
    qtbot.waitUntil(lambda: view.browser.files_model.rowCount() == 3, timeout=10_000)
    return window, view


def when_shown(find: Callable[[], object], kind: type, act: Callable[[Any], None]) -> None:
    """Act on a modal box or a popup as soon as it shows (give up after 5 s)."""
    tries = iter(range(250))

    def attempt() -> None:
        shown = find()
        if isinstance(shown, kind):
            act(shown)
        elif next(tries, None) is not None:
            QTimer.singleShot(20, attempt)

    QTimer.singleShot(0, attempt)


def answer_question(answer: QMessageBox.StandardButton, seen: list[dict[str, Any]]) -> None:
    """When the question box opens, note what it shows, then press ``answer``."""

    def press(box: QMessageBox) -> None:
        seen.append(
            {
                "text": box.text(),
                "more": box.informativeText(),
                "default": box.standardButton(box.defaultButton()),
            }
        )
        box.button(answer).click()

    when_shown(QApplication.activeModalWidget, QMessageBox, press)


def choose_from_menu(qtbot: QtBot, view: ConsistencyView, text: str, seen: list[str]) -> None:
    """Open the files' context menu, note its entries, click the one called ``text``."""

    def click(menu: QMenu) -> None:
        actions = [a for a in menu.actions() if not a.isSeparator()]
        seen.extend(a.text() for a in actions if a.isEnabled())
        [chosen] = [a for a in actions if a.text() == text]
        qtbot.mouseClick(  # type: ignore[no-untyped-call]  # pytest-qt leaves it unannotated
            menu, Qt.MouseButton.LeftButton, pos=menu.actionGeometry(chosen).center()
        )

    when_shown(QApplication.activePopupWidget, QMenu, click)
    row = view.browser.files_table.visualRect(view.browser.files_model.index(0, 0)).center()
    view.browser.files_table.customContextMenuRequested.emit(row)


def statuses(view: ConsistencyView) -> dict[str, FileStatus]:
    return {record.key: record.status for record in view.browser.files_model.items}


def test_delete_asks_first_with_no_as_default_and_no_deletes_nothing(
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    window_for: Callable[[], MainWindow],
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    weed_profile()
    window, view = uploaded_and_listed(qtbot, window_for, tmp_path)
    asked_for: list[str] = []
    call = window.backend.call

    def noting(method: Any, *args: Any, **kwargs: Any) -> Any:  # passes every call on
        asked_for.append(method.__name__)
        return call(method, *args, **kwargs)

    monkeypatch.setattr(window.backend, "call", noting)
    view.browser.files_table.selectAll()
    seen: list[dict[str, Any]] = []
    answer_question(QMessageBox.StandardButton.No, seen)
    view.browser.files_table.setFocus()
    qtbot.keyClick(view.browser.files_table, Qt.Key.Key_Delete)  # type: ignore[no-untyped-call]  # pytest-qt leaves it unannotated
    [question] = seen
    assert question["text"] == "Delete 3 files from the bucket?"
    assert "removes them from the catalog and deletes their objects" in question["more"]
    assert all(name in question["more"] for name in NAMES)
    assert question["default"] == QMessageBox.StandardButton.No

    menu: list[str] = []
    answer_question(QMessageBox.StandardButton.No, seen)
    choose_from_menu(qtbot, view, "&Delete…", menu)
    assert "&Delete…" in menu
    assert len(seen) == 2
    assert seen[1]["default"] == QMessageBox.StandardButton.No

    qtbot.wait(500)
    assert "delete" not in asked_for
    assert statuses(view) == dict.fromkeys(NAMES, FileStatus.ACTIVE)
    listed = weed.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(NAMES)
    assert all(live_row(ferry_env, bucket, name) is not None for name in NAMES)


def test_deleted_files_leave_bucket_and_catalog_and_the_person_reads_what_happened(
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    window_for: Callable[[], MainWindow],
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    weed_profile()
    _window, view = uploaded_and_listed(qtbot, window_for, tmp_path)
    # Another program writes over the third file's object: Ferry must leave that one.
    weed.client().put_object(Bucket=bucket, Key=NAMES[2], Body=b"someone else's bytes")
    rows = {record.key: row for row, record in enumerate(view.browser.files_model.items)}
    for name in NAMES:
        view.browser.files_table.selectionModel().select(
            view.browser.files_model.index(rows[name], 0),
            view.browser.files_table.selectionModel().SelectionFlag.Select
            | view.browser.files_table.selectionModel().SelectionFlag.Rows,
        )
    seen: list[dict[str, Any]] = []
    answer_question(QMessageBox.StandardButton.Yes, seen)
    choose_from_menu(qtbot, view, "&Delete…", [])
    assert seen[0]["text"] == "Delete 3 files from the bucket?"
    qtbot.waitUntil(lambda: "Deleted 2 files" in view.browser.object_label.text(), timeout=30_000)
    said = view.browser.object_label.text()
    assert "Removed 1 file from the catalog, but the object stayed in the bucket" in said
    assert NAMES[2] in said
    assert "another program wrote that key" in said
    # The list follows: every row is deleted now.
    qtbot.waitUntil(
        lambda: statuses(view) == dict.fromkeys(NAMES, FileStatus.DELETED), timeout=10_000
    )
    assert all(live_row(ferry_env, bucket, name) is None for name in NAMES)
    listed = weed.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [o["Key"] for o in listed] == [NAMES[2]]
    assert not view.browser.delete_files_action.isEnabled()  # nothing deletable is selected


def checked_and_closed(qtbot: QtBot, window_for: Callable[[], MainWindow]) -> None:
    window = window_for()
    window.check_now()
    view = window.consistency_view
    qtbot.waitUntil(lambda: view.summary.text().startswith("Checked "), timeout=30_000)
    window.really_quit = True
    window.close()


def test_the_last_check_is_shown_after_a_restart(
    weed_profile: Callable[..., None], qtbot: QtBot, window_for: Callable[[], MainWindow]
) -> None:
    """#34 item 12: Ferry keeps the last report; a new window asks for it and says when
    it ran and what it found, not "Not checked yet"."""
    weed_profile()
    checked_and_closed(qtbot, window_for)
    again = window_for().consistency_view
    qtbot.waitUntil(lambda: again.summary.text().startswith("Last checked "), timeout=10_000)
    assert "Bucket and catalog agreed." in again.summary.text()


def test_the_saved_report_reads_as_when_and_what_was_found(
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    window_for: Callable[[], MainWindow],
    ferry_env: Environment,
) -> None:
    """#34 item 12: the report Ferry saved, as the view shows it in a new window."""
    weed_profile()
    checked_and_closed(qtbot, window_for)
    [saved] = ferry_env.paths.data_dir.glob("last-check-*.json")
    report = json.loads(saved.read_text())
    when = datetime.fromisoformat(report["started_at"]).astimezone()
    view = window_for().consistency_view
    # The new window asks for the saved report itself (the test above); what it
    # shows is awaited first, so that its answer cannot land over the ones below.
    qtbot.waitUntil(lambda: view.summary.text().startswith("Last checked "), timeout=10_000)
    view.show_last_report(report)
    text = view.summary.text()
    assert text.startswith(f"Last checked {when:%d %b %Y at %H:%M} ("), text
    assert "0 objects and 0 records. Bucket and catalog agreed." in text
    report["counts"]["orphan_object"] = 2
    view.show_last_report(report)
    assert "Found: Object without a record: 2." in view.summary.text()
    view.show_last_report({"started_at": "yesterday"})  # not a report this Ferry reads
    assert "Object without a record: 2" in view.summary.text()


def test_a_delete_that_keeps_the_bytes_for_a_while_says_until_when(
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    window_for: Callable[[], MainWindow],
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    """A versioned bucket and a retention period: the bytes stay, hidden, until a
    date; the window says so rather than a bare "Deleted"."""
    weed.client().put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    weed_profile(retention_seconds=7 * 24 * 3600)
    _window, view = uploaded_and_listed(qtbot, window_for, tmp_path)
    rows = {record.key: row for row, record in enumerate(view.browser.files_model.items)}
    view.browser.files_table.selectRow(rows[NAMES[0]])
    answer_question(QMessageBox.StandardButton.Yes, [])
    choose_from_menu(qtbot, view, "&Delete…", [])
    qtbot.waitUntil(lambda: "Deleted 1 file" in view.browser.object_label.text(), timeout=30_000)
    said = view.browser.object_label.text()
    assert f"Of those: {NAMES[0]} (" in said, said
    assert "until" in said, said

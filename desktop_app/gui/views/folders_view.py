"""The Watched folders view: add, remove, pause folders; see their last activity and errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.runtime.watcher import FolderStatus, WatchedFolder
from desktop_app.gui.backend import Backend
from desktop_app.gui.models import TransferTableModel
from desktop_app.gui.widgets import accessible

NOT_UPLOADED = 4  # the column of files from the folder not uploaded yet


def state_words(mode: str, paused: bool) -> str:
    """The watcher's mode as a person reads it."""
    if paused:
        return "Paused"
    if mode == "native events":
        return "Watching"
    if mode.startswith("polling"):
        return "Watching (looks every few seconds)"
    if mode == "folder missing":
        return "Folder missing: waiting for it to return"
    return "Starting"


def not_uploaded_words(waiting: int, failed: int) -> str:
    """The files of a folder not uploaded yet, as the column says them."""
    return f"{waiting} ({failed} failed)" if failed else str(waiting)


def not_uploaded_tooltip(status: FolderStatus | None) -> str:
    since = (
        f" {status.queued} file(s) were queued from it since Ferry began watching it "
        "(at its start, or when the list of folders last changed)."
        if status
        else ""
    )
    return (
        "Files from this folder that Ferry has queued and not uploaded yet: waiting, being "
        "sent or paused; and, in brackets, those that failed and wait for you in the Failed "
        "tab. Files uploaded leave the count." + since
    )


class FoldersView(QWidget):
    """The folders, their state, and how many of their files are not uploaded yet:
    counted from the window's transfer list (``transfers``), so a file leaves the
    count once it is uploaded, found already stored, or removed."""

    HEADERS = ("Folder", "Key prefix", "State", "Last activity", "Not yet uploaded", "Problem")

    def __init__(self, backend: Backend, transfers: TransferTableModel) -> None:
        super().__init__()
        self.backend = backend
        self.transfers = transfers
        self.folders: list[WatchedFolder] = []
        layout = QVBoxLayout(self)
        intro = QLabel(
            "Files saved into these folders are uploaded once they are complete. "
            "Deleting a file here never deletes anything in the bucket."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.table = QTableWidget(0, len(self.HEADERS))
        self.table.setHorizontalHeaderLabels(self.HEADERS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table; arrows move in it
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        self.empty_hint = QLabel(
            "No folders are watched. Add one, and every file saved into it is uploaded."
        )
        layout.addWidget(self.empty_hint)
        self.table.itemSelectionChanged.connect(self._enable_buttons)
        buttons = QHBoxLayout()
        self.add_button = QPushButton("&Add folder…")
        self.add_button.clicked.connect(self.add_folder)
        self.remove_button = QPushButton("Re&move")
        self.remove_button.clicked.connect(self.remove_selected)
        self.pause_button = QPushButton("&Pause")
        self.pause_button.clicked.connect(self.toggle_pause)
        accessible(
            self.table,
            "Watched folders",
            "Each folder: key prefix, state, last activity, files not yet uploaded, problem",
        )
        self.add_button.setToolTip("Choose a folder whose new files are uploaded")
        self.remove_button.setToolTip(
            "Stop watching the selected folder (nothing in the bucket is deleted)"
        )
        self.pause_button.setToolTip("Pause or resume watching the selected folder")
        for button in (self.add_button, self.remove_button, self.pause_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self._enable_buttons()
        backend.foldersChanged.connect(self.reload)
        self.timer = QTimer(self)
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    def reload(self) -> None:
        self.folders = [status.folder for status in self.backend.folder_statuses()]
        self.refresh()

    def refresh(self) -> None:
        statuses = {s.folder.path: s for s in self.backend.folder_statuses()}
        self.table.setRowCount(len(self.folders))
        for row, folder in enumerate(self.folders):
            status = statuses.get(folder.path)
            state = state_words(status.mode if status else "starting", folder.paused)
            activity = (
                status.last_activity.astimezone().strftime("%Y-%m-%d %H:%M:%S")
                if status and status.last_activity
                else ""
            )
            values = (
                str(folder.path),
                folder.prefix or "(none)",
                state,
                activity,
                not_uploaded_words(*self.not_uploaded(folder)),
                (status.last_error or "") if status else "",
            )
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                if column == NOT_UPLOADED:
                    item.setToolTip(not_uploaded_tooltip(status))
                self.table.setItem(row, column, item)
        self.empty_hint.setVisible(not self.folders)
        self._enable_buttons()

    def not_uploaded(self, folder: WatchedFolder) -> tuple[int, int]:
        """Transfers of files in this folder that are not uploaded: (waiting, failed)."""
        waiting = failed = 0
        for snapshot in self.transfers.snapshots():
            if snapshot.state.finished or not folder.wants(Path(snapshot.source_path)):
                continue
            if snapshot.state is TransferState.FAILED:
                failed += 1
            else:
                waiting += 1
        return waiting, failed

    def _enable_buttons(self) -> None:
        """Remove and Pause act on the chosen folders: nothing chosen, nothing to do."""
        rows = [r for r in self._selected_rows() if r < len(self.folders)]
        self.remove_button.setEnabled(bool(rows))
        self.pause_button.setEnabled(bool(rows))
        all_paused = bool(rows) and all(self.folders[r].paused for r in rows)
        self.pause_button.setText("&Resume" if all_paused else "&Pause")

    def _selected_rows(self) -> list[int]:
        return sorted({index.row() for index in self.table.selectionModel().selectedRows()})

    def add_folder(self) -> None:
        name = QFileDialog.getExistingDirectory(self, "Watch a folder")
        if not name:
            return
        prefix, ok = QInputDialog.getText(self, "Key prefix", "Put its files under this prefix:")
        if not ok:
            return
        self.folders.append(WatchedFolder(Path(name), prefix=prefix.strip()))
        self._save()

    def remove_selected(self) -> None:
        for row in reversed(self._selected_rows()):
            del self.folders[row]
        self._save()

    def toggle_pause(self) -> None:
        for row in self._selected_rows():
            folder = self.folders[row]
            self.folders[row] = dataclasses.replace(folder, paused=not folder.paused)
        self._save()

    def _save(self) -> None:
        self.backend.call(Ferry.set_watched_folders, list(self.folders))
        self.refresh()

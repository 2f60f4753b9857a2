"""The browse half of the Bucket & catalog view: the catalog's files, searched and acted on.

Search by part of a name, a key prefix, an owner and a status (at most 500
rows, from the engine: never on the GUI thread); "Show object" asks the bucket
about the selected file's object. "Delete…" (context menu, or the Delete key)
deletes the selected files after a question whose default is No
(:mod:`file_deletion`), then shows what happened and lists again.
"""

from __future__ import annotations

import functools
from typing import Any

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.catalog.records import DeleteOutcome, FileQuery, FileRecord
from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.model.bucket_objects import ObjectInfo
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.gui.backend import Backend
from desktop_app.gui.units import human_size
from desktop_app.gui.views.file_deletion import Deletion, ask_to_delete, deletable_keys
from desktop_app.gui.views.list_table import Index, ListModel, list_table
from desktop_app.gui.widgets import accessible

SEARCH_LIMIT = 500


class FilesModel(ListModel[FileRecord]):
    HEADERS = ("Key", "Status", "Size", "Owner", "Uploaded", "SHA-256")

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role != Qt.ItemDataRole.DisplayRole:
            return None
        row = self.items[index.row()]
        uploaded = row.uploaded_at.strftime("%Y-%m-%d %H:%M") if row.uploaded_at else ""
        values = (
            row.key,
            row.status.value,
            human_size(row.size),
            row.owner,
            uploaded,
            row.sha256[:16],
        )
        return values[index.column()]


def describe_head(head: ObjectInfo | None) -> str:
    if head is None:
        return "No object in the bucket."
    modified = head.last_modified.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"{head.size:,} bytes, ETag {head.etag}, modified {modified}, "
        f"SHA-256 (metadata) {head.sha256 or 'not recorded'}"
    )


class CatalogBrowser(QWidget):
    """The search bar, the files found, and what was done to them (``object_label``)."""

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search the catalog: part of a name")
        self.search_edit.returnPressed.connect(self.search)
        self.prefix_edit = QLineEdit()
        self.prefix_edit.setPlaceholderText("Key prefix")
        self.prefix_edit.returnPressed.connect(self.search)
        self.owner_edit = QLineEdit()
        self.owner_edit.setPlaceholderText("Owner")
        self.status_combo = QComboBox()
        self.status_combo.addItem("Any status", None)
        for status in FileStatus:
            self.status_combo.addItem(status.value.capitalize(), status)
        self.search_button = QPushButton("&Search")
        self.search_button.clicked.connect(self.search)
        self.inspect_button = QPushButton("Show &object")
        self.inspect_button.clicked.connect(self.inspect_selected)
        accessible(self.search_edit, "Search the catalog", "Part of a file name; Enter searches")
        accessible(self.prefix_edit, "Key prefix", "Only keys that begin with this")
        accessible(self.owner_edit, "Owner", "Only files of this owner")
        accessible(self.status_combo, "Status", "Only files of this status")
        self.search_button.setToolTip("List the catalog's files that match")
        self.inspect_button.setToolTip("Show the bucket's object of the selected file")
        for edit in (self.search_edit, self.prefix_edit, self.owner_edit):
            bar.addWidget(edit, 1)
        for widget in (self.status_combo, self.search_button, self.inspect_button):
            bar.addWidget(widget)
        layout.addLayout(bar)
        self.files_model = FilesModel()
        self.files_table = list_table(self.files_model)
        header = self.files_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.files_table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.files_table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.files_table.customContextMenuRequested.connect(self._files_menu)
        self.show_object_action = QAction("Show &object", self.files_table)
        self.show_object_action.triggered.connect(self.inspect_selected)
        self.delete_files_action = QAction("&Delete…", self.files_table)
        self.delete_files_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        self.delete_files_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.delete_files_action.setEnabled(False)
        self.delete_files_action.triggered.connect(self.delete_selected_files)
        self.files_table.addAction(self.delete_files_action)  # the Delete key, in the table
        self.files_table.selectionModel().selectionChanged.connect(self._files_selected)
        self.files_model.modelReset.connect(self._files_selected)
        accessible(
            self.files_table,
            "Files in the catalog",
            "Key, size, owner, status and dates; the Delete key deletes the selected files",
        )
        layout.addWidget(self.files_table, 1)
        self.object_label = QLabel("")
        self.object_label.setWordWrap(True)
        self.object_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.object_label)

    def search(self) -> None:
        status = self.status_combo.currentData()
        query = FileQuery(
            name_contains=self.search_edit.text().strip() or None,
            prefix=self.prefix_edit.text().strip() or None,
            owner=self.owner_edit.text().strip() or None,
            status=status if isinstance(status, FileStatus) else None,
            limit=SEARCH_LIMIT,
        )
        self.backend.call(Ferry.files, query).then(self._on_files_found)

    def _on_files_found(self, records: list[FileRecord]) -> None:
        self.files_model.set_items(records)

    def selected_files(self) -> list[FileRecord]:
        rows = sorted({i.row() for i in self.files_table.selectionModel().selectedRows()})
        return [self.files_model.items[row] for row in rows]

    def _files_selected(self) -> None:
        selected = self.selected_files()
        self.show_object_action.setEnabled(bool(selected))
        self.delete_files_action.setEnabled(bool(deletable_keys(selected)))

    def _files_menu(self, position: QPoint) -> None:
        menu = QMenu(self)
        menu.addAction(self.show_object_action)
        menu.addSeparator()
        menu.addAction(self.delete_files_action)
        menu.exec(self.files_table.viewport().mapToGlobal(position))
        menu.deleteLater()

    def delete_selected_files(self) -> None:
        keys = deletable_keys(self.selected_files())
        if not keys:
            self.object_label.setText(
                "Select stored files to delete: deleted ones are gone already, and one still "
                "uploading is cancelled in Transfers."
            )
            return
        if not ask_to_delete(self, keys):
            return
        self.object_label.setText(f"Deleting {len(keys):,} file(s)…")
        deletion = Deletion(tuple(keys))
        for key in keys:  # one call per key: each is its own catalog write and DELETE
            self.backend.call(Ferry.delete, key).then(
                functools.partial(self._deleted, deletion, key),
                functools.partial(self._not_deleted, deletion, key),
            )

    def _deleted(self, deletion: Deletion, key: str, outcome: DeleteOutcome) -> None:
        deletion.outcome(key, outcome)
        self._deletion_answered(deletion)

    def _not_deleted(self, deletion: Deletion, key: str, _title: str, message: str) -> None:
        deletion.failure(key, message)
        self._deletion_answered(deletion)

    def _deletion_answered(self, deletion: Deletion) -> None:
        if not deletion.finished:
            return
        self.object_label.setText(deletion.summary())
        self.search()  # the list as the catalog has it now

    def inspect_selected(self) -> None:
        rows = sorted({i.row() for i in self.files_table.selectionModel().selectedRows()})
        if rows:
            key = self.files_model.items[rows[0]].key
            self.object_label.setText(f"Asking the bucket about {key}…")
            self.backend.call(Ferry.head, key).then(
                lambda head: self.object_label.setText(f"{key}: {describe_head(head)}")
            )

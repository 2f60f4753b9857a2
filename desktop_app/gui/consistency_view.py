"""The Bucket & catalog view: the consistency check, its findings and repairs, and a browse.

The check runs on the backend's job thread; this view shows its progress,
the counts per kind and the findings with their evidence. "Repair…" shows
what would be done (the dry run) and asks before doing it. In the browse,
"Delete…" (context menu, or the Delete key) deletes the selected files after
a question whose default is No, then shows what happened and lists again.
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    Qt,
    QTimer,
    Slot,
)
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.catalog.records import DeleteOutcome, FileQuery, FileRecord
from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.check.findings import (
    INFORMATIONAL,
    CheckReport,
    Finding,
    FindingKind,
    RepairAction,
    RepairResult,
)
from desktop_app.core.model.bucket_objects import ObjectInfo
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.gui.backend import Backend
from desktop_app.gui.file_deletion import Deletion, ask_to_delete, deletable_keys
from desktop_app.gui.units import human_size
from desktop_app.gui.widgets import accessible

Index = QModelIndex | QPersistentModelIndex
DAY = 24 * 3600
T = TypeVar("T")

KIND_LABELS = {
    FindingKind.ORPHAN_OBJECT: "Object without a record",
    FindingKind.MISSING_OBJECT: "Record without an object",
    FindingKind.MISMATCH: "Object and record differ",
    FindingKind.STALE_PENDING: "Unfinished upload record",
    FindingKind.DELETED_STILL_STORED: "Deleted but still stored",
    FindingKind.STALE_MULTIPART: "Abandoned partial upload",
    FindingKind.SOMEONE_ELSES: "Someone else's file",
    FindingKind.FOREIGN_VERSION_ON_TOP: "Another program's version on top",
}
REPAIR_LABELS = {
    RepairAction.DELETE_OBJECT: "Delete the object",
    RepairAction.ADOPT: "Read it and add it to the catalog",
    RepairAction.REUPLOAD: "Upload again from the local copy",
    RepairAction.MARK_MISSING: "Mark the record missing",
    RepairAction.ACTIVATE: "Complete the record if its bytes match",
    RepairAction.REMOVE_ROW: "Remove the record",
    RepairAction.ABORT_UPLOAD: "Abort the partial upload",
    RepairAction.DELETE_VERSION: "Delete Ferry's old version",
    RepairAction.NONE: "Nothing (not yours to repair, or kept)",
}


class _ListModel(QAbstractTableModel, Generic[T]):
    """A read-only table over a list, replaced whole when new results arrive."""

    HEADERS: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.items: list[T] = []

    def set_items(self, items: list[T]) -> None:
        self.beginResetModel()
        self.items = list(items)
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.items)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None


class FindingsModel(_ListModel[Finding]):
    HEADERS = ("Problem", "Key", "Object", "Record", "Repair")

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        finding = self.items[index.row()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return finding.explanation
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        column = index.column()
        if column == 0:
            return KIND_LABELS[finding.kind]
        if column == 1:
            return finding.key
        if column == 2:
            return human_size(finding.object.size) if finding.object else "—"
        if column == 3:
            return f"{finding.row.status}, {human_size(finding.row.size)}" if finding.row else "—"
        return REPAIR_LABELS[finding.repair]


class FilesModel(_ListModel[FileRecord]):
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


def _table(model: QAbstractTableModel) -> QTableView:
    table = QTableView()
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setAlternatingRowColors(True)
    table.verticalHeader().setVisible(False)
    table.setWordWrap(False)
    table.setTabKeyNavigation(False)  # Tab leaves the table; arrows move in it
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
    return table


class ConsistencyView(QWidget):
    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend
        self.report: CheckReport | None = None
        layout = QVBoxLayout(self)

        controls = QHBoxLayout()
        self.check_button = QPushButton("&Check now")
        self.check_button.clicked.connect(self.run_check)
        self.no_grace_button = QPushButton("Check &without grace")
        self.no_grace_button.setToolTip(
            "Also judge objects and records younger than the grace period "
            "(uploads still running are always left alone)"
        )
        self.no_grace_button.clicked.connect(lambda: self.run_check(without_grace=True))
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda: backend.call(Ferry.cancel_check))
        self.repair_button = QPushButton("&Repair selected…")
        self.repair_button.setEnabled(False)
        self.repair_button.clicked.connect(self.repair_selected)
        # Deleting what nobody registered is a choice, never a default.
        self.delete_button = QPushButton("Delete instead…")
        self.delete_button.setEnabled(False)
        self.delete_button.setAutoDefault(False)
        self.delete_button.setToolTip(
            "Delete the selected objects that no record points at, instead of adopting them"
        )
        self.delete_button.clicked.connect(self.delete_selected_orphans)
        self.export_button = QPushButton("&Export…")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self.export)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setVisible(False)
        self.check_button.setToolTip("Compare the bucket with the catalog now (F5)")
        self.cancel_button.setToolTip("Stop the running check")
        self.repair_button.setToolTip("Show what would repair the selected findings, then ask")
        self.export_button.setToolTip("Save the findings of the last check to a file")
        accessible(self.progress, "Check progress", "Objects and records compared so far")
        for widget in (
            self.check_button,
            self.no_grace_button,
            self.cancel_button,
            self.repair_button,
            self.delete_button,
            self.export_button,
        ):
            controls.addWidget(widget)
        controls.addWidget(self.progress, 1)
        controls.addStretch(1)
        layout.addLayout(controls)
        self.summary = QLabel("Not checked yet. The check compares the bucket with the catalog.")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)

        splitter = QSplitter(Qt.Orientation.Vertical)
        self.findings_model = FindingsModel()
        self.findings_table = _table(self.findings_model)
        self.findings_table.selectionModel().selectionChanged.connect(self._show_evidence)
        self.evidence = QLabel("")
        self.evidence.setWordWrap(True)
        self.evidence.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.findings_table, 1)
        top_layout.addWidget(self.evidence)
        splitter.addWidget(top)
        splitter.addWidget(self._browse_panel())
        layout.addWidget(splitter, 1)
        accessible(
            self.findings_table,
            "Findings",
            "Where bucket and catalog disagree, after the last check; select to see evidence",
        )

        # Checked daily in the window, or at the profile's check_interval.
        self.schedule = QTimer(self)
        self.schedule.timeout.connect(self._scheduled_check)
        backend.opened.connect(self._start_schedule)
        backend.opened.connect(self._load_last_report)
        backend.checkProgress.connect(self._on_progress)

    def _browse_panel(self) -> QWidget:
        panel = QWidget()
        layout = QVBoxLayout(panel)
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
        self.files_table = _table(self.files_model)
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
        return panel

    # -- the check ------------------------------------------------------------------

    def _start_schedule(self, _text: str) -> None:
        profile = self.backend.profile
        interval = profile.check_interval if profile and profile.check_interval else DAY
        self.schedule.start(interval * 1000)

    def _load_last_report(self, _text: str) -> None:
        """The last check's result, kept by Ferry across restarts, until one runs here."""
        self.backend.call(Ferry.last_report).then(self.show_last_report, self._no_last_report)

    def show_last_report(self, data: dict[str, object] | None) -> None:
        if self.report is not None or not self.check_button.isEnabled():
            return  # a check of this session says more (or is running)
        text = describe_last_report(data)
        if text is not None:
            self.summary.setText(text)

    def _no_last_report(self, _title: str, _message: str) -> None:
        pass  # "Not checked yet" stays: the report could not be read, nothing to act on

    def _scheduled_check(self) -> None:
        if self.check_button.isEnabled():  # not while one is running
            self.run_check()

    def run_check(self, *, without_grace: bool = False) -> None:
        self.check_button.setEnabled(False)
        self.no_grace_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setVisible(True)
        self.summary.setText("Checking…")
        self.backend.call(Ferry.run_check, without_grace=without_grace).then(
            self._on_finished, self._on_failed
        )

    @Slot(int, int)
    def _on_progress(self, objects: int, rows: int) -> None:
        self.summary.setText(
            f"Checking… {objects:,} objects listed, {rows:,} catalog rows compared."
        )

    def _done(self) -> None:
        self.check_button.setEnabled(True)
        self.no_grace_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setVisible(False)

    @Slot(CheckReport)
    def _on_finished(self, report: CheckReport) -> None:
        self._done()
        self.report = report
        self.findings_model.set_items(report.findings)
        self._show_evidence()  # the old selection went with the old findings
        self.repair_button.setEnabled(bool(report.findings))
        self.delete_button.setEnabled(
            any(f.kind is FindingKind.ORPHAN_OBJECT for f in report.findings)
        )
        self.export_button.setEnabled(True)
        scanned = report.scanned
        head = (
            f"Checked {scanned.objects:,} objects, {scanned.rows:,} records and "
            f"{scanned.multipart_uploads:,} partial uploads in {report.duration_s:.1f} s "
            f"at {report.started_at:%H:%M}."
        )
        left_alone = []
        if scanned.within_grace:
            hours = report.grace_seconds / 3600
            left_alone.append(
                f"{scanned.within_grace:,} younger than the grace period ({hours:g} h) or "
                "still uploading"
            )
        if scanned.others_files:
            left_alone.append(f"{scanned.others_files:,} other people's files")
        if left_alone:
            head += " Left alone: " + "; ".join(left_alone) + "."
        if scanned.within_grace:
            head += " “Check without grace” includes the young ones."
        if report.consistent:
            self.summary.setText(f"{head} Bucket and catalog agree.")
            return
        parts = [f"{KIND_LABELS[FindingKind(k)]}: {n}" for k, n in report.counts.items() if n]
        self.summary.setText(f"{head} Found: " + "; ".join(parts) + ".")

    def _on_failed(self, _title: str, message: str) -> None:
        self._done()
        self.summary.setText(f"The check did not finish: {message}")

    def _selected_findings(self) -> list[Finding]:
        rows = sorted({i.row() for i in self.findings_table.selectionModel().selectedRows()})
        return [self.findings_model.items[r] for r in rows]

    def _show_evidence(self) -> None:
        selected = self._selected_findings()
        if not selected:
            self.evidence.setText("")
            return
        finding = selected[0]
        lines = [finding.explanation]
        if finding.object:
            lines.append(
                f"Object: {finding.object.size:,} bytes, ETag {finding.object.etag}, "
                f"modified {finding.object.last_modified}"
            )
        if finding.row:
            lines.append(
                f"Record #{finding.row.id}: {finding.row.status}, {finding.row.size:,} bytes, "
                f"owner {finding.row.owner}, SHA-256 {finding.row.sha256[:16]}…"
            )
        if finding.upload_id:
            lines.append(f"Partial upload started {finding.initiated}")
        if finding.source:
            lines.append(f"Local copy: {finding.source}")
        self.evidence.setText("\n".join(lines))

    def repair_selected(self) -> None:
        selected = self._selected_findings() or (self.report.findings if self.report else [])
        if selected and self._confirm(
            "Repair",
            selected,
            "Each repair checks its finding again first and leaves it alone if anything "
            "changed; each step is recorded in the catalog's audit log. Go ahead?",
        ):
            self.summary.setText("Repairing…")
            self.backend.call(Ferry.repair, selected).then(self._on_repaired)

    def delete_selected_orphans(self) -> None:
        orphans = [
            dataclasses.replace(f, repair=RepairAction.DELETE_OBJECT)
            for f in self._selected_findings()
            if f.kind is FindingKind.ORPHAN_OBJECT
        ]
        if not orphans:
            self.summary.setText("Select the objects without a record to delete first.")
            return
        if self._confirm(
            "Delete objects",
            orphans,
            "These objects are in no one's catalog: another program or person may have put "
            "them there, and deleting them cannot be undone. Delete them?",
        ):
            self.summary.setText("Deleting…")
            self.backend.call(Ferry.repair, orphans).then(self._on_repaired)

    def _confirm(self, title: str, findings: list[Finding], question: str) -> bool:
        """Ask before acting; No is the default button, Enter never confirms by accident."""
        plan = "\n".join(f"• {f.key}: {REPAIR_LABELS[f.repair]}" for f in findings[:20]) + (
            f"\n… and {len(findings) - 20} more" if len(findings) > 20 else ""
        )
        answer = QMessageBox.question(
            self,
            title,
            f"Ferry will do this ({len(findings)} item(s)):\n\n{plan}\n\n{question}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _on_repaired(self, results: list[RepairResult]) -> None:
        failed = [r for r in results if not r.done]
        text = f"Repaired {len(results) - len(failed)} of {len(results)}."
        if failed:
            text += " Not repaired: " + "; ".join(
                f"{r.finding.key} ({r.message})" for r in failed[:5]
            )
        self.summary.setText(text)
        self.findings_model.set_items([])  # what was repaired is no longer evidence
        self._show_evidence()
        self.run_check()

    def _on_files_found(self, records: list[FileRecord]) -> None:
        self.files_model.set_items(records)

    def export(self) -> None:
        if self.report is None:
            return
        name, _filter = QFileDialog.getSaveFileName(
            self, "Export the report", "ferry-check.csv", "CSV (*.csv);;JSON (*.json)"
        )
        if name:
            path = Path(name)
            self.backend.call(Ferry.export_report, self.report, path).then(
                lambda _none: self.backend.notice.emit(f"Report saved to {path}.")
            )

    # -- browse -----------------------------------------------------------------------

    def search(self) -> None:
        status = self.status_combo.currentData()
        query = FileQuery(
            name_contains=self.search_edit.text().strip() or None,
            prefix=self.prefix_edit.text().strip() or None,
            owner=self.owner_edit.text().strip() or None,
            status=status if isinstance(status, FileStatus) else None,
            limit=500,
        )
        self.backend.call(Ferry.files, query).then(self._on_files_found)

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


def describe_head(head: ObjectInfo | None) -> str:
    if head is None:
        return "No object in the bucket."
    modified = head.last_modified.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"{head.size:,} bytes, ETag {head.etag}, modified {modified}, "
        f"SHA-256 (metadata) {head.sha256 or 'not recorded'}"
    )


def describe_last_report(data: dict[str, object] | None) -> str | None:
    """When the last check ran (as Ferry saved it) and what it found, in a sentence;
    None for no report, or one this Ferry cannot read."""
    if data is None:
        return None
    try:
        started = datetime.fromisoformat(str(data["started_at"])).astimezone()
        scanned = data["scanned"]
        counts = data["counts"]
        if not isinstance(scanned, dict) or not isinstance(counts, dict):
            return None
        duration = float(str(data["duration_s"]))
        found = {FindingKind(kind): int(n) for kind, n in counts.items() if int(n)}
        objects, rows = int(scanned["objects"]), int(scanned["rows"])
    except (KeyError, ValueError, TypeError):
        return None
    head = (
        f"Last checked {started:%d %b %Y at %H:%M} ({duration:.1f} s): "
        f"{objects:,} objects and {rows:,} records."
    )
    problems = {kind: n for kind, n in found.items() if kind not in INFORMATIONAL}
    if not problems:
        return f"{head} Bucket and catalog agreed. “Check now” checks again."
    parts = "; ".join(f"{KIND_LABELS[kind]}: {n}" for kind, n in problems.items())
    return f"{head} Found: {parts}. “Check now” lists them again to repair."

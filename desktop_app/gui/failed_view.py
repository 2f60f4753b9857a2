"""The Failed inbox: failures grouped by cause, each with what to do about it.

Left, the causes (credentials, network, server, the file itself, conflicts)
with a count each; right, the failed transfers of the chosen group with their
error, attempts, next automatic try and last try; below, the whole story of
the selected one, attempt by attempt (loaded from the journal by the engine
process, never on the GUI thread). Retry, Retry group and Retry all act only
on failures that retrying can help; Remove cancels the transfer and takes it
off the list. The Error column takes the width the others leave, never less
than ERROR_MIN_WIDTH (a narrow window scrolls sideways instead of cutting each
error to a word); every cell's tooltip holds the error in full.

A conflict (another program's object at the key, or a key Ferry's catalog
holds for another file) offers its choices under the details when it is the
one selected: upload as “name (2).ext”, replace the other program's object
(after a question that says what is lost, No by default; the write then
lands only over the object that question described), or skip.
"""

from __future__ import annotations

import enum
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.model.bucket_objects import ObjectInfo
from desktop_app.core.model.events import TransferSnapshot
from desktop_app.core.model.failures import (
    ConflictChoice,
    FailureCause,
    cause_of,
    choice_label,
    conflict_choices,
)
from desktop_app.core.model.states import TransferState
from desktop_app.core.model.transfer_records import AttemptRecord, TransferRecord
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.gui.backend import Backend
from desktop_app.gui.bridge import SnapshotBatch
from desktop_app.gui.units import exact_size
from desktop_app.gui.widgets import accessible, show_in_folder

Index = QModelIndex | QPersistentModelIndex
ERROR_MIN_WIDTH = 320  # an error's title and the start of its message
SnapshotRole = Qt.ItemDataRole.UserRole + 1
CauseRole = Qt.ItemDataRole.UserRole + 2
SortRole = Qt.ItemDataRole.UserRole + 3


class FailedColumn(enum.IntEnum):
    NAME = 0
    KEY = 1
    ERROR = 2
    ATTEMPTS = 3
    NEXT_TRY = 4
    LAST_TRY = 5


FAILED_HEADERS = {
    FailedColumn.NAME: "Name",
    FailedColumn.KEY: "Destination key",
    FailedColumn.ERROR: "Error",
    FailedColumn.ATTEMPTS: "Attempts",
    FailedColumn.NEXT_TRY: "Next try",
    FailedColumn.LAST_TRY: "Last try",
}


def retry_helps(snapshot: TransferSnapshot) -> bool:
    """Retry is offered only where it can help (not for a socket, a loop, a bad name)."""
    return snapshot.error is None or snapshot.error.kind.retryable


NEXT_TRY_LONGEST = "when you click Retry"


def next_try(snapshot: TransferSnapshot, *, short: bool = False) -> str:
    """When the transfer is tried again; ``short`` for the list's column."""
    error = snapshot.error
    if error is not None and not error.kind.retryable:
        return "never" if short else "never: it cannot succeed"
    if error is not None and error.kind.retries_on_its_own and snapshot.retry_at is not None:
        return f"by itself at {_clock(snapshot.retry_at)}"
    return NEXT_TRY_LONGEST


def ask_to_replace(parent: QWidget, snapshot: TransferSnapshot, found: ObjectInfo) -> bool:
    """Ask before writing over another program's object, saying what is lost; No is
    the default, Escape answers No."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Replace the other program's object")
    box.setText(f"Replace the object at “{snapshot.key}” with {Path(snapshot.source_path).name}?")
    box.setInformativeText(
        f"Another program wrote it ({exact_size(found.size)}, {_clock(found.last_modified)}); "
        "Ferry did not. Its bytes are lost unless the bucket keeps versions. If anything "
        "writes that key again before Ferry does, nothing is replaced."
    )
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.button(QMessageBox.StandardButton.Yes).setText("&Replace")
    box.setDefaultButton(QMessageBox.StandardButton.No)
    box.setEscapeButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes


def _resolved(choice: ConflictChoice, record: TransferRecord) -> str:
    name = Path(record.source_path).name
    if choice is ConflictChoice.SKIP:
        return f"Skipped {name}: nothing was uploaded, the object in the bucket is untouched."
    if choice is ConflictChoice.RENAME:
        return f"Uploading {name} as “{record.key}”."
    return f"Uploading {name} over the other program's object at “{record.key}”."


def _clock(moment: datetime) -> str:
    local = moment.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return f"{local:%H:%M:%S}"
    return f"{local:%Y-%m-%d %H:%M}"


class FailedTableModel(QAbstractTableModel):
    """The failed transfers only, in the order they failed first."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[TransferSnapshot] = []

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(FailedColumn)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return FAILED_HEADERS[FailedColumn(section)]
        return None

    def snapshots(self) -> list[TransferSnapshot]:
        return list(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        snapshot = self._rows[index.row()]
        column = FailedColumn(index.column())
        if role == SnapshotRole:
            return snapshot
        if role == CauseRole:
            return cause_of(snapshot.error).value
        if role == SortRole:
            return {
                FailedColumn.ATTEMPTS: snapshot.attempts,
                FailedColumn.NEXT_TRY: snapshot.retry_at.timestamp() if snapshot.retry_at else 0,
                FailedColumn.LAST_TRY: snapshot.updated_at.timestamp(),
            }.get(column, str(self.data(index)).lower())
        if role == Qt.ItemDataRole.ToolTipRole and snapshot.error is not None:
            return f"{snapshot.error.title}: {snapshot.error.message}"
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        error = snapshot.error
        return {
            FailedColumn.NAME: Path(snapshot.source_path).name,
            FailedColumn.KEY: snapshot.key,
            FailedColumn.ERROR: f"{error.title}: {error.message}" if error else "",
            FailedColumn.ATTEMPTS: str(snapshot.attempts),
            FailedColumn.NEXT_TRY: next_try(snapshot, short=True),
            FailedColumn.LAST_TRY: _clock(snapshot.updated_at),
        }[column]

    def upsert(self, batch: SnapshotBatch) -> bool:
        """Keep failed transfers; drop the ones that left the failed state.

        True when a failed transfer came, changed or went.
        """
        row_of = {s.id: row for row, s in enumerate(self._rows)}
        gone: list[int] = []
        new: list[TransferSnapshot] = []
        updated = False
        for snapshot in batch.snapshots:
            row = row_of.get(snapshot.id)
            failed = snapshot.state is TransferState.FAILED
            if row is not None and failed:
                self._rows[row] = snapshot
                updated = True
                last = len(FailedColumn) - 1
                self.dataChanged.emit(self.index(row, 0), self.index(row, last))
            elif row is not None:
                gone.append(row)
            elif failed:
                new.append(snapshot)
        for row in sorted(gone, reverse=True):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._rows[row]
            self.endRemoveRows()
        if new:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self._rows.extend(new)
            self.endInsertRows()
        return bool(updated or gone or new)

    def counts(self) -> dict[FailureCause, int]:
        counts = dict.fromkeys(FailureCause, 0)
        for snapshot in self._rows:
            counts[cause_of(snapshot.error)] += 1
        return counts


class FailedTable(QTableView):
    """The failed transfers; the Error column stretches, down to ERROR_MIN_WIDTH."""

    def __init__(self) -> None:
        super().__init__()
        self.horizontalHeader().sectionResized.connect(self._section_resized)

    def resizeEvent(self, event: QResizeEvent) -> None:  # the viewport's size
        super().resizeEvent(event)
        self.fit_error_column()

    def _section_resized(self, column: int, _old: int, _new: int) -> None:
        if column != FailedColumn.ERROR:
            self.fit_error_column()

    def fit_error_column(self) -> None:
        header = self.horizontalHeader()
        others = sum(header.sectionSize(c) for c in FailedColumn if c is not FailedColumn.ERROR)
        left = self.viewport().width() - others
        self.setColumnWidth(FailedColumn.ERROR, max(ERROR_MIN_WIDTH, left))


class FailedView(QWidget):
    """The Failed tab. ``countChanged`` carries the number of failed transfers."""

    countChanged = Signal(int)

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend
        self.model = FailedTableModel()
        self.proxy = QSortFilterProxyModel()
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterRole(CauseRole)
        self.proxy.setSortRole(SortRole)
        self._attempts: dict[int, tuple[AttemptRecord, ...]] = {}

        self.groups = QListWidget()
        # As wide as the longest group's name, the rest goes to the failures themselves.
        longest = max((f"{cause.label} (9,999)" for cause in FailureCause), key=len)
        room = self.groups.fontMetrics().horizontalAdvance(longest) + 24  # frame and margins
        self.groups.setMaximumWidth(max(room, 160))
        self.groups.currentRowChanged.connect(self._group_chosen)
        self.table = FailedTable()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.table.setWordWrap(False)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table; arrows move in it
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        for column, width in (
            (FailedColumn.NAME, 140),
            (FailedColumn.KEY, 140),
            (FailedColumn.ATTEMPTS, 70),
            # Its longest short text, whole (it was 170 px, and the list scrolled sideways).
            (
                FailedColumn.NEXT_TRY,
                self.table.fontMetrics().horizontalAdvance(NEXT_TRY_LONGEST) + 16,
            ),
            (FailedColumn.LAST_TRY, 90),
        ):
            self.table.setColumnWidth(column, width)
        self.table.fit_error_column()
        self.table.selectionModel().selectionChanged.connect(self._show_selected)
        self.details = QTextBrowser()
        self.details.setOpenLinks(False)

        self.retry_button = QPushButton("&Retry")
        self.retry_group_button = QPushButton("Retry &group")
        self.retry_all_button = QPushButton("Retry &all")
        self.show_button = QPushButton("Show in &folder")
        self.remove_button = QPushButton("Re&move")
        self.retry_button.clicked.connect(self.retry_selected)
        self.retry_group_button.clicked.connect(self.retry_group)
        self.retry_all_button.clicked.connect(self.retry_all)
        self.show_button.clicked.connect(self.show_in_folder)
        self.remove_button.clicked.connect(self.remove_selected)
        accessible(
            self.groups,
            "Failure groups",
            "Failures by cause, with what to do about each; the one chosen filters the list",
        )
        accessible(
            self.table,
            "Failed transfers",
            "Name, key, error, tries, next try and last try of each failed transfer",
        )
        accessible(
            self.details,
            "Details of the selected failure",
            "The whole error of the selected file and every attempt made",
        )
        for button, tip in (
            (self.retry_button, "Try the selected failures again, where retrying can help"),
            (self.retry_group_button, "Try every failure of the chosen group again"),
            (self.retry_all_button, "Try every failure again, where retrying can help"),
            (self.show_button, "Open the folder of the selected file"),
            (self.remove_button, "Cancel the selected failed transfers: not tried again"),
        ):
            button.setToolTip(tip)
        buttons = QHBoxLayout()
        for button in (
            self.retry_button,
            self.retry_group_button,
            self.retry_all_button,
            self.show_button,
            self.remove_button,
        ):
            buttons.addWidget(button)
        buttons.addStretch(1)

        # A conflict's choices, shown only for one selected conflict.
        self.conflict_choices = QWidget()
        self.conflict_choices.setAccessibleName("Choices for the conflict")
        choices = QHBoxLayout(self.conflict_choices)
        choices.setContentsMargins(0, 0, 0, 0)
        self.conflict_label = QLabel("The name is taken:")
        self.rename_button = QPushButton("Upload as…")
        self.rename_button.setAccessibleName("Upload under the next free name")
        self.replace_button = QPushButton("Re&place the other program's object…")
        self.replace_button.setAccessibleName("Replace the other program's object")
        self.skip_button = QPushButton("S&kip")
        self.skip_button.setAccessibleName("Skip the file")
        self.rename_button.setAccessibleDescription(
            "The file goes up under the name the button shows; the object stays"
        )
        self.replace_button.setAccessibleDescription(
            "The other program's object is replaced by this file, after a question"
        )
        self.skip_button.setToolTip("Nothing is uploaded; the object in the bucket stays as it is.")
        self.rename_button.clicked.connect(lambda: self._resolve_selected(ConflictChoice.RENAME))
        self.replace_button.clicked.connect(self.replace_selected)
        self.skip_button.clicked.connect(lambda: self._resolve_selected(ConflictChoice.SKIP))
        choices.addWidget(self.conflict_label)
        for button in (self.rename_button, self.replace_button, self.skip_button):
            choices.addWidget(button)
        choices.addStretch(1)
        self.conflict_choices.hide()
        details = QWidget()
        below = QVBoxLayout(details)
        below.setContentsMargins(0, 0, 0, 0)
        below.addWidget(self.details, 1)
        below.addWidget(self.conflict_choices)

        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.table)
        right.addWidget(details)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(self.groups)
        body.addWidget(right)
        body.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(body, 1)
        layout.addLayout(buttons)
        self._refresh_groups()
        self._show_selected()

    # -- feeding ------------------------------------------------------------------

    @Slot(SnapshotBatch)
    def upsert(self, batch: SnapshotBatch) -> None:
        # Engine ticks come ten times a second while anything uploads; only one
        # that touches a failed transfer redraws the groups and the details.
        if not self.model.upsert(batch):
            return
        self._forget_attempts([s.id for s in batch.snapshots])  # tried again meanwhile
        self._refresh_groups()
        self._show_selected()
        self.countChanged.emit(self.model.rowCount())

    def _refresh_groups(self) -> None:
        counts = self.model.counts()
        chosen = self.chosen_cause()
        self.groups.blockSignals(True)
        self.groups.clear()
        total = QListWidgetItem(f"All failures ({sum(counts.values())})")
        total.setData(Qt.ItemDataRole.UserRole, None)
        self.groups.addItem(total)
        for cause, count in counts.items():
            if count:
                item = QListWidgetItem(f"{cause.label} ({count})")
                item.setData(Qt.ItemDataRole.UserRole, cause.value)
                item.setToolTip(cause.advice)
                self.groups.addItem(item)
        row = next(
            (
                i
                for i in range(self.groups.count())
                if chosen is not None
                and self.groups.item(i).data(Qt.ItemDataRole.UserRole) == chosen.value
            ),
            0,
        )
        self.groups.setCurrentRow(row)
        self.groups.blockSignals(False)
        self._apply_group()

    def chosen_cause(self) -> FailureCause | None:
        item = self.groups.currentItem()
        value = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return FailureCause(value) if value else None

    def _group_chosen(self, _row: int) -> None:
        self._apply_group()
        self._show_selected()

    def _apply_group(self) -> None:
        cause = self.chosen_cause()
        self.proxy.setFilterFixedString(cause.value if cause else "")
        visible = self._visible()
        self.retry_group_button.setEnabled(any(retry_helps(s) for s in visible))
        self.retry_group_button.setText(
            f"Retry &group ({cause.label})" if cause else "Retry &group"
        )
        self.retry_all_button.setEnabled(any(retry_helps(s) for s in self.model.snapshots()))

    def _visible(self) -> list[TransferSnapshot]:
        return [self.proxy.index(row, 0).data(SnapshotRole) for row in range(self.proxy.rowCount())]

    def selected(self) -> list[TransferSnapshot]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.proxy.index(row, 0).data(SnapshotRole) for row in rows]

    # -- details ------------------------------------------------------------------

    def _show_selected(self) -> None:
        selected = self.selected()
        self.retry_button.setEnabled(any(retry_helps(s) for s in selected))
        self.show_button.setEnabled(bool(selected))
        self.remove_button.setEnabled(bool(selected))
        self._show_choices(selected[0] if len(selected) == 1 else None)
        if not selected:
            cause = self.chosen_cause()
            self.details.setPlainText(
                cause.advice
                if cause
                else "Select a failed transfer to see what went wrong and every attempt."
            )
            return
        snapshot = selected[0]
        if snapshot.id not in self._attempts:
            ids = (snapshot.id,)
            self.backend.call(Ferry.attempts, list(ids)).then(
                lambda found: self._on_attempts(ids, found)
            )
        self.details.setPlainText(self.describe(snapshot))

    def _show_choices(self, snapshot: TransferSnapshot | None) -> None:
        offered = conflict_choices(snapshot.error) if snapshot is not None else ()
        self.conflict_choices.setVisible(bool(offered))
        if snapshot is None or not offered:
            return
        self.rename_button.setText(choice_label(ConflictChoice.RENAME, snapshot.key))
        self.replace_button.setVisible(ConflictChoice.REPLACE in offered)

    def _on_attempts(self, ids: tuple[int, ...], found: dict[int, list[AttemptRecord]]) -> None:
        self._attempts.update({i: tuple(found.get(i, ())) for i in ids})
        self._show_selected()

    def describe(self, snapshot: TransferSnapshot) -> str:
        error = snapshot.error
        cause = cause_of(error)
        lines = [
            f"File: {snapshot.source_path}",
            f"Destination: {snapshot.bucket}/{snapshot.key}",
            f"Size: {exact_size(snapshot.size)}",
        ]
        if error is not None:
            lines += ["", f"{error.title}", error.message]
        advice = (
            cause.advice
            if retry_helps(snapshot)
            else "Retrying cannot help: fix or move the file, then add it again; Remove "
            "takes it off this list."
        )
        lines += [
            "",
            f"What to do ({cause.label.lower()}): {advice}",
            f"Next try: {next_try(snapshot)}",
            "",
            "Attempts:",
        ]
        attempts = self._attempts.get(snapshot.id)
        if attempts is None:
            lines.append("  loading…")
        elif not attempts:
            lines.append("  none recorded (it failed before sending anything)")
        for attempt in attempts or ():
            result = (
                "succeeded or stopped"
                if attempt.error is None
                else f"{attempt.error.title}: {attempt.error.message}"
            )
            lines.append(
                f"  {attempt.number}. {_clock(attempt.started_at)} to "
                f"{_clock(attempt.ended_at)}, {exact_size(attempt.bytes_sent)} sent: {result}"
            )
        return "\n".join(lines)

    # -- actions ------------------------------------------------------------------

    def _retry(self, snapshots: list[TransferSnapshot]) -> None:
        ids = [s.id for s in snapshots if retry_helps(s)]
        if ids:
            self._forget_attempts(ids)
            self.backend.call(Ferry.retry, ids).then(
                lambda done: self.backend.notice.emit(f"{len(done)} transfer(s) retrying.")
            )

    def _forget_attempts(self, ids: list[int]) -> None:
        for transfer_id in ids:
            self._attempts.pop(transfer_id, None)

    def retry_selected(self) -> None:
        self._retry(self.selected())

    def retry_group(self) -> None:
        self._retry(self._visible())

    def retry_all(self) -> None:
        self._retry(self.model.snapshots())

    def _conflict(self) -> TransferSnapshot | None:
        selected = self.selected()
        return selected[0] if len(selected) == 1 and conflict_choices(selected[0].error) else None

    def _resolve_selected(self, choice: ConflictChoice) -> None:
        snapshot = self._conflict()
        if snapshot is not None:
            self._resolve(snapshot, choice)

    def _resolve(
        self, snapshot: TransferSnapshot, choice: ConflictChoice, seen_etag: str | None = None
    ) -> None:
        self._forget_attempts([snapshot.id])
        self.backend.call(Ferry.resolve, snapshot.id, choice, seen_etag).then(
            lambda record: self.backend.notice.emit(_resolved(choice, record))
        )

    def replace_selected(self) -> None:
        """Look at the object now, say what replacing it loses, and only then replace
        exactly that object (If-Match on the ETag shown)."""
        snapshot = self._conflict()
        if snapshot is not None:
            self.backend.call(Ferry.head, snapshot.key).then(
                lambda found: self._confirm_replace(snapshot, found)
            )

    def _confirm_replace(self, snapshot: TransferSnapshot, found: ObjectInfo | None) -> None:
        if found is None:  # gone meanwhile: nothing to lose, the file goes to the empty key
            self._resolve(snapshot, ConflictChoice.REPLACE)
        elif ask_to_replace(self, snapshot, found):
            self._resolve(snapshot, ConflictChoice.REPLACE, found.etag)
        else:
            self.backend.notice.emit("Nothing was replaced.")

    def show_in_folder(self) -> None:
        selected = self.selected()
        if selected:
            show_in_folder(selected[0].source_path)

    def remove_selected(self) -> None:
        ids = [s.id for s in self.selected()]
        if ids:
            self.backend.call(Ferry.cancel, ids).then(
                lambda done: self.backend.notice.emit(
                    f"{len(done)} transfer(s) removed from the Failed list."
                )
            )

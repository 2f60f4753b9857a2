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
one selected (:mod:`conflict_choices`). The table's rows and columns are
:mod:`failed_model`'s.
"""

from __future__ import annotations

from PySide6.QtCore import QSortFilterProxyModel, Qt, Signal, Slot
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.model.events import TransferSnapshot
from desktop_app.core.model.failures import FailureCause, cause_of
from desktop_app.core.model.transfer_records import AttemptRecord
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.gui.backend import Backend
from desktop_app.gui.bridge import SnapshotBatch
from desktop_app.gui.units import clock_time, exact_size
from desktop_app.gui.views.conflict_choices import ConflictChoices
from desktop_app.gui.views.failed_model import (
    NEXT_TRY_LONGEST,
    CauseRole,
    FailedColumn,
    FailedTableModel,
    SnapshotRole,
    SortRole,
    next_try,
    retry_helps,
)
from desktop_app.gui.widgets import accessible, show_in_folder

ERROR_MIN_WIDTH = 320  # an error's title and the start of its message


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
        self.conflict_choices = ConflictChoices(backend, self.selected, self._forget_attempts)
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
        self.conflict_choices.show_for(selected[0] if len(selected) == 1 else None)
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
                f"  {attempt.number}. {clock_time(attempt.started_at)} to "
                f"{clock_time(attempt.ended_at)}, {exact_size(attempt.bytes_sent)} sent: {result}"
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

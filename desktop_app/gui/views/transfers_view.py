"""The Transfers tab: every transfer of this session, filtered, sorted, acted on.

A filter box over the table (name or key), the table itself (queue order until
a header is clicked), and, while the list is empty, a large "Drop files or
folders here" in its place. At the bottom the table follows new rows;
elsewhere a button says how many arrived below. The context menu offers only
what applies to the rows chosen (no Pause on a finished upload); its commands
go through :class:`TransferCommands`.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QStyle,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.model.events import TransferSnapshot
from desktop_app.core.model.states import TransferState
from desktop_app.gui.models import (
    STATE_LABELS,
    WAITING_LABEL,
    Column,
    SearchFilterModel,
    SnapshotRole,
    Totals,
    TransferTableModel,
    no_answer,
    state_label,
)
from desktop_app.gui.transfer_commands import TransferCommands
from desktop_app.gui.units import exact_size
from desktop_app.gui.views.failed_model import retry_helps
from desktop_app.gui.widgets import ProgressDelegate, accessible, show_in_folder


class TransferTable(QTableView):
    def __init__(self, proxy: SearchFilterModel) -> None:
        super().__init__()
        self.setModel(proxy)
        self.setSortingEnabled(True)
        self.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # queue order until a header is clicked
        self.setWordWrap(False)
        self.setTabKeyNavigation(False)  # Tab leaves the table; arrows move in it
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setAlternatingRowColors(True)
        self.verticalHeader().setVisible(False)
        self.setItemDelegateForColumn(Column.PROGRESS, ProgressDelegate(self))
        header = self.horizontalHeader()
        header.setSectionResizeMode(Column.NAME, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(Column.KEY, QHeaderView.ResizeMode.Stretch)
        for column, width in ((Column.NAME, 200), (Column.SIZE, 90), (Column.PROGRESS, 120)):
            self.setColumnWidth(column, width)
        # Wide enough for the longest state, measured once (not per row: a
        # resize-to-contents would read every row of a 10,000-row list).
        labels = [f"{label} (paused)" for label in STATE_LABELS.values()]
        longest = max([*labels, WAITING_LABEL], key=len)
        padding = 4 * self.style().pixelMetric(QStyle.PixelMetric.PM_LayoutHorizontalSpacing)
        self.setColumnWidth(Column.STATE, self.fontMetrics().horizontalAdvance(longest) + padding)
        # A silent server's "no answer for 999 s" in place of a speed, whole.
        silent = self.fontMetrics().horizontalAdvance(no_answer(999)) + padding
        self.setColumnWidth(Column.SPEED, max(self.columnWidth(Column.SPEED), silent))
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

    def selected_snapshots(self) -> list[TransferSnapshot]:
        rows = {index.row() for index in self.selectionModel().selectedRows()}
        return [self.model().index(row, 0).data(SnapshotRole) for row in sorted(rows)]


def details_text(snapshot: TransferSnapshot) -> str:
    """A transfer's details (the context menu's Details), one fact a line."""
    lines = [
        f"File: {snapshot.source_path}",
        f"Destination: {snapshot.bucket}/{snapshot.key}",
        f"Size: {exact_size(snapshot.size)}",
        f"State: {state_label(snapshot)}",
    ]
    if snapshot.attempts:
        lines.append(f"Tries that failed: {snapshot.attempts}")
    if snapshot.sha256:
        lines.append(f"SHA-256: {snapshot.sha256}")
    if snapshot.error is not None:
        lines.append(f"Problem: {snapshot.error.title}. {snapshot.error.message}")
    error, retry_at = snapshot.error, snapshot.retry_at
    if error is not None and retry_at is not None and error.kind.retries_on_its_own:
        when = retry_at.astimezone()
        lines.append(f"Ferry tries again by itself at {when:%H:%M:%S} (or click Retry).")
    return "\n".join(lines)


class TransfersView(QWidget):
    """The Transfers tab over ``model``; ``proxy`` is what the table shows."""

    def __init__(self, model: TransferTableModel, commands: TransferCommands) -> None:
        super().__init__()
        self.commands = commands
        self.proxy = SearchFilterModel()
        self.proxy.setSourceModel(model)
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by name or key (Ctrl+F)")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.set_text)
        bar.addWidget(self.filter_edit, 1)
        self.newest_button = QPushButton("")
        self.newest_button.setToolTip("New transfers were added below; show them")
        self.newest_button.clicked.connect(self.show_newest)
        self.newest_button.hide()
        bar.addWidget(self.newest_button)
        self.clear_button = QPushButton("C&lear finished")
        self.clear_button.setToolTip(
            "Remove finished transfers from this list (Ferry's history keeps them)"
        )
        self.clear_button.clicked.connect(commands.clear_finished)
        bar.addWidget(self.clear_button)
        layout.addLayout(bar)
        self.table = TransferTable(self.proxy)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.empty_state = QLabel(
            "<p style='font-size:18pt'>Drop files or folders here</p>"
            "<p>They are uploaded to the bucket, checked byte for byte and listed in "
            "the catalog.<br>Or use <b>Add files…</b> (Ctrl+O) and <b>Add folder…</b> "
            "(Ctrl+Shift+O).</p>"
        )
        self.empty_state.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_state.setWordWrap(True)
        self.empty_state.setStyleSheet(
            "QLabel { border: 3px dashed palette(mid); border-radius: 12px; margin: 24px; }"
        )
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty_state)
        self.stack.addWidget(self.table)
        layout.addWidget(self.stack, 1)
        self._unseen_rows = 0
        self._was_at_bottom = True
        self.proxy.rowsAboutToBeInserted.connect(self._note_scroll_position)
        self.proxy.rowsInserted.connect(self._follow_new_rows)
        self.table.verticalScrollBar().valueChanged.connect(self._scrolled)
        accessible(
            self.filter_edit,
            "Filter transfers",
            "Shows only the transfers whose name or key holds this text (Ctrl+F)",
        )
        self.newest_button.setAccessibleName("Show the new transfers")
        accessible(
            self.table,
            "Transfers",
            "Name, key, size, progress, speed, time left and state of each file; "
            "the context menu (Menu key) acts on the selected rows",
        )

    def show_totals(self, totals: Totals) -> None:
        """Each tick: the table or, with no transfer, the drop target; Clear finished
        only with something to clear."""
        self.stack.setCurrentWidget(self.table if totals.files else self.empty_state)
        self.clear_button.setEnabled(totals.finished > 0)

    # -- following new rows ---------------------------------------------------------

    def _scrolled(self, value: int) -> None:
        if value >= self.table.verticalScrollBar().maximum() - 1:
            self._unseen_rows = 0
            self.newest_button.hide()

    def _note_scroll_position(self) -> None:
        scroll = self.table.verticalScrollBar()
        self._was_at_bottom = scroll.value() >= scroll.maximum() - 1

    def _follow_new_rows(self, _parent: object, first: int, last: int) -> None:
        """At the bottom, follow the new rows; elsewhere, say that some arrived."""
        if self._was_at_bottom:
            QTimer.singleShot(0, self.table.scrollToBottom)
            return
        self._unseen_rows += last - first + 1
        self.newest_button.setText(f"↓ {self._unseen_rows} new")
        self.newest_button.show()

    def show_newest(self) -> None:
        self.table.scrollToBottom()
        self._unseen_rows = 0
        self.newest_button.hide()

    # -- the context menu -----------------------------------------------------------

    def _context_menu(self, position: QPoint) -> None:
        """Only what applies to the rows chosen: no Pause on a finished upload."""
        selected = self.table.selected_snapshots()
        if not selected:
            return
        menu = QMenu(self)
        clipboard = QGuiApplication.clipboard()
        menu.addAction("Copy key", lambda: clipboard.setText("\n".join(s.key for s in selected)))
        hashes = [s.sha256 for s in selected if s.sha256]
        if hashes:
            menu.addAction("Copy SHA-256", lambda: clipboard.setText("\n".join(hashes)))
        menu.addAction("Show in folder", lambda: show_in_folder(selected[0].source_path))
        menu.addAction(
            "Details",
            lambda: QMessageBox.information(self, "Transfer details", details_text(selected[0])),
        )
        self._add_commands(menu, selected)
        menu.exec(self.table.viewport().mapToGlobal(position))

    def _add_commands(self, menu: QMenu, selected: list[TransferSnapshot]) -> None:
        commands = self.commands
        pausable = [s.id for s in selected if s.state.in_progress and not s.paused]
        paused = [s.id for s in selected if s.state.in_progress and s.paused]
        retryable = [s.id for s in selected if s.state is TransferState.FAILED and retry_helps(s)]
        cancellable = [s.id for s in selected if not s.state.finished]
        finished = [s.id for s in selected if s.state.finished]
        if pausable or paused or retryable or cancellable or finished:
            menu.addSeparator()
        if pausable:
            menu.addAction("Pause", lambda: commands.pause(pausable))
        if paused:
            menu.addAction("Resume", lambda: commands.unpause(paused))
        if retryable:
            menu.addAction("Retry", lambda: commands.retry(retryable))
        if cancellable:
            menu.addAction("Cancel", lambda: commands.cancel(cancellable))
        if finished:
            menu.addAction("Remove from list", lambda: commands.remove_from_list(finished))

"""Ferry's main window: drop files in, watch them go, retry what failed.

The window holds no upload logic: it posts jobs to the Backend and shows what
the EngineBridge signals. It never does I/O on the GUI thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import (
    QByteArray,
    QEvent,
    QPoint,
    QSettings,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    QUrl,
    Signal,
    Slot,
)
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QIcon,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QStyle,
    QSystemTrayIcon,
    QTableView,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.model.errors import SignInRequiredError
from desktop_app.core.model.events import TransferSnapshot
from desktop_app.core.model.states import TransferState
from desktop_app.core.model.transfer_records import TransferRecord
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.gui.about import AboutDialog
from desktop_app.gui.backend import Backend
from desktop_app.gui.bridge import EngineBridge
from desktop_app.gui.consistency_view import ConsistencyView
from desktop_app.gui.failed_view import FailedView, retry_helps
from desktop_app.gui.folders_view import FoldersView
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
    waiting_text,
)
from desktop_app.gui.notifier import BatchNotifier, Notification, NotificationKind
from desktop_app.gui.settings_dialog import SettingsDialog
from desktop_app.gui.sign_in import SignInDialog
from desktop_app.gui.status_bar import ElidedLabel, StatusBar
from desktop_app.gui.units import exact_size, human_duration, human_size
from desktop_app.gui.widgets import (
    ProgressDelegate,
    accessible,
    first_window_geometry,
    show_in_folder,
    tinted,
)
from desktop_app.resources import TrayState, tray_icon_svg

HELD_LABEL_MAX_WIDTH = 360  # "Uploads paused: …" leaves the messages their room
GLYPHS = (QStyle.StandardPixmap.SP_MediaPause, QStyle.StandardPixmap.SP_MediaPlay)
# A person's answer (what Skip, Replace, Retry did) stays this long before a
# batch's notice may take its place: both came within a second, and the
# answer was gone before anyone could read it.
ANSWER_HOLD_MS = 5000
EXPLAIN_TRAY_KEY = "close/explain-tray"  # window.ini: False once "Don't show this again"


def system_tray_available() -> bool:
    """Whether the desktop shows tray icons now (a panel may come or go)."""
    return QSystemTrayIcon.isSystemTrayAvailable()


def _local_paths(urls: list[QUrl]) -> list[Path]:
    return [Path(url.toLocalFile()) for url in urls if url.isLocalFile()]


class TransferTable(QTableView):
    def __init__(self, proxy: QSortFilterProxyModel) -> None:
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


class MainWindow(QMainWindow):
    # Quitting ended: the window and the tray icon are gone, the engine stopped.
    # The application ends here (a window hidden in the tray never "closes" in
    # Qt's sense, so quitting on the last window closed would leave it running).
    quitted = Signal()

    def __init__(self, backend: Backend, bridge: EngineBridge, settings: QSettings) -> None:
        super().__init__()
        self.backend = backend
        self.bridge = bridge
        self.settings = settings
        self.really_quit = False  # closing now quits (no tray, no question)
        self._tray_explained = False  # this session, closing to the tray was said
        self._glyphs: list[tuple[QAction, QStyle.StandardPixmap]] = []  # see _tint_glyphs
        self.quit_question: QMessageBox | None = None
        self.tray_notice: QMessageBox | None = None
        self.setWindowTitle("Ferry")
        self.setAcceptDrops(True)
        self.resize(1000, 600)

        self.model = TransferTableModel()
        bridge.transfersChanged.connect(self.model.upsert)
        bridge.progressChanged.connect(self.model.set_progress)
        backend.historyLoaded.connect(self.model.history_loaded)
        backend.opened.connect(self._on_opened)
        backend.notice.connect(self._on_notice)
        backend.heldBack.connect(self._on_held_back)
        backend.failed.connect(self._on_failed)

        self.all_proxy = SearchFilterModel()
        self.all_proxy.setSourceModel(self.model)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._transfers_tab(), "&Transfers")
        self.failed_view = FailedView(backend)
        bridge.transfersChanged.connect(self.failed_view.upsert)
        self.failed_view.countChanged.connect(self._on_failed_count)
        self.tabs.addTab(self.failed_view, "&Failed")
        self.consistency_view = ConsistencyView(backend)
        self.tabs.addTab(self.consistency_view, "&Bucket && catalog")
        self.folders_view = FoldersView(backend, self.model)
        self.tabs.addTab(self.folders_view, "&Watched folders")
        self.setCentralWidget(self.tabs)
        self._build_actions()
        self.tray_icons = {state: QIcon(str(tray_icon_svg(state))) for state in TrayState}
        self.tray_state = TrayState.IDLE
        self.notifier = BatchNotifier()
        self.notifications: list[Notification] = []  # what was shown, newest last
        # The status bar's message and when it is stale (a notice of queued files
        # once they are sent, of failures once none remain), checked each tick.
        self._stale_when: tuple[str, Callable[[Totals], bool]] | None = None
        self._answer_until = 0.0  # monotonic: a person's answer holds the status bar till then
        bridge.transfersChanged.connect(lambda batch: self.notifier.observe(batch.snapshots))
        backend.historyLoaded.connect(self.notifier.history_loaded)

        self.status = StatusBar()
        self.setStatusBar(self.status)
        self.status.set_lasting("Connecting…")
        self.held_label = ElidedLabel("")
        self.held_label.setStyleSheet("font-weight: bold")
        self.held_label.setMaximumWidth(HELD_LABEL_MAX_WIDTH)
        self.held_label.hide()
        self.totals_label = QLabel("")
        self.totals_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.batch_bar = QProgressBar()
        self.batch_bar.setRange(0, 1000)
        self.batch_bar.setTextVisible(True)
        self.batch_bar.hide()
        self.statusBar().addPermanentWidget(self.held_label)
        self.statusBar().addPermanentWidget(self.batch_bar)
        self.statusBar().addPermanentWidget(self.totals_label)
        self.totals_timer = QTimer(self)
        self.totals_timer.setInterval(500)
        self.totals_timer.timeout.connect(self._update_totals)
        self.totals_timer.start()
        self.tray = self._build_tray()
        self._describe_for_assistive_technology()
        self._restore_layout()

    # -- building -------------------------------------------------------------

    def _transfers_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        bar = QHBoxLayout()
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by name or key (Ctrl+F)")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.all_proxy.set_text)
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
        self.clear_button.clicked.connect(self.clear_finished)
        bar.addWidget(self.clear_button)
        layout.addLayout(bar)
        self.transfer_table = TransferTable(self.all_proxy)
        self.transfer_table.customContextMenuRequested.connect(self._context_menu)
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
        self.transfer_stack = QStackedWidget()
        self.transfer_stack.addWidget(self.empty_state)
        self.transfer_stack.addWidget(self.transfer_table)
        layout.addWidget(self.transfer_stack, 1)
        self._unseen_rows = 0
        self._was_at_bottom = True
        self.all_proxy.rowsAboutToBeInserted.connect(self._note_scroll_position)
        self.all_proxy.rowsInserted.connect(self._follow_new_rows)
        self.transfer_table.verticalScrollBar().valueChanged.connect(self._scrolled)
        return page

    def _scrolled(self, value: int) -> None:
        if value >= self.transfer_table.verticalScrollBar().maximum() - 1:
            self._unseen_rows = 0
            self.newest_button.hide()

    def _note_scroll_position(self) -> None:
        scroll = self.transfer_table.verticalScrollBar()
        self._was_at_bottom = scroll.value() >= scroll.maximum() - 1

    def _follow_new_rows(self, _parent: object, first: int, last: int) -> None:
        """At the bottom, follow the new rows; elsewhere, say that some arrived."""
        if self._was_at_bottom:
            QTimer.singleShot(0, self.transfer_table.scrollToBottom)
            return
        self._unseen_rows += last - first + 1
        self.newest_button.setText(f"↓ {self._unseen_rows} new")
        self.newest_button.show()

    def show_newest(self) -> None:
        self.transfer_table.scrollToBottom()
        self._unseen_rows = 0
        self.newest_button.hide()

    def clear_finished(self) -> None:
        ids = self.model.remove_finished()
        if ids:
            self.backend.call(Ferry.clear_finished, ids)

    def _tint_glyphs(self) -> None:
        """Pause and play are one-colour glyphs, black in Qt's own style: on a dark
        palette they are drawn in its text colour (they could not be seen)."""
        palette = self.palette()
        dark = palette.window().color().lightness() < 128
        for made, which in self._glyphs:
            icon = self.style().standardIcon(which)
            made.setIcon(tinted(icon, palette.buttonText().color()) if dark else icon)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._tint_glyphs()

    def _build_actions(self) -> None:
        style = self.style()
        pixmap = QStyle.StandardPixmap

        def action(
            text: str,
            shortcut: QKeySequence | QKeySequence.StandardKey | str,
            slot: object,
            icon: QStyle.StandardPixmap | None = None,
        ) -> QAction:
            made = QAction(text, self)
            if icon is not None:
                made.setIcon(style.standardIcon(icon))
                if icon in GLYPHS:
                    self._glyphs.append((made, icon))
            made.setShortcut(QKeySequence(shortcut))
            made.triggered.connect(slot)
            self.addAction(made)  # shortcuts work even when the menu bar is hidden
            return made

        self.add_files_action = action("Add &files…", "Ctrl+O", self.add_files, pixmap.SP_FileIcon)
        self.add_folder_action = action(
            "Add f&older…", "Ctrl+Shift+O", self.add_folder, pixmap.SP_DirIcon
        )
        self.paste_action = action(
            "&Paste file paths", QKeySequence.StandardKey.Paste, self.paste_paths
        )
        self.settings_action = action("&Settings…", "Ctrl+,", self.open_settings)
        self.sign_in_action = action("Sign &in to AWS…", "Ctrl+Shift+I", self.sign_in)
        self.close_action = action("&Close window", QKeySequence.StandardKey.Close, self.close)
        self.close_action.setToolTip(
            "Close this window; Ferry goes on in the tray while uploads or watched folders run"
        )
        self.quit_action = action("&Quit", "Ctrl+Q", self.quit)
        self.quit_action.setToolTip("Quit Ferry: uploads stop and resume at the next start")
        self.pause_all_action = action(
            "&Pause all", "Ctrl+P", lambda: self.pause(None), pixmap.SP_MediaPause
        )
        self.resume_all_action = action(
            "&Resume all", "Ctrl+Shift+P", lambda: self.unpause(None), pixmap.SP_MediaPlay
        )
        self.retry_all_action = action(
            "Retry all &failed", "Ctrl+Shift+R", lambda: self.retry(None)
        )
        self.filter_action = action("Fi&lter…", QKeySequence.StandardKey.Find, self.focus_filter)
        self.check_action = action(
            "&Check bucket && catalog now", "F5", self.check_now, pixmap.SP_BrowserReload
        )
        self.clear_action = action("C&lear finished", "Ctrl+Shift+L", self.clear_finished)
        self.about_action = action("&About Ferry", "F1", self.open_about)
        self._tint_glyphs()
        views = []
        for index in range(self.tabs.count()):
            view = QAction(self.tabs.tabText(index), self)  # the tab's own words
            view.setShortcut(QKeySequence(f"Alt+{index + 1}"))
            view.triggered.connect(lambda _checked=False, i=index: self.show_view(i))
            self.addAction(view)
            views.append(view)

        bar = self.menuBar()
        for title, actions in (
            (
                "&File",
                [
                    self.add_files_action,
                    self.add_folder_action,
                    self.paste_action,
                    None,
                    self.settings_action,
                    self.sign_in_action,
                    None,
                    self.close_action,
                    self.quit_action,
                ],
            ),
            (
                "&Transfers",
                [
                    self.pause_all_action,
                    self.resume_all_action,
                    self.retry_all_action,
                    self.clear_action,
                    None,
                    self.filter_action,
                ],
            ),
            ("&View", [*views, None, self.check_action]),
            ("&Help", [self.about_action]),
        ):
            menu = bar.addMenu(title)
            for item in actions:
                if item is None:
                    menu.addSeparator()
                else:
                    menu.addAction(item)

        toolbar = QToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for item in (
            self.add_files_action,
            self.add_folder_action,
            None,
            self.pause_all_action,
            self.resume_all_action,
        ):
            if item is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(item)
        self.addToolBar(toolbar)

    def show_view(self, index: int) -> None:
        """Alt+1..4: the view, the keyboard focus on its first control that takes it
        (the control that had it was hidden with its page: keys went nowhere)."""
        self.tabs.setCurrentIndex(index)
        page = self.tabs.currentWidget()
        widget = page.nextInFocusChain()
        while widget is not None and widget is not page:  # the chain is a ring
            if (
                page.isAncestorOf(widget)
                and widget.isVisible()
                and widget.isEnabled()
                and widget.focusPolicy() & Qt.FocusPolicy.TabFocus
            ):
                widget.setFocus(Qt.FocusReason.ShortcutFocusReason)
                return
            widget = widget.nextInFocusChain()

    def _describe_for_assistive_technology(self) -> None:
        """Names and descriptions for screen readers where a control shows no words of
        its own; progress and state are text: the table's cells, the status bar's labels
        and the batch bar's value."""
        accessible(self.tabs, "Views", "Transfers, Failed, Bucket & catalog, Watched folders")
        accessible(
            self.filter_edit,
            "Filter transfers",
            "Shows only the transfers whose name or key holds this text (Ctrl+F)",
        )
        self.newest_button.setAccessibleName("Show the new transfers")
        accessible(
            self.transfer_table,
            "Transfers",
            "Name, key, size, progress, speed, time left and state of each file; "
            "the context menu (Menu key) acts on the selected rows",
        )
        accessible(
            self.batch_bar,
            "Batch progress",
            "Files settled and bytes stored since the list was last idle",
        )
        self.totals_label.setAccessibleDescription("Uploads running, paused and failed, in words")
        self.held_label.setAccessibleDescription("Why uploads wait for the system")
        # A progress bar's value reaches a screen reader as a number (per mille
        # here); its words ("3/4 files · 1.1 GB of 1.3 GB") go in its description,
        # after each tick has set them.
        self.totals_timer.timeout.connect(self._say_batch)

    def _say_batch(self) -> None:
        words = self.batch_bar.text() if self.batch_bar.isVisible() else ""
        description = words or "Files settled and bytes stored since the list was last idle"
        if self.batch_bar.accessibleDescription() != description:
            self.batch_bar.setAccessibleDescription(description)

    def _build_tray(self) -> QSystemTrayIcon | None:
        if not system_tray_available():
            return None
        tray = QSystemTrayIcon(self.tray_icons[TrayState.IDLE], self)
        menu = QMenu(self)
        menu.addAction("&Show Ferry", self.bring_to_front)
        menu.addAction(self.pause_all_action)
        menu.addAction(self.resume_all_action)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        tray.setContextMenu(menu)
        tray.setToolTip("Ferry")
        tray.activated.connect(self._tray_activated)
        tray.show()
        return tray

    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.setGeometry(first_window_geometry(self.screen().availableGeometry()))
        header = self.settings.value("window/transfer-columns")
        if isinstance(header, QByteArray):
            self.transfer_table.horizontalHeader().restoreState(header)

    def _save_layout(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue(
            "window/transfer-columns", self.transfer_table.horizontalHeader().saveState()
        )
        self.settings.sync()

    # -- slots ------------------------------------------------------------------

    @Slot(str)
    def _on_opened(self, text: str) -> None:
        self.status.set_lasting(text)

    @Slot(str)
    def _on_notice(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)
        self._answer_until = time.monotonic() + ANSWER_HOLD_MS / 1000

    @Slot(str)
    def _on_held_back(self, why: str) -> None:
        # Stays in view (a notice fades): the uploads wait for the system, not for Ferry.
        self.held_label.setText(f"Uploads paused: {why}" if why else "")
        self.held_label.setVisible(bool(why))

    @Slot(str, str)
    def _on_failed(self, title: str, message: str) -> None:
        if self.really_quit:
            return  # quitting: no one is there to read it
        if not self.backend.ready or self.backend.profile is None:
            self.status.set_lasting(f"Not connected: {title}")
        if title != SignInRequiredError.title:
            QMessageBox.warning(self, title, message)
            return
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, parent=self)
        sign_in = box.addButton("Sign in…", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Close)
        box.setDefaultButton(sign_in)
        box.exec()
        if box.clickedButton() is sign_in:
            self.sign_in()

    def sign_in(self) -> None:
        """AWS IAM Identity Center's sign-in in a dialog; then Ferry starts again with it."""
        dialog = SignInDialog(self.backend.env, self.backend.profile_name, self)
        self.sign_in_dialog = dialog  # reachable by tests while it runs
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.statusBar().showMessage(f"Signed in to AWS. {dialog.status.text()}", 15_000)
            self.backend.restart()
            self.retry(None)  # what failed for want of a sign-in goes again

    def _update_totals(self) -> None:
        totals = self.model.totals()
        active, failed = totals.active, totals.failed
        self.transfer_stack.setCurrentWidget(
            self.transfer_table if totals.files else self.empty_state
        )
        self.clear_button.setEnabled(totals.finished > 0)
        self._set_tray_state(
            TrayState.ERROR
            if failed
            else TrayState.UPLOADING
            if active
            else TrayState.PAUSED
            if totals.paused
            else TrayState.IDLE
        )
        for note in self.notifier.tick(active, time.monotonic()):
            self.notify(note)
        self._show_batch(totals)
        self.model.refresh_running()
        self._withdraw_stale_message(totals)
        parts = [f"{active} active"] if active else []
        if totals.paused:
            parts.append(f"{totals.paused} paused")
        speed, left = totals.rate.bytes_per_second, totals.rate.seconds_left
        if active:
            going = f"{human_size(totals.remaining_bytes)} to go"
            if speed:
                going += f" at {human_size(speed)}/s"
            if left is not None:
                going += f", about {human_duration(left)} left"
            parts.append(going)
        if totals.silent is not None:
            parts.append(waiting_text(totals.silent))
        if failed:
            parts.append(f"{failed} failed")
        self._set_totals(" · ".join(parts) or "Idle")
        if self.tray is not None:
            self.tray.setToolTip("Ferry: " + (", ".join(parts) or "idle"))

    def show_message(
        self, text: str, timeout_ms: int, stale_when: Callable[[Totals], bool] | None = None
    ) -> None:
        """A message in the status bar for a while, withdrawn sooner once ``stale_when``."""
        self.statusBar().showMessage(text, timeout_ms)
        self._stale_when = None if stale_when is None else (text, stale_when)

    def _withdraw_stale_message(self, totals: Totals) -> None:
        if self._stale_when is None:
            return
        text, stale = self._stale_when
        if self.statusBar().currentMessage() != text:
            self._stale_when = None  # another message took its place, or it timed out
        elif stale(totals):
            self.statusBar().clearMessage()
            self._stale_when = None

    def _set_totals(self, text: str) -> None:
        """The totals keep the widest width they needed while busy (their text changes
        every tick; the widgets beside them stay put) and let it go when idle."""
        self.totals_label.setText(text)
        needed = self.totals_label.fontMetrics().horizontalAdvance(text) + 8
        if text == "Idle" or needed > self.totals_label.minimumWidth():
            self.totals_label.setMinimumWidth(needed)

    def _show_batch(self, totals: Totals) -> None:
        """The batch bar: files and bytes of what was queued since the list was idle."""
        batch = totals.batch
        if not batch.files or (batch.files_settled == batch.files and not totals.active):
            self.batch_bar.hide()
            return
        self.batch_bar.setValue(round(batch.fraction * 1000))
        text = (
            f"{batch.files_settled}/{batch.files} files · "
            f"{human_size(batch.bytes_done)} of {human_size(batch.bytes_total)}"
        )
        self.batch_bar.setFormat(text)
        # As wide as the longest text of this batch, not this text: the bar stays put.
        nines = "9" * len(str(batch.files))
        widest = f"{nines}/{nines} files · 999.9 MB of 999.9 MB"
        self.batch_bar.setFixedWidth(self.fontMetrics().horizontalAdvance(widest) + 24)
        self.batch_bar.show()

    def _on_failed_count(self, count: int) -> None:
        self.tabs.setTabText(1, f"&Failed ({count})" if count else "&Failed")

    def _set_tray_state(self, state: TrayState) -> None:
        if state is self.tray_state:
            return
        self.tray_state = state
        if self.tray is not None:
            self.tray.setIcon(self.tray_icons[state])

    def notify(self, note: Notification) -> None:
        """In the status bar always; as a desktop notification when Ferry is not in front."""
        self.notifications = [*self.notifications[-49:], note]
        self._show_note(note)
        if self.tray is not None and not self.isActiveWindow():
            icon = (
                QSystemTrayIcon.MessageIcon.Warning
                if note.kind is NotificationKind.FAILED
                else QSystemTrayIcon.MessageIcon.Information
            )
            self.tray.showMessage(note.title, note.message, icon, 10_000)

    def _show_note(self, note: Notification) -> None:
        """The notice in the status bar, once no person's answer holds it."""
        wait = self._answer_until - time.monotonic()
        if wait > 0:
            QTimer.singleShot(int(wait * 1000) + 1, self, lambda: self._show_note(note))
            return
        self.show_message(
            f"{note.title}: {note.message}",
            15_000,
            (lambda totals: not totals.failed) if note.failed else None,
        )

    def _tray_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason is QSystemTrayIcon.ActivationReason.Trigger:
            self.bring_to_front()

    def bring_to_front(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    @staticmethod
    def _details_text(snapshot: TransferSnapshot) -> str:
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

    def _context_menu(self, position: QPoint) -> None:
        """Only what applies to the rows chosen: no Pause on a finished upload."""
        table = self.transfer_table
        selected = table.selected_snapshots()
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
            lambda: QMessageBox.information(
                self, "Transfer details", self._details_text(selected[0])
            ),
        )
        pausable = [s.id for s in selected if s.state.in_progress and not s.paused]
        paused = [s.id for s in selected if s.state.in_progress and s.paused]
        retryable = [s.id for s in selected if s.state is TransferState.FAILED and retry_helps(s)]
        cancellable = [s.id for s in selected if not s.state.finished]
        finished = [s.id for s in selected if s.state.finished]
        if pausable or paused or retryable or cancellable or finished:
            menu.addSeparator()
        if pausable:
            menu.addAction("Pause", lambda: self.pause(pausable))
        if paused:
            menu.addAction("Resume", lambda: self.unpause(paused))
        if retryable:
            menu.addAction("Retry", lambda: self.retry(retryable))
        if cancellable:
            menu.addAction("Cancel", lambda: self.cancel(cancellable))
        if finished:
            menu.addAction("Remove from list", lambda: self.remove_from_list(finished))
        menu.exec(table.viewport().mapToGlobal(position))

    # -- actions ------------------------------------------------------------------

    def remove_from_list(self, ids: list[int]) -> None:
        """Hide these finished transfers (Ferry's history keeps them)."""
        self.backend.call(Ferry.clear_finished, self.model.remove_finished(ids))

    def pause(self, ids: list[int] | None) -> None:
        self.backend.call(Ferry.pause, ids).then(self._counted("paused"))

    def unpause(self, ids: list[int] | None) -> None:
        self.backend.call(Ferry.unpause, ids).then(self._counted("resumed"))

    def retry(self, ids: list[int] | None) -> None:
        self.backend.call(Ferry.retry, ids).then(lambda done: self._counted("retrying")(len(done)))

    def cancel(self, ids: list[int]) -> None:
        self.backend.call(Ferry.cancel, ids).then(
            lambda done: self._counted("cancelled")(len(done))
        )

    def _counted(self, verb: str) -> Callable[[int], None]:
        return lambda count: self.backend.notice.emit(f"{count} transfer(s) {verb}.")

    def queue_paths(self, paths: list[Path]) -> None:
        if paths:
            self.backend.call(Ferry.queue, paths).then(self._queued)
            self.statusBar().showMessage(f"Queuing {len(paths)} item(s)…", 4000)

    def _queued(self, records: list[TransferRecord]) -> None:
        ids = [record.id for record in records]
        self.show_message(
            f"Queued {len(ids)} file(s).",
            8000,
            (lambda _totals: self.model.settled(ids)) if ids else None,
        )

    def _last_folder(self) -> str:
        folder = self.settings.value("dialogs/last-folder")
        return folder if isinstance(folder, str) and folder else str(Path.home())

    def _remember_folder(self, folder: Path) -> None:
        self.settings.setValue("dialogs/last-folder", str(folder))

    def add_files(self) -> None:
        names, _filter = QFileDialog.getOpenFileNames(
            self, "Add files to upload", self._last_folder()
        )
        if names:
            self._remember_folder(Path(names[0]).parent)
        self.queue_paths([Path(n) for n in names])

    def add_folder(self) -> None:
        name = QFileDialog.getExistingDirectory(self, "Add a folder to upload", self._last_folder())
        if name:
            self._remember_folder(Path(name).parent)
            self.queue_paths([Path(name)])

    def paste_paths(self) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        if mime.hasUrls():
            self.queue_paths(_local_paths(mime.urls()))
        elif mime.hasText():
            lines = [line.strip() for line in mime.text().splitlines() if line.strip()]
            self.queue_paths([Path(QUrl(line).toLocalFile() or line) for line in lines])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = _local_paths(event.mimeData().urls())
        if paths:
            event.acceptProposedAction()
            self.queue_paths(paths)

    def open_settings(self) -> None:
        dialog = SettingsDialog(self.backend.env, self.backend.profile_name, self)
        if dialog.exec() != QDialog.DialogCode.Accepted or dialog.saved_name is None:
            return
        if dialog.saved_name != self.backend.profile_name:
            self.statusBar().showMessage(f"Profile {dialog.saved_name!r} saved.", 15_000)
            return
        answer = QMessageBox.question(
            self,
            "Apply the new settings?",
            f"The settings of {dialog.saved_name!r}, the profile in use, were saved. Apply "
            "them now? Running uploads stop for a moment and continue where they were; "
            "otherwise they apply the next time Ferry starts.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.apply_settings()
        else:
            self.statusBar().showMessage("Saved; the settings apply when Ferry starts.", 15_000)

    def apply_settings(self) -> None:
        """Restart the engine with the saved profile (in the background)."""
        self.status.set_lasting("Applying the new settings…")
        self.backend.restart()

    def open_about(self) -> None:
        AboutDialog(self.backend, self).exec()

    def check_now(self) -> None:
        self.tabs.setCurrentWidget(self.consistency_view)
        self.consistency_view.run_check()

    def focus_filter(self) -> None:
        self.tabs.setCurrentIndex(0)
        self.filter_edit.setFocus()

    # -- closing and quitting -------------------------------------------------------
    #
    # As the desktop clients staff know: closing the window leaves Ferry in the
    # tray while uploads or watched folders run (said once per session, until
    # "Don't show this again"); Quit asks only while uploads run, with buttons
    # that say what they do; without a tray, closing quits as Quit does.

    def quit(self) -> None:
        """A person's Quit (Ctrl+Q, the menus, the tray): asks first while uploads run."""
        if self._quit_confirmed():
            self.quit_now()

    def quit_now(self) -> None:
        """Quit without asking (the system's TERM or Ctrl-C, which waits for no one)."""
        self.really_quit = True
        self.close()

    def _quit_confirmed(self) -> bool:
        active = self.model.totals().active
        if not active:
            return True
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Quit Ferry?",
            f"{active} upload(s) are running.",
            parent=self,
        )
        box.setInformativeText(
            "Quitting stops them now; each resumes where it stopped the next time Ferry "
            "starts, without sending again what the server already has."
        )
        quit_button = box.addButton("&Quit and resume later", QMessageBox.ButtonRole.AcceptRole)
        keep = box.addButton("&Keep uploading", QMessageBox.ButtonRole.RejectRole)
        quit_button.setAccessibleDescription("Ferry quits; the uploads go on at its next start")
        keep.setAccessibleDescription("Ferry stays open and the uploads go on")
        box.setDefaultButton(quit_button)  # Ctrl+Q, Enter: what was asked
        box.setEscapeButton(keep)  # Escape: nothing changes
        self.quit_question = box  # reachable by tests while it runs
        box.exec()
        self.quit_question = None
        return box.clickedButton() is quit_button

    def _runs_in_background(self) -> str:
        """What goes on without the window, in words ("" when nothing does)."""
        active = self.model.totals().active
        folders = len(self.backend.folder_statuses())
        running = []
        if active:
            running.append(f"{active} upload(s) go on")
        if folders:
            running.append(f"{folders} watched folder(s) are still watched")
        return " and ".join(running)

    def _tray_in_use(self) -> bool:
        return self.tray is not None and system_tray_available()

    def _go_to_tray(self, running: str) -> None:
        """Hide in the tray; the first time in a session, say so (unless told not to)."""
        assert self.tray is not None
        if not self._tray_explained and self.settings.value(EXPLAIN_TRAY_KEY, True, type=bool):
            box = QMessageBox(
                QMessageBox.Icon.Information,
                "Ferry keeps running in the tray",
                f"Ferry keeps running in the tray: {running}.",
                parent=self,
            )
            box.setInformativeText(
                "Click its icon by the clock to open this window again. To stop Ferry, "
                "choose Quit (Ctrl+Q) in the File menu or in the icon's menu."
            )
            keep = box.addButton("&Keep running in the tray", QMessageBox.ButtonRole.AcceptRole)
            quit_button = box.addButton("&Quit Ferry", QMessageBox.ButtonRole.DestructiveRole)
            box.setDefaultButton(keep)
            box.setEscapeButton(keep)
            silence = QCheckBox("&Don't show this again")
            silence.setAccessibleDescription(
                "Closing the window then goes to the tray without this message"
            )
            box.setCheckBox(silence)
            self.tray_notice = box  # reachable by tests while it runs
            box.exec()
            self.tray_notice = None
            if silence.isChecked():
                self.settings.setValue(EXPLAIN_TRAY_KEY, False)
                self.settings.sync()
            if box.clickedButton() is quit_button:
                self.quit()
                return
            self._tray_explained = True
        self.hide()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.really_quit:
            running = self._runs_in_background()
            if running and self._tray_in_use():
                event.ignore()
                self._go_to_tray(running)
                return
            # Nothing to go on with, or no tray to go on in: closing is quitting.
            if not self._quit_confirmed():
                event.ignore()
                return
        self._shut_down()
        event.accept()

    def _shut_down(self) -> None:
        """The window and the tray icon go at once; the engine stops behind them
        (uploads interrupted, resumed at the next start)."""
        self.really_quit = True
        self._save_layout()
        self.totals_timer.stop()
        self.hide()
        if self.tray is not None:
            self.tray.hide()
        self.backend.stop()
        self.quitted.emit()

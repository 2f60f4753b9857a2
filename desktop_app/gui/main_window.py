"""Ferry's main window: drop files in, watch them go, retry what failed.

The window holds no upload logic: it posts jobs to the Backend and shows what
the EngineBridge signals. It never does I/O on the GUI thread.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import (
    QByteArray,
    QPoint,
    QSettings,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    QUrl,
    Slot,
)
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QIcon,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QStyle,
    QSystemTrayIcon,
    QTableView,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.events import TransferSnapshot
from desktop_app.core.journal import TransferState
from desktop_app.gui.about import AboutDialog
from desktop_app.gui.backend import Backend
from desktop_app.gui.bridge import EngineBridge
from desktop_app.gui.consistency_view import ConsistencyView
from desktop_app.gui.folders_view import FoldersView
from desktop_app.gui.models import (
    Column,
    SearchFilterModel,
    SnapshotRole,
    StateFilterModel,
    TransferTableModel,
    state_label,
)
from desktop_app.gui.notifier import BatchNotifier, Notification, NotificationKind
from desktop_app.gui.settings_dialog import SettingsDialog
from desktop_app.gui.units import human_size
from desktop_app.gui.widgets import ProgressDelegate
from desktop_app.resources import TrayState, tray_icon_svg


def _local_paths(urls: list[QUrl]) -> list[Path]:
    return [Path(url.toLocalFile()) for url in urls if url.isLocalFile()]


class TransferTable(QTableView):
    def __init__(self, proxy: QSortFilterProxyModel) -> None:
        super().__init__()
        self.setModel(proxy)
        self.setSortingEnabled(True)
        self.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # queue order until a header is clicked
        self.setWordWrap(False)
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
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

    def selected_snapshots(self) -> list[TransferSnapshot]:
        rows = {index.row() for index in self.selectionModel().selectedRows()}
        return [self.model().index(row, 0).data(SnapshotRole) for row in sorted(rows)]


class MainWindow(QMainWindow):
    def __init__(self, backend: Backend, bridge: EngineBridge, settings: QSettings) -> None:
        super().__init__()
        self.backend = backend
        self.bridge = bridge
        self.settings = settings
        self.really_quit = False
        self.setWindowTitle("Ferry")
        self.setAcceptDrops(True)
        self.resize(1000, 600)

        self.model = TransferTableModel()
        bridge.transfersChanged.connect(self.model.upsert)
        bridge.progressChanged.connect(self.model.set_progress)
        backend.opened.connect(self._on_opened)
        backend.notice.connect(self._on_notice)
        backend.failed.connect(self._on_failed)

        self.all_proxy = SearchFilterModel()
        self.all_proxy.setSourceModel(self.model)
        self.failed_proxy = StateFilterModel({TransferState.FAILED})
        self.failed_proxy.setSourceModel(self.model)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._transfers_tab(), "&Transfers")
        self.tabs.addTab(self._failed_tab(), "&Failed")
        self.consistency_view = ConsistencyView(backend)
        self.tabs.addTab(self.consistency_view, "&Bucket && catalog")
        self.folders_view = FoldersView(backend)
        self.tabs.addTab(self.folders_view, "&Watched folders")
        self.setCentralWidget(self.tabs)
        self._build_actions()
        self.tray_icons = {state: QIcon(str(tray_icon_svg(state))) for state in TrayState}
        self.tray_state = TrayState.IDLE
        self.notifier = BatchNotifier()
        self.notifications: list[Notification] = []  # what was shown, newest last
        bridge.transfersChanged.connect(lambda batch: self.notifier.observe(batch.snapshots))
        backend.historyLoaded.connect(self.notifier.history_loaded)

        self.connection_label = QLabel("Connecting…")
        self.totals_label = QLabel("")
        self.statusBar().addWidget(self.connection_label, 1)
        self.statusBar().addPermanentWidget(self.totals_label)
        self.totals_timer = QTimer(self)
        self.totals_timer.setInterval(500)
        self.totals_timer.timeout.connect(self._update_totals)
        self.totals_timer.start()
        self.tray = self._build_tray()
        self._restore_layout()

    # -- building -------------------------------------------------------------

    def _transfers_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by name or key (Ctrl+F)")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.all_proxy.set_text)
        layout.addWidget(self.filter_edit)
        self.hint = QLabel("Drop files or folders anywhere in this window to upload them.")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.hint)
        self.transfer_table = TransferTable(self.all_proxy)
        self.transfer_table.customContextMenuRequested.connect(self._context_menu)
        layout.addWidget(self.transfer_table)
        return page

    def _failed_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.failed_table = TransferTable(self.failed_proxy)
        self.failed_table.customContextMenuRequested.connect(self._context_menu)
        self.failed_table.selectionModel().selectionChanged.connect(self._show_failure)
        layout.addWidget(self.failed_table, 3)
        self.failure_details = QLabel("Select a failed transfer to see what went wrong.")
        self.failure_details.setWordWrap(True)
        self.failure_details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.failure_details, 1)
        buttons = QHBoxLayout()
        self.retry_button = QPushButton("&Retry")
        self.retry_button.clicked.connect(self.retry_selected)
        self.retry_all_button = QPushButton("Retry &all")
        self.retry_all_button.clicked.connect(lambda: self.backend.retry(None))
        self.remove_button = QPushButton("Re&move")
        self.remove_button.clicked.connect(self.remove_selected)
        for button in (self.retry_button, self.retry_all_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        return page

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
        self.quit_action = action("&Quit", "Ctrl+Q", self.quit)
        self.pause_all_action = action(
            "&Pause all", "Ctrl+P", lambda: self.backend.pause(None), pixmap.SP_MediaPause
        )
        self.resume_all_action = action(
            "&Resume all", "Ctrl+Shift+P", lambda: self.backend.unpause(None), pixmap.SP_MediaPlay
        )
        self.retry_all_action = action(
            "Retry all &failed", "Ctrl+Shift+R", lambda: self.backend.retry(None)
        )
        self.filter_action = action("Fi&lter…", QKeySequence.StandardKey.Find, self.focus_filter)
        self.check_action = action(
            "&Check bucket and catalog now", "F5", self.check_now, pixmap.SP_BrowserReload
        )
        self.about_action = action("&About Ferry", "F1", self.open_about)
        views = []
        for index in range(self.tabs.count()):
            view = QAction(self.tabs.tabText(index).replace("&&", "and").replace("&", ""), self)
            view.setShortcut(QKeySequence(f"Alt+{index + 1}"))
            view.triggered.connect(lambda _checked=False, i=index: self.tabs.setCurrentIndex(i))
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
                    None,
                    self.quit_action,
                ],
            ),
            (
                "&Transfers",
                [
                    self.pause_all_action,
                    self.resume_all_action,
                    self.retry_all_action,
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

    def _build_tray(self) -> QSystemTrayIcon | None:
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return None
        tray = QSystemTrayIcon(self.tray_icons[TrayState.IDLE], self)
        menu = QMenu(self)
        menu.addAction("Show Ferry", self.bring_to_front)
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
        self.connection_label.setText(text)

    @Slot(str)
    def _on_notice(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    @Slot(str, str)
    def _on_failed(self, title: str, message: str) -> None:
        if not self.backend.ready or self.backend.profile is None:
            self.connection_label.setText(f"Not connected: {title}")
        QMessageBox.warning(self, title, message)

    def _update_totals(self) -> None:
        totals = self.model.totals()
        active, failed = totals.active, totals.failed
        self.hint.setVisible(totals.files == 0)
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
        parts = [f"{totals.files} file(s)", f"{active} active"]
        if active:
            parts.append(
                f"{human_size(totals.remaining_bytes)} to go at {human_size(totals.speed)}/s"
            )
        if failed:
            parts.append(f"{failed} failed")
        self.totals_label.setText(" · ".join(parts))
        self.tabs.setTabText(1, f"&Failed ({failed})" if failed else "&Failed")
        if self.tray is not None:
            self.tray.setToolTip("Ferry: " + ", ".join(parts))

    def _set_tray_state(self, state: TrayState) -> None:
        if state is self.tray_state:
            return
        self.tray_state = state
        if self.tray is not None:
            self.tray.setIcon(self.tray_icons[state])

    def notify(self, note: Notification) -> None:
        """In the status bar always; as a desktop notification when Ferry is not in front."""
        self.notifications = [*self.notifications[-49:], note]
        self.statusBar().showMessage(f"{note.title}: {note.message}", 15_000)
        if self.tray is not None and not self.isActiveWindow():
            icon = (
                QSystemTrayIcon.MessageIcon.Warning
                if note.kind is NotificationKind.FAILED
                else QSystemTrayIcon.MessageIcon.Information
            )
            self.tray.showMessage(note.title, note.message, icon, 10_000)

    def _tray_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason is QSystemTrayIcon.ActivationReason.Trigger:
            self.bring_to_front()

    def bring_to_front(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def _show_failure(self) -> None:
        selected = self.failed_table.selected_snapshots()
        self.retry_button.setEnabled(any(_retryable(s) for s in selected) or not selected)
        if not selected:
            self.failure_details.setText("Select a failed transfer to see what went wrong.")
            return
        snapshot = selected[0]
        self.failure_details.setText(self._details_text(snapshot))

    @staticmethod
    def _details_text(snapshot: TransferSnapshot) -> str:
        lines = [
            f"File: {snapshot.source_path}",
            f"Destination: {snapshot.bucket}/{snapshot.key}",
            f"Size: {human_size(snapshot.size)} ({snapshot.size:,} bytes)",
            f"State: {state_label(snapshot)}; attempts: {snapshot.attempts}",
        ]
        if snapshot.sha256:
            lines.append(f"SHA-256: {snapshot.sha256}")
        if snapshot.error is not None:
            lines.append(f"Problem: {snapshot.error.title}. {snapshot.error.message}")
        error, retry_at = snapshot.error, snapshot.retry_at
        if error is not None and retry_at is not None and error.kind.retries_on_its_own:
            when = retry_at.astimezone()
            lines.append(f"Ferry tries again by itself at {when:%H:%M:%S} (or click Retry).")
        return "\n".join(lines)

    def _current_table(self) -> TransferTable:
        return self.failed_table if self.tabs.currentIndex() == 1 else self.transfer_table

    def _context_menu(self, position: QPoint) -> None:
        table = self._current_table()
        selected = table.selected_snapshots()
        if not selected:
            return
        ids = [s.id for s in selected]
        menu = QMenu(self)
        menu.addAction(
            "Copy key",
            lambda: QGuiApplication.clipboard().setText("\n".join(s.key for s in selected)),
        )
        menu.addAction(
            "Show in folder",
            lambda: QDesktopServices.openUrl(
                QUrl.fromLocalFile(str(Path(selected[0].source_path).parent))
            ),
        )
        menu.addAction(
            "Details",
            lambda: QMessageBox.information(
                self, "Transfer details", self._details_text(selected[0])
            ),
        )
        menu.addSeparator()
        menu.addAction("Pause", lambda: self.backend.pause(ids))
        menu.addAction("Resume", lambda: self.backend.unpause(ids))
        menu.addAction("Retry", lambda: self.backend.retry(ids))
        menu.addAction("Cancel", lambda: self.backend.cancel(ids))
        menu.exec(table.viewport().mapToGlobal(position))

    # -- actions ------------------------------------------------------------------

    def queue_paths(self, paths: list[Path]) -> None:
        if paths:
            self.backend.add_paths(paths)
            self.statusBar().showMessage(f"Queuing {len(paths)} item(s)…", 4000)

    def add_files(self) -> None:
        names, _filter = QFileDialog.getOpenFileNames(self, "Add files to upload")
        self.queue_paths([Path(n) for n in names])

    def add_folder(self) -> None:
        name = QFileDialog.getExistingDirectory(self, "Add a folder to upload")
        if name:
            self.queue_paths([Path(name)])

    def paste_paths(self) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        if mime.hasUrls():
            self.queue_paths(_local_paths(mime.urls()))
        elif mime.hasText():
            lines = [line.strip() for line in mime.text().splitlines() if line.strip()]
            self.queue_paths([Path(QUrl(line).toLocalFile() or line) for line in lines])

    def retry_selected(self) -> None:
        ids = [s.id for s in self.failed_table.selected_snapshots() if _retryable(s)]
        if ids:
            self.backend.retry(ids)

    def remove_selected(self) -> None:
        ids = [s.id for s in self.failed_table.selected_snapshots()]
        if ids:
            self.backend.cancel(ids)

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
        self.connection_label.setText("Applying the new settings…")
        self.backend.restart()

    def open_about(self) -> None:
        AboutDialog(self.backend, self).exec()

    def check_now(self) -> None:
        self.tabs.setCurrentWidget(self.consistency_view)
        self.consistency_view.run_check()

    def focus_filter(self) -> None:
        self.tabs.setCurrentIndex(0)
        self.filter_edit.setFocus()

    def quit(self) -> None:
        self.really_quit = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        active = self.model.totals().active
        if active and not self.really_quit and self.tray is not None:
            answer = QMessageBox.question(
                self,
                "Uploads are running",
                f"{active} upload(s) are still running. Keep uploading in the tray, or stop "
                "now (they resume the next time Ferry starts)?",
                QMessageBox.StandardButton.Yes
                | QMessageBox.StandardButton.No
                | QMessageBox.StandardButton.Cancel,
            )
            if answer == QMessageBox.StandardButton.Cancel:
                event.ignore()
                return
            if answer == QMessageBox.StandardButton.Yes:
                self.hide()
                event.ignore()
                return
        self._save_layout()
        self.totals_timer.stop()
        self.backend.stop()
        if self.tray is not None:
            self.tray.hide()
        event.accept()


def _retryable(snapshot: TransferSnapshot) -> bool:
    """Retry is offered only where it can help (not for a socket, a loop, a bad name)."""
    return snapshot.error is None or snapshot.error.kind.retryable

"""Ferry's main window: drop files in, watch them go, retry what failed.

The window holds no upload logic: it posts jobs to the Backend and shows what
the EngineBridge signals. It never does I/O on the GUI thread. It puts the
parts together and says what each action does: the tabs (``views``), the
actions and menus (``window_actions``), the person's commands on transfers
(``transfer_commands``), the status bar (``status_panel``), the tray icon
(``tray``) and the questions of closing and quitting (``quitting``).
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QSettings, Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QDialog, QFileDialog, QMainWindow, QMessageBox, QTabWidget

from desktop_app.core.model.errors import SignInRequiredError
from desktop_app.gui.backend import Backend
from desktop_app.gui.bridge import EngineBridge
from desktop_app.gui.dialogs.about import AboutDialog
from desktop_app.gui.dialogs.settings_dialog import SettingsDialog
from desktop_app.gui.dialogs.sign_in import SignInDialog
from desktop_app.gui.models import TransferTableModel
from desktop_app.gui.notifier import BatchNotifier, Notification
from desktop_app.gui.quitting import CloseQuestions, runs_in_background
from desktop_app.gui.status_panel import StatusPanel, totals_words
from desktop_app.gui.transfer_commands import TransferCommands
from desktop_app.gui.tray import Tray
from desktop_app.gui.views.consistency_view import ConsistencyView
from desktop_app.gui.views.failed_view import FailedView
from desktop_app.gui.views.folders_view import FoldersView
from desktop_app.gui.views.transfers_view import TransfersView
from desktop_app.gui.widgets import accessible, first_window_geometry
from desktop_app.gui.window_actions import WindowActions

# The tabs' words, in their order (Alt+1 for the first).
TAB_TITLES = ("&Transfers", "&Failed", "&Bucket && catalog", "&Watched folders")
FAILED_TAB = 1


def _local_paths(urls: list[QUrl]) -> list[Path]:
    return [Path(url.toLocalFile()) for url in urls if url.isLocalFile()]


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
        # Made first: a palette change during construction tints their glyphs.
        self.window_actions = WindowActions(self, TAB_TITLES)
        self.close_questions = CloseQuestions(self, settings)
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

        self.status_panel = StatusPanel()
        self.commands = TransferCommands(backend, self.model, self.status_panel)
        self.tabs = QTabWidget()
        self.transfers_view = TransfersView(self.model, self.commands)
        self.tabs.addTab(self.transfers_view, TAB_TITLES[0])
        self.failed_view = FailedView(backend)
        bridge.transfersChanged.connect(self.failed_view.upsert)
        self.failed_view.countChanged.connect(self._on_failed_count)
        self.tabs.addTab(self.failed_view, TAB_TITLES[FAILED_TAB])
        self.consistency_view = ConsistencyView(backend)
        self.tabs.addTab(self.consistency_view, TAB_TITLES[2])
        self.folders_view = FoldersView(backend, self.model)
        self.tabs.addTab(self.folders_view, TAB_TITLES[3])
        self.setCentralWidget(self.tabs)
        self._connect_actions()
        self.window_actions.build_menus()
        self.notifier = BatchNotifier()
        self.notifications: list[Notification] = []  # what was shown, newest last
        bridge.transfersChanged.connect(lambda batch: self.notifier.observe(batch.snapshots))
        backend.historyLoaded.connect(self.notifier.history_loaded)

        self.setStatusBar(self.status_panel.bar)
        self.totals_timer = QTimer(self)
        self.totals_timer.setInterval(500)
        self.totals_timer.timeout.connect(self._update_totals)
        self.totals_timer.start()
        actions = self.window_actions
        self.tray = Tray(
            self, self.bring_to_front, [actions.pause_all, actions.resume_all, None, actions.quit]
        )
        # Names and descriptions for screen readers where a control shows no words
        # of its own (each view and the status bar describe their own controls).
        accessible(self.tabs, "Views", "Transfers, Failed, Bucket & catalog, Watched folders")
        self._restore_layout()

    # -- building -------------------------------------------------------------

    def _connect_actions(self) -> None:
        """What each action does."""
        actions, commands = self.window_actions, self.commands
        for made, slot in (
            (actions.add_files, self.add_files),
            (actions.add_folder, self.add_folder),
            (actions.paste, self.paste_paths),
            (actions.settings, self.open_settings),
            (actions.sign_in, self.sign_in),
            (actions.close, self.close),
            (actions.quit, self.quit),
            (actions.pause_all, lambda: commands.pause(None)),
            (actions.resume_all, lambda: commands.unpause(None)),
            (actions.retry_all, lambda: commands.retry(None)),
            (actions.filter, self.focus_filter),
            (actions.check, self.check_now),
            (actions.clear, commands.clear_finished),
            (actions.about, self.open_about),
        ):
            made.triggered.connect(slot)
        for index, view in enumerate(actions.views):
            view.triggered.connect(lambda _checked=False, i=index: self.show_view(i))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self.window_actions.tint_glyphs()

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

    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.setGeometry(first_window_geometry(self.screen().availableGeometry()))
        header = self.settings.value("window/transfer-columns")
        if isinstance(header, QByteArray):
            self.transfers_view.table.horizontalHeader().restoreState(header)

    def _save_layout(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue(
            "window/transfer-columns", self.transfers_view.table.horizontalHeader().saveState()
        )
        self.settings.sync()

    # -- slots ------------------------------------------------------------------

    @Slot(str)
    def _on_opened(self, text: str) -> None:
        self.status_panel.bar.set_lasting(text)

    @Slot(str)
    def _on_notice(self, text: str) -> None:
        self.status_panel.show_answer(text)

    @Slot(str)
    def _on_held_back(self, why: str) -> None:
        self.status_panel.show_held_back(why)

    @Slot(str, str)
    def _on_failed(self, title: str, message: str) -> None:
        if self.really_quit:
            return  # quitting: no one is there to read it
        if not self.backend.ready or self.backend.profile is None:
            self.status_panel.bar.set_lasting(f"Not connected: {title}")
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
            self.commands.retry(None)  # what failed for want of a sign-in goes again

    def _update_totals(self) -> None:
        """Each tick: the list, the tray, the notifications and the status bar."""
        totals = self.model.totals()
        self.transfers_view.show_totals(totals)
        words = totals_words(totals)
        self.tray.show_totals(totals, ", ".join(words) or "idle")
        for note in self.notifier.tick(totals.active, time.monotonic()):
            self.notify(note)
        self.model.refresh_running()
        self.status_panel.show_totals(totals, " · ".join(words) or "Idle")

    def _on_failed_count(self, count: int) -> None:
        title = TAB_TITLES[FAILED_TAB]
        self.tabs.setTabText(FAILED_TAB, f"{title} ({count})" if count else title)

    def notify(self, note: Notification) -> None:
        """In the status bar always; as a desktop notification when Ferry is not in front."""
        self.notifications = [*self.notifications[-49:], note]
        self.status_panel.show_note(note)
        if not self.isActiveWindow():
            self.tray.show_message(note)

    def bring_to_front(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    # -- actions ------------------------------------------------------------------

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
        self.commands.queue_paths([Path(n) for n in names])

    def add_folder(self) -> None:
        name = QFileDialog.getExistingDirectory(self, "Add a folder to upload", self._last_folder())
        if name:
            self._remember_folder(Path(name).parent)
            self.commands.queue_paths([Path(name)])

    def paste_paths(self) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        if mime.hasUrls():
            self.commands.queue_paths(_local_paths(mime.urls()))
        elif mime.hasText():
            lines = [line.strip() for line in mime.text().splitlines() if line.strip()]
            self.commands.queue_paths([Path(QUrl(line).toLocalFile() or line) for line in lines])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = _local_paths(event.mimeData().urls())
        if paths:
            event.acceptProposedAction()
            self.commands.queue_paths(paths)

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
        self.status_panel.bar.set_lasting("Applying the new settings…")
        self.backend.restart()

    def open_about(self) -> None:
        AboutDialog(self.backend, self).exec()

    def check_now(self) -> None:
        self.tabs.setCurrentWidget(self.consistency_view)
        self.consistency_view.run_check()

    def focus_filter(self) -> None:
        self.tabs.setCurrentIndex(0)
        self.transfers_view.filter_edit.setFocus()

    # -- closing and quitting -------------------------------------------------------
    #
    # Closing leaves Ferry in the tray while anything runs; Quit asks only while
    # uploads run; without a tray, closing quits (the questions: quitting.py).

    def quit(self) -> None:
        """A person's Quit (Ctrl+Q, the menus, the tray): asks first while uploads run."""
        if self.close_questions.quit_confirmed(self.model.totals().active):
            self.quit_now()

    def quit_now(self) -> None:
        """Quit without asking (the system's TERM or Ctrl-C, which waits for no one)."""
        self.really_quit = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.really_quit:
            active = self.model.totals().active
            running = runs_in_background(active, len(self.backend.folder_statuses()))
            if running and self.tray.in_use():
                event.ignore()
                if self.close_questions.stays_in_tray(running):
                    self.hide()
                else:
                    self.quit()
                return
            # Nothing to go on with, or no tray to go on in: closing is quitting.
            if not self.close_questions.quit_confirmed(active):
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
        self.tray.hide()
        self.backend.stop()
        self.quitted.emit()

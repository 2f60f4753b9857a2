"""The questions closing the window and quitting Ferry may ask.

As the desktop clients staff know: closing the window leaves Ferry in the
tray while uploads or watched folders run (said once per session, until
"Don't show this again"); Quit asks only while uploads run, with buttons
that say what they do; without a tray, closing quits as Quit does. The
window decides when to ask (``MainWindow.closeEvent``); here are the questions,
each box reachable by tests while it runs.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QCheckBox, QMessageBox, QWidget

EXPLAIN_TRAY_KEY = "close/explain-tray"  # window.ini: False once "Don't show this again"


def runs_in_background(active: int, folders: int) -> str:
    """What goes on without the window, in words ("" when nothing does)."""
    running = []
    if active:
        running.append(f"{active} upload(s) go on")
    if folders:
        running.append(f"{folders} watched folder(s) are still watched")
    return " and ".join(running)


class CloseQuestions:
    """Asks, on ``parent``, whether to quit and says (once) that Ferry stays in the tray."""

    def __init__(self, parent: QWidget, settings: QSettings) -> None:
        self.parent = parent
        self.settings = settings
        self._tray_explained = False  # this session, closing to the tray was said
        self.quit_question: QMessageBox | None = None
        self.tray_notice: QMessageBox | None = None

    def quit_confirmed(self, active: int) -> bool:
        """Whether to quit with ``active`` uploads running (asked only if there are any)."""
        if not active:
            return True
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Quit Ferry?",
            f"{active} upload(s) are running.",
            parent=self.parent,
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

    def stays_in_tray(self, running: str) -> bool:
        """Before hiding in the tray, the first time in a session, say so (unless told
        not to); False when the person chose to quit instead."""
        if self._tray_explained or not self.settings.value(EXPLAIN_TRAY_KEY, True, type=bool):
            return True
        box = QMessageBox(
            QMessageBox.Icon.Information,
            "Ferry keeps running in the tray",
            f"Ferry keeps running in the tray: {running}.",
            parent=self.parent,
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
            return False
        self._tray_explained = True
        return True

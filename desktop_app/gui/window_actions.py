"""The main window's actions: their words, shortcuts and icons, and where they appear.

Each action is added to the window itself, so its shortcut works even when the
menu bar is hidden; the menus, the toolbar and the tray's menu show the same
action objects. What an action does is the window's to say: it connects each
``triggered`` (``MainWindow._connect_actions``). Pause and play are one-colour
glyphs, black in Qt's own style: on a dark palette they are drawn in its text
colour (:meth:`WindowActions.tint_glyphs`, at each palette change).
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QStyle, QToolBar

from desktop_app.gui.widgets import tinted

GLYPHS = (QStyle.StandardPixmap.SP_MediaPause, QStyle.StandardPixmap.SP_MediaPlay)
Shortcut = QKeySequence | QKeySequence.StandardKey | str


class WindowActions:
    """Every action of ``window``; ``views`` are Alt+1.. for the tabs named ``view_titles``."""

    def __init__(self, window: QMainWindow, view_titles: Sequence[str]) -> None:
        self.window = window
        self._glyphs: list[tuple[QAction, QStyle.StandardPixmap]] = []  # see tint_glyphs
        pixmap = QStyle.StandardPixmap
        action = self._action
        self.add_files = action("Add &files…", "Ctrl+O", pixmap.SP_FileIcon)
        self.add_folder = action("Add f&older…", "Ctrl+Shift+O", pixmap.SP_DirIcon)
        self.paste = action("&Paste file paths", QKeySequence.StandardKey.Paste)
        self.settings = action("&Settings…", "Ctrl+,")
        self.sign_in = action("Sign &in to AWS…", "Ctrl+Shift+I")
        self.close = action("&Close window", QKeySequence.StandardKey.Close)
        self.close.setToolTip(
            "Close this window; Ferry goes on in the tray while uploads or watched folders run"
        )
        self.quit = action("&Quit", "Ctrl+Q")
        self.quit.setToolTip("Quit Ferry: uploads stop and resume at the next start")
        self.pause_all = action("&Pause all", "Ctrl+P", pixmap.SP_MediaPause)
        self.resume_all = action("&Resume all", "Ctrl+Shift+P", pixmap.SP_MediaPlay)
        self.retry_all = action("Retry all &failed", "Ctrl+Shift+R")
        self.filter = action("Fi&lter…", QKeySequence.StandardKey.Find)
        self.check = action("&Check bucket && catalog now", "F5", pixmap.SP_BrowserReload)
        self.clear = action("C&lear finished", "Ctrl+Shift+L")
        self.about = action("&About Ferry", "F1")
        self.tint_glyphs()
        # The tab's own words, Alt+1 for the first.
        self.views = [action(title, f"Alt+{index + 1}") for index, title in enumerate(view_titles)]

    def _action(
        self, text: str, shortcut: Shortcut, icon: QStyle.StandardPixmap | None = None
    ) -> QAction:
        made = QAction(text, self.window)
        if icon is not None:
            made.setIcon(self.window.style().standardIcon(icon))
            if icon in GLYPHS:
                self._glyphs.append((made, icon))
        made.setShortcut(QKeySequence(shortcut))
        self.window.addAction(made)  # shortcuts work even when the menu bar is hidden
        return made

    def tint_glyphs(self) -> None:
        """Pause and play are one-colour glyphs, black in Qt's own style: on a dark
        palette they are drawn in its text colour (they could not be seen)."""
        palette = self.window.palette()
        dark = palette.window().color().lightness() < 128
        for made, which in self._glyphs:
            icon = self.window.style().standardIcon(which)
            made.setIcon(tinted(icon, palette.buttonText().color()) if dark else icon)

    def build_menus(self) -> None:
        """The menu bar and the toolbar of the window."""
        bar = self.window.menuBar()
        for title, actions in (
            (
                "&File",
                [
                    self.add_files,
                    self.add_folder,
                    self.paste,
                    None,
                    self.settings,
                    self.sign_in,
                    None,
                    self.close,
                    self.quit,
                ],
            ),
            (
                "&Transfers",
                [self.pause_all, self.resume_all, self.retry_all, self.clear, None, self.filter],
            ),
            ("&View", [*self.views, None, self.check]),
            ("&Help", [self.about]),
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
        for tool in (self.add_files, self.add_folder, None, self.pause_all, self.resume_all):
            if tool is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(tool)
        self.window.addToolBar(toolbar)

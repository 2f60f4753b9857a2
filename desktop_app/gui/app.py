"""Starting the window: QApplication, first-run dialog, main window."""

from __future__ import annotations

import gc
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox

from desktop_app import __version__
from desktop_app.core.model.errors import FerryError
from desktop_app.core.runtime.environment import Environment
from desktop_app.gui.backend import Backend
from desktop_app.gui.bridge import EngineBridge
from desktop_app.gui.dialogs.first_run import FirstRunChoice, FirstRunDialog
from desktop_app.gui.main_window import MainWindow
from desktop_app.resources import DESKTOP_ID, ICON_SIZES, app_icon_png, app_icon_svg

log = logging.getLogger(__name__)


def needs_first_run(env: Environment, profile_name: str | None) -> bool:
    if profile_name is not None:
        return False
    try:
        return env.profiles.default_name() is None
    except FerryError:
        return False  # a broken profile file is reported when opening


def build_window(
    env: Environment, profile_name: str | None, *, create_sandbox: bool = False
) -> MainWindow:
    # Engine threads hold the GIL for up to the switch interval (5 ms by default)
    # each time the GUI thread wants it back; a shorter interval keeps the
    # event loop's stalls short while thousands of files are being queued.
    sys.setswitchinterval(0.001)
    bridge = EngineBridge()
    backend = Backend(env, profile_name, bridge, create_sandbox=create_sandbox)
    settings = QSettings(str(env.paths.config_dir / "window.ini"), QSettings.Format.IniFormat)
    window = MainWindow(backend, bridge, settings)
    backend.start()
    return window


def run_gui(env: Environment, profile_name: str | None, initial_paths: Sequence[Path] = ()) -> int:
    app = QApplication.instance() or QApplication(sys.argv)
    assert isinstance(app, QApplication)
    app.setApplicationName("Ferry")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(DESKTOP_ID)  # matches the installed desktop entry
    icon = QIcon(str(app_icon_svg()))
    for size in ICON_SIZES:
        icon.addFile(str(app_icon_png(size)))
    app.setWindowIcon(icon)
    # Ferry ends when the window quits (MainWindow.quitted), not when its last
    # window closes: closing may leave it running in the tray.
    app.setQuitOnLastWindowClosed(False)
    try:
        env.paths.ensure()
    except FerryError as exc:  # a folder another user can change: say so, start nothing
        QMessageBox.critical(None, exc.title, exc.message)
        return 1
    create_sandbox = False
    if needs_first_run(env, profile_name):
        dialog = FirstRunDialog(env)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return 0
        create_sandbox = dialog.choice is FirstRunChoice.SANDBOX
    window = build_window(env, profile_name, create_sandbox=create_sandbox)
    window.quitted.connect(app.quit)
    window.show()
    log.info("Window open")
    # Files dropped on the launcher (Exec=ferry %F).
    window.commands.queue_paths(list(initial_paths))
    # Ctrl-C or a TERM from the terminal closes the window the normal way, so
    # transfers are interrupted cleanly and the sandbox server is stopped. Qt's
    # loop gives Python a moment every 200 ms to run the handler.
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: window.quit_now())
    heartbeat = QTimer()
    heartbeat.start(200)
    heartbeat.timeout.connect(lambda: None)
    code = app.exec()
    # The window is gone and the engine stopped. What is left is the
    # interpreter's teardown, whose full garbage collection of every object
    # (the engine's modules are imported here too) took 1.2 s: the objects are
    # left to the end of the process instead.
    gc.freeze()
    return code

"""Sign in to AWS IAM Identity Center from the window, without aws-cli.

The dialog runs :class:`desktop_app.core.settings.sso.SsoSignIn` on a worker thread
(the GUI thread does no I/O): it shows the code to confirm, opens the
verification page in the browser, and closes with Accepted once the person
approved there and the token is in aws-cli's cache. Cancel stops the polling.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPushButton, QVBoxLayout

from desktop_app.core.model.errors import FerryError
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.settings.sso import DeviceCode, SsoSignIn, sign_in_target


class _SignInWork(QObject):
    codeReady = Signal(DeviceCode)
    signedIn = Signal(str)  # until when, in words
    failed = Signal(str)


class SignInDialog(QDialog):
    """Runs the device authorization for the profile's AWS profile; Accepted once signed in."""

    def __init__(self, env: Environment, profile_name: str | None, parent: QObject | None = None):
        super().__init__(parent)  # type: ignore[arg-type]
        self.setWindowTitle("Sign in to AWS")
        self.setMinimumWidth(460)
        self.env = env
        self.profile_name = profile_name
        self.code: DeviceCode | None = None
        layout = QVBoxLayout(self)
        self.status = QLabel("Starting the sign-in…")
        self.status.setWordWrap(True)
        self.code_label = QLabel("")
        self.code_label.setStyleSheet("font-size: 20pt; font-weight: bold")
        self.open_button = QPushButton("&Open the sign-in page")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self.open_page)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.open_button.setToolTip("Open the page to confirm the code in the browser")
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setToolTip("Stop signing in")
        self.buttons.rejected.connect(self.reject)
        for widget in (self.status, self.code_label, self.open_button, self.buttons):
            layout.addWidget(widget)
        self._cancelled = threading.Event()
        self._work = _SignInWork()
        self._work.codeReady.connect(self._show_code)
        self._work.signedIn.connect(self._signed_in)
        self._work.failed.connect(self._failed)
        self._thread = threading.Thread(target=self._run, name="ferry-sign-in", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            target = sign_in_target(self.env.profile(self.profile_name), self.env.environ)
            sign_in = SsoSignIn(target)
            self._work.codeReady.emit(sign_in.start())
            valid_until = sign_in.finish(self._cancelled.is_set)
            self._work.signedIn.emit(f"{valid_until:%Y-%m-%d %H:%M} UTC")
        except FerryError as exc:
            if not self._cancelled.is_set():
                self._work.failed.emit(exc.message)

    @Slot(DeviceCode)
    def _show_code(self, code: DeviceCode) -> None:
        self.code = code
        self.status.setText(
            f"Confirm this code on the sign-in page ({code.verification_uri}), then approve "
            "Ferry there. This window closes by itself once you have."
        )
        self.code_label.setText(code.user_code)
        self.open_button.setEnabled(True)
        self.adjustSize()  # the longer text needs its lines before the browser takes focus
        self.open_page()

    def open_page(self) -> None:
        if self.code is not None:
            QDesktopServices.openUrl(QUrl(self.code.verification_uri_complete))

    @Slot(str)
    def _signed_in(self, until: str) -> None:
        self.status.setText(f"Signed in, until {until}.")
        self.accept()

    @Slot(str)
    def _failed(self, message: str) -> None:
        self.status.setText(message)
        self.code_label.clear()
        self.open_button.setEnabled(False)

    def done(self, result: int) -> None:
        self._cancelled.set()  # the worker stops polling at its next turn
        super().done(result)

"""First run with no profile: start the local sandbox, or enter a bucket.

"Test connection" runs the same checks as ``ferry profile test`` on a
background thread and shows each result; the secret goes to the keyring only
when the profile is saved. Closing the dialog removes what those checks created
(the catalog file opened to test it), except the saved profile's own. Saving
and that cleaning happen before the main window exists, so the
GUI-thread-does-no-I/O rule is not at stake here.
"""

from __future__ import annotations

import enum

from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.model.errors import FerryError
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.settings.profiles import Profile
from desktop_app.core.settings.secrets import SecretKind
from desktop_app.gui.dialogs.destination_form import DestinationForm, remove_created, sqlite_file
from desktop_app.gui.widgets import fit_to_screen

MIN_WIDTH = 560  # every placeholder and a result line of Test connection read whole
RESULT_LINES = 10  # a check's reason wraps to 2-3 lines: five checks read without scrolling


class FirstRunChoice(enum.Enum):
    SANDBOX = "sandbox"
    BUCKET = "bucket"


class FirstRunDialog(QDialog):
    def __init__(self, env: Environment, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.env = env
        self.choice = FirstRunChoice.SANDBOX
        self.saved_profile: Profile | None = None
        self.setWindowTitle("Welcome to Ferry")
        layout = QVBoxLayout(self)
        intro = QLabel(
            "Ferry puts your files into a bucket and checks that they arrived.\n"
            "Where should they go?"
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.sandbox_radio = QRadioButton("Try it out: a &local sandbox on this computer")
        self.bucket_radio = QRadioButton("Use a &bucket (AWS S3, MinIO, SeaweedFS, …)")
        self.sandbox_radio.setToolTip(
            "A real S3 server on this computer, for trying Ferry; nothing leaves it"
        )
        self.bucket_radio.setToolTip("Your organisation's bucket, filled in below")
        self.sandbox_radio.setChecked(True)
        layout.addWidget(self.sandbox_radio)
        layout.addWidget(self.bucket_radio)

        self.bucket_box = DestinationForm(env, "Bucket", result_lines=RESULT_LINES)
        self.bucket_box.name_edit.setText("work")
        layout.addWidget(self.bucket_box)
        self.bucket_box.setEnabled(False)
        self.bucket_radio.toggled.connect(self.bucket_box.setEnabled)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Start &Ferry")
        buttons.button(QDialogButtonBox.StandardButton.Ok).setToolTip(
            "Save the choice and open Ferry's window"
        )
        buttons.button(QDialogButtonBox.StandardButton.Cancel).setToolTip(
            "Close without setting anything up"
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def showEvent(self, event: QShowEvent) -> None:
        if not event.spontaneous():
            fit_to_screen(self, min_width=MIN_WIDTH)
        super().showEvent(event)

    def accept(self) -> None:
        if self.sandbox_radio.isChecked():
            self.choice = FirstRunChoice.SANDBOX
            super().accept()
            return
        self.choice = FirstRunChoice.BUCKET
        form = self.bucket_box
        try:
            profile = form.apply_to_template()
            profile.validate()
            if form.secret_edit.text():
                self.env.secrets.set(
                    profile.name, SecretKind.S3_SECRET_KEY, form.secret_edit.text()
                )
            self.env.profiles.save(profile, make_default=True)
        except FerryError as exc:
            form.test_result.setPlainText(exc.message)
            return
        self.saved_profile = profile
        super().accept()

    def done(self, result: int) -> None:
        self.bucket_box.tester.wait()
        # Cancel leaves nothing behind: what "Test connection" created (a catalog
        # file opened to test it) goes, unless it is the saved profile's own.
        kept = sqlite_file(self.saved_profile.catalog_url) if self.saved_profile else None
        remove_created([p for p in self.bucket_box.tester.created if p != kept])
        super().done(result)

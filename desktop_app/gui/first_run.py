"""First run with no profile: start the local sandbox, or enter a bucket.

"Test connection" runs the same checks as ``ferry profile test`` on a
background thread and shows each result; the secret goes to the keyring only
when the profile is saved. Saving happens before the main window exists, so
the GUI-thread-does-no-I/O rule is not at stake here.
"""

from __future__ import annotations

import enum

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.app import Environment
from desktop_app.core.config import Profile
from desktop_app.core.errors import FerryError
from desktop_app.core.keys import SecretKind
from desktop_app.gui.connection_test import ConnectionTester


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
        self.sandbox_radio.setChecked(True)
        layout.addWidget(self.sandbox_radio)
        layout.addWidget(self.bucket_radio)

        self.bucket_box = QGroupBox("Bucket")
        form = QFormLayout(self.bucket_box)
        self.name_edit = QLineEdit("work")
        self.endpoint_edit = QLineEdit()
        self.endpoint_edit.setPlaceholderText("https://s3.example.com (empty for AWS S3)")
        self.region_edit = QLineEdit("us-east-1")
        self.bucket_edit = QLineEdit()
        self.prefix_edit = QLineEdit()
        self.access_key_edit = QLineEdit()
        self.secret_edit = QLineEdit()
        self.secret_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.catalog_edit = QLineEdit()
        self.catalog_edit.setPlaceholderText("empty: a catalog file on this computer")
        for label, widget in (
            ("Profile &name", self.name_edit),
            ("&Endpoint", self.endpoint_edit),
            ("&Region", self.region_edit),
            ("B&ucket", self.bucket_edit),
            ("Key &prefix", self.prefix_edit),
            ("&Access key ID", self.access_key_edit),
            ("&Secret key", self.secret_edit),
            ("&Catalog URL", self.catalog_edit),
        ):
            form.addRow(label, widget)
        self.test_button = QPushButton("&Test connection")
        self.test_button.clicked.connect(self.test_connection)
        self.test_result = QLabel("")
        self.test_result.setWordWrap(True)
        form.addRow(self.test_button, self.test_result)
        layout.addWidget(self.bucket_box)
        self.bucket_box.setEnabled(False)
        self.bucket_radio.toggled.connect(self.bucket_box.setEnabled)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("&Start")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.tester = ConnectionTester(self)
        self.tester.finished.connect(self._show_test_result)

    def profile_from_form(self) -> Profile:
        name = self.name_edit.text().strip()
        profile = Profile(
            name=name,
            bucket=self.bucket_edit.text().strip(),
            catalog_url=self.catalog_edit.text().strip()
            or self.env.paths.default_catalog_url(name),
            endpoint_url=self.endpoint_edit.text().strip() or None,
            region=self.region_edit.text().strip() or "us-east-1",
            prefix=self.prefix_edit.text().strip(),
            access_key_id=self.access_key_edit.text().strip() or None,
        )
        profile.validate()
        return profile

    def test_connection(self) -> None:
        try:
            profile = self.profile_from_form()
        except FerryError as exc:
            self.test_result.setText(exc.message)
            return
        self.test_button.setEnabled(False)
        self.test_result.setText("Testing…")
        self.tester.start(self.env, profile, self.secret_edit.text())

    def _show_test_result(self, text: str) -> None:
        self.test_button.setEnabled(True)
        self.test_result.setText(text)

    def accept(self) -> None:
        if self.sandbox_radio.isChecked():
            self.choice = FirstRunChoice.SANDBOX
            super().accept()
            return
        self.choice = FirstRunChoice.BUCKET
        try:
            profile = self.profile_from_form()
            if self.secret_edit.text():
                self.env.secrets.set(
                    profile.name, SecretKind.S3_SECRET_KEY, self.secret_edit.text()
                )
            self.env.profiles.save(profile, make_default=True)
        except FerryError as exc:
            self.test_result.setText(exc.message)
            return
        self.saved_profile = profile
        super().accept()

    def done(self, result: int) -> None:
        self.tester.wait()
        super().done(result)

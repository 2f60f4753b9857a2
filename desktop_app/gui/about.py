"""About Ferry: its version and the versions of what it runs on and talks to."""

from __future__ import annotations

import platform

import PySide6
from PySide6.QtCore import Qt, qVersion
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QVBoxLayout, QWidget

from desktop_app import __version__
from desktop_app.core.app import Ferry
from desktop_app.gui.backend import Backend


class AboutDialog(QDialog):
    def __init__(self, backend: Backend, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Ferry")
        self.setMinimumWidth(420)
        layout = QVBoxLayout(self)
        heading = QLabel(f"<h2>Ferry {__version__}</h2>")
        heading.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(heading)
        blurb = QLabel("Puts files into an S3-compatible bucket and checks that they arrived.")
        blurb.setWordWrap(True)
        layout.addWidget(blurb)
        form = QFormLayout()
        self.server_label = QLabel("asking the server…" if backend.ready else "not connected")
        self.server_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        rows = (
            ("Ferry", QLabel(__version__)),
            ("Python", QLabel(f"{platform.python_version()} ({platform.python_implementation()})")),
            ("Qt", QLabel(f"{qVersion()} (PySide6 {PySide6.__version__})")),
            ("S3 server", self.server_label),
        )
        for label, widget in rows:
            form.addRow(label, widget)
        layout.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        if backend.ready and backend.profile is not None:
            backend.call(Ferry.server_software).then(self.server_label.setText, self._not_known)

    def _not_known(self, title: str, _message: str) -> None:
        self.server_label.setText(f"could not ask ({title})")  # no place for a warning box

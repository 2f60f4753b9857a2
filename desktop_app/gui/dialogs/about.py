"""About Ferry: its version and the versions of what it runs on and talks to."""

from __future__ import annotations

import platform
import re

import PySide6
from PySide6.QtCore import Qt, qVersion
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QVBoxLayout, QWidget

from desktop_app import __version__
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.gui.backend import Backend

# A size in a Server header ("SeaweedFS 8000GB 4.48": weed's volume size limit, a
# build option) names no product and no version: a person reads past it.
_SIZE = re.compile(r"\d+(?:\.\d+)?\s?[KMGTP]i?B", re.IGNORECASE)


def readable_server(header: str) -> str:
    """What the server calls itself, for a person: its Server header without the
    words that are sizes. Nothing is added; nothing else is dropped."""
    words = [word for word in header.split() if not _SIZE.fullmatch(word)]
    return " ".join(words) or header


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
        buttons.button(QDialogButtonBox.StandardButton.Close).setToolTip("Close About Ferry")
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        if backend.ready and backend.profile is not None:
            backend.call(Ferry.server_software).then(self._known, self._not_known)

    def _known(self, header: str) -> None:
        self.server_label.setText(readable_server(header))
        self.server_label.setToolTip(f"The server calls itself “{header}” (its Server header).")

    def _not_known(self, title: str, _message: str) -> None:
        self.server_label.setText(f"could not ask ({title})")  # no place for a warning box

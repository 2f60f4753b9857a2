"""A conflict's choices in the Failed inbox: upload under another name, replace, or skip.

A conflict is another program's object at the key, or a key Ferry's catalog
holds for another file. When one such failure is the one selected, its choices
show under the details: upload as “name (2).ext”, replace the other program's
object (after a question that says what is lost, No by default; the write then
lands only over the object that question described, If-Match on the ETag
shown), or skip. Each choice is one ``Ferry.resolve`` call; its answer is said
in the status bar (the backend's notice).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QPushButton, QWidget

from desktop_app.core.model.bucket_objects import ObjectInfo
from desktop_app.core.model.events import TransferSnapshot
from desktop_app.core.model.failures import ConflictChoice, choice_label, conflict_choices
from desktop_app.core.model.transfer_records import TransferRecord
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.gui.backend import Backend
from desktop_app.gui.units import clock_time, exact_size


def ask_to_replace(parent: QWidget, snapshot: TransferSnapshot, found: ObjectInfo) -> bool:
    """Ask before writing over another program's object, saying what is lost; No is
    the default, Escape answers No."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Replace the other program's object")
    box.setText(f"Replace the object at “{snapshot.key}” with {Path(snapshot.source_path).name}?")
    box.setInformativeText(
        f"Another program wrote it ({exact_size(found.size)}, {clock_time(found.last_modified)}); "
        "Ferry did not. Its bytes are lost unless the bucket keeps versions. If anything "
        "writes that key again before Ferry does, nothing is replaced."
    )
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.button(QMessageBox.StandardButton.Yes).setText("&Replace")
    box.setDefaultButton(QMessageBox.StandardButton.No)
    box.setEscapeButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes


def _resolved(choice: ConflictChoice, record: TransferRecord) -> str:
    name = Path(record.source_path).name
    if choice is ConflictChoice.SKIP:
        return f"Skipped {name}: nothing was uploaded, the object in the bucket is untouched."
    if choice is ConflictChoice.RENAME:
        return f"Uploading {name} as “{record.key}”."
    return f"Uploading {name} over the other program's object at “{record.key}”."


class ConflictChoices(QWidget):
    """The choices for the one conflict ``selected`` gives; hidden for anything else.

    ``forget_attempts`` is told of a transfer about to go again (its story grows).
    """

    def __init__(
        self,
        backend: Backend,
        selected: Callable[[], list[TransferSnapshot]],
        forget_attempts: Callable[[list[int]], None],
    ) -> None:
        super().__init__()
        self.backend = backend
        self._selected = selected
        self._forget_attempts = forget_attempts
        self.setAccessibleName("Choices for the conflict")
        choices = QHBoxLayout(self)
        choices.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel("The name is taken:")
        self.rename_button = QPushButton("Upload as…")
        self.rename_button.setAccessibleName("Upload under the next free name")
        self.replace_button = QPushButton("Re&place the other program's object…")
        self.replace_button.setAccessibleName("Replace the other program's object")
        self.skip_button = QPushButton("S&kip")
        self.skip_button.setAccessibleName("Skip the file")
        self.rename_button.setAccessibleDescription(
            "The file goes up under the name the button shows; the object stays"
        )
        self.replace_button.setAccessibleDescription(
            "The other program's object is replaced by this file, after a question"
        )
        self.skip_button.setToolTip("Nothing is uploaded; the object in the bucket stays as it is.")
        self.rename_button.clicked.connect(lambda: self._resolve_selected(ConflictChoice.RENAME))
        self.replace_button.clicked.connect(self.replace_selected)
        self.skip_button.clicked.connect(lambda: self._resolve_selected(ConflictChoice.SKIP))
        choices.addWidget(self.label)
        for button in (self.rename_button, self.replace_button, self.skip_button):
            choices.addWidget(button)
        choices.addStretch(1)
        self.hide()

    def show_for(self, snapshot: TransferSnapshot | None) -> None:
        """The choices of this failure (the one selected), or none."""
        offered = conflict_choices(snapshot.error) if snapshot is not None else ()
        self.setVisible(bool(offered))
        if snapshot is None or not offered:
            return
        self.rename_button.setText(choice_label(ConflictChoice.RENAME, snapshot.key))
        self.replace_button.setVisible(ConflictChoice.REPLACE in offered)

    def _conflict(self) -> TransferSnapshot | None:
        selected = self._selected()
        return selected[0] if len(selected) == 1 and conflict_choices(selected[0].error) else None

    def _resolve_selected(self, choice: ConflictChoice) -> None:
        snapshot = self._conflict()
        if snapshot is not None:
            self._resolve(snapshot, choice)

    def _resolve(
        self, snapshot: TransferSnapshot, choice: ConflictChoice, seen_etag: str | None = None
    ) -> None:
        self._forget_attempts([snapshot.id])
        self.backend.call(Ferry.resolve, snapshot.id, choice, seen_etag).then(
            lambda record: self.backend.notice.emit(_resolved(choice, record))
        )

    def replace_selected(self) -> None:
        """Look at the object now, say what replacing it loses, and only then replace
        exactly that object (If-Match on the ETag shown)."""
        snapshot = self._conflict()
        if snapshot is not None:
            self.backend.call(Ferry.head, snapshot.key).then(
                lambda found: self._confirm_replace(snapshot, found)
            )

    def _confirm_replace(self, snapshot: TransferSnapshot, found: ObjectInfo | None) -> None:
        if found is None:  # gone meanwhile: nothing to lose, the file goes to the empty key
            self._resolve(snapshot, ConflictChoice.REPLACE)
        elif ask_to_replace(self, snapshot, found):
            self._resolve(snapshot, ConflictChoice.REPLACE, found.etag)
        else:
            self.backend.notice.emit("Nothing was replaced.")

"""Deleting files from the catalog view: the question first, then what happened.

The person is asked before anything is done, and No is the default button:
Enter never deletes. Each key then goes to ``Ferry.delete`` (the row is marked
deleted, then the object goes, invariant 2); the answers come back one by one
and a :class:`Deletion` tallies them, so the person reads one account of the
whole batch: what was deleted, what was removed from the catalog while its
object stayed in the bucket (and why), and what was not deleted at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from PySide6.QtWidgets import QMessageBox, QWidget

from desktop_app.core.catalog.records import DeleteOutcome, FileRecord
from desktop_app.core.catalog.schema import FileStatus

# A pending row is an upload in flight (cancel it instead); a deleted one is gone.
DELETABLE = frozenset({FileStatus.ACTIVE, FileStatus.MISSING})
LISTED = 10  # keys named in the question; the rest are counted


def deletable_keys(records: Sequence[FileRecord]) -> list[str]:
    return [record.key for record in records if record.status in DELETABLE]


def _files(count: int) -> str:
    return "1 file" if count == 1 else f"{count:,} files"


def ask_to_delete(parent: QWidget, keys: Sequence[str]) -> bool:
    """Ask before deleting; No is the default, Escape answers No."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Delete files")
    what = f"“{keys[0]}”" if len(keys) == 1 else _files(len(keys))
    box.setText(f"Delete {what} from the bucket?")
    named = "\n".join(f"• {key}" for key in keys[:LISTED])
    if len(keys) > LISTED:
        named += f"\n… and {len(keys) - LISTED:,} more"
    box.setInformativeText(
        "This removes them from the catalog and deletes their objects. It cannot be "
        f"undone.\n\n{named}"
    )
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.button(QMessageBox.StandardButton.Yes).setText("&Delete")
    box.setDefaultButton(QMessageBox.StandardButton.No)
    box.setEscapeButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes


@dataclass
class Deletion:
    """One batch of deletes, answered key by key."""

    keys: tuple[str, ...]
    deleted: list[str] = field(default_factory=list)
    left: list[tuple[str, str]] = field(default_factory=list)  # object stayed: key, why
    refused: list[tuple[str, str]] = field(default_factory=list)  # nothing done: key, why
    # Deleted, with more to say about the bytes: a version kept for the
    # retention period (until when), another program's version left on top.
    noted: list[tuple[str, str]] = field(default_factory=list)

    def outcome(self, key: str, outcome: DeleteOutcome) -> None:
        if outcome.object_deleted:
            self.deleted.append(key)
            if outcome.note:
                self.noted.append((key, outcome.note))
        else:
            self.left.append((key, outcome.error or "no reason given"))

    def failure(self, key: str, message: str) -> None:
        self.refused.append((key, message))

    @property
    def finished(self) -> bool:
        return len(self.deleted) + len(self.left) + len(self.refused) == len(self.keys)

    def summary(self) -> str:
        """What happened to the batch, in sentences a person reads once."""
        parts = []
        if self.deleted:
            parts.append(f"Deleted {_files(len(self.deleted))} from the bucket and the catalog.")
        if self.noted:
            parts.append("Of those: " + _reasons(self.noted))
        if self.left:
            parts.append(
                f"Removed {_files(len(self.left))} from the catalog, but the object stayed in "
                "the bucket: " + _reasons(self.left)
            )
        if self.refused:
            parts.append(f"Not deleted, {_files(len(self.refused))}: " + _reasons(self.refused))
        return " ".join(parts)


def _reasons(pairs: list[tuple[str, str]]) -> str:
    shown = "; ".join(f"{key} ({why})" for key, why in pairs[:5])
    return shown + (f"; and {len(pairs) - 5} more." if len(pairs) > 5 else ".")

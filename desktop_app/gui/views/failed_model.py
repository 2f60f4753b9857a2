"""The Failed inbox's table: the failed transfers, their columns and when each goes again.

Fed by the EngineBridge's batches (:meth:`FailedTableModel.upsert`): a transfer
joins when it fails and leaves when it no longer is failed (retried, resolved,
cancelled). Rows keep the order in which they failed first. Besides the text
shown it answers three roles: the snapshot itself, its cause (what the groups
filter on) and a sort key per column. Retry is offered only where it can help
(:func:`retry_helps`).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from desktop_app.core.model.events import TransferSnapshot
from desktop_app.core.model.failures import FailureCause, cause_of
from desktop_app.core.model.states import TransferState
from desktop_app.gui.bridge import SnapshotBatch
from desktop_app.gui.units import clock_time

Index = QModelIndex | QPersistentModelIndex
SnapshotRole = Qt.ItemDataRole.UserRole + 1
CauseRole = Qt.ItemDataRole.UserRole + 2
SortRole = Qt.ItemDataRole.UserRole + 3


class FailedColumn(enum.IntEnum):
    NAME = 0
    KEY = 1
    ERROR = 2
    ATTEMPTS = 3
    NEXT_TRY = 4
    LAST_TRY = 5


FAILED_HEADERS = {
    FailedColumn.NAME: "Name",
    FailedColumn.KEY: "Destination key",
    FailedColumn.ERROR: "Error",
    FailedColumn.ATTEMPTS: "Attempts",
    FailedColumn.NEXT_TRY: "Next try",
    FailedColumn.LAST_TRY: "Last try",
}


def retry_helps(snapshot: TransferSnapshot) -> bool:
    """Retry is offered only where it can help (not for a socket, a loop, a bad name)."""
    return snapshot.error is None or snapshot.error.kind.retryable


NEXT_TRY_LONGEST = "when you click Retry"


def next_try(snapshot: TransferSnapshot, *, short: bool = False) -> str:
    """When the transfer is tried again; ``short`` for the list's column."""
    error = snapshot.error
    if error is not None and not error.kind.retryable:
        return "never" if short else "never: it cannot succeed"
    if error is not None and error.kind.retries_on_its_own and snapshot.retry_at is not None:
        return f"by itself at {clock_time(snapshot.retry_at)}"
    return NEXT_TRY_LONGEST


class FailedTableModel(QAbstractTableModel):
    """The failed transfers only, in the order they failed first."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[TransferSnapshot] = []

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(FailedColumn)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return FAILED_HEADERS[FailedColumn(section)]
        return None

    def snapshots(self) -> list[TransferSnapshot]:
        return list(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        snapshot = self._rows[index.row()]
        column = FailedColumn(index.column())
        if role == SnapshotRole:
            return snapshot
        if role == CauseRole:
            return cause_of(snapshot.error).value
        if role == SortRole:
            return {
                FailedColumn.ATTEMPTS: snapshot.attempts,
                FailedColumn.NEXT_TRY: snapshot.retry_at.timestamp() if snapshot.retry_at else 0,
                FailedColumn.LAST_TRY: snapshot.updated_at.timestamp(),
            }.get(column, str(self.data(index)).lower())
        if role == Qt.ItemDataRole.ToolTipRole and snapshot.error is not None:
            return f"{snapshot.error.title}: {snapshot.error.message}"
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        error = snapshot.error
        return {
            FailedColumn.NAME: Path(snapshot.source_path).name,
            FailedColumn.KEY: snapshot.key,
            FailedColumn.ERROR: f"{error.title}: {error.message}" if error else "",
            FailedColumn.ATTEMPTS: str(snapshot.attempts),
            FailedColumn.NEXT_TRY: next_try(snapshot, short=True),
            FailedColumn.LAST_TRY: clock_time(snapshot.updated_at),
        }[column]

    def upsert(self, batch: SnapshotBatch) -> bool:
        """Keep failed transfers; drop the ones that left the failed state.

        True when a failed transfer came, changed or went.
        """
        row_of = {s.id: row for row, s in enumerate(self._rows)}
        gone: list[int] = []
        new: list[TransferSnapshot] = []
        updated = False
        for snapshot in batch.snapshots:
            row = row_of.get(snapshot.id)
            failed = snapshot.state is TransferState.FAILED
            if row is not None and failed:
                self._rows[row] = snapshot
                updated = True
                last = len(FailedColumn) - 1
                self.dataChanged.emit(self.index(row, 0), self.index(row, last))
            elif row is not None:
                gone.append(row)
            elif failed:
                new.append(snapshot)
        for row in sorted(gone, reverse=True):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._rows[row]
            self.endRemoveRows()
        if new:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self._rows.extend(new)
            self.endInsertRows()
        return bool(updated or gone or new)

    def counts(self) -> dict[FailureCause, int]:
        counts = dict.fromkeys(FailureCause, 0)
        for snapshot in self._rows:
            counts[cause_of(snapshot.error)] += 1
        return counts

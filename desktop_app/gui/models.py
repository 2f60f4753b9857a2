"""Table models over transfer snapshots; fed only by the EngineBridge."""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

from desktop_app.core.events import TransferProgress, TransferSnapshot
from desktop_app.core.journal import TransferState
from desktop_app.gui.bridge import SnapshotBatch
from desktop_app.gui.units import human_duration, human_size

Index = QModelIndex | QPersistentModelIndex
SnapshotRole = Qt.ItemDataRole.UserRole + 1
ProgressRole = Qt.ItemDataRole.UserRole + 2
SearchRole = Qt.ItemDataRole.UserRole + 3  # what the filter box matches: name and key


class Column(enum.IntEnum):
    NAME = 0
    KEY = 1
    SIZE = 2
    PROGRESS = 3
    SPEED = 4
    ETA = 5
    STATE = 6


HEADERS = {
    Column.NAME: "Name",
    Column.KEY: "Destination key",
    Column.SIZE: "Size",
    Column.PROGRESS: "Progress",
    Column.SPEED: "Speed",
    Column.ETA: "Time left",
    Column.STATE: "State",
}

STATE_LABELS = {
    TransferState.QUEUED: "Waiting",
    TransferState.HASHING: "Checking",
    TransferState.UPLOADING: "Uploading",
    TransferState.COMPLETING: "Finishing",
    TransferState.VERIFYING: "Verifying",
    TransferState.REGISTERING: "Registering",
    TransferState.DONE: "Done",
    TransferState.DUPLICATE: "Already stored",
    TransferState.FAILED: "Failed",
    TransferState.CANCELLED: "Cancelled",
}


def state_label(snapshot: TransferSnapshot) -> str:
    label = STATE_LABELS[snapshot.state]
    if snapshot.paused and not snapshot.state.finished:
        return f"{label} (paused)"
    return label


@dataclass(frozen=True)
class Totals:
    files: int
    active: int  # running or waiting to run, not paused
    paused: int
    failed: int
    remaining_bytes: int  # of the active ones
    speed: float  # bytes per second, all active together


def _runs(rows: list[int]) -> Iterator[tuple[int, int]]:
    """Sorted row numbers as (first, last) runs of adjacent rows."""
    # Within a run, row number minus position is constant.
    for _offset, run in itertools.groupby(enumerate(rows), key=lambda pair: pair[1] - pair[0]):
        members = [row for _position, row in run]
        yield members[0], members[-1]


class TransferTableModel(QAbstractTableModel):
    """One row per transfer, newest last; updated in place by id."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[TransferSnapshot] = []
        self._row_of: dict[int, int] = {}
        self._progress: dict[int, TransferProgress] = {}

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(Column)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[Column(section)]
        return None

    def snapshot(self, row: int) -> TransferSnapshot:
        return self._rows[row]

    def snapshots(self) -> list[TransferSnapshot]:
        return list(self._rows)

    def fraction_done(self, snapshot: TransferSnapshot) -> float:
        if snapshot.state in (TransferState.DONE, TransferState.DUPLICATE):
            return 1.0
        progress = self._progress.get(snapshot.id)
        if progress is None or progress.bytes_total == 0:
            return 0.0
        return progress.bytes_done / progress.bytes_total

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        snapshot = self._rows[index.row()]
        column = Column(index.column())
        progress = self._progress.get(snapshot.id)
        running = snapshot.state.in_progress and progress is not None
        if role == SnapshotRole:
            return snapshot
        if role == SearchRole:
            return f"{Path(snapshot.source_path).name} {snapshot.key}"
        if role == ProgressRole or (role == Qt.ItemDataRole.UserRole and column is Column.PROGRESS):
            return self.fraction_done(snapshot)
        if role == Qt.ItemDataRole.UserRole:  # sort keys
            return {
                Column.NAME: Path(snapshot.source_path).name.lower(),
                Column.KEY: snapshot.key,
                Column.SIZE: snapshot.size,
                Column.SPEED: progress.speed if running and progress else 0.0,
                Column.ETA: (progress.eta_seconds or 0.0) if running and progress else 0.0,
                Column.STATE: snapshot.state.value,
            }.get(column, "")
        if role == Qt.ItemDataRole.ToolTipRole:
            if snapshot.error is not None:
                return f"{snapshot.error.title}: {snapshot.error.message}"
            return snapshot.source_path
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if column is Column.NAME:
            return Path(snapshot.source_path).name
        if column is Column.KEY:
            if snapshot.state is TransferState.DUPLICATE:
                return f"{snapshot.duplicate_of} (existing)"
            return snapshot.key
        if column is Column.SIZE:
            return human_size(snapshot.size)
        if column is Column.PROGRESS:
            return f"{self.fraction_done(snapshot) * 100:.0f} %"
        if column is Column.SPEED:
            return f"{human_size(progress.speed)}/s" if running and progress else ""
        if column is Column.ETA:
            return human_duration(progress.eta_seconds) if running and progress else ""
        return state_label(snapshot)

    def upsert(self, batch: SnapshotBatch) -> None:
        """Insert new transfers in one go and update known ones in place."""
        new: list[TransferSnapshot] = []
        changed: list[int] = []
        for snapshot in batch.snapshots:
            row = self._row_of.get(snapshot.id)
            if row is None:
                new.append(snapshot)
            else:
                self._rows[row] = snapshot
                changed.append(row)
        # One signal per run of adjacent rows: a single range from the first to the
        # last changed row would make each filter proxy re-test every row between
        # (thousands of calls into Python while uploads compete for the GIL).
        last_column = len(Column) - 1
        for first, last in _runs(sorted(changed)):
            self.dataChanged.emit(self.index(first, 0), self.index(last, last_column))
        if new:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for offset, snapshot in enumerate(new):
                self._rows.append(snapshot)
                self._row_of[snapshot.id] = first + offset
            self.endInsertRows()

    def set_progress(self, progress: TransferProgress) -> None:
        self._progress[progress.transfer_id] = progress
        row = self._row_of.get(progress.transfer_id)
        if row is not None:
            self.dataChanged.emit(self.index(row, Column.PROGRESS), self.index(row, Column.ETA))

    def totals(self) -> Totals:
        """Counts for the status bar and the tray, in one pass over the rows."""
        active = failed = paused = remaining = 0
        speed = 0.0
        failed_state = TransferState.FAILED
        for snapshot in self._rows:
            if snapshot.state is failed_state:
                failed += 1
            elif not snapshot.state.in_progress:
                continue
            elif snapshot.paused:
                paused += 1
            else:
                active += 1
                progress = self._progress.get(snapshot.id)
                remaining += max(0, snapshot.size - (progress.bytes_done if progress else 0))
                speed += progress.speed if progress else 0.0
        return Totals(len(self._rows), active, paused, failed, remaining, speed)


class SearchFilterModel(QSortFilterProxyModel):
    """All transfers, sortable, filtered by a piece of name or key.

    Filtering and sorting stay in Qt's C++ (no Python override): with no filter
    text Qt accepts rows without asking the model, so a drop of thousands of
    files costs no call into Python per row while uploads hold the GIL.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setSortRole(Qt.ItemDataRole.UserRole)
        self.setFilterRole(SearchRole)
        self.setFilterKeyColumn(Column.NAME)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def set_text(self, text: str) -> None:
        self.setFilterFixedString(text)


class StateFilterModel(QSortFilterProxyModel):
    """Only transfers in the given states (the Failed view)."""

    def __init__(self, states: set[TransferState]) -> None:
        super().__init__()
        self.states = states
        self.setSortRole(Qt.ItemDataRole.UserRole)

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        model = self.sourceModel()
        assert isinstance(model, TransferTableModel)
        return model.snapshot(source_row).state in self.states

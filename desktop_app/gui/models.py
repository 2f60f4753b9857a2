"""Table models over transfer snapshots; fed only by the EngineBridge."""

from __future__ import annotations

import enum
import itertools
import math
import time
from collections.abc import Callable, Collection, Iterator
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

from desktop_app.core.model.events import TransferProgress, TransferSnapshot
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.host import FINISHED_KEPT
from desktop_app.core.runtime.throughput import Rate, Throughput
from desktop_app.gui.bridge import SnapshotBatch
from desktop_app.gui.notifier import QUIET_SECONDS
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


# Said in a row's state, and with the silence in the status bar, instead of a speed.
WAITING_LABEL = "Waiting for the server"


def state_label(snapshot: TransferSnapshot) -> str:
    label = STATE_LABELS[snapshot.state]
    if snapshot.paused and not snapshot.state.finished:
        return f"{label} (paused)"
    return label


def no_answer(seconds: float) -> str:
    return f"no answer for {int(seconds)} s"


def waiting_text(seconds: float) -> str:
    """'Waiting for the server (no answer for 20 s)'."""
    return f"{WAITING_LABEL} ({no_answer(seconds)})"


@dataclass(frozen=True)
class BatchProgress:
    """The transfers queued since the list was last idle: how far along they are."""

    files_settled: int  # done, already stored, failed or cancelled
    files: int
    bytes_done: int  # as a row counts them: taken by the connection (see TransferProgress)
    bytes_total: int

    @property
    def fraction(self) -> float:
        if self.bytes_total:
            return self.bytes_done / self.bytes_total
        return self.files_settled / self.files if self.files else 1.0


@dataclass(frozen=True)
class Totals:
    files: int
    active: int  # running or waiting to run, not paused
    paused: int
    failed: int
    finished: int  # done, already stored or cancelled: what Clear finished removes
    remaining_bytes: int  # of the active ones
    rate: Rate  # all active together, from the same measurements as the rows
    batch: BatchProgress
    silent: float | None = None  # seconds, when every sending transfer waits for the server


_PRUNE_SLACK = 100  # prune in steps, not one row at a time
_SENT = frozenset({TransferState.DONE, TransferState.DUPLICATE})


def shows_speed(snapshot: TransferSnapshot) -> bool:
    """Speed and time left belong to a transfer that is sending now, nothing else."""
    return snapshot.state is TransferState.UPLOADING and not snapshot.paused


def _runs(rows: list[int]) -> Iterator[tuple[int, int]]:
    """Sorted row numbers as (first, last) runs of adjacent rows."""
    # Within a run, row number minus position is constant.
    for _offset, run in itertools.groupby(enumerate(rows), key=lambda pair: pair[1] - pair[0]):
        members = [row for _position, row in run]
        yield members[0], members[-1]


class TransferTableModel(QAbstractTableModel):
    """One row per transfer, newest last; updated in place by id.

    Speeds come from one :class:`Throughput` fed by the progress events, so a
    row and the status bar always agree. At most ``FINISHED_KEPT`` finished
    rows stay; older ones leave the list (the journal keeps them).

    The batch is what was queued until nothing had been in progress for
    ``QUIET_SECONDS`` (the batch the finished notification speaks of): every
    transfer queued this session joins it when first seen, even one already
    finished then (a small file sent between two updates of the list); of the
    transfers loaded at start (:meth:`history_loaded`), only unfinished ones.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._rows: list[TransferSnapshot] = []
        self._row_of: dict[int, int] = {}
        self._progress: dict[int, TransferProgress] = {}
        self.throughput = Throughput(monotonic)
        self._monotonic = monotonic
        self._batch: dict[int, None] = {}  # ids of the current batch, in order
        self._batch_open: set[int] = set()  # those of them not settled yet
        self._batch_busy_at = -math.inf  # when it last had one open or gained one
        self._history_max_id: int | None = None  # None: the history is not loaded yet
        self._highest_seen = 0  # the highest transfer id the list has been shown
        # What data() answers, by role (the progress fraction aside: two roles share
        # it) and, for the text shown, by column.
        self._by_role: dict[int, Callable[[TransferSnapshot, Column], Any]] = {
            int(SnapshotRole): lambda snapshot, _column: snapshot,
            int(SearchRole): self._search_text,
            int(Qt.ItemDataRole.UserRole): self._sort_key,  # sort keys
            int(Qt.ItemDataRole.ToolTipRole): self._tooltip,
            int(Qt.ItemDataRole.DisplayRole): self._display,
        }
        self._display_of: dict[Column, Callable[[TransferSnapshot], str]] = {
            Column.NAME: lambda snapshot: Path(snapshot.source_path).name,
            Column.KEY: self._key_text,
            Column.SIZE: lambda snapshot: human_size(snapshot.size),
            Column.PROGRESS: self._progress_text,
            Column.SPEED: self._speed_text,
            Column.ETA: self._eta_text,
            Column.STATE: self._state_text,
        }

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

    def settled(self, ids: Collection[int]) -> bool:
        """Have these transfers all been seen and ended (sent, failed or cancelled)?"""
        if any(transfer_id > self._highest_seen for transfer_id in ids):
            return False  # not in the list yet
        rows = (self._row_of.get(transfer_id) for transfer_id in ids)  # None: cleared since
        return not any(self._rows[row].state.in_progress for row in rows if row is not None)

    def bytes_done(self, snapshot: TransferSnapshot) -> int:
        if snapshot.state in _SENT:
            return snapshot.size
        progress = self._progress.get(snapshot.id)
        return 0 if progress is None else progress.bytes_done

    def fraction_done(self, snapshot: TransferSnapshot) -> float:
        if snapshot.state in _SENT:
            return 1.0
        return self.bytes_done(snapshot) / snapshot.size if snapshot.size else 0.0

    def rate(self, snapshot: TransferSnapshot) -> Rate:
        if not shows_speed(snapshot) or self.silent_for(snapshot) is not None:
            return Rate(None, None)
        remaining = snapshot.size - self.bytes_done(snapshot)
        return self.throughput.of_transfer(snapshot.id, remaining)

    def silent_for(self, snapshot: TransferSnapshot) -> float | None:
        """Seconds the server has not answered this sending transfer (from 15 s on)."""
        return self.throughput.silent_for(snapshot.id) if shows_speed(snapshot) else None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        snapshot = self._rows[index.row()]
        column = Column(index.column())
        if role == ProgressRole or (role == Qt.ItemDataRole.UserRole and column is Column.PROGRESS):
            return self.fraction_done(snapshot)
        by_role = self._by_role.get(int(role))
        return None if by_role is None else by_role(snapshot, column)

    def _search_text(self, snapshot: TransferSnapshot, _column: Column) -> str:
        return f"{Path(snapshot.source_path).name} {snapshot.key}"

    def _sort_key(self, snapshot: TransferSnapshot, column: Column) -> str | int | float:
        if column in (Column.SPEED, Column.ETA):
            rate = self.rate(snapshot)
            value = rate.bytes_per_second if column is Column.SPEED else rate.seconds_left
            return value or 0.0
        keys: dict[Column, str | int] = {
            Column.NAME: Path(snapshot.source_path).name.lower(),
            Column.KEY: snapshot.key,
            Column.SIZE: snapshot.size,
            Column.STATE: snapshot.state.value,
        }
        return keys.get(column, "")

    def _tooltip(self, snapshot: TransferSnapshot, _column: Column) -> str:
        if snapshot.error is not None:
            return f"{snapshot.error.title}: {snapshot.error.message}"
        silent = self.silent_for(snapshot)
        if silent is not None:
            return (
                f"{waiting_text(silent)}: the server has taken no byte of this upload "
                "and answered none of its requests. Ferry waits for it, and tries "
                "again by itself if it stays silent."
            )
        return snapshot.source_path

    def _display(self, snapshot: TransferSnapshot, column: Column) -> str:
        return self._display_of[column](snapshot)

    def _key_text(self, snapshot: TransferSnapshot) -> str:
        if snapshot.state is TransferState.DUPLICATE:
            return f"{snapshot.duplicate_of} (existing)"
        return snapshot.key

    def _progress_text(self, snapshot: TransferSnapshot) -> str:
        return f"{self.fraction_done(snapshot) * 100:.0f} %"

    def _speed_text(self, snapshot: TransferSnapshot) -> str:
        silent = self.silent_for(snapshot)
        if silent is not None:
            return no_answer(silent)
        speed = self.rate(snapshot).bytes_per_second
        return f"{human_size(speed)}/s" if speed else ""

    def _eta_text(self, snapshot: TransferSnapshot) -> str:
        return human_duration(self.rate(snapshot).seconds_left)

    def _state_text(self, snapshot: TransferSnapshot) -> str:
        return WAITING_LABEL if self.silent_for(snapshot) is not None else state_label(snapshot)

    def upsert(self, batch: SnapshotBatch) -> None:
        """Insert new transfers in one go and update known ones in place."""
        new: list[TransferSnapshot] = []
        changed: list[int] = []
        seen = self._highest_seen
        for snapshot in batch.snapshots:
            if self._left_the_list(snapshot, seen):
                continue
            self._highest_seen = max(self._highest_seen, snapshot.id)
            self._follow_batch(snapshot, first_sight=snapshot.id not in self._row_of)
            if not shows_speed(snapshot):
                self.throughput.forget(snapshot.id)
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
        self._prune_finished()

    def _left_the_list(self, snapshot: TransferSnapshot, seen: int) -> bool:
        """A finished transfer not in the list, older than one the list already
        had: cleared, removed or pruned (now or before Ferry started). The engine
        sends such snapshots again (Pause all re-sends every transfer); they stay out.

        Ids grow with each transfer queued, and new ones reach the list oldest
        first, so a new transfer that is finished when first seen is newer than
        everything seen before its batch."""
        return snapshot.state.finished and snapshot.id <= seen and snapshot.id not in self._row_of

    def history_loaded(self, max_id: int) -> None:
        """Transfers up to this id were in the journal at start: not queued now."""
        self._history_max_id = max_id

    def _follow_batch(self, snapshot: TransferSnapshot, *, first_sight: bool) -> None:
        # Judged from the snapshots themselves, not the rows: in one upsert, new
        # transfers are seen here before they are rows.
        now = self._monotonic()
        if self._batch_open:
            self._batch_busy_at = now
        if snapshot.id in self._batch:
            if snapshot.state.in_progress:
                self._batch_open.add(snapshot.id)  # retried
            else:
                self._batch_open.discard(snapshot.id)
            return
        queued_now = (
            first_sight and self._history_max_id is not None and snapshot.id > self._history_max_id
        )
        if not (snapshot.state.in_progress or queued_now):
            return
        if not self._batch_open and now - self._batch_busy_at >= QUIET_SECONDS:
            self._batch.clear()  # the last batch is over: this starts a new one
        self._batch[snapshot.id] = None
        self._batch_busy_at = now
        if snapshot.state.in_progress:
            self._batch_open.add(snapshot.id)

    def set_progress(self, progress: TransferProgress) -> None:
        self._progress[progress.transfer_id] = progress
        self.throughput.observe(progress)
        row = self._row_of.get(progress.transfer_id)
        if row is not None:
            self.dataChanged.emit(self.index(row, Column.PROGRESS), self.index(row, Column.STATE))

    def refresh_running(self) -> None:
        """Repaint the speed, time left and state of the rows being sent: they change
        with time alone (a speed falls while nothing arrives, a silence grows), and
        no event comes while a server is silent. Called by the window every tick."""
        rows = sorted(
            row for row in map(self._row_of.get, self.throughput.running()) if row is not None
        )
        for first, last in _runs(rows):
            self.dataChanged.emit(self.index(first, Column.SPEED), self.index(last, Column.STATE))

    def remove_finished(self, ids: Collection[int] | None = None) -> list[int]:
        """Clear finished: remove done, already-stored and cancelled rows (of these
        transfers, or all); their ids."""
        chosen = None if ids is None else set(ids)
        rows = [
            row
            for row, s in enumerate(self._rows)
            if s.state.finished and (chosen is None or s.id in chosen)
        ]
        return self._remove(rows)

    def _prune_finished(self) -> None:
        if len(self._rows) <= FINISHED_KEPT + _PRUNE_SLACK:
            return  # cannot hold too many finished rows: no pass over every row each tick
        finished = [row for row, s in enumerate(self._rows) if s.state.finished]
        if len(finished) > FINISHED_KEPT + _PRUNE_SLACK:
            self._remove(finished[: len(finished) - FINISHED_KEPT])

    def _remove(self, rows: list[int]) -> list[int]:
        ids = [self._rows[row].id for row in rows]
        for first, last in reversed(list(_runs(rows))):
            self.beginRemoveRows(QModelIndex(), first, last)
            del self._rows[first : last + 1]
            self.endRemoveRows()
        self._row_of = {s.id: row for row, s in enumerate(self._rows)}
        for transfer_id in ids:
            self._progress.pop(transfer_id, None)
            self._batch.pop(transfer_id, None)
            self._batch_open.discard(transfer_id)
        return ids

    def totals(self) -> Totals:
        """Counts for the status bar and the tray, in one pass over the rows."""
        active = failed = paused = finished = remaining = 0
        row_speeds: list[float | None] = []
        silences: list[float | None] = []
        failed_state = TransferState.FAILED
        for snapshot in self._rows:
            if snapshot.state is failed_state:
                failed += 1
            elif snapshot.state.finished:
                finished += 1
            elif snapshot.paused:
                paused += 1
            else:
                active += 1
                remaining += max(0, snapshot.size - self.bytes_done(snapshot))
                if shows_speed(snapshot):
                    silences.append(silence := self.silent_for(snapshot))
                    if silence is None:
                        row_speeds.append(self.rate(snapshot).bytes_per_second)
        rate = Rate(None, None)
        silent = None
        if silences and None not in silences:
            # Every sending transfer waits: the server is silent since the last of
            # them moved.
            silent = min(s for s in silences if s is not None)
        elif active and row_speeds and all(speed is not None for speed in row_speeds):
            # Every sending row has its speed: the total is their sum, so the
            # status bar never disagrees with the rows it sums up.
            rate = Rate.of(sum(speed or 0.0 for speed in row_speeds), remaining)
        elif active:
            rate = self.throughput.overall(remaining)  # many small files: no row has a speed
        batch = self._batch_progress()
        return Totals(
            len(self._rows), active, paused, failed, finished, remaining, rate, batch, silent
        )

    def _batch_progress(self) -> BatchProgress:
        settled = done = total = 0
        for transfer_id in self._batch:
            row = self._row_of.get(transfer_id)
            if row is None:
                continue
            snapshot = self._rows[row]
            settled += not snapshot.state.in_progress
            if snapshot.state is not TransferState.CANCELLED:
                total += snapshot.size
                done += self.bytes_done(snapshot)
        return BatchProgress(settled, len(self._batch), done, total)


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

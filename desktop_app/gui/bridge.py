"""The one place where engine updates become Qt signals.

The Backend's reader thread merges what the engine process sent into a
:class:`~desktop_app.core.model.events.LatestPerTransfer` buffer. A QTimer on the GUI
thread takes from it about ten times a second and emits typed signals: the
latest snapshot per changed transfer (at most 1,000 a tick) and the latest
progress per transfer, never one signal per chunk.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from PySide6.QtCore import QObject, QTimer, Signal

from desktop_app.core.model.events import LatestPerTransfer, TransferProgress, TransferSnapshot

DRAIN_INTERVAL_MS = 100
MAX_SNAPSHOTS_PER_TICK = 1000  # spreads a drop of 10,000 files over ten ticks


@dataclass(frozen=True)
class SnapshotBatch:
    """The latest state of every transfer that changed since the last tick."""

    snapshots: tuple[TransferSnapshot, ...]


class EngineBridge(QObject):
    transfersChanged = Signal(SnapshotBatch)
    progressChanged = Signal(TransferProgress)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pending = LatestPerTransfer()
        self._timer = QTimer(self)
        self._timer.setInterval(DRAIN_INTERVAL_MS)
        self._timer.timeout.connect(self.drain)
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def accept(
        self, snapshots: Iterable[TransferSnapshot], progress: Iterable[TransferProgress] = ()
    ) -> None:
        """Called on the reader thread: buffer only."""
        self._pending.merge(snapshots, progress)

    def drain(self) -> None:
        snapshots, progress = self._pending.take(MAX_SNAPSHOTS_PER_TICK)
        if snapshots:
            # One batch per tick: a drop of 10,000 files is one model insert, not 10,000.
            self.transfersChanged.emit(SnapshotBatch(snapshots))
        for update in progress:
            self.progressChanged.emit(update)

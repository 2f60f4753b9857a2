"""The one place where engine events become Qt signals.

Engine subscribers run on engine threads; this adapter only appends to a
locked buffer there. A QTimer on the GUI thread drains it about ten times a
second and emits typed signals: the latest snapshot per changed transfer and
the latest progress per transfer, never one signal per chunk.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from PySide6.QtCore import QObject, QTimer, Signal

from desktop_app.core.events import (
    EngineEvent,
    EventBus,
    TransferChanged,
    TransferProgress,
    TransferQueued,
    TransferSnapshot,
)

DRAIN_INTERVAL_MS = 100
MAX_SNAPSHOTS_PER_TICK = 1000  # spreads a drop of 10,000 files over ten ticks


@dataclass(frozen=True)
class SnapshotBatch:
    """The latest state of every transfer that changed since the last tick."""

    snapshots: tuple[TransferSnapshot, ...]


class EngineBridge(QObject):
    transfersChanged = Signal(SnapshotBatch)
    progressChanged = Signal(TransferProgress)
    batchDrained = Signal(int)  # how many events this tick carried

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._snapshots: dict[int, TransferSnapshot] = {}
        self._progress: dict[int, TransferProgress] = {}
        self._count = 0
        self._unsubscribe: list[object] = []
        self._timer = QTimer(self)
        self._timer.setInterval(DRAIN_INTERVAL_MS)
        self._timer.timeout.connect(self.drain)
        self._timer.start()

    def attach(self, bus: EventBus) -> None:
        self._unsubscribe.append(bus.subscribe(self.accept))

    def detach(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()  # type: ignore[operator]
        self._unsubscribe.clear()
        self._timer.stop()

    def accept(self, event: EngineEvent) -> None:
        """Called on engine threads: buffer only."""
        with self._lock:
            self._count += 1
            if isinstance(event, TransferQueued | TransferChanged):
                self._snapshots[event.transfer.id] = event.transfer
            elif isinstance(event, TransferProgress):
                self._progress[event.transfer_id] = event

    def accept_snapshot(self, snapshot: TransferSnapshot) -> None:
        with self._lock:
            self._snapshots[snapshot.id] = snapshot

    def drain(self) -> None:
        with self._lock:
            if len(self._snapshots) <= MAX_SNAPSHOTS_PER_TICK:
                snapshots, self._snapshots = self._snapshots, {}
            else:
                ids = list(self._snapshots)[:MAX_SNAPSHOTS_PER_TICK]
                snapshots = {i: self._snapshots.pop(i) for i in ids}
            progress, self._progress = self._progress, {}
            count, self._count = self._count, 0
        if snapshots:
            # One batch per tick: a drop of 10,000 files is one model insert, not 10,000.
            self.transfersChanged.emit(SnapshotBatch(tuple(snapshots.values())))
        for update in progress.values():
            self.progressChanged.emit(update)
        if count:
            self.batchDrained.emit(count)

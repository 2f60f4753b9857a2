"""Plain event objects the engine publishes, and the bus that carries them.

Subscribers are called on the engine's threads; they must return quickly (the
GUI adapts them into throttled Qt signals in one place). Progress events are
throttled per transfer by the engine, never one per chunk.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from desktop_app.core.model.states import TransferState
from desktop_app.core.model.transfer_records import TransferError, TransferRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransferSnapshot:
    """What a view needs to show one transfer."""

    id: int
    source_path: str
    bucket: str
    key: str
    size: int
    state: TransferState
    paused: bool
    attempts: int
    sha256: str | None
    duplicate_of: str | None
    error: TransferError | None
    retry_at: datetime | None
    updated_at: datetime  # for a failed transfer: when its last try ended

    @classmethod
    def of(cls, record: TransferRecord) -> TransferSnapshot:
        return cls(
            id=record.id,
            source_path=record.source_path,
            bucket=record.bucket,
            key=record.key,
            size=record.size,
            state=record.state,
            paused=record.paused,
            attempts=record.attempts,
            sha256=record.sha256,
            duplicate_of=record.duplicate_of,
            error=record.error,
            retry_at=record.retry_at,
            updated_at=record.updated_at,
        )


@dataclass(frozen=True)
class TransferQueued:
    transfer: TransferSnapshot


@dataclass(frozen=True)
class TransferChanged:
    """The transfer moved to another state, paused, failed or finished."""

    transfer: TransferSnapshot


@dataclass(frozen=True)
class TransferProgress:
    """How far a transfer's bytes have gone: the parts the server answered for,
    and the bytes of the requests still out that the connection has taken.

    One count for a row, the batch and the totals. A request that fails takes
    its bytes back (``bytes_done`` may fall); a resumed upload starts at the
    parts stored before. Speed and silence are not measured here: a view
    derives them from these events (:mod:`desktop_app.core.runtime.throughput`).
    """

    transfer_id: int
    bytes_done: int
    bytes_total: int
    bytes_at_start: int  # already stored when this run began (a resumed upload)
    sending: bool = False  # a request is out: its body going, or its answer awaited
    # While sending: seconds since the upload last moved (a byte it had not sent
    # before went out, or the server answered for a part), as of this event.
    quiet_seconds: float = 0.0


EngineEvent = TransferQueued | TransferChanged | TransferProgress
Subscriber = Callable[[EngineEvent], None]


class EventBus:
    """Fan-out of engine events to subscribers; a failing subscriber is logged, not fatal."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: EngineEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("An event subscriber failed on %s", type(event).__name__)


class LatestPerTransfer:
    """Events waiting to be shown: the latest snapshot and progress per transfer.

    Producers add from any thread; one consumer takes what gathered since its
    last take. Coalescing here is what keeps a view from receiving one message
    per chunk or per state change.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[int, TransferSnapshot] = {}
        self._progress: dict[int, TransferProgress] = {}

    def add(self, event: EngineEvent) -> None:
        if isinstance(event, TransferProgress):
            self.merge((), (event,))
        else:
            self.merge((event.transfer,), ())

    def merge(
        self, snapshots: Iterable[TransferSnapshot], progress: Iterable[TransferProgress]
    ) -> None:
        with self._lock:
            for snapshot in snapshots:
                self._snapshots[snapshot.id] = snapshot
            for update in progress:
                self._progress[update.transfer_id] = update

    def take(
        self, max_snapshots: int | None = None
    ) -> tuple[tuple[TransferSnapshot, ...], tuple[TransferProgress, ...]]:
        """What gathered, oldest transfers first; at most max_snapshots snapshots."""
        with self._lock:
            if max_snapshots is None or len(self._snapshots) <= max_snapshots:
                snapshots, self._snapshots = self._snapshots, {}
            else:
                ids = list(self._snapshots)[:max_snapshots]
                snapshots = {i: self._snapshots.pop(i) for i in ids}
            progress, self._progress = self._progress, {}
        return tuple(snapshots.values()), tuple(progress.values())

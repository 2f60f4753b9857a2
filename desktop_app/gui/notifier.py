"""Turns transfer snapshots into the few notifications a person wants.

Two kinds: a transfer failed (at most one notification per ``FAILURE_PAUSE``
seconds; failures in between are summed into the next one), and a batch
finished (nothing active for ``QUIET_SECONDS`` after something was sent). Old
failures and finished transfers loaded from the journal at start are history,
not news: snapshots with an id at or below the highest id of that history never
notify on first sight. Pure Python, no Qt, so it is tested without a window.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath

from desktop_app.core.model.events import TransferSnapshot
from desktop_app.core.model.states import TransferState
from desktop_app.gui.units import human_size

FAILURE_PAUSE = 10.0
QUIET_SECONDS = 3.0


class NotificationKind(enum.Enum):
    FAILED = "failed"
    FINISHED = "finished"


@dataclass(frozen=True)
class Notification:
    kind: NotificationKind
    title: str
    message: str
    failed: int = 0  # failures it speaks of


class BatchNotifier:
    def __init__(self) -> None:
        self._states: dict[int, TransferState] = {}
        self._history_max_id: int | None = None  # None: history not loaded yet
        self._failures: list[TransferSnapshot] = []
        self._last_failure_notice: float | None = None
        self._sent: dict[int, int] = {}  # id -> size, this batch
        self._already: set[int] = set()  # ids found already stored, nothing sent
        self._failed: set[int] = set()  # ids failed this batch and failed still
        self._quiet_since: float | None = None

    def history_loaded(self, max_id: int) -> None:
        self._history_max_id = max_id

    def observe(self, snapshots: Iterable[TransferSnapshot]) -> None:
        for snapshot in snapshots:
            previous = self._states.get(snapshot.id)
            self._states[snapshot.id] = snapshot.state
            news = previous is not None or (
                self._history_max_id is not None and snapshot.id > self._history_max_id
            )
            if snapshot.state is not TransferState.FAILED:
                self._failed.discard(snapshot.id)  # retried, removed or sent: not a failure now
            if not news or previous is snapshot.state:
                continue
            if snapshot.state is TransferState.FAILED:
                self._failures.append(snapshot)
                self._failed.add(snapshot.id)
            elif snapshot.state is TransferState.DONE:
                self._sent[snapshot.id] = snapshot.size
            elif snapshot.state is TransferState.DUPLICATE:
                self._already.add(snapshot.id)

    def tick(self, active: int, now: float) -> list[Notification]:
        """Called periodically with the number of running transfers."""
        notes: list[Notification] = []
        if self._failures and (
            self._last_failure_notice is None or now - self._last_failure_notice >= FAILURE_PAUSE
        ):
            notes.append(self._failure_notice())
            self._failures.clear()
            self._last_failure_notice = now
        if active:
            self._quiet_since = None
        elif self._sent or self._already or self._failed:
            if self._quiet_since is None:
                self._quiet_since = now
            elif now - self._quiet_since >= QUIET_SECONDS:
                notes.append(self._finished_notice())
                self._sent.clear()
                self._already.clear()
                self._failed.clear()
                self._quiet_since = None
        return notes

    def _failure_notice(self) -> Notification:
        first = self._failures[0]
        name = PurePath(first.source_path).name
        reason = f": {first.error.title}" if first.error is not None else ""
        if len(self._failures) == 1:
            title = f"Upload failed: {name}"
            what = first.error.title if first.error is not None else "It failed"
            message = f"{what}. Open Ferry's Failed tab to see why and retry."
        else:
            title = f"{len(self._failures)} uploads failed"
            message = (
                f"{name}{reason}, and {len(self._failures) - 1} more. "
                "Open Ferry's Failed tab to see why and retry."
            )
        return Notification(NotificationKind.FAILED, title, message, len(self._failures))

    def _finished_notice(self) -> Notification:
        parts = []
        if self._sent:
            sent_bytes = sum(self._sent.values())
            parts.append(
                f"{len(self._sent)} file(s) uploaded and verified ({human_size(sent_bytes)})."
            )
        if self._already:
            parts.append(f"{len(self._already)} already stored, nothing sent for them.")
        if self._failed:
            parts.append(f"{len(self._failed)} failed: see the Failed tab.")
        message = " ".join(parts)
        title = "Uploads finished" if not self._failed else "Uploads finished with failures"
        return Notification(NotificationKind.FINISHED, title, message, len(self._failed))

"""What an attempt's steps are handed by the engine: its stop flags and its one way to move.

:class:`TransferControl` carries a person's pause and cancel (and a lost
catalog reservation) to the step that runs; each step checks it between
requests and stops with :class:`Stopped`, leaving the journal as it is.
:class:`Transition` is the engine's state change (through the journal's
table of moves, published on the bus): a step never writes a state itself.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from desktop_app.core.journal.facts import NewAttempt, TransferFacts
from desktop_app.core.model.errors import ReservationLostError
from desktop_app.core.model.states import TransferState
from desktop_app.core.model.transfer_records import TransferRecord
from desktop_app.core.transfers.limits import StoppedWhilePacing


class Stopped(Exception):
    """Raised inside a worker when the transfer was paused or cancelled."""

    def __init__(self, cancelled: bool) -> None:
        super().__init__("cancelled" if cancelled else "paused")
        self.cancelled = cancelled


class TransferControl:
    """Pause and cancel flags of one running transfer, checked between steps.

    It also knows whether the transfer's catalog reservation still stands:
    lost (a keep-alive found it gone) stops the attempt at the next check;
    confirmed recently (reserved or kept alive) spares a look before the
    object is written.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.cancel = threading.Event()
        self.pause = threading.Event()
        self.bytes_sent = 0  # handed to the server in this attempt, accepted or not
        self._lock = threading.Lock()
        self._clock = clock
        self._reservation_lost: ReservationLostError | None = None
        self._alive_since = -math.inf

    def sent(self, amount: int) -> None:
        with self._lock:
            self.bytes_sent += amount

    def reservation_confirmed(self) -> None:
        """The catalog has just recorded the reservation as alive (on its own clock)."""
        self._alive_since = self._clock()

    def reservation_confirmed_within(self, seconds: float) -> bool:
        return self._clock() - self._alive_since < seconds

    def reservation_lost(self, error: ReservationLostError) -> None:
        self._reservation_lost = error

    def stop_asked(self) -> bool:
        """Has a person asked this attempt to stop (cancel or pause)?"""
        return self.cancel.is_set() or self.pause.is_set()

    def check(self) -> None:
        if self.cancel.is_set():
            raise Stopped(cancelled=True)
        if self.pause.is_set():
            raise Stopped(cancelled=False)
        if self._reservation_lost is not None:
            raise self._reservation_lost


@contextlib.contextmanager
def stopped_while_pacing(control: TransferControl) -> Iterator[None]:
    """A request cut while it waited for bandwidth is the transfer's stop."""
    try:
        yield
    except StoppedWhilePacing:
        raise Stopped(cancelled=control.cancel.is_set()) from None


class Transition(Protocol):
    """A state change that the engine publishes (the engine's ``move``)."""

    def __call__(
        self,
        transfer_id: int,
        state: TransferState,
        *,
        attempt: NewAttempt | None = None,
        facts: TransferFacts | None = None,
    ) -> TransferRecord: ...

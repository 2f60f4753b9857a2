"""Speed, time left and silence, measured from the progress events.

A transfer's progress counts the bytes its requests' connections have taken
(see :class:`~desktop_app.core.model.events.TransferProgress`). The events reach a
view in lumps: at most one per transfer each time the view takes what
gathered (every 0.1 s in the window), and one per burst where a bandwidth
limit lets a part go at once. A speed taken from the last lump alone swings
between zero and several times the real rate, so a :class:`RateWindow`
averages over the last ``WINDOW_SECONDS``: the bytes after the oldest lump in
the window, divided by the time from that lump to the last one (stretched
when the next lump is later than usual). That gives the true rate under a
steady flow or a steady limit, and falls while nothing arrives.

Silence is said apart from speed: while a request is out and the upload has
not moved for ``STALL_SECONDS`` (no byte it had not sent before went out, no
answer came), :meth:`Throughput.silent_for` says for how long, counting on
between events from the silence the last event reported.

:class:`Throughput` keeps one window per transfer and one for everything, fed
from the same progress events, so that a row and the status bar never
disagree. Pure Python with an injected monotonic clock: the window, the CLI and tests
use the same object.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from desktop_app.core.model.events import TransferProgress

WINDOW_SECONDS = 10.0
MIN_SPAN_SECONDS = 1.0  # no speed is shown before this much was measured
STALE_SECONDS = 60.0  # lumps older than this say nothing about the speed now
STALL_SECONDS = 15.0  # this long without moving while a request is out: the server is silent
IDLE_SECONDS = 3.0  # nothing sent this long: the speed of all together says nothing now


class RateWindow:
    """Bytes per second over a sliding window of lumps of bytes sent."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self.window = window
        self._lumps: deque[tuple[float, int]] = deque()  # (time, bytes sent since the lump before)

    def add(self, now: float, amount: int) -> None:
        self._lumps.append((now, amount))
        self._forget(now)

    def _forget(self, now: float) -> None:
        # The last two lumps are kept a while longer, so that a slow link whose
        # parts take longer than the window still has a speed, decaying while
        # nothing arrives; after a long pause they go too.
        while self._lumps and (
            (len(self._lumps) > 2 and self._lumps[0][0] <= now - self.window)
            or self._lumps[0][0] <= now - STALE_SECONDS
        ):
            self._lumps.popleft()

    def rate(self, now: float) -> float | None:
        """Bytes per second, or None while too little was measured to say.

        The oldest lump in the window is where the span begins; its own bytes
        were sent before it, so they are not counted. The span ends at the last
        lump, plus however much longer than the usual gap between lumps has
        passed since: steady lumps give the true rate, a stall makes it fall.
        """
        self._forget(now)
        if len(self._lumps) < 2:
            return None
        first, last = self._lumps[0][0], self._lumps[-1][0]
        measured = last - first
        if measured <= 0 or now - first < MIN_SPAN_SECONDS:
            return None
        usual_gap = measured / (len(self._lumps) - 1)
        span = measured + max(0.0, now - last - usual_gap)
        return sum(amount for _time, amount in itertools.islice(self._lumps, 1, None)) / span


@dataclass(frozen=True)
class Rate:
    """A speed and the time left at that speed; None where it cannot be said."""

    bytes_per_second: float | None
    seconds_left: float | None

    @classmethod
    def of(cls, speed: float | None, remaining: int) -> Rate:
        """Whole seconds left, rounded up: never "0 s" while a byte remains; none
        when nothing remains to send (the answers are awaited, not the bytes)."""
        if speed is None or speed <= 0 or remaining <= 0:
            return cls(speed, None)
        return cls(speed, float(math.ceil(remaining / speed)))


class Throughput:
    """One window per transfer and one for all, fed by running byte totals."""

    def __init__(self, monotonic: Callable[[], float], window: float = WINDOW_SECONDS) -> None:
        self._monotonic = monotonic
        self._window = window
        self._done: dict[int, int] = {}
        self._per_transfer: dict[int, RateWindow] = {}
        self._overall = RateWindow(window)
        self._silent_since: dict[int, float] = {}  # on this clock, while a request is out
        self._last_gain = -math.inf

    def observe(self, progress: TransferProgress) -> None:
        """A transfer's progress event: its running total, and whether it is silent."""
        now = self._monotonic()
        transfer_id = progress.transfer_id
        if progress.sending:
            self._silent_since[transfer_id] = now - progress.quiet_seconds
        else:
            self._silent_since.pop(transfer_id, None)
        previous = self._done.get(transfer_id)
        if previous is None:
            # Bytes stored in an earlier run (a resumed upload) were not sent now.
            previous = progress.bytes_at_start
            self._per_transfer[transfer_id] = RateWindow(self._window)
        self._done[transfer_id] = progress.bytes_done
        gained = progress.bytes_done - previous
        if gained < 0:
            # Bytes taken back (a request not answered, parts discarded): measure afresh.
            self._per_transfer[transfer_id] = RateWindow(self._window)
        elif gained:
            self._per_transfer[transfer_id].add(now, gained)
            self._overall.add(now, gained)
            self._last_gain = now

    def forget(self, transfer_id: int) -> None:
        """The transfer stopped running (finished, failed, paused): no row speed."""
        self._done.pop(transfer_id, None)
        self._per_transfer.pop(transfer_id, None)
        self._silent_since.pop(transfer_id, None)

    def running(self) -> set[int]:
        """The transfers measured now: a speed, or a request out."""
        return set(self._per_transfer) | set(self._silent_since)

    def silent_for(self, transfer_id: int) -> float | None:
        """Seconds the server has been silent to this transfer, from ``STALL_SECONDS``
        on (a request out, the upload not moving); None otherwise."""
        since = self._silent_since.get(transfer_id)
        if since is None:
            return None
        silent = self._monotonic() - since
        return silent if silent >= STALL_SECONDS else None

    def of_transfer(self, transfer_id: int, remaining: int) -> Rate:
        window = self._per_transfer.get(transfer_id)
        return Rate.of(None if window is None else window.rate(self._monotonic()), remaining)

    def overall(self, remaining: int) -> Rate:
        """All transfers together; nothing once nothing was sent for ``IDLE_SECONDS``
        (small files sent, a large one still being read for its checksums: their
        speed would make its time left hours)."""
        now = self._monotonic()
        if now - self._last_gain >= IDLE_SECONDS:
            return Rate(None, None)
        return Rate.of(self._overall.rate(now), remaining)

"""Speed and time left, measured from the bytes the server accepted.

Ferry learns that bytes are stored only when the server answers for them: a
whole small file, or one part of a large one. So progress arrives in lumps (a
part of 8 MiB at a time), and a speed taken from the last lump alone swings
between zero and several times the real rate. A :class:`RateWindow` averages
over the last ``WINDOW_SECONDS``: the bytes accepted after the oldest lump in
the window, divided by the time from that lump to the last one (stretched
when the next lump is later than usual). That never runs ahead of the server
(a lump counts only once accepted), gives the true rate under a steady limit,
and falls while nothing arrives.

:class:`Throughput` keeps one window per transfer and one for everything, fed
from the same progress events, so that a row and the status bar never
disagree. Pure Python with an injected clock: the window, the CLI and tests
use the same object.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from desktop_app.core.events import TransferProgress

WINDOW_SECONDS = 10.0
MIN_SPAN_SECONDS = 1.0  # no speed is shown before this much was measured
STALE_SECONDS = 60.0  # lumps older than this say nothing about the speed now


class RateWindow:
    """Bytes per second over a sliding window of accepted-byte lumps."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self.window = window
        self._lumps: deque[tuple[float, int]] = deque()  # (time, bytes accepted then)

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
        if speed is None or speed <= 0:
            return cls(speed, None)
        return cls(speed, remaining / speed)


class Throughput:
    """One window per transfer and one for all, fed by running byte totals."""

    def __init__(self, clock: Callable[[], float], window: float = WINDOW_SECONDS) -> None:
        self._clock = clock
        self._window = window
        self._done: dict[int, int] = {}
        self._per_transfer: dict[int, RateWindow] = {}
        self._overall = RateWindow(window)

    def observe(self, progress: TransferProgress) -> None:
        """A transfer's running total of accepted bytes, as a progress event carries it."""
        now = self._clock()
        transfer_id = progress.transfer_id
        previous = self._done.get(transfer_id)
        if previous is None:
            # Bytes stored in an earlier run (a resumed upload) were not sent now.
            previous = progress.bytes_at_start
            self._per_transfer[transfer_id] = RateWindow(self._window)
        self._done[transfer_id] = progress.bytes_done
        gained = progress.bytes_done - previous
        if gained < 0:
            # Parts discarded (the file changed, a part was refused): measure afresh.
            self._per_transfer[transfer_id] = RateWindow(self._window)
        elif gained:
            self._per_transfer[transfer_id].add(now, gained)
            self._overall.add(now, gained)

    def forget(self, transfer_id: int) -> None:
        """The transfer stopped running (finished, failed, paused): no row speed."""
        self._done.pop(transfer_id, None)
        self._per_transfer.pop(transfer_id, None)

    def of_transfer(self, transfer_id: int, remaining: int) -> Rate:
        window = self._per_transfer.get(transfer_id)
        return Rate.of(None if window is None else window.rate(self._clock()), remaining)

    def overall(self, remaining: int) -> Rate:
        return Rate.of(self._overall.rate(self._clock()), remaining)

"""How many files sent in one request may be in flight at once: it follows the network.

A small file costs Ferry about 5 ms of CPU. Straight to a server on the same
machine, the answer comes back in about a millisecond, so a few files in
flight keep the CPU busy, and more only add threads. A bucket 30 ms away
leaves the CPU idle for a round trip per file: there, many files in flight
are what keeps it busy (s5cmd runs 256 workers).

:class:`SmallFileWindow` finds the number by climbing: while files are waiting
for a place, it lets twice as many in at a time, and undoes a step only if
the files finished per second clearly fell with it (by a tenth); then it rests
there and tries again later, since the network may change. Too many in flight
costs little (threads waiting, and on this project's 2-core machine even on
loopback 64 at once beat 8: the journal's and the catalog's group commits
take more files per commit); too few costs a round trip per file. So the
window starts at 32, a step within the noise is kept, and only two samples in
a row below the best undo one. The server's SlowDown or 503 answers halve the
window at once, and it does not grow again until they have stopped for a
while, as the peers back off.

Promises:

- the window is between 1 and ``ceiling``; it starts at ``start`` (or at
  ``floor``, the profile's concurrency, if that is more);
- it grows only while the window was full: files waited for a place, and
  files per second are measured from the moment they began to wait, over
  files sent (not failed), and never across a spell of 5 s in which no file
  ended;
- it drops below ``floor`` only after the server throttled: then it halves, at
  most once a second however many answers were throttled (any request's: a
  server that says slow down gets fewer files at once; one that said so before
  a quiet spell is not held against the next files);
- memory stays bounded by the engine's byte budget, which every single-request
  file takes its size from before it reads a byte;
- nothing here does I/O or starts a thread; the clock and the count of the
  server's throttled answers are passed in.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)
# The most single-request files in flight. The storage client's connection
# pool and the scheduler's thread pool are sized from it.
SMALL_FILES_CEILING = 64


class WindowStep(enum.Enum):
    """What the window did at the end of a sample, for the log and the tests."""

    GREW = "grew"
    KEPT = "kept"  # nothing waited for a place, or the window is settled
    STEPPED_BACK = "stepped_back"  # the last step lowered files per second
    HALVED = "halved"  # the server throttled


@dataclass(frozen=True)
class WindowOptions:
    floor: int = 8
    start: int = 32
    ceiling: int = SMALL_FILES_CEILING
    growth: float = 2.0  # each step up multiplies the window by this
    loss: float = 0.90  # files per second down by a tenth: the step is undone
    least_sample: int = 24  # files finished before a sample is judged ...
    least_seconds: float = 0.25  # ... and seconds it lasted
    strikes: int = 2  # samples in a row below the best that undo a step
    settle: float = 5.0  # seconds after a step back before probing above again
    calm: float = 10.0  # seconds without throttling before growing again
    halving_gap: float = 1.0  # a burst of throttled answers halves the window once
    idle_gap: float = 5.0  # seconds without a file ending: a new sample begins


@dataclass(frozen=True)
class WindowChange:
    step: WindowStep
    size: int
    files_per_second: float


class SmallFileWindow:
    """The number of single-request files that may be in flight now (thread-safe)."""

    def __init__(
        self,
        options: WindowOptions,
        *,
        monotonic: Callable[[], float],
        throttled: Callable[[], int],
    ) -> None:
        self.options = options
        self._monotonic = monotonic
        self._throttled = throttled
        self._lock = threading.Lock()
        self._size = max(1, min(max(options.floor, options.start), options.ceiling))
        self._kept_size = self._size  # the last size kept: a step back returns to it
        self._best_rate: float | None = None
        self._strikes = 0
        self._seen_throttled = throttled()
        self._quiet_until = -math.inf  # no growth before this: throttled, or settled
        self._halved_at = -math.inf
        self._started = 0.0  # set again by the first file to end (see finished)
        self._done = 0
        self._was_full = False
        self._last_end: float | None = None

    @property
    def size(self) -> int:
        with self._lock:
            return self._size

    def full(self) -> None:
        """Files were waiting for a place while the window was full."""
        with self._lock:
            if not self._was_full:
                # Files per second are measured from here: an idle hour before
                # (the window's engine waits for files) says nothing of the window.
                self._started, self._done = self._monotonic(), 0
            self._was_full = True

    def finished(self, *, sent: bool) -> WindowChange | None:
        """A single-request file ended; ``sent``: it was sent or found a duplicate
        (a failure says nothing of the speed: an outage fails files fast). A
        change when one was made."""
        with self._lock:
            now = self._monotonic()
            first = self._last_end is None
            quiet = self._last_end is not None and now - self._last_end > self.options.idle_gap
            self._last_end = now
            throttled = self._throttled()
            if quiet:
                # A slow-down answered during a quiet spell (to a large file's
                # part, hours ago) is not held against the files that come after.
                self._seen_throttled = throttled
            elif throttled > self._seen_throttled:
                self._seen_throttled = throttled
                if now - self._halved_at >= self.options.halving_gap:
                    return self._halve(now)
            if first or quiet:
                # The first file after a start or a quiet spell starts the clock:
                # the time before it is not the window's doing.
                self._begin_sample(now)
                return None
            if not sent:
                return None
            self._done += 1
            if self._done < max(self.options.least_sample, self._size) or (
                now - self._started < self.options.least_seconds
            ):
                return None
            rate = self._done / max(now - self._started, 1e-6)
            change = self._judge(now, rate)
            self._begin_sample(now)
            return change

    def _judge(self, now: float, rate: float) -> WindowChange:
        if not self._was_full or now < self._quiet_until:
            return WindowChange(WindowStep.KEPT, self._size, rate)
        if self._best_rate is not None and rate < self._best_rate * self.options.loss:
            self._strikes += 1
            if self._strikes < self.options.strikes:
                return WindowChange(WindowStep.KEPT, self._size, rate)
            stepped = self._size != self._kept_size
            self._size = self._kept_size
            self._quiet_until = now + self.options.settle
            # The best rate is stale by the next probe: measured again then.
            self._best_rate, self._strikes = None, 0
            step = WindowStep.STEPPED_BACK if stepped else WindowStep.KEPT
            return WindowChange(step, self._size, rate)
        self._strikes = 0
        self._kept_size = self._size
        self._best_rate = rate if self._best_rate is None else max(self._best_rate, rate)
        return self._grow(rate)

    def _grow(self, rate: float) -> WindowChange:
        grown = min(
            self.options.ceiling, max(self._size + 1, int(self._size * self.options.growth))
        )
        if grown == self._size:
            return WindowChange(WindowStep.KEPT, self._size, rate)
        self._size = grown
        return WindowChange(WindowStep.GREW, self._size, rate)

    def _halve(self, now: float) -> WindowChange:
        self._halved_at = now
        self._size = max(1, self._size // 2)
        self._kept_size, self._best_rate, self._strikes = self._size, None, 0
        self._quiet_until = now + self.options.calm
        self._begin_sample(now)
        return WindowChange(WindowStep.HALVED, self._size, 0.0)

    def _begin_sample(self, now: float) -> None:
        self._started = now
        self._done = 0
        self._was_full = False


def log_change(change: WindowChange | None) -> None:
    """Log a step the window took (a kept size is not news)."""
    if change is not None and change.step is not WindowStep.KEPT:
        log.info(
            "Files sent in one request in flight: %d (%s at %.0f files/s)",
            change.size,
            change.step.value.replace("_", " "),
            change.files_per_second,
        )

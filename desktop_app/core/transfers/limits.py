"""Shared limits for all transfers: a bandwidth bucket and a memory budget.

The bandwidth limiter is a leaky bucket refilled at ``rate`` bytes per second
that starts empty and keeps at most ``CREDIT_SECONDS`` of unused time (no
burst): every byte is paid for at the rate, so no stretch of time, the first
second included, sends more than the limit plus 50 ms of it plus what is paid
for at once (the sender pays each 16 KiB block of a body as the connection
takes it, see :class:`PacedRequest`). A caller sleeps for the deficit; with
``rate_now`` (a schedule by the monotonic) it sleeps in slices and asks for the
rate again after each, so a new rate takes effect within a slice even for a
part already waiting. The memory budget bounds the bytes
held in part buffers at once, whatever the file sizes: a reader blocks until
its part fits. Clock and sleep are injected so that tests need not wait.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable

# The longest a waiting caller sleeps before it looks at the rate again.
WAIT_SLICE = 0.25
# The most unused time the bucket keeps: any 10 s sends at most 0.5 % above the rate.
CREDIT_SECONDS = 0.05


class BandwidthLimiter:
    def __init__(
        self,
        rate: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        small_request: int = 0,
        rate_now: Callable[[], int] | None = None,
    ) -> None:
        self.rate = rate
        self.small_request = small_request
        self._rate_now = rate_now
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        # Starts at zero and never above CREDIT_SECONDS' worth: time nobody sends
        # in is not saved up for a burst (a person's 25 MB/s measured 27.2 over
        # 300 MB with a one-second burst), yet the instants between one block
        # and the next are not lost either (with no credit at all, 25 MB/s paid
        # block by block measured 23.75).
        self._available = 0.0
        self._last: float | None = None  # the first request starts the clock: empty then

    def consume(
        self,
        amount: int,
        *,
        interrupted: Callable[[], bool] | None = None,
        request_size: int | None = None,
    ) -> float:
        """Take amount bytes from the bucket; returns the seconds slept.

        With ``interrupted``, the wait is cut short once it says so (a cancel or
        a pause of the transfer), and the bytes not yet paid for are given back:
        they will not be sent. ``request_size`` is the size of the request these
        bytes are a share of, when it is paid in shares as its body goes; a
        small request is judged by it, not by the share.
        """
        if self._current_rate() <= 0 or amount <= 0:
            return 0.0
        with self._lock:
            now = self._monotonic()
            credit = CREDIT_SECONDS * self.rate
            unused = 0.0 if self._last is None else (now - self._last) * self.rate
            self._available = min(credit, self._available + unused)
            self._last = now
            self._available -= amount
            deficit = -self._available
            if (amount if request_size is None else request_size) <= self.small_request:
                # A small request waits for its own bytes only; the debt it adds
                # is paid by the large requests after it, so the average holds
                # and a small file never queues behind a large one's parts.
                deficit = min(deficit, float(amount))
        if deficit <= 0:
            return 0.0
        if self._rate_now is None and interrupted is None:
            delay = deficit / self.rate
            self._sleep(delay)
            return delay
        return self._pay_in_slices(deficit, interrupted, own=amount)

    @property
    def limiting(self) -> bool:
        """Is a limit in force now (the schedule's rate as last asked)?"""
        return self.rate > 0

    def _current_rate(self) -> int:
        if self._rate_now is not None:
            self.rate = self._rate_now()
        return self.rate

    def _pay_in_slices(
        self, deficit: float, interrupted: Callable[[], bool] | None, *, own: int
    ) -> float:
        """Wait off a debt of bytes in slices, each at the rate the schedule says
        then, until it is paid or the wait is interrupted. Interrupted, only the
        caller's ``own`` bytes not yet waited for are given back: the rest of the
        debt is what others before it sent, still owed."""
        slept = 0.0
        rate = self.rate
        while rate > 0:
            if interrupted is not None and interrupted():
                with self._lock:
                    # Not sent: not owed (the caller's own bytes, never others' debt).
                    unpaid = min(deficit, float(own))
                    self._available = min(CREDIT_SECONDS * self.rate, self._available + unpaid)
                return slept
            step = deficit / rate
            if step <= WAIT_SLICE:
                self._sleep(step)
                return slept + step
            self._sleep(WAIT_SLICE)
            slept += WAIT_SLICE
            deficit -= WAIT_SLICE * rate
            rate = self._current_rate()
        return slept


class StoppedWhilePacing(concurrent.futures.CancelledError):
    """A pause or cancel cut a request's wait for bandwidth: the rest of its body
    will not be sent.

    A CancelledError because botocore lets one through as it is, neither
    wrapped nor retried (as for s3transfer's cancels); the connection it was
    sending on is closed by urllib3, and the sender turns this into its own
    stop.
    """


class PacedRequest:
    """Pays the limiter for one request's body as the connection takes it.

    ``sent`` is called at each read of the body with how much of it the
    connection has taken (see :meth:`~desktop_app.core.storage.s3.S3Storage.upload_part`): the
    bytes taken since the last read are paid for before the next block goes,
    so the wire never runs ahead of the limit by more than one block. Bytes
    sent again (a rewind for botocore's retry) are not paid twice: a pass
    that reads the body without sending it must not halve the rate.
    """

    def __init__(
        self,
        limiter: BandwidthLimiter,
        size: int,
        stop_asked: Callable[[], bool],
        then: Callable[[int], None],
    ) -> None:
        self._limiter = limiter
        self._size = size
        self._stop_asked = stop_asked
        self._then = then
        self._paid = 0

    def sent(self, position: int) -> None:
        self._then(position)
        if position <= self._paid:
            return
        owed, self._paid = position - self._paid, position
        self._limiter.consume(owed, interrupted=self._stop_asked, request_size=self._size)
        if self._limiter.limiting and self._stop_asked():
            raise StoppedWhilePacing


class ByteBudget:
    """At most ``capacity`` bytes held at once across all part buffers.

    ``small_reserve`` bytes of it are kept for requests smaller than that
    (whole small files, which are smaller than one part), so that large parts
    filling the budget never make a small file wait.

    Buffers lent by :meth:`take_buffer` and given back are kept as spares,
    still counted as held, for the next buffer of their size: a fresh 16 MiB
    buffer is fresh pages the kernel must clear on first touch, 11 % of a
    1 GiB upload's CPU (docs/BENCHMARKS.md). A spare is dropped as soon as a
    request would otherwise wait, and all are dropped by :meth:`drop_spares`
    once none is lent, so spares never make anyone wait nor outlive a send.
    """

    def __init__(self, capacity: int, *, small_reserve: int = 0) -> None:
        self.capacity = capacity
        self.small_reserve = min(small_reserve, capacity // 2)
        self._used = 0
        self._peak = 0
        self._spares: list[bytearray] = []
        self._lent = 0
        self._condition = threading.Condition()

    def _share(self, amount: int) -> tuple[int, int]:
        """What a request of ``amount`` bytes holds, and the limit it must fit under."""
        # Strictly smaller: a whole part (the reserve's size) is not a small request.
        small = amount < self.small_reserve
        limit = self.capacity if small else self.capacity - self.small_reserve
        return min(amount, limit), limit

    def _hold(self, amount: int, limit: int, reuse: int | None = None) -> bytearray | None:
        """Count ``amount`` as held, waiting for room, or (``reuse`` given) take a spare of
        that size once there is one. The condition is held by the caller."""
        while True:
            if reuse is not None:
                for index, spare in enumerate(self._spares):
                    if len(spare) == reuse:
                        return self._spares.pop(index)
            if self._used + amount <= limit:
                self._used += amount
                self._peak = max(self._peak, self._used)
                return None
            if self._spares:
                self._release_spare(self._spares.pop(0))  # a spare never makes anyone wait
                continue
            self._condition.wait()

    def acquire(self, amount: int) -> int:
        amount, limit = self._share(amount)
        with self._condition:
            self._hold(amount, limit)
        return amount

    def release(self, amount: int) -> None:
        with self._condition:
            self._used -= amount
            self._condition.notify_all()

    def take_buffer(self, size: int) -> bytearray:
        """A buffer of exactly ``size`` bytes, held until :meth:`give_back`; its content is
        whatever it last held."""
        amount, limit = self._share(size)
        with self._condition:
            spare = self._hold(amount, limit, reuse=size)
            self._lent += 1
        return spare if spare is not None else bytearray(size)

    def give_back(self, buffer: bytearray) -> None:
        with self._condition:
            self._lent -= 1
            self._spares.append(buffer)
            self._condition.notify_all()

    def _release_spare(self, spare: bytearray) -> None:
        held, _limit = self._share(len(spare))
        self._used -= held

    def drop_spares(self) -> None:
        """Free the spares if no buffer is lent: the send that used them has ended."""
        with self._condition:
            if self._lent == 0 and self._spares:
                for spare in self._spares:
                    self._release_spare(spare)
                self._spares.clear()
                self._condition.notify_all()

    @property
    def spare_bytes(self) -> int:
        with self._condition:
            return sum(len(spare) for spare in self._spares)

    @property
    def peak(self) -> int:
        return self._peak

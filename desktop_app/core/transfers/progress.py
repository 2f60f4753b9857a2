"""How far one transfer's bytes have gone, as the connection takes them.

A :class:`ProgressMeter` per attempt counts each request's body as botocore
reads it (:class:`SentBytes`), so a row moves with the bytes, not by whole
parts; bytes of a request the server did not answer are taken back, and a
body sent again counts once. Events go out at most every 0.1 s or MiB
(:data:`PUBLISH_SECONDS`, :data:`PUBLISH_BYTES`). :func:`paced` joins a
request's count to the bandwidth limiter.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable

from desktop_app.core.model.events import EventBus, TransferProgress
from desktop_app.core.model.sizes import MIB
from desktop_app.core.transfers.control import TransferControl
from desktop_app.core.transfers.limits import BandwidthLimiter, PacedRequest

PUBLISH_SECONDS = 0.1  # a transfer's progress is published at most this often...
PUBLISH_BYTES = MIB  # ...unless this much more was sent


class ProgressMeter:
    """How far one transfer's bytes have gone, published every 0.1 s or MiB at most.

    Counted as botocore reads each request's body (``sent``, see
    :meth:`S3Storage.upload_part`), so a row moves with the bytes the
    connection takes, not by whole parts; the bytes of a request the server
    did not answer are taken back, and a body sent again (botocore's retry)
    counts once. Each event also says whether a request is out and how long
    the upload has not moved: no byte it had not sent before went out, and no
    answer came. Waiting for bandwidth is not being out: a request is out from
    the first read of its body until it ends.
    """

    def __init__(
        self,
        bus: EventBus,
        monotonic: Callable[[], float],
        transfer_id: int,
        total: int,
        done: int,
    ) -> None:
        self.bus = bus
        self.monotonic = monotonic
        self.transfer_id = transfer_id
        self.total = total
        self.done = done  # stored: what the server has answered for
        self.at_start = done
        self._out: dict[int, SentBytes] = {}  # requests whose body is being read or sent
        self._requests = itertools.count()
        self.moved_at = monotonic()  # a byte not sent before went out, or an answer came
        self._lock = threading.Lock()
        self.last_publish = -math.inf

    def request(self, size: int) -> SentBytes:
        """One request of ``size`` bytes: its ``sent`` goes to the storage call, and
        its ``end()`` always follows; the bytes count once ``keep()`` says the
        server answered for them, otherwise they are taken back."""
        return SentBytes(self, next(self._requests), size)

    def _out_now(self, request: SentBytes) -> None:
        """Its body's first read, or a MiB or 0.1 s since the last event."""
        with self._lock:
            if not self._out:
                self.moved_at = request.last_read  # silence is counted from here
            self._out[request.number] = request
            event = self._event(request.last_read)
        self.bus.publish(event)

    def _ended(self, request: SentBytes) -> None:
        with self._lock:
            was_out = self._out.pop(request.number, None) is not None
            if request.kept:
                self.done += request.size
                self.moved_at = self.monotonic()  # the server answered
        if was_out or request.kept:
            self.publish()

    def add(self, amount: int) -> None:
        """Bytes stored without being sent (a copy on the server)."""
        with self._lock:
            self.done += amount
        self.publish()

    def publish(self) -> None:
        with self._lock:
            event = self._event(self.monotonic())
        self.bus.publish(event)

    def _event(self, now: float) -> TransferProgress:
        self.last_publish = now
        counted = self.done
        for request in self._out.values():
            counted += request.position
            request.published = request.position
        quiet = max(0.0, now - self.moved_at) if self._out else 0.0
        return TransferProgress(
            self.transfer_id, counted, self.total, self.at_start, bool(self._out), quiet
        )


class SentBytes:
    """One request's share of a :class:`ProgressMeter`.

    ``sent`` runs at every read of the body (16 KiB): it only notes the
    position, and goes to the meter's lock for the first read, then every MiB
    or 0.1 s.
    """

    def __init__(self, meter: ProgressMeter, number: int, size: int) -> None:
        self._meter = meter
        self.number = number
        self.size = size
        self.kept = False
        self.position = 0  # of the body, taken by the connection
        self.published = 0  # the position the meter's last event counted
        self.last_read = meter.monotonic()
        self._furthest = 0
        self._out = False
        self._ended = False

    def sent(self, position: int) -> None:
        """The connection has taken the body's first ``position`` bytes."""
        meter = self._meter
        now = self.last_read = meter.monotonic()
        self.position = position
        if position > self._furthest:  # sent again after a rewind: not moving
            self._furthest = position
            meter.moved_at = now
        if (
            not self._out
            or now - meter.last_publish >= PUBLISH_SECONDS
            # Socket buffers fill in a blink: a server that then stops taking
            # bytes would otherwise leave that blink's bytes unsaid.
            or abs(position - self.published) >= PUBLISH_BYTES
        ):
            self._out = True
            meter._out_now(self)

    def keep(self) -> None:
        """The server answered the request: its bytes count (what it stored is
        judged by the caller; a failure there is the attempt's, not the count's)."""
        self.kept = True

    def end(self) -> None:
        """The request is over; again is nothing."""
        if not self._ended:
            self._ended = True
            self._meter._ended(self)


def paced(limiter: BandwidthLimiter, request: SentBytes, control: TransferControl) -> PacedRequest:
    """The request's ``sent``, paying the limiter as the body goes."""
    return PacedRequest(limiter, request.size, control.stop_asked, request.sent)

"""A TCP relay on loopback between the tools and the server, for the benchmarks.

It can delay what passes by half a round trip each way (a network ``rtt_ms``
away, as a bucket 20-80 ms away at work is), the first bytes of a connection
by one round trip more (its handshake), and count the bytes going up to the
server with the time they passed (for measuring a bandwidth limit on the wire).
Delay is added per chunk without slowing the stream: a chunk waits its half
round trip in a queue while the next ones are read, as on a long link.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class WireLog:
    """Bytes from the tools to the server, with the monotonic time they passed."""

    times: list[float] = field(default_factory=list)
    totals: list[int] = field(default_factory=list)  # cumulative bytes at each time
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, count: int) -> None:
        with self.lock:
            self.times.append(time.monotonic())
            self.totals.append((self.totals[-1] if self.totals else 0) + count)

    def clear(self) -> None:
        with self.lock:
            self.times.clear()
            self.totals.clear()

    def per_step(self, step: float) -> list[int]:
        """Bytes passed in each ``step`` seconds from the first byte."""
        with self.lock:
            times, totals = list(self.times), list(self.totals)
        steps: list[int] = []
        previous = 0
        for at, total in zip(times, totals, strict=True):
            index = int((at - times[0]) / step)
            steps.extend([0] * (index + 1 - len(steps)))
            steps[index] += total - previous
            previous = total
        return steps

    def rates(self, window: float) -> tuple[float, float, int]:
        """Average bytes/s first to last byte, the highest over any ``window`` s, bytes."""
        import bisect

        with self.lock:
            times, totals = list(self.times), list(self.totals)
        if len(times) < 2:
            return 0.0, 0.0, totals[-1] if totals else 0
        average = totals[-1] / (times[-1] - times[0])
        if times[-1] - times[0] < window:
            return average, average, totals[-1]  # the whole run is shorter than one window
        highest = 0.0
        for index, start in enumerate(times):
            end = bisect.bisect_right(times, start + window) - 1
            before = totals[index - 1] if index else 0
            highest = max(highest, (totals[end] - before) / window)
        return average, highest, totals[-1]


class _DelayedSink:
    """Sends chunks to a socket each at its own time, in order, from one thread."""

    def __init__(self, sink: socket.socket) -> None:
        self.sink = sink
        self.queue: list[tuple[float, int, bytes]] = []
        self.order = itertools.count()
        self.ready = threading.Condition()
        self.closed = False
        threading.Thread(target=self._run, daemon=True).start()

    def put(self, due: float, data: bytes) -> None:
        with self.ready:
            heapq.heappush(self.queue, (due, next(self.order), data))
            self.ready.notify()

    def close(self, due: float) -> None:
        self.put(due, b"")

    def _run(self) -> None:
        while True:
            with self.ready:
                while not self.queue:
                    self.ready.wait()
                due, _, data = self.queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self.ready.wait(wait)
                    continue
                heapq.heappop(self.queue)
            if not data:
                with contextlib.suppress(OSError):
                    self.sink.shutdown(socket.SHUT_WR)
                return
            try:
                self.sink.sendall(data)
            except OSError:
                return


class Relay:
    """Listens on a free loopback port and relays every connection to ``target_port``."""

    def __init__(self, target_port: int, *, rtt_ms: float = 0.0, log: WireLog | None = None):
        self.target_port = target_port
        self.one_way = rtt_ms / 2000.0
        self.log = log
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            for end in (client, server):
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # The handshake a real link costs: one round trip before the first byte.
            opened = time.monotonic() + 2 * self.one_way
            for source, sink, upward in ((client, server, True), (server, client, False)):
                threading.Thread(
                    target=self._pipe, args=(source, sink, upward, opened), daemon=True
                ).start()

    def _pipe(
        self, source: socket.socket, sink: socket.socket, upward: bool, opened: float
    ) -> None:
        delayed = _DelayedSink(sink) if self.one_way else None
        try:
            while data := source.recv(256 * 1024):
                if upward and self.log is not None:
                    self.log.note(len(data))
                if delayed is None:
                    sink.sendall(data)
                else:
                    delayed.put(max(time.monotonic(), opened) + self.one_way, data)
        except OSError:
            pass
        finally:
            if delayed is not None:
                delayed.close(time.monotonic() + self.one_way)
            else:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()

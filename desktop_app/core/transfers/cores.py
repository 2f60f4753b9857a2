"""Which cores the threads that send small files run on: one, shared, unless bytes are crunched.

CPython runs one thread's Python at a time (the GIL). Sending small files is
that kind of work: each file's few milliseconds of Python pass between the
scheduler, dozens of file workers and the journal's and catalog's writers at
every socket, file and SQLite call. On several cores each pass wakes the next
thread on another core, where it waits for the GIL the first thread takes
back: 500 files of 64 KiB cost 100,000 context switches and a quarter more
CPU than on one core (docs/BENCHMARKS.md, #35's tenth round). So those threads
share one core. A multipart upload is the other kind of work: its parts are
hashed and sent outside the GIL, side by side, and while one runs every core
is theirs again. So is a machine with no core to spare (every CPU busy, as
with 20 Ferrys on two cores): there only the kernel's balancing helps.

Promises:

- around an attempt at a file sent in one request, every thread its owner
  names (``threads``: one Ferry's scheduler, file workers, journal writer
  and catalog writer, never another Ferry's in the same process) is allowed
  one CPU: the one the attempt's thread runs on when the first is placed,
  the kernel's own latest choice. A thread started since is placed at the
  next attempt (one started by a placed thread is born there);
- while any multipart attempt runs, or while the machine's CPUs were busy
  more than ``BUSY_CEILING`` of the time at the last look (taken at most every
  ``LOOK_EVERY`` seconds, at an attempt), those threads are allowed every
  CPU the process had when this object was made, and none is placed;
- no other thread is placed: the main thread and every process started
  from an unplaced thread keep the kernel's placement, and the parts' and
  hashes' threads begin by taking every CPU (:meth:`unbind_this_thread`, their
  pools' first step), even when a placed thread started them: a file
  queued small that grew past one part is sent in parts from a placed
  worker;
- :meth:`close` gives every CPU back to the threads it placed;
- where the system has no thread affinity (macOS, Windows) or the process
  may use one CPU only, nothing is ever changed; a thread that ended before
  it was placed is passed over; no error of placement reaches a transfer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, Protocol

log = logging.getLogger(__name__)

# Of all CPUs' time since the last look: busier, no core is spare to share.
BUSY_CEILING = 0.9
LOOK_EVERY = 0.5  # seconds
_FEWEST_TICKS = 10  # a shorter look says nothing (a tick is 10 ms of one CPU)


class CpuTimes(NamedTuple):
    """Clock ticks of every CPU since boot: busy, and in all."""

    busy: int
    total: int


class ThreadAffinity(Protocol):
    """The system's calls that place threads on CPUs (injected: tests pass their own)."""

    def allowed(self) -> frozenset[int]:
        """The CPUs this process may use."""
        ...

    def current_cpu(self) -> int | None:
        """The CPU the calling thread runs on now (None: unknown)."""
        ...

    def place(self, native_id: int, cpus: frozenset[int]) -> None:
        """Allow the thread ``native_id`` these CPUs only; OSError if it cannot be."""
        ...

    def cpu_times(self) -> CpuTimes | None:
        """How busy the machine's CPUs have been (None: unknown)."""
        ...


class LinuxAffinity:
    """:class:`ThreadAffinity` on Linux: a thread's id is a task of ``sched_setaffinity``."""

    def allowed(self) -> frozenset[int]:
        return frozenset(os.sched_getaffinity(0))

    def current_cpu(self) -> int | None:
        try:
            stat = Path("/proc/thread-self/stat").read_bytes()
            # Field 39 ("processor"); the name in parentheses before may hold spaces.
            return int(stat.rsplit(b")", 1)[1].split()[36])
        except (OSError, ValueError, IndexError):
            return None

    def place(self, native_id: int, cpus: frozenset[int]) -> None:
        os.sched_setaffinity(native_id, cpus)

    def cpu_times(self) -> CpuTimes | None:
        try:
            with open("/proc/stat", "rb") as stat:
                words = stat.readline().split()
            # cpu user nice system idle iowait irq softirq steal (guest time is in user)
            ticks = [int(word) for word in words[1:9]]
            return CpuTimes(busy=sum(ticks) - ticks[3] - ticks[4], total=sum(ticks))
        except (OSError, ValueError, IndexError):
            return None


def system_affinity() -> ThreadAffinity | None:
    """This system's thread placement, or None where it has none that Ferry uses."""
    if hasattr(os, "sched_setaffinity") and Path("/proc/thread-self/stat").exists():
        return LinuxAffinity()
    return None


class CoreSharing:
    """Places the small-file threads on one shared core between multipart attempts."""

    def __init__(
        self,
        affinity: ThreadAffinity | None,
        threads: Callable[[], Iterable[threading.Thread]],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``threads``: the threads to place, asked at each attempt (some may not have started)."""
        self._affinity = affinity
        self._threads = threads
        self._monotonic = monotonic
        self._every = affinity.allowed() if affinity is not None else frozenset()
        self._looked_at = (monotonic(), affinity.cpu_times() if affinity is not None else None)
        self._looked_once = False
        self._room = True  # a core to spare, at the last look
        self._lock = threading.Lock()
        self._spreading = 0  # multipart attempts running
        self._core: int | None = None  # the CPU shared now; None: none placed
        self._placed: weakref.WeakSet[threading.Thread] = weakref.WeakSet()

    @property
    def core(self) -> int | None:
        """The CPU the small-file threads share now; None while they may use every one."""
        return self._core

    @contextlib.contextmanager
    def attempt(self, *, spreads: bool) -> Iterator[None]:
        """Around one attempt; ``spreads``: a multipart upload, which gets every core."""
        if self._affinity is None or len(self._every) < 2:
            yield
            return
        if not spreads:
            with self._lock:
                if self._spreading == 0:
                    if self._core_to_spare():
                        self._place_newcomers()
                    elif self._core is not None:
                        self._give_every_core()
            yield
            return
        with self._lock:
            self._spreading += 1
            if self._spreading == 1:
                self._give_every_core()
        try:
            yield
        finally:
            with self._lock:
                self._spreading -= 1

    def unbind_this_thread(self) -> None:
        """Let the calling thread run on every CPU the process had (a pool's first step)."""
        if self._affinity is None or len(self._every) < 2:
            return
        try:
            self._affinity.place(threading.get_native_id(), self._every)
        except OSError as exc:
            log.debug("A thread kept the CPUs it was born with: %s", exc)

    def close(self) -> None:
        """Give every CPU back to the threads placed (the engine stops)."""
        with self._lock:
            if self._core is not None:
                self._give_every_core()

    def _core_to_spare(self) -> bool:
        """Were the machine's CPUs idle enough, since the last look, to give one to Ferry?"""
        assert self._affinity is not None
        now = self._monotonic()
        last_at, last = self._looked_at
        if self._looked_once and now - last_at < LOOK_EVERY:
            return self._room
        times = self._affinity.cpu_times()
        if times is not None and (last is None or times.total < last.total):
            # A first look, or counters that stepped back (a CPU unplugged): a new baseline.
            self._looked_at = (now, times)
            return self._room
        if times is None or last is None or times.total - last.total < _FEWEST_TICKS:
            return self._room
        busy = (times.busy - last.busy) / (times.total - last.total)
        self._looked_at, self._looked_once = (now, times), True
        if (busy < BUSY_CEILING) != self._room:
            log.debug(
                "CPUs busy %.0f%% of the time: the small-file threads %s",
                busy * 100,
                "share one core" if busy < BUSY_CEILING else "may use every core",
            )
        self._room = busy < BUSY_CEILING
        return self._room

    def _transfer_threads(self) -> list[threading.Thread]:
        # Started and not ended: an ended thread's id may be another thread's by now.
        return [t for t in self._threads() if t.native_id and t.is_alive()]

    def _place_newcomers(self) -> None:
        assert self._affinity is not None
        if self._core is None:
            current = self._affinity.current_cpu()
            self._core = current if current in self._every else min(self._every)
        core = frozenset((self._core,))
        for thread in self._transfer_threads():
            if thread not in self._placed and self._place(thread, core):
                self._placed.add(thread)

    def _give_every_core(self) -> None:
        for thread in self._transfer_threads():
            self._place(thread, self._every)
        self._placed = weakref.WeakSet()
        self._core = None

    def _place(self, thread: threading.Thread, cpus: frozenset[int]) -> bool:
        assert self._affinity is not None
        assert thread.native_id is not None
        try:
            self._affinity.place(thread.native_id, cpus)
        except OSError as exc:  # it ended meanwhile, or the system refuses: run as it is
            log.debug("Thread %s not placed on CPUs %s: %s", thread.name, sorted(cpus), exc)
            return False
        return True

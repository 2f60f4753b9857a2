"""A child process's own peak memory, read while it runs.

``os.wait4``'s ``ru_maxrss`` is not it: Linux carries a process's peak RSS
across ``exec``, and a child started by ``fork`` or ``vfork`` begins with
its parent's pages, so every tool the benchmark starts reported at least the
benchmark's own size (``/bin/true`` from a parent of 300 MiB: 313 MiB).
``VmHWM`` in ``/proc/PID/status`` belongs to the memory the program got at
``exec``: it is read every few milliseconds until the process ends, and the
last value read is its peak (a high-water mark only grows). Its CPU time is
the one ``os.wait4`` reports for it alone (user + system).
"""

from __future__ import annotations

import os
import threading
import time


def high_water_mib(pid: int) -> float | None:
    """The process's peak RSS so far (MiB); None once it has ended."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None  # a zombie: its memory is gone


def wait_with_peak_rss(pid: int, interval: float = 0.005) -> tuple[int, float, float]:
    """Wait for ``pid`` to end: (its wait status, its own peak RSS in MiB, its CPU seconds)."""
    peak = 0.0
    ended = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not ended.is_set():
            found = high_water_mib(pid)
            if found is not None:
                peak = max(peak, found)
            time.sleep(interval)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _pid, status, usage = os.wait4(pid, 0)
    ended.set()
    watcher.join()
    return status, peak, usage.ru_utime + usage.ru_stime

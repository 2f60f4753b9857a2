"""An exclusive lock file naming its holder: one process at a time owns a resource.

The lock is the OS's (``flock``; ``msvcrt.locking`` on Windows), so it goes
with its holder however that process ends, crash included; the file keeps
the holder's pid for the message another process shows.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO


class LockHeld(Exception):
    """Another process holds the lock; ``holder`` is its pid as written, or ''."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


class PidLock:
    """Non-blocking: :meth:`acquire` takes the lock or raises :class:`LockHeld`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        if self._handle is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise LockHeld(holder) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

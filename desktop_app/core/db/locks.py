"""An exclusive lock naming its holder: one process at a time owns a resource.

The lock is the OS's (``flock``; ``msvcrt.locking`` on Windows), so it goes
with its holder however that process ends, crash included. A lock file kept
beside the resource could be deleted while held, and the next process would
then lock a new file of that name; so on Linux a lock ``guarding`` a file is
taken on that file itself, and the lock file only names the holder's pid for
the message another process shows (deleting it changes nothing). ``flock`` is
independent of the ``fcntl`` record locks SQLite takes on its database file
on Linux, and the descriptor stays open while the lock is held, so closing it
never drops SQLite's locks under a live connection. On Windows an open file
cannot be deleted; elsewhere the lock file itself is the lock.

:func:`unwritable` says why a folder cannot take a lock or a database (a
read-only file system, no permission), so a message can name the cause.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import IO

# Linux only: on the BSDs (macOS) flock and fcntl locks may share one lock
# list, so an flock on a SQLite file could block SQLite's own locks.
_LOCK_THE_FILE_ITSELF = sys.platform.startswith("linux")


class LockHeld(Exception):
    """Another process holds the lock; ``holder`` is its pid as known, or ''."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


class PidLock:
    """Non-blocking: :meth:`acquire` takes the lock or raises :class:`LockHeld`.

    ``guarding``: the file the lock protects, which must exist; on Linux the
    lock is held on it, so deleting the lock file lets no second holder in.
    """

    def __init__(self, path: Path, *, guarding: Path | None = None) -> None:
        self.path = path
        self.guarding = guarding if _LOCK_THE_FILE_ITSELF else None
        self._handle: IO[str] | None = None
        self._guard_fd: int | None = None

    def acquire(self) -> None:
        if self._handle is not None or self._guard_fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.guarding is not None:
            self._acquire_guarding(self.guarding)
            return
        handle = self.path.open("a+")
        try:
            _lock(handle.fileno())
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

    def _acquire_guarding(self, guarding: Path) -> None:
        descriptor = os.open(guarding, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            _lock(descriptor)
        except OSError:
            os.close(descriptor)
            raise LockHeld(self._read_holder() or _flock_holder(guarding)) from None
        self._guard_fd = descriptor
        # The pid is information only: the lock is held on the file itself.
        with contextlib.suppress(OSError):
            self.path.write_text(str(os.getpid()))

    def _read_holder(self) -> str:
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._guard_fd is not None:
            os.close(self._guard_fd)
            self._guard_fd = None


def _lock(descriptor: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _flock_holder(path: Path) -> str:
    """The pid /proc/locks names for an flock on path (the pid file may be gone)."""
    with contextlib.suppress(OSError):
        info = path.stat()
        device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:1466553 0 EOF"
            if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device:
                return fields[4]
    return ""


def on_read_only_file_system(folder: Path) -> bool:
    """Whether ``folder`` is on a file system mounted read-only (never, where unknown)."""
    statvfs = getattr(os, "statvfs", None)
    if statvfs is None:
        return False
    try:
        return bool(statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def unwritable(folder: Path) -> str | None:
    """Why this process cannot write in ``folder``, in words; None when it can (or unknown)."""
    if on_read_only_file_system(folder):
        return "is on a read-only file system"
    if folder.is_dir() and not os.access(folder, os.W_OK):
        return "is not writable by you"
    return None

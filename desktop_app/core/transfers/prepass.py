"""The pre-pass: one read of a source file for its SHA-256, each part's MD5 and
the CRC64NVME of each part and of the whole file.

The duplicate check needs the file's SHA-256 before anything is sent, and the
sending pass needs each part's MD5 as Content-MD5 and, where the endpoint
verifies checksums, each part's CRC64NVME and the whole file's (the server
computes the object's own from the bytes it stored and refuses a Complete
whose full-object checksum differs). All come from one read: the reading
thread feeds each chunk to the SHA-256 and to both CRCs (awscrt's CRC64NVME
runs at some 20 GB/s, a fraction of SHA-256's time) while the MD5 of the part
the chunk belongs to runs in one of a few lanes (threads; hashlib releases the
GIL, so the two hashes use two cores). A lane hashes its parts' chunks in the
order they were read; parts alternate between lanes.

Promises: the chunk buffers are a fixed ring, reused (no buffer per part),
held from the byte budget for the duration of one file, so the memory of a
pre-pass is bounded whatever the file's size; every MD5 and CRC is of the
bytes that also went into the SHA-256, from the same buffer.

:class:`HashesAhead` runs the pre-pass of a command's large files while
Ferry itself is still starting (see its promises).
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from desktop_app.core.model.errors import SourceError
from desktop_app.core.model.sizes import MIB, choose_part_size
from desktop_app.core.model.transfer_records import SourceIdentity
from desktop_app.core.storage.crc64 import crc64nvme as crc64nvme
from desktop_app.core.storage.crc64 import crc64nvme_base64 as crc64nvme_base64
from desktop_app.core.transfers.limits import ByteBudget

_CHUNK = 8 * MIB
_BUFFERS = 4

log = logging.getLogger(__name__)


class ReadStopped(Exception):
    """A read given up because its ``stop`` was set: no hashes, nothing wrong."""


@dataclass(frozen=True)
class FileHashes:
    """The SHA-256 of a file and, when parts were asked for, each part's MD5 in order,
    each part's CRC64NVME and the whole file's (0 for a file hashed without parts)."""

    sha256: str
    part_md5s: tuple[bytes, ...]
    crc64nvme: int = 0
    part_crc64nvmes: tuple[int, ...] = ()


class PrePass:
    """Hashes files for the engine; thread-safe (each call has its own buffers)."""

    def __init__(
        self,
        budget: ByteBudget,
        *,
        lanes: int = 2,
        thread_start: Callable[[], None] | None = None,
    ) -> None:
        """``thread_start``: what each lane's thread does first (the engine's core placement)."""
        self.budget = budget
        self._lanes = [
            concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix=f"ferry-md5-{n}", initializer=thread_start
            )
            for n in range(max(1, lanes))
        ]

    def close(self) -> None:
        for lane in self._lanes:
            lane.shutdown(wait=True, cancel_futures=True)

    def hash_file(
        self, path: str, part_size: int | None, *, stop: threading.Event | None = None
    ) -> FileHashes:
        """The SHA-256 and (``part_size`` given) the MD5 of every ``part_size`` range.

        A file shorter at the end than its size said is read as it is: the
        caller compares the source identity before and after. A file read in
        parts is given up between two chunks once ``stop`` is set.
        """
        try:
            with open(path, "rb") as handle:
                if part_size is None:
                    return FileHashes(hashlib.file_digest(handle, "sha256").hexdigest(), ())
                return self._hash_parts(handle.readinto, part_size, stop)
        except OSError as exc:
            raise SourceError(f"{path} cannot be read: {exc.strerror}.") from exc

    def _hash_parts(
        self,
        readinto: Callable[[Any], int | None],
        part_size: int,
        stop: threading.Event | None,
    ) -> FileHashes:
        chunk = min(_CHUNK, part_size)
        held = self.budget.acquire(chunk * _BUFFERS)
        slots = max(1, held // chunk)  # a small budget grants fewer buffers
        ring = [memoryview(bytearray(chunk)) for _ in range(slots)]
        busy: list[concurrent.futures.Future[None] | None] = [None] * slots
        sha256 = hashlib.sha256()
        md5s: list[Any] = []
        crcs: list[int] = []
        whole = 0
        try:
            turn = 0
            while True:
                md5 = hashlib.md5()
                crc = 0
                lane = self._lanes[len(md5s) % len(self._lanes)]
                left = part_size
                while left:
                    slot = turn % slots
                    turn += 1
                    if (previous := busy[slot]) is not None:
                        previous.result()  # this buffer's last MD5 is done with it
                    if stop is not None and stop.is_set():
                        raise ReadStopped
                    read = readinto(ring[slot][: min(chunk, left)]) or 0
                    if not read:
                        break
                    view = ring[slot][:read]
                    busy[slot] = lane.submit(md5.update, view)
                    sha256.update(view)
                    crc = crc64nvme(view, crc)
                    whole = crc64nvme(view, whole)
                    left -= read
                if left == part_size and md5s:
                    break  # the end of the file falls on a part boundary
                md5s.append(md5)
                crcs.append(crc)
                if left:
                    break
        finally:
            for future in busy:
                if future is not None:
                    future.result()
            self.budget.release(held)
        return FileHashes(sha256.hexdigest(), tuple(m.digest() for m in md5s), whole, tuple(crcs))


@dataclass(frozen=True)
class _Read:
    """What the pass ahead found: the file's identity before and after, equal."""

    identity: SourceIdentity
    part_size: int
    hashes: FileHashes


class HashesAhead:
    """The pre-pass of a command's large files, run while Ferry starts.

    ``ferry upload BIG`` spends its first second importing and opening the
    profile, one core's work; the pre-pass of a large file (hashlib and the
    reads release the GIL) runs beside it on the other, in a thread of its
    own, and the engine's first step takes what it found (:meth:`take`).

    Promises:
    - hashes are handed over once, for the same path and part size, and only
      if the file's identity (size, mtime, ctime, device, inode: a rewrite
      moves ctime) was the same before and after this read and equals the
      one the engine saw just before asking: the bytes hashed are the bytes
      the engine would have read. Every part still goes with these digests
      (Content-MD5, and the CRC64NVME where the server verifies it), so
      bytes changed since are refused by the server just as after the
      engine's own pre-pass;
    - asked for a file it is reading, the engine waits for that read;
    - it only fills start-up: once the engine asks for any hash no further
      file is begun. Its memory is one pre-pass ring (32 MiB at most), held
      until the file in hand is read, beside the engine's byte budget;
    - a file it cannot read, or that changed while read, is left to the
      engine, which reads it again and reports what is wrong; nothing it
      meets is raised or printed;
    - :meth:`stop` (an interrupted engine, a command ending) gives up a read
      in progress between two chunks.
    """

    def __init__(self, files: Iterable[tuple[str, int]], *, prepass: PrePass | None = None) -> None:
        """``files``: (path, part size) pairs, read in this order."""
        self._waiting = collections.deque(files)
        self._prepass = prepass or PrePass(ByteBudget(_CHUNK * _BUFFERS))
        self._changed = threading.Condition()
        self._reading: str | None = None
        self._found: dict[str, _Read] = {}
        self._no_more = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ferry-hash-ahead", daemon=True)
        self._thread.start()

    @classmethod
    def of_paths(
        cls,
        paths: Iterable[str],
        *,
        part_size: int,
        threshold: int,
        prepass: PrePass | None = None,
    ) -> HashesAhead:
        """For the regular files among ``paths`` sent in parts (``threshold`` bytes
        or more), each with the part size the engine will choose for it."""
        files: dict[str, int] = {}  # a path named twice is read once
        for path in paths:
            try:
                found = os.stat(path)
            except OSError:
                continue  # the engine says what is wrong with it
            if stat.S_ISREG(found.st_mode) and found.st_size >= threshold:
                files[path] = choose_part_size(found.st_size, part_size)
        return cls(files.items(), prepass=prepass)

    def take(self, path: str, part_size: int | None, seen: SourceIdentity) -> FileHashes | None:
        """The hashes of ``path`` read ahead, if they are of the file as ``seen`` now."""
        with self._changed:
            self._no_more = True
            while self._reading == path:
                self._changed.wait()
            read = self._found.pop(path, None)
        if read is None or read.part_size != part_size or read.identity != seen:
            return None
        log.info("%s was hashed while Ferry started", path)
        return read.hashes

    def stop(self) -> None:
        """Give up what is being read and begin nothing more; returns at once."""
        with self._changed:
            self._no_more = True
        self._stop.set()

    def close(self) -> None:
        """:meth:`stop`, and wait for the thread to end."""
        self.stop()
        self._thread.join()

    def _run(self) -> None:
        try:
            while (job := self._next()) is not None:
                path, part_size = job
                read = None
                try:
                    read = self._read(path, part_size)
                except Exception:  # whatever it is, the engine reads the file itself
                    log.debug("%s could not be read ahead", path, exc_info=True)
                finally:
                    with self._changed:
                        if read is not None:
                            self._found[path] = read
                        self._reading = None
                        self._changed.notify_all()
        finally:
            self._prepass.close()

    def _next(self) -> tuple[str, int] | None:
        with self._changed:
            if self._no_more or not self._waiting:
                return None
            path, part_size = self._waiting.popleft()
            self._reading = path
            return path, part_size

    def _read(self, path: str, part_size: int) -> _Read | None:
        try:
            before = SourceIdentity.of(os.stat(path))
            hashes = self._prepass.hash_file(path, part_size, stop=self._stop)
            after = SourceIdentity.of(os.stat(path))
        except (OSError, SourceError, ReadStopped):
            return None
        return _Read(before, part_size, hashes) if before == after else None

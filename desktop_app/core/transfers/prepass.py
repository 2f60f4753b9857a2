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
"""

from __future__ import annotations

import concurrent.futures
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from desktop_app.core.model.errors import SourceError
from desktop_app.core.model.sizes import MIB
from desktop_app.core.storage.crc64 import crc64nvme as crc64nvme
from desktop_app.core.storage.crc64 import crc64nvme_base64 as crc64nvme_base64
from desktop_app.core.transfers.limits import ByteBudget

_CHUNK = 8 * MIB
_BUFFERS = 4


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

    def __init__(self, budget: ByteBudget, *, lanes: int = 2) -> None:
        self.budget = budget
        self._lanes = [
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"ferry-md5-{n}")
            for n in range(max(1, lanes))
        ]

    def close(self) -> None:
        for lane in self._lanes:
            lane.shutdown(wait=True, cancel_futures=True)

    def hash_file(self, path: str, part_size: int | None) -> FileHashes:
        """The SHA-256 and (``part_size`` given) the MD5 of every ``part_size`` range.

        A file shorter at the end than its size said is read as it is: the
        caller compares the source identity before and after.
        """
        try:
            with open(path, "rb") as handle:
                if part_size is None:
                    return FileHashes(hashlib.file_digest(handle, "sha256").hexdigest(), ())
                return self._hash_parts(handle.readinto, part_size)
        except OSError as exc:
            raise SourceError(f"{path} cannot be read: {exc.strerror}.") from exc

    def _hash_parts(self, readinto: Callable[[Any], int | None], part_size: int) -> FileHashes:
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

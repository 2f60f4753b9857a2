"""Whether an endpoint verifies CRC64NVME checksums: learnt once, remembered.

Where it does, every write carries the CRC64NVME of its bytes as a plain
header Ferry chose (``x-amz-checksum-crc64nvme``, never botocore's aws-chunked
trailer, which several servers break on): each part's, and on Complete the
whole file's, which the server computes again from what it stored. The
verifying HEAD then reads it back (``x-amz-checksum-mode: ENABLED``) and it
must equal the CRC64NVME the pre-pass took from the very read that gave the
SHA-256: the integrity reached is "server-verified CRC64NVME + SHA-256 of
bytes sent". Elsewhere Ferry's MD5 path stands as it was ("MD5 per part +
SHA-256 of bytes sent").

Promises:

- an endpoint is probed (:meth:`S3Storage.probe_checksums`: a tiny object PUT
  with its checksum, then completed as a one-part CRC64NVME upload, each read
  back; deleted after) once, at the first write that needs to know, or by
  ``ferry profile test``; what it showed is kept in ``checksums.json`` in the
  data dir by endpoint, beside ``write-protection.json``;
- a probe that failed on a transient error is tried again after
  ``RETRY_PROBE_SECONDS``; meanwhile writes go without checksums (the MD5 path);
- a bucket under Object Lock is not probed (its probe object could not be
  deleted): the MD5 path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from desktop_app.core.errors import StorageError, StorageErrorKind
from desktop_app.core.storage import S3Storage
from desktop_app.core.transfers.endpoint_memory import EndpointMemory

log = logging.getLogger(__name__)
CHECKSUM_FILE = "checksums.json"
RETRY_PROBE_SECONDS = 60.0
FORMAT = 1
SERVER_VERIFIED = "server-verified CRC64NVME + SHA-256 of bytes sent"
MD5_ONLY = "MD5 per part + SHA-256 of bytes sent"


def integrity(verified: bool) -> str:
    """The integrity level a profile's uploads reach, in words."""
    return SERVER_VERIFIED if verified else MD5_ONLY


class ChecksumMemory:
    """The file of which endpoints verify CRC64NVME; None: in memory only (tests, tools)."""

    def __init__(self, file: Path | None) -> None:
        self.file = file
        self._facts = EndpointMemory[bool](
            file,
            format=FORMAT,
            encode=lambda verified: {"crc64nvme": verified},
            decode=lambda entry: bool(entry["crc64nvme"]),
        )

    def get(self, endpoint: str) -> bool | None:
        return self._facts.get(endpoint)

    def put(self, endpoint: str, verified: bool) -> None:
        self._facts.put(endpoint, verified)


class EndpointChecksums:
    """Whether one endpoint's writes carry CRC64NVMEs for the server to verify."""

    def __init__(
        self,
        storage: S3Storage,
        memory: ChecksumMemory,
        *,
        prefix: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.memory = memory
        self.prefix = prefix
        self.endpoint = storage.endpoint_id
        self._clock = clock
        self._lock = threading.Lock()
        self._known: bool | None = None
        self._next_probe = -float("inf")

    def verified(self) -> bool:
        """Does the server verify and keep CRC64NVME checksums? False while unknown."""
        with self._lock:
            if self._known is not None:
                return self._known
            learnt = self.memory.get(self.endpoint)
            if learnt is not None:
                self._known = learnt
                return learnt
            if self._clock() < self._next_probe:
                return False
            if self.storage.object_lock_enabled():
                self._next_probe = float("inf")
                return False
            try:
                found = self.storage.probe_checksums(self.prefix)
            except StorageError as exc:
                transient = exc.kind is StorageErrorKind.TRANSIENT
                self._next_probe = (
                    self._clock() + RETRY_PROBE_SECONDS if transient else float("inf")
                )
                log.warning(
                    "Could not find out whether %s verifies checksums (%s); MD5s meanwhile",
                    self.storage.endpoint_label,
                    exc.message,
                )
                return False
            self.memory.put(self.endpoint, found)
            log.info("%s: %s", self.storage.endpoint_label, integrity(found))
            self._known = found
            return found

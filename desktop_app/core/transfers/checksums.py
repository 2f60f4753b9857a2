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

- an endpoint is probed (:func:`~desktop_app.core.storage.probes.probe_checksums`: a tiny object PUT
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
import time
from collections.abc import Callable
from pathlib import Path

from desktop_app.core.model.errors import StorageError
from desktop_app.core.storage.probes import probe_checksums
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.transfers.endpoint_memory import EndpointMemory, LearntOnce

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
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.memory = memory
        self.prefix = prefix
        self.endpoint = storage.endpoint_id
        self._learnt = LearntOnce[bool](
            recall=lambda: memory.get(self.endpoint),
            probe=lambda: probe_checksums(storage, prefix),
            keep=self._keep,
            may_probe=lambda: not storage.object_lock_enabled(),
            failed=self._failed,
            retry_after=RETRY_PROBE_SECONDS,
            monotonic=monotonic,
        )

    def verified(self) -> bool:
        """Does the server verify and keep CRC64NVME checksums? False while unknown."""
        return self._learnt.get() is True

    def _keep(self, verified: bool) -> None:
        self.memory.put(self.endpoint, verified)
        log.info("%s: %s", self.storage.endpoint_label, integrity(verified))

    def _failed(self, exc: StorageError) -> None:
        log.warning(
            "Could not find out whether %s verifies checksums (%s); MD5s meanwhile",
            self.storage.endpoint_label,
            exc.message,
        )

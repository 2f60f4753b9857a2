"""What an endpoint does with conditional writes: learnt once, remembered, refreshed.

Ferry's writes carry If-None-Match / If-Match (see ``sender``), but some
servers ignore them silently (rclone serve s3, s3rver), refuse the headers
(Swift: 501), or honour them on PUT and ignore them on a multipart upload's
Complete (Ceph RGW 16.2). Where the server does not honour them on a write,
the sender looks at the key itself just before that write and just after it
(:class:`EndpointGuard`).

Promises:

- an endpoint is probed (:func:`~desktop_app.core.storage.probes.probe_write`: a tiny object under
  the profile's prefix, written again on If-None-Match ``*``, where that is
  refused completed again as a one-part multipart upload on the same
  condition, then deleted) once, at the first write that needs to know, and
  what it showed is kept in ``write-protection.json`` in the data dir by
  endpoint, with when: later runs and other profiles on the same server read
  it, and probe nothing; a file written by a Ferry whose probe asked less
  (``FORMAT``) is read as nothing learnt, so every endpoint is probed again;
- a bucket under Object Lock is not probed (its probe object could not be
  deleted): its writes are guarded;
- until it is known (never probed, or the probe failed) every write is
  guarded: a probe that failed is tried again after ``RETRY_PROBE_SECONDS``
  (a transient failure) or not again in this run (a refusal);
- a write's answer that contradicts it (a 501 to the condition headers of an
  endpoint that honoured them) forgets it: the next write probes again;
- ``ferry profile test`` and Settings' Test connection record what they find.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from desktop_app.core.model.bucket_objects import WriteProtection
from desktop_app.core.model.errors import StorageError
from desktop_app.core.settings.profiles import Profile
from desktop_app.core.storage.client import SANDBOX_SERVER, endpoint_id
from desktop_app.core.storage.probes import probe_write
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.transfers.checksums import CHECKSUM_FILE, ChecksumMemory, EndpointChecksums
from desktop_app.core.transfers.endpoint_memory import EndpointMemory, LearntOnce

log = logging.getLogger(__name__)
PROTECTION_FILE = "write-protection.json"
RETRY_PROBE_SECONDS = 60.0
# 2: the probe tries a multipart Complete too. A file without it (format 1)
# said "honoured" of Ceph, whose Complete ignores the condition: not trusted.
FORMAT = 2


@dataclass(frozen=True)
class LearntProtection:
    protection: WriteProtection
    learnt_at: datetime

    def describe(self) -> str:
        return f"{self.protection.description} (found {self.learnt_at.astimezone():%Y-%m-%d %H:%M})"


def endpoint_key(profile: Profile) -> str:
    """The endpoint a profile writes to, as the protection file names it (the storage's
    ``endpoint_id``: one server, whatever port the sandbox has today)."""
    return SANDBOX_SERVER if profile.sandbox else endpoint_id(profile.endpoint_url)


class ProtectionMemory:
    """The file of what each endpoint showed; None: kept in memory only (tests, tools)."""

    def __init__(self, file: Path | None) -> None:
        self.file = file
        self._facts = EndpointMemory[LearntProtection](
            file, format=FORMAT, encode=_entry, decode=_learnt
        )

    def get(self, endpoint: str) -> LearntProtection | None:
        return self._facts.get(endpoint)

    def put(self, endpoint: str, protection: WriteProtection) -> LearntProtection:
        learnt = LearntProtection(protection, datetime.now(UTC))
        self._facts.put(endpoint, learnt)
        return learnt

    def forget(self, endpoint: str) -> None:
        self._facts.forget(endpoint)


def _entry(learnt: LearntProtection) -> dict[str, str]:
    return {"protection": learnt.protection.value, "learnt_at": learnt.learnt_at.isoformat()}


def _learnt(entry: dict[str, Any]) -> LearntProtection:
    return LearntProtection(
        WriteProtection(entry["protection"]), datetime.fromisoformat(entry["learnt_at"])
    )


class EndpointGuard:
    """Whether one endpoint's writes need a look before and after; thread-safe."""

    def __init__(
        self,
        storage: S3Storage,
        memory: ProtectionMemory,
        *,
        prefix: str = "",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.memory = memory
        self.prefix = prefix
        self.endpoint = storage.endpoint_id
        self._learnt = LearntOnce[WriteProtection](
            recall=self._recall,
            probe=lambda: probe_write(storage, prefix),
            keep=self._keep,
            may_probe=self._may_probe,
            failed=self._failed,
            retry_after=RETRY_PROBE_SECONDS,
            monotonic=monotonic,
        )
        storage.on_conditions_refused = self.contradicted
        # Whether the endpoint verifies CRC64NVMEs, kept beside what it does with conditions.
        checksum_file = None if memory.file is None else memory.file.with_name(CHECKSUM_FILE)
        self.checksums = EndpointChecksums(
            storage, ChecksumMemory(checksum_file), prefix=prefix, monotonic=monotonic
        )

    def honoured(self, *, multipart: bool = False) -> bool:
        """Does the server refuse a write (a multipart upload's Complete with
        ``multipart``) over an object the condition does not name? False while
        unknown: the writes meanwhile are guarded."""
        found = self.protection()
        return found is not None and found.honoured(multipart=multipart)

    def protection(self) -> WriteProtection | None:
        """What the endpoint does, learnt once (None: not known yet; the probe failed)."""
        return self._learnt.get()

    def contradicted(self) -> None:
        """A write's answer says otherwise than what was learnt: probe again next time."""
        known = self._learnt.forget()
        if known is None:
            return
        log.warning(
            "%s no longer answers as it did when Ferry looked (%s); it is probed again",
            self.storage.endpoint_label,
            known.value,
        )
        self.memory.forget(self.endpoint)

    def _recall(self) -> WriteProtection | None:
        learnt = self.memory.get(self.endpoint)
        return None if learnt is None else learnt.protection

    def _keep(self, found: WriteProtection) -> None:
        self.memory.put(self.endpoint, found)
        log.info("%s: %s", self.storage.endpoint_label, found.description)

    def _may_probe(self) -> bool:
        if not self.storage.object_lock_enabled():
            return True
        # A probe object there could not be deleted for the retention period:
        # none is written; every write is looked at instead, in this run.
        log.info(
            "%s locks what is written (Object Lock): Ferry looks at each key "
            "before and after writing it instead of probing",
            self.storage.bucket,
        )
        return False

    def _failed(self, exc: StorageError) -> None:
        log.warning(
            "Could not find out whether %s refuses writes over other programs' objects "
            "(%s); Ferry looks at each key just before and after writing it meanwhile",
            self.storage.endpoint_label,
            exc.message,
        )

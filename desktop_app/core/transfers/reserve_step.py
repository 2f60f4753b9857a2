"""An attempt's first step: the file hashed and its key reserved in the catalog.

The SHA-256 is known and the catalog intent row written before any byte is
sent. Promises: a duplicate of live content is recognised here and nothing
is sent, but only while the object its row names is in the bucket with its
bytes (gone: the row is marked missing and the bytes are sent; other bytes
there: a conflict, nothing overwritten); a file that changed while it was
read is a :class:`SourceChangedError`; what the hash found is committed
together with the reservation's outcome, so a crash in between hashes again
and finds its own intent; a key held by other content gets the transfer's
policy (fail, or the next free name).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from desktop_app.core.catalog.records import (
    FileRecord,
    Reservation,
    ReservationOutcome,
    UploadIntent,
)
from desktop_app.core.catalog.service import CatalogService
from desktop_app.core.journal.facts import UNCHANGED, NewAttempt, TransferFacts
from desktop_app.core.journal.store import Journal
from desktop_app.core.model.errors import KeyConflictError, SourceChangedError
from desktop_app.core.model.failures import suffixed_name
from desktop_app.core.model.sizes import choose_part_size
from desktop_app.core.model.states import TransferState
from desktop_app.core.model.transfer_records import (
    KeyConflictPolicy,
    SourceIdentity,
    TransferRecord,
)
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.transfers.compensation import object_at_key
from desktop_app.core.transfers.control import TransferControl, Transition
from desktop_app.core.transfers.options import EngineOptions
from desktop_app.core.transfers.part_plan import digests_of, part_plan
from desktop_app.core.transfers.prepass import HashesAhead, PrePass
from desktop_app.core.transfers.resume import abandon_upload
from desktop_app.core.transfers.source_reads import current_identity

log = logging.getLogger(__name__)


def suffixed_key(key: str, number: int) -> str:
    """'dir/name.ext' -> 'dir/name (2).ext': a new version beside the old one."""
    return suffixed_name(key, number)


@dataclasses.dataclass(frozen=True)
class HashAndReserve:
    """Runs the first step of one profile's transfers; thread-safe."""

    journal: Journal
    storage: S3Storage
    catalog: CatalogService
    prepass: PrePass
    ahead: HashesAhead | None  # what a command's start-up hashed already
    move: Transition
    now: Callable[[], datetime]
    options: Callable[[], EngineOptions]  # read at each step: a test may change them

    def run(
        self, record: TransferRecord, attempt: NewAttempt, control: TransferControl
    ) -> TransferRecord:
        """Hash and reserve: the transfer duplicate, or uploading under its key."""
        if record.reservation_token is None:  # queued before tokens existed
            record = self.journal.update(
                record.id, TransferFacts(reservation_token=uuid.uuid4().hex)
            )
        after, sha256, hashed = self._hash(record, control)
        size = after.size
        # An object to replace named on a transfer that holds no reservation is a
        # person's choice (a conflict resolved with Replace: the object they saw);
        # one a reservation gave is released with it (see compensation).
        chosen = record.replaces_etag if record.catalog_file_id is None else None
        if record.catalog_file_id is not None and record.sha256 not in (None, sha256):
            # The file changed while Ferry was not running: the old intent goes.
            self.catalog.release(
                record.catalog_file_id,
                reason="source changed before upload",
                token=record.reservation_token,
                at_key=object_at_key(self.storage, record),
            )
        if record.upload_id is not None and not record.identity.matches(after):
            abandon_upload(self.journal, self.storage, record)
        # What the hash found is committed together with the reservation's
        # outcome: a crash in between hashes again and finds its own intent.
        reservation, key = self._reserve(record, size, sha256)
        if reservation.outcome is ReservationOutcome.DUPLICATE and not self._still_stored(
            reservation.record
        ):
            # The row that made it a duplicate is marked missing now: reserving
            # again takes its key over (or finds no source) and sends the bytes.
            reservation, key = self._reserve(record, size, sha256)
        hashed = dataclasses.replace(hashed, key=key)
        if reservation.outcome is ReservationOutcome.DUPLICATE:
            log.info("%s is already stored as %s", record.source_path, reservation.record.key)
            return self.move(
                record.id,
                TransferState.DUPLICATE,
                attempt=dataclasses.replace(attempt, ended_at=self.now()),
                facts=dataclasses.replace(hashed, duplicate_of=reservation.record.key),
            )
        if reservation.outcome is not ReservationOutcome.RESUMED:
            control.reservation_confirmed()  # a row written just now, alive on its clock
        return self._uploading(record, reservation, hashed, chosen)

    def _hash(
        self, record: TransferRecord, control: TransferControl
    ) -> tuple[SourceIdentity, str, TransferFacts]:
        """Read the file once for its SHA-256 (and, sent in parts, each part's digests,
        saved in the journal): the file's identity, its SHA-256 and the facts to record."""
        threshold = self.options().single_put_threshold
        if record.size >= threshold:
            # Hashing a small file takes milliseconds: "checking" would only
            # cost a commit; a large one shows it while it reads.
            self.move(record.id, TransferState.HASHING)
        before = current_identity(record)
        part_size = choose_part_size(before.size, self.options().part_size)
        # A file sent in parts gets its part MD5s in the same read: the sending
        # pass sends them as Content-MD5 instead of hashing again.
        multipart = before.size >= threshold
        planned = part_size if multipart else None
        hashes = self.ahead.take(record.source_path, planned, before) if self.ahead else None
        if hashes is None:
            control.check()  # an interrupt that gave up the read ahead stops here
            hashes = self.prepass.hash_file(record.source_path, planned)
        after = current_identity(record)
        if before != after:
            raise SourceChangedError(
                f"{record.source_path} changed while Ferry was reading it. Retry once the "
                "program writing it has finished."
            )
        count = len(part_plan(after.size, part_size))
        if multipart:
            self.journal.save_part_digests(record.id, digests_of(hashes, part_size))
        facts = TransferFacts(
            sha256=hashes.sha256, identity=after, part_size=part_size, part_count=count
        )
        return after, hashes.sha256, facts

    def _uploading(
        self,
        record: TransferRecord,
        reservation: Reservation,
        hashed: TransferFacts,
        chosen: str | None,
    ) -> TransferRecord:
        source = reservation.source
        if source is not None:
            log.info("%s is stored already as %s: copied on the server", record.key, source.key)
        return self.move(
            record.id,
            TransferState.UPLOADING,
            facts=dataclasses.replace(
                hashed,
                catalog_file_id=reservation.record.id,
                copy_source_key=source.key if source is not None else None,
                copy_source_etag=source.etag if source is not None else None,
                # Resumed: what the first reservation said stays. A person's
                # choice wins over Ferry's own old object the catalog names.
                replaces_etag=UNCHANGED
                if reservation.outcome is ReservationOutcome.RESUMED
                else chosen or reservation.replaced_etag,
            ),
        )

    def _still_stored(self, stored: FileRecord) -> bool:
        """Whether the object a duplicate's row names is in the bucket with its bytes.

        The catalog alone is not proof: the server may be another than the
        row's (an endpoint that is down answers nothing, and that fails this
        attempt as unreachable instead of calling the file stored), or the
        object may have been deleted behind Ferry's back. Gone: the row is
        marked missing (in a repair transaction that looks again) and False.
        Another object there now: a conflict, nothing is overwritten.
        """
        found = self.storage.head_object(stored.key)
        if found is not None:
            if found.size == stored.size and stored.etag in (None, found.etag):
                return True
            raise KeyConflictError(
                f"The catalog says {stored.key!r} holds this content, but the object there now "
                f"has other bytes (size {found.size}, ETag {found.etag}). Nothing was uploaded; "
                "`ferry check` shows the difference and its repairs."
            )
        with self.catalog.repairing(stored.bucket, stored.key) as repair:
            live = repair.live
            if (
                live is not None
                and live.id == stored.id
                and self.storage.head_object(stored.key) is None
            ):
                log.warning("%s is in the catalog, not in the bucket: marked missing", stored.key)
                repair.mark_missing(
                    live.id, reason="object not found while the same content was uploaded"
                )
        return False

    def _reserve(self, record: TransferRecord, size: int, sha256: str) -> tuple[Reservation, str]:
        """Reserve the key, applying the transfer's policy when other content holds it."""
        key = record.key
        for attempt in range(1, 1000):
            intent = UploadIntent(
                bucket=record.bucket,
                key=key,
                original_name=Path(record.source_path).name,
                size=size,
                sha256=sha256,
                content_type=record.content_type,
                token=record.reservation_token,
                endpoint=self.storage.endpoint_id,
            )
            policy = record.on_conflict
            # Our own old row steps aside for the new one, and is deleted (and
            # announced) only when the new one is active; a cancel gives it back.
            overwrite = policy is KeyConflictPolicy.OVERWRITE and key == record.key
            try:
                return self.catalog.reserve(
                    intent, self.options().duplicates, overwrite=overwrite
                ), key
            except KeyConflictError:
                if policy is KeyConflictPolicy.FAIL:
                    raise
                key = suffixed_key(record.key, attempt + 1)
        raise KeyConflictError(f"No free name was found for {record.key!r}.")

"""Sending a file above a part's size by the multipart protocol: create, parts, complete.

Each step is in the journal before the next depends on it:

- the upload id and the part plan are committed before the first part;
- a part is confirmed only after the server answered with its ETag, and that
  ETag must equal the part's MD5 (Content-MD5 is sent, so the server checks too);
- the source identity is checked before each part and before completing; a
  change raises SourceChangedError;
- proof of bytes (invariant 8): the pre-pass (``prepass``) read the file once
  for its SHA-256 and each part's MD5 from the same buffers; every part is
  sent with that MD5 as Content-MD5, so the server accepts a part only if the
  bytes it received are the bytes the SHA-256 was taken over (a refused part
  whose bytes on disk differ now is a changed source, not a network fault);
- where the endpoint verifies checksums (:mod:`.checksums`), each part also
  carries the pre-pass CRC64NVME of its range, the upload is created for a
  CRC64NVME full-object checksum and its Complete carries the whole file's
  (the server refuses it unless the bytes it joined have it).

What an earlier attempt's upload is worth is :mod:`.resume`'s business.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import hashlib
import threading
from collections.abc import Callable

from desktop_app.core.journal.facts import TransferFacts
from desktop_app.core.journal.parts import PartDigests, PartRecord
from desktop_app.core.journal.store import Journal
from desktop_app.core.model.bucket_objects import ObjectInfo, WriteCondition
from desktop_app.core.model.errors import SourceError, StorageError, StorageErrorKind
from desktop_app.core.model.states import TransferState
from desktop_app.core.model.transfer_records import TransferRecord
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.storage.wire import multipart_etag
from desktop_app.core.transfers.control import TransferControl, Transition, stopped_while_pacing
from desktop_app.core.transfers.etags import EtagMeaning
from desktop_app.core.transfers.guarded_write import GuardedWriter
from desktop_app.core.transfers.limits import BandwidthLimiter, ByteBudget
from desktop_app.core.transfers.part_plan import digests_of, part_crcs, part_plan, upload_crcs
from desktop_app.core.transfers.prepass import PrePass
from desktop_app.core.transfers.progress import ProgressMeter, paced
from desktop_app.core.transfers.protection import EndpointGuard
from desktop_app.core.transfers.resume import abort_lost_uploads, reconcile_parts
from desktop_app.core.transfers.source_reads import (
    check_source,
    open_source,
    read_into,
    source_changed,
)
from desktop_app.core.transfers.verification import ferry_metadata, written_by


def _first_error(
    futures: list[concurrent.futures.Future[None]], stop: threading.Event
) -> BaseException | None:
    """Wait for every part in flight (none may outlive the attempt); the first failure."""
    first: BaseException | None = None
    for future in concurrent.futures.as_completed(futures):
        error = future.exception()
        if error is not None and first is None:
            first = error
            stop.set()
    return first


def _check_part_unchanged(
    record: TransferRecord, part: PartRecord, body: bytearray, md5: bytes
) -> None:
    """A refused part: did the file change since the pre-pass, or the bytes on the way?"""
    if hashlib.md5(body).digest() != md5:
        raise source_changed(record, f"part {part.number} has other bytes now")


@dataclasses.dataclass(frozen=True)
class MultipartSender:
    """Sends and completes the multipart uploads of transfers; thread-safe."""

    journal: Journal
    storage: S3Storage
    limiter: BandwidthLimiter
    budget: ByteBudget
    part_pool: concurrent.futures.Executor
    prepass: PrePass
    guard: EndpointGuard
    etags: EtagMeaning  # the sender's: what this endpoint's ETags say
    writer: GuardedWriter
    transition: Transition
    meter: Callable[[int, int, int], ProgressMeter]  # (transfer id, total, done) -> meter

    def send(self, record: TransferRecord, control: TransferControl) -> TransferRecord:
        """Every part the server lacks, in an upload created (or resumed) for them; then
        the transfer is completing."""
        digests = self._planned_digests(record)
        if record.upload_id is not None and not reconcile_parts(
            self.journal, self.storage, record, digests
        ):
            record = self.journal.get(record.id)  # the server could not say: start afresh
        if record.upload_id is None:
            record, digests = self._create(record, digests, control)
        assert record.upload_id is not None
        parts = self.journal.parts(record.id)
        progress = self.meter(record.id, record.size, sum(p.size for p in parts if p.done))
        crcs = part_crcs(record, digests)
        self._send_parts(record, parts, digests.md5s, crcs, control, progress)
        progress.publish()  # every part stored already (a resume) publishes nothing else
        return self.transition(record.id, TransferState.COMPLETING)

    def _create(
        self, record: TransferRecord, digests: PartDigests, control: TransferControl
    ) -> tuple[TransferRecord, PartDigests]:
        """A new upload for the transfer, its id and part plan committed."""
        control.check()  # hashing may have been long: a pause or cancel since starts nothing
        check_source(record)
        if record.upload_intent_at is not None:
            abort_lost_uploads(self.storage, record, record.upload_intent_at)
        # Noted before the upload exists: a crash between its creation and
        # the commit of its id is then found again at the next attempt.
        self.journal.update(record.id, TransferFacts(upload_intent_at=self.journal.clock()))
        checksummed = digests.crc64nvme is not None and self.guard.checksums.verified()
        upload_id = self.storage.create_multipart_upload(
            record.key,
            metadata=ferry_metadata(record),
            content_type=record.content_type,
            crc64nvme=checksummed,
        )
        if checksummed:  # its parts and Complete carry the CRC64NVMEs
            digests = dataclasses.replace(
                digests, crc64nvme_upload_id=upload_id, crc64nvme_verified=False
            )
            self.journal.save_part_digests(record.id, digests)
        # Committed before the first part is sent: a crash from here on
        # finds the upload again instead of orphaning it.
        self.journal.plan_parts(record.id, upload_id, part_plan(record.size, record.part_size))
        return self.journal.get(record.id), digests

    def _planned_digests(self, record: TransferRecord) -> PartDigests:
        """Each part's MD5 (and CRC64NVME) from the pre-pass that gave the transfer its
        SHA-256.

        A journal written before the pre-pass kept them (or a plan that
        changed since) has none that fit: the file is read once more, and
        must still have the SHA-256 the duplicate check used.
        """
        digests = self.journal.part_digests(record.id)
        if digests is not None and digests.fits(record):
            return digests
        assert record.sha256 is not None
        check_source(record)
        hashes = self.prepass.hash_file(record.source_path, record.part_size)
        check_source(record)
        if hashes.sha256 != record.sha256:
            raise source_changed(record, "its SHA-256 is another now")
        digests = digests_of(hashes, record.part_size)
        self.journal.save_part_digests(record.id, digests)
        return digests

    def _send_parts(
        self,
        record: TransferRecord,
        parts: list[PartRecord],
        md5s: tuple[bytes, ...],
        crcs: tuple[str, ...] | None,
        control: TransferControl,
        progress: ProgressMeter,
    ) -> None:
        """Send every part the server lacks, each with its pre-pass MD5 as Content-MD5.

        Proof of bytes without hashing again: the server computes the MD5 of
        the bytes it received and refuses them (BadDigest) unless it equals
        the pre-pass MD5 of that range, and the pre-pass SHA-256 was taken
        over those very bytes (see ``prepass``). A part confirmed with
        another MD5 than planned is sent again. The byte budget bounds the
        parts read but not yet sent.
        """
        futures: list[concurrent.futures.Future[None]] = []
        stop = threading.Event()
        check_source(record)  # gone or changed: the person's problem, said as such
        try:
            with open_source(record) as handle:
                for part in parts:
                    control.check()
                    if stop.is_set():
                        break
                    md5 = md5s[part.number - 1]
                    if part.done and part.md5 == md5.hex():
                        continue
                    buffer = self._read_part(record, handle.fileno(), part)
                    crc = None if crcs is None else crcs[part.number - 1]
                    futures.append(
                        self.part_pool.submit(
                            self._send_part,
                            record,
                            part,
                            buffer,
                            (md5, crc),
                            control,
                            progress,
                            stop,
                        )
                    )
        finally:
            error = _first_error(futures, stop)
            self.budget.drop_spares()
        if error is not None:
            raise error

    def _read_part(self, record: TransferRecord, fd: int, part: PartRecord) -> bytearray:
        """The part's bytes, in a buffer of the byte budget (given back by the sender)."""
        buffer = self.budget.take_buffer(part.size)
        try:
            check_source(record)
            if read_into(fd, part.offset, buffer) != part.size:
                raise source_changed(record, "it became shorter")
        except BaseException:
            self.budget.give_back(buffer)
            raise
        return buffer

    def _send_part(
        self,
        record: TransferRecord,
        part: PartRecord,
        body: bytearray,
        digests: tuple[bytes, str | None],
        control: TransferControl,
        progress: ProgressMeter,
        stop: threading.Event,
    ) -> None:
        """Send one part with its MD5 as Content-MD5 and (``digests``' second) its
        CRC64NVME for the server to verify."""
        assert record.upload_id is not None
        md5, crc = digests
        md5_hex = md5.hex()
        request = progress.request(part.size)
        try:
            if stop.is_set():
                return
            control.check()
            control.sent(part.size)
            try:
                with stopped_while_pacing(control):
                    answer = self.storage.upload_part(
                        record.key,
                        record.upload_id,
                        part.number,
                        body,
                        md5_b64=base64.b64encode(md5).decode("ascii"),
                        sent=paced(self.limiter, request, control).sent,
                        crc64nvme=crc,
                    )
                request.keep()
            except StorageError as exc:
                if exc.kind is StorageErrorKind.BAD_DIGEST:
                    _check_part_unchanged(record, part, body, md5)
                raise
            etag = answer.etag
            self.etags.learn(answer.encryption, etag, md5_hex)
            crc_differs = crc is not None and answer.crc64nvme not in (None, crc)
            if crc_differs or self.etags.contradicts(etag, md5_hex, answer.encryption):
                _check_part_unchanged(record, part, body, md5)
                raise StorageError(
                    f"The server stored other bytes than Ferry sent for part {part.number} of "
                    f"{record.key!r}; the part is sent again.",
                    kind=StorageErrorKind.BAD_DIGEST,
                    code="ETagMismatch",
                )
        except BaseException:
            stop.set()
            raise
        finally:
            request.end()
            self.budget.give_back(body)
        # Confirmed only now that the server has answered for it.
        self.journal.confirm_part(record.id, part.number, md5_hex, etag)

    def _expected_etag(self, record: TransferRecord) -> str:
        parts = self.journal.parts(record.id)
        md5s = [bytes.fromhex(p.md5) for p in parts if p.md5]
        if len(md5s) != len(parts):
            raise SourceError(f"The journal lacks part checksums for {record.key!r}; retry.")
        return multipart_etag(md5s)

    def complete(self, record: TransferRecord, condition: WriteCondition) -> TransferRecord:
        """Join the parts into the object, only while the key holds what ``condition``
        says. An object already there counts as this transfer's only when proven
        so (its size and SHA-256 metadata, and an ETag that does not contradict
        the parts'); otherwise the upload fails as a conflict, or is restarted
        when the server forgot it."""
        assert record.upload_id is not None
        check_source(record)
        parts = self.journal.parts(record.id)
        expected = self._expected_etag(record)
        upload_id = record.upload_id
        full_crc, crcs = upload_crcs(record, self.journal.part_digests(record.id))
        try:
            written = self.writer.write(
                record,
                condition,
                lambda on: self.storage.complete_multipart_upload(
                    record.key,
                    upload_id,
                    [(p.number, p.etag or "") for p in parts],
                    condition=on,
                    crc64nvme=full_crc,
                    part_crc64nvmes=crcs,
                ),
                multipart=True,
            )
            if isinstance(written, ObjectInfo):  # this transfer's own, from an earlier upload
                self.storage.abort_multipart_upload(record.key, upload_id)
            version_id = written.version_id
        except StorageError as exc:
            if exc.kind is not StorageErrorKind.NO_SUCH_UPLOAD:
                raise
            # Completed before a crash, but the journal did not hear of it?
            found = self._own_object(record, expected)
            if found is None:
                raise
            version_id = found.version_id
        return self.transition(
            record.id,
            TransferState.VERIFYING,
            facts=TransferFacts(etag=expected, version_id=version_id),
        )

    def _own_object(self, record: TransferRecord, expected: str) -> ObjectInfo | None:
        """The object at the key, when proven this transfer's (size, SHA-256 metadata,
        and an ETag that does not contradict ``expected``, the parts'); else None."""
        found = self.storage.head_object(record.key)
        if written_by(found, record) and not self.etags.contradicts(
            found.etag, expected, found.encryption
        ):
            return found
        return None

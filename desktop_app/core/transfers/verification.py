"""Proving that the object in the bucket is the one Ferry sent, before it is registered.

The object is verified with HEAD (size, ETag in the server's convention,
SHA-256 metadata read case-insensitively) before the transfer may register
it in the catalog; where the upload carried CRC64NVMEs, the server's
full-object checksum is read back and must be the pre-pass one, taken in the
read that gave the SHA-256. Promises: an object that fails is abandoned and
sent again once; a second verification failure stops resending and asks a
person to look (recognised in the attempt history by its cause,
``ErrorCause.VERIFICATION``, never by its title).
"""

from __future__ import annotations

import dataclasses
from typing import NoReturn, TypeGuard

from desktop_app.core.journal.facts import TransferFacts
from desktop_app.core.journal.store import Journal
from desktop_app.core.model.bucket_objects import SHA256_METADATA, ObjectInfo, WriteAnswer
from desktop_app.core.model.errors import ErrorCause, StorageError, StorageErrorKind
from desktop_app.core.model.states import TransferState
from desktop_app.core.model.transfer_records import TransferRecord
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.storage.wire import CRC64NVME
from desktop_app.core.transfers.control import Transition
from desktop_app.core.transfers.etags import EtagMeaning
from desktop_app.core.transfers.part_plan import upload_crcs
from desktop_app.core.transfers.resume import abandon_upload

# The title of a failed verification (wording only: the attempt history
# recognises one by its cause, ErrorCause.VERIFICATION).
VERIFICATION_FAILED = "Verification failed"


def ferry_metadata(record: TransferRecord) -> dict[str, str]:
    """The metadata every object Ferry writes carries: the SHA-256 of its bytes."""
    assert record.sha256 is not None
    return {SHA256_METADATA: record.sha256}


def written_by(found: ObjectInfo | None, record: TransferRecord) -> TypeGuard[ObjectInfo]:
    """Is ``found`` the object this transfer writes: its size and the SHA-256 metadata
    Ferry wrote with it? (What another program put there carries neither.)"""
    return found is not None and found.size == record.size and found.sha256 == record.sha256


def verification_failed_before(journal: Journal, transfer_id: int) -> bool:
    history = journal.attempts_of([transfer_id])[transfer_id]
    return any(a.error is not None and a.error.cause is ErrorCause.VERIFICATION for a in history)


def _problem(
    found: ObjectInfo | None, record: TransferRecord, etags: EtagMeaning, crc: str | None
) -> str | None:
    """What makes ``found`` not the object Ferry sent, in words; None: nothing."""
    if found is None:
        return "is not in the bucket after the upload"
    if found.size != record.size:
        return f"has {found.size} bytes in the bucket, the file has {record.size}"
    if found.sha256 is None:
        return "carries no SHA-256 in the bucket, though Ferry wrote one with it"
    if found.sha256 != record.sha256:
        return "carries another SHA-256 in the bucket than the file"
    if record.etag is not None and etags.contradicts(found.etag, record.etag, found.encryption):
        return f"has ETag {found.etag} in the bucket, Ferry computed {record.etag}"
    if crc is not None and found.crc64nvme != crc:
        return (
            f"has {CRC64NVME} {found.crc64nvme} in the bucket, Ferry computed {crc} "
            "from the bytes it read"
            if found.crc64nvme is not None
            else f"has no {CRC64NVME} in the bucket, though the server verified Ferry's"
        )
    return None


class ObjectVerifier:
    """Checks a written object against what was sent; thread-safe."""

    def __init__(
        self,
        *,
        journal: Journal,
        storage: S3Storage,
        etags: EtagMeaning,
        transition: Transition,
    ) -> None:
        self.journal = journal
        self.storage = storage
        self.etags = etags  # the sender's: what this endpoint's ETags say
        self._transition = transition

    def verify(self, record: TransferRecord) -> TransferRecord:
        """HEAD the written object; proven, the transfer goes on to registering."""
        crc, _parts = upload_crcs(record, self.journal.part_digests(record.id))
        found = self.check(record, crc=crc)
        digests = self.journal.part_digests(record.id)
        if crc is not None and digests is not None:  # for the registration, crash or not
            self.journal.save_part_digests(
                record.id, dataclasses.replace(digests, crc64nvme_verified=True)
            )
        # The write's own answer named its version; a transfer without one (its
        # answer lost, or begun before versions were recorded) takes the HEAD's.
        version = record.version_id if record.version_id is not None else found.version_id
        return self._transition(
            record.id,
            TransferState.REGISTERING,
            facts=TransferFacts(etag=found.etag, version_id=version),
        )

    def proven_checksum(self, record: TransferRecord) -> str | None:
        """The CRC64NVME (base64) the verification of this transfer's multipart object
        read back equal to Ferry's (kept in the journal, so a registration resumed
        after a crash has it too); None where none was (the MD5 path)."""
        digests = self.journal.part_digests(record.id)
        if digests is None or not digests.crc64nvme_verified or not digests.fits(record):
            return None
        if record.upload_id is None or digests.crc64nvme_upload_id != record.upload_id:
            return None
        return digests.crc64nvme

    def check(self, record: TransferRecord, *, crc: str | None = None) -> ObjectInfo:
        """HEAD the object: the size, SHA-256 and ETag Ferry sent (and with ``crc`` the
        server's full-object CRC64NVME, read back), or a StorageError."""
        found = self.storage.head_object(record.key, checksums=crc is not None)
        problem = _problem(found, record, self.etags, crc)
        if problem is not None:
            self.failed(record, problem)
        assert found is not None
        return found

    def crc_proven(self, record: TransferRecord, answer: WriteAnswer, crc: str) -> WriteAnswer:
        """A PUT that carried the CRC64NVME of its bytes: the server verified it (or
        refused the PUT); the checksum it answers must be that one, or the object
        is sent again. Where the answer has none, or its ETag is not the MD5 of
        the bytes (``record.etag``), a HEAD checks size, SHA-256 and checksum, as
        on the MD5 path."""
        if answer.crc64nvme is None or answer.etag != record.etag:
            found = self.check(record, crc=crc)
            return WriteAnswer(
                found.etag, found.encryption, answer.version_id or found.version_id, crc
            )
        if answer.crc64nvme != crc:
            self.failed(
                record,
                f"has CRC64NVME {answer.crc64nvme} in the bucket, Ferry computed {crc} from "
                "the bytes it sent",
            )
        return answer

    def failed(self, record: TransferRecord, problem: str) -> NoReturn:
        """The object is not what Ferry sent: sent again once, then a person looks."""
        abandon_upload(self.journal, self.storage, record)
        if verification_failed_before(self.journal, record.id):
            # Sent whole twice and still not what was sent: a person must look.
            raise StorageError(
                f"{record.key!r} {problem}, for the second time; Ferry stops sending it. "
                "Another program may be writing the same key: check the bucket, then Retry.",
                kind=StorageErrorKind.PERMANENT,
                code="VerificationFailed",
                title=VERIFICATION_FAILED,
                cause=ErrorCause.VERIFICATION,
            )
        raise StorageError(
            f"{record.key!r} {problem}; it is uploaded again.",
            kind=StorageErrorKind.TRANSIENT,
            code="VerificationFailed",
            title=VERIFICATION_FAILED,
            cause=ErrorCause.VERIFICATION,
        )

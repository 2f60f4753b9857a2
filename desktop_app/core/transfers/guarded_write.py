"""Writing an object only over what the transfer expects at its key.

Every write Ferry makes (PUT, server-side copy, a multipart upload's
Complete) carries a :class:`WriteCondition` (If-None-Match / If-Match).
Promises: another program's object at the key is never written over nor
deleted; the object there counts as this transfer's own only when proven so
(its size and SHA-256 metadata); where the endpoint does not honour the
condition (:mod:`.protection`), the key is looked at just before and just
after the write, and what the person is told says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from desktop_app.core.model.bucket_objects import ObjectInfo, WriteCondition, WriteProtection
from desktop_app.core.model.errors import ErrorCause, StorageError, StorageErrorKind
from desktop_app.core.model.transfer_records import TransferRecord
from desktop_app.core.storage.s3 import S3Storage
from desktop_app.core.transfers.protection import EndpointGuard
from desktop_app.core.transfers.verification import written_by

_Written = TypeVar("_Written")  # what a write request answers


class GuardedWriter:
    """Runs one write request under its condition (and the looks it needs); thread-safe."""

    def __init__(self, storage: S3Storage, guard: EndpointGuard) -> None:
        self.storage = storage
        self.guard = guard

    def write(
        self,
        record: TransferRecord,
        condition: WriteCondition,
        write: Callable[[WriteCondition], _Written],
        *,
        multipart: bool = False,
    ) -> _Written | ObjectInfo:
        """Write the object only while the key holds what ``condition`` says.

        If it holds something else: the object there when it is this
        transfer's own (an earlier write whose answer was lost: its size and
        SHA-256 metadata); the write again, over exactly that object, when it
        holds these very bytes without Ferry's metadata (read to prove it:
        nothing is lost); else a conflict, and nothing is written.

        Where the endpoint does not honour the condition (it ignores it, or
        refuses the headers, or that is not known yet: :mod:`.protection`; on
        a multipart upload's Complete, ``multipart``, Ceph ignores it though
        it honours it on PUT), the key is looked at just before the write
        (another's object there: the same as a refusal) and just after it
        (not the object this transfer wrote: a conflict, and the object there
        is never deleted).
        """
        guarded = not self.guard.honoured(multipart=multipart)
        if guarded:
            found = self.storage.head_object(record.key)
            if not condition.met_by(found):
                return self._not_as_expected(record, condition, found, write, guarded=True)
        try:
            written = write(condition)
        except StorageError as exc:
            if exc.kind is not StorageErrorKind.PRECONDITION_FAILED:
                raise
            found = self.storage.head_object(record.key)
            if condition.met_by(found):
                raise  # the key is as expected: another condition failed (a copy's source)
            # Refused: the server honours the condition after all, no look needed;
            # learnt otherwise, that is forgotten (a 412 of Ferry's own look, where the
            # headers are refused, says nothing of the server).
            if self.guard.protection() is WriteProtection.CONDITIONS_IGNORED:
                self.guard.contradicted()
            return self._not_as_expected(record, condition, found, write, guarded=False)
        if guarded:
            self._look_after(record, condition)
        return written

    def _not_as_expected(
        self,
        record: TransferRecord,
        condition: WriteCondition,
        found: ObjectInfo | None,
        write: Callable[[WriteCondition], _Written],
        guarded: bool,
    ) -> _Written | ObjectInfo:
        """The key holds ``found``, not what ``condition`` says: this transfer's own
        object, or these very bytes written over on If-Match, or a conflict."""
        if written_by(found, record):
            return found
        if (
            found is not None
            and found.size == record.size
            and found.sha256 is None
            and self._holds_these_bytes(record, found)
        ):
            try:
                written = write(WriteCondition(found.etag))
            except StorageError as exc:
                if exc.kind is not StorageErrorKind.PRECONDITION_FAILED:
                    raise
            else:
                if guarded:
                    self._look_after(record, condition)
                return written
        raise self._written_by_another(record, condition, guarded=guarded)

    def _look_after(self, record: TransferRecord, condition: WriteCondition) -> None:
        """Just after a write the server may have let over another's object: is the
        object at the key the one this transfer wrote? If not, a conflict (never
        deleted: it is another program's)."""
        if not written_by(self.storage.head_object(record.key), record):
            raise self._written_by_another(record, condition, after=True)

    def _holds_these_bytes(self, record: TransferRecord, found: ObjectInfo) -> bool:
        try:
            sha256, size = self.storage.read_sha256(record.key, if_match=found.etag)
        except StorageError as exc:
            if exc.kind in (StorageErrorKind.PRECONDITION_FAILED, StorageErrorKind.NOT_FOUND):
                return False
            raise
        return (sha256, size) == (record.sha256, record.size)

    def _written_by_another(
        self,
        record: TransferRecord,
        condition: WriteCondition,
        *,
        after: bool = False,
        guarded: bool = False,
    ) -> StorageError:
        # Where the server does not refuse such writes, what protected the object is said.
        unprotected = (
            "this server does not refuse writes over other programs' objects, so Ferry "
            f"looked at the key {'right after' if after else 'just before'} writing"
        )
        when, outcome = (
            (f"just as Ferry wrote it ({unprotected})", "did not register its own")
            if after
            else (
                f"while Ferry was uploading {record.source_path}"
                + (f" ({unprotected})" if guarded else ""),
                "wrote nothing over it",
            )
        )
        return StorageError(
            f"Another program wrote {record.key!r} in bucket {self.storage.bucket!r} {when} "
            f"(Ferry expected {condition.describe()} there). Ferry left that object as it is "
            f"and {outcome}. Upload the file under the next free name, replace the other "
            "program's object, or skip the file.",
            kind=StorageErrorKind.PERMANENT,
            code="KeyWrittenMeanwhile",
            title="Written by another program",
            cause=ErrorCause.FOREIGN_OBJECT,
        )

"""A person's delete of a stored file: the row first, then its object (invariant 2).

:class:`Deletes` marks the live row deleted and commits that, with its audit
entry and file.deleted event, before the object is touched: a failure after
the row went is logged, kept on the row and in the audit log, and left to the
consistency check; it is never lost. A file still being uploaded is refused
(its upload would store the bytes again, with no row).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from desktop_app.core.catalog.records import DeleteOutcome, FileRecord
from desktop_app.core.catalog.schema import AuditAction, FileStatus, OutboxEventType
from desktop_app.core.catalog.steps import ChangeSteps
from desktop_app.core.catalog.transactions import CatalogTransactions
from desktop_app.core.model.errors import CatalogError, ErrorCause, NotInCatalogError

log = logging.getLogger(__name__)


class Deletes:
    """Delete a live row and then its object, each failure recorded."""

    def __init__(self, transactions: CatalogTransactions, steps: ChangeSteps) -> None:
        self._transactions = transactions
        self._steps = steps

    def mark_deleted(self, bucket: str, key: str) -> FileRecord:
        steps = self._steps

        def work(session: Session) -> FileRecord:
            row = steps.live_by_key(session, bucket, key)
            if row is None:
                raise NotInCatalogError(
                    f"{key!r} is not a live file in bucket {bucket!r} "
                    "(never uploaded, already deleted, or not yours). See `ferry ls`."
                )
            if row.status == FileStatus.PENDING.value:
                # Its upload would go on and store the bytes again, with no row.
                raise CatalogError(
                    f"{key!r} is being uploaded right now and is not stored yet: cancel that "
                    "upload (`ferry cancel ID`, or Cancel in the window) instead of deleting it.",
                    title="Upload in progress",
                    cause=ErrorCause.OTHER,
                )
            row.status = FileStatus.DELETED.value
            row.deleted_at = steps.now(session)
            row.deleted_by = steps.owner
            session.flush()
            steps.audit(session, AuditAction.DELETE, row)
            steps.announce(session, OutboxEventType.FILE_DELETED, row)
            return FileRecord.from_row(row)

        return self._transactions.run(f"delete {key!r}", work)

    def record_error(self, file_id: int, error: str, action: AuditAction) -> None:
        def work(session: Session) -> None:
            row = self._steps.require(session, file_id)
            row.last_error = error
            self._steps.audit(session, action, row, {"error": error})

        self._transactions.run(f"record an error on row {file_id}", work)

    def delete(
        self, bucket: str, key: str, delete_object: Callable[[FileRecord], str | None]
    ) -> DeleteOutcome:
        """Mark the row deleted (committed), then delete its object (given the row;
        it may answer a note on what became of the bytes).

        A failure of the object delete is logged with key and reason, kept on
        the row and in the audit log, and left to the consistency check.
        """
        record = self.mark_deleted(bucket, key)
        try:
            note = delete_object(record)
        except Exception as exc:  # noqa: BLE001 - any failure after the row went: recorded, never lost
            reason = str(exc)
            log.error("Deleting object %r failed after its row was deleted: %s", key, reason)
            with contextlib.suppress(CatalogError):
                self.record_error(record.id, reason, AuditAction.DELETE_OBJECT_FAILED)
            return DeleteOutcome(record, object_deleted=False, error=reason)
        return DeleteOutcome(record, object_deleted=True, note=note)

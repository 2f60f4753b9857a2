"""A repair's changes to one key, made inside the catalog's key transaction.

:func:`repairing` (behind :meth:`CatalogService.repairing`) opens that
transaction, locks the key and reads its rows; the :class:`KeyRepair` it
hands out makes each change through :class:`~desktop_app.core.catalog.steps.ChangeSteps`,
writing its audit entry and outbox event in that same transaction, so a
repair and its record exist together or not at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from desktop_app.core.catalog.database import translate_db_error
from desktop_app.core.catalog.overwrite import give_back, retire_replaced
from desktop_app.core.catalog.records import FileRecord, ObjectAtKey, UploadIntent
from desktop_app.core.catalog.schema import AuditAction, FileRow, FileStatus, OutboxEventType
from desktop_app.core.catalog.steps import ChangeSteps
from desktop_app.core.catalog.transactions import CatalogTransactions
from desktop_app.core.model.errors import KeyConflictError
from desktop_app.core.model.object_keys import validate_key


class KeyRepair:
    """The changes a repair may make to one key, inside :func:`repairing`.

    ``rows`` are the key's rows as this transaction read and locked them;
    ``others_deleted_last`` whether, with no live row, the key's newest row is
    someone else's deletion (its object may be theirs, left by a refused delete);
    ``others_live`` says whether someone else's live row holds the key, even
    one this login may not see. Each change writes its audit entry and its
    outbox event in the same transaction.
    """

    def __init__(
        self,
        steps: ChangeSteps,
        session: Session,
        bucket: str,
        key: str,
        rows: list[FileRow],
        others_live: bool,
        others_deleted_last: bool = False,
    ) -> None:
        self._steps = steps
        self._session = session
        self.bucket = bucket
        self.key = key
        self._rows = {row.id: row for row in rows}
        self.rows = tuple(FileRecord.from_row(row) for row in rows)
        self.others_live = others_live
        self.others_deleted_last = others_deleted_last

    @property
    def live(self) -> FileRecord | None:
        return next((r for r in self.rows if r.live), None)

    def _row(self, file_id: int) -> FileRow:
        return self._rows[file_id]

    def activate(self, file_id: int, *, etag: str, version_id: str | None = None) -> None:
        """A stale pending row whose object verified becomes active (its version
        recorded, where the bucket keeps versions)."""
        row = self._row(file_id)
        if row.replaces_id is not None:
            retire_replaced(self._steps, self._session, row.replaces_id, FileRecord.from_row(row))
            row.replaces_id = None
        row.status = FileStatus.ACTIVE.value
        row.etag = etag
        row.version_id = version_id
        row.uploaded_at = row.uploaded_at or self._steps.now(self._session)
        row.last_error = None
        self._steps.audit(self._session, AuditAction.REPAIR, row, {"repair": "activate"})
        self._steps.announce(self._session, OutboxEventType.FILE_REPAIRED, row)

    def release(self, file_id: int, *, reason: str, at_key: ObjectAtKey) -> None:
        """Remove a stale pending intent.

        An overwrite's intent gives the key back to the row it replaced while
        its object is still there (``at_key``, from the repair's fresh HEAD).
        """
        row = self._row(file_id)
        self._steps.audit(self._session, AuditAction.RELEASE, row, {"reason": reason})
        self._session.delete(row)
        give_back(self._steps, self._session, row, at_key, reason)

    def mark_missing(self, file_id: int, *, reason: str) -> None:
        row = self._row(file_id)
        row.status = FileStatus.MISSING.value
        row.last_error = reason
        self._steps.audit(self._session, AuditAction.MARK_MISSING, row, {"reason": reason})
        self._steps.announce(self._session, OutboxEventType.FILE_REPAIRED, row)

    def adopt(
        self,
        intent: UploadIntent,
        *,
        etag: str,
        owner: str | None,
        details: dict[str, Any],
        version_id: str | None = None,
    ) -> FileRecord:
        """Register the object as an active row, its content proven by reading it."""
        validate_key(intent.key)
        row = self._steps.new_row(
            self._session, intent, FileStatus.ACTIVE, owner=owner or self._steps.owner, etag=etag
        )
        row.version_id = version_id
        self._session.add(row)
        self._steps.audit(self._session, AuditAction.REPAIR, row, {"repair": "adopt", **details})
        self._steps.announce(self._session, OutboxEventType.FILE_REPAIRED, row)
        return FileRecord.from_row(row)

    def record(self, what: str, details: dict[str, Any], file_id: int | None = None) -> None:
        """Audit a repair that changed the bucket, not a row (announced if about a row)."""
        row = self._row(file_id) if file_id is not None else None
        self._steps.audit(
            self._session,
            AuditAction.REPAIR,
            row,
            {"repair": what, **details},
            bucket=self.bucket,
            key=self.key,
        )
        if row is not None:
            self._steps.announce(self._session, OutboxEventType.FILE_REPAIRED, row)


@contextlib.contextmanager
def repairing(
    transactions: CatalogTransactions, steps: ChangeSteps, bucket: str, key: str
) -> Iterator[KeyRepair]:
    """A repair's own transaction on one key: its rows read and locked, then changed.

    Every other change to the key (a reservation, an activation, a delete)
    waits until this transaction ends, so what the repair re-checks inside
    it (rows, and the object the caller HEADs) cannot change before it
    acts. Leaving the block commits; an exception rolls everything back.
    """
    try:
        with transactions.begin() as session:
            steps.lock_key(session, bucket, key)
            rows = session.scalars(
                select(FileRow)
                .where(FileRow.bucket == bucket, FileRow.key == key)
                .order_by(FileRow.id)
                .with_for_update()
            ).all()
            live = [r for r in rows if r.status != FileStatus.DELETED.value]
            # One live row per key: if we see none, one may still be hidden from us.
            others_live = any(r.owner != steps.owner for r in live) or (
                not live and steps.hidden_live_row(session, bucket, key)
            )
            others_deleted_last = not live and steps.others_deleted_last(session, bucket, key)
            yield KeyRepair(
                steps, session, bucket, key, list(rows), others_live, others_deleted_last
            )
    except IntegrityError:
        raise KeyConflictError(
            f"{key!r} cannot be registered: a live row holds that key now."
        ) from None
    except SQLAlchemyError as exc:
        raise translate_db_error(exc, f"repair {key!r}") from exc

"""An overwrite's row hand-over: the old row steps aside, then retires or is given back.

One live row holds a key. An overwrite (a person chose Replace) reserves a new
row for the key, so the old one is marked deleted in that same transaction;
but its object and its announcement wait: the deletion is announced only when
the new row goes active (:func:`retire_replaced`), and a released replacement
gives the key back to the old row (:func:`give_back`) while its bytes are
still there. Used by reservations and by a repair's
:class:`~desktop_app.core.catalog.repair.KeyRepair`; each step runs in its
caller's transaction through :class:`~desktop_app.core.catalog.steps.ChangeSteps`.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from desktop_app.core.catalog.records import FileRecord, ObjectAtKey, UploadIntent
from desktop_app.core.catalog.schema import AuditAction, FileRow, FileStatus, OutboxEventType
from desktop_app.core.catalog.statements import LIVE_AT_KEY, ROW_BY_ID, with_token
from desktop_app.core.catalog.steps import ChangeSteps


def replaceable(owner: str, row: FileRecord, intent: UploadIntent) -> bool:
    """May an overwrite by this intent (of ``owner``) take the key from this live row?

    Our own row of other content, stored (active) or known lost (missing);
    anyone else's row, or an upload in flight, never.
    """
    return (
        row.owner == owner
        and row.sha256 != intent.sha256
        and row.status in (FileStatus.ACTIVE, FileStatus.MISSING)
    )


def step_aside(
    steps: ChangeSteps, connection: Connection, intent: UploadIntent
) -> FileRecord | None:
    """An overwrite's first step: our own row of other content at the key leaves it.

    One live row holds a key, so the old row is marked deleted in the
    reservation's transaction; but an active one is not announced and its
    object is untouched until the new row is active
    (:func:`retire_replaced`), and a released replacement puts it back
    (:func:`give_back`). A missing one (no bytes to give back) is
    deleted and announced at once. Returns the row to be given back.
    """
    values = connection.execute(
        LIVE_AT_KEY, {"bucket": intent.bucket, "key": intent.key}
    ).one_or_none()
    if values is None:
        return None
    row, token = with_token(values)
    if not replaceable(steps.owner, row, intent):
        return None
    stepped = steps.change(
        connection,
        row,
        token=token,
        status=FileStatus.DELETED,
        deleted_at=steps.now(connection),
        deleted_by=steps.owner,
    )
    steps.audit(connection, AuditAction.DELETE, stepped, {"replaced_by_upload_of": intent.sha256})
    if row.status is FileStatus.MISSING:
        steps.announce(connection, OutboxEventType.FILE_DELETED, stepped)
        return None
    return stepped


def retire_replaced(
    steps: ChangeSteps,
    transaction: Session | Connection,
    replaced_id: int,
    replacing: FileRecord,
) -> None:
    """The row an overwrite replaced is gone for good: its deletion is announced now."""
    values = transaction.execute(ROW_BY_ID, {"file_id": replaced_id}).one_or_none()
    if values is None:
        return
    replaced, _token = with_token(values)
    same_key = (replaced.bucket, replaced.key) == (replacing.bucket, replacing.key)
    if replaced.status is FileStatus.DELETED and same_key:
        steps.announce(transaction, OutboxEventType.FILE_DELETED, replaced)


def give_back(
    steps: ChangeSteps, session: Session, released: FileRow, at_key: ObjectAtKey, reason: str
) -> None:
    """A released overwrite: the row it replaced holds the key again, as it was.

    Unless the bytes are gone (``at_key`` proves another object there, or
    none): then that row's deletion stands and is announced.
    """
    replaced_id = released.replaces_id
    if replaced_id is None:
        return
    session.flush()  # the released row first: one live row per key
    old = session.get(FileRow, replaced_id, with_for_update=True)
    if (
        old is None
        or (old.bucket, old.key) != (released.bucket, released.key)
        or old.status != FileStatus.DELETED.value
        or steps.live_by_key(session, old.bucket, old.key) is not None
    ):
        return
    if not at_key.still_holds(old.etag):
        steps.announce(session, OutboxEventType.FILE_DELETED, old)  # its deletion stands
        return
    old.status = FileStatus.ACTIVE.value
    old.deleted_at = None
    old.deleted_by = None
    steps.audit(session, AuditAction.RESTORE, old, {"reason": reason})

"""The upload path's rows: a reservation before any byte is sent, its activation after.

:class:`Reservations` writes the pending intent row an upload reserves
(:meth:`~Reservations.reserve`, deciding duplicates, copies and key
conflicts), makes it active once the object is stored
(:meth:`~Reservations.activate`), keeps it alive while the upload runs
(:meth:`~Reservations.touch`) and removes it when the upload fails or is
cancelled (:meth:`~Reservations.release`). Only the transfer holding a row's
token may change it. Reservations and activations of many uploads share
transactions (a group commit); each writes its audit entry, and an activation
its outbox event, in the same transaction.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from desktop_app.core.catalog.overwrite import give_back, replaceable, retire_replaced, step_aside
from desktop_app.core.catalog.records import (
    NOT_LOOKED,
    RECORD_COLUMNS,
    FileRecord,
    ObjectAtKey,
    Reservation,
    ReservationOutcome,
    UploadIntent,
)
from desktop_app.core.catalog.schema import AuditAction, FileRow, FileStatus, OutboxEventType
from desktop_app.core.catalog.statements import (
    INSERT_PENDING,
    RESERVATION_LOOKUP,
    ROW_FOR_UPDATE,
    UPDATE_ROW,
    no_row,
    with_token,
)
from desktop_app.core.catalog.steps import ChangeSteps
from desktop_app.core.catalog.transactions import CatalogTransactions
from desktop_app.core.db.group_commit import Refusal
from desktop_app.core.model.errors import CatalogError, ErrorCause, FerryError, KeyConflictError
from desktop_app.core.model.object_keys import validate_key
from desktop_app.core.settings.profiles import DuplicatePolicy


def _same_content_in_flight(message: str) -> CatalogError:
    """Transient: the other upload may still fail, or finish and leave a copy to make."""
    return CatalogError(
        message, transient=True, title="Same content in flight", cause=ErrorCause.CONFLICT
    )


def _by_content(
    found: list[FileRecord], intent: UploadIntent, duplicates: DuplicatePolicy
) -> Reservation | FileRecord | None:
    """With the key free: a duplicate of our stored content, the row to copy from, or None."""
    stored = sorted((r for r in found if r.status is FileStatus.ACTIVE), key=lambda r: r.id)
    if stored and duplicates is DuplicatePolicy.SKIP:
        return Reservation(ReservationOutcome.DUPLICATE, stored[0])
    # The copy is conditional on the ETag the source row verified.
    source = next((r for r in stored if r.etag is not None), None)
    if source is not None:
        return source
    sending = next(
        (r for r in found if r.status is FileStatus.PENDING and r.copied_from is None),
        None,
    )
    if sending is not None:
        raise _same_content_in_flight(
            f"The same content is being uploaded right now as {sending.key!r} by "
            "another transfer; Ferry waits for that upload to finish and then "
            f"creates {intent.key!r} as a copy of it, without sending the bytes again."
        )
    return None


class _LostRace(Exception):
    """A unique index refused a reservation's row: decided again after the transaction."""


class Reservations:
    """Reserve, activate, keep alive and release the rows of uploads in flight."""

    def __init__(self, transactions: CatalogTransactions, steps: ChangeSteps) -> None:
        self._transactions = transactions
        self._steps = steps

    def reserve(
        self,
        intent: UploadIntent,
        duplicates: DuplicatePolicy = DuplicatePolicy.COPY,
        *,
        overwrite: bool = False,
    ) -> Reservation:
        """Write the pending intent row for an upload, before any byte is sent.

        The duplicate rule holds within one bucket and one owner:
        - this key already holds this content, ours and active: DUPLICATE
          (stored already, nothing to do);
        - our own pending row (same key, content and token): RESUMED;
        - our own row for this key marked missing, same content: taken over
          (RESERVED), the bytes are sent again;
        - the content active under another key of ours: COPY (a pending row
          to be filled by a server-side copy of ``source``), or DUPLICATE
          when the policy is SKIP;
        - the content being uploaded right now by another transfer (ours):
          a transient CatalogError, since that upload may still fail;
        - a live row holding the key with other content, or another owner's:
          KeyConflictError, naming whose it is where we may see it; with
          ``overwrite``, our own active (or missing) row of other content
          steps aside for the new one instead (see :func:`overwrite.step_aside`).

        The look-up is one statement (one snapshot on PostgreSQL at READ
        COMMITTED); if another client inserts between it and our insert, the
        unique indexes refuse ours and the look-up runs again, now seeing
        the winner, so a race ends in one of the outcomes above.
        """
        validate_key(intent.key)
        try:
            return self._transactions.run_grouped(
                functools.partial(self._insert_intent, intent, duplicates, overwrite),
                label=f"reserve {intent.key!r}",
                order=f"{intent.bucket}/{intent.key}",
            )
        except (IntegrityError, _LostRace):
            # Another client won the race between our look-up and our insert.
            return self._after_lost_race(intent, duplicates, overwrite)

    def _check(
        self,
        intent: UploadIntent,
        duplicates: DuplicatePolicy,
        overwrite: bool,
        connection: Connection,
    ) -> Reservation | FileRecord | None:
        """The outcome decided by what exists, or the row to copy from, or None."""
        found = [
            with_token(values)
            for values in connection.execute(
                RESERVATION_LOOKUP,
                {
                    "bucket": intent.bucket,
                    "owner": self._steps.owner,
                    "sha256": intent.sha256,
                    "endpoint": intent.endpoint,
                    "key": intent.key,
                },
            )
        ]
        holder = next(((r, t) for r, t in found if r.key == intent.key), None)
        if holder is not None:
            if not (overwrite and replaceable(self._steps.owner, holder[0], intent)):
                return self._judge_key_holder(connection, *holder, intent)
            found.remove(holder)  # to be replaced: no source, no duplicate
        return _by_content([r for r, _ in found], intent, duplicates)

    def _insert_intent(
        self,
        intent: UploadIntent,
        duplicates: DuplicatePolicy,
        overwrite: bool,
        connection: Connection,
    ) -> Reservation:
        self._steps.lock_key(connection, intent.bucket, intent.key)
        try:
            found = self._check(intent, duplicates, overwrite, connection)
        except FerryError as verdict:
            # Decided by the look-up, before this request wrote anything: the
            # uploads sharing its transaction go on without it.
            raise Refusal(verdict) from verdict
        if isinstance(found, Reservation):
            return found
        # Only now, with the new row certain: the old one steps aside.
        replaced = step_aside(self._steps, connection, intent) if overwrite else None
        source = found
        record = self._insert_pending(connection, intent, source, replaced, overwrite=overwrite)
        details: dict[str, Any] = {"size": intent.size, "sha256": intent.sha256}
        if source is not None:
            details["copy_of"] = source.key
        if replaced is not None:
            details["replaces"] = replaced.id
        self._steps.audit(connection, AuditAction.RESERVE, record, details)
        # Stepped aside from active (a missing one is not returned): its object stays.
        replaced_etag = replaced.etag if replaced is not None else None
        if source is not None:
            return Reservation(ReservationOutcome.COPY, record, source, replaced_etag)
        return Reservation(ReservationOutcome.RESERVED, record, replaced_etag=replaced_etag)

    def _insert_pending(
        self,
        connection: Connection,
        intent: UploadIntent,
        source: FileRecord | None,
        replaced: FileRecord | None,
        *,
        overwrite: bool,
    ) -> FileRecord:
        """The new pending row, to be filled by a copy of ``source`` (or by the bytes)."""
        values = self._steps.new_row_values(
            intent, FileStatus.PENDING, owner=self._steps.owner, now=self._steps.now(connection)
        )
        values.update(
            token=intent.token,
            alive_at=values["created_at"],
            copied_from=source.key if source is not None else None,
            replaces_id=replaced.id if replaced is not None else None,
        )
        file_id = connection.execute(INSERT_PENDING[self._steps.dialect], values).scalar()
        if file_id is None:
            # Another client's row won since the look-up, or one we may not see.
            # An overwrite may have stepped our old row aside (even a missing one,
            # which it does not return): a write, so then the whole transaction goes.
            lost = _LostRace(intent.key)
            raise lost if overwrite else Refusal(lost)
        values["id"] = file_id
        return FileRecord.from_columns([values.get(name) for name in RECORD_COLUMNS])

    def _after_lost_race(
        self, intent: UploadIntent, duplicates: DuplicatePolicy, overwrite: bool
    ) -> Reservation:
        """The unique indexes refused our row: decide again, now seeing the winner."""
        found = self._transactions.run_connected(
            f"reserve {intent.key!r}",
            functools.partial(self._check, intent, duplicates, overwrite),
        )
        if isinstance(found, Reservation):
            return found
        hidden = self._transactions.run(
            f"look up {intent.key!r}",
            lambda s: self._steps.hidden_live_row(s, intent.bucket, intent.key),
        )
        if hidden:
            raise KeyConflictError(
                f"{intent.key!r} is already in bucket {intent.bucket!r} as someone else's "
                "file. Upload under another name, or ask its owner or an admin."
            ) from None
        raise _same_content_in_flight(
            f"Another upload of the same content to bucket {intent.bucket!r} started "
            f"at the same moment as {intent.key!r}; Ferry tries again."
        ) from None

    def _judge_key_holder(
        self, connection: Connection, row: FileRecord, token: str | None, intent: UploadIntent
    ) -> Reservation:
        if row.endpoint is not None and intent.endpoint not in (None, row.endpoint):
            raise KeyConflictError(
                f"{intent.key!r} in bucket {intent.bucket!r} is registered in this catalog at "
                f"another server ({row.endpoint}), not at {intent.endpoint}. One catalog keeps "
                "one name per bucket name: upload under another name, or give this server's "
                "files a catalog (or prefix) of their own."
            )
        ours = row.owner == self._steps.owner and row.sha256 == intent.sha256
        if not ours:
            raise KeyConflictError(
                f"{intent.key!r} is already in bucket {intent.bucket!r} with other content "
                f"(uploaded by {row.owner}, {row.status.value}). Upload under another name "
                "or delete the existing file first."
            )
        if row.status is FileStatus.ACTIVE:
            return Reservation(ReservationOutcome.DUPLICATE, row)
        if row.status is FileStatus.MISSING:
            # Known lost: this transfer sends the bytes again into the same row.
            taken = self._steps.change(
                connection,
                row,
                token=intent.token,
                status=FileStatus.PENDING,
                copied_from=None,
                alive_at=self._steps.now(connection),
            )
            self._steps.audit(
                connection, AuditAction.RESERVE, taken, {"resending": "missing object"}
            )
            return Reservation(ReservationOutcome.RESERVED, taken)
        if intent.token is not None and token == intent.token:
            return Reservation(ReservationOutcome.RESUMED, row)
        # Not stored yet: that upload (another transfer's) may still fail.
        raise _same_content_in_flight(
            f"{intent.key!r} is being uploaded right now with the same content by another "
            "transfer; Ferry waits for that upload to finish and then reports this file "
            "as stored."
        )

    def activate(
        self,
        file_id: int,
        *,
        etag: str,
        token: str | None = None,
        copied_from: str | None = None,
        version_id: str | None = None,
        checksum: str | None = None,
        checksum_type: str | None = None,
        key: tuple[str, str] | None = None,
    ) -> FileRecord:
        """pending -> active, with its audit entry and file.uploaded event.

        Only the transfer holding the row's token may activate a pending row;
        a missing row (a repair sending it again) needs none. ``copied_from``
        is the key a server-side copy filled this one from (None: bytes sent);
        ``version_id`` the version the write made, where the bucket keeps versions;
        ``checksum`` the full-object checksum of ``checksum_type`` the server
        verified and Ferry read back equal to its own. ``key``: the row's
        (bucket, key), where the caller knows it, to lock it in its group's key
        order (see :class:`GroupCommitter`).
        """
        steps = self._steps

        def work(connection: Connection) -> FileRecord:
            # On SQLite the row is read under the write lock: nothing changes it
            # between this judgement and the update.
            steps.take_write_lock(connection)
            if key is not None:
                # The key's lock before the row's, as a repair takes them.
                steps.lock_key(connection, *key)
            values = connection.execute(ROW_FOR_UPDATE, {"file_id": file_id}).one_or_none()
            if values is None:
                raise no_row(file_id)
            row, holder = with_token(values[:-1])
            replaces: int | None = values[-1]
            if key != (row.bucket, row.key):
                steps.lock_key(connection, row.bucket, row.key)
            if row.status is FileStatus.ACTIVE and row.etag == etag and holder == token:
                return row  # a resumed registration
            if row.status is FileStatus.PENDING and holder != token:
                raise CatalogError(
                    f"{row.key!r} is reserved by another transfer; this one may not register it.",
                    title="Reserved by another upload",
                    cause=ErrorCause.CONFLICT,
                )
            if row.status not in (FileStatus.PENDING, FileStatus.MISSING):
                raise CatalogError(
                    f"{row.key!r} cannot be activated: it is {row.status.value}.",
                    title="Unexpected catalog state",
                    cause=ErrorCause.OTHER,
                )
            row = steps.change(
                connection,
                row,
                token=token,  # a repair's transfer takes a missing row over
                status=FileStatus.ACTIVE,
                etag=etag,
                copied_from=copied_from,
                version_id=version_id,
                checksum=checksum,
                checksum_type=checksum_type if checksum is not None else None,
                uploaded_at=steps.now(connection),
                last_error=None,
            )
            details = {"etag": etag}
            if version_id is not None:
                details["version_id"] = version_id
            if checksum is not None and checksum_type is not None:
                details[checksum_type.lower()] = checksum
            if copied_from is not None:
                details["copied_from"] = copied_from
            if replaces is not None:
                connection.execute(UPDATE_ROW, {"file_id": row.id, "replaces_id": None})
                retire_replaced(steps, connection, replaces, row)
            steps.audit(connection, AuditAction.ACTIVATE, row, details)
            steps.announce(connection, OutboxEventType.FILE_UPLOADED, row)
            return row

        # In key order with the reservations: two clients' groups then take the
        # keys' locks in one order. Ahead of them all, an activation holding a
        # key another client's group had reserved below it deadlocked both
        # (a second's wait for PostgreSQL to see it, then each request alone).
        order = "" if key is None else "/".join(key)
        return self._transactions.run_grouped(work, label=f"activate row {file_id}", order=order)

    def reservation_stands(self, file_id: int, token: str | None) -> bool:
        """Is the row still this transfer's pending reservation (nobody else's, not live)?"""

        def work(session: Session) -> bool:
            row = session.get(FileRow, file_id)
            return (
                row is not None
                and row.status == FileStatus.PENDING.value
                and token is not None
                and row.token == token
            )

        return self._transactions.run(f"read row {file_id}", work)

    @staticmethod
    def _reserved(session: Session, file_id: int, token: str | None) -> bool:
        row = session.get(FileRow, file_id)
        if row is None:
            return False
        # A row marked missing is sent again by a repair's transfer, under no
        # token; one active under this token was registered by this transfer
        # before a crash kept the journal from saying so (it resends the same bytes).
        ours = token is not None and row.token == token
        held = (FileStatus.PENDING.value, FileStatus.ACTIVE.value)
        return row.status == FileStatus.MISSING.value or (ours and row.status in held)

    def release(
        self,
        file_id: int,
        *,
        reason: str,
        token: str | None,
        at_key: ObjectAtKey = NOT_LOOKED,
    ) -> None:
        """Remove a pending intent after a failed or cancelled upload (audited).

        Only the row reserved with this token: another transfer's reservation
        (or a row a repair took over) is left alone. An overwrite's intent
        gives the key back to the row it replaced while ``at_key`` (what the
        bucket holds there) does not prove that row's bytes gone.
        """

        def work(session: Session) -> None:
            row = session.get(FileRow, file_id, with_for_update=True)
            if row is None or row.status != FileStatus.PENDING.value or row.token != token:
                return
            self._steps.audit(session, AuditAction.RELEASE, row, {"reason": reason})
            session.delete(row)
            give_back(self._steps, session, row, at_key, reason)

        self._transactions.run(f"release row {file_id}", work)

    def touch(self, reservations: list[tuple[int, str]]) -> list[int]:
        """Say that these pending uploads (row id, token) are alive: a check leaves them be.

        Returns the row ids that are no longer their transfer's reservation
        (removed by a repair, or taken by another token): those uploads must
        not complete.
        """
        if not reservations:
            return []

        def work(session: Session) -> list[int]:
            now = self._steps.now(session)
            lost = []
            for file_id, token in reservations:
                touched = session.execute(
                    update(FileRow)
                    .where(
                        FileRow.id == file_id,
                        FileRow.token == token,
                        FileRow.status == FileStatus.PENDING.value,
                    )
                    .values(alive_at=now)
                )
                count: int = touched.rowcount  # type: ignore[attr-defined]
                if count == 0 and not self._reserved(session, file_id, token):
                    lost.append(file_id)
            return lost

        return self._transactions.run("note uploads in progress", work)

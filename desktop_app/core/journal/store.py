"""The journal: Ferry's local, crash-safe memory of every transfer.

One SQLite file per user in the data dir, owned by one running Ferry at a
time (:mod:`database`). :class:`Journal` is the one object the rest of Ferry
holds: the transfer ledger here (queueing, the one writer of transfer state
:meth:`Journal.move` with its table of allowed moves, what a scheduler should
run), the part ledger from :mod:`parts`. A fact is committed before anything
depends on it: the multipart upload id before the first part is sent; a part
is marked done only after the server answered for it. Writes are serialised
through one writer and kept short; reads may come from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, or_, select, true, update

from desktop_app.core.journal.database import JournalDatabase
from desktop_app.core.journal.facts import NewAttempt, NewTransfer, TransferFacts, check_birth
from desktop_app.core.journal.hot_path import (
    MOVE_SOURCES,
    error_columns,
    insert_attempt,
    insert_sql,
    sql_value,
    sqlite_cursor,
    update_sql,
)
from desktop_app.core.journal.parts import PartLedger
from desktop_app.core.journal.records import (
    SELECT_TRANSFERS,
    AttemptRecord,
    TransferError,
    TransferRecord,
    TransferRow,
    UnrecordedSending,
    aware,
    read_attempts,
    read_transfers,
    read_unrecorded_sending,
    record_of,
)
from desktop_app.core.journal.schema import transfers
from desktop_app.core.model.errors import IllegalMoveError, JournalError
from desktop_app.core.model.states import FINISHED_STATES, ErrorKind, TransferState

# Keys asked about in one query: far below SQLite's limit on bound parameters.
_KEYS_PER_QUERY = 500


def _waiting_retry(profiles: Iterable[str]) -> Any:
    """Failed, of these profiles, for a reason the scheduler retries on its own."""
    return and_(
        transfers.c.profile.in_(list(profiles)),
        transfers.c.state == TransferState.FAILED.value,
        transfers.c.error_kind.in_([k.value for k in ErrorKind if k.retries_on_its_own]),
    )


class Journal:
    """Typed access to the transfers and parts tables.

    The transfer ledger is this class's own; the part ledger's operations are
    those of a :class:`~desktop_app.core.journal.parts.PartLedger`, bound in,
    so a caller holds one object and each ledger stays in its module.
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], datetime] | None = None,
        read_only: bool = False,
    ) -> None:
        """Open the journal; ``read_only`` reads beside a running Ferry (no lock, no writes)."""
        self.path = path
        self.read_only = read_only
        self.clock = clock or (lambda: datetime.now(UTC))
        self._database = database = JournalDatabase(path, read_only=read_only)
        self.engine = database.engine
        # The part ledger (parts.py).
        ledger = PartLedger(database, self.clock)
        self.plan_parts = ledger.plan_parts
        self.parts = ledger.parts
        self.confirm_part = ledger.confirm_part
        self.unconfirm_part = ledger.unconfirm_part
        self.save_part_digests = ledger.save_part_digests
        self.part_digests = ledger.part_digests
        self.forget_upload = ledger.forget_upload

    def close(self) -> None:
        self._database.close()

    def threads(self) -> list[threading.Thread]:
        """The threads this journal runs: its writer's, which each recorded step waits on."""
        return self._database.threads()

    # -- transfers ----------------------------------------------------------

    def add(self, new: NewTransfer) -> TransferRecord:
        return self.add_many([new])[0]

    def add_many(self, news: list[NewTransfer]) -> list[TransferRecord]:
        """Queue many transfers in one transaction (a drop of 10,000 files is one commit)."""
        if not news:
            return []
        for new in news:
            check_birth(new)
        now = self.clock()
        values = [
            {
                "source_path": new.source_path,
                **new.identity.columns(),
                "profile": new.profile,
                "bucket": new.bucket,
                "key": new.key,
                "content_type": new.content_type,
                "part_size": new.part_size,
                "part_count": new.part_count,
                "state": new.state.value,
                "paused": False,
                "attempts": 0,
                **error_columns(new.error),
                "created_at": now,
                "updated_at": now,
                "on_conflict": new.on_conflict.value,
                "sha256": new.sha256,
                "catalog_file_id": new.catalog_file_id,
                "reservation_token": new.reservation_token,
                "replaces_etag": new.replaces_etag,
            }
            for new in news
        ]
        columns = tuple(values[0])
        sql = insert_sql(columns)
        rows = [[sql_value(row[column]) for column in columns] for row in values]

        def op(connection: Connection) -> list[TransferRecord]:
            cursor = sqlite_cursor(connection)
            return [record_of(TransferRow(cursor.execute(sql, row).fetchone())) for row in rows]

        return self._database.write(op)

    def get(self, transfer_id: int) -> TransferRecord:
        found = self.get_many([transfer_id])
        if not found:
            raise JournalError(f"There is no transfer {transfer_id} in the journal.")
        return found[0]

    def get_many(self, transfer_ids: Iterable[int]) -> list[TransferRecord]:
        """Several transfers in few queries, in the order asked (missing ones left out)."""
        ids = list(transfer_ids)
        found: dict[int, TransferRecord] = {}
        for start in range(0, len(ids), 500):  # SQLite's limit on bound values
            chunk = ids[start : start + 500]
            sql = f"{SELECT_TRANSFERS} WHERE id IN ({', '.join('?' * len(chunk))})"
            for values in self._database.read_raw(sql, chunk):
                record = record_of(TransferRow(values))
                found[record.id] = record
        return [found[i] for i in ids if i in found]

    def all(self, states: Iterable[TransferState] | None = None) -> list[TransferRecord]:
        return read_transfers(self._database.read_raw, states)

    def window_history(self, finished_kept: int) -> list[TransferRecord]:
        """What a window shows at start: every unfinished transfer and the newest
        ``finished_kept`` finished ones not cleared, oldest first."""
        finished = [s.value for s in FINISHED_STATES]
        unfinished = select(transfers).where(transfers.c.state.not_in(finished))
        recent = (
            select(transfers.c.id)
            .where(transfers.c.state.in_(finished), transfers.c.cleared_at.is_(None))
            .order_by(transfers.c.id.desc())
            .limit(finished_kept)
        )
        kept = select(transfers).where(transfers.c.id.in_(recent))
        rows = [*self._database.read(unfinished), *self._database.read(kept)]
        return sorted((record_of(row) for row in rows), key=lambda record: record.id)

    def clear_finished(self, transfer_ids: Iterable[int]) -> int:
        """Hide these finished transfers from the window; the history keeps them."""
        ids = list(transfer_ids)
        now = self.clock()

        def op(connection: Connection) -> int:
            cleared = 0
            for start in range(0, len(ids), 500):  # SQLite's limit on bound values
                statement = (
                    update(transfers)
                    .where(
                        transfers.c.id.in_(ids[start : start + 500]),
                        transfers.c.state.in_([s.value for s in FINISHED_STATES]),
                        transfers.c.cleared_at.is_(None),
                    )
                    .values(cleared_at=now)
                )
                cleared += int(connection.execute(statement).rowcount)
            return cleared

        return self._database.write(op) if ids else 0

    def runnable(self, profiles: Iterable[str], now: datetime) -> list[TransferRecord]:
        """What a scheduler for these profiles should run now, oldest first.

        In progress and not paused, or failed for a reason that is retried on
        its own once its next try time has come. Another profile's transfers
        are never returned: only that profile's client and catalog may run them.
        """
        statement = select(transfers).where(self._runnable(profiles, now)).order_by(transfers.c.id)
        return [record_of(row) for row in self._database.read(statement)]

    def runnable_sizes(self, profiles: Iterable[str], now: datetime) -> list[tuple[int, int]]:
        """(id, size) of what :meth:`runnable` returns: all a dispatcher needs, cheaply."""
        statement = (
            select(transfers.c.id, transfers.c.source_size)
            .where(self._runnable(profiles, now))
            .order_by(transfers.c.id)
        )
        return [(row.id, row.source_size) for row in self._database.read(statement)]

    @staticmethod
    def _runnable(profiles: Iterable[str], now: datetime) -> Any:
        profiles = list(profiles)
        return and_(
            transfers.c.profile.in_(profiles),
            transfers.c.paused.is_(False),
            or_(
                transfers.c.state.in_([s.value for s in TransferState if s.in_progress]),
                and_(
                    _waiting_retry(profiles),
                    or_(transfers.c.retry_at.is_(None), transfers.c.retry_at <= now),
                ),
            ),
        )

    def next_retry_at(self, profiles: Iterable[str]) -> datetime | None:
        """The earliest next try time among failures retried on their own."""
        rows = self._database.read(
            select(transfers.c.retry_at)
            .where(
                _waiting_retry(profiles),
                transfers.c.paused.is_(False),
                transfers.c.retry_at.is_not(None),
            )
            .order_by(transfers.c.retry_at)
            .limit(1)
        )
        return aware(rows[0].retry_at) if rows else None

    def retry_now(self, profiles: Iterable[str], now: datetime) -> int:
        """Bring every waiting automatic retry forward to now (the server is back)."""
        statement = update(transfers).where(_waiting_retry(profiles)).values(retry_at=now)

        def op(connection: Connection) -> int:
            return int(connection.execute(statement).rowcount)

        return self._database.write(op)

    def latest_for_source(self, source_path: str, profile: str) -> TransferRecord | None:
        rows = self._database.read(
            select(transfers)
            .where(transfers.c.source_path == source_path, transfers.c.profile == profile)
            .order_by(transfers.c.id.desc())
            .limit(1)
        )
        return record_of(rows[0]) if rows else None

    def update(self, transfer_id: int, facts: TransferFacts) -> TransferRecord:
        """Set facts of one transfer (never its state: that is :meth:`move`)."""
        return self._update(transfer_id, None, facts.columns())

    def move(
        self,
        transfer_id: int,
        target: TransferState,
        *,
        error: TransferError | None = None,
        retry_at: datetime | None = None,
        attempt: NewAttempt | None = None,
        facts: TransferFacts | None = None,
    ) -> TransferRecord:
        """The one writer of transfer state: checked against the table of allowed moves.

        The check and the write are one transaction, so two threads cannot both
        move a transfer out of the same state. A failure keeps its error and
        next try time; any other state clears them. An attempt, when given, is
        recorded in the same commit.
        """
        if (error is not None) != (target is TransferState.FAILED):
            raise ValueError("an error goes with the failed state, and only with it")
        values = facts.columns() if facts is not None else {}
        values.update(state=target.value, retry_at=retry_at, **error_columns(error))
        return self._update(transfer_id, (target, attempt), values)

    def _update(
        self,
        transfer_id: int,
        move: tuple[TransferState, NewAttempt | None] | None,
        values: dict[str, Any],
    ) -> TransferRecord:
        values["updated_at"] = self.clock()
        columns = tuple(values)
        params: list[Any] = [sql_value(values[c]) for c in columns]
        params.append(transfer_id)
        if move is not None:
            # The check is the UPDATE's own condition: no row is written unless
            # the current state may move to the target, in one statement.
            sources = MOVE_SOURCES[move[0]]
            params.extend(sources)
        sql = update_sql(columns, len(sources) if move is not None else 0)

        def op(connection: Connection) -> TransferRecord:
            cursor = sqlite_cursor(connection)
            row = cursor.execute(sql, params).fetchone()
            if row is None:
                found = cursor.execute(
                    "SELECT state FROM transfers WHERE id = ?", (transfer_id,)
                ).fetchone()
                if found is None:
                    raise JournalError(f"There is no transfer {transfer_id} in the journal.")
                assert move is not None
                raise IllegalMoveError(transfer_id, TransferState(found[0]), move[0])
            if move is not None and move[1] is not None:
                insert_attempt(cursor, transfer_id, move[1])
            return record_of(TransferRow(row))

        return self._database.write(op)

    def attempts_of(self, transfer_ids: Iterable[int]) -> dict[int, list[AttemptRecord]]:
        return read_attempts(self._database.read_raw, transfer_ids)

    def unrecorded_sending(self, transfer_ids: Iterable[int]) -> dict[int, list[UnrecordedSending]]:
        """Per transfer, the stretches of confirmed parts no recorded attempt covers
        (attempts cut by a pause or a stop), in time order: see :class:`UnrecordedSending`."""
        return read_unrecorded_sending(self._database.read_raw, transfer_ids)

    def set_paused(self, transfer_ids: Iterable[int] | None, paused: bool) -> int:
        """Pause or let go unfinished transfers; how many changed.

        A failed transfer that waits for a person (bad input, access denied)
        is not paused: nothing of it runs until the person acts anyway. One
        already as asked is not counted.
        """
        waits_for_a_person = and_(
            transfers.c.state == TransferState.FAILED.value,
            or_(
                transfers.c.error_kind.is_(None),
                transfers.c.error_kind.not_in([k.value for k in ErrorKind if k.retries_on_its_own]),
            ),
        )
        statement = update(transfers).values(paused=paused, updated_at=self.clock())
        statement = statement.where(
            transfers.c.state.in_([s.value for s in TransferState if not s.finished]),
            transfers.c.paused != paused,
            ~waits_for_a_person if paused else true(),
        )
        if transfer_ids is not None:
            statement = statement.where(transfers.c.id.in_(list(transfer_ids)))

        def op(connection: Connection) -> int:
            return int(connection.execute(statement).rowcount)

        return self._database.write(op)

    def sources_of_done(self, bucket: str, keys: Iterable[str]) -> dict[str, str]:
        """Where the last finished upload of each key read its file; a key the journal
        finished no upload of is left out. One query per 500 keys: a check asks for
        hundreds at once, and the journal has no index on keys to make each cheap."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), _KEYS_PER_QUERY):
            rows = self._database.read(
                select(transfers.c.key, transfers.c.source_path)
                .where(
                    transfers.c.bucket == bucket,
                    transfers.c.state == TransferState.DONE.value,
                    transfers.c.key.in_(wanted[start : start + _KEYS_PER_QUERY]),
                )
                .order_by(transfers.c.id)  # the last one of a key is kept
            )
            found.update((row.key, row.source_path) for row in rows)
        return found

    def in_flight_keys(self, bucket: str) -> set[str]:
        rows = self._database.read(
            select(transfers.c.key).where(
                transfers.c.bucket == bucket,
                transfers.c.state.in_([s.value for s in TransferState if s.in_progress]),
            )
        )
        return {row.key for row in rows}

    def upload_ids(self) -> set[str]:
        """Multipart upload ids that unfinished transfers still own."""
        rows = self._database.read(
            select(transfers.c.upload_id).where(
                transfers.c.upload_id.is_not(None),
                transfers.c.state.in_([s.value for s in TransferState if not s.finished]),
            )
        )
        return {row.upload_id for row in rows}

"""The relay's side of the catalog's outbox: claim waiting events, mark them.

The outbox belongs to the catalog (events are written in the same
transaction as the change they describe, see :mod:`catalog`); this module
is how a relay reads and settles them. Promises:

- An event is marked published only by :meth:`OutboxClaim.mark_published`,
  which the relay calls after the server acknowledged it; a crash before
  that leaves it waiting, and it is published again (with the same
  ``event_uid``, which the stream drops).
- A claim says when the catalog's clock read it (:attr:`OutboxClaim.read_at`,
  the clock that stamped its events' ``created_at``), so the relay can tell
  how old an event is without trusting its own machine's clock.
- PostgreSQL: several relays at once. A claim is one transaction holding
  its events with ``FOR UPDATE SKIP LOCKED`` until they are marked; a relay
  that dies releases them with its connection. Per file, events go out in
  order: an event whose file has an earlier event still in another relay's
  hands is held back for a later claim. Relays sleep on ``LISTEN
  ferry_outbox`` (every insert notifies at commit) with a slow poll beside it.
- SQLite: one relay at a time, by an exclusive lock on a file beside the
  catalog; it polls.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.exc import SQLAlchemyError

from desktop_app.core.catalog.database import describe_url, translate_db_error
from desktop_app.core.catalog.peek import PENDING as _PENDING
from desktop_app.core.catalog.peek import SQLITE_BACKLOG, backlog_of
from desktop_app.core.catalog.peek import OutboxBacklog as OutboxBacklog
from desktop_app.core.catalog.records import OutboxEvent, aware, utcnow
from desktop_app.core.db.locks import LockHeld, PidLock
from desktop_app.core.model.errors import RelayLockTaken

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "ferry_outbox"
_COLUMNS = "id, event_uid, event_type, payload, created_at"


def _file_of(event: OutboxEvent) -> tuple[str, str]:
    return str(event.payload.get("bucket", "")), str(event.payload.get("key", ""))


@dataclass
class OutboxClaim:
    """Events claimed for publishing, oldest first, and how to settle them."""

    events: list[OutboxEvent]
    # Events of this claim left for later: an earlier event of their file is
    # in another relay's hands.
    held_back: int
    _connection: Connection | None
    _outbox: EventOutbox
    # The catalog's time when the events were claimed (PostgreSQL's
    # clock_timestamp(), which also wrote their created_at; on SQLite this
    # machine's clock, which Ferry stamped them with).
    read_at: datetime = dataclasses.field(default_factory=utcnow)

    def age_seconds(self, event: OutboxEvent) -> float:
        """How long ago the catalog wrote ``event``, by the catalog's own clock."""
        return (self.read_at - event.created_at).total_seconds()

    def mark_published(self, event_ids: Iterable[int]) -> None:
        ids = list(event_ids)
        if ids:
            self._outbox._settle(
                self._connection,
                "UPDATE outbox SET published_at = :now WHERE id IN :ids",
                {"ids": ids},
            )

    def mark_skipped(self, event_id: int, reason: str) -> None:
        self._outbox._settle(
            self._connection,
            "UPDATE outbox SET skipped_reason = :reason WHERE id IN :ids",
            {"ids": [event_id], "reason": reason[:2000]},
        )


class EventOutbox:
    """Claims, marks and waits for outbox events over the catalog's engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._listener: psycopg.Connection[Any] | None = None
        self._lock: PidLock | None = None

    # -- one relay per SQLite catalog ------------------------------------------

    def take_relay_lock(self) -> None:
        """SQLite: become the one relay of this catalog, or raise RelayLockTaken."""
        if self.postgres or self._lock is not None:
            return
        database = self.engine.url.database or ""
        if not database or database == ":memory:":
            return
        lock = PidLock(Path(f"{database}.relay-lock"))
        try:
            lock.acquire()
        except LockHeld as held:
            raise RelayLockTaken(
                f"Another relay (pid {held.holder or 'unknown'}) already publishes the SQLite "
                f"catalog {database}. One relay is enough for an SQLite catalog; stop the other "
                "one first (several relays at once need a PostgreSQL catalog).",
            ) from held
        self._lock = lock

    # -- claiming ---------------------------------------------------------------

    @contextlib.contextmanager
    def claim(self, limit: int) -> Iterator[OutboxClaim]:
        """The oldest waiting events (at most ``limit``), held until the block ends.

        On PostgreSQL the block is one transaction: its events are locked
        against other relays until it ends, and what it marked commits then.
        """
        if not self.postgres:
            rows = self._read(
                f"SELECT {_COLUMNS} FROM outbox WHERE {_PENDING} ORDER BY id LIMIT :limit",
                {"limit": limit},
            )
            yield OutboxClaim([OutboxEvent.from_row(r) for r in rows], 0, None, self)
            return
        try:
            connection = self.engine.connect()
        except SQLAlchemyError as exc:
            raise translate_db_error(exc, "claim events from the outbox") from exc
        try:
            with connection.begin():
                events, read_at = self._claim_rows(connection, limit)
                kept = self._keep_file_order(connection, events)
                yield OutboxClaim(kept, len(events) - len(kept), connection, self, read_at)
        except SQLAlchemyError as exc:
            raise translate_db_error(exc, "settle events in the outbox") from exc
        finally:
            connection.close()

    @staticmethod
    def _claim_rows(connection: Connection, limit: int) -> tuple[list[OutboxEvent], datetime]:
        """The claimed events and the database's time as it read them."""
        rows = list(
            connection.execute(
                text(
                    f"SELECT {_COLUMNS}, clock_timestamp() AS read_at FROM outbox "
                    f"WHERE {_PENDING} ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
                ),
                {"limit": limit},
            )
        )
        # The latest reading: rows are evaluated one after another.
        read_at = max((aware(r.read_at) for r in rows), default=utcnow())
        return [OutboxEvent.from_row(r) for r in rows], read_at

    @staticmethod
    def _keep_file_order(connection: Connection, events: list[OutboxEvent]) -> list[OutboxEvent]:
        """Drop the events whose file has an earlier waiting event not in this claim."""
        if not events:
            return events
        ours = [e.id for e in events]
        # Waiting events older than ours that we did not get: another relay
        # holds them (or they committed after our claim began).
        others = connection.execute(
            text(
                "SELECT payload->>'bucket' AS bucket, payload->>'key' AS key, min(id) AS first "
                f"FROM outbox WHERE {_PENDING} AND id < :last AND NOT (id = ANY(:ours)) "
                "GROUP BY 1, 2"
            ),
            {"last": max(ours), "ours": ours},
        )
        blocked = {(r.bucket, r.key): r.first for r in others}
        if not blocked:
            return events
        return [e for e in events if blocked.get(_file_of(e), e.id) >= e.id]

    def _settle(
        self, connection: Connection | None, statement: str, values: dict[str, Any]
    ) -> None:
        query = text(statement).bindparams(bindparam("ids", expanding=True))
        values = {"now": utcnow(), **values}
        if connection is not None:
            connection.execute(query, values)
            return
        try:
            with self.engine.begin() as own:
                own.execute(query, values)
        except SQLAlchemyError as exc:
            raise translate_db_error(exc, "mark events in the outbox") from exc

    def _read(self, statement: str, values: dict[str, Any]) -> list[Any]:
        try:
            with self.engine.connect() as connection:
                return list(connection.execute(text(statement), values))
        except SQLAlchemyError as exc:
            raise translate_db_error(exc, "read the outbox") from exc

    # -- status -------------------------------------------------------------------

    def backlog(self) -> OutboxBacklog:
        """Counts only; on PostgreSQL any catalog login may ask (ferry_outbox_backlog)."""
        if self.postgres:
            row = self._read("SELECT * FROM ferry_outbox_backlog()", {})[0]
        else:
            row = self._read(SQLITE_BACKLOG, {})[0]
        return backlog_of(row.waiting, row.skipped, row.oldest)

    def skipped_events(self) -> list[tuple[OutboxEvent, str]]:
        rows = self._read(
            f"SELECT {_COLUMNS}, skipped_reason FROM outbox "
            "WHERE skipped_reason IS NOT NULL ORDER BY id",
            {},
        )
        return [(OutboxEvent.from_row(r), str(r.skipped_reason)) for r in rows]

    # -- waiting for new events -----------------------------------------------------

    def wait(self, timeout: float) -> bool:
        """Sleep until an event may have arrived or ``timeout`` passed; True when woken.

        PostgreSQL: woken by the outbox's NOTIFY. Notifications are lost while
        nobody listens (and behind PgBouncer in transaction mode, LISTEN does
        nothing), so callers poll at ``timeout`` anyway.
        """
        listener = self._listen() if self.postgres else None
        if listener is None:
            time.sleep(timeout)
            return False
        import psycopg  # only PostgreSQL listens; a start without it need not load it

        try:
            woken = any(True for _note in listener.notifies(timeout=timeout, stop_after=1))
            if woken:
                # Drain what else came: one wake-up serves them all.
                list(listener.notifies(timeout=0.05))
            return woken
        except (psycopg.Error, OSError) as exc:
            log.info("Relay: stopped listening for outbox notifications (%s); polling.", exc)
            self._close_listener()
            return False

    def _listen(self) -> psycopg.Connection[Any] | None:
        if self._listener is not None and not self._listener.closed:
            return self._listener
        import psycopg

        url = self.engine.url.set(drivername="postgresql")
        try:
            connection = psycopg.connect(
                url.render_as_string(hide_password=False), autocommit=True, connect_timeout=10
            )
            connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except psycopg.Error as exc:
            log.info(
                "Relay: cannot LISTEN on %s (%s); polling instead.",
                describe_url(str(self.engine.url)),
                str(exc).strip().splitlines()[0] if str(exc).strip() else exc,
            )
            return None
        self._listener = connection
        return connection

    def _close_listener(self) -> None:
        if self._listener is not None:
            import psycopg

            with contextlib.suppress(psycopg.Error):
                self._listener.close()
            self._listener = None

    def close(self) -> None:
        self._close_listener()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

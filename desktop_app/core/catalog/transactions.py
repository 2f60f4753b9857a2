"""How the catalog runs its work: one transaction per operation, retried when transient.

:class:`CatalogTransactions` owns the engine's sessions, SQLite's in-process
write lock and the group committer the upload path shares. It promises that
each piece of work runs in one transaction; SQLAlchemy errors leave here as
:class:`CatalogError` (an :class:`IntegrityError` as it is, for the caller to
judge), and transient ones (a lost connection, a locked SQLite file) are
retried a few times before they are reported.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy import Engine, Executable
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from desktop_app.core.catalog.batch import ChangeBatch
from desktop_app.core.catalog.database import translate_db_error
from desktop_app.core.db.group_commit import GroupCommitter, WriterConnection
from desktop_app.core.model.threads import TransferThread

log = logging.getLogger(__name__)
T = TypeVar("T")
Tx = TypeVar("Tx", Session, Connection)
_RETRIES = 3


class CatalogTransactions:
    """The catalog's transactions: an ORM session, a bare connection, or a group's share."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer at a time and its busy handler sleeps in
        # growing steps while it waits; threads of this process queue on a
        # lock instead, which keeps many small uploads from stalling.
        on_sqlite = engine.dialect.name == "sqlite"
        self._write_lock = threading.Lock() if on_sqlite else None
        # Reservations and activations of many uploads share transactions,
        # written by one thread. On SQLite it keeps a connection of its own;
        # PostgreSQL's pool holds two per client (a check streams on one while
        # the other writes), so there the writer takes one per transaction.
        self._writer_connection = WriterConnection(engine) if on_sqlite else None
        self._group: GroupCommitter[Connection] = GroupCommitter(
            functools.partial(self._connect, self._writer_connection),
            functools.partial(self.run_connected, writer=self._writer_connection),
            name=TransferThread.CATALOG_WRITER.value,
            most=64,
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def begin(self) -> Iterator[Session]:
        """One ORM session's transaction, under SQLite's in-process write lock."""
        with self._write_lock or contextlib.nullcontext(), self._sessions.begin() as session:
            yield session

    @contextlib.contextmanager
    def _connect(self, writer: WriterConnection | None = None) -> Iterator[Connection]:
        """A transaction without an ORM session: the upload path's, once or twice per file,
        its entries written together at its end (:class:`ChangeBatch`)."""
        begin = writer.begin() if writer is not None else self.engine.begin()
        with (
            self._write_lock or contextlib.nullcontext(),
            begin as connection,
            ChangeBatch.kept(connection),
        ):
            yield connection

    def threads(self) -> list[threading.Thread]:
        """The thread that writes the uploads' shared transactions."""
        return [self._group.thread]

    def close(self) -> None:
        self._group.stop()
        if self._writer_connection is not None:
            self._writer_connection.close()
        self.engine.dispose()

    def run(self, action: str, work: Callable[[Session], T]) -> T:
        """Run work in one transaction, retrying transient failures."""
        return self._retrying(action, work, self.begin)

    def run_connected(
        self,
        action: str,
        work: Callable[[Connection], T],
        *,
        writer: WriterConnection | None = None,
    ) -> T:
        """As :meth:`run`, on a bare connection (no ORM session)."""
        return self._retrying(action, work, functools.partial(self._connect, writer))

    def run_grouped(self, work: Callable[[Connection], T], *, label: str, order: str = "") -> T:
        """Run work in a transaction shared with other uploads' (see :class:`GroupCommitter`).

        ``order`` places it in its group ("": ahead of every key).
        """
        return self._group.run(work, label=label, order=order)

    @staticmethod
    def _retrying(
        action: str, work: Callable[[Tx], T], begin: Callable[[], AbstractContextManager[Tx]]
    ) -> T:
        for attempt in range(1, _RETRIES + 1):
            try:
                with begin() as transaction:
                    return work(transaction)
            except IntegrityError:
                raise
            except SQLAlchemyError as exc:
                error = translate_db_error(exc, action)
                if not error.transient or attempt == _RETRIES:
                    raise error from exc
                # Logged, not shown: the last failure is what a person sees.
                log.info("Catalog: %s failed (attempt %s), retrying: %s", action, attempt, error)
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def stream(
        self, statement: Executable, params: dict[str, str], action: str
    ) -> Iterator[Row[Any]]:
        """Rows fetched in batches from a server-side cursor: memory stays flat."""
        try:
            with self.engine.connect() as connection:
                result = connection.execution_options(stream_results=True, yield_per=2000)
                yield from result.execute(statement, params)
        except SQLAlchemyError as exc:
            raise translate_db_error(exc, action) from exc

"""A transaction's deferred entries: audit rows and outbox events written at its end.

See :class:`ChangeBatch`. The upload path's transactions keep one
(:mod:`transactions`); :class:`~desktop_app.core.catalog.steps.ChangeSteps`
adds to it through :func:`write_entry`, or writes at once where none is kept.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.engine import Connection

_BATCH = "ferry_change_batch"


class ChangeBatch:
    """What one upload-path transaction keeps until its end: entries and a clock reading.

    The audit entries and outbox events its changes add are written together
    just before the commit, in the order they were added (one
    ``executemany`` a kind, one round trip on PostgreSQL, rather than a
    statement a file), so they still commit or roll back with the changes
    they describe. Nothing in such a transaction reads the audit log or the
    outbox. On PostgreSQL ``ferry_audit`` and ``ferry_announce`` read the row
    then, not when the change was made: its bucket, key and owner are the
    same (no transaction of the upload path deletes a row or changes them),
    and ``now()`` is the transaction's start either way; an event the row's
    final state no longer allows fails the transaction, and a group commit
    then runs each request alone. The database clock is read once there
    too, for the same reason.
    """

    def __init__(self) -> None:
        self.entries: dict[Executable, list[dict[str, Any]]] = {}
        self.now: datetime | None = None

    @classmethod
    @contextlib.contextmanager
    def kept(cls, connection: Connection) -> Iterator[None]:
        """Keep a batch for the transaction of this block; written when the block ends
        without error, dropped with it otherwise."""
        # The dict itself: a connection lost in the transaction can no longer be
        # asked for it, and asking would hide the error that is retried.
        info = connection.info
        batch = info[_BATCH] = cls()
        try:
            yield
            for statement, rows in batch.entries.items():
                connection.execute(statement, rows)
        finally:
            info.pop(_BATCH, None)

    @staticmethod
    def of(connection: Connection) -> ChangeBatch | None:
        batch: ChangeBatch | None = connection.info.get(_BATCH)
        return batch


def write_entry(connection: Connection, statement: Executable, row: dict[str, Any]) -> None:
    """An entry row, at once or with its transaction's batch."""
    batch = ChangeBatch.of(connection)
    if batch is None:
        connection.execute(statement, row)
    else:
        batch.entries.setdefault(statement, []).append(row)

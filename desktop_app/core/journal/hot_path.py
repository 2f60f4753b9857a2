"""The journal's hot path: the statements it sends to sqlite3 directly, and their values.

The hot statements (a transfer's moves and reads, thousands per minute for
small files) go to sqlite3 directly: SQLAlchemy's statement building and
result processing cost more than SQLite's own work there. Times are stored
as SQLAlchemy stores them (UTC, "YYYY-MM-DD HH:MM:SS.ffffff"), so rows
written either way compare in SQL. The columns named are those of
:mod:`records`, which :mod:`schema` checks against its tables at import.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from desktop_app.core.journal.facts import NewAttempt
from desktop_app.core.journal.records import TRANSFER_COLUMNS, TransferError
from desktop_app.core.model.states import TransferState, move_allowed

RETURNING = f" RETURNING {', '.join(TRANSFER_COLUMNS)}"
_INSERT_ATTEMPT = (
    "INSERT INTO attempts (transfer_id, number, started_at, ended_at, error_kind, "
    "error_title, error_message, error_cause, bytes_sent) VALUES (?, (SELECT "
    "coalesce(max(number), 0) + 1 FROM attempts WHERE transfer_id = ?), ?, ?, ?, ?, ?, ?, ?)"
)


# For each target state, the states a transfer may move to it from.
MOVE_SOURCES = {
    target: tuple(s.value for s in TransferState if move_allowed(s, target))
    for target in TransferState
}


def sqlite_time(moment: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores: naive UTC, microseconds always."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(" ", "microseconds")


def sql_value(value: Any) -> Any:
    """A column's value as sqlite3 takes it, stored as SQLAlchemy would store it."""
    if isinstance(value, datetime):
        return sqlite_time(value)
    if isinstance(value, bool):
        return int(value)
    return value


def sqlite_cursor(connection: Connection) -> Any:
    """A sqlite3 cursor inside the SQLAlchemy connection's transaction."""
    return connection.connection.driver_connection.cursor()  # type: ignore[union-attr]


@functools.cache
def update_sql(columns: tuple[str, ...], guarded_states: int) -> str:
    for column in columns:
        if column not in TRANSFER_COLUMNS:
            raise ValueError(f"the journal has no column {column!r}")
    assignments = ", ".join(f"{column} = ?" for column in columns)
    guard = f" AND state IN ({', '.join('?' * guarded_states)})" if guarded_states else ""
    return f"UPDATE transfers SET {assignments} WHERE id = ?{guard}{RETURNING}"


@functools.cache
def insert_sql(columns: tuple[str, ...]) -> str:
    names = ", ".join(columns)
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO transfers ({names}) VALUES ({marks}){RETURNING}"


def error_columns(error: TransferError | None) -> dict[str, str | None]:
    """The error columns of a transfer or an attempt (all None: no error)."""
    return {
        "error_kind": error.kind.value if error else None,
        "error_title": error.title if error else None,
        "error_message": error.message if error else None,
        "error_cause": error.cause.value if error else None,
    }


def insert_attempt(cursor: Any, transfer_id: int, attempt: NewAttempt) -> None:
    """Keep an attempt that ended, numbered after the transfer's last, in the cursor's commit."""
    error = error_columns(attempt.error)
    cursor.execute(
        _INSERT_ATTEMPT,
        (
            transfer_id,
            transfer_id,
            sqlite_time(attempt.started_at),
            sqlite_time(attempt.ended_at),
            error["error_kind"],
            error["error_title"],
            error["error_message"],
            error["error_cause"],
            attempt.bytes_sent,
        ),
    )

"""The journal's own SQL writes times as SQLAlchemy's SQLite DateTime does; its lock."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from desktop_app.core.journal.hot_path import sqlite_time
from desktop_app.core.journal.store import Journal
from desktop_app.core.model.errors import JournalLockedError


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 24, 8, 0, 0, tzinfo=UTC),  # no microseconds: still written out
        datetime(2026, 11, 24, 8, 0, 0, 999_999, tzinfo=UTC),
        datetime(2026, 11, 24, 1, 30, 0, 5, tzinfo=timezone(timedelta(hours=-7))),
        datetime(2026, 11, 24, 8, 0, 0, 123_456),  # noqa: DTZ001 - naive: taken as UTC already
    ],
)
def test_times_are_the_text_sqlalchemy_writes_so_they_compare_in_sql(moment: datetime) -> None:
    # Retry times are compared as text in SQL (due <= now): one format for both writers.
    dialect = sqlite.dialect()
    write = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert write is not None
    utc = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    assert sqlite_time(moment) == write(utc)


def test_the_lock_is_the_journal_files_own_so_deleting_journal_lock_changes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite3"
    running = Journal(path)
    try:
        assert path.stat().st_size > 0  # whole from the start: never taken for truncated
        path.with_suffix(".lock").unlink()
        with pytest.raises(JournalLockedError, match=f"pid {os.getpid()}"):
            Journal(path)  # its own open file: flock refuses it like another process
        beside = Journal(path, read_only=True)  # SQLite's own locks are not flock's
        assert beside.all() == running.all() == []
        beside.close()
    finally:
        running.close()
    Journal(path).close()  # released with its holder

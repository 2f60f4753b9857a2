"""One journal file: made whole, locked to one running Ferry, read and written safely.

:class:`JournalDatabase` opens the SQLite file (WAL, ``synchronous=FULL`` so
a part marked done survives a power cut), brings its schema up to date and
holds the exclusive lock that keeps a second Ferry out; or opens it
read-only beside a running Ferry (no lock, no writes). Writes go through one
group committer (many transfers' small writes share a commit) and reads may
come from any thread. Every failure leaves here as a :class:`JournalError`
that tells a person what to do (a read-only folder, a full disk, a damaged
file).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from sqlalchemy import Connection, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from desktop_app.core.db import migrate
from desktop_app.core.db.group_commit import GroupCommitter, WriterConnection
from desktop_app.core.db.locks import LockHeld, PidLock, unwritable
from desktop_app.core.db.migrate import Schema
from desktop_app.core.journal.records import refuse_truncated
from desktop_app.core.journal.schema import metadata
from desktop_app.core.model.errors import JournalError, JournalLockedError
from desktop_app.core.model.threads import TransferThread

T = TypeVar("T")


def _create_if_missing(path: Path) -> None:
    """A new journal appears whole: an empty SQLite database in WAL mode, linked in at once.

    The lock is taken on the journal file, so it must exist first; made in
    place it would be 0 bytes until the first commit, and a crash then would
    leave what :func:`refuse_truncated` rightly takes for a truncated journal.
    """
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.new")
    try:
        with contextlib.closing(sqlite3.connect(temp)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")  # writes the database header
        with contextlib.suppress(FileExistsError):  # another Ferry made it meanwhile
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _cannot_open(path: Path, exc: BaseException) -> JournalError:
    folder = path.parent
    reason = unwritable(folder)
    if reason is not None:
        return JournalError(
            f"The data folder {folder} {reason}, so Ferry cannot keep its journal "
            f"({path.name}) there. Make it writable (remount the disk read-write, or "
            f"`chmod u+w {folder}`), or set FERRY_HOME to a folder you can write.",
            title="Data folder is read-only",
        )
    return JournalError(
        f"The journal {path} cannot be opened ({type(exc).__name__}: {exc}). If the "
        f"disk is full, free space; if the file is damaged, move it aside (`mv {path} "
        f"{path}.broken`) and Ferry starts a new one: transfers it held are then "
        "forgotten (their files are still on disk)."
    )


# Room the journal wants free to go on: its WAL grows by pages per commit.
_ROOM_NEEDED = 8 * 1024 * 1024


# Every file worker reads the journal (up to 64 small files in flight, the
# transfers' window, plus the large files' workers). SQLAlchemy's default
# pool keeps 5 connections and closes any beyond it on return, so 500 small
# files opened (and set up) some 170 SQLite connections; kept, about 30.
# A reader's page cache grows only with the pages it reads: point lookups.
_READERS_KEPT = 72
_READERS_MORE = 16


class JournalDatabase:
    """The journal's SQLite file, its lock and its one writer."""

    def __init__(
        self,
        path: Path,
        *,
        read_only: bool = False,
    ) -> None:
        """Open the journal; ``read_only`` reads beside a running Ferry (no lock, no writes)."""
        self.path = path
        self.read_only = read_only
        # The lock is held on the journal file itself (Linux), so deleting
        # journal.lock lets no second Ferry in; journal.lock names the holder.
        self._lock = PidLock(path.with_suffix(".lock"), guarding=path)
        self._writer: GroupCommitter[Connection] | None = None
        self._writer_connection: WriterConnection | None = None
        if read_only:
            self._open_read_only()
            return
        try:
            refuse_truncated(path)
            _create_if_missing(path)
            self._lock.acquire()
        except LockHeld as held:
            raise JournalLockedError(
                f"Another Ferry (pid {held.holder or 'unknown'}) is using the journal "
                f"{path.parent}. Let it finish, or hand it your files; only one Ferry runs "
                "at a time."
            ) from held
        except (OSError, sqlite3.Error) as exc:  # sqlite3: making a new journal
            raise _cannot_open(path, exc) from exc
        try:
            # The path as it is: in a URL string a "?" or "#" in a folder name would cut it.
            self.engine = create_engine(
                URL.create("sqlite", database=str(path)),
                connect_args={"timeout": 30},
                pool_size=_READERS_KEPT,
                max_overflow=_READERS_MORE,
            )
            migrate.make_sqlite_durable(self.engine)
            with self.engine.connect() as connection:
                if not migrate.revisions(connection, Schema.JOURNAL).up_to_date:
                    migrate.upgrade(connection, Schema.JOURNAL)
            self._writer_connection = writer = WriterConnection(self.engine)
            self._writer = GroupCommitter(
                writer.begin,
                functools.partial(self._write_alone, writer),
                name=TransferThread.JOURNAL_WRITER.value,
                most=512,
            )
        except (SQLAlchemyError, OSError) as exc:
            self._lock.release()
            raise _cannot_open(path, exc) from exc
        except BaseException:
            self._lock.release()
            raise

    def _open_read_only(self) -> None:
        refuse_truncated(self.path)
        if not self.path.exists():
            # Nothing was ever queued here: an empty journal in memory says so.
            self.engine = create_engine("sqlite://")
            metadata.create_all(self.engine)
            return
        # SQLite reads the file name as a URI: quoted, and not parsed as a URL first.
        self.engine = create_engine(
            URL.create(
                "sqlite",
                database=f"file:{quote(str(self.path))}",
                query={"mode": "ro", "uri": "true"},
            ),
            connect_args={"timeout": 30, "uri": True},
        )

    def threads(self) -> list[threading.Thread]:
        """The thread that writes the journal (none when opened to read)."""
        return [self._writer.thread] if self._writer is not None else []

    def close(self) -> None:
        if self._writer is not None:
            self._writer.stop()
        if self._writer_connection is not None:
            self._writer_connection.close()
        self.engine.dispose()
        self._lock.release()

    def write(self, op: Callable[[Connection], T]) -> T:
        if self._writer is None:
            raise JournalError(
                f"The journal {self.path} was opened for reading only (another Ferry runs); "
                "nothing was changed."
            )
        return self._writer.run(op)

    def _write_alone(
        self, writer: WriterConnection, _label: str, op: Callable[[Connection], T]
    ) -> T:
        try:
            with writer.begin() as connection:
                return op(connection)
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise self._write_error(exc) from exc

    def _write_error(self, exc: Exception) -> JournalError:
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            free = -1
        if 0 <= free < _ROOM_NEEDED:
            return JournalError(
                f"The disk holding {self.path.parent} is full ({free // 1024} KiB free); "
                f"Ferry needs about {_ROOM_NEEDED >> 20} MiB there to record transfers, so it "
                "stopped sending. Nothing is lost: free some space, then run `ferry resume`.",
                title="Disk full",
            )
        return JournalError(
            f"Writing the journal {self.path} failed ({type(exc).__name__}). Check the disk; "
            "Ferry stops rather than lose track of a transfer, and `ferry resume` goes on "
            "from what was recorded."
        )

    def read_raw(self, sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
        try:
            connection = self.engine.raw_connection()
            try:
                return list(connection.cursor().execute(sql, list(params)))
            finally:
                connection.close()
        except (SQLAlchemyError, sqlite3.Error) as exc:
            raise JournalError(f"Reading the journal failed ({type(exc).__name__}).") from exc

    def read(self, statement: Any) -> list[Any]:
        try:
            with self.engine.connect() as connection:
                return list(connection.execute(statement))
        except SQLAlchemyError as exc:
            raise JournalError(f"Reading the journal failed ({type(exc).__name__}).") from exc

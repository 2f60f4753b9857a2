"""The streams the consistency check joins: the bucket listing and the catalog rows.

The listing is fetched on a thread of its own, a few pages ahead of the
merge (:class:`PagesAhead`): the server's time to produce a page overlaps the
check's work on the one before, and at most ``depth`` pages wait in memory.
It is then either taken as it comes with its byte order verified key by key
(:class:`StreamedListing`, which raises :class:`OutOfOrder` at the first key
that breaks it) or spooled into a temporary SQLite file and read back in key
byte order (:class:`SortedListing`). :func:`merge_by_key` joins the listing,
the rows and others' keys per key, holding one key's rows at a time.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from desktop_app.core.catalog.records import FileRecord
from desktop_app.core.model.bucket_objects import ObjectInfo

T = TypeVar("T")


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


K = TypeVar("K", bound=_Keyed)


class OutOfOrder(Exception):
    """The server listed a key before a smaller one: this pass's merge is void."""

    def __init__(self, before: str, after: str) -> None:
        super().__init__(f"{before!r} listed before {after!r}")


def in_byte_order(items: Iterable[K], disorder: Callable[[str, str], Exception]) -> Iterator[K]:
    """The items as they come, raising ``disorder(before, after)`` at the first key
    smaller (in UTF-8 bytes) than the one before it: the merge relies on that order."""
    # Compared as str: code point order is UTF-8 byte order, without encoding each key.
    previous: str | None = None
    for item in items:
        key = item.key
        if previous is not None and key < previous:
            raise disorder(previous, key)
        previous = key
        yield item


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_END = object()


class PagesAhead(Generic[T]):
    """The items of a paged source, its pages fetched on a thread of their own.

    At most ``depth`` pages wait for the reader. An error of the source is
    raised to the reader where the items stop; :meth:`close` (also at the end
    of iteration) stops the thread after the page it is fetching.
    """

    def __init__(self, pages: Iterator[list[T]], depth: int = 3, name: str = "ferry-pages") -> None:
        self._pages = pages
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fetch, name=name, daemon=True)
        self._thread.start()

    def _fetch(self) -> None:
        try:
            for page in self._pages:
                if not self._hand_over(page):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
            self._hand_over(_Failed(exc))
            return
        self._hand_over(_END)

    def _hand_over(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def __iter__(self) -> Iterator[T]:
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield from item  # type: ignore[misc]  # a page: list[T]
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)


class StreamedListing:
    """The bucket listing as the server sends it, verified to be in key byte order."""

    def __init__(self, objects: Iterable[ObjectInfo]) -> None:
        self._objects = objects
        self.count = 0

    def __iter__(self) -> Iterator[ObjectInfo]:
        for item in in_byte_order(self._objects, OutOfOrder):
            self.count += 1
            yield item

    def close(self) -> None:
        pass


class SortedListing:
    """The bucket listing spooled to disk and read back in key byte order."""

    def __init__(self, objects: Iterable[ObjectInfo], directory: Path | None) -> None:
        handle, name = tempfile.mkstemp(prefix="ferry-listing-", suffix=".sqlite3", dir=directory)
        os.close(handle)
        self.path = Path(name)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA cache_size=-8192")  # at most 8 MiB of cache
        self.db.execute(
            "CREATE TABLE objects (key BLOB PRIMARY KEY, size INTEGER, etag TEXT, modified TEXT)"
            " WITHOUT ROWID"
        )
        self.count = 0
        batch: list[tuple[bytes, int, str, str]] = []
        for item in objects:
            batch.append(
                (item.key.encode("utf-8"), item.size, item.etag, item.last_modified.isoformat())
            )
            if len(batch) >= 1000:
                self._flush(batch)
        self._flush(batch)

    def _flush(self, batch: list[tuple[bytes, int, str, str]]) -> None:
        if batch:
            self.db.executemany("INSERT INTO objects VALUES (?, ?, ?, ?)", batch)
            self.count += len(batch)
            batch.clear()

    def __iter__(self) -> Iterator[ObjectInfo]:
        cursor = self.db.execute("SELECT key, size, etag, modified FROM objects ORDER BY key")
        for key, size, etag, modified in cursor:
            yield ObjectInfo(key.decode("utf-8"), size, etag, datetime.fromisoformat(modified))

    def close(self) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class KeySeen:
    """Everything the check knows of one key."""

    key: str
    object: ObjectInfo | None
    rows: list[FileRecord]
    # Someone else holds it (rows we may not see): their live row, or their
    # deletion is its newest row (their object may still be stored, theirs to clean)
    others_hold: bool


def merge_by_key(
    objects: Iterable[ObjectInfo], rows: Iterable[FileRecord], others: Iterable[str]
) -> Iterator[KeySeen]:
    """The three streams joined per key, in key byte order, one key in memory at a time.

    Each stream must come in key byte order (the listing and the rows are
    verified to, see :func:`in_byte_order`). Keys are compared as ``str``:
    code point order is UTF-8 byte order, so nothing is encoded per key.
    """
    object_items, row_items, other_items = iter(objects), iter(rows), iter(others)
    obj = next(object_items, None)
    row = next(row_items, None)
    other = next(other_items, None)
    while True:
        key = _smallest(obj, row, other)
        if key is None:
            return
        found: ObjectInfo | None = None
        while obj is not None and obj.key == key:  # a key listed twice: the last one
            found, obj = obj, next(object_items, None)
        key_rows: list[FileRecord] = []
        while row is not None and row.key == key:
            key_rows.append(row)
            row = next(row_items, None)
        others_hold = False
        while other is not None and other == key:
            others_hold, other = True, next(other_items, None)
        yield KeySeen(key, found, key_rows, others_hold)


def _smallest(obj: ObjectInfo | None, row: FileRecord | None, other: str | None) -> str | None:
    """The smallest key at the head of the three streams; None when all have ended."""
    key = obj.key if obj is not None else None
    if row is not None and (key is None or row.key < key):
        key = row.key
    if other is not None and (key is None or other < key):
        key = other
    return key

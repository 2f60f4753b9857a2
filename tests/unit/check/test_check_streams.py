"""The check's streams: pages read ahead on a thread, and the join by key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from desktop_app.core.catalog.records import FileRecord
from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.check.streams import OutOfOrder, PagesAhead, in_byte_order, merge_by_key
from desktop_app.core.model.bucket_objects import ObjectInfo
from desktop_app.core.model.errors import StorageError, StorageErrorKind

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def test_pages_read_ahead_come_in_order_and_the_source_s_error_comes_where_it_happened() -> None:
    def pages() -> Iterator[list[int]]:
        yield [1, 2]
        yield [3]
        raise StorageError("the listing broke", kind=StorageErrorKind.TRANSIENT)

    got: list[int] = []
    with pytest.raises(StorageError, match="the listing broke"):
        got.extend(PagesAhead(pages(), depth=1))
    assert got == [1, 2, 3]


def test_a_reader_that_stops_early_stops_the_thread_without_reading_everything() -> None:
    fetched = []

    def endless() -> Iterator[list[int]]:
        for n in range(10**9):
            fetched.append(n)
            yield [n]

    ahead = PagesAhead(endless(), depth=2)
    assert next(iter(ahead)) == 0
    ahead.close()
    assert not ahead._thread.is_alive()
    assert len(fetched) <= 5  # the read page, two waiting, one being handed over


def row(key: str, number: int, status: FileStatus = FileStatus.ACTIVE) -> FileRecord:
    return FileRecord(
        number, "b", key, "me", key, 1, "0" * 64, "e", "x/y", status, NOW, NOW, None, None, None
    )


def test_the_join_holds_each_key_s_object_rows_and_others_together_in_byte_order() -> None:
    objects = [ObjectInfo(k, 1, "e", NOW) for k in ["a", "a-b", "a/B", "é"]]
    rows = [row("a", 1, FileStatus.DELETED), row("a", 2), row("a/B", 3), row("z", 4)]
    seen = list(merge_by_key(objects, rows, ["a-b", "z"]))
    assert [s.key for s in seen] == ["a", "a-b", "a/B", "z", "é"]  # bytes: '-' < '/' < 'z' < 'é'
    first = seen[0]
    assert first.object is not None
    assert [r.id for r in first.rows] == [1, 2]
    assert seen[1].others_hold
    assert not seen[1].rows
    assert seen[1].object is not None
    assert seen[3].object is None
    assert seen[3].others_hold
    assert [r.id for r in seen[3].rows] == [4]
    assert seen[4].rows == []
    assert not seen[4].others_hold


def _object(key: str) -> ObjectInfo:
    return ObjectInfo(key, 1, "e", NOW)


def test_byte_order_is_checked_key_by_key_and_the_first_break_is_named() -> None:
    # "a-b" < "a/B" in UTF-8 bytes ("-" is 0x2d, "/" 0x2f), though a listing
    # sorted another way (SeaweedFS) puts "a/B" first; "é" sorts after "z".
    ordered = [_object(k) for k in ["a-b", "a/B", "z", "é"]]
    assert list(in_byte_order(ordered, OutOfOrder)) == ordered

    seen: list[str] = []
    walk = in_byte_order([_object(k) for k in ["a", "a/B", "a-b", "b"]], OutOfOrder)
    with pytest.raises(OutOfOrder, match="'a/B' listed before 'a-b'"):
        seen.extend(item.key for item in walk)
    assert seen == ["a", "a/B"]  # what came before the break, and nothing after it

"""The catalog on SQLite and on the real PostgreSQL, with the same tests."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text

from desktop_app.core.catalog.records import (
    NOT_LOOKED,
    FileQuery,
    FileRecord,
    ObjectAtKey,
    Reservation,
    ReservationOutcome,
    UploadIntent,
)
from desktop_app.core.catalog.schema import AuditAction, FileStatus, OutboxEventType
from desktop_app.core.catalog.service import CatalogService, open_catalog
from desktop_app.core.db.migrate import Schema
from desktop_app.core.model.errors import (
    CatalogAccessError,
    CatalogError,
    InvalidKeyError,
    KeyConflictError,
    NotInCatalogError,
)
from desktop_app.core.settings.profiles import DuplicatePolicy
from tests.conftest import PgLogins, pg_url_for_schema

SHA_A = "a" * 64
SHA_B = "b" * 64


def intent(key: str, sha: str = SHA_A, bucket: str = "files") -> UploadIntent:
    return UploadIntent(
        bucket=bucket, key=key, original_name=key.rsplit("/", 1)[-1], size=3, sha256=sha
    )


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[CatalogService]:
    service = open_catalog(catalog_url, owner="alice")
    yield service
    service.close()


def test_upload_lifecycle_writes_audit_and_outbox(catalog: CatalogService) -> None:
    reserved = catalog.reserve(intent("docs/a.txt"))
    assert reserved.outcome is ReservationOutcome.RESERVED
    assert reserved.record.status is FileStatus.PENDING
    active = catalog.activate(reserved.record.id, etag="0123")
    assert active.status is FileStatus.ACTIVE
    assert active.etag == "0123"
    assert active.uploaded_at is not None
    actions = [e.action for e in catalog.audit_entries(active.id)]
    assert actions == [AuditAction.RESERVE, AuditAction.ACTIVATE]
    events = catalog.unpublished_events()
    assert [e.event_type for e in events] == [OutboxEventType.FILE_UPLOADED]
    assert events[0].payload["key"] == "docs/a.txt"
    assert events[0].payload["sha256"] == SHA_A


def test_same_content_under_another_key_becomes_a_copy_or_is_skipped(
    catalog: CatalogService,
) -> None:
    first = catalog.reserve(intent("a.txt"))
    catalog.activate(first.record.id, etag="e")
    skipped = catalog.reserve(intent("copy-of-a.txt"), DuplicatePolicy.SKIP)
    assert skipped.outcome is ReservationOutcome.DUPLICATE
    assert skipped.record.key == "a.txt"
    copy = catalog.reserve(intent("copy-of-a.txt"))
    assert copy.outcome is ReservationOutcome.COPY
    assert copy.source is not None
    assert copy.source.key == "a.txt"
    assert copy.record.key == "copy-of-a.txt"
    assert copy.record.status is FileStatus.PENDING
    done = catalog.activate(copy.record.id, etag="e", copied_from="a.txt")
    assert done.copied_from == "a.txt"
    assert catalog.audit_entries(done.id)[-1].details["copied_from"] == "a.txt"
    again = catalog.reserve(intent("a.txt"))
    assert again.outcome is ReservationOutcome.DUPLICATE
    assert again.record.id == first.record.id


def test_the_duplicate_rule_holds_per_bucket_and_per_owner(catalog: CatalogService) -> None:
    catalog.activate(catalog.reserve(intent("a.txt")).record.id, etag="e")
    other_bucket = catalog.reserve(intent("a.txt", bucket="other"))
    assert other_bucket.outcome is ReservationOutcome.RESERVED
    someone = CatalogService(catalog.engine, owner="someone-else")
    if catalog.dialect == "sqlite":  # PostgreSQL's owner is the login, tested with two below
        theirs = someone.reserve(intent("theirs.txt"))
        assert theirs.outcome is ReservationOutcome.RESERVED, "never tell B what A stored"


def test_same_content_in_flight_is_waited_for_not_called_a_duplicate(
    catalog: CatalogService,
) -> None:
    first = catalog.reserve(intent("a.txt"))
    with pytest.raises(CatalogError, match=r"being uploaded right now as 'a\.txt'") as raised:
        catalog.reserve(intent("copy.txt"))
    assert raised.value.transient
    catalog.activate(first.record.id, etag="e")
    assert catalog.reserve(intent("copy.txt")).outcome is ReservationOutcome.COPY


def test_reserving_again_after_a_crash_resumes_the_same_row(catalog: CatalogService) -> None:
    mine = dataclasses.replace(intent("a.txt"), token="t-mine")
    first = catalog.reserve(mine)
    again = catalog.reserve(mine)
    assert again.outcome is ReservationOutcome.RESUMED
    assert again.record.id == first.record.id


def test_a_reservation_belongs_to_its_token(catalog: CatalogService) -> None:
    """A second Ferry with the same file for the same key waits; it never takes the row."""
    mine = dataclasses.replace(intent("a.txt"), token="t-mine")
    theirs = dataclasses.replace(mine, token="t-theirs")
    row = catalog.reserve(mine).record
    with pytest.raises(CatalogError, match="being uploaded right now") as waiting:
        catalog.reserve(theirs)
    assert waiting.value.transient
    with pytest.raises(CatalogError, match="reserved by another transfer"):
        catalog.activate(row.id, etag="e", token="t-theirs")
    catalog.release(row.id, reason="not theirs to release", token="t-theirs")
    assert catalog.reservation_stands(row.id, "t-mine")
    assert not catalog.reservation_stands(row.id, "t-theirs")
    catalog.activate(row.id, etag="e", token="t-mine")
    assert catalog.reserve(theirs).outcome is ReservationOutcome.DUPLICATE  # stored already
    assert not catalog.reservation_stands(row.id, "t-mine"), (
        "an active row is nobody's to compensate"
    )


def test_key_taken_by_other_content_is_a_conflict(catalog: CatalogService) -> None:
    catalog.activate(catalog.reserve(intent("a.txt")).record.id, etag="e")
    with pytest.raises(KeyConflictError, match="already in bucket"):
        catalog.reserve(intent("a.txt", sha=SHA_B))


def test_reupload_after_delete_works_for_same_key_and_same_content(
    catalog: CatalogService,
) -> None:
    row = catalog.reserve(intent("a.txt")).record
    catalog.activate(row.id, etag="e")
    deleted_keys: list[str] = []
    outcome = catalog.delete("files", "a.txt", lambda row: deleted_keys.append(row.key))
    assert outcome.object_deleted
    assert deleted_keys == ["a.txt"]
    assert outcome.record.status is FileStatus.DELETED
    assert outcome.record.deleted_by == catalog.owner
    again = catalog.reserve(intent("a.txt"))
    assert again.outcome is ReservationOutcome.RESERVED
    assert again.record.id != row.id
    catalog.activate(again.record.id, etag="e")
    history = catalog.search(FileQuery(bucket="files", prefix="a.txt"))
    assert sorted(r.status.value for r in history) == ["active", "deleted"]


def test_delete_marks_the_row_before_the_object_and_keeps_storage_failures(
    catalog: CatalogService,
) -> None:
    catalog.activate(catalog.reserve(intent("a.txt")).record.id, etag="e")
    seen_status: list[FileStatus] = []

    def failing_delete(row: FileRecord) -> None:
        live = catalog.live("files", row.key)
        seen_status.append(live.status if live else FileStatus.DELETED)
        raise RuntimeError("connection reset by peer")

    outcome = catalog.delete("files", "a.txt", failing_delete)
    assert seen_status == [FileStatus.DELETED]  # the row was committed as deleted first
    assert not outcome.object_deleted
    assert outcome.error == "connection reset by peer"
    record = catalog.get(outcome.record.id)
    assert record is not None
    assert record.last_error == "connection reset by peer"
    actions = [e.action for e in catalog.audit_entries(outcome.record.id)]
    assert AuditAction.DELETE_OBJECT_FAILED in actions


def test_delete_of_unknown_key_says_so(catalog: CatalogService) -> None:
    with pytest.raises(NotInCatalogError, match="not a live file"):
        catalog.delete("files", "nope.txt", lambda _k: None)


def test_release_removes_the_pending_intent(catalog: CatalogService) -> None:
    row = catalog.reserve(intent("a.txt")).record
    catalog.release(row.id, reason="cancelled", token=None)
    assert catalog.get(row.id) is None
    assert catalog.reserve(intent("a.txt")).outcome is ReservationOutcome.RESERVED


def test_bad_keys_are_refused_before_any_write(catalog: CatalogService) -> None:
    for key in ("../escape", "/abs", "ctl\x01", "é" * 600):
        with pytest.raises(InvalidKeyError):
            catalog.reserve(intent(key))
    assert catalog.search(FileQuery(bucket="files")) == []


def test_failure_before_commit_leaves_neither_change_nor_audit(catalog: CatalogService) -> None:
    row = catalog.reserve(intent("a.txt")).record
    audit_before = len(catalog.audit_entries())

    def explode(_connection: object) -> None:
        raise RuntimeError("power cut before commit")

    event.listen(catalog.engine, "commit", explode)
    try:
        with pytest.raises(Exception, match="power cut"):
            catalog.activate(row.id, etag="e")
    finally:
        event.remove(catalog.engine, "commit", explode)
    after = catalog.get(row.id)
    assert after is not None
    assert after.status is FileStatus.PENDING
    assert len(catalog.audit_entries()) == audit_before
    assert catalog.unpublished_events() == []


def _upload_at_once(catalog: CatalogService, keys: list[str]) -> dict[str, object]:
    """Reserve and activate each key from a thread of its own, all at the same moment
    (as an upload's workers do, so the catalog's writes share transactions); each
    key's row, or the error its upload met."""
    barrier = threading.Barrier(len(keys))
    outcome: dict[str, object] = {}

    def upload(n: int, key: str) -> None:
        barrier.wait()
        try:
            row = catalog.reserve(intent(key, sha=f"{n:064x}")).record
            outcome[key] = catalog.activate(row.id, etag=f"e{n}")
        except Exception as exc:  # noqa: BLE001 - the test reads each key's error
            outcome[key] = exc

    threads = [threading.Thread(target=upload, args=(n, k)) for n, k in enumerate(keys)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcome


def test_uploads_sharing_transactions_write_their_entries_in_one_statement_each(
    catalog: CatalogService,
) -> None:
    """#35: the audit entries and outbox events of a transaction go in one statement
    a kind (one round trip on PostgreSQL), and its database clock is read once;
    every upload still has its own entries, with its own values."""
    counts = {"commits": 0, "audit": 0, "outbox": 0, "now": 0}
    markers: dict[str, tuple[str, ...]] = {
        "audit": ("audit_log", "ferry_audit"),
        "outbox": ("outbox", "ferry_announce"),
        "now": ("now()",),
    }
    first = threading.Event()

    def count(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if not first.is_set():
            # The first transaction is slow, so the other uploads queue behind it and
            # share the next ones (as a busy catalog makes them do).
            first.set()
            time.sleep(0.3)
        for kind, found_in in markers.items():
            if any(marker in statement for marker in found_in):
                counts[kind] += 1

    def committed(_conn: object) -> None:
        counts["commits"] += 1

    keys = [f"group/{n:02d}.txt" for n in range(24)]
    event.listen(catalog.engine, "before_cursor_execute", count)
    event.listen(catalog.engine, "commit", committed)
    try:
        outcome = _upload_at_once(catalog, keys)
    finally:
        event.remove(catalog.engine, "before_cursor_execute", count)
        event.remove(catalog.engine, "commit", committed)
    rows = [outcome[k] for k in keys]
    assert all(isinstance(r, FileRecord) and r.status is FileStatus.ACTIVE for r in rows), rows
    # 24 reservations and 24 activations: 48 audit entries and 24 events, but no
    # more statements of each kind than transactions committed.
    assert counts["audit"] <= counts["commits"] < 48, counts
    assert counts["outbox"] <= counts["commits"], counts
    assert counts["now"] <= counts["commits"], counts
    events = {e.payload["key"]: e for e in catalog.unpublished_events()}
    for n, row in enumerate(rows):
        assert isinstance(row, FileRecord)
        entries = catalog.audit_entries(row.id)
        assert [e.action for e in entries] == [AuditAction.RESERVE, AuditAction.ACTIVATE]
        assert entries[1].details["etag"] == f"e{n}"
        assert entries[0].key == row.key
        assert events[row.key].payload["sha256"] == f"{n:064x}"
        assert events[row.key].payload["status"] == FileStatus.ACTIVE.value


def test_an_entry_that_cannot_be_written_fails_its_own_upload_only(
    catalog: CatalogService,
) -> None:
    """The entries written at a transaction's end still commit or roll back with it:
    the audit entry of one upload cannot be written, so that upload fails and leaves
    no row; the others sharing its transaction are stored, each with its entries."""

    def refuse(
        _conn: object, _cursor: object, statement: str, parameters: object, *_: object
    ) -> None:
        if "audit" in statement and "bad.txt" in repr(parameters):
            raise RuntimeError("the audit log cannot be written")

    keys = [f"ok-{n}.txt" for n in range(11)] + ["bad.txt"]
    event.listen(catalog.engine, "before_cursor_execute", refuse)
    try:
        outcome = _upload_at_once(catalog, keys)
    finally:
        event.remove(catalog.engine, "before_cursor_execute", refuse)
    assert isinstance(outcome["bad.txt"], Exception)
    assert "audit log" in str(outcome["bad.txt"])
    assert catalog.search(FileQuery(bucket="files", prefix="bad")) == []
    stored = [outcome[k] for k in keys[:-1]]
    assert all(isinstance(r, FileRecord) and r.status is FileStatus.ACTIVE for r in stored)
    for row in stored:
        assert isinstance(row, FileRecord)
        actions = [e.action for e in catalog.audit_entries(row.id)]
        assert actions == [AuditAction.RESERVE, AuditAction.ACTIVATE]
    assert len(catalog.unpublished_events()) == len(stored)
    assert not any(e.key == "bad.txt" for e in catalog.audit_entries())


@contextlib.contextmanager
def _writer_held(catalog: CatalogService) -> Iterator[None]:
    """The catalog's writer busy for half a second with a reservation of
    ``ahead.txt``: what is asked inside the block queues behind it and shares the
    next transaction (as a busy catalog makes uploads do)."""
    first = threading.Event()

    def slow(*_: object) -> None:
        if not first.is_set():
            first.set()
            time.sleep(0.5)

    event.listen(catalog.engine, "before_cursor_execute", slow)
    ahead = threading.Thread(target=catalog.reserve, args=(intent("ahead.txt", sha="e" * 64),))
    try:
        ahead.start()
        assert first.wait(10)
        yield
    finally:
        ahead.join()
        event.remove(catalog.engine, "before_cursor_execute", slow)


def _uploads_beside_a_taken_key(catalog: CatalogService) -> tuple[dict[str, object], int]:
    """Twelve uploads and one of ``group/taken.txt`` (held by a row with other
    content) share one transaction; each key's outcome and the rows inserted."""
    # Each transaction's statements, as (is an insert, names the taken key).
    transactions: list[list[tuple[bool, bool]]] = [[]]

    def count(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        inserting = statement.startswith("INSERT INTO files")
        transactions[-1].append((inserting, "group/taken.txt" in repr(parameters)))

    def committed(_conn: object) -> None:
        transactions.append([])

    keys = [f"group/{n:02d}.txt" for n in range(12)]
    keys.insert(6, "group/taken.txt")
    event.listen(catalog.engine, "before_cursor_execute", count)
    event.listen(catalog.engine, "commit", committed)
    try:
        with _writer_held(catalog):
            outcome = _upload_at_once(catalog, keys)
    finally:
        event.remove(catalog.engine, "before_cursor_execute", count)
        event.remove(catalog.engine, "commit", committed)
    assert isinstance(outcome["group/taken.txt"], KeyConflictError)
    stored = [outcome[k] for k in keys if k != "group/taken.txt"]
    assert all(isinstance(r, FileRecord) and r.status is FileStatus.ACTIVE for r in stored)
    # The taken key's look-up shared a committed transaction with other uploads' rows.
    assert any(
        any(taken for _insert, taken in statements)
        and any(insert and not taken for insert, taken in statements)
        for statements in transactions[:-1]
    ), "the taken key was not in a group"
    return outcome, sum(insert for statements in transactions for insert, _ in statements)


def test_a_key_taken_costs_the_uploads_sharing_its_transaction_nothing(
    catalog: CatalogService,
) -> None:
    """#35: one upload of a group meets a key taken with other content. It gets
    "Key already taken"; the others are reserved once each in the shared
    transaction, not rolled back and written again one by one."""
    taken = catalog.reserve(intent("group/taken.txt", sha="f" * 64)).record
    catalog.activate(taken.id, etag="theirs")
    _outcome, inserts = _uploads_beside_a_taken_key(catalog)
    assert inserts == 1 + 12, "each reservation written once, the taken key's not tried"
    assert catalog.get(taken.id).etag == "theirs"  # type: ignore[union-attr]


def test_a_key_another_user_holds_costs_the_uploads_sharing_its_transaction_nothing(
    postgres_admin_url: str, pg_schema: str, pg_roles: PgLogins
) -> None:
    """#35, a team: Bob's look-up cannot see Alice's row (row-level security), so
    only the unique index finds the key taken. That upload gets "Key already
    taken"; the others are not rolled back and written again one by one (in
    `make bench-team`, every contested key did that to a whole group)."""
    alice = open_catalog(pg_roles.url(pg_roles.alice), owner="ignored")
    bob = open_catalog(pg_roles.url(pg_roles.bob), owner="ignored")
    try:
        taken = alice.reserve(intent("group/taken.txt", sha="f" * 64)).record
        alice.activate(taken.id, etag="alice's")
        outcome, inserts = _uploads_beside_a_taken_key(bob)
        assert "someone else's file" in str(outcome["group/taken.txt"])
        assert inserts == 1 + 13, "each reservation tried once"
        assert alice.live("files", "group/taken.txt") == alice.get(taken.id)
        assert {r.owner for r in outcome.values() if isinstance(r, FileRecord)} == {bob.owner}
    finally:
        alice.close()
        bob.close()


def test_an_overwrite_that_loses_the_race_keeps_the_missing_row_it_would_replace(
    postgres_admin_url: str, pg_schema: str
) -> None:
    """An overwrite steps our missing row aside (a write), then finds the same
    content being sent under another key by the same login elsewhere: the whole
    shared transaction goes, so the missing row is not deleted without its successor."""
    catalog = open_catalog(pg_url_for_schema(postgres_admin_url, pg_schema), owner="alice")
    elsewhere = psycopg.connect(postgres_admin_url)
    outcome: dict[str, object] = {}

    def reserve(key: str, sha: str, *, overwrite: bool) -> None:
        try:
            outcome[key] = catalog.reserve(intent(key, sha=sha), overwrite=overwrite)
        except Exception as exc:  # noqa: BLE001 - the test reads each key's outcome
            outcome[key] = exc

    try:
        old = catalog.reserve(intent("k.txt", sha="b" * 64)).record
        catalog.activate(old.id, etag="old")
        with catalog.repairing("files", "k.txt") as locked:
            locked.mark_missing(old.id, reason="gone")
        # The same content, pending under another key, not yet committed.
        elsewhere.execute(f'SET search_path TO "{pg_schema}"')
        elsewhere.execute(
            "INSERT INTO files (bucket, key, owner, original_name, size, content_type,"
            " created_at, sha256, status, token)"
            " VALUES ('files', 'other.txt', current_user, 'other.txt', 3, 'text/plain', now(),"
            " %s, 'pending', 't')",
            ("a" * 64,),
        )
        uploads = [
            threading.Thread(target=reserve, args=("k.txt", "a" * 64), kwargs={"overwrite": True}),
            threading.Thread(target=reserve, args=("z.txt", "c" * 64), kwargs={"overwrite": False}),
        ]
        with _writer_held(catalog):
            for upload in uploads:
                upload.start()
            time.sleep(1.0)  # the overwrite's insert waits for the other machine's row
            elsewhere.commit()
            for upload in uploads:
                upload.join(10)
        assert isinstance(outcome["k.txt"], CatalogError), outcome
        assert "same content" in str(outcome["k.txt"])
        assert isinstance(outcome["z.txt"], Reservation)
        assert catalog.get(old.id).status is FileStatus.MISSING  # type: ignore[union-attr]
        assert AuditAction.DELETE not in [e.action for e in catalog.audit_entries(old.id)]
    finally:
        elsewhere.close()
        catalog.close()


def test_a_group_locks_the_keys_of_its_activations_and_reservations_in_one_order(
    postgres_admin_url: str, pg_schema: str
) -> None:
    """#35: a group's activations take their keys' locks in key order with its
    reservations, as every client's groups do; an activation locked first was
    one half of a deadlock between two clients of `make bench-team`."""
    catalog = open_catalog(pg_url_for_schema(postgres_admin_url, pg_schema), owner="alice")
    later = catalog.reserve(intent("k/2.txt", sha="2" * 64)).record
    locked: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        if "pg_advisory_xact_lock" in statement:
            locked.append(parameters["name"])

    event.listen(catalog.engine, "before_cursor_execute", count)
    try:
        with _writer_held(catalog):
            activation = threading.Thread(
                target=catalog.activate,
                args=(later.id,),
                kwargs={"etag": "e", "key": ("files", "k/2.txt")},
            )
            activation.start()
            time.sleep(0.05)
            catalog.reserve(intent("k/1.txt", sha="1" * 64))
            activation.join()
    finally:
        event.remove(catalog.engine, "before_cursor_execute", count)
        catalog.close()
    assert locked == ["files/ahead.txt", "files/k/1.txt", "files/k/2.txt"]


def test_a_reservation_whose_connection_is_lost_is_retried(
    postgres_admin_url: str, pg_schema: str
) -> None:
    """A connection cut in the middle of an upload's transaction (a failover, a
    restart) is a transient error: the reservation is tried again on a new one and
    stored, with its audit entry, not failed for good."""
    catalog = open_catalog(pg_url_for_schema(postgres_admin_url, pg_schema), owner="alice")
    cuts: list[int] = []

    def cut(conn: Any, _cursor: object, statement: str, *_rest: object) -> None:
        # The group's transaction, then the same request's own first one.
        if statement.startswith("INSERT INTO files") and len(cuts) < 2:
            pid = conn.connection.driver_connection.info.backend_pid
            with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            cuts.append(pid)

    event.listen(catalog.engine, "before_cursor_execute", cut)
    try:
        reserved = catalog.reserve(intent("after-the-cut.txt"))
    finally:
        event.remove(catalog.engine, "before_cursor_execute", cut)
        catalog.close()
    catalog = open_catalog(pg_url_for_schema(postgres_admin_url, pg_schema), owner="alice")
    try:
        assert len(cuts) == 2
        assert reserved.outcome is ReservationOutcome.RESERVED
        assert catalog.get(reserved.record.id) is not None
        actions = [e.action for e in catalog.audit_entries(reserved.record.id)]
        assert actions == [AuditAction.RESERVE]
    finally:
        catalog.close()


def test_search_pages_in_byte_order(catalog: CatalogService) -> None:
    keys = ["a/B", "a/a", "a-b", "a_b", "é", "Z", "a"]
    for n, key in enumerate(keys):
        row = catalog.reserve(intent(key, sha=f"{n:064x}")).record
        catalog.activate(row.id, etag="e")
    expected = sorted(keys, key=lambda k: k.encode("utf-8"))
    first = catalog.search(FileQuery(bucket="files", limit=4))
    second = catalog.search(FileQuery(bucket="files", limit=4, after_key=first[-1].key))
    assert [r.key for r in first + second] == expected
    assert [r.key for r in catalog.iter_in_key_order("files")] == expected
    assert [r.key for r in catalog.search(FileQuery(bucket="files", prefix="a/"))] == ["a/B", "a/a"]
    found = catalog.search(FileQuery(bucket="files", name_contains="B", status=FileStatus.ACTIVE))
    assert {r.key for r in found} == {"a/B", "a-b", "a_b"}


def test_search_by_name_finds_the_files_under_a_folder_of_that_name(
    catalog: CatalogService,
) -> None:
    """#20: the name filter read file names only: a folder's name found nothing under it."""
    keys = [
        "Projects/Q3_Report/summary.pdf",
        "Projects/Q3-Report/notes.txt",  # '_' is no wildcard: not a Q3_Report
        "archive/q3_report.pdf",
        "Budget 50%/plan.ods",
        "ÉTÉ 2026/plage.jpg",
        "misc/readme.md",
    ]
    for n, key in enumerate(keys):
        row = catalog.reserve(intent(key, sha=f"{n:064x}")).record
        catalog.activate(row.id, etag="e")

    def found(fragment: str) -> list[str]:
        return [r.key for r in catalog.search(FileQuery(bucket="files", name_contains=fragment))]

    assert found("q3_report") == ["Projects/Q3_Report/summary.pdf", "archive/q3_report.pdf"]
    assert found("PROJECTS/") == ["Projects/Q3-Report/notes.txt", "Projects/Q3_Report/summary.pdf"]
    assert found("%") == found("50%") == ["Budget 50%/plan.ods"]
    assert found("ÉTÉ") == found("plage") == ["ÉTÉ 2026/plage.jpg"]
    assert found("readme") == ["misc/readme.md"]  # the file's own name, as before
    assert found("nowhere") == []
    if catalog.dialect == "postgresql":  # SQLite's lower() folds ASCII letters only
        assert found("été") == ["ÉTÉ 2026/plage.jpg"]


def test_concurrent_reservations_leave_exactly_one_live_row(catalog_url: str) -> None:
    services = [open_catalog(catalog_url, owner=f"user{n}") for n in range(6)]
    barrier = threading.Barrier(len(services))
    outcomes: list[str] = []
    lock = threading.Lock()

    def contend(service: CatalogService, n: int) -> None:
        barrier.wait()
        try:
            result = service.reserve(intent("same/key.bin", sha=f"{n:064x}"))
            label = result.outcome.value
        except KeyConflictError:
            label = "conflict"
        except CatalogError as exc:  # must never be a raw database error
            label = f"error: {exc}"
        with lock:
            outcomes.append(label)

    threads = [threading.Thread(target=contend, args=(s, n)) for n, s in enumerate(services)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["reserved"], outcomes
    live = services[0].search(FileQuery(bucket="files", prefix="same/"))
    assert len(live) == 1
    for service in services:
        service.close()


def test_opening_again_does_not_migrate_twice(catalog_url: str) -> None:
    open_catalog(catalog_url, owner="alice").close()
    service = open_catalog(catalog_url, owner="alice")
    with service.engine.connect() as connection:
        assert (
            connection.execute(text("SELECT version_num FROM ferry_schema_version")).scalar()
            == Schema.CATALOG.head
        )
    service.close()


def test_events_written_before_the_relay_get_ids_of_their_own(catalog_url: str) -> None:
    """A catalog at 0004 with waiting events: 0005 gives each a distinct event_uid."""
    from alembic import command

    from desktop_app.core.catalog.database import create_catalog_engine
    from desktop_app.core.db import migrate
    from desktop_app.core.db.migrate import Schema

    engine = create_catalog_engine(catalog_url)
    with engine.connect() as connection:
        command.upgrade(migrate._config(Schema.CATALOG, connection), "0004")
        connection.commit()
        for n in range(3):
            connection.execute(
                text(
                    "INSERT INTO outbox (event_type, owner, payload, created_at) "
                    "VALUES ('file.uploaded', 'alice', :payload, :at)"
                ),
                {"payload": f'{{"bucket": "files", "key": "old-{n}"}}', "at": datetime.now(UTC)},
            )
        connection.commit()
    engine.dispose()
    service = open_catalog(catalog_url, owner="alice")
    try:
        events = service.unpublished_events()
        assert [e.payload["key"] for e in events] == ["old-0", "old-1", "old-2"]
        assert len({e.event_uid for e in events}) == 3
        assert all(len(e.event_uid) == 36 for e in events)
        make = service.reserve(intent("new.txt"))
        service.activate(make.record.id, etag="e")
        assert len({e.event_uid for e in service.unpublished_events()}) == 4
        assert service.outbox_backlog().waiting == 4
    finally:
        service.close()


# -- PostgreSQL only: owners and row-level security ---------------------------


def test_row_level_security_keeps_users_to_their_own_rows(
    postgres_admin_url: str, pg_schema: str, pg_roles: PgLogins
) -> None:
    alice_name, bob_name, admin_name = pg_roles.alice, pg_roles.bob, pg_roles.admin
    alice = open_catalog(
        pg_url_for_schema(postgres_admin_url, pg_schema, alice_name), owner="ignored"
    )
    bob = open_catalog(pg_url_for_schema(postgres_admin_url, pg_schema, bob_name), owner="ignored")
    admin = open_catalog(pg_url_for_schema(postgres_admin_url, pg_schema, admin_name), owner="x")
    try:
        assert alice.owner == alice_name  # the owner is the catalog login
        row = alice.reserve(intent("alice/report.pdf")).record
        alice.activate(row.id, etag="e")
        assert row.owner == alice_name

        assert bob.search(FileQuery(bucket="files")) == []
        assert bob.get(row.id) is None
        with pytest.raises(NotInCatalogError):
            bob.delete("files", "alice/report.pdf", lambda _k: None)
        assert alice.live("files", "alice/report.pdf") is not None

        assert [r.key for r in admin.search(FileQuery(bucket="files"))] == ["alice/report.pdf"]
    finally:
        for service in (alice, bob, admin):
            service.close()


def test_login_that_may_not_migrate_gets_a_clear_message(
    postgres_admin_url: str, pg_schema: str, pg_roles: PgLogins
) -> None:
    alice_name = pg_roles.alice
    with psycopg.connect(postgres_admin_url, autocommit=True) as connection:
        connection.execute(f"UPDATE \"{pg_schema}\".ferry_schema_version SET version_num = '0001'")
    with pytest.raises(CatalogAccessError, match="may not upgrade it"):
        open_catalog(pg_url_for_schema(postgres_admin_url, pg_schema, alice_name), owner="x")


def test_only_the_reserving_upload_keeps_its_row_alive(catalog: CatalogService) -> None:
    row = catalog.reserve(dataclasses.replace(intent("a.txt"), token="mine")).record
    assert row.alive_at == row.created_at
    time.sleep(0.01)
    # Another token's keep-alive changes nothing, and learns that the row is not its own.
    assert catalog.touch([(row.id, "not-mine")]) == [row.id]
    assert (catalog.get(row.id) or row).alive_at == row.alive_at
    assert catalog.touch([(row.id, "mine")]) == []
    touched = (catalog.get(row.id) or row).alive_at
    assert touched is not None
    assert row.alive_at is not None
    assert touched > row.alive_at
    # A removed reservation is reported lost to the upload that touches it.
    catalog.release(row.id, reason="removed by a check", token="mine")
    assert catalog.touch([(row.id, "mine")]) == [row.id]


def test_a_teams_rows_take_their_times_from_the_database_clock(
    postgres_admin_url: str, pg_schema: str
) -> None:
    # A laptop whose clock is an hour slow: what it reserves and keeps alive
    # is still dated by the database server, the clock every check compares with.
    opened = open_catalog(pg_url_for_schema(postgres_admin_url, pg_schema), owner="alice")
    slow = datetime.now(UTC) - timedelta(hours=1)
    laptop = CatalogService(opened.engine, owner=opened.owner, clock=lambda: slow)
    try:
        row = laptop.reserve(dataclasses.replace(intent("a.txt"), token="mine")).record
        server_now = opened.database_now()
        for moment in (row.created_at, row.alive_at):
            assert moment is not None
            assert abs(moment - server_now) < timedelta(seconds=5)
        laptop.touch([(row.id, "mine")])
        stored = laptop.get(row.id)
        assert stored is not None
        assert stored.alive_at is not None
        assert abs(stored.alive_at - opened.database_now()) < timedelta(seconds=5)
        active = laptop.activate(row.id, etag="e", token="mine")
        assert active.uploaded_at is not None
        assert abs(active.uploaded_at - server_now) < timedelta(seconds=5)
    finally:
        opened.close()


def test_what_reserve_and_activate_return_is_what_the_catalog_holds(
    catalog: CatalogService,
) -> None:
    # The upload path builds its records from what it wrote, without reading
    # the row back: they must equal the stored rows, field for field.
    reserved = catalog.reserve(dataclasses.replace(intent("r.txt"), token="t1", endpoint="e1"))
    assert reserved.record == catalog.get(reserved.record.id)
    active = catalog.activate(reserved.record.id, etag="etag-1", token="t1")
    assert active == catalog.get(active.id)
    assert active.status is FileStatus.ACTIVE
    assert active.etag == "etag-1"
    [event] = catalog.unpublished_events()
    assert event.payload["status"] == "active"
    assert event.payload["etag"] == "etag-1"
    assert event.payload["file_id"] == active.id
    assert event.payload["owner"] == active.owner

    with catalog.repairing("files", "r.txt") as repair:
        assert repair.live is not None
        repair.mark_missing(repair.live.id, reason="object gone")
    again = catalog.reserve(dataclasses.replace(intent("r.txt"), token="t2", endpoint="e1"))
    assert again.outcome is ReservationOutcome.RESERVED
    assert again.record.id == active.id
    assert again.record == catalog.get(active.id)
    assert again.record.status is FileStatus.PENDING
    assert again.record.copied_from is None
    resent = catalog.activate(active.id, etag="etag-2", token="t2")
    assert resent == catalog.get(active.id)
    assert [e.action for e in catalog.audit_entries(active.id)] == [
        AuditAction.RESERVE,
        AuditAction.ACTIVATE,
        AuditAction.MARK_MISSING,
        AuditAction.RESERVE,
        AuditAction.ACTIVATE,
    ]
    # Another transfer's token may not register the row it holds.
    third = catalog.reserve(dataclasses.replace(intent("s.txt", SHA_B), token="t3"))
    with pytest.raises(CatalogError, match="reserved by another transfer"):
        catalog.activate(third.record.id, etag="x", token="not-t3")


def test_activation_judges_the_row_as_it_is_once_it_may_write(tmp_path: Path) -> None:
    """SQLite: another process changes the row while activation waits for the
    write lock. Activation must judge the row it then updates, not the one it
    saw before it waited (it would register an upload the row no longer names).
    """
    path = tmp_path / "catalog.sqlite3"
    catalog = open_catalog(f"sqlite:///{path}", owner="alice")
    reserved = catalog.reserve(dataclasses.replace(intent("race/a.bin"), token="ours"))
    other = sqlite3.connect(path, isolation_level=None, timeout=30)
    other.execute("BEGIN IMMEDIATE")  # the other process holds the write lock
    other.execute("UPDATE files SET token = 'theirs' WHERE id = ?", (reserved.record.id,))
    outcome: list[object] = []

    def activate() -> None:
        try:
            outcome.append(catalog.activate(reserved.record.id, etag="0123", token="ours"))
        except CatalogError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=activate)
    worker.start()
    worker.join(0.5)  # waiting for the lock (busy timeout 10 s), not done
    assert worker.is_alive()
    assert not outcome
    other.execute("COMMIT")
    worker.join(15)
    assert len(outcome) == 1, outcome
    assert isinstance(outcome[0], CatalogError), outcome
    assert "reserved by another transfer" in outcome[0].message
    status, token = other.execute(
        "SELECT status, token FROM files WHERE id = ?", (reserved.record.id,)
    ).fetchone()
    assert (status, token) == (FileStatus.PENDING.value, "theirs")
    other.close()
    catalog.close()


def _stored(catalog: CatalogService, key: str, sha: str, etag: str) -> FileRecord:
    row = catalog.reserve(dataclasses.replace(intent(key, sha), token=f"t-{key}-{sha[:4]}")).record
    return catalog.activate(row.id, etag=etag, token=f"t-{key}-{sha[:4]}")


def _overwrite(
    catalog: CatalogService,
    key: str,
    sha: str,
    duplicates: DuplicatePolicy = DuplicatePolicy.COPY,
) -> Reservation:
    return catalog.reserve(
        dataclasses.replace(intent(key, sha), token="v2"), duplicates, overwrite=True
    )


def test_an_overwrite_gives_the_key_back_unless_the_old_bytes_are_proven_gone(
    catalog: CatalogService,
) -> None:
    v1 = _stored(catalog, "k.txt", SHA_A, "etag-v1")
    # Released with the old object seen in place (a cancel), or with no look
    # possible: v1 is the file again, and nothing was ever announced about it.
    for at_key in (ObjectAtKey(looked=True, etag="etag-v1"), NOT_LOOKED):
        before = len(catalog.unpublished_events())
        v2 = _overwrite(catalog, "k.txt", SHA_B)
        assert v2.outcome is ReservationOutcome.RESERVED
        assert (catalog.get(v1.id) or v1).status is FileStatus.DELETED
        catalog.release(v2.record.id, reason="cancelled", token="v2", at_key=at_key)
        back = catalog.live("files", "k.txt")
        assert back is not None
        assert back.id == v1.id
        assert back.status is FileStatus.ACTIVE
        assert back.deleted_at is None
        assert len(catalog.unpublished_events()) == before
    # Released after its bytes replaced v1's: v1's deletion stands, and is announced.
    v2 = _overwrite(catalog, "k.txt", SHA_B)
    catalog.release(
        v2.record.id, reason="failed", token="v2", at_key=ObjectAtKey(looked=True, etag="v2")
    )
    assert catalog.live("files", "k.txt") is None
    [event] = catalog.unpublished_events()[-1:]
    assert event.event_type is OutboxEventType.FILE_DELETED
    assert event.payload["file_id"] == v1.id


def test_an_overwrite_that_turns_out_a_duplicate_leaves_the_old_version_alone(
    catalog: CatalogService,
) -> None:
    v1 = _stored(catalog, "k.txt", SHA_A, "etag-v1")
    _stored(catalog, "elsewhere.txt", SHA_B, "etag-b")
    skipped = _overwrite(catalog, "k.txt", SHA_B, duplicates=DuplicatePolicy.SKIP)
    assert skipped.outcome is ReservationOutcome.DUPLICATE
    assert skipped.record.key == "elsewhere.txt"
    still = catalog.live("files", "k.txt")
    assert still is not None
    assert still.id == v1.id
    assert still.status is FileStatus.ACTIVE
    # With copies allowed, the new content is copied from its stored twin, not from v1.
    copied = _overwrite(catalog, "k.txt", SHA_B)
    assert copied.outcome is ReservationOutcome.COPY
    assert copied.source is not None
    assert copied.source.key == "elsewhere.txt"


def test_a_missing_row_overwritten_is_deleted_at_once_and_never_given_back(
    catalog: CatalogService,
) -> None:
    v1 = _stored(catalog, "k.txt", SHA_A, "etag-v1")
    with catalog.repairing("files", "k.txt") as repair:
        repair.mark_missing(v1.id, reason="object gone")
    v2 = _overwrite(catalog, "k.txt", SHA_B)
    [event] = catalog.unpublished_events()[-1:]
    assert event.event_type is OutboxEventType.FILE_DELETED
    assert event.payload["file_id"] == v1.id
    catalog.release(v2.record.id, reason="cancelled", token="v2", at_key=NOT_LOOKED)
    assert catalog.live("files", "k.txt") is None  # no active row without its bytes


def test_a_file_being_uploaded_is_cancelled_not_deleted(catalog: CatalogService) -> None:
    catalog.reserve(dataclasses.replace(intent("up.txt"), token="t"))
    with pytest.raises(CatalogError, match="being uploaded right now"):
        catalog.mark_deleted("files", "up.txt")
    row = catalog.live("files", "up.txt")
    assert row is not None
    assert row.status is FileStatus.PENDING


def test_a_registration_the_journal_missed_still_counts_as_its_uploads_own(
    catalog: CatalogService,
) -> None:
    # Killed (or out of disk) after activation, before the journal said done:
    # the resumed upload sends the same bytes again and must not call its own
    # row lost; another token's, or a deleted row, is lost.
    row = catalog.reserve(dataclasses.replace(intent("r.txt"), token="mine")).record
    catalog.activate(row.id, etag="e", token="mine")
    assert catalog.touch([(row.id, "mine")]) == []
    assert catalog.touch([(row.id, "theirs")]) == [row.id]
    catalog.mark_deleted("files", "r.txt")
    assert catalog.touch([(row.id, "mine")]) == [row.id]

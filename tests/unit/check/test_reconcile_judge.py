"""The check's judge as pure functions: every finding kind from a listing entry and rows.

No server, catalog or journal: :func:`classify` reads only what it is given,
and :func:`confirm` only the answers of the I/O the checker did for it.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from desktop_app.core.catalog.records import FileRecord
from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.check.confirmations import Confirmations, Unconfirmed
from desktop_app.core.check.findings import (
    CheckOptions,
    Finding,
    FindingKind,
    RepairAction,
    RowStamp,
)
from desktop_app.core.check.judge import (
    Cutoffs,
    Disagreement,
    Verdict,
    classify,
    confirm,
    foreign_on_top,
    judge_version,
    stale_multipart,
    still_registered,
)
from desktop_app.core.check.streams import KeySeen
from desktop_app.core.model.bucket_objects import ObjectInfo, ObjectVersion
from desktop_app.core.storage.listing import MultipartUploadInfo

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=3)
RECENT = NOW - timedelta(minutes=5)
CUTOFFS = Cutoffs.of(NOW, NOW, CheckOptions(grace_seconds=3600, retention_seconds=86400))
KEY = "p/report.pdf"


def row(
    status: FileStatus = FileStatus.ACTIVE,
    *,
    id: int = 1,
    size: int = 10,
    etag: str | None = "e1",
    owner: str = "me",
    created_at: datetime = OLD,
    deleted_at: datetime | None = None,
    alive_at: datetime | None = None,
    version_id: str | None = None,
) -> FileRecord:
    return FileRecord(
        id=id,
        bucket="b",
        key=KEY,
        owner=owner,
        original_name="report.pdf",
        size=size,
        sha256="a" * 64,
        etag=etag,
        content_type="application/pdf",
        status=status,
        created_at=created_at,
        uploaded_at=created_at,
        deleted_at=deleted_at,
        deleted_by=owner if deleted_at else None,
        last_error=None,
        alive_at=alive_at,
        version_id=version_id,
    )


def obj(size: int = 10, etag: str = "e1", modified: datetime = OLD) -> ObjectInfo:
    return ObjectInfo(KEY, size, etag, modified)


def seen(
    o: ObjectInfo | None, *rows: FileRecord, others_hold: bool = False, key: str = KEY
) -> KeySeen:
    return KeySeen(key, o, list(rows), others_hold)


def judge(s: KeySeen, *, delete_orphans: bool = False) -> object:
    return classify(s, CUTOFFS, delete_orphans=delete_orphans)


def test_an_object_its_active_row_registered_is_nothing_to_report() -> None:
    assert judge(seen(obj(), row())) is None
    assert judge(seen(obj(etag="any"), row(etag=None))) is None  # ETag not yet known


def test_a_key_with_neither_object_nor_live_row_is_nothing() -> None:
    assert judge(seen(None)) is None
    assert judge(seen(None, row(FileStatus.DELETED, deleted_at=OLD))) is None


def test_an_object_nobody_registered_is_an_orphan_to_adopt_or_delete_as_chosen() -> None:
    found = judge(seen(obj()))
    assert isinstance(found, Finding)
    assert found.kind is FindingKind.ORPHAN_OBJECT
    assert found.repair is RepairAction.ADOPT
    assert found.explanation == (
        "An object no catalog row points at (written by another program, or left behind); "
        "it can be adopted into the catalog once its bytes are read back."
    )
    assert found.row is None
    assert found.object is not None
    assert found.object.size == 10
    chosen = judge(seen(obj()), delete_orphans=True)
    assert isinstance(chosen, Finding)
    assert chosen.repair is RepairAction.DELETE_OBJECT
    assert chosen.explanation.endswith("deletion was chosen for it.")


def test_an_orphan_keeps_the_last_row_of_the_key_as_evidence() -> None:
    other = row(FileStatus.DELETED, etag="other", deleted_at=OLD)
    found = judge(seen(obj(), other))
    assert isinstance(found, Finding)
    assert found.kind is FindingKind.ORPHAN_OBJECT
    assert found.row is not None
    assert found.row.id == other.id
    assert found.rows_seen == (RowStamp.of(other),)


def test_a_young_object_without_row_is_not_judged() -> None:
    assert judge(seen(obj(modified=RECENT))) is Verdict.YOUNG


def test_a_deleted_file_whose_object_stays_is_deleted_still_stored() -> None:
    past = row(FileStatus.DELETED, deleted_at=OLD)
    found = judge(seen(obj(), past))
    assert isinstance(found, Finding)
    assert found.kind is FindingKind.DELETED_STILL_STORED
    assert found.repair is RepairAction.DELETE_OBJECT
    assert found.explanation == (
        "The catalog says this file was deleted, but its object is still stored."
    )
    kept = judge(seen(obj(), row(FileStatus.DELETED, deleted_at=RECENT)))
    assert isinstance(kept, Finding)
    assert kept.repair is RepairAction.NONE


def test_someone_elses_key_is_told_with_my_history_or_counted_without() -> None:
    mine = row(FileStatus.DELETED, deleted_at=OLD)
    found = judge(seen(obj(), mine, others_hold=True))
    assert isinstance(found, Finding)
    assert found.kind is FindingKind.SOMEONE_ELSES
    assert found.repair is RepairAction.NONE
    assert found.explanation.startswith("Someone else's file: another user's live row")
    assert judge(seen(obj(), others_hold=True)) is Verdict.OTHERS
    assert judge(seen(None, others_hold=True)) is None


def test_a_stale_intent_is_activated_if_its_object_has_the_size_else_removed() -> None:
    pending = row(FileStatus.PENDING, etag=None)
    found = judge(seen(obj(), pending))
    assert isinstance(found, Finding)
    assert found.kind is FindingKind.STALE_PENDING
    assert found.repair is RepairAction.ACTIVATE
    assert "its object has the expected size" in found.explanation
    gone = judge(seen(None, pending))
    assert isinstance(gone, Finding)
    assert gone.repair is RepairAction.REMOVE_ROW
    other_size = judge(seen(obj(size=11), pending))
    assert isinstance(other_size, Finding)
    assert other_size.repair is RepairAction.REMOVE_ROW


def test_a_young_or_alive_intent_is_left_alone() -> None:
    assert judge(seen(None, row(FileStatus.PENDING, created_at=RECENT))) is Verdict.YOUNG
    alive = row(FileStatus.PENDING, alive_at=NOW - timedelta(seconds=30))
    assert judge(seen(None, alive)) is Verdict.YOUNG


def test_a_row_marked_missing_is_already_known() -> None:
    assert judge(seen(None, row(FileStatus.MISSING))) is None
    assert judge(seen(obj(size=3), row(FileStatus.MISSING))) is None


def test_an_active_row_its_object_disagrees_with_waits_for_confirmation() -> None:
    active = row()
    absent = judge(seen(None, active))
    assert isinstance(absent, Disagreement)
    assert absent.needs_head
    differs = judge(seen(obj(size=11), active))
    assert isinstance(differs, Disagreement)
    assert not differs.needs_head
    assert differs.rows_seen == (RowStamp.of(active),)


def test_a_confirmed_absence_is_a_missing_object_reuploaded_from_an_unchanged_copy() -> None:
    absent = Disagreement(KEY, row(), None, (RowStamp.of(row()),))
    found = confirm(absent, None, Path("/data/report.pdf"))
    assert found.kind is FindingKind.MISSING_OBJECT
    assert found.repair is RepairAction.REUPLOAD
    assert found.source == "/data/report.pdf"
    assert found.object is None
    assert found.explanation.endswith("an unchanged local copy can be uploaded again.")
    lost = confirm(absent, None, None)
    assert lost.repair is RepairAction.MARK_MISSING
    assert lost.source is None
    assert lost.explanation.endswith(
        "no unchanged local copy is known, so the row can be marked missing."
    )


def test_a_confirmed_difference_is_a_mismatch_with_both_sides_told() -> None:
    differs = Disagreement(KEY, row(), obj(size=11, etag="e2"), ())
    found = confirm(differs, differs.object, None)
    assert found.kind is FindingKind.MISMATCH
    assert found.repair is RepairAction.MARK_MISSING
    assert found.explanation == (
        "The object (11 bytes, ETag e2) differs from the catalog row (10 bytes, ETag e1)."
    )
    assert found.object is not None
    assert found.object.etag == "e2"


def test_a_fresh_head_showing_the_registered_object_clears_the_finding() -> None:
    assert still_registered(obj(), row())
    assert not still_registered(None, row())
    assert not still_registered(obj(etag="e2"), row())
    assert not still_registered(obj(), row(etag=None))  # strict: the ETag must be the row's


def test_an_unowned_old_upload_is_a_stale_multipart_only_an_admin_aborts() -> None:
    upload = MultipartUploadInfo(KEY, "u-1", OLD)
    as_admin = stale_multipart(upload, admin=True)
    assert as_admin.kind is FindingKind.STALE_MULTIPART
    assert as_admin.repair is RepairAction.ABORT_UPLOAD
    assert as_admin.upload_id == "u-1"
    assert stale_multipart(upload, admin=False).repair is RepairAction.NONE


def test_an_older_version_of_a_deleted_file_is_deleted_still_stored_by_its_id() -> None:
    version = ObjectVersion(KEY, "v-1", 10, "e1", OLD, latest=False)
    found = judge_version(row(FileStatus.DELETED, deleted_at=OLD), version, CUTOFFS)
    assert isinstance(found, Finding)
    assert found.kind is FindingKind.DELETED_STILL_STORED
    assert found.repair is RepairAction.DELETE_VERSION
    assert found.version_id == "v-1"
    kept = judge_version(
        row(FileStatus.DELETED, deleted_at=NOW - timedelta(hours=12)), version, CUTOFFS
    )
    assert kept is Verdict.KEPT
    recent = row(FileStatus.DELETED, deleted_at=RECENT)
    assert judge_version(recent, version, CUTOFFS) is Verdict.YOUNG
    assert judge_version(row(), version, CUTOFFS) is None


def test_a_mismatch_over_ferrys_version_becomes_another_programs_version_on_top() -> None:
    mismatch = confirm(Disagreement(KEY, row(), obj(size=11, etag="e2"), ()), obj(11, "e2"), None)
    on_top = foreign_on_top(mismatch, ObjectVersion(KEY, "v-1", 10, "e1", OLD, latest=False))
    assert on_top.kind is FindingKind.FOREIGN_VERSION_ON_TOP
    assert on_top.repair is RepairAction.NONE
    assert on_top.version_id == "v-1"
    assert on_top.explanation.startswith(
        "Another program wrote a newer version of this key (11 bytes, ETag e2) over Ferry's; "
        "Ferry's version (v-1) is still stored beneath it."
    )


def test_confirmations_keep_the_walks_order_and_drop_what_a_fresh_head_cleared() -> None:
    walking = threading.current_thread().name
    headed_on: set[str] = set()
    hashed_on: set[str] = set()
    looked_up: list[list[str]] = []
    lock = threading.Lock()

    def head(key: str) -> ObjectInfo | None:
        with lock:
            headed_on.add(threading.current_thread().name)
        time.sleep(random.uniform(0, 0.01))
        return obj() if key.endswith("cleared") else None  # obj(): the registered one

    def local_copies(keys: list[str]) -> dict[str, Path]:
        assert threading.current_thread().name == walking  # the journal: this thread only
        looked_up.append(keys)
        return {key: Path(f"/data/{key}") for key in keys if key.startswith("k1")}

    def unchanged(path: Path, _row: FileRecord) -> Path | None:
        with lock:
            hashed_on.add(threading.current_thread().name)
        return path if not path.name.endswith("3") else None  # k13: changed since

    confirmations = Confirmations(head, local_copies, unchanged, threads=4)
    walked: list[Finding | Unconfirmed] = []
    try:
        for n in range(40):
            key = f"k{n:02d}" + ("-cleared" if n % 3 == 0 else "")
            listed = obj(size=11) if n % 2 else None  # listed and different, or not listed
            disagreement = Disagreement(key, row(), listed, ())
            walked.append(confirmations.submit(disagreement))
            orphan = judge(seen(obj(), key=f"k{n:02d}-orphan"))
            assert isinstance(orphan, Finding)
            walked.append(orphan)
        findings = confirmations.resolve(walked)
    finally:
        confirmations.close()
    # A listed object needs no HEAD: only unlisted ones can be cleared.
    kept = [n for n in range(40) if n % 2 or n % 3]
    assert [f.key for f in findings if "orphan" not in f.key] == [
        f"k{n:02d}" + ("-cleared" if n % 3 == 0 else "") for n in kept
    ]
    expected = [
        k
        for n in range(40)
        for k in ((f"k{n:02d}" + ("-cleared" if n % 3 == 0 else ""),) if n in kept else ())
        + (f"k{n:02d}-orphan",)
    ]
    assert [f.key for f in findings] == expected  # each in the walk's place
    # Once, for those left after their HEAD.
    assert looked_up == [[f.key for f in findings if "orphan" not in f.key]]
    by_key = {f.key: f for f in findings}
    assert by_key["k11"].source == "/data/k11"
    assert by_key["k11"].repair is RepairAction.REUPLOAD
    assert by_key["k13"].source is None
    assert by_key["k13"].repair is RepairAction.MARK_MISSING
    assert by_key["k13"].kind is FindingKind.MISMATCH
    assert by_key["k14"].kind is FindingKind.MISSING_OBJECT
    assert 1 < len(headed_on) <= 4
    assert walking not in headed_on
    assert hashed_on
    assert walking not in hashed_on


def test_an_error_of_a_fresh_head_is_raised_where_the_findings_are_resolved() -> None:
    def failing(_key: str) -> ObjectInfo | None:
        raise OSError("HEAD failed")

    confirmations = Confirmations(failing, lambda _keys: {}, lambda p, _r: p, threads=2)
    try:
        walked = [confirmations.submit(Disagreement(KEY, row(), None, ()))]
        with pytest.raises(OSError, match="HEAD failed"):
            confirmations.resolve(walked)
    finally:
        confirmations.close()


def _merged_by_reference(
    objects: list[ObjectInfo], rows: list[FileRecord], others: list[str]
) -> list[tuple[str, ObjectInfo | None, list[int], bool]]:
    """The join as a dictionary would do it: every key of the three, in UTF-8 byte order."""
    keys = sorted({o.key for o in objects} | {r.key for r in rows} | set(others), key=str.encode)
    by_object = {o.key: o for o in objects}  # a key listed twice: the last one
    return [(k, by_object.get(k), [r.id for r in rows if r.key == k], k in others) for k in keys]


@pytest.mark.parametrize("seed", range(20))
def test_the_merge_joins_per_key_in_utf8_byte_order(seed: int) -> None:
    from desktop_app.core.check.streams import merge_by_key

    pick = random.Random(seed)
    alphabet = ["a", "B", "-", "/", "é", "\uffff", "\U00010000", "z"]
    keys = sorted(
        {"".join(pick.choices(alphabet, k=pick.randint(1, 3))) for _ in range(30)},
        key=str.encode,
    )
    objects = [ObjectInfo(k, n, "e", OLD) for n, k in enumerate(keys) if pick.random() < 0.6]
    if objects and pick.random() < 0.3:
        objects.insert(1, objects[0])  # listed twice
    rows: list[FileRecord] = []
    for k in keys:
        for _ in range(pick.choice([0, 0, 1, 2])):
            rows.append(dataclasses.replace(row(id=len(rows) + 1), key=k))
    others = [k for k in keys if pick.random() < 0.2]
    merged = [
        (s.key, s.object, [r.id for r in s.rows], s.others_hold)
        for s in merge_by_key(objects, rows, others)
    ]
    assert merged == _merged_by_reference(objects, rows, others)


def test_a_findings_json_is_what_asdict_gives_with_kind_and_repair_by_value() -> None:
    disagreement = judge(seen(obj(), row(FileStatus.DELETED, deleted_at=OLD), row(id=2, etag="x")))
    assert isinstance(disagreement, Disagreement)
    assert len(disagreement.rows_seen) == 2
    rich = confirm(disagreement, disagreement.object, Path("/data/report.pdf"))
    plain = stale_multipart(MultipartUploadInfo(KEY, "u-1", OLD), admin=True)
    for finding in (rich, dataclasses.replace(rich, version_id="v-1", source="/s"), plain):
        expected = dataclasses.asdict(finding)
        expected["kind"], expected["repair"] = finding.kind.value, finding.repair.value
        assert finding.to_json() == expected
        assert list(finding.to_json()) == list(expected)  # the same order of keys

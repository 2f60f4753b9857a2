"""The consistency check on a real weed mini, with SQLite and PostgreSQL catalogs.

Every kind of finding is planted by hand (boto3 on the bucket, the catalog
service on the rows), with keys that sort differently in byte order than in a
locale collation. The check must report exactly those; --repair fixes each as
described; a second check is clean; what is younger than the grace period is
left alone.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from desktop_app.core.catalog.records import FileRecord, UploadIntent
from desktop_app.core.catalog.schema import AuditAction, FileRow, FileStatus, OutboxEventType
from desktop_app.core.catalog.service import CatalogService
from desktop_app.core.check.findings import CheckOptions, FindingKind, RepairAction
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from tests.conftest import WeedServer, save_test_profile

GRACE = 8


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def ferry(
    ferry_env: Environment, weed: WeedServer, bucket: str, catalog_url: str
) -> Iterator[Ferry]:
    save_test_profile(
        ferry_env, endpoint_url=weed.endpoint_url, bucket=bucket, catalog_url=catalog_url
    )
    app = Ferry.open(ferry_env)
    yield app
    app.close()


def upload(ferry: Ferry, path: Path, data: bytes, prefix: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    [record] = ferry.upload([path], prefix=prefix)
    assert record.state is TransferState.DONE, record.error


def reserved_an_hour_ago(catalog: CatalogService, intent: UploadIntent) -> FileRecord:
    """A reservation as an upload that died an hour ago left it (its times moved back)."""
    record = catalog.reserve(intent).record
    hour = timedelta(hours=1)
    with catalog.engine.begin() as connection:
        connection.execute(
            update(FileRow)
            .where(FileRow.id == record.id)
            .values(created_at=record.created_at - hour, alive_at=record.created_at - hour)
        )
    return record


def test_every_kind_is_found_repaired_and_young_things_are_left_alone(
    ferry: Ferry, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    s3 = weed.client()
    # -- old disagreements ----------------------------------------------------
    s3.put_object(Bucket=bucket, Key="a/B", Body=b"stray bytes")
    adoptable = b"adopt me"
    s3.put_object(Bucket=bucket, Key="a-b", Body=adoptable, Metadata={"sha256": sha(adoptable)})
    upload(ferry, tmp_path / "src" / "a", b"alpha content", prefix="src")  # key src/a
    s3.delete_object(Bucket=bucket, Key="src/a")  # missing, local copy known
    lost = tmp_path / "lost" / "é.txt"
    upload(ferry, lost, b"gone forever", prefix="lost")  # key lost/é.txt
    lost.unlink()
    s3.delete_object(Bucket=bucket, Key="lost/é.txt")  # missing, no local copy
    upload(ferry, tmp_path / "a_b", b"the right bytes", prefix="")  # key a_b
    s3.put_object(Bucket=bucket, Key="a_b", Body=b"the wrong bytes!!")  # mismatch
    ok_bytes = b"pending but fine"
    # Reserved by an upload that died long ago: no Ferry touches these rows.
    ok_row = reserved_an_hour_ago(
        ferry.catalog,
        UploadIntent(bucket, "z/pending-ok", "pending-ok", len(ok_bytes), sha(ok_bytes)),
    )
    s3.put_object(
        Bucket=bucket, Key="z/pending-ok", Body=ok_bytes, Metadata={"sha256": sha(ok_bytes)}
    )
    gone_row = reserved_an_hour_ago(
        ferry.catalog, UploadIntent(bucket, "z/pending-gone", "pending-gone", 3, "f" * 64)
    )
    upload(ferry, tmp_path / "d" / "deleted.txt", b"deleted row", prefix="d")
    ferry.catalog.mark_deleted(bucket, "d/deleted.txt")  # the object stays behind
    stale_upload = s3.create_multipart_upload(Bucket=bucket, Key="m/stale")["UploadId"]

    time.sleep(GRACE + 1.5)
    # -- young ones: within the grace period ---------------------------------------
    s3.put_object(Bucket=bucket, Key="y/young-orphan", Body=b"just arrived")
    ferry.catalog.reserve(UploadIntent(bucket, "y/young-pending", "yp", 1, "e" * 64))
    s3.create_multipart_upload(Bucket=bucket, Key="y/young-mp")

    report = ferry.check(CheckOptions(grace_seconds=GRACE))
    found = {(f.kind, f.key, f.repair) for f in report.findings}
    assert found == {
        (FindingKind.ORPHAN_OBJECT, "a/B", RepairAction.ADOPT),
        (FindingKind.ORPHAN_OBJECT, "a-b", RepairAction.ADOPT),
        (FindingKind.MISSING_OBJECT, "src/a", RepairAction.REUPLOAD),
        (FindingKind.MISSING_OBJECT, "lost/é.txt", RepairAction.MARK_MISSING),
        (FindingKind.MISMATCH, "a_b", RepairAction.REUPLOAD),
        (FindingKind.STALE_PENDING, "z/pending-ok", RepairAction.ACTIVATE),
        (FindingKind.STALE_PENDING, "z/pending-gone", RepairAction.REMOVE_ROW),
        (FindingKind.DELETED_STILL_STORED, "d/deleted.txt", RepairAction.DELETE_OBJECT),
        (FindingKind.STALE_MULTIPART, "m/stale", RepairAction.ABORT_UPLOAD),
    }
    assert report.scanned.within_grace == 3
    assert report.counts["orphan_object"] == 2
    stale = next(f for f in report.findings if f.kind is FindingKind.STALE_MULTIPART)
    assert stale.upload_id == stale_upload
    mismatch = next(f for f in report.findings if f.kind is FindingKind.MISMATCH)
    assert mismatch.object is not None
    assert mismatch.object.size == len(b"the wrong bytes!!")
    assert mismatch.row is not None
    assert mismatch.row.size == len(b"the right bytes")
    assert ferry.last_report() is not None

    results = ferry.repair(report.findings)
    assert all(r.done for r in results), [(r.finding.key, r.message) for r in results]

    again = ferry.check(CheckOptions(grace_seconds=GRACE))
    assert again.findings == [], [(f.kind, f.key) for f in again.findings]

    def body(key: str) -> bytes:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert "a/B" in keys
    assert "d/deleted.txt" not in keys
    assert body("src/a") == b"alpha content"
    assert body("a_b") == b"the right bytes"
    assert "y/young-orphan" in keys  # left alone
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == ["y/young-mp"]
    catalog = ferry.catalog
    adopted = catalog.live(bucket, "a-b")
    assert adopted is not None
    assert adopted.status is FileStatus.ACTIVE
    assert adopted.sha256 == sha(adoptable)
    stray = catalog.live(bucket, "a/B")
    assert stray is not None
    assert stray.sha256 == sha(b"stray bytes")
    missing = catalog.live(bucket, "lost/é.txt")
    assert missing is not None
    assert missing.status is FileStatus.MISSING
    assert catalog.get(ok_row.id).status is FileStatus.ACTIVE  # type: ignore[union-attr]
    assert catalog.get(gone_row.id) is None
    assert catalog.live(bucket, "y/young-pending") is not None
    repairs = [e for e in catalog.audit_entries() if e.action is AuditAction.REPAIR]
    assert len(repairs) >= 3
    events = {e.event_type for e in catalog.unpublished_events(limit=10_000)}
    assert OutboxEventType.FILE_REPAIRED in events


def test_a_listing_in_byte_order_is_merged_as_it_comes_and_one_out_of_order_is_sorted_first(
    ferry: Ferry, weed: WeedServer, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    s3 = weed.client()
    for key in ("b1", "b2/x", "b3"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    caplog.set_level("INFO", logger="desktop_app.core.check.checker")
    ordered = ferry.check(CheckOptions(grace_seconds=0))
    assert {f.key for f in ordered.findings} == {"b1", "b2/x", "b3"}
    assert "does not list in byte order" not in caplog.text
    # SeaweedFS lists the "directory" a/ (and a/B in it) before a-b, which
    # sorts before it in byte order: the streamed pass is dropped, none of its
    # findings survive twice, and the sorted pass finds every object.
    s3.put_object(Bucket=bucket, Key="a/B", Body=b"in a directory")
    s3.put_object(Bucket=bucket, Key="a-b", Body=b"beside it")
    mixed = ferry.check(CheckOptions(grace_seconds=0))
    assert "does not list in byte order" in caplog.text
    assert sorted(f.key for f in mixed.findings) == ["a-b", "a/B", "b1", "b2/x", "b3"]
    assert mixed.scanned.objects == 5

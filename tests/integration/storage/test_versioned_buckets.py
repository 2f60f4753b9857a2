"""Ferry in a bucket that keeps versions (a real weed mini, versioning turned on).

A plain DeleteObject there only puts a delete marker on top: the bytes stay
as a noncurrent version. Ferry records the version its write made, removes
exactly that version when a file is deleted (no marker is made, so nothing
of the file stays in the key's history), finds its older versions of deleted
files in a check, and never deletes another program's version.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.check.findings import CheckOptions, FindingKind, RepairAction, RepairOutcome
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.storage.versions import iter_object_versions
from tests.conftest import (
    TEST_ACCESS_KEY,
    TEST_SECRET_KEY,
    WeedServer,
    save_test_profile,
    upload_done,
)
from tests.integration.cli.test_cli import run_ferry
from tests.integration.transfers.test_engine import write_random

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import DeleteMarkerEntryTypeDef, ObjectVersionTypeDef

MIB = 1024 * 1024
FOREIGN = b"a newer version, written by another program"
NOW = CheckOptions(grace_seconds=0)


def versions(weed: WeedServer, bucket: str, key: str) -> list[ObjectVersionTypeDef]:
    """Every version of the key (not its delete markers), newest first."""
    page = weed.client().list_object_versions(Bucket=bucket, Prefix=key)
    return [v for v in page.get("Versions", []) if v["Key"] == key]


def markers(weed: WeedServer, bucket: str, key: str) -> list[DeleteMarkerEntryTypeDef]:
    page = weed.client().list_object_versions(Bucket=bucket, Prefix=key)
    return [m for m in page.get("DeleteMarkers", []) if m["Key"] == key]


def read_version(weed: WeedServer, bucket: str, key: str, version_id: str) -> bytes:
    answer = weed.client().get_object(Bucket=bucket, Key=key, VersionId=version_id)
    return bytes(answer["Body"].read())


def _empty_versioned(weed: WeedServer, bucket: str) -> None:
    """Remove every version and marker: the bucket can then be deleted."""
    client = weed.client()
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            client.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])


@pytest.fixture
def versioned_bucket(weed: WeedServer, new_bucket: Callable[[str], str]) -> Iterator[str]:
    name = new_bucket("")
    weed.client().put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    yield name
    _empty_versioned(weed, name)


@pytest.fixture
def versioned_profile(
    ferry_env: Environment, weed: WeedServer, versioned_bucket: str, tmp_path: Path
) -> Callable[..., None]:
    def save(**changes: object) -> None:
        changes.setdefault("catalog_url", f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
        save_test_profile(
            ferry_env,
            endpoint_url=weed.endpoint_url,
            bucket=versioned_bucket,
            **changes,  # type: ignore[arg-type]
        )

    return save


@pytest.fixture
def ferry(versioned_profile: Callable[..., None], ferry_env: Environment) -> Iterator[Ferry]:
    """A Ferry on the versioned bucket with the usual test profile (an SQLite catalog)."""
    versioned_profile()
    with Ferry.open(ferry_env) as app:
        yield app


def test_delete_removes_the_version_ferry_wrote_and_leaves_no_version_of_its_bytes(
    ferry_env: Environment,
    versioned_profile: Callable[..., None],
    weed: WeedServer,
    versioned_bucket: str,
    catalog_url: str,
    tmp_path: Path,
) -> None:
    versioned_profile(catalog_url=catalog_url, part_size=5 * MIB)
    write_random(tmp_path / "small.txt", 3000, 1)
    write_random(tmp_path / "large.bin", 12 * MIB + 3, 2)
    (tmp_path / "copy.txt").write_bytes((tmp_path / "small.txt").read_bytes())  # a server copy
    keys = ("small.txt", "large.bin", "copy.txt")
    with Ferry.open(ferry_env) as ferry:
        done = ferry.upload([tmp_path / "small.txt", tmp_path / "large.bin"])
        done += ferry.upload([tmp_path / "copy.txt"])
        assert [t.state for t in done] == [TransferState.DONE] * 3
        assert done[2].copy_source_key == "small.txt"
        for key in keys:
            row = ferry.catalog.live(versioned_bucket, key)
            [stored] = versions(weed, versioned_bucket, key)
            assert row is not None, key
            assert row.version_id == stored["VersionId"], key
        for key in keys:
            outcome = ferry.delete(key)
            assert outcome.object_deleted, outcome
            assert outcome.note is None, outcome
        for key in keys:
            assert versions(weed, versioned_bucket, key) == [], key  # no bytes left
            assert markers(weed, versioned_bucket, key) == [], key  # and no marker either
        assert ferry.check(NOW).consistent


def test_a_file_registered_before_versions_were_recorded_is_deleted_bytes_and_all(
    ferry: Ferry, weed: WeedServer, versioned_bucket: str, tmp_path: Path
) -> None:
    write_random(tmp_path / "old.txt", 2000, 8)
    upload_done(ferry, tmp_path / "old.txt")
    with ferry.catalog.engine.begin() as connection:  # as catalog revision 0008 left it
        connection.execute(text("UPDATE files SET version_id = NULL"))
    assert ferry.delete("old.txt").object_deleted
    assert versions(weed, versioned_bucket, "old.txt") == []
    assert markers(weed, versioned_bucket, "old.txt") == []


def test_delete_through_the_command_line_leaves_no_version(
    tmp_path: Path, weed: WeedServer, versioned_bucket: str
) -> None:
    home = tmp_path / "home"
    creds = {"AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY}
    added = run_ferry(
        home, "profile", "add", "team", "--bucket", versioned_bucket,
        "--endpoint-url", weed.endpoint_url,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    tested = run_ferry(home, "profile", "test", "team", env=creds)  # its probe object too
    assert tested.returncode == 0, tested.stdout + tested.stderr
    (tmp_path / "report.pdf").write_bytes(b"quarterly report" * 100)
    uploaded = run_ferry(home, "upload", str(tmp_path / "report.pdf"), env=creds)
    assert uploaded.returncode == 0, uploaded.stderr
    listed = run_ferry(home, "ls", "--json", env=creds)
    [row] = json.loads(listed.stdout)["files"]
    [stored] = versions(weed, versioned_bucket, "report.pdf")
    assert row["version_id"] == stored["VersionId"]

    deleted = run_ferry(home, "delete", "report.pdf", env=creds)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == "deleted report.pdf"
    assert versions(weed, versioned_bucket, "report.pdf") == []
    assert markers(weed, versioned_bucket, "report.pdf") == []
    everything = weed.client().list_object_versions(Bucket=versioned_bucket)
    assert not everything.get("Versions"), everything
    assert not everything.get("DeleteMarkers"), everything


def test_delete_leaves_another_programs_newer_version_byte_for_byte(
    ferry: Ferry, weed: WeedServer, versioned_bucket: str, tmp_path: Path
) -> None:
    write_random(tmp_path / "minutes.txt", 3000, 6)
    assert upload_done(ferry, tmp_path / "minutes.txt").version_id is not None
    weed.client().put_object(Bucket=versioned_bucket, Key="minutes.txt", Body=FOREIGN)
    [theirs] = [
        v["VersionId"] for v in versions(weed, versioned_bucket, "minutes.txt") if v["IsLatest"]
    ]

    outcome = ferry.delete("minutes.txt")
    assert outcome.object_deleted, outcome
    assert outcome.note is not None
    assert "Another program's object" in outcome.note
    [left] = versions(weed, versioned_bucket, "minutes.txt")
    assert left["VersionId"] == theirs
    assert left["IsLatest"]
    assert read_version(weed, versioned_bucket, "minutes.txt", theirs) == FOREIGN
    assert markers(weed, versioned_bucket, "minutes.txt") == []
    assert ferry.catalog.live(versioned_bucket, "minutes.txt") is None


def test_a_planted_older_ferry_version_is_deleted_still_stored_and_its_repair_removes_only_it(
    ferry: Ferry, weed: WeedServer, versioned_bucket: str, tmp_path: Path
) -> None:
    s3 = weed.client()
    write_random(tmp_path / "plan.txt", 5000, 3)
    # Another program's own older version elsewhere: no row recorded it, never Ferry's.
    s3.put_object(Bucket=versioned_bucket, Key="notes.txt", Body=FOREIGN)
    s3.delete_object(Bucket=versioned_bucket, Key="notes.txt")
    done = upload_done(ferry, tmp_path / "plan.txt")
    assert done.version_id is not None
    # As a Ferry before versions were recorded deleted it: the row marked
    # deleted, then a plain delete that only put a marker on top.
    ferry.catalog.mark_deleted(versioned_bucket, "plan.txt")
    s3.delete_object(Bucket=versioned_bucket, Key="plan.txt")
    assert s3.list_objects_v2(Bucket=versioned_bucket).get("KeyCount", 0) == 0

    report = ferry.check(NOW)
    [finding] = report.findings
    assert finding.kind is FindingKind.DELETED_STILL_STORED
    assert finding.key == "plan.txt"
    assert finding.version_id == done.version_id
    assert finding.repair is RepairAction.DELETE_VERSION
    assert "Deleted, still stored" in finding.explanation
    assert report.scanned.older_versions == 2

    [result] = ferry.repair(report.findings)
    assert result.outcome is RepairOutcome.DONE, result.message
    assert versions(weed, versioned_bucket, "plan.txt") == []  # Ferry's bytes are gone
    [theirs] = versions(weed, versioned_bucket, "notes.txt")  # the other's stays
    assert read_version(weed, versioned_bucket, "notes.txt", theirs["VersionId"]) == FOREIGN
    assert ferry.check(NOW).findings == []
    audit = [e.details for e in ferry.catalog.audit_entries() if e.key == "plan.txt"]
    assert any(d.get("version_id") == done.version_id for d in audit), audit


def test_another_programs_version_over_a_live_file_is_its_own_finding_and_never_deleted(
    ferry: Ferry, weed: WeedServer, versioned_bucket: str, tmp_path: Path
) -> None:
    write_random(tmp_path / "budget.xlsx", 4000, 4)
    done = upload_done(ferry, tmp_path / "budget.xlsx")
    weed.client().put_object(Bucket=versioned_bucket, Key="budget.xlsx", Body=FOREIGN)

    report = ferry.check(NOW)
    [finding] = report.findings
    assert finding.kind is FindingKind.FOREIGN_VERSION_ON_TOP
    assert finding.version_id == done.version_id
    assert finding.repair is RepairAction.NONE
    assert not report.consistent
    [result] = ferry.repair(report.findings)
    assert result.outcome is RepairOutcome.REFUSED
    stored = versions(weed, versioned_bucket, "budget.xlsx")
    assert len(stored) == 2  # both versions, untouched
    assert ferry.head("budget.xlsx").size == len(FOREIGN)  # type: ignore[union-attr]
    row = ferry.catalog.live(versioned_bucket, "budget.xlsx")
    assert row is not None
    assert row.status is FileStatus.ACTIVE


def test_deleting_an_orphan_by_choice_removes_its_bytes_not_only_hides_them(
    ferry: Ferry, weed: WeedServer, versioned_bucket: str
) -> None:
    weed.client().put_object(Bucket=versioned_bucket, Key="stray.bin", Body=FOREIGN)
    report = ferry.check(CheckOptions(grace_seconds=0, delete_orphans=True))
    [finding] = report.findings
    assert finding.kind is FindingKind.ORPHAN_OBJECT
    assert finding.repair is RepairAction.DELETE_OBJECT
    [result] = ferry.repair(report.findings)
    assert result.done, result.message
    assert versions(weed, versioned_bucket, "stray.bin") == []
    assert markers(weed, versioned_bucket, "stray.bin") == []


def test_an_adopted_object_records_its_version_and_a_delete_then_leaves_none(
    ferry: Ferry, weed: WeedServer, versioned_bucket: str
) -> None:
    weed.client().put_object(Bucket=versioned_bucket, Key="scan.tif", Body=FOREIGN)
    [stored] = versions(weed, versioned_bucket, "scan.tif")
    report = ferry.check(NOW)
    [result] = ferry.repair(report.findings)
    assert result.done, result.message
    row = ferry.catalog.live(versioned_bucket, "scan.tif")
    assert row is not None
    assert row.version_id == stored["VersionId"]
    assert ferry.delete("scan.tif").object_deleted
    assert versions(weed, versioned_bucket, "scan.tif") == []


def test_retention_keeps_the_version_hidden_says_until_when_and_the_check_removes_it_after(
    ferry_env: Environment,
    versioned_profile: Callable[..., None],
    weed: WeedServer,
    versioned_bucket: str,
    tmp_path: Path,
) -> None:
    versioned_profile(retention_seconds=7 * 86400)
    write_random(tmp_path / "draft.doc", 2500, 5)
    with Ferry.open(ferry_env) as ferry:
        done = upload_done(ferry, tmp_path / "draft.doc")
        outcome = ferry.delete("draft.doc")
        assert outcome.object_deleted
        assert outcome.note is not None
        assert "until" in outcome.note
        assert "7 days" in outcome.note
        assert ferry.head("draft.doc") is None  # hidden from the bucket's listing
        [kept] = versions(weed, versioned_bucket, "draft.doc")
        assert kept["VersionId"] == done.version_id

        # Kept on purpose: counted, not a disagreement.
        within = ferry.check(CheckOptions(grace_seconds=0, retention_seconds=7 * 86400))
        assert within.consistent
        assert within.findings == []
        assert within.scanned.kept_versions == 1
        assert versions(weed, versioned_bucket, "draft.doc") != []

        past = ferry.check(NOW)  # the retention period over
        assert [f.repair for f in past.findings] == [RepairAction.DELETE_VERSION]
        assert ferry.repair(past.findings)[0].done
        assert versions(weed, versioned_bucket, "draft.doc") == []


def test_versions_are_listed_page_by_page_to_the_end(
    ferry: Ferry, weed: WeedServer, versioned_bucket: str
) -> None:
    s3 = weed.client()
    written = set()
    # Not "b/c" beside "b-d": weed mini 4.48's pages skip "b-d" after a marker
    # in "b/" (its full listing has both), see DECISIONS.
    for key in ("a", "b", "c/d"):
        for n in range(3):
            answer = s3.put_object(Bucket=versioned_bucket, Key=key, Body=f"{key}{n}".encode())
            written.add((key, answer["VersionId"]))
    s3.delete_object(Bucket=versioned_bucket, Key="a")  # a marker, left out
    pages = list(iter_object_versions(ferry.storage, page_size=2))
    listed = {(v.key, v.version_id) for page in pages for v in page}
    assert listed == written
    assert len(pages) >= 5
    current = {v.key for page in pages for v in page if v.latest}
    assert current == {"b", "c/d"}  # "a" has a delete marker on top


def test_an_unversioned_bucket_behaves_as_before(
    weed_ferry: Ferry, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    ferry = weed_ferry
    write_random(tmp_path / "plain.txt", 3000, 7)
    assert upload_done(ferry, tmp_path / "plain.txt").version_id is None
    row = ferry.catalog.live(bucket, "plain.txt")
    assert row is not None
    assert row.version_id is None
    report = ferry.check(NOW)
    assert report.consistent
    assert report.scanned.older_versions == 0
    assert ferry.delete("plain.txt").object_deleted
    assert ferry.head("plain.txt") is None
    assert weed.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0

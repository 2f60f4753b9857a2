"""Versioned buckets on moto's in-process S3: its versions, its Object Lock.

(weed mini, the real server, is in integration/test_versioned_buckets.py;
moto is where Object Lock and legal holds can be tried.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import boto3
import pytest

from desktop_app.core.check.findings import CheckOptions, FindingKind, RepairOutcome
from desktop_app.core.model.errors import CatalogError
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.ferry import Ferry

MIB = 1024 * 1024
BUCKET = "unit-bucket"


def _client() -> Any:
    return boto3.client("s3", region_name="us-east-1")


def _versions(key: str) -> list[dict[str, Any]]:
    page = _client().list_object_versions(Bucket=BUCKET, Prefix=key)
    return [v for v in page.get("Versions", []) + page.get("DeleteMarkers", []) if v["Key"] == key]


@pytest.fixture
def ferry(moto_ferry: Ferry) -> Ferry:
    _client().put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return moto_ferry


def test_on_moto_delete_removes_ferrys_versions_single_and_multipart(
    ferry: Ferry, tmp_path: Path
) -> None:
    small, big = tmp_path / "small.txt", tmp_path / "big.bin"
    small.write_bytes(b"hello versions")
    big.write_bytes(os.urandom(11 * MIB + 5))
    records = ferry.upload([small, big])
    assert [r.state for r in records] == [TransferState.DONE, TransferState.DONE]
    for path in (small, big):
        row = ferry.catalog.live(BUCKET, path.name)
        [stored] = _versions(path.name)
        assert row is not None
        assert row.version_id == stored["VersionId"]
        assert ferry.delete(path.name).object_deleted
        assert _versions(path.name) == []  # no bytes, no marker


def test_an_upload_that_fails_after_writing_leaves_no_version_of_its_bytes(
    ferry: Ferry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The object is written, then registering it fails for good: compensation
    # removes the object, and in a bucket that keeps versions its version.
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise CatalogError("the catalog refused the registration")

    monkeypatch.setattr(ferry.catalog, "activate", refuse)
    small, big = tmp_path / "small.txt", tmp_path / "big.bin"
    small.write_bytes(b"never registered")
    big.write_bytes(os.urandom(6 * MIB))
    records = ferry.upload([small, big])
    assert [r.state for r in records] == [TransferState.FAILED] * 2
    for path in (small, big):
        assert _versions(path.name) == [], path.name  # no bytes and no marker left


def test_a_version_kept_by_object_lock_is_a_clear_error_that_says_until_when(
    ferry: Ferry, tmp_path: Path
) -> None:
    _client().put_object_lock_configuration(
        Bucket=BUCKET,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    (tmp_path / "contract.pdf").write_bytes(b"signed" * 100)
    [done] = ferry.upload([tmp_path / "contract.pdf"])
    assert done.state is TransferState.DONE
    outcome = ferry.delete("contract.pdf")
    assert not outcome.object_deleted
    assert outcome.error is not None
    assert "Object Lock keeps it until" in outcome.error
    assert "contract.pdf" in outcome.error
    assert "ferry check --repair" in outcome.error
    assert ferry.catalog.live(BUCKET, "contract.pdf") is None  # the record is gone
    assert [v["VersionId"] for v in _versions("contract.pdf")] == [done.version_id]

    # The check offers the deletion again; the lock refuses it again, plainly.
    report = ferry.check(CheckOptions(grace_seconds=0))
    [finding] = report.findings
    assert finding.kind is FindingKind.DELETED_STILL_STORED
    [result] = ferry.repair(report.findings)
    assert result.outcome is RepairOutcome.FAILED
    assert "Object Lock" in result.message


def test_a_version_under_a_legal_hold_says_so(ferry: Ferry, tmp_path: Path) -> None:
    _client().put_object_lock_configuration(
        Bucket=BUCKET, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
    )
    (tmp_path / "evidence.txt").write_bytes(b"kept for court")
    [done] = ferry.upload([tmp_path / "evidence.txt"])
    _client().put_object_legal_hold(
        Bucket=BUCKET, Key="evidence.txt", VersionId=done.version_id, LegalHold={"Status": "ON"}
    )
    outcome = ferry.delete("evidence.txt")
    assert not outcome.object_deleted
    assert outcome.error is not None
    assert "legal hold" in outcome.error
    assert len(_versions("evidence.txt")) == 1

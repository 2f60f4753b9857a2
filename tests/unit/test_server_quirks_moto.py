"""Servers that honour a condition on one request and not on another (#33's table).

moto honours every condition; botocore event hooks on Ferry's own client make
it answer as the odd server does, and nothing of Ferry's is replaced:

- Swift's s3api refuses a DELETE's If-Match on a multipart (SLO) object (it
  compares it with Swift's own ETag, not the S3 one it answers on HEAD);
- Ceph RGW 16.2 ignores If-None-Match / If-Match on CompleteMultipartUpload
  (it honours them on PutObject).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from desktop_app.core.app import Ferry
from desktop_app.core.journal import TransferState
from desktop_app.core.reconcile import CheckOptions, FindingKind, RepairOutcome

MIB = 1024 * 1024
BUCKET = "unit-bucket"
FOREIGN = b"written by another program"


def _other_program() -> Any:
    return boto3.client("s3", region_name="us-east-1")


def _stored(key: str) -> bytes | None:
    listed = _other_program().list_objects_v2(Bucket=BUCKET, Prefix=key)
    if not listed.get("KeyCount", 0):
        return None
    body: bytes = _other_program().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return body


def refuse_conditional_deletes(
    ferry: Ferry, before: Callable[[str], None] = lambda _: None
) -> list[str]:
    """Swift's s3api: every DELETE with If-Match is refused with 412, whatever the
    object's S3 ETag; ``before(key)`` runs first (another program's write). The
    keys refused, in order."""
    refused: list[str] = []

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if "If-Match" not in params["headers"]:
            return None
        key = params["url_path"].rsplit("/", 1)[-1]
        refused.append(key)
        before(key)
        return AWSResponse(params["url"], 412, {}, None), {
            "Error": {"Code": "PreconditionFailed", "Message": "At least one of the "
                      "pre-conditions you specified did not hold"},
            "ResponseMetadata": {"HTTPStatusCode": 412},
        }  # fmt: skip

    ferry.storage.client.meta.events.register("before-call.s3.DeleteObject", answer)
    return refused


# -- Swift: a DELETE's If-Match refused on Ferry's own multipart object ----------


@pytest.fixture
def ferry(moto_ferry: Ferry) -> Ferry:
    return moto_ferry


def test_a_multipart_file_is_deleted_though_the_server_refuses_its_if_match(
    ferry: Ferry, tmp_path: Path
) -> None:
    (tmp_path / "parts.bin").write_bytes(os.urandom(11 * MIB))
    (tmp_path / "small.bin").write_bytes(b"one PUT")
    assert [r.state for r in ferry.upload([tmp_path / "parts.bin", tmp_path / "small.bin"])] == [
        TransferState.DONE
    ] * 2
    refused = refuse_conditional_deletes(ferry)
    for name in ("parts.bin", "small.bin"):
        outcome = ferry.delete(name)
        assert outcome.object_deleted, outcome
        assert outcome.error is None
        assert _stored(name) is None
        assert ferry.catalog.live(BUCKET, name) is None
    assert refused == ["parts.bin", "small.bin"]  # the conditional delete went first
    assert ferry.check(CheckOptions(grace_seconds=0)).findings == []


def test_another_programs_object_written_as_the_delete_is_refused_stays(
    ferry: Ferry, tmp_path: Path
) -> None:
    (tmp_path / "parts.bin").write_bytes(os.urandom(11 * MIB))
    [done] = ferry.upload([tmp_path / "parts.bin"])
    assert done.state is TransferState.DONE

    def write(key: str) -> None:
        _other_program().put_object(Bucket=BUCKET, Key=key, Body=FOREIGN)

    refuse_conditional_deletes(ferry, before=write)
    outcome = ferry.delete("parts.bin")
    assert not outcome.object_deleted
    assert outcome.error is not None and "another program wrote that key" in outcome.error
    assert _stored("parts.bin") == FOREIGN


def test_the_same_bytes_without_ferrys_metadata_are_not_taken_for_ferrys_object(
    ferry: Ferry, tmp_path: Path
) -> None:
    # Same bytes in one PUT: same size and same ETag (their MD5), but no SHA-256
    # metadata of Ferry's: not proven Ferry's, so not deleted without If-Match.
    data = b"the same bytes, written again by another program"
    (tmp_path / "same.txt").write_bytes(data)
    [done] = ferry.upload([tmp_path / "same.txt"])
    assert done.state is TransferState.DONE

    def write(key: str) -> None:
        _other_program().put_object(Bucket=BUCKET, Key=key, Body=data)

    refuse_conditional_deletes(ferry, before=write)
    outcome = ferry.delete("same.txt")
    assert not outcome.object_deleted
    head = _other_program().head_object(Bucket=BUCKET, Key="same.txt")
    assert head["ETag"].strip('"') == done.etag and "sha256" not in head["Metadata"]


def test_the_checks_repair_deletes_a_multipart_file_left_behind_on_such_a_server(
    ferry: Ferry, tmp_path: Path
) -> None:
    (tmp_path / "parts.bin").write_bytes(os.urandom(11 * MIB))
    [done] = ferry.upload([tmp_path / "parts.bin"])
    assert done.state is TransferState.DONE

    def unavailable(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return AWSResponse(params["url"], 403, {}, None), {
            "Error": {"Code": "AccessDenied", "Message": "no DELETE today"},
            "ResponseMetadata": {"HTTPStatusCode": 403},
        }

    events = ferry.storage.client.meta.events
    events.register("before-call.s3.DeleteObject", unavailable)
    assert not ferry.delete("parts.bin").object_deleted  # the row goes, the object stays
    events.unregister("before-call.s3.DeleteObject", unavailable)

    refused = refuse_conditional_deletes(ferry)
    report = ferry.check(CheckOptions(grace_seconds=0))
    [finding] = report.findings
    assert finding.kind is FindingKind.DELETED_STILL_STORED
    [result] = ferry.repair(report.findings)
    assert result.outcome is RepairOutcome.DONE, result
    assert refused == ["parts.bin"]
    assert _stored("parts.bin") is None

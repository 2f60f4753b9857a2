"""Servers that honour a condition on one request and not on another (#33's table).

moto honours every condition; botocore event hooks on Ferry's own client make
it answer as the odd server does, and nothing of Ferry's is replaced:

- Swift's s3api refuses a DELETE's If-Match on a multipart (SLO) object (it
  compares it with Swift's own ETag, not the S3 one it answers on HEAD);
- Ceph RGW 16.2 ignores If-None-Match / If-Match on CompleteMultipartUpload
  (it honours them on PutObject).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.handlers
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from desktop_app.core.check.findings import CheckOptions, FindingKind, RepairOutcome
from desktop_app.core.model.bucket_objects import WriteProtection
from desktop_app.core.model.errors import ErrorCause
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.diagnosis import diagnose_profile
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.storage.probes import probe_write
from desktop_app.core.transfers.protection import PROTECTION_FILE, ProtectionMemory
from tests.conftest import open_moto_ferry

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
        return AWSResponse(params["url"], 412, HTTPHeaders(), None), {
            "Error": {"Code": "PreconditionFailed", "Message": "At least one of the "
                      "pre-conditions you specified did not hold"},
            "ResponseMetadata": {"HTTPStatusCode": 412},
        }  # fmt: skip

    ferry.storage.client.meta.events.register("before-call.s3.DeleteObject", answer)  # type: ignore[arg-type]  # stubs: handlers return None
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
    outcome = ferry.delete("parts.bin")
    assert outcome.object_deleted, outcome
    assert outcome.error is None
    assert _stored("parts.bin") is None
    assert ferry.catalog.live(BUCKET, "parts.bin") is None
    # A refusal of a plain (one-PUT) ETag is believed, as Swift compares those
    # rightly: a lagging replica's HEAD must not overrule the server's 412.
    kept = ferry.delete("small.bin")
    assert not kept.object_deleted
    assert _stored("small.bin") is not None
    assert refused == ["parts.bin", "small.bin"]  # the conditional delete went first


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
    assert outcome.error is not None
    assert "another program wrote that key" in outcome.error
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
    assert head["ETag"].strip('"') == done.etag
    assert "sha256" not in head["Metadata"]


def test_the_checks_repair_deletes_a_multipart_file_left_behind_on_such_a_server(
    ferry: Ferry, tmp_path: Path
) -> None:
    (tmp_path / "parts.bin").write_bytes(os.urandom(11 * MIB))
    [done] = ferry.upload([tmp_path / "parts.bin"])
    assert done.state is TransferState.DONE

    def unavailable(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return AWSResponse(params["url"], 403, HTTPHeaders(), None), {
            "Error": {"Code": "AccessDenied", "Message": "no DELETE today"},
            "ResponseMetadata": {"HTTPStatusCode": 403},
        }

    events = ferry.storage.client.meta.events
    events.register("before-call.s3.DeleteObject", unavailable)  # type: ignore[arg-type]  # stubs: handlers return None
    assert not ferry.delete("parts.bin").object_deleted  # the row goes, the object stays
    events.unregister("before-call.s3.DeleteObject", unavailable)  # type: ignore[arg-type]  # stubs: handlers return None

    refused = refuse_conditional_deletes(ferry)
    report = ferry.check(CheckOptions(grace_seconds=0))
    [finding] = report.findings
    assert finding.kind is FindingKind.DELETED_STILL_STORED
    [result] = ferry.repair(report.findings)
    assert result.outcome is RepairOutcome.DONE, result
    assert refused == ["parts.bin"]
    assert _stored("parts.bin") is None


# -- Ceph RGW 16.2: a Complete that ignores its condition ------------------------


def _ignore_conditions(params: dict[str, Any], **_: Any) -> None:
    """Ceph RGW 16.2 on CompleteMultipartUpload: If-None-Match / If-Match are
    not heeded (here: not sent), so the Complete lands whatever the key holds."""
    for name in ("If-None-Match", "If-Match"):
        params["headers"].pop(name, None)


@pytest.fixture
def ceph_ferry(
    ferry_env: Environment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Ferry]:
    """A Ferry on moto whose every client (Ferry's, its profile test's) meets a
    Complete that ignores its condition; PUT's condition is honoured."""
    monkeypatch.setattr(
        botocore.handlers,
        "BUILTIN_HANDLERS",
        [
            *botocore.handlers.BUILTIN_HANDLERS,
            ("before-call.s3.CompleteMultipartUpload", _ignore_conditions),
        ],
    )
    with open_moto_ferry(ferry_env, tmp_path) as app:
        yield app


def test_the_profile_test_finds_a_complete_that_ignores_its_condition(
    ceph_ferry: Ferry,
) -> None:
    checks = {c.name: c for c in diagnose_profile(ceph_ferry.env, ceph_ferry.profile)}
    detail = checks["other tools"].detail
    assert "not the completion of a multipart upload" in detail, detail
    assert "just before and just after completing one" in detail
    assert "never overwritten" not in detail
    client = _other_program()
    assert client.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0  # cleaned up
    assert not client.list_multipart_uploads(Bucket=BUCKET).get("Uploads")
    learnt = ProtectionMemory(ceph_ferry.env.paths.data_dir / PROTECTION_FILE).get(
        ceph_ferry.storage.endpoint_id
    )
    assert learnt is not None
    assert learnt.protection is WriteProtection.COMPLETE_UNGUARDED


def test_on_moto_itself_the_probe_of_complete_finds_the_condition_honoured(ferry: Ferry) -> None:
    assert probe_write(ferry.storage, "probe") is WriteProtection.CONDITIONS_HONOURED
    client = _other_program()
    assert client.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    assert not client.list_multipart_uploads(Bucket=BUCKET).get("Uploads")  # aborted


def test_another_programs_object_written_during_a_multipart_upload_survives_its_complete(
    ceph_ferry: Ferry, tmp_path: Path
) -> None:
    # What an older Ferry found with a PUT alone: honoured. Not trusted any more.
    (ceph_ferry.env.paths.data_dir / PROTECTION_FILE).write_text(
        json.dumps(
            {
                "endpoints": {
                    ceph_ferry.storage.endpoint_id: {
                        "protection": "conditions_honoured",
                        "learnt_at": "2026-12-01T00:00:00+00:00",
                    }
                }
            }
        )
    )
    written = threading.Event()

    def other_program_writes(**_: Any) -> None:
        if not written.is_set():  # after Ferry's first part
            written.set()
            _other_program().put_object(Bucket=BUCKET, Key="shared.bin", Body=FOREIGN)

    ceph_ferry.storage.client.meta.events.register("after-call.s3.UploadPart", other_program_writes)
    (tmp_path / "shared.bin").write_bytes(os.urandom(11 * MIB))
    [record] = ceph_ferry.upload([tmp_path / "shared.bin"])
    assert written.is_set()
    assert record.state is TransferState.FAILED, record
    assert record.error is not None
    assert record.error.cause is ErrorCause.FOREIGN_OBJECT
    assert "looked at the key just before" in record.error.message
    assert _stored("shared.bin") == FOREIGN  # byte for byte
    assert ceph_ferry.catalog.live(BUCKET, "shared.bin") is None
    assert not _other_program().list_multipart_uploads(Bucket=BUCKET).get("Uploads")

    # A small file goes in one PUT, whose condition the server honours: no look.
    heads: list[str] = []
    ceph_ferry.storage.client.meta.events.register(
        "before-call.s3.HeadObject", lambda **_: heads.append("HEAD")
    )
    (tmp_path / "small.txt").write_bytes(b"one PUT")
    [small] = ceph_ferry.upload([tmp_path / "small.txt"])
    assert small.state is TransferState.DONE
    assert heads == []


def test_a_protection_file_of_an_older_ferry_is_read_as_nothing_learnt(tmp_path: Path) -> None:
    file = tmp_path / PROTECTION_FILE
    file.write_text(
        json.dumps(
            {
                "endpoints": {
                    "ceph.example:7480": {
                        "protection": "conditions_honoured",
                        "learnt_at": "2026-12-01T00:00:00+00:00",
                    }
                }
            }
        )
    )
    memory = ProtectionMemory(file)
    assert memory.get("ceph.example:7480") is None  # probed again
    memory.put("ceph.example:7480", WriteProtection.COMPLETE_UNGUARDED)
    learnt = ProtectionMemory(file).get("ceph.example:7480")
    assert learnt is not None
    assert learnt.protection is WriteProtection.COMPLETE_UNGUARDED
    assert json.loads(file.read_text())["format"] == 2

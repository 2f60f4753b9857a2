"""Checksums the server proves (#33): CRC64NVME on every write, read back.

On moto (which keeps CRC64NVME full-object checksums): every part carries its
CRC64NVME as a plain header (never botocore's aws-chunked trailer), the upload
is created for a FULL_OBJECT CRC64NVME, its Complete carries the whole file's,
the verifying HEAD asks for it back, and the catalog row records it. A botocore
``after-call`` hook on Ferry's own client that alters the checksum the server
answers makes the verification fail: nothing of Ferry's is replaced.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from awscrt import checksums
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.model.errors import ErrorCause, StorageError
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.diagnosis import diagnose_profile
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.storage.probes import probe_checksums
from desktop_app.core.transfers.checksums import (
    CHECKSUM_FILE,
    MD5_ONLY,
    SERVER_VERIFIED,
    ChecksumMemory,
    EndpointChecksums,
)
from desktop_app.core.transfers.prepass import crc64nvme_base64
from tests.conftest import open_moto_ferry

MIB = 1024 * 1024
BUCKET = "unit-bucket"


@pytest.fixture
def ferry(ferry_env: Environment, tmp_path: Path) -> Iterator[Ferry]:
    with open_moto_ferry(ferry_env, tmp_path) as app:
        yield app


def _requests(ferry: Ferry) -> list[tuple[str, dict[str, str]]]:
    """Every request Ferry's client sends (the probes' left out): operation, headers."""
    seen: list[tuple[str, dict[str, str]]] = []

    def note(request: Any, **kwargs: Any) -> None:
        headers = {
            k.lower(): (v.decode() if isinstance(v, bytes) else v)
            for k, v in request.headers.items()
        }
        if ".ferry-" not in request.url:
            seen.append((kwargs["event_name"].rsplit(".", 1)[-1], headers))

    ferry.storage.client.meta.events.register("before-send.s3", note)
    return seen


def _alter_answered_crc(ferry: Ferry, operations: tuple[str, ...]) -> list[str]:
    """The server answers another CRC64NVME than it holds (the first byte flipped)."""
    altered: list[str] = []

    def alter(parsed: dict[str, Any], model: Any, **_: Any) -> None:
        value = parsed.get("ChecksumCRC64NVME")
        if value:
            raw = bytearray(base64.b64decode(value))
            raw[0] ^= 0xFF
            parsed["ChecksumCRC64NVME"] = base64.b64encode(raw).decode()
            altered.append(model.name)

    for operation in operations:
        ferry.storage.client.meta.events.register(f"after-call.s3.{operation}", alter)
    return altered


def _crc(data: bytes) -> str:
    return crc64nvme_base64(checksums.crc64nvme(data))


def test_a_multipart_upload_records_the_crc64nvme_the_server_verified(
    ferry: Ferry, tmp_path: Path
) -> None:
    data = os.urandom(100 * MIB)
    (tmp_path / "big.bin").write_bytes(data)
    sent = _requests(ferry)
    [done] = ferry.upload([tmp_path / "big.bin"])
    assert done.state is TransferState.DONE, done.error
    row = ferry.catalog.live(BUCKET, "big.bin")
    assert row is not None
    assert row.status is FileStatus.ACTIVE
    assert row.checksum == _crc(data)
    assert row.checksum_type == "CRC64NVME"
    parts = [h for op, h in sent if op == "UploadPart"]
    assert len(parts) == 20
    assert all("x-amz-checksum-crc64nvme" in h and "content-md5" in h for h in parts)
    for headers in [h for op, h in sent if op in ("UploadPart", "PutObject")]:
        # Plain headers, a plain body: no aws-chunked framing, no trailer.
        assert "aws-chunked" not in headers.get("content-encoding", "")
        assert "x-amz-trailer" not in headers
        assert "STREAMING" not in headers.get("x-amz-content-sha256", "")
    creates = [h for op, h in sent if op == "CreateMultipartUpload"]
    assert creates[-1]["x-amz-checksum-algorithm"] == "CRC64NVME"
    assert creates[-1]["x-amz-checksum-type"] == "FULL_OBJECT"
    completes = [h for op, h in sent if op == "CompleteMultipartUpload"]
    assert completes[-1]["x-amz-checksum-crc64nvme"] == _crc(data)
    heads = [h for op, h in sent if op == "HeadObject"]
    assert heads[-1].get("x-amz-checksum-mode") == "ENABLED"
    # Kept in the journal, not in memory: a registration resumed after a crash has it.
    digests = ferry.journal.part_digests(done.id)
    assert digests is not None
    assert digests.crc64nvme_verified
    assert ferry.engine.sender.verifier.proven_checksum(ferry.journal.get(done.id)) == _crc(data)


def test_a_single_put_records_the_crc64nvme_the_server_answered(
    ferry: Ferry, tmp_path: Path
) -> None:
    data = os.urandom(MIB + 17)
    (tmp_path / "small.bin").write_bytes(data)
    sent = _requests(ferry)
    [done] = ferry.upload([tmp_path / "small.bin"])
    assert done.state is TransferState.DONE, done.error
    row = ferry.catalog.live(BUCKET, "small.bin")
    assert row is not None
    assert row.checksum == _crc(data)
    assert row.checksum_type == "CRC64NVME"
    [put] = [h for op, h in sent if op == "PutObject"]
    assert put["x-amz-checksum-crc64nvme"] == _crc(data)
    assert "aws-chunked" not in put.get("content-encoding", "")


def test_an_altered_crc64nvme_fails_the_verification_of_a_multipart_upload(
    ferry: Ferry, tmp_path: Path
) -> None:
    assert ferry.engine.sender.guard.checksums.verified()  # learnt before the hook
    (tmp_path / "big.bin").write_bytes(os.urandom(11 * MIB))
    altered = _alter_answered_crc(ferry, ("HeadObject",))
    [failed] = ferry.upload([tmp_path / "big.bin"])
    assert failed.state is TransferState.FAILED
    assert failed.error is not None
    assert failed.error.cause is ErrorCause.VERIFICATION
    assert "CRC64NVME" in failed.error.message
    assert altered
    live = ferry.catalog.live(BUCKET, "big.bin")
    assert live is None or live.status is not FileStatus.ACTIVE


def test_an_altered_crc64nvme_fails_the_verification_of_a_single_put(
    ferry: Ferry, tmp_path: Path
) -> None:
    assert ferry.engine.sender.guard.checksums.verified()
    (tmp_path / "small.bin").write_bytes(os.urandom(3 * MIB))
    altered = _alter_answered_crc(ferry, ("PutObject", "HeadObject"))
    [failed] = ferry.upload([tmp_path / "small.bin"])
    assert failed.state is TransferState.FAILED
    assert failed.error is not None
    assert failed.error.cause is ErrorCause.VERIFICATION
    assert "PutObject" in altered
    live = ferry.catalog.live(BUCKET, "small.bin")
    assert live is None or live.status is not FileStatus.ACTIVE


def test_the_profile_test_says_the_integrity_reached(
    ferry_env: Environment, tmp_path: Path
) -> None:
    with open_moto_ferry(ferry_env, tmp_path):
        profile = ferry_env.profiles.get("aws")
        results = {r.name: r for r in diagnose_profile(ferry_env, profile)}
    assert results["integrity"].ok
    assert results["integrity"].detail == SERVER_VERIFIED
    assert MD5_ONLY == "MD5 per part + SHA-256 of bytes sent"


# -- Resume: a listed part counts only with the CRC64NVME planned for it ----------


@pytest.mark.parametrize("listed_right", [True, False])
def test_on_resume_a_listed_part_counts_only_with_its_planned_crc64nvme(
    ferry_env: Environment, tmp_path: Path, listed_right: bool
) -> None:
    with open_moto_ferry(ferry_env, tmp_path, concurrency=1) as ferry:
        source = tmp_path / "film.mov"
        data = os.urandom(12 * MIB)
        source.write_bytes(data)
        [record] = ferry.queue([source])
        control = ferry.engine.holds.take_for_worker(record.id, small=False)
        assert control is not None
        paused: list[int] = []

        def pause_after_first_part(event: Any) -> None:
            if getattr(event, "bytes_done", 0) and not paused:
                paused.append(ferry.coordinator.pause([record.id], patience=0))

        ferry.engine.bus.subscribe(pause_after_first_part)
        stopped = ferry.engine.run_held(record.id, control)
        ferry.engine.holds.release(record.id)
        assert stopped.paused
        assert [p.done for p in ferry.journal.parts(record.id)] == [True, False, False]

        # moto lists no part checksums: the hook lists part 1's, right or not.
        first = _crc(data[: 5 * MIB])
        listed = first if listed_right else _crc(data[5 * MIB : 10 * MIB])

        def list_crc(parsed: dict[str, Any], **_: Any) -> None:
            for part in parsed.get("Parts", []):
                if part["PartNumber"] == 1:
                    part["ChecksumCRC64NVME"] = listed

        ferry.storage.client.meta.events.register("after-call.s3.ListParts", list_crc)
        sent = _requests(ferry)
        assert ferry.coordinator.unpause([record.id]) == 1
        [done] = ferry.wait([record.id])
        assert done.state is TransferState.DONE, done.error
        parts_sent = [h for op, h in sent if op == "UploadPart"]
        assert len(parts_sent) == (2 if listed_right else 3)
        row = ferry.catalog.live(BUCKET, "film.mov")
        assert row is not None
        assert row.checksum == _crc(data)


def _refuse_checksums(ferry_or_client: Any) -> None:
    """A server that keeps no checksums: a write asking for one is refused (400)."""

    def refuse(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        headers = {k.lower() for k in params["headers"]}
        if not headers & {"x-amz-checksum-crc64nvme", "x-amz-checksum-algorithm"}:
            return None
        return AWSResponse(params["url"], 400, HTTPHeaders(), None), {
            "Error": {"Code": "NotImplemented", "Message": "checksums are not supported"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }

    ferry_or_client.meta.events.register("before-call.s3", refuse)


def test_where_the_server_keeps_no_checksums_the_md5_path_is_unchanged(
    ferry: Ferry, tmp_path: Path
) -> None:
    _refuse_checksums(ferry.storage.client)
    sent = _requests(ferry)
    (tmp_path / "big.bin").write_bytes(os.urandom(11 * MIB))
    (tmp_path / "small.bin").write_bytes(b"one PUT")
    done = ferry.upload([tmp_path / "big.bin", tmp_path / "small.bin"])
    assert [r.state for r in done] == [TransferState.DONE] * 2, [r.error for r in done]
    assert not ferry.engine.sender.guard.checksums.verified()
    for name in ("big.bin", "small.bin"):
        row = ferry.catalog.live(BUCKET, name)
        assert row is not None
        assert row.checksum is None
        assert row.checksum_type is None
    # (botocore's own CRC32 on an AWS endpoint, as before: moto's profile is "aws")
    assert sent
    assert not any("x-amz-checksum-crc64nvme" in h for _op, h in sent)
    assert not any(h.get("x-amz-checksum-algorithm") == "CRC64NVME" for _op, h in sent)
    assert all("content-md5" in h for op, h in sent if op in ("UploadPart", "PutObject"))


def test_on_the_md5_path_a_checksum_the_server_answers_unasked_is_not_recorded(
    ferry: Ferry, tmp_path: Path
) -> None:
    # A server that keeps no checksums Ferry can ask for, yet answers one on a PUT
    # (as AWS answers its default CRC64NVME): Ferry computed none, proved none.
    _refuse_checksums(ferry.storage.client)

    def answer_one(parsed: dict[str, Any], **_: Any) -> None:
        parsed["ChecksumCRC64NVME"] = _crc(b"whatever the server says")

    ferry.storage.client.meta.events.register("after-call.s3.PutObject", answer_one)
    (tmp_path / "small.bin").write_bytes(b"one PUT")
    [done] = ferry.upload([tmp_path / "small.bin"])
    assert done.state is TransferState.DONE, done.error
    row = ferry.catalog.live(BUCKET, "small.bin")
    assert row is not None
    assert row.checksum is None
    assert row.checksum_type is None


def test_a_refusal_that_says_nothing_of_checksums_is_not_remembered_as_no(
    ferry: Ferry,
) -> None:
    """A probe denied (a wrong key, a bucket not there yet) learns nothing: the
    endpoint is not written down as keeping no checksums, for ever."""

    def deny(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return AWSResponse(params["url"], 403, HTTPHeaders(), None), {
            "Error": {"Code": "AccessDenied", "Message": "Access Denied"},
            "ResponseMetadata": {"HTTPStatusCode": 403},
        }

    storage = ferry.storage
    storage.client.meta.events.register("before-call.s3.PutObject", deny)  # type: ignore[arg-type]  # stubs: handlers return None
    with pytest.raises(StorageError):
        probe_checksums(storage, "")
    memory = ChecksumMemory(ferry.env.paths.data_dir / CHECKSUM_FILE)
    assert not EndpointChecksums(storage, memory).verified()  # not known: the MD5 path
    assert memory.get(storage.endpoint_id) is None  # and nothing written down

    # The server's own "no" to the checksum headers is an answer, kept.
    storage.client.meta.events.unregister("before-call.s3.PutObject", deny)  # type: ignore[arg-type]  # stubs: handlers return None
    _refuse_checksums(storage.client)
    assert not EndpointChecksums(storage, memory).verified()
    assert memory.get(storage.endpoint_id) is False

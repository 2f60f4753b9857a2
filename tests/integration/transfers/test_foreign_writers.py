"""Ferry in a bucket other programs write too, and behind servers whose ETags are opaque.

The other program is boto3 with its own client (as aws-cli or a script would
be), writing the same key at the worst instants: before Ferry's PUT, while
Ferry's multipart upload is between parts, between Ferry's Complete and its
verifying HEAD, and over a Ferry object before `ferry delete`. Whatever
happens, the other program's object survives byte for byte, and no catalog
row names bytes the object does not hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.journal.records import TransferRecord
from desktop_app.core.model.errors import ErrorCause
from desktop_app.core.model.events import EngineEvent, TransferChanged, TransferProgress
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from tests.conftest import TEST_ACCESS_KEY, TEST_SECRET_KEY, WeedServer, upload_done
from tests.faults import Fault, FaultProxy, is_complete, is_part_upload
from tests.integration.transfers.test_engine import object_sha256, write_random

MIB = 1024 * 1024
FOREIGN = b"written by another program, not by Ferry"


def foreign_put(weed: WeedServer, bucket: str, key: str, body: bytes = FOREIGN) -> None:
    weed.client().put_object(Bucket=bucket, Key=key, Body=body)


def stored(weed: WeedServer, bucket: str, key: str) -> bytes:
    return bytes(weed.client().get_object(Bucket=bucket, Key=key)["Body"].read())


def when(ferry: Ferry, happened: Callable[[EngineEvent], bool], act: Callable[[], object]) -> None:
    """Do ``act`` once, on the engine's thread, at the first event for which ``happened``."""
    done: list[bool] = []

    def subscriber(event: EngineEvent) -> None:
        if not done and happened(event):
            done.append(True)
            act()

    ferry.engine.bus.subscribe(subscriber)


def assert_conflict_left_it(
    ferry: Ferry, weed: WeedServer, bucket: str, record: TransferRecord, key: str, body: bytes
) -> None:
    assert record.state is TransferState.FAILED, record.state
    assert record.error is not None, record.state
    assert record.error.cause is ErrorCause.FOREIGN_OBJECT, record.error
    assert "Another program wrote" in record.error.message
    assert stored(weed, bucket, key) == body  # the other program's object, byte for byte
    live = ferry.catalog.live(bucket, key)
    assert live is None or live.status is not FileStatus.ACTIVE or live.sha256 == _sha(body)
    assert not weed.client().list_multipart_uploads(Bucket=bucket).get("Uploads")


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def test_files_upload_on_the_first_attempt_where_every_etag_is_opaque(
    proxy_profile: Callable[..., None],
    proxy: FaultProxy,
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    # As an SSE-KMS bucket answers: 32 hex digits that are not the MD5, on
    # every PUT, part, Complete, HEAD and listing.
    proxy.mask_etags_for = (TEST_ACCESS_KEY, TEST_SECRET_KEY)
    proxy_profile(part_size=5 * MIB)
    sizes = [0, 1, 1000, 64 * 1024, MIB, 5 * MIB - 1, 5 * MIB, 12 * MIB + 3, 40 * MIB, 100 * MIB]
    files = {
        f"f{n:02d}.bin": write_random(tmp_path / f"f{n:02d}.bin", s, n) for n, s in enumerate(sizes)
    }
    with Ferry.open(ferry_env) as ferry:
        records = ferry.upload([tmp_path / name for name in files])
        assert [r.state for r in records] == [TransferState.DONE] * len(sizes), [
            (r.key, r.error) for r in records
        ]
        attempts = ferry.attempts([r.id for r in records])
        assert all(len(a) == 1 for a in attempts.values()), "each done on its first attempt"
        for name, sha in files.items():
            assert object_sha256(weed, bucket, name) == sha
            row = ferry.catalog.live(bucket, name)
            assert row is not None
            assert row.status is FileStatus.ACTIVE
            assert row.sha256 == sha
    parts = [(r.path, r.query) for r in proxy.seen if is_part_upload(r)]
    assert len(parts) == len(set(parts)), "no part was sent twice"
    # The write probe (once per endpoint) writes its own object twice, by design.
    puts = [
        r.path
        for r in proxy.seen
        if r.method == "PUT" and "partNumber=" not in r.query and ".ferry-probe-" not in r.path
    ]
    assert len(puts) == len(set(puts)), "no file was sent whole twice"
    assert proxy.masks, "the server's ETags were really hidden"


def test_a_key_another_program_wrote_first_is_not_overwritten(
    ferry_env: Environment,
    weed_profile: Callable[..., None],
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    weed_profile(part_size=5 * MIB)
    foreign_put(weed, bucket, "report.pdf")
    foreign_put(weed, bucket, "film.mov", FOREIGN * 3)
    write_random(tmp_path / "report.pdf", 5000, 1)
    write_random(tmp_path / "film.mov", 12 * MIB, 2)
    with Ferry.open(ferry_env) as ferry:
        small, big = ferry.upload([tmp_path / "report.pdf", tmp_path / "film.mov"])
        assert_conflict_left_it(ferry, weed, bucket, small, "report.pdf", FOREIGN)
        assert_conflict_left_it(ferry, weed, bucket, big, "film.mov", FOREIGN * 3)


def test_a_key_another_program_writes_during_the_upload_is_not_overwritten(
    ferry_env: Environment,
    weed_profile: Callable[..., None],
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    weed_profile(part_size=5 * MIB, concurrency=1)
    write_random(tmp_path / "film.mov", 40 * MIB, 3)
    with Ferry.open(ferry_env) as ferry:
        # At the first part the server accepted (part 1 of 8), the other program writes.
        when(
            ferry,
            lambda e: isinstance(e, TransferProgress) and e.bytes_done > 0,
            lambda: foreign_put(weed, bucket, "film.mov"),
        )
        [record] = ferry.upload([tmp_path / "film.mov"])
        assert_conflict_left_it(ferry, weed, bucket, record, "film.mov", FOREIGN)


def test_a_foreign_object_between_complete_and_the_verifying_head_is_neither_registered_nor_deleted(
    ferry_env: Environment,
    weed_profile: Callable[..., None],
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    weed_profile(part_size=5 * MIB)
    write_random(tmp_path / "film.mov", 12 * MIB, 4)
    same_size = bytes(12 * MIB)  # another file of the same size, without Ferry's metadata
    with Ferry.open(ferry_env) as ferry:
        when(
            ferry,
            lambda e: (
                isinstance(e, TransferChanged) and e.transfer.state is TransferState.VERIFYING
            ),
            lambda: foreign_put(weed, bucket, "film.mov", same_size),
        )
        [record] = ferry.upload([tmp_path / "film.mov"])
        assert_conflict_left_it(ferry, weed, bucket, record, "film.mov", same_size)
        assert ferry.catalog.live(bucket, "film.mov") is None


def test_a_lost_complete_and_a_same_size_foreign_file_are_not_taken_for_ferrys(
    proxy_profile: Callable[..., None],
    proxy: FaultProxy,
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    # Complete's answer is lost (the connection reset before it reached the
    # server); meanwhile the upload is aborted and another program puts a file
    # of the same size at the key. Ferry's retried Complete finds no upload.
    proxy_profile(part_size=5 * MIB)
    write_random(tmp_path / "film.mov", 12 * MIB, 5)
    same_size = bytes(12 * MIB)
    client = weed.client()

    def abort_and_write() -> None:
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            client.abort_multipart_upload(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        foreign_put(weed, bucket, "film.mov", same_size)
        proxy.faults.clear()  # Ferry's next Complete reaches the server

    # Every Complete is cut until the first attempt has failed.
    proxy.faults = [Fault(is_complete, "reset", times=1000)]
    with Ferry.open(ferry_env) as ferry:
        when(
            ferry,
            lambda e: isinstance(e, TransferChanged) and e.transfer.state is TransferState.FAILED,
            abort_and_write,
        )
        [record] = ferry.upload([tmp_path / "film.mov"])
        assert_conflict_left_it(ferry, weed, bucket, record, "film.mov", same_size)
        assert ferry.catalog.live(bucket, "film.mov") is None


def test_delete_leaves_an_object_another_program_wrote_over_ferrys(
    weed_ferry: Ferry, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    ferry = weed_ferry
    write_random(tmp_path / "minutes.txt", 3000, 6)
    upload_done(ferry, tmp_path / "minutes.txt")
    foreign_put(weed, bucket, "minutes.txt")
    outcome = ferry.delete("minutes.txt")
    assert not outcome.object_deleted
    assert outcome.error is not None
    assert "another program wrote" in outcome.error
    assert stored(weed, bucket, "minutes.txt") == FOREIGN
    assert ferry.catalog.live(bucket, "minutes.txt") is None  # Ferry's record is gone

    # Ferry's own object, untouched, is deleted as before.
    write_random(tmp_path / "agenda.txt", 2000, 7)
    upload_done(ferry, tmp_path / "agenda.txt")
    assert ferry.delete("agenda.txt").object_deleted
    assert ferry.head("agenda.txt") is None


def test_a_server_side_copy_does_not_land_over_another_programs_object(
    weed_ferry: Ferry, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_random(tmp_path / "a" / "same.txt", 4000, 8)
    (tmp_path / "b" / "same.txt").write_bytes((tmp_path / "a" / "same.txt").read_bytes())
    upload_done(weed_ferry, tmp_path / "a" / "same.txt", prefix="a")
    foreign_put(weed, bucket, "b/same.txt")
    # The same content under another key is copied on the server: not over theirs.
    [copy] = weed_ferry.upload([tmp_path / "b" / "same.txt"], prefix="b")
    assert_conflict_left_it(weed_ferry, weed, bucket, copy, "b/same.txt", FOREIGN)

"""Uploads against a real weed mini: bytes in the bucket equal bytes on disk."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from desktop_app.core.catalog.records import FileQuery
from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.check.findings import CheckOptions
from desktop_app.core.journal.records import KeyConflictPolicy
from desktop_app.core.model.errors import StorageError, StorageErrorKind
from desktop_app.core.model.events import TransferProgress
from desktop_app.core.model.states import ErrorKind, TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.storage.copies import copy_object
from tests.conftest import (
    READER_ACCESS_KEY,
    READER_SECRET_KEY,
    WeedServer,
    save_test_profile,
)
from tests.faults import Fault, FaultProxy, is_complete, is_part_upload

MIB = 1024 * 1024


def write_random(path: Path, size: int, seed: int = 0) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    data = os.urandom(64) + data[: max(0, size - 64)] if size >= 64 else os.urandom(size)
    path.write_bytes(data[:size])
    return hashlib.sha256(data[:size]).hexdigest()


def object_sha256(weed: WeedServer, bucket: str, key: str) -> str:
    body = weed.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return hashlib.sha256(body).hexdigest()


@pytest.fixture
def ferry(weed_profile: Callable[..., None], ferry_env: Environment) -> Iterator[Ferry]:
    weed_profile(part_size=5 * MIB, concurrency=4, memory_budget=20 * MIB)
    app = Ferry.open(ferry_env)
    yield app
    app.close()


def test_small_and_multipart_files_arrive_verified_and_registered(
    ferry: Ferry, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    hashes = {
        "small.txt": write_random(src / "small.txt", 1000, 1),
        "empty.bin": write_random(src / "empty.bin", 0, 2),
        "big.bin": write_random(src / "big.bin", 13 * MIB + 7, 3),
        "sub/é ü.dat": write_random(src / "sub" / "é ü.dat", 5 * MIB, 4),
    }
    progress: list[TransferProgress] = []
    ferry.bus.subscribe(lambda e: progress.append(e) if isinstance(e, TransferProgress) else None)
    records = ferry.upload([src], prefix="in")
    assert {r.state for r in records} == {TransferState.DONE}, [r.error for r in records]
    for name, sha in hashes.items():
        key = f"in/src/{name}"
        assert object_sha256(weed, bucket, key) == sha
        row = ferry.catalog.live(bucket, key)
        assert row is not None
        assert row.status is FileStatus.ACTIVE
        assert row.sha256 == sha
    head = weed.client().head_object(Bucket=bucket, Key="in/src/big.bin")
    assert head["ETag"].strip('"').endswith("-3")
    assert head["Metadata"]["sha256"] == hashes["big.bin"]
    assert any(p.bytes_done == p.bytes_total == 13 * MIB + 7 for p in progress)
    assert ferry.engine.budget.peak <= 20 * MIB
    assert list(weed.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == []


def test_same_content_under_another_name_is_copied_on_the_server(
    ferry: Ferry, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    write_random(tmp_path / "a.txt", 500, 7)
    (tmp_path / "b.txt").write_bytes((tmp_path / "a.txt").read_bytes())
    [first] = ferry.upload([tmp_path / "a.txt"])
    [copied] = ferry.upload([tmp_path / "b.txt"])
    [again] = ferry.upload([tmp_path / "a.txt"])
    assert first.state is TransferState.DONE
    assert first.copy_source_key is None
    assert copied.state is TransferState.DONE
    assert copied.copy_source_key == "a.txt"
    assert again.state is TransferState.DUPLICATE
    assert again.duplicate_of == "a.txt"
    assert object_sha256(weed, bucket, "b.txt") == first.sha256
    row = ferry.catalog.live(bucket, "b.txt")
    assert row is not None
    assert row.copied_from == "a.txt"
    assert row.sha256 == first.sha256
    keys = [o["Key"] for o in weed.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["a.txt", "b.txt"]


def test_a_copy_whose_source_changed_sends_the_bytes_instead(
    ferry: Ferry, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    write_random(tmp_path / "a.txt", 500, 8)
    (tmp_path / "b.txt").write_bytes((tmp_path / "a.txt").read_bytes())
    [first] = ferry.upload([tmp_path / "a.txt"])
    # Another program overwrites a.txt in the bucket behind the catalog's back:
    # copying it now would store other bytes under b.txt.
    weed.client().put_object(Bucket=bucket, Key="a.txt", Body=b"overwritten elsewhere")
    [second] = ferry.upload([tmp_path / "b.txt"])
    assert second.state is TransferState.DONE
    assert second.copy_source_key is None
    assert object_sha256(weed, bucket, "b.txt") == first.sha256


def test_bad_input_gets_its_own_error_and_the_others_go_on(
    ferry: Ferry, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "mixed"
    src.mkdir()
    write_random(src / "good.txt", 100, 9)
    unreadable = src / "secret.txt"
    unreadable.write_text("x")
    unreadable.chmod(0)
    (src / "loop").symlink_to(src)
    (src / "outside").symlink_to("/etc/hostname")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "sock"))
    try:
        records = ferry.upload([src, tmp_path / "does-not-exist.txt"])
    finally:
        sock.close()
        unreadable.chmod(0o600)
    by_name = {Path(r.source_path).name: r for r in records}

    def error_title(name: str) -> str:
        error = by_name[name].error
        assert error is not None, name
        return error.title

    assert by_name["good.txt"].state is TransferState.DONE
    if os.geteuid() != 0:  # root reads anything
        assert error_title("secret.txt") == "No permission to read"
    assert error_title("loop") == "Folder loop"
    assert error_title("outside") == "Link outside the folder"
    assert error_title("sock") == "Not a regular file"
    assert error_title("does-not-exist.txt") == "File not found"
    assert ferry.catalog.live(bucket, "mixed/good.txt") is not None


def test_source_changed_mid_upload_leaves_no_object_and_no_multipart(
    ferry: Ferry, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    path = tmp_path / "growing.bin"
    write_random(path, 12 * MIB, 11)
    changed = threading.Event()

    def change_after_first_part(event: object) -> None:
        if isinstance(event, TransferProgress) and event.bytes_done > 0 and not changed.is_set():
            changed.set()
            with path.open("ab") as handle:
                handle.write(b"more bytes")

    ferry.bus.subscribe(change_after_first_part)
    [record] = ferry.upload([path])
    assert record.state is TransferState.FAILED
    assert record.error is not None
    assert "changed while uploading" in record.error.message
    assert weed.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert weed.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert ferry.catalog.search(FileQuery(bucket=bucket)) == []

    retried = ferry.wait([r.id for r in ferry.retry([record.id])])
    assert retried[0].state is TransferState.DONE
    assert (
        object_sha256(weed, bucket, "growing.bin") == hashlib.sha256(path.read_bytes()).hexdigest()
    )


def test_cancel_aborts_the_multipart_upload_and_releases_the_row(
    ferry: Ferry, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    path = tmp_path / "big.bin"
    write_random(path, 20 * MIB, 12)
    [queued] = ferry.queue([path])

    def cancel_on_progress(event: object) -> None:
        # A person's cancel comes from another thread (a subscriber returns at once:
        # progress is published from inside a part's request).
        if isinstance(event, TransferProgress) and event.bytes_done > 0 and not asked.is_set():
            asked.set()
            threading.Thread(target=ferry.cancel, args=([queued.id],)).start()

    asked = threading.Event()

    ferry.bus.subscribe(cancel_on_progress)
    [record] = ferry.wait([queued.id])
    assert record.state is TransferState.CANCELLED
    assert weed.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert weed.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert ferry.catalog.search(FileQuery(bucket=bucket)) == []


def test_transient_faults_are_survived(
    ferry_env: Environment, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    proxy = FaultProxy(weed.endpoint_url)
    proxy.faults = [
        Fault(is_part_upload, "status", times=2, status=503, code="SlowDown"),
        Fault(is_part_upload, "reset", times=1),
        Fault(is_part_upload, "status", times=1, status=500, code="InternalError"),
        Fault(is_complete, "status", times=1, status=502, code="BadGateway"),
    ]
    endpoint = proxy.start()
    try:
        save_test_profile(
            ferry_env,
            endpoint_url=endpoint,
            bucket=bucket,
            catalog_url=f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
            part_size=5 * MIB,
        )
        path = tmp_path / "flaky.bin"
        sha = write_random(path, 16 * MIB, 13)
        with Ferry.open(ferry_env) as app:
            [record] = app.upload([path])
        assert record.state is TransferState.DONE, record.error
        assert object_sha256(weed, bucket, "flaky.bin") == sha
        assert all(f.times == 0 for f in proxy.faults)
    finally:
        proxy.stop()


def test_permanent_failure_says_what_to_do(
    weed_profile: Callable[..., None],
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    weed_profile(access_key=READER_ACCESS_KEY, secret_key=READER_SECRET_KEY)
    write_random(tmp_path / "a.txt", 10, 1)
    with Ferry.open(ferry_env) as app:
        [record] = app.upload([tmp_path / "a.txt"])
        assert record.state is TransferState.FAILED
        assert record.error is not None
        assert record.error.title == "Access denied"
        assert "Ask for write permission" in record.error.message
        assert record.retry_at is None
        assert app.catalog.search(FileQuery()) == []


def test_a_copy_above_the_single_copy_limit_goes_in_conditional_parts(
    ferry: Ferry, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    ferry.storage.copy_limit = 6 * MIB  # S3's is 5 GiB: the same path, smaller
    ferry.storage.copy_part_size = 5 * MIB
    data = os.urandom(12 * MIB + 7)
    (tmp_path / "big.bin").write_bytes(data)
    (tmp_path / "big-copy.bin").write_bytes(data)
    [first] = ferry.upload([tmp_path / "big.bin"])
    [copied] = ferry.upload([tmp_path / "big-copy.bin"])
    assert first.state is TransferState.DONE
    assert first.copy_source_key is None
    assert copied.state is TransferState.DONE
    assert copied.copy_source_key == "big.bin"
    assert object_sha256(weed, bucket, "big-copy.bin") == hashlib.sha256(data).hexdigest()
    assert not weed.client().list_multipart_uploads(Bucket=bucket).get("Uploads")
    with pytest.raises(StorageError) as refused:
        copy_object(
            ferry.storage,
            "big.bin", "never.bin", source_etag="0" * 32, size=len(data),
            metadata={}, content_type="application/octet-stream",
        )  # fmt: skip
    assert refused.value.kind is StorageErrorKind.PRECONDITION_FAILED
    assert ferry.head("never.bin") is None
    assert not weed.client().list_multipart_uploads(Bucket=bucket).get("Uploads"), "aborted"


def test_a_single_put_is_proven_by_its_etag_and_an_opaque_etag_is_checked_with_head(
    proxy_profile: Callable[..., None],
    proxy: FaultProxy,
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    proxy_profile(part_size=5 * MIB)
    plain = write_random(tmp_path / "plain.txt", 3000, 11)
    opaque = write_random(tmp_path / "opaque.txt", 4000, 12)
    proxy.faults = [
        Fault(lambda r: r.method == "PUT" and r.path.endswith("/opaque.txt"), "opaque_etag")
    ]
    app = Ferry.open(ferry_env)
    try:
        records = app.upload([tmp_path / "plain.txt", tmp_path / "opaque.txt"])
        assert [r.state for r in records] == [TransferState.DONE] * 2, [r.error for r in records]
        heads = [r.path.rsplit("/", 1)[-1] for r in proxy.seen if r.method == "HEAD"]
        # The MD5 ETag of the PUT's answer is the proof; an opaque one is not.
        assert heads.count("plain.txt") == 0
        assert heads.count("opaque.txt") == 1
        for name, sha in (("plain.txt", plain), ("opaque.txt", opaque)):
            assert object_sha256(weed, bucket, name) == sha
            row = app.catalog.live(bucket, name)
            assert row is not None
            assert row.status is FileStatus.ACTIVE
            assert row.sha256 == sha
        # Queued -> uploading -> done: the steps a single PUT proves at once are skipped.
        history = {r.key: r.state for r in app.journal.all()}
        assert history == {"plain.txt": TransferState.DONE, "opaque.txt": TransferState.DONE}
    finally:
        app.close()


def test_a_part_hurt_on_the_way_is_refused_by_its_content_md5_and_sent_again(
    proxy_profile: Callable[..., None],
    proxy: FaultProxy,
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    proxy_profile(part_size=5 * MIB)
    sha = write_random(tmp_path / "hurt.bin", 12 * MIB + 5, 21)
    proxy.faults = [Fault(is_part_upload, "corrupt")]
    app = Ferry.open(ferry_env)
    try:
        [record] = app.upload([tmp_path / "hurt.bin"])
        assert record.state is TransferState.DONE, record.error
        assert proxy.faults[0].times == 0, "a part went through the proxy hurt"
        # The server checked the pre-pass MD5 against what it received: refused,
        # and the file's bytes being unchanged, the part was sent again.
        [refused, succeeded] = app.journal.attempts_of([record.id])[record.id]
        assert refused.error is not None
        assert "other bytes" in refused.error.message
        assert refused.error.kind is ErrorKind.TRANSIENT
        assert succeeded.error is None
        assert object_sha256(weed, bucket, "hurt.bin") == sha
        row = app.catalog.live(bucket, "hurt.bin")
        assert row is not None
        assert row.status is FileStatus.ACTIVE
        assert row.sha256 == sha
    finally:
        app.close()


def test_a_bandwidth_schedule_switching_mid_upload_changes_the_rate_within_2_s(
    weed_profile: Callable[..., None],
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    """2 MiB/s until about six seconds after the upload starts, then no limit."""
    size = 60 * MIB
    expected = write_random(tmp_path / "big.bin", size)
    wall_now, monotonic_now = datetime.now().astimezone(), time.monotonic()
    # The schedule names whole seconds: the switch is at the start of that second.
    switch_wall = (wall_now + timedelta(seconds=6)).replace(microsecond=0)
    switch_at = monotonic_now + (switch_wall - wall_now).total_seconds()
    clock = "%H:%M:%S"
    schedule = (
        f"{(wall_now - timedelta(hours=1)):{clock}}-{switch_wall:{clock}} 2MiB/s, "
        f"{switch_wall:{clock}}-{(wall_now + timedelta(hours=1)):{clock}} off"
    )
    weed_profile(part_size=5 * MIB, concurrency=4, bandwidth_schedule=schedule)
    accepted: list[tuple[float, int]] = []
    app = Ferry.open(ferry_env)
    app.bus.subscribe(
        lambda e: (
            accepted.append((time.monotonic(), e.bytes_done))
            if isinstance(e, TransferProgress)
            else None
        )
    )
    try:
        [record] = app.upload([tmp_path / "big.bin"])
    finally:
        app.close()
    assert record.state is TransferState.DONE, record.error
    assert object_sha256(weed, bucket, "big.bin") == expected

    def done_by(moment: float) -> int:
        return max((done for at, done in accepted if at <= moment), default=0)

    started = accepted[0][0]
    before = done_by(switch_at)
    # Before the switch: 2 MiB/s, a one-second burst, and one 5 MiB part in hand.
    assert before <= 2 * MIB * (switch_at - started + 1) + 5 * MIB, before
    assert before < size / 2
    after = done_by(switch_at + 2) - before
    print(f"\n{before / MIB:.0f} MiB by the switch, {after / MIB:.0f} MiB in the 2 s after it")
    assert after >= 20 * MIB, "the rate did not rise within 2 s of the schedule's switch"


def test_a_cancelled_overwrite_leaves_the_stored_version_as_it_was(
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    catalog_url: str,
    tmp_path: Path,
) -> None:
    # A rewritten watched file under watch_key_conflict = "overwrite": v2's
    # upload is cancelled half-way. v1 stays the file (row active, object
    # intact, nothing announced), and the next check has nothing to repair.
    save_test_profile(
        ferry_env,
        endpoint_url=weed.endpoint_url,
        bucket=bucket,
        catalog_url=catalog_url,
        part_size=5 * MIB,
        concurrency=2,
        bandwidth_limit=8 * MIB,
    )
    with Ferry.open(ferry_env) as ferry:
        source = tmp_path / "minutes.docx"
        v1 = write_random(source, 6 * MIB, 21)
        [first] = ferry.upload([source])
        assert first.state is TransferState.DONE, first.error
        row = ferry.catalog.live(bucket, "minutes.docx")
        assert row is not None
        events_before = len(ferry.catalog.unpublished_events())

        v2 = write_random(source, 40 * MIB, 22)
        [queued] = ferry.engine.intake.queue_files(
            [(source, "minutes.docx")], KeyConflictPolicy.OVERWRITE
        )
        [handle] = ferry.scheduler.submit([queued.id])  # a one-shot Ferry runs what it awaits
        deadline = time.monotonic() + 30
        while not weed.client().list_multipart_uploads(Bucket=bucket).get("Uploads"):
            assert time.monotonic() < deadline, "the overwrite never started sending"
            time.sleep(0.05)
        ferry.cancel([queued.id])
        cancelled = handle.result(timeout=60)
        ferry.scheduler.let_go([handle])
        assert cancelled.state is TransferState.CANCELLED

        restored = ferry.catalog.live(bucket, "minutes.docx")
        assert restored is not None
        assert restored.id == row.id
        assert restored.status is FileStatus.ACTIVE
        assert restored.sha256 == v1
        assert restored.deleted_at is None
        assert restored.deleted_by is None
        assert object_sha256(weed, bucket, "minutes.docx") == v1
        assert len(ferry.catalog.unpublished_events()) == events_before  # no file.deleted
        report = ferry.check(CheckOptions(grace_seconds=0))
        assert report.consistent, [(f.kind, f.key) for f in report.findings]

        # The same overwrite let through replaces v1 in one step: v1 deleted
        # and announced together with v2's activation.
        [again] = ferry.engine.intake.queue_files(
            [(source, "minutes.docx")], KeyConflictPolicy.OVERWRITE
        )
        [done] = ferry.wait([again.id])
        assert done.state is TransferState.DONE, done.error
        assert object_sha256(weed, bucket, "minutes.docx") == v2
        replaced = ferry.catalog.get(row.id)
        assert replaced is not None
        assert replaced.status is FileStatus.DELETED
        live = ferry.catalog.live(bucket, "minutes.docx")
        assert live is not None
        assert live.sha256 == v2
        assert live.status is FileStatus.ACTIVE
        events = ferry.catalog.unpublished_events()[events_before:]
        assert [(e.event_type.value, e.payload["file_id"]) for e in events] == [
            ("file.deleted", row.id),
            ("file.uploaded", live.id),
        ]

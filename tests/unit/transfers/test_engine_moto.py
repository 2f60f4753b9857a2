"""Fast engine tests on moto's in-process S3 (the real-server tests are in integration/)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

from desktop_app.core.journal.store import Journal
from desktop_app.core.model.errors import JournalLockedError
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.transfers.limits import ByteBudget
from tests.conftest import open_moto_ferry

MIB = 1024 * 1024


@pytest.fixture
def ferry(moto_ferry: Ferry) -> Ferry:
    return moto_ferry


def test_small_and_multipart_uploads_match_on_moto(ferry: Ferry, tmp_path: Path) -> None:
    small, big = tmp_path / "small.txt", tmp_path / "big.bin"
    small.write_bytes(b"hello moto")
    big.write_bytes(os.urandom(11 * MIB + 5))
    records = ferry.upload([small, big])
    assert [r.state for r in records] == [TransferState.DONE, TransferState.DONE]
    client = boto3.client("s3", region_name="us-east-1")
    for path in (small, big):
        body = client.get_object(Bucket="unit-bucket", Key=path.name)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert client.head_object(Bucket="unit-bucket", Key="big.bin")["ETag"].endswith('-3"')


def test_each_activation_names_its_key_for_the_catalogs_lock_order(
    ferry: Ferry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog puts an activation in its group by the key it is given (#35):
    every upload gives the one it registers."""
    activate = ferry.catalog.activate
    given: list[object] = []

    def spy(file_id: int, **kwargs: Any) -> Any:
        given.append(kwargs.get("key"))
        return activate(file_id, **kwargs)

    monkeypatch.setattr(ferry.catalog, "activate", spy)
    small, big = tmp_path / "small.txt", tmp_path / "big.bin"
    small.write_bytes(b"hello moto")
    big.write_bytes(os.urandom(11 * MIB))
    records = ferry.upload([small, big])
    assert [r.state for r in records] == [TransferState.DONE, TransferState.DONE]
    assert sorted(given) == [("unit-bucket", "big.bin"), ("unit-bucket", "small.txt")]  # type: ignore[type-var]


def test_a_second_ferry_on_the_same_journal_is_refused(ferry: Ferry) -> None:
    with pytest.raises(JournalLockedError, match="Another Ferry"):
        Journal(ferry.env.paths.journal_file)


def test_byte_budget_caps_what_is_held() -> None:
    budget = ByteBudget(10)
    held = [budget.acquire(4), budget.acquire(4)]
    assert budget.peak == 8
    for amount in held:
        budget.release(amount)
    assert budget.acquire(50) == 10  # a part larger than the budget takes all of it


def test_large_parts_leave_room_for_small_files_in_the_budget() -> None:
    budget = ByteBudget(64, small_reserve=16)
    held = [budget.acquire(16) for _ in range(3)]  # parts: 48 of 64
    ready = threading.Event()

    def fourth_part() -> None:
        held.append(budget.acquire(16))
        ready.set()

    waiting = threading.Thread(target=fourth_part, daemon=True)
    waiting.start()
    assert not ready.wait(0.2), "a fourth part must wait: the rest is for small files"
    assert budget.acquire(1) == 1  # a small file goes at once
    budget.release(1)
    budget.release(16)
    assert ready.wait(5)


def test_a_part_buffer_given_back_is_lent_again_for_the_next_part_of_its_size() -> None:
    budget = ByteBudget(64, small_reserve=16)
    first = budget.take_buffer(16)
    first[:] = b"a" * 16
    budget.give_back(first)
    again = budget.take_buffer(16)
    assert again is first  # the same memory: no fresh pages to clear
    budget.give_back(again)
    assert budget.peak == 16  # one buffer, counted once
    last = budget.take_buffer(5)  # the last, shorter part gets a buffer of its own size
    assert len(last) == 5
    assert last is not first
    budget.give_back(last)


def test_a_reader_waiting_for_room_takes_the_buffer_given_back() -> None:
    budget = ByteBudget(64, small_reserve=16)
    lent = [budget.take_buffer(16) for _ in range(3)]  # the 48 bytes parts may hold
    taken: list[object] = []
    waiting = threading.Thread(target=lambda: taken.append(budget.take_buffer(16)), daemon=True)
    waiting.start()
    waiting.join(0.2)
    assert not taken, "a fourth part must wait for room"
    budget.give_back(lent[1])
    waiting.join(5)
    assert taken == [lent[1]]  # reused, not dropped to make room for a new one
    assert budget.peak == 48


def test_spare_buffers_never_make_anyone_wait_and_end_with_the_send() -> None:
    budget = ByteBudget(64, small_reserve=16)
    for buffer in [budget.take_buffer(16) for _ in range(3)]:
        budget.give_back(buffer)
    assert budget.spare_bytes == 48
    assert budget.acquire(32) == 32  # a pre-pass ring: spares make room at once
    assert budget.spare_bytes == 16
    budget.release(32)
    sending, sent = budget.take_buffer(16), budget.take_buffer(16)
    budget.give_back(sent)
    budget.drop_spares()
    assert budget.spare_bytes == 16  # a part is still being sent: its file's spares stay
    budget.give_back(sending)
    budget.drop_spares()
    assert budget.spare_bytes == 0
    assert budget.acquire(48) == 48  # all of it free again


def test_another_programs_object_survives_an_upload_and_a_delete_on_moto(
    ferry: Ferry, tmp_path: Path
) -> None:
    client = boto3.client("s3", region_name="us-east-1")
    foreign = b"written by another program"
    client.put_object(Bucket="unit-bucket", Key="taken.txt", Body=foreign)
    (tmp_path / "taken.txt").write_bytes(b"Ferry's file")
    [refused] = ferry.upload([tmp_path / "taken.txt"])
    assert refused.state is TransferState.FAILED
    assert refused.error is not None
    assert refused.error.title == "Written by another program"
    assert client.get_object(Bucket="unit-bucket", Key="taken.txt")["Body"].read() == foreign

    (tmp_path / "mine.txt").write_bytes(b"Ferry's own")
    [done] = ferry.upload([tmp_path / "mine.txt"])
    assert done.state is TransferState.DONE
    client.put_object(Bucket="unit-bucket", Key="mine.txt", Body=foreign)
    outcome = ferry.delete("mine.txt")
    assert not outcome.object_deleted
    assert client.get_object(Bucket="unit-bucket", Key="mine.txt")["Body"].read() == foreign


def test_the_profile_test_says_the_server_refuses_writes_over_others_objects(
    ferry: Ferry,
) -> None:
    from desktop_app.core.model.bucket_objects import WriteProtection
    from desktop_app.core.runtime.diagnosis import diagnose_profile
    from desktop_app.core.storage.probes import probe_write

    assert probe_write(ferry.storage, "probe") is WriteProtection.CONDITIONS_HONOURED
    client = boto3.client("s3", region_name="us-east-1")
    assert client.list_objects_v2(Bucket="unit-bucket").get("KeyCount", 0) == 0  # cleaned up
    checks = {c.name: c for c in diagnose_profile(ferry.env, ferry.profile)}
    assert checks["other tools"].ok
    assert "never overwritten" in checks["other tools"].detail


def test_a_profile_asking_for_sse_kms_gets_it_on_every_object_and_uploads_first_time(
    ferry_env: Environment, tmp_path: Path
) -> None:
    small, big = tmp_path / "small.txt", tmp_path / "big.bin"
    small.write_bytes(b"kept under a KMS key")
    big.write_bytes(os.urandom(11 * MIB + 5))
    with open_moto_ferry(ferry_env, tmp_path, sse="aws:kms", sse_kms_key_id="alias/ferry") as app:
        records = app.upload([small, big])
        # done, and not one failed attempt
        assert [(r.state, r.attempts) for r in records] == [(TransferState.DONE, 0)] * 2
        client = boto3.client("s3", region_name="us-east-1")
        for path in (small, big):
            head = client.head_object(Bucket="unit-bucket", Key=path.name)
            assert head["ServerSideEncryption"] == "aws:kms"
            assert head["SSEKMSKeyId"].endswith("alias/ferry")
            body = client.get_object(Bucket="unit-bucket", Key=path.name)["Body"].read()
            assert hashlib.sha256(body).digest() == hashlib.sha256(path.read_bytes()).digest()

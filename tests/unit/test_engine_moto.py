"""Fast engine tests on moto's in-process S3 (the real-server tests are in integration/)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import boto3
import pytest

from desktop_app.core.app import Ferry
from desktop_app.core.errors import JournalLockedError
from desktop_app.core.journal import Journal, TransferState
from desktop_app.core.throttle import BandwidthLimiter, ByteBudget

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


def test_a_second_ferry_on_the_same_journal_is_refused(ferry: Ferry) -> None:
    with pytest.raises(JournalLockedError, match="Another Ferry"):
        Journal(ferry.env.paths.journal_file)


def test_bandwidth_limiter_paces_without_real_sleeping() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = BandwidthLimiter(1000, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limiter.consume(500)
    # 2,500 bytes at 1,000 B/s with a one-second burst: 1.5 s of waiting.
    assert sum(slept) == pytest.approx(1.5)


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


def test_a_small_request_waits_only_for_its_own_bytes() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)

    limiter = BandwidthLimiter(1000, clock=lambda: now[0], sleep=sleep, small_request=100)
    limiter.consume(5000)  # a large part: 4 s of debt
    assert slept == [4.0]
    limiter.consume(10)
    assert slept[-1] == pytest.approx(0.01)  # not the 4 s of debt before it
    limiter.consume(1000)
    assert slept[-1] == pytest.approx(5.01)  # the large one after it pays

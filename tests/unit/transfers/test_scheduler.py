"""Retry, backoff, probe and wake-from-sleep of the scheduler, fast: moto and fake clocks."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

from desktop_app.core.model.states import ErrorKind, TransferState
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.transfers.engine import TransferHeldError
from desktop_app.core.transfers.retry import RetryPolicy
from desktop_app.core.transfers.scheduler import HoldBackReason, Scheduler, SchedulerOptions

MIB = 1024 * 1024
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class Clocks:
    """A wall clock and a monotonic clock that tests move by hand."""

    def __init__(self) -> None:
        self.wall_seconds = T0.timestamp()
        self.mono_seconds = 1000.0

    def wall(self) -> float:
        return self.wall_seconds

    def monotonic(self) -> float:
        return self.mono_seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall_seconds, UTC)

    def advance(self, seconds: float, *, asleep: bool = False) -> None:
        """Time passes; while asleep the monotonic clock stands still (as on Linux)."""
        self.wall_seconds += seconds
        if not asleep:
            self.mono_seconds += seconds


@pytest.fixture
def ferry(moto_ferry: Ferry) -> Ferry:
    return moto_ferry


def on_call(ferry: Ferry, operation: str, hook: Callable[..., Any]) -> None:
    """``hook(params=...)`` runs before each ``operation`` (PutObject, UploadPart...)
    of Ferry's own S3 client, below its storage adapter, the write probe's requests
    left out. Returning an (HTTP response, parsed answer) pair answers the request
    unsent; raising is what botocore raises; None lets the request go to the server."""

    def hook_but_the_probe(params: dict[str, Any], **kwargs: Any) -> Any:
        if ".ferry-probe-" in params["url_path"]:
            return None
        return hook(params=params, **kwargs)

    ferry.storage.client.meta.events.register(f"before-call.s3.{operation}", hook_but_the_probe)


def failing_puts(ferry: Ferry, failures: int) -> list[int]:
    """The next `failures` PUTs fail as a dropped network does (botocore's own
    EndpointConnectionError, once its retries are spent); returns a call count."""
    calls = [0]

    def cut(params: dict[str, Any], **_: Any) -> None:
        calls[0] += 1
        if calls[0] <= failures:
            raise EndpointConnectionError(endpoint_url=params["url"])

    on_call(ferry, "PutObject", cut)
    return calls


def with_clocks(ferry: Ferry, clocks: Clocks, policy: RetryPolicy) -> None:
    ferry.engine.now = clocks.now
    ferry.engine.jitter = lambda: 1.0
    ferry.engine.options = dataclasses.replace(ferry.engine.options, retry=policy)


def test_transient_failures_wait_growing_delays_and_keep_every_attempt(
    ferry: Ferry, tmp_path: Path
) -> None:
    clocks = Clocks()
    with_clocks(ferry, clocks, RetryPolicy(base=30, cap=3600))
    failing_puts(ferry, 4)
    (tmp_path / "a.txt").write_text("hello")
    [record] = ferry.queue([tmp_path / "a.txt"])
    delays = []
    for _ in range(4):
        failed = ferry.engine.process(record.id)
        assert failed.state is TransferState.FAILED
        assert failed.error is not None
        assert failed.error.kind is ErrorKind.TRANSIENT
        assert "tries again by itself" in failed.error.message
        assert failed.retry_at is not None
        delays.append((failed.retry_at - clocks.now()).total_seconds())
        clocks.advance(delays[-1])
    assert delays == [30, 60, 120, 240]
    done = ferry.engine.process(record.id)
    assert done.state is TransferState.DONE
    history = ferry.attempts([record.id])[record.id]
    assert [a.error.kind if a.error else None for a in history] == [ErrorKind.TRANSIENT] * 4 + [
        None
    ]
    assert history[-1].bytes_sent == 5


def test_the_delay_is_capped() -> None:
    policy = RetryPolicy(base=30, cap=3600)
    assert [policy.delay(n, 1.0) for n in (1, 2, 7, 8, 30)] == [30, 60, 1920, 3600, 3600]
    assert policy.delay(3, 0.0) == 60  # jitter takes off at most half


def new_scheduler(
    ferry: Ferry, clocks: Clocks, probe: Callable[[], bool] | None = None
) -> Scheduler:
    return Scheduler(
        ferry.engine,
        SchedulerOptions(workers=2, probe_interval=0.0, idle_poll=0.05),
        probe=probe,
        monotonic=clocks.monotonic,
        wall=clocks.wall,
    )


def run_scheduler(
    ferry: Ferry, clocks: Clocks, probe: Callable[[], bool] | None = None
) -> Scheduler:
    scheduler = new_scheduler(ferry, clocks, probe)
    scheduler.start()
    return scheduler


def wait_for_state(ferry: Ferry, transfer_id: int, state: TransferState) -> None:
    deadline = time.monotonic() + 10
    while ferry.journal.get(transfer_id).state is not state:
        assert time.monotonic() < deadline, ferry.journal.get(transfer_id)
        time.sleep(0.02)


def test_after_sleep_waiting_transfers_are_tried_at_once(ferry: Ferry, tmp_path: Path) -> None:
    clocks = Clocks()
    with_clocks(ferry, clocks, RetryPolicy(base=3600, cap=3600))
    failing_puts(ferry, 1)
    (tmp_path / "a.txt").write_text("hello")
    [record] = ferry.queue([tmp_path / "a.txt"])
    scheduler = run_scheduler(ferry, clocks)
    try:
        wait_for_state(ferry, record.id, TransferState.FAILED)
        time.sleep(0.3)
        assert ferry.journal.get(record.id).state is TransferState.FAILED, "waits its hour"
        clocks.advance(120, asleep=True)  # the lid was closed for two minutes
        wait_for_state(ferry, record.id, TransferState.DONE)
    finally:
        scheduler.stop()


def test_the_probe_wakes_waiting_transfers_when_the_endpoint_comes_back(
    ferry: Ferry, tmp_path: Path
) -> None:
    clocks = Clocks()
    with_clocks(ferry, clocks, RetryPolicy(base=3600, cap=3600))
    failing_puts(ferry, 1)
    answers = threading.Event()
    (tmp_path / "a.txt").write_text("hello")
    [record] = ferry.queue([tmp_path / "a.txt"])
    scheduler = run_scheduler(ferry, clocks, probe=answers.is_set)
    try:
        wait_for_state(ferry, record.id, TransferState.FAILED)
        time.sleep(0.3)  # the probe finds the endpoint down
        assert ferry.journal.get(record.id).state is TransferState.FAILED
        answers.set()
        wait_for_state(ferry, record.id, TransferState.DONE)
    finally:
        scheduler.stop()


def test_permanent_failures_never_retry_on_their_own(ferry: Ferry, tmp_path: Path) -> None:
    clocks = Clocks()
    with_clocks(ferry, clocks, RetryPolicy(base=1, cap=1))

    def denied(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return AWSResponse(params["url"], 403, HTTPHeaders(), None), {
            "Error": {"Code": "AccessDenied", "Message": "Access Denied"},
            "ResponseMetadata": {"HTTPStatusCode": 403},
        }

    on_call(ferry, "PutObject", denied)
    (tmp_path / "a.txt").write_text("hello")
    [record] = ferry.queue([tmp_path / "a.txt"])
    failed = ferry.engine.process(record.id)
    assert failed.error is not None
    assert failed.error.kind is ErrorKind.PERMANENT
    assert failed.retry_at is None
    clocks.advance(10_000)
    assert ferry.journal.runnable(["aws"], clocks.now() + timedelta(days=1)) == []


def test_a_held_transfer_is_refused_to_a_second_worker(ferry: Ferry, tmp_path: Path) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow_put(**_: Any) -> None:  # the PUT waits, then goes to the server
        entered.set()
        release.wait(10)

    on_call(ferry, "PutObject", slow_put)
    (tmp_path / "a.txt").write_text("hello")
    [record] = ferry.queue([tmp_path / "a.txt"])
    first = threading.Thread(target=ferry.engine.process, args=(record.id,))
    first.start()
    assert entered.wait(10)
    with pytest.raises(TransferHeldError):
        ferry.engine.process(record.id)
    release.set()
    first.join()
    assert ferry.engine.holds_refused == 1
    assert ferry.journal.get(record.id).state is TransferState.DONE


def test_another_profiles_transfer_is_never_run(ferry: Ferry, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    [record] = ferry.queue([tmp_path / "a.txt"])
    other = Scheduler(ferry.engine, SchedulerOptions())
    other.profiles = ("someone-else",)
    assert ferry.journal.runnable(["someone-else"], datetime.now(UTC)) == []
    ferry.engine.profile_name = "someone-else"
    with pytest.raises(Exception, match="belongs to profile 'aws'"):
        ferry.engine.process(record.id)
    assert ferry.journal.get(record.id).state is TransferState.QUEUED


def test_a_file_deleted_before_a_resume_is_a_clear_input_error(
    ferry: Ferry, tmp_path: Path
) -> None:
    """Not an "unexpected error" retried for ever: the person is told the file is gone."""
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(11 * MIB))
    [record] = ferry.queue([path])
    calls = [0]

    def second_part_fails(params: dict[str, Any], **_: Any) -> None:
        calls[0] += 1
        if calls[0] == 2:  # the connection reset under the part
            raise ConnectionClosedError(endpoint_url=params["url"])

    on_call(ferry, "UploadPart", second_part_fails)
    interrupted = ferry.engine.process(record.id)
    assert interrupted.state is TransferState.FAILED
    assert interrupted.upload_id is not None
    path.unlink()
    failed = ferry.engine.process(record.id)
    assert failed.error is not None, failed.error
    assert failed.error.kind is ErrorKind.INPUT, failed.error
    assert failed.error.title == "File gone"


def test_a_hold_back_arriving_while_the_journal_is_read_starts_nothing(
    ferry: Ferry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A metered network reported between the scheduler's look at its reasons
    and its read of the journal: the transfer read stays queued until let go."""
    (tmp_path / "a.txt").write_text("hello")
    [record] = ferry.queue([tmp_path / "a.txt"])
    scheduler = new_scheduler(ferry, Clocks())
    read_runnable = ferry.journal.runnable_sizes
    read = threading.Event()

    def held_back_while_reading(*args: Any) -> Any:
        scheduler.hold_back(HoldBackReason.METERED, True)
        found = read_runnable(*args)
        read.set()
        return found

    monkeypatch.setattr(ferry.journal, "runnable_sizes", held_back_while_reading)
    scheduler.start()
    try:
        assert read.wait(10)
        time.sleep(0.5)  # a transfer handed out would be sent by now
        assert ferry.journal.get(record.id).state is TransferState.QUEUED
        monkeypatch.setattr(ferry.journal, "runnable_sizes", read_runnable)
        scheduler.hold_back(HoldBackReason.METERED, False)
        wait_for_state(ferry, record.id, TransferState.DONE)
    finally:
        scheduler.stop()

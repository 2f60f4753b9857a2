"""A person's actions against a worker, played out step by step (moto's S3).

The test is the worker: it takes a transfer's hold as the scheduler does and
runs the attempt itself; the person's cancel or pause arrives from inside the
attempt (when the server has accepted the first part) or before it. Nothing
sleeps: a person's action is given no patience, the attempt runs on this
thread, and one part is sent at a time (concurrency 1), so where the action
lands is known exactly.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import boto3
import pytest

from desktop_app.core.journal.records import TransferRecord
from desktop_app.core.model.errors import ErrorCause
from desktop_app.core.model.events import EngineEvent, TransferProgress
from desktop_app.core.model.states import ErrorKind, TransferState
from desktop_app.core.model.transfer_records import TransferError
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.transfers.control import TransferControl
from tests.conftest import open_moto_ferry

MIB = 1024 * 1024
BUCKET = "unit-bucket"  # moto_ferry's


@pytest.fixture
def ferry(ferry_env: Environment, tmp_path: Path) -> Iterator[Ferry]:
    with open_moto_ferry(ferry_env, tmp_path, concurrency=1) as app:
        yield app


def queued(ferry: Ferry, path: Path, size: int) -> TransferRecord:
    path.write_bytes(os.urandom(size))
    [record] = ferry.queue([path])
    assert record.state is TransferState.QUEUED
    return record


def take_as_worker(ferry: Ferry, transfer_id: int) -> TransferControl:
    control = ferry.engine.holds.take_for_worker(transfer_id, small=False)
    assert control is not None
    return control


def on_first_part(ferry: Ferry, action: Callable[[], object]) -> list[int]:
    """Calls ``action`` when the server has accepted the first part; the parts'
    byte counts seen after it."""
    after: list[int] = []

    def subscriber(event: EngineEvent) -> None:
        if not isinstance(event, TransferProgress) or event.bytes_done == 0:
            return
        if not after:
            action()
        after.append(event.bytes_done)

    ferry.engine.bus.subscribe(subscriber)
    return after


def stored(key: str) -> list[str]:
    client = boto3.client("s3", region_name="us-east-1")
    objects = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    uploads = [u["Key"] for u in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]
    return [k for k in objects + uploads if k == key]


def test_a_cancel_of_a_transfer_no_worker_holds_is_done_at_once(
    ferry: Ferry, tmp_path: Path
) -> None:
    record = queued(ferry, tmp_path / "notes.txt", 1000)
    [cancelled] = ferry.coordinator.cancel([record.id], patience=0)
    assert cancelled.state is TransferState.CANCELLED
    # A worker that picks it afterwards finds it cancelled and sends nothing.
    control = take_as_worker(ferry, record.id)
    assert ferry.engine.run_held(record.id, control).state is TransferState.CANCELLED
    ferry.engine.holds.release(record.id)
    assert stored("notes.txt") == []


def test_a_cancel_during_an_attempt_is_carried_out_by_the_worker(
    ferry: Ferry, tmp_path: Path
) -> None:
    record = queued(ferry, tmp_path / "film.mov", 12 * MIB)
    control = take_as_worker(ferry, record.id)
    answers: list[list[TransferRecord]] = []
    on_first_part(ferry, lambda: answers.append(ferry.coordinator.cancel([record.id], patience=0)))

    final = ferry.engine.run_held(record.id, control)
    ferry.engine.holds.release(record.id)

    # The person was answered while the worker still held it, with the truth
    # as it then was; the worker stopped at its next check and compensated.
    assert [r.state for r in answers[0]] == [TransferState.UPLOADING]
    assert control.bytes_sent == 5 * MIB  # the first part only
    assert final.state is TransferState.CANCELLED
    assert stored("film.mov") == []  # the multipart upload was aborted
    assert ferry.catalog.live(BUCKET, "film.mov") is None


def test_a_pause_during_an_attempt_keeps_what_was_sent_and_resumes_from_it(
    ferry: Ferry, tmp_path: Path
) -> None:
    source = tmp_path / "film.mov"
    record = queued(ferry, source, 12 * MIB)
    control = take_as_worker(ferry, record.id)
    on_first_part(ferry, lambda: ferry.coordinator.pause([record.id], patience=0))

    paused = ferry.engine.run_held(record.id, control)
    ferry.engine.holds.release(record.id)
    assert paused.paused
    assert paused.state is TransferState.UPLOADING
    assert [p.done for p in ferry.journal.parts(record.id)] == [True, False, False]
    assert control.bytes_sent == 5 * MIB  # no part was sent after the pause
    assert stored("film.mov") == ["film.mov"]  # the multipart upload waits

    assert ferry.coordinator.unpause([record.id]) == 1
    [done] = ferry.wait([record.id])
    assert done.state is TransferState.DONE, done.error
    body = boto3.client("s3", region_name="us-east-1").get_object(Bucket=BUCKET, Key="film.mov")
    assert (
        hashlib.sha256(body["Body"].read()).hexdigest()
        == hashlib.sha256(source.read_bytes()).hexdigest()
    )


def failed_and_held(ferry: Ferry, tmp_path: Path) -> TransferRecord:
    """A transfer whose attempt has just failed (bad input), its worker not yet let go."""
    record = queued(ferry, tmp_path / "gone.txt", 10)
    (tmp_path / "gone.txt").unlink()
    failed = ferry.engine.run_held(record.id, take_as_worker(ferry, record.id))
    assert failed.state is TransferState.FAILED
    return failed


def test_a_retry_clicked_while_the_failed_attempt_lets_go_is_carried_out(
    ferry: Ferry, tmp_path: Path
) -> None:
    record = failed_and_held(ferry, tmp_path)  # the window shows it failed
    (tmp_path / "gone.txt").write_text("back")
    assert ferry.coordinator.retry([record.id], patience=0) == []  # no patience: left

    letting_go = threading.Timer(0.3, ferry.engine.holds.release, args=[record.id])
    letting_go.start()
    [retried] = ferry.coordinator.retry([record.id], patience=30)
    letting_go.join()
    assert retried.state is TransferState.QUEUED
    assert retried.attempts == 0
    assert ferry.journal.get(record.id).state is TransferState.QUEUED


def test_a_retry_leaves_a_transfer_to_the_try_its_worker_has_begun(
    ferry: Ferry, tmp_path: Path
) -> None:
    failed = failed_and_held(ferry, tmp_path)
    # The worker's next try moves it on from failed, as an attempt does first.
    beginning = threading.Timer(0.3, ferry.engine.move, args=[failed.id, failed.resume_point])
    beginning.start()
    started = time.monotonic()
    assert ferry.coordinator.retry([failed.id], patience=30) == []
    beginning.join()
    assert time.monotonic() - started < 10  # not kept waiting for that try
    ferry.engine.holds.release(failed.id)
    now = ferry.journal.get(failed.id)
    assert now.state is failed.resume_point
    assert now.attempts == failed.attempts  # the try's own count, not a person's reset


def test_a_pause_asked_while_a_retry_waits_for_the_worker_stands(
    ferry: Ferry, tmp_path: Path
) -> None:
    # A failure that retries by itself (only those can be paused), worker not let go.
    record = queued(ferry, tmp_path / "notes.txt", 10)
    take_as_worker(ferry, record.id)
    unreachable = TransferError(
        ErrorKind.TRANSIENT, "No answer", "The server did not answer.", ErrorCause.NETWORK
    )
    ferry.engine.move(record.id, TransferState.FAILED, error=unreachable)
    waiting = threading.Event()
    holds = ferry.engine.holds
    real_wait = holds.wait_released

    def wait_released(transfer_ids: Iterable[int], timeout: float) -> bool:
        waiting.set()
        return real_wait(transfer_ids, timeout)

    holds.wait_released = wait_released  # type: ignore[method-assign]
    answers: list[list[TransferRecord]] = []
    retrying = threading.Thread(
        target=lambda: answers.append(ferry.coordinator.retry([record.id], patience=30))
    )
    retrying.start()
    assert waiting.wait(30)  # the Retry waits for the worker's hold
    assert ferry.coordinator.pause([record.id], patience=0) == 1
    ferry.engine.holds.release(record.id)
    retrying.join(30)
    assert answers == [[]]
    now = ferry.journal.get(record.id)
    assert now.paused
    assert now.state is TransferState.FAILED


def test_a_one_shot_ferry_runs_only_what_it_waits_for(ferry: Ferry, tmp_path: Path) -> None:
    # A transfer left queued by an earlier command is not sent by the next
    # `ferry upload`: only `ferry resume` (or a wait on it) sends it.
    left = queued(ferry, tmp_path / "left.txt", 100)
    asked = queued(ferry, tmp_path / "asked.txt", 100)
    [done] = ferry.wait([asked.id])
    assert done.state is TransferState.DONE
    assert ferry.journal.get(left.id).state is TransferState.QUEUED
    assert stored("left.txt") == []

    [handle] = ferry.scheduler.submit([left.id])
    try:
        assert handle.result(timeout=30).state is TransferState.DONE
    finally:
        ferry.scheduler.let_go([handle])
    assert stored("left.txt") == ["left.txt"]

"""A person's cancel, pause and retry racing the workers, on a real weed mini.

The second actor is the person: cancel right after queueing (0-3 ms, while
the scheduler is picking the transfer), cancel when an automatic retry comes
due, pause and unpause while parts are on their way, Retry of everything
failed while the same transfers retry by themselves. The proxy in front of
the server delays aborts and deletes, so compensation takes time and the
window for a worker to pick the transfer meanwhile is wide.

What must hold in every round: each transfer ends done, cancelled or failed
as asked; the scheduler never halts and no state change is refused; no
request for a transfer's key reaches the server after its cancel returned
"cancelled"; no part of a paused transfer is sent after its pause returned,
until it is unpaused; what is done is in the bucket byte for byte.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from desktop_app.core.journal.facts import NewTransfer
from desktop_app.core.journal.records import SourceIdentity, TransferError
from desktop_app.core.model.states import ErrorKind, TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.transfers.retry import RetryPolicy
from tests.conftest import WeedServer
from tests.faults import Fault, FaultProxy, Request
from tests.integration.transfers.test_crash import wait_for
from tests.integration.transfers.test_engine import object_sha256
from tests.integration.transfers.test_scheduler import open_resident

MIB = 1024 * 1024
ROUNDS = int(os.environ.get("FERRY_RACE_ROUNDS", "1000"))


def requests_for(proxy: FaultProxy, key: str, since: int) -> list[Request]:
    with proxy.lock:
        return [r for r in proxy.seen[since:] if r.path.endswith("/" + key)]


def sends(requests: list[Request]) -> list[Request]:
    """Requests that write bytes or start an upload (not an abort, HEAD or list)."""
    return [r for r in requests if r.method == "PUT" or "uploads" in r.query.split("&")]


def tried(app: Ferry, transfer_id: int) -> bool:
    found = app.journal.get(transfer_id)
    return found.attempts > 0 or found.state.finished


def wait_settled(app: Ferry, ids: list[int], timeout: float = 120) -> None:
    def settled() -> bool:
        records = app.journal.get_many(ids)
        return all(r.state.finished or r.paused for r in records) and not (
            set(ids) & app.scheduler.held()
        )

    wait_for(settled, timeout=timeout)


@pytest.fixture
def racing(
    ferry_env: Environment,
    proxy: FaultProxy,
    proxy_profile: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> Ferry:
    proxy_profile(part_size=5 * MIB)
    # Aborts and deletes (compensation) take 30 ms: a cancel is slow to finish.
    proxy.faults = [Fault(lambda r: r.method == "DELETE", "delay", times=10**9, delay=0.03)]
    caplog.set_level(logging.WARNING)
    app = open_resident(ferry_env, retry=RetryPolicy(base=0.05, cap=0.2))
    return app


class Rounds:
    """One person's rounds against the running Ferry; several people race at once."""

    def __init__(self, app: Ferry, proxy: FaultProxy, weed: WeedServer, bucket: str) -> None:
        self.app, self.proxy, self.weed, self.bucket = app, proxy, weed, bucket
        self.lock = threading.Lock()
        self.outcomes = {"cancelled": 0, "done after cancel": 0, "paused": 0, "retried": 0}

    def count(self, outcome: str) -> None:
        with self.lock:
            self.outcomes[outcome] += 1

    def play(self, round_number: int, folder: Path) -> None:
        app, proxy = self.app, self.proxy
        chance = random.Random(round_number)
        kind = round_number % 4
        large = round_number % 50 == 0
        name = f"r{round_number:04d}.bin"
        data = os.urandom(12 * MIB + 5 if large else chance.randint(1, 4096))
        path = folder / name
        path.write_bytes(data)
        if kind == 3:
            # Fails once (a refusal Ferry counts as transient): retried by itself.
            def aborted(r: Request, n: str = name) -> bool:
                return r.method in ("PUT", "POST") and r.path.endswith(n)

            with proxy.lock:
                proxy.faults.append(Fault(aborted, "status", status=409, code="OperationAborted"))
        [record] = app.queue([path], prefix="")
        key = record.key
        cancelled = False
        if kind in (0, 3):
            if kind == 3:
                wait_for(lambda: tried(app, record.id), timeout=60)
                due = app.journal.get(record.id).retry_at
                if due is not None:  # a few ms either side of when its retry comes
                    wait = (due - datetime.now(UTC)).total_seconds()
                    time.sleep(max(0.0, wait + chance.uniform(-0.005, 0.005)))
            else:  # while it is picked, or about when a small file is done
                time.sleep(chance.uniform(0, 0.003) if chance.random() < 0.5 else 0.03)
            [after] = app.cancel([record.id])
            mark = len(proxy.seen)
            if after.state is TransferState.CANCELLED:
                cancelled = True
                self.count("cancelled")
                wait_settled(app, [record.id])
                late = sends(requests_for(proxy, key, mark))
                assert late == [], (round_number, late)
                assert app.journal.get(record.id).state is TransferState.CANCELLED
                assert app.storage.head_object(key) is None, round_number
            else:
                # It finished before the cancel reached it: it stays done.
                assert after.state is TransferState.DONE, (
                    "cancel",
                    round_number,
                    after.state,
                    after.error,
                )
                self.count("done after cancel")
        elif kind == 1:
            time.sleep(chance.uniform(0, 0.01 if not large else 0.3))
            app.pause([record.id])
            mark = len(proxy.seen)
            if not app.journal.get(record.id).state.finished:
                self.count("paused")
                time.sleep(0.05)
                assert sends(requests_for(proxy, key, mark)) == [], round_number
                assert record.id not in app.scheduler.held()
            app.unpause([record.id])
        else:
            time.sleep(chance.uniform(0, 0.003))
            app.retry(None)  # everything failed, while it retries by itself
            self.count("retried")
        if not cancelled:
            wait_settled(app, [record.id])
            final = app.journal.get(record.id)
            assert final.state is TransferState.DONE, (round_number, final.state, final.error)
            assert object_sha256(self.weed, self.bucket, key) == hashlib.sha256(data).hexdigest()
        assert app.scheduler.halted is None, app.scheduler.halted


@pytest.mark.timeout(900)
def test_cancel_pause_and_retry_race_the_workers_and_never_halt_them(
    racing: Ferry,
    weed: WeedServer,
    bucket: str,
    proxy: FaultProxy,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """1,000 rounds, four people at a time (each round its own file and key)."""
    app = racing
    rounds = Rounds(app, proxy, weed, bucket)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as people:
            for played in people.map(lambda n: rounds.play(n, tmp_path), range(ROUNDS)):
                assert played is None
    finally:
        app.close()
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage().lower()]
    assert refused == []
    assert app.engine.holds_refused == 0
    print(rounds.outcomes)
    # The races were really run: both outcomes of a cancel, and pauses that caught a send.
    outcomes = rounds.outcomes
    assert outcomes["cancelled"] > ROUNDS // 20, outcomes
    assert outcomes["paused"] > 0, outcomes


def failed_transfer(app: Ferry, path: Path, bucket: str, kind: ErrorKind) -> NewTransfer:
    return NewTransfer(
        source_path=str(path),
        identity=SourceIdentity.of(path.stat()),
        profile=app.engine.profile_name,
        bucket=bucket,
        key=path.name,
        content_type="application/octet-stream",
        part_size=5 * MIB,
        part_count=1,
        state=TransferState.FAILED,
        error=TransferError(kind, "Refused", "The server refused it."),
    )


def test_a_cancel_of_an_attempt_that_then_fails_transiently_still_cancels(
    ferry_env: Environment, proxy: FaultProxy, proxy_profile: Callable[..., None], tmp_path: Path
) -> None:
    """The PUT is on its way when the person cancels; it comes back refused (transient)."""
    proxy_profile(part_size=5 * MIB)
    path = tmp_path / "victim.bin"
    path.write_bytes(os.urandom(2000))
    arrived = threading.Event()
    app = open_resident(ferry_env, retry=RetryPolicy(base=0.5, cap=0.5))

    def cancel_asked() -> bool:
        return any(c.cancel.is_set() for c in app.engine.holds.worker_controls().values())

    def slow_put(request: Request) -> bool:
        if request.method == "PUT" and request.path.endswith(path.name) and not arrived.is_set():
            arrived.set()
            wait_for(cancel_asked, 30)  # on its way until the person has cancelled
            return True
        return False

    proxy.faults = [Fault(slow_put, "status", status=409, code="OperationAborted")]
    try:
        [record] = app.queue([path], prefix="")
        assert arrived.wait(30)
        [after] = app.cancel([record.id])
        mark = len(proxy.seen)
        assert after.state is TransferState.CANCELLED, after
        # Past the retry time the failure would have had (at most 0.5 s): a fixed
        # span on purpose, as what is checked is that no retry comes in it.
        time.sleep(1.5)
        assert app.journal.get(record.id).state is TransferState.CANCELLED
        assert sends(requests_for(proxy, record.key, mark)) == []
        assert app.storage.head_object(record.key) is None
    finally:
        app.close()


def test_pause_all_during_retry_all_stays_paused(
    ferry_env: Environment, proxy: FaultProxy, proxy_profile: Callable[..., None], tmp_path: Path
) -> None:
    proxy_profile(part_size=5 * MIB)
    app = open_resident(ferry_env)
    try:
        news = []
        for number in range(1500):
            path = tmp_path / f"f{number:05d}.bin"
            path.write_bytes(b"y" * 10)
            news.append(failed_transfer(app, path, app.storage.bucket, ErrorKind.PERMANENT))
        app.journal.add_many(news)
        retrying = threading.Thread(target=app.retry, args=(None,))
        retrying.start()
        # Retry all holds the transfers and moves them one by one: pause once it has begun.
        wait_for(lambda: len(app.journal.all([TransferState.FAILED])) < len(news))
        app.pause(None)
        mark = len(proxy.seen)
        retrying.join(120)
        # Every attempt that ran when the pause came has stopped (what it sent is in seen).
        wait_for(lambda: not app.scheduler.held())
        records = app.journal.all()
        assert [r.id for r in records if not r.paused and not r.state.finished] == []
        with proxy.lock:
            assert [r for r in proxy.seen[mark:] if r.method == "PUT"] == []
    finally:
        app.close()


def test_retry_all_skips_a_leftover_of_the_profiles_old_bucket(
    ferry_env: Environment, proxy: FaultProxy, proxy_profile: Callable[..., None], tmp_path: Path
) -> None:
    proxy_profile(part_size=5 * MIB)
    app = open_resident(ferry_env)
    try:
        (tmp_path / "old.bin").write_bytes(b"o")
        (tmp_path / "fixed.bin").write_bytes(b"x")
        [old, fixed] = app.journal.add_many(
            [
                failed_transfer(
                    app, tmp_path / "old.bin", "bucket-before-the-edit", ErrorKind.INPUT
                ),
                failed_transfer(app, tmp_path / "fixed.bin", app.storage.bucket, ErrorKind.INPUT),
            ]
        )
        retried = app.retry(None)
        assert [r.id for r in retried] == [fixed.id]
        assert app.journal.get(old.id).state is TransferState.FAILED
        [done] = app.wait([fixed.id])
        assert done.state is TransferState.DONE
    finally:
        app.close()

"""Invariant 8 under attack: a file rewritten in place keeping its size and mtime.

Any program can set mtime back (`touch -d`, `cp -p`). After every round, each
active catalog row must name the SHA-256 of the bytes the server holds (read
back with GET), and every transfer must end either "source changed" or with
the new content stored under its own SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from desktop_app.core.catalog.records import FileQuery
from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.model.events import TransferProgress
from desktop_app.core.model.states import ErrorKind, TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.transfers.prepass import HashesAhead
from tests.conftest import WeedServer
from tests.faults import Fault, FaultProxy, is_part_upload
from tests.integration.transfers.test_crash import confirmed_parts, ferry, wait_for
from tests.integration.transfers.test_engine import object_sha256
from tests.unit.transfers.test_prepass import _HeldPrePass, _read_ahead, _until

MIB = 1024 * 1024
ROUNDS = 10


def rewrite_keeping_size_and_mtime(path: Path, rng: random.Random) -> str:
    """New bytes, same size, mtime set back: only ctime tells."""
    before = path.stat()
    data = rng.randbytes(before.st_size)
    with path.open("r+b") as handle:
        handle.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    return hashlib.sha256(data).hexdigest()


def test_a_rewrite_during_the_parts_is_never_registered_under_the_old_sha256(
    weed_profile: Callable[..., None],
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    weed_profile(part_size=5 * MIB, concurrency=2)
    rng = random.Random(8)
    outcomes = []
    with Ferry.open(ferry_env) as app:
        for round_number in range(ROUNDS):
            path = tmp_path / f"c{round_number}.bin"
            path.write_bytes(rng.randbytes(4 * 5 * MIB - 7))
            # Rewrite after a varying amount was sent: early, middle, late.
            threshold = (round_number % 4) * 5 * MIB
            rewritten: list[str] = []

            def rewrite(
                event: object,
                path: Path = path,
                threshold: int = threshold,
                rewritten: list[str] = rewritten,
            ) -> None:
                if (
                    isinstance(event, TransferProgress)
                    and event.bytes_done >= threshold
                    and not rewritten
                ):
                    rewritten.append(rewrite_keeping_size_and_mtime(path, rng))

            unsubscribe = app.bus.subscribe(rewrite)
            try:
                [record] = app.upload([path])
            finally:
                unsubscribe()
            outcomes.append(record.state)
            if record.state is TransferState.FAILED:
                assert record.error is not None
                assert record.error.kind is ErrorKind.SOURCE_CHANGED, record.error
            else:
                assert record.state is TransferState.DONE
                assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        for row in app.catalog.search(FileQuery(bucket=bucket)):
            if row.status is FileStatus.ACTIVE:
                assert object_sha256(weed, bucket, row.key) == row.sha256, row.key
    assert TransferState.FAILED in outcomes


def test_a_rewrite_while_ferry_is_stopped_is_never_registered_under_the_old_sha256(
    tmp_path: Path, weed: WeedServer, bucket: str, proxy: FaultProxy
) -> None:
    home = tmp_path / "home"
    env = {"--bucket": bucket, "--endpoint-url": f"http://127.0.0.1:{proxy.port}"}
    added = ferry(home, "profile", "add", "p", *[x for kv in env.items() for x in kv],
                  "--part-size-mib", "5", "--concurrency", "2", "--default")  # fmt: skip
    assert added.wait(60) == 0
    rng = random.Random(9)
    proxy.faults = [Fault(is_part_upload, "delay", times=10**6, delay=0.2)]
    for round_number in range(ROUNDS):
        path = tmp_path / f"s{round_number}.bin"
        path.write_bytes(rng.randbytes(4 * 5 * MIB - 3))
        target = confirmed_parts(home) + 1 + round_number % 3
        upload = ferry(home, "upload", str(path))

        def reached(target: int = target) -> bool:
            return confirmed_parts(home) >= target

        wait_for(reached)
        upload.kill()
        upload.wait()
        new_sha = rewrite_keeping_size_and_mtime(path, rng)
        resumed = ferry(home, "resume", "--json")
        out, _err = resumed.communicate(timeout=180)
        [transfer] = json.loads(out)["transfers"]
        if transfer["state"] == "failed":
            assert transfer["error"]["kind"] == "source_changed", transfer
            assert resumed.returncode == 1
        else:
            assert transfer["state"] == "done", transfer
            assert transfer["sha256"] == new_sha, transfer
    with sqlite3.connect(home / "data" / "catalog-p.sqlite3") as connection:
        rows = list(connection.execute("SELECT key, sha256 FROM files WHERE status = 'active'"))
    for key, sha in rows:
        assert object_sha256(weed, bucket, key) == sha, key
    assert weed.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_rewrite_after_the_read_ahead_is_sent_and_registered_with_its_new_bytes(
    weed_profile: Callable[..., None],
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`ferry upload` reads large files while Ferry starts; a program rewriting one
    between that read and the engine's (size and mtime kept) must not leave the
    catalog naming the old SHA-256, nor the bucket holding the old bytes."""
    weed_profile(part_size=5 * MIB)
    rng = random.Random(10)
    kept, changed = tmp_path / "kept.bin", tmp_path / "changed.bin"
    for path in (kept, changed):
        path.write_bytes(rng.randbytes(2 * 5 * MIB + 11))
    old_sha = hashlib.sha256(changed.read_bytes()).hexdigest()
    ahead = HashesAhead([(str(kept), 5 * MIB), (str(changed), 5 * MIB)])
    try:
        for path in (kept, changed):  # read, and stat after, before the rewrite
            _read_ahead(ahead, path)
        time.sleep(0.02)  # ctime's clock ticks coarsely
        new_sha = rewrite_keeping_size_and_mtime(changed, rng)
        caplog.set_level(logging.INFO, logger="desktop_app.core.transfers.prepass")
        with Ferry.open(ferry_env, hashes_ahead=ahead) as app:
            records = app.upload([kept, changed])
            rows = [r for r in app.catalog.search(FileQuery(bucket=bucket))]
    finally:
        ahead.close()
    assert [r.state for r in records] == [TransferState.DONE, TransferState.DONE]
    assert [r.sha256 for r in records] == [
        hashlib.sha256(kept.read_bytes()).hexdigest(),
        new_sha,
    ]
    assert new_sha != old_sha
    active = {r.key: r.sha256 for r in rows if r.status is FileStatus.ACTIVE}
    assert active == {"kept.bin": records[0].sha256, "changed.bin": new_sha}
    for key, sha in active.items():
        assert object_sha256(weed, bucket, key) == sha, key
    used = [r.getMessage() for r in caplog.records if "while Ferry started" in r.getMessage()]
    assert used == [f"{kept} was hashed while Ferry started"]


def test_closing_while_a_large_file_is_read_ahead_ends_at_once_and_resumes_later(
    weed_profile: Callable[..., None],
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    """Ctrl-C (Ferry closed) while the engine waits for a file read ahead: the
    command ends without waiting for that read, and the transfer is sent whole
    at the next start."""
    weed_profile(part_size=5 * MIB)
    big = tmp_path / "big.bin"
    big.write_bytes(random.Random(11).randbytes(2 * 5 * MIB + 1))
    held = _HeldPrePass()  # a read that ends only when stopped: a slow disk
    ahead = HashesAhead([(str(big), 5 * MIB)], prepass=held)
    app = Ferry.open(ferry_env, hashes_ahead=ahead)
    closing = threading.Thread(target=app.close)
    try:
        assert held.reading.wait(10)
        # `ferry upload` waits on its transfers when Ctrl-C closes Ferry.
        threading.Thread(target=app.upload, args=([big],), daemon=True).start()
        _until(lambda: ahead._no_more, "the engine never asked for the hashes")
        closing.start()
        closing.join(20)
        assert not closing.is_alive(), "closing waited for the read ahead"
    finally:
        held.let_go.set()
        if closing.ident is None:
            closing.start()
        closing.join(60)
        ahead.close()
    with Ferry.open(ferry_env) as again:
        [resumed] = again.resume()
    assert resumed.source_path == str(big)
    assert resumed.state is TransferState.DONE
    assert resumed.sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
    assert object_sha256(weed, bucket, "big.bin") == resumed.sha256

"""Watched folders against a real weed mini: complete files, once each."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from desktop_app.core.catalog.records import FileQuery
from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.runtime.run_mode import RunMode
from desktop_app.core.runtime.watcher import FolderWatcher, WatchedFolder
from tests.conftest import WeedServer

SETTLE = 1.0


@pytest.fixture
def ferry(weed_profile: Callable[..., None], ferry_env: Environment) -> Iterator[Ferry]:
    weed_profile()
    app = Ferry.open(ferry_env, mode=RunMode.RESIDENT)
    yield app
    app.close()


@pytest.fixture
def watching(ferry: Ferry) -> Iterator[Callable[..., FolderWatcher]]:
    started: list[FolderWatcher] = []

    def start(folder: WatchedFolder, **options: object) -> FolderWatcher:
        watcher = ferry.watch([folder], settle_seconds=SETTLE, **options)  # type: ignore[arg-type]
        started.append(watcher)
        return watcher

    yield start
    for watcher in started:
        watcher.stop()


def wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def objects(weed: WeedServer, bucket: str) -> dict[str, str]:
    client = weed.client()
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found[item["Key"]] = hashlib.sha256(body).hexdigest()
    return found


def done_count(ferry: Ferry) -> int:
    return sum(1 for r in ferry.transfers() if r.state is TransferState.DONE)


def test_slow_writer_is_uploaded_once_complete_and_temp_files_are_ignored(
    ferry: Ferry,
    watching: Callable[..., FolderWatcher],
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    watching(WatchedFolder(inbox, prefix="scans"))
    target = inbox / "scan.pdf"
    data = b""
    with target.open("wb") as handle:  # 40 small writes over ~4 s
        for n in range(40):
            chunk = os.urandom(997) + bytes([n])
            handle.write(chunk)
            handle.flush()
            data += chunk
            time.sleep(0.1)
    for name in (
        "draft.tmp",
        "movie.part",
        "page.crdownload",
        "~$report.docx",
        ".hidden",
        "Thumbs.db",
    ):
        (inbox / name).write_bytes(b"ignore me")
    (inbox / ".~lock.sheet.ods#").write_text("lock")
    wait_until(lambda: done_count(ferry) == 1)
    time.sleep(SETTLE * 3)
    assert objects(weed, bucket) == {"scans/scan.pdf": hashlib.sha256(data).hexdigest()}
    assert len(ferry.transfers()) == 1  # once, and only the complete file


def test_renamed_in_file_is_uploaded_and_a_rewrite_is_a_new_version(
    ferry: Ferry,
    watching: Callable[..., FolderWatcher],
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    inbox, outside = tmp_path / "inbox", tmp_path / "elsewhere"
    inbox.mkdir()
    outside.mkdir()
    watching(WatchedFolder(inbox))
    (outside / "report.txt").write_bytes(b"first version")
    os.rename(outside / "report.txt", inbox / "report.txt")
    wait_until(lambda: done_count(ferry) == 1)
    (inbox / "report.txt").write_bytes(b"second version, rewritten")
    wait_until(lambda: done_count(ferry) == 2)
    (inbox / "report.txt").unlink()  # a local delete deletes nothing remote
    time.sleep(SETTLE * 2)
    assert objects(weed, bucket) == {
        "report.txt": hashlib.sha256(b"first version").hexdigest(),
        "report (2).txt": hashlib.sha256(b"second version, rewritten").hexdigest(),
    }


def test_restart_uploads_exactly_the_files_added_meanwhile(
    weed_profile: Callable[..., None],
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    weed_profile()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for n in range(3):
        (inbox / f"before-{n}.txt").write_text(f"before {n}")

    def session(expect_done: int) -> list[str]:
        with Ferry.open(ferry_env, mode=RunMode.RESIDENT) as app:
            watcher = app.watch([WatchedFolder(inbox)], settle_seconds=SETTLE)
            try:
                wait_until(lambda: done_count(app) == expect_done)
                time.sleep(SETTLE * 2)
                return sorted(r.key for r in app.transfers())
            finally:
                watcher.stop()

    assert session(3) == [f"before-{n}.txt" for n in range(3)]
    for n in range(2):  # while Ferry is not running
        (inbox / f"meanwhile-{n}.txt").write_text(f"meanwhile {n}")
    keys = session(5)
    assert keys == sorted(
        [f"before-{n}.txt" for n in range(3)] + [f"meanwhile-{n}.txt" for n in range(2)]
    )
    assert len(objects(weed, bucket)) == 5


def test_a_thousand_files_at_once_are_all_uploaded_once(
    ferry: Ferry,
    watching: Callable[..., FolderWatcher],
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    watching(WatchedFolder(inbox, prefix="bulk"))
    staging = tmp_path / "staging"
    staging.mkdir()
    expected = {}
    for n in range(1000):
        data = f"file number {n}".encode()
        (staging / f"f{n:04d}.txt").write_bytes(data)
        expected[f"bulk/sub/f{n:04d}.txt"] = hashlib.sha256(data).hexdigest()
    os.rename(staging, inbox / "sub")  # a whole folder moved in at once
    wait_until(lambda: done_count(ferry) == 1000, timeout=240)
    time.sleep(SETTLE * 2)
    assert len(ferry.transfers()) == 1000
    assert objects(weed, bucket) == expected
    rows = []
    after = None
    while True:
        page = ferry.catalog.search(FileQuery(bucket=bucket, after_key=after, limit=500))
        if not page:
            break
        rows += page
        after = page[-1].key
    assert {r.key: r.sha256 for r in rows} == expected
    assert {r.status for r in rows} == {FileStatus.ACTIVE}


def test_folder_removed_and_recreated_is_watched_again(
    ferry: Ferry,
    watching: Callable[..., FolderWatcher],
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    watcher = watching(WatchedFolder(inbox), force_polling=True)
    assert watcher.status[inbox].mode.startswith("polling")
    inbox.rmdir()
    wait_until(lambda: watcher.status[inbox].mode == "folder missing")
    inbox.mkdir()
    (inbox / "back.txt").write_text("I am back")
    wait_until(lambda: done_count(ferry) == 1)
    assert "back.txt" in objects(weed, bucket)


def test_files_that_could_not_be_queued_are_not_counted_as_queued(tmp_path: Path) -> None:
    folder = WatchedFolder(tmp_path / "inbox")
    folder.path.mkdir()
    (folder.path / "scan.pdf").write_bytes(b"scan")
    now = [0.0]

    def refuse(_folder: WatchedFolder, _files: list[Path]) -> None:
        raise OSError("the journal's disk is full")

    watcher = FolderWatcher(
        [folder],
        on_ready=refuse,
        already_sent=lambda _path, _info: False,
        settle_seconds=SETTLE,
        monotonic=lambda: now[0],
    )
    try:
        watcher.sweep()  # attaches the folder and notes what is in it
        now[0] += 2 * SETTLE
        watcher.sweep()  # settled: handed over, and refused
        status = watcher.status[folder.path]
        assert status.last_error == "the journal's disk is full"
        assert status.queued == 0
    finally:
        watcher.stop()

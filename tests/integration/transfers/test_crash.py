"""Crash-safety by crashing: SIGKILL a real `ferry upload` at chosen points, restart it.

A fault proxy in front of weed mini slows parts down (so there is time to
aim) and can hold the completion request; a lock on the SQLite catalog holds
registration. After each kill, `ferry resume` must finish the upload: the
object's SHA-256 equals the file's, the catalog row is active, no multipart
upload is left, and only parts not confirmed before the kill are sent again.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import TEST_ACCESS_KEY, TEST_SECRET_KEY, WeedServer
from tests.faults import Fault, FaultProxy, Request, is_complete, is_part_upload, is_probe

MIB = 1024 * 1024
PARTS = 8


def ferry_env(
    home: Path, keys: tuple[str, str] = (TEST_ACCESS_KEY, TEST_SECRET_KEY)
) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FERRY_"))}
    environ.update(
        FERRY_HOME=str(home),
        AWS_ACCESS_KEY_ID=keys[0],
        AWS_SECRET_ACCESS_KEY=keys[1],
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    return environ


def ferry(
    home: Path, *args: str, keys: tuple[str, str] = (TEST_ACCESS_KEY, TEST_SECRET_KEY)
) -> subprocess.Popen[str]:
    """A real `ferry` process, as a user would run it, with the test's credentials."""
    return subprocess.Popen(
        [sys.executable, "-m", "desktop_app", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ferry_env(home, keys),
    )


def journal_rows(home: Path, sql: str) -> list[tuple[object, ...]]:
    path = home / "data" / "journal.sqlite3"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as connection:
            return list(connection.execute(sql))
    except sqlite3.OperationalError:
        return []


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("the moment to crash never came")


def confirmed_parts(home: Path) -> int:
    rows = journal_rows(home, "SELECT count(*) FROM parts WHERE confirmed_at IS NOT NULL")
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


def state(home: Path) -> str:
    rows = journal_rows(home, "SELECT state FROM transfers ORDER BY id DESC LIMIT 1")
    return str(rows[0][0]) if rows else ""


def setup(home: Path, endpoint: str, bucket: str, source: Path) -> str:
    subprocess.run(
        [
            sys.executable, "-m", "desktop_app", "profile", "add", "crash",
            "--bucket", bucket, "--endpoint-url", endpoint, "--part-size-mib", "5",
            "--concurrency", "2",
        ],
        env=ferry_env(home), check=True, capture_output=True,
    )  # fmt: skip
    data = os.urandom(PARTS * 5 * MIB - 12345)
    source.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def kill_and_resume(
    home: Path, weed: WeedServer, bucket: str, source: Path, sha: str, proxy: FaultProxy
) -> dict[str, object]:
    proxy.faults.clear()
    parts_before = confirmed_parts(home)
    seen_before = len(proxy.seen)
    resumed = ferry(home, "resume", "--json")
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err
    [transfer] = json.loads(out)["transfers"]
    assert transfer["state"] == "done", transfer
    body = weed.client().get_object(Bucket=bucket, Key=source.name)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha
    assert weed.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    catalog = home / "data" / "catalog-crash.sqlite3"
    with sqlite3.connect(catalog) as connection:
        rows = list(connection.execute("SELECT key, status, sha256 FROM files"))
    assert rows == [(source.name, "active", sha)]
    resent = sum(1 for r in proxy.seen[seen_before:] if is_part_upload(r))
    return {"parts_before": parts_before, "resent": resent}


def test_kill_during_parts_resends_only_unconfirmed_parts(
    tmp_path: Path, weed: WeedServer, bucket: str, proxy: FaultProxy
) -> None:
    home, source = tmp_path / "home", tmp_path / "big.bin"
    sha = setup(home, _endpoint(proxy), bucket, source)
    proxy.faults = [Fault(is_part_upload, "delay", times=10_000, delay=0.4)]
    upload = ferry(home, "upload", str(source), "--json")
    wait_for(lambda: confirmed_parts(home) >= 3)
    upload.send_signal(signal.SIGKILL)
    upload.wait()
    result = kill_and_resume(home, weed, bucket, source, sha, proxy)
    assert 3 <= int(result["parts_before"]) < PARTS  # type: ignore[call-overload]
    missing = PARTS - int(result["parts_before"])  # type: ignore[call-overload]
    # Parts in flight at the kill (concurrency 2) may have reached the server;
    # ListParts plus an MD5 check of the byte range accepts them, so at most
    # the unconfirmed parts are sent again, and at least those minus in-flight.
    assert missing - 2 <= int(result["resent"]) <= missing  # type: ignore[call-overload]


def test_kill_during_hashing_starts_cleanly(
    tmp_path: Path, weed: WeedServer, bucket: str, proxy: FaultProxy
) -> None:
    home, source = tmp_path / "home", tmp_path / "big.bin"
    sha = setup(home, _endpoint(proxy), bucket, source)
    upload = ferry(home, "upload", str(source))
    wait_for(lambda: state(home) in ("hashing", "uploading"))
    upload.send_signal(signal.SIGKILL)
    upload.wait()
    kill_and_resume(home, weed, bucket, source, sha, proxy)


def test_kill_during_completion_finishes_registration(
    tmp_path: Path, weed: WeedServer, bucket: str, proxy: FaultProxy
) -> None:
    home, source = tmp_path / "home", tmp_path / "big.bin"
    sha = setup(home, _endpoint(proxy), bucket, source)
    # Hold the completion request; the proxy still forwards it after the kill,
    # so the server completes an upload the journal never heard finish.
    proxy.faults = [Fault(is_complete, "delay", times=1, delay=2.0)]
    upload = ferry(home, "upload", str(source))
    wait_for(lambda: state(home) == "completing" and any(is_complete(r) for r in proxy.seen))
    upload.send_signal(signal.SIGKILL)
    upload.wait()
    wait_for(lambda: proxy.has_answered(is_complete))  # the held request reaches the server
    result = kill_and_resume(home, weed, bucket, source, sha, proxy)
    assert result["resent"] == 0


def test_kill_during_registration_activates_after_restart(
    tmp_path: Path, weed: WeedServer, bucket: str, proxy: FaultProxy
) -> None:
    home, source = tmp_path / "home", tmp_path / "big.bin"
    sha = setup(home, _endpoint(proxy), bucket, source)
    catalog = home / "data" / "catalog-crash.sqlite3"

    # The verifying HEAD is held long enough to lock the catalog behind the
    # Complete (which confirms the reservation with a catalog write first).
    def is_verify(request: Request) -> bool:
        return request.method == "HEAD" and request.path.endswith("/big.bin")

    proxy.faults = [Fault(is_verify, "delay", times=1, delay=3.0)]
    upload = ferry(home, "upload", str(source))
    wait_for(lambda: state(home) == "verifying" and catalog.exists())
    blocker = sqlite3.connect(catalog, timeout=30)
    blocker.execute("BEGIN IMMEDIATE")  # the catalog is locked: registration waits
    try:
        wait_for(lambda: state(home) == "registering")
        time.sleep(0.3)
        upload.send_signal(signal.SIGKILL)
        upload.wait()
    finally:
        blocker.rollback()
        blocker.close()
    result = kill_and_resume(home, weed, bucket, source, sha, proxy)
    assert result["resent"] == 0


def _endpoint(proxy: FaultProxy) -> str:
    return proxy.url


def test_kill_between_creating_the_upload_and_recording_it_leaves_no_orphan(
    tmp_path: Path, weed: WeedServer, bucket: str, proxy: FaultProxy
) -> None:
    home, source = tmp_path / "home", tmp_path / "big.bin"
    sha = setup(home, _endpoint(proxy), bucket, source)

    def is_create(request: Request) -> bool:
        # Ferry's own upload's create, not the endpoint probe's (its one-part upload).
        return (
            request.method == "POST"
            and request.query.startswith("uploads")
            and not is_probe(request)
        )

    # Hold CreateMultipartUpload; the proxy still forwards it after the kill, so
    # the server creates an upload whose id the journal never recorded.
    proxy.faults = [Fault(is_create, "delay", times=1, delay=2.0)]
    upload = ferry(home, "upload", str(source))
    wait_for(lambda: any(is_create(r) for r in proxy.seen))
    upload.send_signal(signal.SIGKILL)
    upload.wait()
    wait_for(lambda: proxy.has_answered(is_create))  # the held request reaches the server
    assert len(weed.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1
    kill_and_resume(home, weed, bucket, source, sha, proxy)  # asserts no upload is left


def confirmed_bytes(home: Path) -> int:
    rows = journal_rows(
        home, "SELECT coalesce(sum(size), 0) FROM parts WHERE confirmed_at IS NOT NULL"
    )
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


def history(home: Path) -> list[dict[str, object]]:
    shown = subprocess.run(
        [sys.executable, "-m", "desktop_app", "status", "--all", "--json"],
        capture_output=True, text=True, env=ferry_env(home), timeout=180,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    [transfer] = json.loads(shown.stdout)["transfers"]
    return transfer["history"]  # type: ignore[no-any-return]


def test_status_history_lists_the_attempt_a_kill_cut_with_the_bytes_it_sent(
    tmp_path: Path, weed: WeedServer, bucket: str, proxy: FaultProxy
) -> None:
    """#34 item 13: only the attempt after the restart was listed."""
    home, source = tmp_path / "home", tmp_path / "big.bin"
    sha = setup(home, _endpoint(proxy), bucket, source)
    proxy.faults = [Fault(is_part_upload, "delay", times=10_000, delay=0.4)]
    upload = ferry(home, "upload", str(source), "--json")
    wait_for(lambda: confirmed_parts(home) >= 3)
    upload.send_signal(signal.SIGKILL)
    upload.wait()
    sent_before, parts_before = confirmed_bytes(home), confirmed_parts(home)
    [cut] = history(home)  # before the restart: no end recorded, what it sent is known
    assert (cut["outcome"], cut["recorded"], cut["bytes_sent"]) == (
        "unfinished",
        False,
        sent_before,
    )
    assert f"the {parts_before} part(s)" in str(cut["note"])

    kill_and_resume(home, weed, bucket, source, sha, proxy)
    [cut, resumed] = history(home)
    assert [cut["number"], resumed["number"]] == [1, 2]
    assert (cut["outcome"], cut["recorded"], cut["bytes_sent"]) == ("cut", False, sent_before)
    assert "cut short by a pause or by Ferry stopping" in str(cut["note"])
    assert (resumed["outcome"], resumed["recorded"], resumed["error"]) == ("succeeded", True, None)
    assert str(cut["ended_at"]) <= str(resumed["started_at"])
    # The restart sent what was missing (the parts in flight at the kill at most again).
    assert 0 < int(resumed["bytes_sent"]) <= source.stat().st_size - sent_before  # type: ignore[call-overload]

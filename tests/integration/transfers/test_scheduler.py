"""The scheduler against a real weed mini, with faults injected by the proxy.

- two profiles in one data dir: a resume under one never runs the other's transfer;
- Retry while the scheduler runs: the transfer is never held twice, nothing is re-sent
  beyond one part;
- a 1-byte file is not kept waiting by a throttled 1 GiB upload;
- the endpoint gone for 90 s: 200 files finish by themselves afterwards;
- bad input retried: the same rows, their own errors;
- small files on a slow link: many more in flight than the profile's workers;
  the server saying slow down: fewer, and every file still arrives.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from desktop_app.core.model.events import TransferProgress
from desktop_app.core.model.states import ErrorKind, TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.runtime.run_mode import RunMode
from desktop_app.core.transfers.control import TransferControl
from desktop_app.core.transfers.in_flight import WindowOptions
from desktop_app.core.transfers.retry import RetryPolicy
from tests.conftest import WeedServer
from tests.faults import Fault, FaultProxy, Request, is_part_upload, is_probe, is_put
from tests.integration.transfers.test_crash import confirmed_parts, ferry, wait_for
from tests.integration.transfers.test_engine import object_sha256

MIB = 1024 * 1024


def run_cli(home: Path, *args: str, timeout: float = 180) -> tuple[int, str, str]:
    process = ferry(home, *args)
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def home_with_profile_w(home: Path, weed: WeedServer, bucket: str) -> Path:
    """A Ferry home whose default profile "w" is the test bucket, made with the CLI."""
    code, _out, err = run_cli(
        home, "profile", "add", "w", "--bucket", bucket, "--endpoint-url", weed.endpoint_url,
        "--default",
    )  # fmt: skip
    assert code == 0, err
    return home


def catalog_rows(home: Path, profile: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(home / "data" / f"catalog-{profile}.sqlite3") as connection:
        return list(connection.execute("SELECT key, status, sha256 FROM files ORDER BY id"))


def test_a_resume_under_one_profile_never_runs_another_profiles_transfer(
    tmp_path: Path, weed: WeedServer, new_bucket: Callable[[str], str], proxy: FaultProxy
) -> None:
    home = tmp_path / "home"
    alpha, beta = new_bucket(""), new_bucket("")
    for name, bucket in (("A", alpha), ("B", beta)):
        code, _out, err = run_cli(
            home, "profile", "add", name, "--bucket", bucket, "--endpoint-url", proxy.url,
            "--part-size-mib", "5", "--concurrency", "2",
        )  # fmt: skip
        assert code == 0, err
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    b_doc, a_doc = tmp_path / "b" / "doc.txt", tmp_path / "a" / "doc.txt"
    b_doc.write_bytes(b"B's document, already stored")
    a_bytes = os.urandom(8 * 5 * MIB - 999)
    a_doc.write_bytes(a_bytes)
    code, out, err = run_cli(home, "--profile", "B", "upload", str(b_doc), "--json")
    assert code == 0, err
    b_sha = hashlib.sha256(b_doc.read_bytes()).hexdigest()

    proxy.faults = [Fault(is_part_upload, "delay", times=10_000, delay=0.4)]
    upload = ferry(home, "--profile", "A", "upload", str(a_doc), "--json")
    wait_for(lambda: confirmed_parts(home) >= 3)
    upload.kill()
    upload.wait()
    proxy.faults.clear()

    code, out, err = run_cli(home, "--profile", "B", "resume", "--json")
    assert code == 0, err
    assert json.loads(out)["transfers"] == [], "B's resume must not touch A's transfer"
    assert object_sha256(weed, beta, "doc.txt") == b_sha
    assert catalog_rows(home, "B") == [("doc.txt", "active", b_sha)]

    code, out, err = run_cli(home, "--profile", "A", "status", "--json")
    [pending] = [t for t in json.loads(out)["transfers"] if t["profile"] == "A"]
    assert pending["state"] == "uploading"
    assert pending["bucket"] == alpha

    code, out, err = run_cli(home, "--profile", "A", "resume", "--json")
    assert code == 0, err
    [resumed] = json.loads(out)["transfers"]
    assert resumed["state"] == "done"
    assert resumed["profile"] == "A"
    a_sha = hashlib.sha256(a_bytes).hexdigest()
    assert object_sha256(weed, alpha, "doc.txt") == a_sha
    assert catalog_rows(home, "A") == [("doc.txt", "active", a_sha)]
    assert object_sha256(weed, beta, "doc.txt") == b_sha  # still B's
    assert catalog_rows(home, "B") == [("doc.txt", "active", b_sha)]


def open_resident(ferry_env: Environment, **changes: object) -> Ferry:
    app = Ferry.open(ferry_env, mode=RunMode.RESIDENT)
    if changes:
        app.engine.options = dataclasses.replace(app.engine.options, **changes)  # type: ignore[arg-type]
    app.start()
    return app


def test_retry_while_the_scheduler_runs_sends_only_the_missing_part_and_never_twice(
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    proxy: FaultProxy,
    proxy_profile: Callable[..., None],
    tmp_path: Path,
) -> None:
    proxy_profile(part_size=5 * MIB)
    data = os.urandom(6 * 5 * MIB + 77)
    path = tmp_path / "report.bin"
    path.write_bytes(data)
    # A refusal botocore does not retry itself, but Ferry counts as transient.
    proxy.faults = [
        Fault(
            lambda r: is_part_upload(r) and "partNumber=3&" in r.query + "&",
            "status", status=409, code="OperationAborted",
        )
    ]  # fmt: skip
    app = open_resident(ferry_env, retry=RetryPolicy(base=3600, cap=3600))
    holders: dict[int, int] = {}
    most_at_once = [0]
    lock = threading.Lock()
    real_run = app.engine.run_held

    def counting_run(transfer_id: int, control: TransferControl) -> object:
        with lock:
            holders[transfer_id] = holders.get(transfer_id, 0) + 1
            most_at_once[0] = max(most_at_once[0], holders[transfer_id])
        try:
            return real_run(transfer_id, control)
        finally:
            with lock:
                holders[transfer_id] -= 1

    app.engine.run_held = counting_run  # type: ignore[method-assign,assignment]
    try:
        [record] = app.queue([path])
        wait_for(lambda: app.journal.get(record.id).state is TransferState.FAILED)
        failed = app.journal.get(record.id)
        assert failed.error is not None
        assert failed.error.kind is ErrorKind.TRANSIENT
        # A person clicks Retry, several times, while the scheduler is running.
        for _ in range(5):
            app.retry([record.id])
            app.scheduler.wake()
        [final] = app.wait([record.id])
    finally:
        app.close()
    assert final.state is TransferState.DONE, final.error
    assert object_sha256(weed, bucket, "report.bin") == hashlib.sha256(data).hexdigest()
    assert app.engine.holds_refused == 0
    assert most_at_once[0] == 1
    sent = proxy.bytes_put()
    assert len(data) <= sent <= len(data) + 5 * MIB, sent


def test_a_one_byte_file_is_not_kept_waiting_by_a_throttled_big_upload(
    weed_profile: Callable[..., None],
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    weed_profile(bandwidth_limit=16 * MIB)
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(1024 * MIB)  # 1 GiB, sparse: no disk needed
    tiny = tmp_path / "tiny.txt"
    tiny.write_bytes(b"x")
    app = open_resident(ferry_env)
    sending = threading.Event()
    app.bus.subscribe(
        lambda e: sending.set() if isinstance(e, TransferProgress) and e.bytes_done > 0 else None
    )
    try:
        [big_record] = app.queue([big])
        assert sending.wait(60), "the big upload never started sending"
        queued_at = time.monotonic()
        [tiny_record] = app.queue([tiny])
        wait_for(lambda: app.journal.get(tiny_record.id).state is TransferState.DONE, 10)
        waited = time.monotonic() - queued_at
        assert app.journal.get(big_record.id).state is TransferState.UPLOADING
        app.cancel([big_record.id])
        app.wait([big_record.id])
    finally:
        app.close()
    print(f"\n1-byte file done {waited:.2f} s after it was queued")
    assert waited < 2.0
    assert object_sha256(weed, bucket, "tiny.txt") == hashlib.sha256(b"x").hexdigest()


def test_after_90_seconds_without_the_server_everything_finishes_by_itself(
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    proxy: FaultProxy,
    proxy_profile: Callable[..., None],
    tmp_path: Path,
) -> None:
    proxy_profile(part_size=5 * MIB)
    source = tmp_path / "batch"
    source.mkdir()
    random = __import__("random").Random(90)
    expected: dict[str, str] = {}
    for n in range(200):
        size = random.randint(6 * MIB, 12 * MIB) if n % 20 == 0 else random.randint(1, 200_000)
        data = random.randbytes(size)
        (source / f"f{n:03}.bin").write_bytes(data)
        expected[f"batch/f{n:03}.bin"] = hashlib.sha256(data).hexdigest()
    total = sum((source / name.split("/")[1]).stat().st_size for name in expected)
    proxy.faults = [Fault(is_put, "delay", times=10_000, delay=0.05)]
    app = open_resident(ferry_env)
    try:
        records = app.queue([source])
        ids = [r.id for r in records]
        wait_for(lambda: sum(app.journal.get(i).state is TransferState.DONE for i in ids) >= 20)
        cut = proxy.go_down()
        # The outage itself, kept whole: in it Ferry's own timers run for real (retry
        # delays from 5 s doubling to 40-80 s, the 15 s probe, the 30 s keep-alive,
        # botocore's timeouts), and no state short of 90 s stands in for it.
        time.sleep(90)
        proxy.faults.clear()
        proxy.come_up()
        back_at = time.monotonic()
        wait_for(
            lambda: all(app.journal.get(i).state is TransferState.DONE for i in ids), timeout=180
        )
        recovered = time.monotonic() - back_at
        failed_attempts = sum(len(a) for a in app.attempts(ids).values()) - len(ids)
    finally:
        app.close()
    for key, sha in expected.items():
        assert object_sha256(weed, bucket, key) == sha
    in_flight = sum(r.length for r in cut if r.method == "PUT")
    sent = proxy.bytes_put()
    print(
        f"\noutage 90 s: all {len(ids)} done {recovered:.1f} s after the server came back; "
        f"{failed_attempts} failed attempts; bytes sent {sent:,} for {total:,} "
        f"(in flight at the cut: {in_flight:,})"
    )
    assert sent <= total + in_flight


def test_retrying_bad_input_keeps_the_same_rows_and_their_errors(
    weed_profile: Callable[..., None], ferry_env: Environment, tmp_path: Path
) -> None:
    weed_profile()
    folder = tmp_path / "odd"
    folder.mkdir()
    os.mkfifo(folder / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock"))
    (folder / "outside").symlink_to("/etc/hostname")
    (folder / "line\nbreak.txt").write_text("a name that cannot be a key")
    gone = tmp_path / "later.txt"
    try:
        with Ferry.open(ferry_env) as app:
            first = app.upload([folder, gone])
            errors = {r.id: r.error for r in first}
            assert len(first) == 5
            assert all(r.state is TransferState.FAILED for r in first)
            final = [r for r in first if r.error and r.error.kind is ErrorKind.FINAL]
            assert len(final) == 4
            assert all("Retrying cannot help" in r.error.message for r in final if r.error)
            app.retry(None)
            app.retry([r.id for r in final])
            after = app.transfers()
            assert len(after) == 5, "retry adds no rows"
            assert {r.id: r.error for r in after if r.id in errors and r.id != first[-1].id} == {
                r.id: errors[r.id] for r in final
            }
            # The missing file is a retryable input problem: once it exists, Retry
            # looks at it again in the same row and uploads it.
            gone.write_text("here now")
            [retried] = app.wait([r.id for r in app.retry([first[-1].id])])
            assert retried.id == first[-1].id
            assert retried.state is TransferState.DONE
            assert len(app.transfers()) == 5
    finally:
        sock.close()


def test_a_deleted_journal_lock_lets_no_second_ferry_run_the_same_journal(
    tmp_path: Path, weed: WeedServer, bucket: str
) -> None:
    home = home_with_profile_w(tmp_path / "home", weed, bucket)
    inbox, other = tmp_path / "inbox", tmp_path / "other"
    inbox.mkdir()
    other.mkdir()
    first = ferry(home, "watch", str(inbox))
    second = None
    try:
        wait_for((home / "data" / "ferry.sock").exists, 60)
        lock_files = list((home / "data").glob("journal.lock*"))
        assert lock_files, "the running Ferry names itself in data/journal.lock"
        for lock_file in lock_files:
            lock_file.unlink()
        second = ferry(home, "watch", str(other))
        try:
            _out, second_err = second.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError("a second Ferry runs the same journal") from None
        assert second.returncode != 0, second_err
        assert "Ferry is already running" in second_err
        assert f"pid {first.pid}" in second_err
        # the first one goes on as before
        (inbox / "after.txt").write_text("stored by the first Ferry")
        wait_for(lambda: len(catalog_rows(home, "w")) == 1, 60)
        assert first.poll() is None
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.communicate(timeout=60)


def test_commands_beside_a_running_ferry_watch_print_what_they_print_alone(
    tmp_path: Path, weed: WeedServer, bucket: str
) -> None:
    home = home_with_profile_w(tmp_path / "home", weed, bucket)
    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    inbox.mkdir()
    outside.mkdir()
    first, second = outside / "first.txt", outside / "second.txt"
    first.write_text("handed to the running Ferry")
    second.write_text("uploaded alone")
    socket_file = home / "data" / "ferry.sock"

    watch = ferry(home, "watch", str(inbox))
    try:
        wait_for(socket_file.exists, 60)
        assert socket_file.stat().st_mode & 0o777 == 0o600
        code, out, err = run_cli(home, "upload", str(first), "--json")
        assert code == 0, err
        handed = json.loads(out)
        assert [t["state"] for t in handed["transfers"]] == ["done"]
        (inbox / "dropped.txt").write_text("saved into the watched folder")
        wait_for(lambda: len(catalog_rows(home, "w")) == 2, 60)
        beside = {cmd: run_cli(home, cmd, "--json") for cmd in ("status", "ls")}
        assert all(code == 0 for code, _o, _e in beside.values()), beside
    finally:
        watch.terminate()
        watched_out, _err = watch.communicate(timeout=60)
    assert watch.returncode == 0
    # what the watching Ferry stored is said, one line a file, as it happens
    assert "stored     first.txt (27 bytes, verified)" in watched_out
    assert "stored     dropped.txt (29 bytes, verified)" in watched_out
    assert not socket_file.exists()
    alone = {cmd: run_cli(home, cmd, "--json") for cmd in ("status", "ls")}
    for cmd in ("status", "ls"):
        assert json.loads(beside[cmd][1]) == json.loads(alone[cmd][1]), cmd
    code, out, err = run_cli(home, "upload", str(second), "--json")
    assert code == 0, err
    solo = json.loads(out)
    assert solo["transfers"][0].keys() == handed["transfers"][0].keys()
    assert solo["summary"].keys() == handed["summary"].keys()
    assert (
        object_sha256(weed, bucket, "first.txt") == hashlib.sha256(first.read_bytes()).hexdigest()
    )

    # A Ferry that died leaves its socket file: the command notices and runs alone.
    watch = ferry(home, "watch", str(inbox))
    wait_for(socket_file.exists, 60)
    watch.kill()
    watch.wait()
    assert socket_file.exists()
    third = outside / "third.txt"
    third.write_text("after a crash")
    code, out, err = run_cli(home, "upload", str(third), "--json")
    assert code == 0, err
    assert json.loads(out)["transfers"][0]["state"] == "done"


def small_files(folder: Path, count: int) -> dict[str, str]:
    """``count`` files of 1 KiB; name -> SHA-256."""
    folder.mkdir()
    sums = {}
    for n in range(count):
        data = os.urandom(1024)
        (folder / f"s{n:03d}.bin").write_bytes(data)
        sums[f"s{n:03d}.bin"] = hashlib.sha256(data).hexdigest()
    return sums


def is_file_put(request: Request) -> bool:
    return is_put(request) and not is_probe(request)


def test_on_a_slow_link_many_more_small_files_are_in_flight_than_the_profiles_workers(
    proxy_profile: Callable[..., None],
    ferry_env: Environment,
    proxy: FaultProxy,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    proxy_profile(concurrency=4)
    sums = small_files(tmp_path / "many", 150)
    # Every file's PUT answered 3 s late, as from a bucket far away (or a slow one):
    # then more than 32 in flight needs only 11 files a second, and the wire, not
    # this machine's CPU, is what they wait for even while it is loaded (at 0.3 s
    # it needed 107 a second: a CI run on a loaded machine could not fill the
    # window, and rightly never grew it).
    proxy.faults = [Fault(is_file_put, "delay", times=10_000, delay=3.0)]
    with Ferry.open(ferry_env) as app:
        records = app.upload(sorted((tmp_path / "many").iterdir()))
        window = app.scheduler.small_files.size
    assert [r.state for r in records] == [TransferState.DONE] * 150
    print(f"\nmost requests in flight: {proxy.most_in_flight}; window at the end: {window}")
    # It started at 32 and climbed (the profile says 4: 4 were in flight before).
    assert window > 32
    assert proxy.most_in_flight > 32
    for name in ("s000.bin", "s075.bin", "s149.bin"):
        assert object_sha256(weed, bucket, name) == sums[name]


def test_a_server_saying_slow_down_gets_fewer_small_files_at_once_and_all_arrive(
    proxy_profile: Callable[..., None],
    ferry_env: Environment,
    proxy: FaultProxy,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    proxy_profile()
    sums = small_files(tmp_path / "many", 80)
    proxy.faults = [Fault(is_file_put, "status", times=6, status=503, code="SlowDown")]
    # No growth back within the test, however slow this machine is today.
    options = dataclasses.replace(
        RunMode.ONE_SHOT.scheduler_options(8), small_files=WindowOptions(calm=600.0)
    )
    with Ferry.open(ferry_env, scheduler_options=options) as app:
        start = app.scheduler.small_files.size
        records = app.upload(sorted((tmp_path / "many").iterdir()))
        window = app.scheduler.small_files.size
        throttled = app.storage.throttled.count
    assert [r.state for r in records] == [TransferState.DONE] * 80
    assert throttled == 6
    assert window <= start // 2, (start, window)
    listed = weed.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert len(listed) == 80
    for name in ("s000.bin", "s040.bin", "s079.bin"):
        assert object_sha256(weed, bucket, name) == sums[name]

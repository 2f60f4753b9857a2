"""Ferry on each S3 server of the compatibility table, case by case, as a user runs it.

Every case drives the real `ferry` command in a subprocess (its own
FERRY_HOME, an SQLite catalog) and checks what a user would: the exit code,
the SHA-256 of the bytes the server holds against the file, and the catalog
rows `ferry ls --json` shows. Where a server genuinely lacks something
(versioning, conditional writes), the outcome it gives is written in
EXPECTED below and asserted like any other: a server that starts doing
better, or worse, fails the test until the table is updated.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import S3Endpoint
from tests.integration.storage.test_compatibility import _confirmed
from tests.integration.transfers.test_crash import ferry, wait_for

MIB = 1024 * 1024
FOREIGN = b"written by another program with boto3, not by Ferry\n"
Note = Callable[[str, Any], None]

# What each server does where servers differ: the outcome a test observes must
# be this one. A case not named for a server must end in "ok".
EXPECTED: dict[tuple[str, str], str] = {
    # `ferry profile test`, "other tools": how the server keeps Ferry off another
    # program's object.
    ("weed", "protection"): "conditions honoured",
    ("moto", "protection"): "conditions honoured",
    ("rclone", "protection"): "conditions ignored",
    # Ceph RGW 16.2 honours If-None-Match / If-Match on PutObject but ignores
    # both on CompleteMultipartUpload: the probe's one-part Complete lands over
    # its object, and Ferry looks at the key before and after each Complete.
    ("ceph", "protection"): "look before Complete",
    ("swift", "protection"): "look before write",
    ("s3rver", "protection"): "conditions ignored",
    # The server's own ETags: single PUT / multipart Complete.
    ("weed", "opaque_etags"): "MD5 / MD5 of part MD5s-N",
    ("moto", "opaque_etags"): "MD5 / MD5 of part MD5s-N",
    ("rclone", "opaque_etags"): "MD5 / whole-object MD5",
    ("ceph", "opaque_etags"): "MD5 / MD5 of part MD5s-N",
    ("swift", "opaque_etags"): "MD5 / MD5 of part MD5s-N",
    ("s3rver", "opaque_etags"): "MD5 / whole-object MD5",
    # Another program's object at the key. Where conditions are ignored (rclone,
    # s3rver) Ferry looks at the key before its write and before Complete and
    # stops (cause foreign_object), though `ferry profile test` says it cannot.
    # Servers without object versions.
    ("rclone", "versioned_delete"): "no versioning",
    ("s3rver", "versioned_delete"): "no versioning",
}


def expected(server: S3Endpoint, case: str) -> str:
    return EXPECTED.get((server.name, case), "ok")


# -- running ferry ------------------------------------------------------------


class User:
    """One person's Ferry: a home of its own and a profile on the server."""

    def __init__(self, server: S3Endpoint, home: Path, prefix: str, bucket: str = "") -> None:
        self.server = server
        self.home = home
        self.prefix = prefix
        self.bucket = bucket or server.bucket

    def run(self, *args: str, timeout: float = 300) -> tuple[int, str, str]:
        process = self.start(*args)
        out, err = process.communicate(timeout=timeout)
        assert "Traceback" not in err, err
        return process.returncode, out, err

    def start(self, *args: str) -> subprocess.Popen[str]:
        return ferry(self.home, *args, keys=(self.server.access_key, self.server.secret_key))

    def json(self, *args: str, ok: bool = True) -> Any:
        code, out, err = self.run(*args, "--json")
        if ok:
            assert code == 0, (args, out, err)
        return json.loads(out)

    def upload(self, *paths: Path) -> dict[str, Any]:
        code, out, err = self.run("upload", *map(str, paths), "--json")
        document: dict[str, Any] = json.loads(out)
        document["exit_code"] = code
        document["stderr"] = err
        return document

    def files(self) -> dict[str, dict[str, Any]]:
        """The catalog as `ferry ls --json` shows it, by key."""
        rows = self.json("ls", "--prefix", self.prefix)["files"]
        return {row["key"]: row for row in rows}

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"


@pytest.fixture
def user(server: S3Endpoint, tmp_path: Path) -> User:
    return make_user(server, tmp_path / "home", f"compat-{uuid.uuid4().hex[:10]}")


def make_user(server: S3Endpoint, home: Path, prefix: str, bucket: str = "", *extra: str) -> User:
    person = User(server, home, prefix, bucket)
    code, _out, err = person.run(
        "profile", "add", "c", "--bucket", person.bucket, "--endpoint-url", server.endpoint_url,
        "--access-key-id", server.access_key, "--prefix", prefix, "--part-size-mib", "5",
        "--default", *extra,
    )  # fmt: skip
    assert code == 0, err
    return person


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored(server: S3Endpoint, key: str, bucket: str = "") -> bytes:
    answer = server.client().get_object(Bucket=bucket or server.bucket, Key=key)
    return bytes(answer["Body"].read())


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def assert_stored_and_listed(user: User, files: dict[str, bytes], uploaded: dict[str, Any]) -> None:
    """Uploaded on the first try; the server holds the bytes; the catalog says so."""
    assert uploaded["exit_code"] == 0, uploaded
    for transfer in uploaded["transfers"]:
        assert transfer["state"] == "done", transfer
        assert len(transfer["history"]) == 1, f"{transfer['key']} needed more than one try"
    rows = user.files()
    for name, data in files.items():
        key = user.key(name)
        assert sha256(stored(user.server, key, user.bucket)) == sha256(data), key
        row = rows[key]
        assert (row["status"], row["size"], row["sha256"]) == ("active", len(data), sha256(data))


# -- the cases ----------------------------------------------------------------


def test_protection(server: S3Endpoint, user: User, note: Note) -> None:
    code, out, err = user.run("profile", "test", "c", "--json")
    assert code == 0, (out, err)
    detail = {c["name"]: c["detail"] for c in json.loads(out)["checks"]}["other tools"]
    note("protection", detail)
    if "not the completion of a multipart upload" in detail:
        observed = "look before Complete"
    elif "refuses a write" in detail:
        observed = "conditions honoured"
    elif "takes no conditional writes" in detail:
        observed = "look before write"
    elif "ignores conditional writes" in detail:
        observed = "conditions ignored"
    else:
        observed = detail
    note("observed", observed)
    assert observed == expected(server, "protection")


def test_zero_bytes(server: S3Endpoint, user: User, tmp_path: Path) -> None:
    data = b""
    assert_stored_and_listed(
        user, {"empty.bin": data}, user.upload(write(tmp_path / "empty.bin", data))
    )


def test_five_mib(server: S3Endpoint, user: User, tmp_path: Path) -> None:
    data = os.urandom(5 * MIB)
    assert_stored_and_listed(
        user, {"five.bin": data}, user.upload(write(tmp_path / "five.bin", data))
    )


def test_hundred_mib(server: S3Endpoint, user: User, tmp_path: Path) -> None:
    data = os.urandom(100 * MIB)
    uploaded = user.upload(write(tmp_path / "hundred.bin", data))
    assert_stored_and_listed(user, {"hundred.bin": data}, uploaded)


ODD_NAMES = {
    "ü ñ 中文.txt": b"unicode name",
    "Ελληνικά/日本語 ファイル.txt": b"unicode folder and name",
    "emoji 🚀.txt": b"four-byte UTF-8",
    "e\u0301 decomposed.txt": b"combining accent (NFD)",
    "spaces and (brackets) [1].txt": b"spaces",
    "plus+percent%20&amp;=?.txt": b"reserved characters",
}


def test_unicode_names(server: S3Endpoint, user: User, tmp_path: Path) -> None:
    folder = tmp_path / "odd names"
    for name, data in ODD_NAMES.items():
        write(folder / name, data)
    uploaded = user.upload(folder)
    assert_stored_and_listed(user, {f"odd names/{n}": d for n, d in ODD_NAMES.items()}, uploaded)
    listed = user.server.client().list_objects_v2(Bucket=user.bucket, Prefix=user.prefix + "/")
    assert sorted(o["Key"] for o in listed.get("Contents", [])) == sorted(
        user.key(f"odd names/{n}") for n in ODD_NAMES
    )


def test_check(server: S3Endpoint, user: User, tmp_path: Path) -> None:
    files = {"a.bin": os.urandom(1000), "b.bin": os.urandom(6 * MIB), "c.bin": b""}
    uploaded = user.upload(*(write(tmp_path / n, d) for n, d in files.items()))
    assert_stored_and_listed(user, files, uploaded)
    report = user.json("check", "--grace", "0")
    assert report["findings"] == [], report


def test_delete(server: S3Endpoint, user: User, tmp_path: Path, note: Note) -> None:
    files = {"small.bin": os.urandom(1000), "parts.bin": os.urandom(11 * MIB)}
    assert_stored_and_listed(
        user, files, user.upload(*(write(tmp_path / n, d) for n, d in files.items()))
    )
    left = []
    for name in files:
        key = user.key(name)
        code, out, err = user.run("delete", key, "--json")
        assert user.files()[key]["status"] == "deleted"  # the row goes first, always
        listed = server.client().list_objects_v2(Bucket=user.bucket, Prefix=key)
        if listed.get("KeyCount", 0):
            left.append(name)
            said = json.loads(out)["deleted"][0]
            note(f"ferry delete {name}", f"exit {code}: {said.get('error') or said.get('note')}")
        else:
            assert code == 0, (out, err)
    code, out, err = user.run("check", "--grace", "0", "--json")
    report = json.loads(out)
    if left:
        note("ferry check then", f"exit {code}: {sorted({f['kind'] for f in report['findings']})}")
        note("Ferry gap", "Ferry's own object stays after `ferry delete`")
        observed = f"{', '.join(left)} left in place"
    else:
        assert (code, report["findings"]) == (0, []), (report, err)
        observed = "ok"
    note("observed", observed)
    assert observed == expected(server, "delete")


def test_kill_resume(server: S3Endpoint, user: User, tmp_path: Path) -> None:
    data = os.urandom(40 * MIB + 5)
    big = write(tmp_path / "resume.bin", data)
    upload = user.start("upload", str(big), "--json")
    wait_for(lambda: _confirmed(user.home / "data" / "journal.sqlite3", str(big)) >= 1, timeout=120)
    upload.send_signal(signal.SIGKILL)
    upload.wait()
    document = user.json("resume")
    assert [t["state"] for t in document["transfers"]] == ["done"], document
    assert sha256(stored(server, user.key("resume.bin"))) == sha256(data)
    row = user.files()[user.key("resume.bin")]
    assert (row["status"], row["sha256"]) == ("active", sha256(data))


def _foreign_outcome(user: User, key: str, uploaded: dict[str, Any], note: Note) -> str:
    """What became of the other program's object and of Ferry's transfer."""
    [transfer] = uploaded["transfers"]
    error = transfer.get("error") or {}
    note(
        "ferry",
        f"exit {uploaded['exit_code']}, {transfer['state']}"
        + (f" ({error.get('cause')}): {error.get('title')}" if error else ""),
    )
    body = stored(user.server, key, user.bucket)
    row = user.files().get(key)
    if body == FOREIGN:
        # The other program's object, byte for byte; Ferry said why it stopped,
        # and no row calls it Ferry's.
        assert uploaded["exit_code"] != 0, uploaded
        # conflict: the server refused the conditional write; foreign_object: the
        # look before the write (a server without conditions) saw it.
        assert transfer["state"] == "failed", transfer
        assert error.get("cause") in ("conflict", "foreign_object"), transfer
        assert "Another program wrote" in error["message"], error
        assert row is None or row["status"] != "active", row
        return "ok"
    # Overwritten: only where Ferry's profile test said it could not prevent it.
    assert transfer["state"] == "done", transfer
    assert row is not None, row
    assert row["sha256"] == sha256(body), row
    return "overwritten"


def test_foreign_before_put(server: S3Endpoint, user: User, tmp_path: Path, note: Note) -> None:
    key = user.key("shared.txt")
    server.client().put_object(Bucket=user.bucket, Key=key, Body=FOREIGN)
    uploaded = user.upload(write(tmp_path / "shared.txt", os.urandom(3000)))
    observed = _foreign_outcome(user, key, uploaded, note)
    note("observed", observed)
    assert observed == expected(server, "foreign_before_put")


def test_foreign_during_multipart(server: S3Endpoint, tmp_path: Path, note: Note) -> None:
    # 8 MiB/s, one part at a time: the other program writes after the first of five.
    user = make_user(
        server, tmp_path / "home", f"compat-{uuid.uuid4().hex[:10]}", "",
        "--bandwidth-schedule", "00:00-12:00 8MiB/s, 12:00-00:00 8MiB/s", "--concurrency", "1",
    )  # fmt: skip
    big = write(tmp_path / "shared.bin", os.urandom(24 * MIB))
    key = user.key("shared.bin")
    upload = user.start("upload", str(big), "--json")
    try:
        journal = user.home / "data" / "journal.sqlite3"
        wait_for(lambda: _confirmed(journal, str(big)) >= 1, timeout=120)
        server.client().put_object(Bucket=user.bucket, Key=key, Body=FOREIGN)
        out, err = upload.communicate(timeout=300)
    finally:
        if upload.poll() is None:
            upload.kill()
            upload.wait()
    assert "Traceback" not in err, err
    document = json.loads(out)
    document["exit_code"] = upload.returncode
    observed = _foreign_outcome(user, key, document, note)
    note("observed", observed)
    if observed != "ok" and expected(server, "protection") in (
        "conditions honoured",
        "look before Complete",
    ):
        note("Ferry gap", "the server ignored If-None-Match on CompleteMultipartUpload")
    assert observed == expected(server, "foreign_during_multipart")
    try:
        open_uploads = server.client().list_multipart_uploads(Bucket=user.bucket, Prefix=key)
    except ClientError as exc:  # s3rver: NotImplemented
        note("multipart uploads", f"not listable: {exc.response.get('Error', {}).get('Code')}")
    else:
        assert not open_uploads.get("Uploads"), open_uploads  # Ferry aborted its upload


@pytest.fixture
def versioned_bucket(server: S3Endpoint) -> Iterator[str]:
    """A bucket of the test's own, with versioning asked for."""
    client = server.client()
    name = f"ferry-v-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        with contextlib.suppress(ClientError):  # a server without versions
            for page in client.get_paginator("list_object_versions").paginate(Bucket=name):
                for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    client.delete_object(
                        Bucket=name, Key=entry["Key"], VersionId=entry["VersionId"]
                    )
        for listing in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in listing.get("Contents", []):
                client.delete_object(Bucket=name, Key=item["Key"])
        with contextlib.suppress(ClientError):
            client.delete_bucket(Bucket=name)


def test_versioned_delete(
    server: S3Endpoint, versioned_bucket: str, tmp_path: Path, note: Note
) -> None:
    client = server.client()
    status: str | None
    try:
        client.put_bucket_versioning(
            Bucket=versioned_bucket, VersioningConfiguration={"Status": "Enabled"}
        )
        status = client.get_bucket_versioning(Bucket=versioned_bucket).get("Status")
    except ClientError as exc:
        status = f"refused: {exc.response.get('Error', {}).get('Code')}"
    note("versioning", status or "not kept")
    user = make_user(server, tmp_path / "home", "v", versioned_bucket)
    files = {"small.bin": os.urandom(1000), "parts.bin": os.urandom(11 * MIB)}
    uploaded = user.upload(*(write(tmp_path / n, d) for n, d in files.items()))
    assert_stored_and_listed(user, files, uploaded)
    for name in files:
        key = user.key(name)
        assert user.json("delete", key)
        listed = client.list_objects_v2(Bucket=versioned_bucket, Prefix=key)
        assert listed.get("KeyCount", 0) == 0, listed
        assert user.files()[key]["status"] == "deleted"
    if status != "Enabled":
        observed = "no versioning"
    else:
        page = client.list_object_versions(Bucket=versioned_bucket, Prefix=user.prefix + "/")
        kept = [v["Key"] for v in page.get("Versions", [])]
        markers = [m["Key"] for m in page.get("DeleteMarkers", [])]
        note("after delete", f"{len(kept)} versions kept, {len(markers)} delete markers")
        observed = "ok" if not kept else "Ferry's versions kept"
    note("observed", observed)
    assert observed == expected(server, "versioned_delete")


def test_opaque_etags(server: S3Endpoint, user: User, tmp_path: Path, note: Note) -> None:
    small = os.urandom(1000)
    parts = os.urandom(12 * MIB + 3)  # 5 MiB parts: 3 of them
    uploaded = user.upload(
        write(tmp_path / "small.bin", small), write(tmp_path / "parts.bin", parts)
    )
    assert_stored_and_listed(user, {"small.bin": small, "parts.bin": parts}, uploaded)
    rows = user.files()
    shapes = []
    for name, data in (("small.bin", small), ("parts.bin", parts)):
        key = user.key(name)
        etag = server.client().head_object(Bucket=user.bucket, Key=key)["ETag"].strip('"')
        # The catalog keeps the server's own ETag, whatever its form.
        assert rows[key]["etag"].strip('"') == etag, (rows[key], etag)
        shapes.append(_etag_shape(etag, data))
    observed = " / ".join(shapes)
    note("observed", observed)
    assert observed == expected(server, "opaque_etags")


def _etag_shape(etag: str, data: bytes) -> str:
    if etag == hashlib.md5(data).hexdigest():
        return "MD5" if len(data) < 5 * MIB else "whole-object MD5"
    digests = b"".join(
        hashlib.md5(data[at : at + 5 * MIB]).digest() for at in range(0, len(data), 5 * MIB)
    )
    count = (len(data) + 5 * MIB - 1) // (5 * MIB)
    if etag == f"{hashlib.md5(digests).hexdigest()}-{count}":
        return "MD5 of part MD5s-N"
    return f"opaque ({etag})"

"""The same guarantees on S3 servers with other conventions.

SeaweedFS (multipart ETags the AWS way), moto's server, and rclone's `serve
s3` (the whole object's MD5 as a multipart object's ETag, metadata names
capitalised). On each: 0 B, 5 MiB and 100 MiB files and a folder of odd names
stored and read back by SHA-256 on the first try, `check` consistent,
`delete` removing row and object, and a kill-and-resume that lands.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import S3Endpoint, WeedServer
from tests.integration.transfers.test_crash import ferry, wait_for

MIB = 1024 * 1024


@pytest.fixture(params=["weed", "moto", "rclone"])
def server(request: pytest.FixtureRequest) -> S3Endpoint:
    if request.param == "weed":
        weed: WeedServer = request.getfixturevalue("weed")
        from tests.conftest import TEST_ACCESS_KEY, TEST_SECRET_KEY

        bucket = request.getfixturevalue("bucket")
        return S3Endpoint("weed", weed.endpoint_url, bucket, TEST_ACCESS_KEY, TEST_SECRET_KEY)
    endpoint: S3Endpoint = request.getfixturevalue(f"{request.param}_s3")
    return endpoint


def run(home: Path, server: S3Endpoint, *args: str) -> tuple[int, str, str]:
    process = ferry(home, *args, keys=(server.access_key, server.secret_key))
    out, err = process.communicate(timeout=300)
    assert "Traceback" not in err, err
    return process.returncode, out, err


def stored(server: S3Endpoint, key: str) -> str:
    body = server.client().get_object(Bucket=server.bucket, Key=key)["Body"].read()
    return hashlib.sha256(body).hexdigest()


def test_uploads_check_delete_and_resume_on_every_server(
    server: S3Endpoint, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    prefix = f"compat-{os.getpid()}-{tmp_path.name}"
    code, _out, err = run(
        home, server, "profile", "add", "c", "--bucket", server.bucket, "--endpoint-url",
        server.endpoint_url, "--prefix", prefix, "--part-size-mib", "8", "--default",
    )  # fmt: skip
    assert code == 0, err
    folder = tmp_path / "odd names"
    folder.mkdir()
    files = {
        "empty.bin": b"",
        "five.bin": os.urandom(5 * MIB),
        "hundred.bin": os.urandom(100 * MIB),
        "ü ñ 中文.txt": b"unicode name",
        "spaces and (brackets) [1].txt": b"spaces",
        "plus+percent%20&amp.txt": b"reserved characters",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    # What keeps Ferry from writing over another program's object, as the server allows.
    code, out, err = run(home, server, "profile", "test", "c", "--json")
    assert code == 0, (out, err)
    checks = {c["name"]: c["detail"] for c in json.loads(out)["checks"]}
    expected = "ignores conditional writes" if server.name == "rclone" else "refuses a write"
    assert expected in checks["other tools"], checks
    code, out, err = run(home, server, "upload", str(folder), "--json")
    document = json.loads(out)
    assert code == 0, (document, err)
    for transfer in document["transfers"]:
        assert transfer["state"] == "done", transfer
        assert len(transfer["history"]) == 1, f"{transfer['key']} needed more than one try"
    for name, data in files.items():
        assert stored(server, f"{prefix}/odd names/{name}") == hashlib.sha256(data).hexdigest()

    code, out, err = run(home, server, "check", "--json", "--grace", "0")
    assert code == 0, out
    assert json.loads(out)["findings"] == []

    gone = f"{prefix}/odd names/five.bin"
    code, out, err = run(home, server, "delete", gone, "--json")
    assert code == 0, err
    listed = server.client().list_objects_v2(Bucket=server.bucket, Prefix=gone)
    assert listed.get("KeyCount", 0) == 0

    big = tmp_path / "resume.bin"
    data = os.urandom(40 * MIB + 5)
    big.write_bytes(data)
    upload = ferry(home, "upload", str(big), "--json", keys=(server.access_key, server.secret_key))
    parts = home / "data" / "journal.sqlite3"
    wait_for(lambda: _confirmed(parts, str(big)) >= 1, timeout=120)
    upload.send_signal(signal.SIGKILL)
    upload.wait()
    code, out, err = run(home, server, "resume", "--json")
    assert code == 0, (out, err)
    assert [t["state"] for t in json.loads(out)["transfers"]] == ["done"], (out, err)
    assert stored(server, f"{prefix}/resume.bin") == hashlib.sha256(data).hexdigest()


def _confirmed(journal: Path, source: str) -> int:
    import sqlite3

    if not journal.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1) as connection:
            row = connection.execute(
                "SELECT count(*) FROM parts JOIN transfers ON transfers.id = parts.transfer_id "
                "WHERE transfers.source_path = ? AND parts.confirmed_at IS NOT NULL",
                (source,),
            ).fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0])

"""Bad input gets a clear error per file (or one clear line), never a traceback, never data loss.

Each case runs the real `ferry` command as a user would and reads its stdout
(one JSON document with --json) and stderr (no Python traceback).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import WeedServer
from tests.integration.transfers.test_crash import ferry_env

MIB = 1024 * 1024


def run(home: Path, *args: str, extra_env: dict[str, str] | None = None) -> tuple[int, str, str]:
    environ = ferry_env(home)
    environ.update(extra_env or {})
    done = subprocess.run(
        [sys.executable, "-m", "desktop_app", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def add_profile(home: Path, weed: WeedServer, bucket: str) -> None:
    code, _out, err = run(
        home, "profile", "add", "p", "--bucket", bucket, "--endpoint-url", weed.endpoint_url,
        "--default",
    )  # fmt: skip
    assert code == 0, err


def test_undecodable_names_and_link_loops_are_reported_and_the_good_files_stored(
    tmp_path: Path, weed: WeedServer, bucket: str
) -> None:
    home = tmp_path / "home"
    add_profile(home, weed, bucket)
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = {f"good-{n}.txt": f"good file {n}".encode() for n in range(3)}
    for name, data in good.items():
        (folder / name).write_bytes(data)
    with open(os.path.join(os.fsencode(folder), b"bad-\xff\xfe.txt"), "wb") as handle:
        handle.write(b"a name that is not UTF-8")
    (folder / "loop").symlink_to("loop")
    code, out, _err = run(home, "upload", str(folder), "--json")
    document = json.loads(out)
    by_state: dict[str, list[dict[str, object]]] = {}
    for transfer in document["transfers"]:
        by_state.setdefault(str(transfer["state"]), []).append(transfer)
    assert code == 1
    assert sorted(str(t["key"]) for t in by_state["done"]) == [f"mixed/{n}" for n in sorted(good)]
    failed = {Path(str(t["source"])).name: t for t in by_state["failed"]}
    assert set(failed) == {"bad-\\xff\\xfe.txt", "loop"}
    assert "not valid Unicode" in failed["bad-\\xff\\xfe.txt"]["error"]["message"]  # type: ignore[index]
    assert failed["loop"]["error"]["title"] == "Link loop"  # type: ignore[index]
    client = weed.client()
    for name, data in good.items():
        body = client.get_object(Bucket=bucket, Key=f"mixed/{name}")["Body"].read()
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00garbage\x80", b"profiles = 1\n", b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n"],
    ids=["garbage-bytes", "profiles-not-a-table", "deep-nesting"],
)
def test_a_broken_profiles_file_is_one_clear_error(tmp_path: Path, content: bytes) -> None:
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True)
    (home / "config" / "profiles.toml").write_bytes(content)
    code, out, err = run(home, "status", "--json")
    assert code == 2
    assert "profiles.toml" in json.loads(out)["error"]["message"]
    assert "move it away" in err


def test_an_impossible_catalog_path_is_one_clear_error(
    tmp_path: Path, weed: WeedServer, bucket: str
) -> None:
    home = tmp_path / "home"
    add_profile(home, weed, bucket)
    code, out, err = run(
        home, "ls", "--json", extra_env={"FERRY_CATALOG_URL": "sqlite:////proc/x/y"}
    )
    assert code == 2
    assert "/proc/x" in json.loads(out)["error"]["message"]
    assert "catalog URL" in err


def test_a_truncated_journal_is_refused_not_silently_replaced(
    tmp_path: Path, weed: WeedServer, bucket: str
) -> None:
    home = tmp_path / "home"
    add_profile(home, weed, bucket)
    (tmp_path / "a.txt").write_text("a")
    assert run(home, "upload", str(tmp_path / "a.txt"))[0] == 0
    journal = home / "data" / "journal.sqlite3"
    for leftover in journal.parent.glob("journal.sqlite3-*"):
        leftover.unlink()
    journal.write_bytes(b"")
    code, out, err = run(home, "status", "--json")
    assert code == 2
    assert "move it aside" in err
    code, out, err = run(home, "upload", str(tmp_path / "a.txt"), "--json")
    assert code == 2
    assert "empty (0 bytes)" in json.loads(out)["error"]["message"]
    assert journal.stat().st_size == 0, "the damaged journal is left for a person to look at"


@pytest.fixture
def tiny_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "tiny"
    home.mkdir()
    mounted = subprocess.run(
        # mode=0700: a tmpfs root is 1777 by default, which Ferry refuses as a home.
        ["mount", "-t", "tmpfs", "-o", "size=1200k,mode=0700", "tmpfs", str(home)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.fail(
            f"this test mounts a 1.2 MiB tmpfs and needs root: {mounted.stderr!r}", pytrace=False
        )
    try:
        yield home
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)


def test_a_full_disk_under_the_data_dir_is_one_clear_error_and_nothing_is_lost(
    tiny_home: Path, tmp_path: Path, weed: WeedServer, bucket: str
) -> None:
    add_profile(tiny_home, weed, bucket)
    folder = tmp_path / "many"
    folder.mkdir()
    expected = {}
    for n in range(300):
        data = f"file {n} ".encode() * 50
        (folder / f"f{n:03}.txt").write_bytes(data)
        expected[f"many/f{n:03}.txt"] = hashlib.sha256(data).hexdigest()
    code, out, err = run(tiny_home, "upload", str(folder), "--json")
    assert code == 2, (out, err)
    error = json.loads(out)["error"]
    assert error["title"] == "Disk full", error
    assert "nothing is lost" in error["message"].lower(), error
    assert "ferry resume" in error["message"], error
    lines = [line for line in err.strip().splitlines() if "cannot write the log" not in line]
    assert len(lines) == 1, err
    subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_home)], check=True)
    code, out, err = run(tiny_home, "resume", "--json")
    if not (code == 0 and json.loads(out)["summary"]["ok"]):
        pytest.fail(f"resume after freeing space: {code} {out[-2000:]} {err[-2000:]}")
    # Files that never reached the journal are queued again by a second upload;
    # those that did are recognised as already stored.
    code, out, err = run(tiny_home, "upload", str(folder), "--json")
    assert code == 0, err
    client = weed.client()
    for key, sha in expected.items():
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == sha


def test_a_server_without_list_parts_or_list_uploads_still_lands_uploads_and_checks(
    tmp_path: Path, weed: WeedServer, bucket: str
) -> None:
    """s3rver and others answer 501/405 to ListParts and ListMultipartUploads."""
    from tests.faults import Fault, FaultProxy, is_part_upload
    from tests.integration.transfers.test_crash import confirmed_parts, ferry, wait_for

    def lists_parts(r: object) -> bool:
        return r.method == "GET" and "uploadId=" in r.query  # type: ignore[attr-defined]

    def lists_uploads(r: object) -> bool:
        return r.method == "GET" and "uploads" in r.query.split("&")  # type: ignore[attr-defined]

    proxy = FaultProxy(weed.endpoint_url)
    proxy.faults = [
        Fault(lists_parts, "status", times=10**6, status=501, code="NotImplemented"),
        Fault(lists_uploads, "status", times=10**6, status=501, code="NotImplemented"),
        Fault(is_part_upload, "delay", times=10**6, delay=0.3),
    ]
    proxy.start()
    try:
        home = tmp_path / "home"
        code, _out, err = run(
            home, "profile", "add", "p", "--bucket", bucket, "--endpoint-url",
            f"http://127.0.0.1:{proxy.port}", "--part-size-mib", "5", "--concurrency", "2",
            "--default",
        )  # fmt: skip
        assert code == 0, err
        source = tmp_path / "big.bin"
        data = os.urandom(6 * 5 * MIB + 11)
        source.write_bytes(data)
        upload = ferry(home, "upload", str(source))
        wait_for(lambda: confirmed_parts(home) >= 2)
        upload.kill()
        upload.wait()
        code, out, err = run(home, "resume", "--json")
        assert code == 0, err
        assert json.loads(out)["transfers"][0]["state"] == "done"
        body = weed.client().get_object(Bucket=bucket, Key="big.bin")["Body"].read()
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
        code, out, err = run(home, "check", "--json", "--grace", "0")
        assert code in (0, 1), err
        report = json.loads(out)
        assert any("cannot list unfinished multipart uploads" in n for n in report["notes"])
    finally:
        proxy.stop()


def test_a_backslash_in_a_posix_name_is_refused_never_stored_over_another_files_key(
    tmp_path: Path, weed: WeedServer, bucket: str
) -> None:
    # SeaweedFS itself stores 'a\b' as 'a/b': a backslash key would be another file's object.
    home = tmp_path / "home"
    add_profile(home, weed, bucket)
    folder = tmp_path / "names"
    (folder / "a").mkdir(parents=True)
    contents = {
        "\\x.txt": b"the file named backslash-x",
        "x.txt": b"the real x.txt",
        "a\\b.txt": b"one file named a-backslash-b",
        "a/b.txt": b"b.txt inside the folder a",
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    code, out, _err = run(home, "upload", str(folder), "--json")
    transfers = {str(t["key"]): t for t in json.loads(out)["transfers"]}
    assert code == 1
    assert {key: t["state"] for key, t in transfers.items()} == {
        "names/x.txt": "done",
        "names/a/b.txt": "done",
        "names/\\x.txt": "failed",
        "names/a\\b.txt": "failed",
    }
    refused = transfers["names/\\x.txt"]["error"]
    assert refused["title"] == "Name cannot be a key"
    assert "backslash" in refused["message"]
    assert "'names/x.txt'" in refused["message"]
    client = weed.client()
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == ["names/a/b.txt", "names/x.txt"]
    for name in ("x.txt", "a/b.txt"):
        body = client.get_object(Bucket=bucket, Key=f"names/{name}")["Body"].read()
        assert hashlib.sha256(body).digest() == hashlib.sha256(contents[name]).digest(), name


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` remounted read-only in place (a bind mount: needs root, as the tests run)."""
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_data_folder_on_a_read_only_file_system_is_named_as_such(
    tmp_path: Path, weed: WeedServer, bucket: str
) -> None:
    home = tmp_path / "home"
    add_profile(home, weed, bucket)
    (tmp_path / "first.txt").write_text("stored while the disk was writable")
    (tmp_path / "second.txt").write_text("sent while it is read-only")
    code, _out, err = run(home, "upload", str(tmp_path / "first.txt"))
    assert code == 0, err
    data = home / "data"
    elsewhere = tmp_path / "writable"
    elsewhere.mkdir()
    with read_only(data):
        # the catalog (an SQLite file in the data folder) is opened first
        code, out, err = run(home, "upload", str(tmp_path / "second.txt"))
        assert code != 0
        assert f"{data} is on a read-only file system" in err, err
        assert "unable to open database file" not in out + err
        # with the catalog elsewhere, the journal says it
        catalog_elsewhere = {"FERRY_CATALOG_URL": f"sqlite:///{elsewhere / 'catalog.sqlite3'}"}
        code, out, err = run(
            home, "upload", str(tmp_path / "second.txt"), extra_env=catalog_elsewhere
        )
        assert code != 0
        assert "Data folder is read-only" in err, err
        assert f"{data} is on a read-only" in err, err
        assert "unable to open database file" not in out + err
    listed = weed.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["first.txt"]

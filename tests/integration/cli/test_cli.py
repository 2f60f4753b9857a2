"""The `ferry` command as a user runs it, in a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from desktop_app.core.runtime.environment import Environment
from tests.conftest import TEST_ACCESS_KEY, TEST_SECRET_KEY, WeedServer
from tests.faults import FaultProxy


def run_ferry(
    home: Path, *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FERRY_"))}
    environ.update(
        {"FERRY_HOME": str(home), "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    )
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "desktop_app", *args],
        capture_output=True,
        text=True,
        env=environ,
        input=stdin,
        timeout=180,
    )


def test_version(tmp_path: Path) -> None:
    result = run_ferry(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.startswith("ferry 0.")


def test_upload_json_against_a_real_server_with_env_credentials(
    tmp_path: Path, weed: WeedServer, bucket: str
) -> None:
    home = tmp_path / "home"
    added = run_ferry(
        home,
        "profile",
        "add",
        "team",
        "--bucket",
        bucket,
        "--endpoint-url",
        weed.endpoint_url,
        "--prefix",
        "inbox",
    )
    assert added.returncode == 0, added.stderr
    assert "AWS variables" in added.stderr
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "b.txt").write_text("alpha")  # same content: a duplicate
    creds = {"AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY}
    result = run_ferry(
        home, "upload", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), "--json", env=creds
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    # Both go at once: whichever reserves first is uploaded, the other waits
    # for it and is then made by a server-side copy (no bytes sent twice).
    [sent] = [t for t in document["transfers"] if t["copied_from"] is None]
    [copied] = [t for t in document["transfers"] if t["copied_from"] is not None]
    assert sent["state"] == copied["state"] == "done"
    assert sent["key"] == f"inbox/{Path(sent['source']).name}"
    assert sent["sha256"] == copied["sha256"] == hashlib.sha256(b"alpha").hexdigest()
    assert copied["copied_from"] == sent["key"]
    assert copied["key"] != sent["key"]
    assert document["summary"]["ok"] is True
    assert TEST_SECRET_KEY not in result.stdout + result.stderr
    log_text = "".join(p.read_text() for p in (home / "logs").glob("ferry.log*"))
    assert "environment variables" in log_text
    assert TEST_SECRET_KEY not in log_text

    listing = json.loads(run_ferry(home, "ls", "--json", env=creds).stdout)
    keys = sorted([sent["key"], copied["key"]])
    assert [f["key"] for f in listing["files"]] == keys
    for listed in listing["files"]:
        times = [listed[name] for name in ("created_at", "uploaded_at", "alive_at")]
        assert all("T" in t and datetime.fromisoformat(t).tzinfo for t in times), times
    deleted = run_ferry(home, "delete", *keys, "--json", env=creds)
    assert deleted.returncode == 0, deleted.stderr
    assert all(d["object_deleted"] for d in json.loads(deleted.stdout)["deleted"])
    assert weed.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    gone = run_ferry(home, "delete", sent["key"], env=creds)
    assert gone.returncode == 1
    assert "not a live file" in gone.stderr


def test_profile_test_says_precisely_what_is_wrong(
    tmp_path: Path, weed: WeedServer, bucket: str
) -> None:
    home = tmp_path / "home"
    run_ferry(
        home, "profile", "add", "team", "--bucket", bucket, "--endpoint-url", weed.endpoint_url
    )
    good = {"AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY}
    ok = run_ferry(home, "profile", "test", "--json", env=good)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["ok"] is True

    wrong = run_ferry(home, "profile", "test", env={**good, "AWS_SECRET_ACCESS_KEY": "nope-wrong"})
    assert wrong.returncode == 1
    assert "refused the credentials" in wrong.stdout
    assert "nope-wrong" not in wrong.stdout + wrong.stderr

    missing = run_ferry(home, "profile", "test", env={**good, "FERRY_BUCKET": "no-such-bucket-x"})
    assert missing.returncode == 1
    assert "does not exist" in missing.stdout

    unreachable = run_ferry(
        home, "profile", "test", env={**good, "FERRY_ENDPOINT_URL": "http://127.0.0.1:9"}
    )
    assert unreachable.returncode == 1
    assert "Cannot reach" in unreachable.stdout

    nocreds = run_ferry(home, "profile", "test")
    assert nocreds.returncode == 1
    assert "No S3 credentials" in nocreds.stdout


def test_bad_profiles_are_one_clear_line_and_change_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    unknown = run_ferry(home, "--profile", "ghost", "status")
    assert unknown.returncode == 2
    assert "No profile is configured" in unknown.stderr or "no profile named" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    config = home / "config" / "profiles.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[profiles.x\n")
    broken = run_ferry(home, "profile", "list")
    assert broken.returncode == 2
    assert "not a valid profiles file" in broken.stderr
    assert config.read_text() == "[profiles.x\n"
    bad = run_ferry(home, "profile", "add", "y", "--bucket", "Bad_Bucket")
    assert bad.returncode == 2
    assert "not a valid bucket name" in bad.stderr


def test_profile_show_puts_every_value_in_one_column(tmp_path: Path) -> None:
    """#29: relay_subject_prefix, longer than the column was, pushed its value aside."""
    home = tmp_path / "home"
    added = run_ferry(
        home, "profile", "add", "team", "--bucket", "photos", "--endpoint-url",
        "http://127.0.0.1:9", "--relay-subject-prefix", "acme.files",
        "--bandwidth-schedule", "08:00-18:00 2MiB/s, 18:00-08:00 off",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    shown = run_ferry(home, "profile", "show", "team")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    valued = [line for line in lines if len(line.split(maxsplit=1)) == 2]  # prefix is ""
    columns = {len(line) - len(line.split(maxsplit=1)[1]) for line in valued}
    assert len(columns) == 1, shown.stdout
    [column] = columns
    assert "relay_subject_prefix".ljust(column) + "acme.files" in lines
    assert "bandwidth_schedule".ljust(column) + "08:00-18:00 2MiB/s, 18:00-08:00 off" in lines
    assert all(line[column - 2 : column] == "  " for line in lines), shown.stdout


def test_sandbox_command_runs_until_stopped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    environ["FERRY_HOME"] = str(home)
    process = subprocess.Popen(
        [sys.executable, "-m", "desktop_app", "sandbox"],
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        deadline = time.monotonic() + 60
        while "Profile 'local' is ready" not in line and time.monotonic() < deadline:
            line = process.stderr.readline()
        assert "Local sandbox running at http://127.0.0.1:" in line
        (tmp_path / "f.bin").write_bytes(os.urandom(1000))
        upload = run_ferry(home, "upload", str(tmp_path / "f.bin"), "--json")
        assert upload.returncode == 0, upload.stderr
        assert json.loads(upload.stdout)["transfers"][0]["state"] == "done"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    state_file = home / "data" / "sandbox" / "server.json"
    assert not state_file.exists(), "the sandbox server was not stopped with the program"


def test_check_json_exit_codes_and_dry_run(tmp_path: Path, weed: WeedServer, bucket: str) -> None:
    home = tmp_path / "home"
    run_ferry(
        home, "profile", "add", "team", "--bucket", bucket, "--endpoint-url", weed.endpoint_url
    )
    creds = {"AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY}
    clean = run_ferry(home, "check", "--json", env=creds)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["counts"]["orphan_object"] == 0

    weed.client().put_object(Bucket=bucket, Key="stray.bin", Body=b"x")
    dry = run_ferry(home, "check", "--json", "--grace", "0", "--repair", env=creds)
    assert dry.returncode == 1
    document = json.loads(dry.stdout)
    assert document["counts"]["orphan_object"] == 1
    assert document["findings"][0]["key"] == "stray.bin"
    assert document["findings"][0]["repair"] == "adopt"  # never deleted by default
    assert set(document["scanned"]) == {
        "objects", "rows", "multipart_uploads", "within_grace", "others_files",
        "older_versions", "kept_versions",
    }  # fmt: skip
    assert "dry run" in document["repairs"]
    assert weed.client().list_objects_v2(Bucket=bucket)["KeyCount"] == 1  # nothing changed
    chosen = run_ferry(
        home, "check", "--json", "--grace", "0", "--repair", "--delete-orphans", env=creds
    )
    assert json.loads(chosen.stdout)["findings"][0]["repair"] == "delete_object"

    fixed = run_ferry(home, "check", "--grace", "0", "--repair", "--yes", env=creds)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "repaired: stray.bin: Adopted" in fixed.stdout
    assert weed.client().list_objects_v2(Bucket=bucket)["KeyCount"] == 1
    listing = json.loads(run_ferry(home, "ls", "--json", env=creds).stdout)
    assert [(f["key"], f["sha256"]) for f in listing["files"]] == [
        ("stray.bin", hashlib.sha256(b"x").hexdigest())
    ]

    broken = run_ferry(home, "check", "--json", env={**creds, "FERRY_BUCKET": "no-such-bucket-q"})
    assert broken.returncode == 2
    assert "does not exist" in json.loads(broken.stdout)["error"]["message"]


def test_ls_pages_through_everything_and_a_limit_says_where_to_go_on(
    weed_profile: Callable[..., None],
    ferry_env: Environment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from desktop_app import cli
    from desktop_app.cli import files

    weed_profile()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)  # the command's own keyring is empty
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
    paths = []
    for n in range(7):
        path = tmp_path / f"f{n}.txt"
        path.write_text(f"file {n}")
        paths.append(str(path))
    assert cli.main(["upload", "--profile", "test", *paths]) == 0  # options after the command
    capsys.readouterr()
    monkeypatch.setattr(files, "LS_PAGE", 3)  # 7 files are three pages
    assert cli.main(["ls"]) == 0
    assert [line.split()[-1] for line in capsys.readouterr().out.splitlines()] == [
        f"f{n}.txt" for n in range(7)
    ]
    assert cli.main(["ls", "--limit", "5", "-v"]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 5
    assert "--after 'f4.txt'" in err
    assert cli.main(["ls", "--after", "f4.txt", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [f["key"] for f in document["files"]] == ["f5.txt", "f6.txt"]
    assert "next_after" not in document
    assert cli.main(["ls", "--limit", "6", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["next_after"] == "f5.txt"
    assert cli.main(["ls", "--limit", "7", "--json"]) == 0
    assert "next_after" not in json.loads(capsys.readouterr().out)


def test_environment_variables_alone_are_a_profile_as_in_a_container(
    tmp_path: Path, weed: WeedServer, bucket: str
) -> None:
    """A fresh data dir, no profile file: FERRY_* and AWS_* variables suffice."""
    home = tmp_path / "fresh"
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(300_000))
    container = {
        "FERRY_ENDPOINT_URL": weed.endpoint_url,
        "FERRY_BUCKET": bucket,
        "FERRY_PREFIX": "ci",
        "AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY,
    }
    uploaded = run_ferry(home, "upload", str(data), "--json", env=container)
    assert uploaded.returncode == 0, uploaded.stderr
    [transfer] = json.loads(uploaded.stdout)["transfers"]
    assert transfer["state"] == "done"
    assert transfer["key"] == "ci/data.bin"
    stored = weed.client().get_object(Bucket=bucket, Key="ci/data.bin")["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data.read_bytes()).hexdigest()
    assert "Profile from environment variables alone" in uploaded.stderr
    assert "FERRY_BUCKET" in uploaded.stderr
    assert "S3 credentials from environment" in uploaded.stderr
    assert not (home / "config" / "profiles.toml").exists(), "nothing is written as a profile"
    # The catalog is an SQLite file in the data dir, and the check reads it.
    checked = run_ferry(home, "check", "--json", "--grace", "0", env=container)
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["findings"] == [], report
    assert report["scanned"]["rows"] == 1, report
    listing = json.loads(run_ferry(home, "ls", "--json", env=container).stdout)
    assert [f["key"] for f in listing["files"]] == ["ci/data.bin"]
    # Without FERRY_BUCKET there is still no profile, and the error says what to do.
    del container["FERRY_BUCKET"]
    none = run_ferry(home, "upload", str(data), env=container)
    assert none.returncode == 2
    assert "No profile is configured" in none.stderr


def test_without_a_keyring_profile_test_does_not_suggest_storing_a_secret(
    tmp_path: Path, weed: WeedServer, bucket: str
) -> None:
    home = tmp_path / "home"
    added = run_ferry(
        home, "profile", "add", "box", "--bucket", bucket, "--endpoint-url", weed.endpoint_url
    )
    assert added.returncode == 0, added.stderr
    tested = run_ferry(home, "profile", "test", "box", env={"AWS_CONFIG_FILE": "/nonexistent"})
    assert tested.returncode == 1
    assert "Without a keyring Ferry cannot store a secret" in tested.stdout
    assert "AWS_ACCESS_KEY_ID" in tested.stdout
    assert "--aws-profile" in tested.stdout
    assert "to store a secret" not in tested.stdout


def test_a_known_file_is_no_duplicate_when_its_server_is_down_or_its_object_gone(
    tmp_path: Path, weed: WeedServer, bucket: str, proxy: FaultProxy
) -> None:
    """The profile's server is a fault proxy in front of weed, so it can go down."""
    home = tmp_path / "home"
    added = run_ferry(
        home, "profile", "add", "team", "--bucket", bucket, "--endpoint-url", proxy.url
    )
    assert added.returncode == 0, added.stderr
    creds = {"AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY}
    data = tmp_path / "scan.pdf"
    data.write_bytes(os.urandom(100_000))
    first = run_ferry(home, "upload", str(data), "--json", env=creds)
    assert first.returncode == 0, first.stderr
    [row] = json.loads(run_ferry(home, "ls", "--json", env=creds).stdout)["files"]
    assert row["endpoint"] == proxy.url.lower()  # the row says which server

    # The server down: the catalog knows the file, yet it is not called "duplicate".
    proxy.go_down()
    try:
        down = run_ferry(home, "upload", str(data), "--json", env=creds)
    finally:
        proxy.come_up()
    assert down.returncode == 1, down.stderr
    [transfer] = json.loads(down.stdout)["transfers"]
    assert transfer["state"] == "failed", transfer
    assert transfer["error"]["kind"] == "transient", transfer["error"]

    # Another live server with a bucket of the same name: a conflict, never "stored".
    elsewhere = run_ferry(
        home, "upload", str(data), "--json", env={**creds, "FERRY_ENDPOINT_URL": weed.endpoint_url}
    )
    assert elsewhere.returncode == 1, elsewhere.stderr
    [transfer] = json.loads(elsewhere.stdout)["transfers"]
    assert transfer["state"] == "failed"
    assert "another server" in transfer["error"]["message"]
    # Checked from that server, the row is not "missing": it is another server's, and said so.
    direct = {**creds, "FERRY_ENDPOINT_URL": weed.endpoint_url}
    checked = run_ferry(home, "check", "--json", "--grace", "0", env=direct)
    report = json.loads(checked.stdout)
    assert report["counts"]["missing_object"] == 0, report
    assert any("another server" in note for note in report["notes"]), report

    # Deleted behind Ferry's back (aws-cli, another tool): sent again, not "duplicate".
    weed.client().delete_object(Bucket=bucket, Key="scan.pdf")
    again = run_ferry(home, "upload", str(data), "--json", env=creds)
    assert again.returncode == 0, again.stderr
    [transfer] = json.loads(again.stdout)["transfers"]
    assert transfer["state"] == "done", transfer
    body = weed.client().get_object(Bucket=bucket, Key="scan.pdf")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data.read_bytes()).hexdigest()
    [row] = json.loads(run_ferry(home, "ls", "--json", env=creds).stdout)["files"]
    assert row["status"] == "active"
    assert row["etag"] is not None
    # And now, with the object really there, it is a duplicate.
    twice = run_ferry(home, "upload", str(data), "--json", env=creds)
    assert json.loads(twice.stdout)["transfers"][0]["state"] == "duplicate"


def test_negative_limits_and_grace_are_refused_before_anything_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for args, said in (
        (("ls", "--limit", "-5"), "argument --limit: '-5' is not a number of files"),
        (("check", "--grace", "-5"), "argument --grace: '-5' is not a number of seconds"),
        (("check", "--grace", "soon"), "argument --grace: 'soon' is not a number of seconds"),
    ):
        refused = run_ferry(home, *args, "--json")
        assert refused.returncode == 2, (args, refused.stderr)
        assert said in refused.stderr, refused.stderr
        assert "0 or more" in refused.stderr, refused.stderr
        assert refused.stdout == ""


def test_a_negative_relay_batch_or_watch_settle_is_refused_as_a_negative_limit(
    tmp_path: Path,
) -> None:
    """Were taken: --batch -5 reached the relay's own check, --settle -1 a watch."""
    home = tmp_path / "home"
    watched = tmp_path / "inbox"
    watched.mkdir()
    for args, said in (
        (("relay", "--once", "--batch", "-5"), "argument --batch: '-5' is not a number of events"),
        (("relay", "--once", "--batch", "0"), "argument --batch: '0' is not a number of events"),
        (("watch", str(watched), "--settle", "-1"), "argument --settle: '-1' is not a number of"),
        (("watch", str(watched), "--settle", "nan"), "argument --settle: 'nan' is not a number"),
    ):
        refused = run_ferry(home, *args)
        assert refused.returncode == 2, (args, refused.stderr)
        assert said in refused.stderr, refused.stderr
        assert "1 or more" in refused.stderr or "0 or more" in refused.stderr, refused.stderr
        assert refused.stdout == ""
    assert not (home / "data").exists(), "nothing was opened"


def test_a_transfer_id_not_in_the_journal_is_said_plainly_alone_and_handed_over(
    weed_profile: Callable[..., None],
    ferry_env: Environment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from desktop_app import cli
    from desktop_app.core.runtime.ferry import Ferry
    from desktop_app.core.runtime.run_mode import RunMode

    weed_profile()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)  # the command's own keyring is empty
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
    (tmp_path / "kept.txt").write_text("a transfer that exists")
    assert cli.main(["upload", str(tmp_path / "kept.txt")]) == 0
    capsys.readouterr()
    commands = {
        "retry": "retried",
        "cancel": "cancelled",
        "pause": "paused",
        "unpause": "unpaused",
        "clear": "cleared",
    }

    def said(command: str) -> tuple[int, str, str]:
        code = cli.main([command, "99999"])
        out, err = capsys.readouterr()
        return code, out, err

    alone = {command: said(command) for command in commands}
    app = Ferry.open(ferry_env, mode=RunMode.RESIDENT)
    server = app.listen()
    try:
        beside = {command: said(command) for command in commands}
        code = cli.main(["retry", "99998", "99999", "--json"])
        document = json.loads(capsys.readouterr().out)
        [kept] = app.transfers()
    finally:
        server.stop()
        app.close()

    for command, done in commands.items():
        expected = (
            2,
            "",
            f"ferry: No such transfer: There is no transfer 99999 in the journal, so nothing "
            f"was {done}. `ferry status --all` lists the transfers there are, with their IDs.\n",
        )
        assert alone[command] == expected, command
        assert beside[command] == expected, command
    assert code == 2
    assert document["error"]["title"] == "No such transfer"
    assert document["error"]["message"].startswith("There is no transfer 99998, 99999 in the")
    assert kept.state.value == "done"
    assert not kept.paused


def test_a_command_writes_no_debug_lines_to_the_log_unless_verbose(tmp_path: Path) -> None:
    home = tmp_path / "home"
    log_file = home / "logs" / "ferry.log"
    # No backend named: keyring would look for one, and log each it tries (in a
    # home of the test's own, with no session bus: nothing outside it is read).
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "FERRY_", "PYTHON_KEYRING", "DBUS_", "XDG_"))
    }
    environ.update(FERRY_HOME=str(home), HOME=str(tmp_path))

    def commands(*options: str) -> None:
        for args, code in ((("profile", "list"), 0), (("--profile", "ghost", "status"), 2)):
            done = subprocess.run(
                [sys.executable, "-m", "desktop_app", *options, *args],
                capture_output=True, text=True, env=environ, timeout=180,
            )  # fmt: skip
            assert done.returncode == code, done.stderr

    commands()
    default = log_file.read_text() if log_file.exists() else ""
    assert [line for line in default.splitlines() if " DEBUG " in line] == []

    commands("-v")
    verbose = log_file.read_text()[len(default) :]
    # What -v is for: every detail, in the file (these two commands read no
    # secret, so the keyring, and its six lines of plugin search, is not even loaded).
    assert " DEBUG ferry [MainThread] Command failed" in verbose
    assert "keyring" not in default + verbose


def test_retry_of_a_transfer_that_has_not_failed_says_its_state_alone_and_handed_over(
    weed_profile: Callable[..., None],
    ferry_env: Environment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Was "No transfers." and exit 0: nothing said of the transfer named."""
    from desktop_app import cli
    from desktop_app.core.runtime.ferry import Ferry
    from desktop_app.core.runtime.run_mode import RunMode

    weed_profile()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)  # the command's own keyring is empty
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
    (tmp_path / "sent.txt").write_text("uploaded before the retry")
    assert cli.main(["upload", str(tmp_path / "sent.txt"), "--json"]) == 0
    [sent] = json.loads(capsys.readouterr().out)["transfers"]
    said = f"Transfer {sent['id']} is done (uploaded and verified); there is nothing to retry.\n"

    def retry(*args: str) -> tuple[int, str, str]:
        code = cli.main(["retry", *args])
        out, err = capsys.readouterr()
        return code, out, err

    # Exit 0, as `ferry cancel` of a finished transfer: nothing asked could be done.
    assert retry(str(sent["id"])) == (0, said, "")
    code, out, _err = retry(str(sent["id"]), "--json")
    document = json.loads(out)
    assert code == 0
    assert document["transfers"] == []
    assert document["not_retried"] == [{"id": sent["id"], "state": "done", "message": said[:-1]}]
    assert retry("--failed") == (0, "No failed transfers; there is nothing to retry.\n", "")
    app = Ferry.open(ferry_env, mode=RunMode.RESIDENT)
    server = app.listen()
    try:
        assert retry(str(sent["id"])) == (0, said, "")
        [kept] = app.transfers()
    finally:
        server.stop()
        app.close()
    assert kept.state.value == "done"
    assert kept.attempts == sent["attempts"]


def test_status_asks_after_the_relay_only_when_the_profile_has_one(
    weed_profile: Callable[..., None],
    ferry_env: Environment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """#19: a profile with no relay was asked "is the relay running?" at every status."""
    from desktop_app import cli

    weed_profile()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)  # the command's own keyring is empty
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
    monkeypatch.delenv("FERRY_NATS_URL", raising=False)
    (tmp_path / "a.txt").write_text("an event for the outbox")
    assert cli.main(["upload", str(tmp_path / "a.txt")]) == 0
    capsys.readouterr()

    assert cli.main(["status"]) == 0
    out, err = capsys.readouterr()
    assert "done" in out, out + err
    assert "relay" not in out + err, out + err
    assert cli.main(["status", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["relay"] is None
    assert document["events"]["waiting"] == 1

    asked = "1 catalog event(s) wait for `ferry relay`"
    monkeypatch.setenv("FERRY_NATS_URL", "nats://relay-user:s3cret-token@127.0.0.1:4222")
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert asked in out
    assert "is the relay running?" in out
    assert "s3cret" not in out
    monkeypatch.delenv("FERRY_NATS_URL")
    weed_profile(relay_nats_url="nats://127.0.0.1:4222")
    assert cli.main(["status"]) == 0
    assert asked in capsys.readouterr().out
    assert cli.main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["relay"] == "nats://127.0.0.1:4222"


def test_a_named_path_that_does_not_exist_is_refused_before_any_transfer(
    weed_profile: Callable[..., None],
    ferry_env: Environment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """#17: a typo became a retryable transfer in the Failed inbox. A folder's bad file
    is still that file's failed transfer, and never stops the others."""
    from desktop_app import cli
    from desktop_app.core.runtime.ferry import Ferry
    from desktop_app.core.runtime.run_mode import RunMode

    weed_profile()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)  # the command's own keyring is empty
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
    real = tmp_path / "real.txt"
    real.write_text("a file that is there")
    typo = tmp_path / "nonexistent" / "path.txt"
    said = (
        f"ferry: No such file: {typo} does not exist, so nothing was uploaded. "
        "Check the path (a typo?) and run the command again.\n"
    )
    assert cli.main(["upload", str(typo)]) == 2
    assert capsys.readouterr() == ("", said)
    assert cli.main(["upload", str(real), str(typo), "--json"]) == 2  # the others wait for a fix
    out, err = capsys.readouterr()
    assert json.loads(out)["error"]["title"] == "No such file"
    assert err == said
    app = Ferry.open(ferry_env, mode=RunMode.RESIDENT)
    server = app.listen()
    try:
        assert cli.main(["upload", "--no-wait", str(typo)]) == 2
        assert capsys.readouterr() == ("", said)
        assert app.transfers() == []  # nothing for the Failed inbox
    finally:
        server.stop()
        app.close()

    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "good.txt").write_text("stored")
    os.mkfifo(folder / "pipe")  # bad input in a folder: a failed transfer of its own
    assert cli.main(["upload", str(folder), "--json"]) == 1
    by_key = {t["key"]: t for t in json.loads(capsys.readouterr().out)["transfers"]}
    assert by_key["folder/good.txt"]["state"] == "done"
    assert by_key["folder/pipe"]["state"] == "failed"
    assert by_key["folder/pipe"]["error"]["title"] == "Not a regular file"


CREDS = {"AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY}


def _killed_mid_upload(home: Path, proxy: FaultProxy, bucket: str, source: Path) -> int:
    """A `ferry upload` of 8 parts of 5 MiB, SIGKILLed once 2 parts are confirmed;
    the transfer's ID (it stays uploading in the journal)."""
    from tests.faults import Fault, is_part_upload

    added = run_ferry(
        home, "profile", "add", "big", "--bucket", bucket, "--endpoint-url", proxy.url,
        "--part-size-mib", "5", "--concurrency", "2",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    source.write_bytes(os.urandom(8 * 5 * 1024 * 1024 - 12345))
    proxy.faults = [Fault(is_part_upload, "delay", times=10_000, delay=0.4)]
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FERRY_"))}
    environ.update(FERRY_HOME=str(home), PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    upload = subprocess.Popen(
        [sys.executable, "-m", "desktop_app", "upload", str(source)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**environ, **CREDS},
    )  # fmt: skip
    journal = home / "data" / "journal.sqlite3"
    deadline = time.monotonic() + 60
    while _confirmed_parts(journal) < 2:
        assert time.monotonic() < deadline, "no part was confirmed"
        assert upload.poll() is None, "no part was confirmed"
        time.sleep(0.02)
    upload.send_signal(signal.SIGKILL)
    upload.wait()
    proxy.faults.clear()
    return 1


def _confirmed_parts(journal: Path) -> int:
    import sqlite3

    if not journal.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1) as connection:
            sql = "SELECT count(*) FROM parts WHERE confirmed_at IS NOT NULL"
            return int(connection.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_status_says_paused_for_a_paused_transfer_and_json_keeps_its_state(
    tmp_path: Path, bucket: str, proxy: FaultProxy
) -> None:
    """#34 item 14: a paused transfer was listed as "uploading"."""
    home = tmp_path / "home"
    transfer_id = _killed_mid_upload(home, proxy, bucket, tmp_path / "big.bin")
    paused = run_ferry(home, "pause", str(transfer_id), env=CREDS)
    assert paused.returncode == 0, paused.stderr
    assert "1 transfer(s) paused." in paused.stderr, paused.stderr
    shown = run_ferry(home, "status", env=CREDS)
    assert shown.returncode == 0, shown.stderr
    [line, note] = shown.stdout.splitlines()
    assert line.split()[:3] == [str(transfer_id), "big", "paused"], line
    assert "uploading" not in line
    assert note.strip() == f"paused while uploading; `ferry unpause {transfer_id}` lets it go on"
    document = json.loads(run_ferry(home, "status", "--json", env=CREDS).stdout)
    [transfer] = document["transfers"]
    assert transfer["state"] == "uploading", transfer
    assert transfer["paused"] is True, transfer
    run_ferry(home, "unpause", str(transfer_id), env=CREDS)
    [line] = run_ferry(home, "status", env=CREDS).stdout.splitlines()
    assert line.split()[2] == "uploading", line


def test_a_secret_no_keyring_can_keep_still_saves_the_profile_and_says_what_to_do(
    tmp_path: Path, weed: WeedServer, bucket: str
) -> None:
    """#34 item 8: with --secret-stdin and no usable keyring, `profile add` exited 2 and
    saved nothing, while the same command without the option saved the profile."""
    home = tmp_path / "home"
    add = ("profile", "add", "box", "--bucket", bucket, "--endpoint-url", weed.endpoint_url,
           "--access-key-id", TEST_ACCESS_KEY)  # fmt: skip
    added = run_ferry(home, *add, "--secret-stdin", stdin=TEST_SECRET_KEY + "\n")
    assert added.returncode == 1, added.stderr  # saved, the secret not kept: partial
    assert added.stdout == ""
    [saved, not_kept] = added.stderr.splitlines()
    assert saved.startswith("Profile 'box' saved in ")
    assert not_kept == (
        "ferry: The S3 secret was not kept: no usable keyring is available here "
        "(keyring.backends.fail.Keyring), and Ferry never writes a secret to a file. "
        "Set AWS_SECRET_ACCESS_KEY in the environment of the ferry commands that use "
        f"profile 'box' (it goes with the profile's access key id {TEST_ACCESS_KEY}), or "
        "name an AWS profile (--aws-profile), or install a keyring backend (e.g. GNOME "
        "Keyring, KWallet) and run this command again."
    )
    listed = json.loads(run_ferry(home, "profile", "list", "--json").stdout)
    assert [p["name"] for p in listed["profiles"]] == ["box"]
    assert TEST_SECRET_KEY not in added.stdout + added.stderr
    written = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())  # profile, log
    assert b"[profiles.box]" in written
    assert TEST_SECRET_KEY.encode() not in written
    # Without --secret-stdin the same command saves alike (nothing asked to keep: exit 0).
    plain = run_ferry(home, *add)
    assert plain.returncode == 0, plain.stderr
    assert "AWS variables" in plain.stderr, plain.stderr
    # The advice works: the secret alone in the environment goes with the key id.
    tested = run_ferry(
        home, "profile", "test", "box", "--json", env={"AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY}
    )
    assert tested.returncode == 0, tested.stdout
    assert json.loads(tested.stdout)["ok"] is True, tested.stdout


def test_status_history_lists_the_attempt_a_pause_cut_with_the_bytes_it_sent(
    proxy_profile: Callable[..., None],
    ferry_env: Environment,
    proxy: FaultProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """#34 item 13: paused, then let go, a transfer showed one attempt with the bytes
    sent after the pause only."""
    from desktop_app import cli
    from desktop_app.core.runtime.ferry import Ferry
    from desktop_app.core.runtime.run_mode import RunMode
    from tests.faults import Fault, is_part_upload

    mib = 1024 * 1024
    proxy_profile(part_size=5 * mib, concurrency=2)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)  # the command's own keyring is empty
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(8 * 5 * mib - 12345))
    journal = Path(ferry_env.paths.journal_file)
    proxy.faults = [Fault(is_part_upload, "delay", times=10_000, delay=0.4)]
    app = Ferry.open(ferry_env, mode=RunMode.RESIDENT)
    try:
        app.start()
        [record] = app.queue([source], prefix="")
        deadline = time.monotonic() + 60
        while _confirmed_parts(journal) < 2:
            assert time.monotonic() < deadline, "no part was confirmed"
            time.sleep(0.02)
        assert app.pause([record.id]) == 1
        while record.id in app.scheduler.held():  # the attempt stops
            assert time.monotonic() < deadline, "the pause never stopped the attempt"
            time.sleep(0.02)
        before = [p for p in app.journal.parts(record.id) if p.done]
        proxy.faults.clear()
        app.unpause([record.id])
        [done] = app.wait([record.id])
    finally:
        app.close()
    assert done.state.value == "done"
    assert cli.main(["status", "--all", "--json"]) == 0
    [transfer] = json.loads(capsys.readouterr().out)["transfers"]
    [cut, resumed] = transfer["history"]
    assert (cut["number"], cut["outcome"], cut["recorded"]) == (1, "cut", False)
    assert cut["bytes_sent"] == sum(p.size for p in before)
    assert len(before) >= 2
    assert f"the {len(before)} part(s) the server confirmed" in cut["note"]
    assert (resumed["number"], resumed["outcome"], resumed["recorded"]) == (2, "succeeded", True)
    assert cut["bytes_sent"] + resumed["bytes_sent"] >= source.stat().st_size


def test_upload_reads_a_large_file_while_it_starts_and_stores_its_bytes(
    tmp_path: Path, weed: WeedServer, bucket: str
) -> None:
    """The pre-pass of a file sent in parts runs beside start-up (#35): the engine
    takes its hashes, and what is stored is the file, byte for byte."""
    home = tmp_path / "home"
    where = ("--bucket", bucket, "--endpoint-url", weed.endpoint_url)
    added = run_ferry(home, "profile", "add", "p", *where, "--part-size-mib", "5", "--default")
    assert added.returncode == 0, added.stderr
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * 1024 * 1024 + 3))
    result = run_ferry(home, "-v", "upload", str(big), "--json", env=CREDS)
    assert result.returncode == 0, result.stderr
    [transfer] = json.loads(result.stdout)["transfers"]
    sha = hashlib.sha256(big.read_bytes()).hexdigest()
    assert (transfer["state"], transfer["sha256"]) == ("done", sha)
    body = weed.client().get_object(Bucket=bucket, Key="big.bin")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha
    log_text = "".join(p.read_text() for p in (home / "logs").glob("ferry.log*"))
    assert f"{big} was hashed while Ferry started" in log_text

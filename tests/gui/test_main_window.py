"""The real window, offscreen, against a real weed mini."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QDialog, QMessageBox
from pytestqt.qtbot import QtBot

from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.model.events import TransferProgress, TransferSnapshot
from desktop_app.core.model.states import TransferState
from desktop_app.core.model.threads import TransferThread
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.settings.profiles import Profile
from desktop_app.core.settings.secrets import SecretKind
from desktop_app.gui.app import build_window
from desktop_app.gui.bridge import SnapshotBatch
from desktop_app.gui.dialogs.first_run import FirstRunDialog
from desktop_app.gui.main_window import MainWindow
from desktop_app.gui.views.failed_model import FailedColumn
from tests.conftest import (
    TEST_ACCESS_KEY,
    TEST_SECRET_KEY,
    S3Endpoint,
    SystemBus,
    WeedServer,
)
from tests.faults import Fault, FaultProxy
from tests.gui.conftest import live_row
from tests.integration.settings.test_keys import aws_config
from tests.sso_stub import SsoStub

MIB = 1024 * 1024


def uploading(transfer_id: int, size: int) -> TransferSnapshot:
    return TransferSnapshot(
        id=transfer_id, source_path=f"/home/ann/scan{transfer_id}.tif", bucket="b",
        key=f"scan{transfer_id}.tif", size=size, state=TransferState.UPLOADING, paused=False,
        attempts=0, sha256=None, duplicate_of=None, error=None, retry_at=None,
        updated_at=datetime.now(UTC),
    )  # fmt: skip


def drop(window: MainWindow, paths: list[Path]) -> None:
    """A drag entering the window, then the drop: what a file manager sends."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    assert QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    event = QDropEvent(
        QPoint(10, 10).toPointF(),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    assert QApplication.sendEvent(window, event)
    assert event.isAccepted()


def test_dropped_files_end_as_active_catalog_rows(
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    window_for: object,
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    weed_profile(part_size=5 * MIB)
    files = []
    for n in range(3):
        path = tmp_path / f"doc{n}.txt"
        path.write_bytes(f"content {n} ".encode() * (n + 1) * 1000)
        files.append(path)
    big = tmp_path / "scan.bin"
    big.write_bytes(bytes(range(256)) * (24 * 1024 * 4))  # 24 MiB
    files.append(big)
    window = window_for()  # type: ignore[operator]
    drop(window, files)
    qtbot.waitUntil(
        lambda: (
            window.model.rowCount() == 4
            and all(s.state is TransferState.DONE for s in window.model.snapshots())
        ),
        timeout=60_000,
    )
    for path in files:
        row = live_row(ferry_env, bucket, path.name)
        assert row is not None
        assert row.status is FileStatus.ACTIVE
        body = weed.client().get_object(Bucket=bucket, Key=path.name)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    qtbot.waitUntil(lambda: window.status_panel.totals_label.text() == "Idle", timeout=5_000)
    # one notification for the finished batch, shown in the status bar
    qtbot.waitUntil(lambda: bool(window.notifications), timeout=10_000)
    assert [n.title for n in window.notifications] == ["Uploads finished"]
    assert "4 file(s) uploaded and verified" in window.statusBar().currentMessage()
    proxy_index = window.transfers_view.proxy.index(0, 6)
    assert proxy_index.data() == "Done"
    # the catalog browse shows the same four rows, found by the engine process
    window.consistency_view.browser.search()
    qtbot.waitUntil(
        lambda: window.consistency_view.browser.files_model.rowCount() == 4, timeout=10_000
    )


def test_failed_inbox_groups_causes_with_next_try_and_history_and_retries_a_group(
    proxy_profile: Callable[..., None],
    proxy: FaultProxy,
    qtbot: QtBot,
    window_for: object,
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    busy = Fault(lambda r: r.method == "PUT" and "busy" in r.path, "status", times=10_000)
    denied = Fault(
        lambda r: r.method == "PUT" and "secret" in r.path,
        "status",
        times=10_000,
        status=403,
        code="AccessDenied",
    )
    proxy.faults = [busy, denied]
    proxy_profile()
    paths = [tmp_path / name for name in ("busy-1.pdf", "busy-2.pdf", "secret.pdf")]
    for path in paths:
        path.write_bytes(f"%PDF-1.4 {path.name}".encode() * 100)
    window = window_for()  # type: ignore[operator]
    drop(window, paths)
    inbox = window.failed_view
    qtbot.waitUntil(lambda: inbox.model.rowCount() == 3, timeout=60_000)
    qtbot.waitUntil(lambda: window.tabs.tabText(1) == "&Failed (3)", timeout=5_000)
    groups = [inbox.groups.item(i).text() for i in range(inbox.groups.count())]
    assert groups == ["All failures (3)", "Credentials and permissions (1)", "Server (2)"]

    inbox.groups.setCurrentRow(2)  # Server
    assert inbox.proxy.rowCount() == 2
    next_tries = {inbox.proxy.index(r, FailedColumn.NEXT_TRY).data() for r in range(2)}
    assert all(text.startswith("by itself at ") for text in next_tries), next_tries
    assert "temporary failure" in inbox.proxy.index(0, FailedColumn.ERROR).data()
    # the 503s are retried by themselves; the history shows each attempt
    qtbot.waitUntil(
        lambda: all(s.attempts >= 2 for s in inbox.model.snapshots() if "busy" in s.key),
        timeout=60_000,
    )
    inbox.table.selectRow(0)
    qtbot.waitUntil(lambda: "  2. " in inbox.details.toPlainText(), timeout=10_000)
    details = inbox.details.toPlainText()
    assert "  1. " in details
    assert "temporary failure" in details
    assert "Next try: by itself at" in details

    inbox.groups.setCurrentRow(1)  # Credentials: a person must act first
    assert inbox.proxy.index(0, FailedColumn.NEXT_TRY).data() == "when you click Retry"

    proxy.faults.remove(busy)  # the server is well again; the 403 stays
    inbox.groups.setCurrentRow(2)
    inbox.retry_group_button.click()
    qtbot.waitUntil(lambda: inbox.model.rowCount() == 1, timeout=60_000)
    qtbot.waitUntil(lambda: window.tabs.tabText(1) == "&Failed (1)", timeout=5_000)
    [left] = inbox.model.snapshots()
    assert left.key == "secret.pdf"
    qtbot.waitUntil(
        lambda: (
            [s.state for s in window.model.snapshots() if "busy" in s.key]
            == [TransferState.DONE] * 2
        ),
        timeout=60_000,
    )
    for path in paths[:2]:
        body = weed.client().get_object(Bucket=bucket, Key=path.name)["Body"].read()
        assert body == path.read_bytes()
        row = live_row(ferry_env, bucket, path.name)
        assert row is not None
        assert row.status is FileStatus.ACTIVE


def test_planted_orphan_shows_and_its_repair_removes_it(
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    window_for: object,
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    weed_profile(grace_seconds=0)
    weed.client().put_object(Bucket=bucket, Key="forgotten/export.csv", Body=b"a,b,c")
    window = window_for()  # type: ignore[operator]
    view = window.consistency_view
    window.tabs.setCurrentWidget(view)
    view.check_button.click()
    qtbot.waitUntil(lambda: view.report is not None, timeout=30_000)
    assert view.findings_model.rowCount() == 1
    assert view.findings_model.index(0, 1).data() == "forgotten/export.csv"
    assert view.findings_model.index(0, 0).data() == "Object without a record"
    assert "Object without a record: 1" in view.summary.text()

    assert view.findings_model.index(0, 4).data() == "Read it and add it to the catalog"
    assert view.delete_button.isEnabled()
    assert not view.delete_button.autoDefault()

    asked: list[tuple[str, object]] = []

    def confirm(_parent: object, _title: str, text: str, *args: object) -> object:
        asked.append((text, args[-1] if args else None))
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", confirm)
    view.findings_table.selectRow(0)
    view.repair_button.click()
    text, default = asked[0]  # the dry run, shown first, with No as the default button
    assert "forgotten/export.csv: Read it and add it to the catalog" in text
    assert default == QMessageBox.StandardButton.No
    qtbot.waitUntil(lambda: "agree" in view.summary.text(), timeout=30_000)
    assert view.findings_model.rowCount() == 0
    assert weed.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 1  # adopted
    row = live_row(ferry_env, bucket, "forgotten/export.csv")
    assert row is not None
    assert row.sha256 == hashlib.sha256(b"a,b,c").hexdigest()

    # Deletion is there, as a choice of its own.
    weed.client().put_object(Bucket=bucket, Key="junk/left.tmp", Body=b"junk")
    view.check_button.click()
    qtbot.waitUntil(lambda: view.findings_model.rowCount() == 1, timeout=30_000)
    view.findings_table.selectRow(0)
    view.delete_button.click()
    text, default = asked[1]
    assert "junk/left.tmp: Delete the object" in text
    assert "cannot be undone" in text
    assert default == QMessageBox.StandardButton.No
    qtbot.waitUntil(lambda: "agree" in view.summary.text(), timeout=30_000)
    keys = [o["Key"] for o in weed.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["forgotten/export.csv"]


def test_a_young_object_is_said_to_be_left_alone_not_that_all_agrees(
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    window_for: object,
    weed: WeedServer,
    bucket: str,
) -> None:
    weed_profile()  # the default grace period: 24 h
    weed.client().put_object(Bucket=bucket, Key="just/now.csv", Body=b"new")
    window = window_for()  # type: ignore[operator]
    view = window.consistency_view
    view.check_button.click()
    qtbot.waitUntil(lambda: view.report is not None, timeout=30_000)
    assert "Left alone: 1 younger than the grace period (24 h)" in view.summary.text()
    assert view.findings_model.rowCount() == 0
    # checked without grace, the young object is found, and the evidence follows
    view.no_grace_button.click()
    qtbot.waitUntil(lambda: view.findings_model.rowCount() == 1, timeout=30_000)
    view.findings_table.selectRow(0)
    assert "just/now.csv" in view.evidence.text() or "3 bytes" in view.evidence.text()
    view.run_check()  # grace again: the finding goes, and so does its evidence
    qtbot.waitUntil(lambda: view.findings_model.rowCount() == 0, timeout=30_000)
    assert view.evidence.text() == ""


def test_first_run_dialog_writes_a_working_profile(
    qtbot: QtBot, ferry_env: Environment, weed: WeedServer, bucket: str
) -> None:
    dialog = FirstRunDialog(ferry_env)
    qtbot.addWidget(dialog)
    dialog.bucket_radio.setChecked(True)
    dialog.bucket_box.name_edit.setText("office")
    dialog.bucket_box.endpoint_edit.setText(weed.endpoint_url)
    dialog.bucket_box.bucket_edit.setText(bucket)
    dialog.bucket_box.access_key_edit.setText(TEST_ACCESS_KEY)
    dialog.bucket_box.secret_edit.setText("wrong-secret")
    dialog.bucket_box.test_button.click()
    qtbot.waitUntil(lambda: dialog.bucket_box.test_button.isEnabled(), timeout=30_000)
    assert "refused the credentials" in dialog.bucket_box.test_result.toPlainText()
    dialog.bucket_box.secret_edit.setText(TEST_SECRET_KEY)
    dialog.bucket_box.test_button.click()
    qtbot.waitUntil(lambda: dialog.bucket_box.test_button.isEnabled(), timeout=30_000)
    assert "✘" not in dialog.bucket_box.test_result.toPlainText(), (
        dialog.bucket_box.test_result.toPlainText()
    )
    dialog.accept()
    assert dialog.result() == QDialog.DialogCode.Accepted
    profile = ferry_env.profiles.get()
    assert profile.name == "office"
    assert profile.bucket == bucket
    assert TEST_SECRET_KEY not in ferry_env.paths.profiles_file.read_text()
    assert ferry_env.secrets.get("office", SecretKind.S3_SECRET_KEY) == TEST_SECRET_KEY
    from desktop_app.core.runtime.diagnosis import diagnose_profile

    assert all(check.ok for check in diagnose_profile(ferry_env, profile))


def test_a_drop_of_10000_files_keeps_the_window_responsive(
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    window_for: object,
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    weed_profile()
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(10_000):
        (folder / f"n{n:05d}.txt").write_bytes(b"%d" % n)
    earlier = set(threading.enumerate())  # a Ferry another test left open is not this window's
    window = window_for()  # type: ignore[operator]
    stalls: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        stalls.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    drop(window, [folder])
    qtbot.waitUntil(lambda: window.model.rowCount() == 10_000, timeout=120_000)
    qtbot.wait(3_000)  # uploads running while the queue is shown
    in_window = sorted(
        {t.name for t in set(threading.enumerate()) - earlier if TransferThread.owns(t.name)}
    )
    timer.stop()
    window.commands.pause(None)
    gaps = sorted(stalls)
    longest, p99 = gaps[-1], gaps[len(gaps) * 99 // 100]
    print(
        f"event-loop gaps with 10,000 files queued and uploading: "
        f"longest {longest * 1000:.0f} ms, 99th percentile {p99 * 1000:.0f} ms"
    )
    # The engine's work runs in its own process: none of its threads is in the
    # window's. This, not the gaps, is what catches the engine coming back (it
    # stalled the window 430-650 ms at a time).
    assert in_window == []
    # Bounds for a shared 2-core CI machine (docs/BENCHMARKS.md, "The window under
    # load"): idle here the longest gap was 67-238 ms and the 99th percentile about
    # 100 ms; with three CPU hogs beside it, 402 and 205 ms. One gap of 1,040 ms was
    # seen on a loaded CI machine: a single late tick is the machine's; a window
    # that stalls often is Ferry's.
    assert p99 < 0.5
    assert longest < 2.0


def test_speed_shown_matches_the_bandwidth_limit_and_is_one_figure_for_row_and_total(
    weed_profile: Callable[..., None], qtbot: QtBot, window_for: object, tmp_path: Path
) -> None:
    limit = 4_000_000  # bytes per second
    weed_profile(part_size=5 * MIB, bandwidth_limit=limit)
    big = tmp_path / "video.bin"
    big.write_bytes(bytes(range(256)) * (4 * 80 * 1024))  # 80 MiB: about 21 s at the limit
    window = window_for()  # type: ignore[operator]
    drop(window, [big])
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=30_000)
    samples: list[tuple[float, float]] = []  # (row speed, total speed)

    def sample() -> bool:
        [snapshot] = window.model.snapshots()
        row = window.model.rate(snapshot).bytes_per_second
        total = window.model.totals().rate.bytes_per_second
        # Past the first window: the limiter's one-second burst at the start is
        # real speed, but not the limit's.
        past_start = window.model.fraction_done(snapshot) > 0.6
        if row is not None and total is not None and past_start:
            samples.append((row, total))
        return len(samples) >= 5 or snapshot.state is TransferState.DONE

    while not sample():
        qtbot.wait(1000)
    assert len(samples) >= 3, "no speed was shown while the upload ran"
    for row, total in samples:
        assert abs(row - limit) / limit < 0.05, (row, samples)  # #34: within 5 %
        assert row == pytest.approx(total, rel=0.01), "row and status bar disagree"
    index = window.transfers_view.proxy.index(0, 4)
    assert index.data().endswith("MB/s")
    window.commands.pause(None)
    qtbot.waitUntil(lambda: window.model.snapshots()[0].paused, timeout=10_000)
    assert window.transfers_view.proxy.index(0, 4).data() == ""
    assert window.transfers_view.proxy.index(0, 5).data() == ""
    qtbot.waitUntil(lambda: window.status_panel.totals_label.text() == "1 paused", timeout=5_000)


def test_the_window_says_uploads_wait_for_a_metered_connection(
    qtbot: QtBot,
    ferry_env: Environment,
    weed_profile: Callable[..., None],
    system_bus: SystemBus,
    tmp_path: Path,
) -> None:
    weed_profile(pause_on_metered=True)
    env = dataclasses.replace(
        ferry_env, environ={**ferry_env.environ, "DBUS_SYSTEM_BUS_ADDRESS": system_bus.address}
    )
    window = build_window(env, None)
    qtbot.addWidget(window)
    window.show()
    try:
        qtbot.waitUntil(lambda: window.backend.profile is not None, timeout=30_000)
        assert not window.status_panel.held_label.isVisible()
        system_bus.services.set_metered(True)
        qtbot.waitUntil(window.status_panel.held_label.isVisible, timeout=10_000)
        assert window.status_panel.held_label.text() == (
            "Uploads paused: this computer is on a metered connection"
        )
        window.grab().save(str(tmp_path / "metered.png"))
        system_bus.services.set_metered(False)
        qtbot.waitUntil(lambda: not window.status_panel.held_label.isVisible(), timeout=10_000)
    finally:
        window.really_quit = True
        window.close()


def test_an_expired_aws_sign_in_is_renewed_from_the_window_and_uploads_then_work(
    qtbot: QtBot,
    ferry_env: Environment,
    moto_s3: S3Endpoint,
    sso_stub: SsoStub,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The engine process inherits this process's environment: the AWS configuration
    # with an SSO profile, and the SSO service's stand-in on loopback.
    for name, value in aws_config(tmp_path, moto_s3).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSO_OIDC", sso_stub.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSO", sso_stub.url)
    ferry_env.profiles.save(
        Profile(
            name="work",
            bucket=moto_s3.bucket,
            catalog_url=f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
            endpoint_url=moto_s3.endpoint_url,
            prefix="gui-sso",
            aws_profile="company-sso",
            owner="tester",
        ),
        make_default=True,
    )
    # The person's browser: opening the page approves the sign-in there.
    opened: list[str] = []

    def browser(url: QUrl) -> bool:
        opened.append(url.toString())
        modal = QApplication.activeModalWidget()
        assert modal is not None
        modal.grab().save(str(tmp_path / "sign-in-dialog.png"))
        urllib.request.urlopen(url.toString(), timeout=10).read()
        return True

    monkeypatch.setattr(QDesktopServices, "openUrl", browser)
    # The person answers the failure's box with "Sign in…".
    seen: list[str] = []

    def answer_boxes() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox) and box.windowTitle() == "Sign-in needed":
            seen.append(box.text())
            box.grab().save(str(tmp_path / "sign-in-needed.png"))
            [sign_in] = [b for b in box.buttons() if b.text() == "Sign in…"]
            sign_in.click()

    clicker = QTimer()
    clicker.timeout.connect(answer_boxes)
    clicker.start(100)
    window = build_window(ferry_env, None)
    qtbot.addWidget(window)
    window.show()
    try:
        qtbot.waitUntil(lambda: window.backend.profile is not None, timeout=60_000)
        assert seen
        assert "ferry profile login work" in seen[0]
        assert opened == [f"{sso_stub.url}/approve?user_code={sso_stub.user_code}"]
        assert window.sign_in_dialog.code_label.text() == sso_stub.user_code
        data = tmp_path / "after-sign-in.txt"
        data.write_bytes(b"signed in " * 1000)
        drop(window, [data])
        qtbot.waitUntil(
            lambda: [s.state for s in window.model.snapshots()] == [TransferState.DONE],
            timeout=60_000,
        )
    finally:
        clicker.stop()
        window.really_quit = True
        window.close()
    body = moto_s3.client().get_object(Bucket=moto_s3.bucket, Key="gui-sso/after-sign-in.txt")
    assert (
        hashlib.sha256(body["Body"].read()).digest()
        == hashlib.sha256(b"signed in " * 1000).digest()
    )


def test_pause_all_after_clear_finished_leaves_the_list_empty(
    weed_profile: Callable[..., None], qtbot: QtBot, window_for: object, tmp_path: Path
) -> None:
    """#34 item 4: Pause all re-sends every transfer; the cleared ones stay cleared."""
    weed_profile()
    paths = [tmp_path / f"note{n}.txt" for n in range(2)]
    for n, path in enumerate(paths):
        path.write_bytes(f"note {n} ".encode() * 500)
    window = window_for()  # type: ignore[operator]
    drop(window, paths)
    qtbot.waitUntil(
        lambda: [s.state for s in window.model.snapshots()] == [TransferState.DONE] * 2,
        timeout=60_000,
    )
    qtbot.waitUntil(window.transfers_view.clear_button.isEnabled, timeout=5_000)
    window.transfers_view.clear_button.click()
    assert window.model.rowCount() == 0
    window.window_actions.pause_all.trigger()
    qtbot.waitUntil(
        lambda: window.statusBar().currentMessage() == "0 transfer(s) paused.", timeout=10_000
    )
    qtbot.wait(500)  # the re-sent snapshots reach the list within a tick or two
    assert window.model.rowCount() == 0
    qtbot.waitUntil(
        lambda: window.transfers_view.stack.currentWidget() is window.transfers_view.empty_state
    )
    assert not window.transfers_view.clear_button.isEnabled()


def test_after_a_retry_that_works_the_status_bar_no_longer_speaks_of_failures(
    proxy_profile: Callable[..., None],
    proxy: FaultProxy,
    qtbot: QtBot,
    window_for: object,
    tmp_path: Path,
) -> None:
    """#34 item 7: what the status bar says after a retry is what remains failed."""
    denied = Fault(
        lambda r: r.method == "PUT" and "secret" in r.path,
        "status",
        times=10_000,
        status=403,
        code="AccessDenied",
    )
    proxy.faults = [denied]
    proxy_profile()
    path = tmp_path / "secret.pdf"
    path.write_bytes(b"%PDF-1.4 secret" * 100)
    window = window_for()  # type: ignore[operator]
    drop(window, [path])
    bar = window.statusBar()
    qtbot.waitUntil(lambda: "finished with failures" in bar.currentMessage(), timeout=60_000)
    proxy.faults.clear()
    # retried as `ferry retry --failed` beside the window does: no notice of its own
    window.backend.call(Ferry.retry, None)
    qtbot.waitUntil(
        lambda: [s.state for s in window.model.snapshots()] == [TransferState.DONE],
        timeout=60_000,
    )
    qtbot.wait(700)  # a tick of the status bar, before the batch's own word
    assert "fail" not in bar.currentMessage().lower(), bar.currentMessage()
    assert "fail" not in window.status_panel.totals_label.text()
    qtbot.waitUntil(lambda: "1 file(s) uploaded" in bar.currentMessage(), timeout=10_000)


def test_queued_leaves_the_status_bar_once_the_upload_is_done(
    weed_profile: Callable[..., None], qtbot: QtBot, window_for: object, tmp_path: Path
) -> None:
    """#34 item 24: "Queued 1 file(s)." is news while the file waits, not once it is sent."""
    weed_profile()
    path = tmp_path / "memo.txt"
    path.write_bytes(b"memo " * 200)
    window = window_for()  # type: ignore[operator]
    bar = window.statusBar()
    drop(window, [path])
    qtbot.waitUntil(lambda: bar.currentMessage() == "Queued 1 file(s).", timeout=10_000)
    qtbot.waitUntil(
        lambda: [s.state for s in window.model.snapshots()] == [TransferState.DONE],
        timeout=60_000,
    )
    qtbot.wait(700)  # a tick of the status bar
    assert not bar.currentMessage().startswith("Queu"), bar.currentMessage()
    qtbot.waitUntil(lambda: "1 file(s) uploaded" in bar.currentMessage(), timeout=10_000)


def test_the_status_bar_elides_messages_and_keeps_the_batch_bar_in_place(
    weed_profile: Callable[..., None], qtbot: QtBot, window_for: object
) -> None:
    """#34 item 23: a long message ends in "…" with the whole of it in the tooltip (not
    "… Open Ferry's Failed t"); the batch bar does not move while its numbers change."""
    weed_profile()
    window = window_for()  # type: ignore[operator]
    window.resize(640, 500)
    long = (
        "Upload failed: quarterly-report-final-version-2.pdf: Access denied. "
        "Open Ferry's Failed tab to see why and retry."
    )
    window.statusBar().showMessage(long, 15_000)
    label = window.status_panel.bar.message_label
    qtbot.waitUntil(lambda: label.shown_text().endswith("…"))
    shown = label.shown_text()
    assert long.startswith(shown[:-1])
    assert label.toolTip() == long
    assert label.fontMetrics().horizontalAdvance(shown) <= label.contentsRect().width()
    assert window.statusBar().currentMessage() == long

    ids = (90_001, 90_002)  # two uploads under way, as the engine would report them
    window.model.upsert(SnapshotBatch(tuple(uploading(i, 20 * MIB) for i in ids)))
    places = set()
    for done in (0, 1_500, 700_000, 5 * MIB, 19 * MIB):
        for transfer_id in ids:
            window.model.set_progress(TransferProgress(transfer_id, done, 20 * MIB, 0))
        window._update_totals()
        qtbot.wait(50)
        assert window.status_panel.batch_bar.isVisible()
        places.add((window.status_panel.batch_bar.x(), window.status_panel.batch_bar.width()))
    assert len(places) == 1, places

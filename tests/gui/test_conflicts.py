"""Conflicts in the window: the Failed inbox's choices, and what Settings says of the server.

Another program writes keys before Ferry does (weed mini refuses Ferry's
writes over them): the Failed inbox offers, for the one conflict selected,
"Upload as “name (2).ext”", Replace (after a question, No by default, that
says what is lost) and Skip, and each lands as it says, byte for byte. On
rclone's `serve s3`, which ignores conditional writes, Settings says so once
Ferry has found it out.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.gui.dialogs.settings_dialog import SettingsDialog
from desktop_app.gui.main_window import MainWindow
from desktop_app.gui.views.failed_model import FailedColumn
from desktop_app.gui.views.failed_view import FailedView
from tests.conftest import TEST_ACCESS_KEY, TEST_SECRET_KEY, S3Endpoint, WeedServer
from tests.gui.conftest import live_row
from tests.gui.test_catalog_view import answer_question
from tests.integration.transfers.test_conflict_choices import foreign_put, save_profile, stored


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def select(inbox: FailedView, name: str) -> None:
    for row in range(inbox.proxy.rowCount()):
        if inbox.proxy.index(row, FailedColumn.NAME).data() == name:
            inbox.table.clearSelection()
            inbox.table.selectRow(row)
            return
    raise AssertionError(f"{name} is not in the Failed inbox")


def failed_names(inbox: FailedView) -> set[str]:
    return {inbox.proxy.index(r, FailedColumn.NAME).data() for r in range(inbox.proxy.rowCount())}


def test_the_failed_inbox_offers_the_choices_and_each_lands_as_it_says(
    weed_profile: Callable[..., None],
    weed: WeedServer,
    bucket: str,
    qtbot: QtBot,
    window_for: Callable[[], MainWindow],
    ferry_env: Environment,
    tmp_path: Path,
) -> None:
    weed_profile()
    client = weed.client()
    endpoint = S3Endpoint("weed", weed.endpoint_url, bucket, TEST_ACCESS_KEY, TEST_SECRET_KEY)
    theirs = {n: f"their {n}".encode() for n in ("report.pdf", "film.txt", "draft.doc")}
    ours = {n: os.urandom(2000) for n in theirs}
    for name in theirs:
        client.put_object(Bucket=bucket, Key=name, Body=theirs[name])
        (tmp_path / name).write_bytes(ours[name])
    window = window_for()
    window.commands.queue_paths([tmp_path / n for n in theirs])
    inbox = window.failed_view
    qtbot.waitUntil(lambda: inbox.model.rowCount() == 3, timeout=30_000)
    window.tabs.setCurrentWidget(inbox)
    qtbot.waitExposed(inbox.table)

    select(inbox, "report.pdf")
    assert inbox.conflict_choices.isVisible()
    assert inbox.conflict_choices.rename_button.text() == "Upload as “report (2).pdf”"
    assert inbox.conflict_choices.replace_button.isVisible()
    assert inbox.conflict_choices.skip_button.isVisible()
    assert "Another program wrote 'report.pdf'" in inbox.details.toPlainText()
    inbox.table.selectAll()  # several selected: no choices (each is the person's, one by one)
    assert not inbox.conflict_choices.isVisible()

    select(inbox, "report.pdf")
    inbox.conflict_choices.rename_button.click()
    qtbot.waitUntil(lambda: "report.pdf" not in failed_names(inbox), timeout=30_000)
    qtbot.waitUntil(
        lambda: live_row(ferry_env, bucket, "report (2).pdf") is not None, timeout=30_000
    )
    row = live_row(ferry_env, bucket, "report (2).pdf")
    assert row is not None
    assert row.status is FileStatus.ACTIVE
    assert row.sha256 == sha(ours["report.pdf"])
    assert sha(stored(endpoint, "report (2).pdf")) == sha(ours["report.pdf"])
    assert stored(endpoint, "report.pdf") == theirs["report.pdf"]

    # Replace asks first, No by default, saying what is lost; No changes nothing.
    seen: list[dict[str, Any]] = []
    answer_question(QMessageBox.StandardButton.No, seen)
    select(inbox, "film.txt")
    inbox.conflict_choices.replace_button.click()
    qtbot.waitUntil(lambda: bool(seen), timeout=30_000)
    assert seen[0]["default"] == QMessageBox.StandardButton.No
    assert "Another program wrote it" in seen[0]["more"]
    assert "lost" in seen[0]["more"]
    qtbot.waitUntil(
        lambda: window.statusBar().currentMessage() == "Nothing was replaced.", timeout=10_000
    )
    assert "film.txt" in failed_names(inbox)
    assert stored(endpoint, "film.txt") == theirs["film.txt"]
    answer_question(QMessageBox.StandardButton.Yes, seen)
    inbox.conflict_choices.replace_button.click()
    qtbot.waitUntil(lambda: live_row(ferry_env, bucket, "film.txt") is not None, timeout=30_000)
    assert sha(stored(endpoint, "film.txt")) == sha(ours["film.txt"])
    qtbot.waitUntil(lambda: "film.txt" not in failed_names(inbox), timeout=10_000)

    select(inbox, "draft.doc")
    inbox.conflict_choices.skip_button.click()
    qtbot.waitUntil(lambda: inbox.model.rowCount() == 0, timeout=30_000)
    qtbot.waitUntil(
        lambda: "Skipped draft.doc" in window.statusBar().currentMessage(), timeout=10_000
    )
    assert stored(endpoint, "draft.doc") == theirs["draft.doc"]
    assert live_row(ferry_env, bucket, "draft.doc") is None
    assert not inbox.conflict_choices.isVisible()


def test_settings_say_what_the_server_does_about_other_programs_objects(
    qtbot: QtBot, ferry_env: Environment, rclone_s3: S3Endpoint, tmp_path: Path
) -> None:
    prefix = f"s{os.getpid()}-{tmp_path.name}"
    save_profile(ferry_env, rclone_s3, tmp_path, prefix)
    dialog = SettingsDialog(ferry_env, "test")
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.profile_combo.currentText() == "test", timeout=10_000)
    qtbot.waitUntil(lambda: "not found out yet" in dialog.protection.text(), timeout=10_000)
    dialog.reject()

    (tmp_path / "a.txt").write_bytes(b"first upload: Ferry finds out")
    foreign_put(rclone_s3, f"{prefix}/b.txt", b"theirs")
    with Ferry.open(ferry_env) as ferry:
        [record] = ferry.upload([tmp_path / "a.txt"])
        assert record.state is TransferState.DONE, record.error
    dialog = SettingsDialog(ferry_env, "test")
    qtbot.addWidget(dialog)
    qtbot.waitUntil(
        lambda: "ignores conditional writes" in dialog.protection.text(), timeout=10_000
    )
    assert dialog.protection.accessibleName()
    dialog.reject()

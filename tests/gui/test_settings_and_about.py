"""Settings edits profiles; About names the versions; every action has a key."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QDoubleSpinBox
from pytestqt.qtbot import QtBot

from desktop_app import __version__
from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.model.sizes import MIB
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.settings.secrets import SecretKind
from desktop_app.gui.dialogs.about import AboutDialog, readable_server
from desktop_app.gui.dialogs.settings_dialog import NEW_PROFILE, SettingsDialog
from tests.conftest import TEST_SECRET_KEY, WeedServer
from tests.gui.conftest import live_row


def open_settings(qtbot: QtBot, env: Environment, active: str | None) -> SettingsDialog:
    dialog = SettingsDialog(env, active)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.profile_combo.count() > 0, timeout=10_000)
    return dialog


def test_settings_change_tuning_and_keep_what_was_not_touched(
    weed_profile: Callable[..., None], qtbot: QtBot, ferry_env: Environment
) -> None:
    # 7.5 MiB is shown rounded to 8; untouched, it must be written back as 7.5.
    weed_profile(part_size=7 * MIB + MIB // 2, grace_seconds=90)
    dialog = open_settings(qtbot, ferry_env, "test")
    assert dialog.profile_combo.currentText() == "test"
    assert dialog.destination.bucket_edit.text() == ferry_env.profiles.get("test").bucket
    dialog.concurrency_spin.setValue(3)
    bandwidth = dialog.bandwidth.spin
    assert isinstance(bandwidth, QDoubleSpinBox)
    bandwidth.setValue(2.5)  # MB/s
    dialog.retention.spin.setValue(7)  # days
    dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    qtbot.waitUntil(lambda: dialog.result() == QDialog.DialogCode.Accepted, timeout=10_000)
    saved = ferry_env.profiles.get("test")
    assert saved.concurrency == 3
    assert saved.bandwidth_limit == 2_500_000
    assert saved.retention_seconds == 7 * 86_400
    assert saved.part_size == 7 * MIB + MIB // 2
    assert saved.grace_seconds == 90
    assert ferry_env.secrets.get("test", SecretKind.S3_SECRET_KEY) == TEST_SECRET_KEY


def test_settings_refuse_bad_input_and_create_a_new_profile(
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
) -> None:
    weed_profile()
    dialog = open_settings(qtbot, ferry_env, "test")
    dialog.profile_combo.setCurrentText(NEW_PROFILE)
    assert dialog.destination.name_edit.text() == ""
    assert not dialog.destination.name_edit.isReadOnly()
    dialog.destination.name_edit.setText("archive")
    dialog.destination.bucket_edit.setText("Not A Bucket")
    save = dialog.buttons.button(QDialogButtonBox.StandardButton.Save)
    save.click()
    assert "not a valid bucket name" in dialog.status.text()
    assert dialog.result() != QDialog.DialogCode.Accepted
    dialog.destination.bucket_edit.setText(bucket)
    dialog.destination.endpoint_edit.setText(weed.endpoint_url)
    dialog.destination.access_key_edit.setText("AKIA-ARCHIVE")
    dialog.destination.secret_edit.setText("typed-secret")
    save.click()
    qtbot.waitUntil(lambda: dialog.result() == QDialog.DialogCode.Accepted, timeout=10_000)
    archive = ferry_env.profiles.get("archive")
    assert archive.bucket == bucket
    assert archive.access_key_id == "AKIA-ARCHIVE"
    assert ferry_env.secrets.get("archive", SecretKind.S3_SECRET_KEY) == "typed-secret"
    assert "typed-secret" not in ferry_env.paths.profiles_file.read_text()
    assert ferry_env.profiles.default_name() == "test"  # the box was not ticked


def test_settings_keep_company_sign_in_proxy_and_schedule_and_refuse_a_bad_schedule(
    weed_profile: Callable[..., None], qtbot: QtBot, ferry_env: Environment
) -> None:
    weed_profile()
    dialog = open_settings(qtbot, ferry_env, "test")
    save = dialog.buttons.button(QDialogButtonBox.StandardButton.Save)
    dialog.schedule_edit.setText("08:00-18:00 2MiB/s, 18:00-08:00 fast")
    save.click()
    assert "'fast' is not a rate" in dialog.status.text()
    assert dialog.result() != QDialog.DialogCode.Accepted
    dialog.destination.aws_profile_edit.setText("work")  # beside the access key: refused
    dialog.schedule_edit.setText("08:00-18:00 2MiB/s, 18:00-08:00 off")
    save.click()
    assert "not both" in dialog.status.text()
    dialog.destination.access_key_edit.clear()
    dialog.destination.proxy_edit.setText("http://proxy.example.org:3128")
    save.click()
    qtbot.waitUntil(lambda: dialog.result() == QDialog.DialogCode.Accepted, timeout=10_000)
    saved = ferry_env.profiles.get("test")
    assert saved.aws_profile == "work"
    assert saved.access_key_id is None
    assert saved.proxy_url == "http://proxy.example.org:3128"
    assert saved.bandwidth_schedule == "08:00-18:00 2MiB/s, 18:00-08:00 off"
    reopened = open_settings(qtbot, ferry_env, "test")
    assert reopened.destination.aws_profile_edit.text() == "work"
    assert reopened.schedule_edit.text() == saved.bandwidth_schedule


def test_about_names_ferry_qt_python_and_the_server(
    weed_profile: Callable[..., None], qtbot: QtBot, window_for: object
) -> None:
    weed_profile()
    window = window_for()  # type: ignore[operator]
    dialog = AboutDialog(window.backend, window)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: "SeaweedFS" in dialog.server_label.text(), timeout=10_000)
    text = " ".join(label.text() for label in dialog.findChildren(type(dialog.server_label)))
    assert __version__ in text
    assert "PySide6" in text
    assert "Python" in text
    # #34 item 27: a name and a version a person reads, not weed's "SeaweedFS 8000GB 4.48"
    assert re.fullmatch(r"SeaweedFS \d+\.\d+", dialog.server_label.text())
    assert dialog.server_label.toolTip().startswith("The server calls itself “SeaweedFS ")


def test_a_server_header_is_read_as_a_name_and_a_version() -> None:
    assert readable_server("SeaweedFS 8000GB 4.48") == "SeaweedFS 4.48"
    assert readable_server("SeaweedFS 30GB 3.80") == "SeaweedFS 3.80"
    for said in ("MinIO", "AmazonS3", "Ceph Object Gateway (squid)", "nginx/1.27.1"):
        assert readable_server(said) == said  # nothing invented, nothing dropped


def test_every_action_has_a_shortcut_and_a_menu(
    weed_profile: Callable[..., None], window_for: object, tmp_path: Path
) -> None:
    weed_profile()
    window = window_for()  # type: ignore[operator]
    in_menus = {
        action.text()
        for menu_action in window.menuBar().actions()
        for action in menu_action.menu().actions()
        if not action.isSeparator()
    }
    for action in window.actions():
        assert not action.shortcut().isEmpty(), f"{action.text()!r} has no shortcut"
        assert action.text() in in_menus, f"{action.text()!r} is in no menu"
    for menu_action in window.menuBar().actions():
        assert "&" in menu_action.text(), f"menu {menu_action.text()!r} has no mnemonic"


def test_applying_settings_restarts_the_engine_with_them(
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    window_for: object,
    ferry_env: Environment,
    bucket: str,
    tmp_path: Path,
) -> None:
    weed_profile()
    window = window_for()  # type: ignore[operator]
    first = tmp_path / "before.txt"
    first.write_text("sent with the old settings")
    window.commands.queue_paths([first])
    qtbot.waitUntil(lambda: _state_of(window, "before.txt") is TransferState.DONE, timeout=30_000)
    old = window.backend.profile
    ferry_env.profiles.save(dataclasses.replace(old, bandwidth_limit=3_000_000, concurrency=2))
    window.apply_settings()
    qtbot.waitUntil(
        lambda: (
            window.backend.profile is not None
            and window.backend.profile.bandwidth_limit == 3_000_000
        ),
        timeout=30_000,
    )
    assert window.backend.profile.concurrency == 2
    second = tmp_path / "after.txt"
    second.write_text("sent with the new settings")
    window.commands.queue_paths([second])
    qtbot.waitUntil(lambda: _state_of(window, "after.txt") is TransferState.DONE, timeout=30_000)
    row = live_row(ferry_env, bucket, "after.txt")
    assert row is not None
    assert row.status is FileStatus.ACTIVE
    assert window.model.rowCount() == 2  # the history is not shown twice


def _state_of(window: object, key: str) -> TransferState | None:
    for snapshot in window.model.snapshots():  # type: ignore[attr-defined]
        if snapshot.key == key:
            return snapshot.state  # type: ignore[no-any-return]
    return None


def test_settings_say_whether_the_profile_has_a_relay_and_keep_its_address(
    weed_profile: Callable[..., None], qtbot: QtBot, ferry_env: Environment
) -> None:
    weed_profile()
    dialog = open_settings(qtbot, ferry_env, "test")
    assert dialog.relay_state.text().startswith("No relay configured")
    dialog.nats_edit.setText("nats://events.example:4222")
    dialog.stream_edit.setText("TEAM")
    assert dialog.relay_state.text().startswith("Relay configured")
    assert "stream TEAM at nats://events.example:4222" in dialog.relay_state.text()
    dialog.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    qtbot.waitUntil(lambda: dialog.result() == QDialog.DialogCode.Accepted, timeout=10_000)
    saved = ferry_env.profiles.get("test")
    assert saved.relay_nats_url == "nats://events.example:4222"
    assert (saved.relay_stream, saved.relay_subject_prefix) == ("TEAM", "ferry")
    again = open_settings(qtbot, ferry_env, "test")
    assert again.relay_state.text().startswith("Relay configured")
    # A password in the address is refused: it would land in the profiles file.
    again.nats_edit.setText("nats://relay:s3cret@events.example:4222")
    again.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    assert "no password in the relay's NATS URL" in again.status.text()
    assert "s3cret" not in again.relay_state.text()

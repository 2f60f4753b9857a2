"""Settings and the welcome dialog fit a laptop screen and show what they say in full."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtGui import QScreen
from PySide6.QtWidgets import QDialogButtonBox, QLineEdit, QPlainTextEdit, QWidget
from pytestqt.qtbot import QtBot

from desktop_app.core.runtime.environment import Environment
from desktop_app.core.settings.profiles import Profile
from desktop_app.core.settings.secrets import SecretKind, SecretStore
from desktop_app.gui.dialogs.first_run import FirstRunDialog
from desktop_app.gui.dialogs.settings_dialog import SettingsDialog
from desktop_app.gui.widgets import dialog_position
from tests.conftest import failing_keyring

LAPTOP_FREE = QRect(0, 0, 1366, 768 - 40)  # a 1366×768 screen less a 40 px panel
TITLE_BAR = 30


def placeholders_cut(dialog: QWidget) -> list[str]:
    """The placeholders of the dialog's line edits that do not fit their box."""
    return [
        edit.placeholderText()
        for edit in dialog.findChildren(QLineEdit)
        if edit.isVisible()
        and edit.placeholderText()
        and edit.fontMetrics().horizontalAdvance(edit.placeholderText()) + 8 > edit.width()
    ]


def test_settings_fit_a_1366x768_screen_with_save_and_cancel_in_sight(
    qtbot: QtBot, ferry_env: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(QScreen, "availableGeometry", lambda _screen: LAPTOP_FREE)
    ferry_env.profiles.save(
        Profile(name="test", bucket="photos", catalog_url=ferry_env.paths.default_catalog_url("t"))
    )
    dialog = SettingsDialog(ferry_env, "test")
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    qtbot.waitUntil(lambda: dialog.profile_combo.currentText() == "test", timeout=10_000)

    assert dialog.height() <= 740
    assert dialog.height() + TITLE_BAR <= LAPTOP_FREE.height()
    assert dialog.width() <= LAPTOP_FREE.width()
    for which in (QDialogButtonBox.StandardButton.Save, QDialogButtonBox.StandardButton.Cancel):
        button = dialog.buttons.button(which)
        where = QRect(button.mapTo(dialog, button.rect().topLeft()), button.size())
        assert button.isVisible(), (button.text(), where)
        assert dialog.rect().contains(where), (button.text(), where)
    # What does not fit scrolls, down to the last section.
    dialog.sections.ensureWidgetVisible(dialog.default_check)
    assert not dialog.default_check.visibleRegion().isEmpty()
    assert placeholders_cut(dialog) == []


def test_test_connection_results_are_shown_in_full(qtbot: QtBot, ferry_env: Environment) -> None:
    dialog = SettingsDialog(ferry_env, None)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    reason = "the endpoint answered with something Ferry did not expect, " * 4
    text = "\n".join(f"✘ check {n}: {reason}" for n in range(8))
    dialog.destination.tester.finished.emit(text)  # what the checks' thread sends

    box = dialog.destination.test_result
    assert isinstance(box, QPlainTextEdit)
    assert box.isReadOnly()
    assert box.toPlainText() == text  # every line, whole
    assert box.lineWrapMode() is QPlainTextEdit.LineWrapMode.WidgetWidth
    assert box.horizontalScrollBar().maximum() == 0  # long lines wrap, none runs off
    assert box.verticalScrollBar().maximum() > 0  # and what is below scrolls into view
    assert box.height() >= 3 * box.fontMetrics().lineSpacing()


def test_the_welcome_dialog_is_wide_enough_for_its_placeholders(
    qtbot: QtBot, ferry_env: Environment
) -> None:
    dialog = FirstRunDialog(ferry_env)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.bucket_radio.setChecked(True)
    assert dialog.width() >= 480
    assert placeholders_cut(dialog) == []


def files_under(root: Path) -> set[Path]:
    return set(root.rglob("*")) if root.exists() else set()


@pytest.mark.parametrize("keyring_usable", [False, True])
def test_the_welcome_test_says_where_the_secret_came_from_and_cancel_leaves_nothing(
    qtbot: QtBot,
    ferry_env: Environment,
    monkeypatch: pytest.MonkeyPatch,
    keyring_usable: bool,
) -> None:
    monkeypatch.setattr(QScreen, "availableGeometry", lambda _screen: LAPTOP_FREE)
    store = ferry_env.secrets if keyring_usable else SecretStore(failing_keyring())
    env = Environment(ferry_env.paths, ferry_env.environ, store)
    home = ferry_env.paths.data_dir.parent
    before = files_under(home)
    dialog = FirstRunDialog(env)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.bucket_radio.setChecked(True)
    form = dialog.bucket_box
    form.endpoint_edit.setText("http://127.0.0.1:1")  # nothing answers there
    form.bucket_edit.setText("photos")
    form.access_key_edit.setText("AKIAEXAMPLE")
    form.secret_edit.setText("typed-secret")
    qtbot.mouseClick(form.test_button, Qt.MouseButton.LeftButton)  # type: ignore[no-untyped-call]  # pytest-qt leaves it unannotated
    qtbot.waitUntil(lambda: form.test_button.isEnabled(), timeout=60_000)

    text = form.test_result.toPlainText()
    assert "found in keyring" not in text
    if keyring_usable:
        assert "✔ credentials: the secret key typed here (kept in the keyring when saved)" in text
    else:
        assert "✘ credentials: the secret key typed here; no usable keyring can keep it" in text
        assert "AWS_SECRET_ACCESS_KEY" in text
    assert "✔ catalog" in text  # the catalog file was opened to test it
    # Every line of the result in sight at 1366×768, nothing to scroll to.
    assert form.test_result.verticalScrollBar().maximum() == 0
    assert dialog.height() + TITLE_BAR <= LAPTOP_FREE.height()

    box = dialog.findChild(QDialogButtonBox)
    assert box is not None
    qtbot.mouseClick(  # type: ignore[no-untyped-call]  # pytest-qt leaves it unannotated
        box.button(QDialogButtonBox.StandardButton.Cancel),
        Qt.MouseButton.LeftButton,
    )
    assert not dialog.isVisible()
    assert files_under(home) == before  # no catalog-work.sqlite3, no data folder


def settings_on(qtbot: QtBot, env: Environment, profile: Profile) -> SettingsDialog:
    env.profiles.save(profile, make_default=True)
    dialog = SettingsDialog(env, profile.name)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    qtbot.waitUntil(lambda: dialog.profile_combo.currentText() == profile.name, timeout=10_000)
    return dialog


def sandbox_profile(env: Environment) -> Profile:
    return Profile(
        name="local",
        bucket="ferry",
        catalog_url=env.paths.default_catalog_url("local"),
        endpoint_url="http://127.0.0.1:8333",
        sandbox=True,
    )


@pytest.mark.parametrize(
    ("case", "placeholder"),
    [
        ("sandbox", "none needed: the sandbox accepts any key"),
        ("stored", "unchanged (kept in the keyring)"),
        ("never stored", "none stored: type one to keep it in the keyring"),
        ("no keyring", "none can be kept: no usable keyring"),
    ],
)
def test_the_secret_key_field_says_what_is_stored(
    qtbot: QtBot, ferry_env: Environment, case: str, placeholder: str
) -> None:
    env = ferry_env
    if case == "no keyring":
        env = Environment(ferry_env.paths, ferry_env.environ, SecretStore(failing_keyring()))
    profile = Profile(
        name="work",
        bucket="photos",
        catalog_url=env.paths.default_catalog_url("work"),
        access_key_id="AKIAEXAMPLE",
    )
    if case == "sandbox":
        profile = sandbox_profile(env)
    if case == "stored":
        env.secrets.set("work", SecretKind.S3_SECRET_KEY, "kept-secret")
    dialog = settings_on(qtbot, env, profile)

    edit = dialog.destination.secret_edit
    assert edit.text() == ""
    assert edit.placeholderText() == placeholder
    assert placeholders_cut(dialog) == []


def test_the_sandbox_box_shows_its_last_line(
    qtbot: QtBot, ferry_env: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(QScreen, "availableGeometry", lambda _screen: LAPTOP_FREE)
    dialog = settings_on(qtbot, ferry_env, sandbox_profile(ferry_env))
    box = dialog.sandbox_access
    dialog.sections.ensureWidgetVisible(box)
    assert box.isVisible()
    assert box.toPlainText().splitlines()[-1].startswith("rclone:")

    # Every line, wrapped at the box's width, lies inside the box: none is cut or
    # hidden below (the rclone line was).
    last = box.document().lastBlock()
    bottom = box.blockBoundingGeometry(last).translated(box.contentOffset()).bottom()
    assert box.contentOffset().y() >= 0  # not scrolled
    assert bottom <= box.viewport().height()
    # And when the window is narrower, the box grows with its wrapped lines.
    dialog.resize(dialog.width() - 100, dialog.height())
    qtbot.waitUntil(
        lambda: (
            box.blockBoundingGeometry(box.document().lastBlock())
            .translated(box.contentOffset())
            .bottom()
            <= box.viewport().height()
        ),
        timeout=5_000,
    )


def test_settings_over_a_window_at_the_top_of_a_laptop_screen_keep_their_title_bar_on_it(
    qtbot: QtBot, ferry_env: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As icewm opens Ferry at 1366×768: the window (1000×600) in the top left
    # corner. Qt's own placement put the Settings dialog's title bar above the
    # screen there; the frame goes where the window manager's title bar fits.
    monkeypatch.setattr(QScreen, "availableGeometry", lambda _screen: LAPTOP_FREE)
    window = QWidget()
    qtbot.addWidget(window)
    window.setGeometry(5, 24, 1000, 600)
    window.show()
    qtbot.waitExposed(window)
    dialog = SettingsDialog(ferry_env, None, window)
    dialog.show()
    qtbot.waitExposed(dialog)

    frame = window.frameGeometry()
    assert dialog.pos() == dialog_position(frame, dialog.size(), LAPTOP_FREE)
    assert LAPTOP_FREE.top() <= dialog.pos().y()
    assert dialog.pos().y() + 40 + dialog.height() <= LAPTOP_FREE.bottom() + 1
    assert abs(dialog.pos().x() + dialog.width() // 2 - frame.center().x()) <= 1
    dialog.close()


def test_a_dialog_is_centred_on_its_window_and_kept_inside_the_free_area() -> None:
    free = QRect(0, 0, 1920, 1040)
    middle = dialog_position(QRect(460, 240, 1000, 600), QSize(400, 200), free)
    assert middle == QPoint(959 - 200, 539 - (200 + 40) // 2)  # centred, title bar counted
    tall = dialog_position(QRect(0, 0, 1010, 629), QSize(640, 702), QRect(0, 0, 1366, 742))
    assert tall == QPoint(184, 0)  # the title bar on the screen, the bottom above the panel
    corner = dialog_position(QRect(1500, 800, 400, 200), QSize(640, 500), free)
    assert corner == QPoint(1920 - 640, 1040 - 540)

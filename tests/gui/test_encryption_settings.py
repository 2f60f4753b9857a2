"""Settings' Encryption section on weed mini, which checks SSE-C keys (a HEAD without
the key: 400): a person picks SSE-C and pastes a key, the key goes to the keyring
only, the uploads are encrypted under it, and a wrong or missing key stops the
save with words that never repeat what was typed (#33)."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from PySide6.QtWidgets import QDialog, QDialogButtonBox
from pytestqt.qtbot import QtBot

from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.ferry import Ferry
from desktop_app.core.settings.profiles import Encryption
from desktop_app.core.settings.secrets import SecretKind
from desktop_app.gui.dialogs.settings_dialog import SettingsDialog
from tests.conftest import WeedServer, upload_done


def _open_settings(qtbot: QtBot, env: Environment) -> SettingsDialog:
    dialog = SettingsDialog(env, "test")
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.profile_combo.count() > 0, timeout=10_000)
    return dialog


def _choose(dialog: SettingsDialog, kind: Encryption) -> None:
    combo = dialog.encryption.kind_combo
    combo.setCurrentIndex(next(i for i in range(combo.count()) if combo.itemData(i) is kind))


def test_sse_c_chosen_in_settings_keeps_the_key_in_the_keyring_and_encrypts_uploads(
    weed_profile: Callable[..., None],
    qtbot: QtBot,
    ferry_env: Environment,
    weed: WeedServer,
    bucket: str,
    tmp_path: Path,
) -> None:
    weed_profile()
    dialog = _open_settings(qtbot, ferry_env)
    assert not dialog.encryption.customer_key_edit.isEnabled()  # the bucket's default
    _choose(dialog, Encryption.SSE_C)
    assert dialog.encryption.customer_key_edit.isEnabled()
    assert dialog.encryption.note.isVisibleTo(dialog)
    save = dialog.buttons.button(QDialogButtonBox.StandardButton.Save)

    save.click()  # no key typed, none kept
    assert "SSE-C needs the customer key" in dialog.status.text()
    mistyped = "c2hvcnQ="  # base64, but of 5 bytes
    dialog.encryption.customer_key_edit.setText(mistyped)
    save.click()
    assert "base64 of exactly 32 random bytes" in dialog.status.text()
    assert mistyped not in dialog.status.text()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert ferry_env.profiles.get("test").encryption is Encryption.BUCKET_DEFAULT

    key = os.urandom(32)
    typed = base64.b64encode(key).decode()
    dialog.encryption.customer_key_edit.setText(typed)
    save.click()
    qtbot.waitUntil(lambda: dialog.result() == QDialog.DialogCode.Accepted, timeout=10_000)
    assert ferry_env.profiles.get("test").encryption is Encryption.SSE_C
    assert ferry_env.secrets.get("test", SecretKind.SSE_CUSTOMER_KEY) == typed
    assert typed not in ferry_env.paths.profiles_file.read_text()

    # Reopened, the key is said to be kept and an untouched field keeps it.
    again = _open_settings(qtbot, ferry_env)
    assert again.encryption.kind is Encryption.SSE_C
    assert again.encryption.customer_key_edit.text() == ""
    assert "kept in the keyring" in again.encryption.customer_key_edit.placeholderText()
    again.buttons.button(QDialogButtonBox.StandardButton.Save).click()
    qtbot.waitUntil(lambda: again.result() == QDialog.DialogCode.Accepted, timeout=10_000)
    assert ferry_env.secrets.get("test", SecretKind.SSE_CUSTOMER_KEY) == typed

    report = tmp_path / "report.pdf"
    report.write_bytes(os.urandom(70_000))
    with Ferry.open(ferry_env, "test") as app:
        upload_done(app, report)
    client = weed.client()
    with pytest.raises(ClientError) as without_key:
        client.head_object(Bucket=bucket, Key="report.pdf")
    assert without_key.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    read = client.get_object(
        Bucket=bucket, Key="report.pdf", SSECustomerAlgorithm="AES256", SSECustomerKey=key
    )
    assert (
        hashlib.sha256(read["Body"].read()).digest() == hashlib.sha256(report.read_bytes()).digest()
    )


def test_test_connection_uses_the_key_typed_before_it_is_saved(
    weed_profile: Callable[..., None], qtbot: QtBot, ferry_env: Environment
) -> None:
    weed_profile()
    dialog = _open_settings(qtbot, ferry_env)
    _choose(dialog, Encryption.SSE_C)
    dialog.encryption.customer_key_edit.setText(base64.b64encode(os.urandom(32)).decode())
    dialog.destination.test_button.click()
    result = dialog.destination.test_result
    qtbot.waitUntil(lambda: "integrity" in result.toPlainText(), timeout=30_000)
    text = result.toPlainText()
    assert "✔ encryption: SSE-C" in text, text
    assert "✘" not in text, text
    # Nothing was kept by the test.
    assert ferry_env.secrets.get("test", SecretKind.SSE_CUSTOMER_KEY) is None
    assert ferry_env.profiles.get("test").encryption is Encryption.BUCKET_DEFAULT


def test_kms_key_id_only_with_sse_kms(
    weed_profile: Callable[..., None], qtbot: QtBot, ferry_env: Environment
) -> None:
    weed_profile()
    dialog = _open_settings(qtbot, ferry_env)
    _choose(dialog, Encryption.KMS)
    assert dialog.encryption.kms_key_edit.isEnabled()
    assert not dialog.encryption.customer_key_edit.isEnabled()
    dialog.encryption.kms_key_edit.setText("alias/ferry-team")
    assert dialog.profile_from_form().sse_kms_key_id == "alias/ferry-team"
    _choose(dialog, Encryption.AES256)
    assert not dialog.encryption.kms_key_edit.isEnabled()
    chosen = dialog.profile_from_form()
    assert (chosen.encryption, chosen.sse_kms_key_id) == (Encryption.AES256, None)

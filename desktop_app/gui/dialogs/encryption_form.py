"""Settings' Encryption section: what the server encrypts each object Ferry writes with.

The bucket's default (no header), SSE-S3, SSE-KMS with an optional key id, or
SSE-C under a customer key the person types here. Promises: the customer key
leaves this form only for the keyring, on save, and for a connection test;
an empty key field keeps the key the keyring holds; a typed key is checked
(the base64 of 32 bytes) before anything is saved, and what was typed is
never repeated in a message.
"""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QLineEdit

from desktop_app.core.model.errors import ConfigError
from desktop_app.core.settings.profiles import Encryption, Profile
from desktop_app.core.settings.secrets import parse_customer_key
from desktop_app.gui.widgets import accessible, fit_placeholder

_CHOICES = (
    ("The bucket's default (Ferry asks for nothing)", Encryption.BUCKET_DEFAULT),
    ("SSE-S3: keys the server manages (AES256)", Encryption.AES256),
    ("SSE-KMS: a key in AWS KMS", Encryption.KMS),
    ("SSE-C: a key of your own, kept in this computer's keyring", Encryption.SSE_C),
)

KEEP_A_COPY = (
    "Keep a copy of the customer key somewhere safe: the server does not keep it, and "
    "without it nobody (Ferry included) can read these files back."
)


class EncryptionForm(QGroupBox):
    """The encryption fields of one profile; the key field only for SSE-C."""

    def __init__(self) -> None:
        super().__init__("Encryption")
        form = QFormLayout(self)
        self.kind_combo = QComboBox()
        for label, kind in _CHOICES:
            self.kind_combo.addItem(label, kind)
        accessible(
            self.kind_combo,
            "Encryption",
            "What the server encrypts each object Ferry writes with",
        )
        self.kms_key_edit = QLineEdit()
        self.kms_key_edit.setPlaceholderText("the account's default KMS key")
        fit_placeholder(self.kms_key_edit)
        accessible(self.kms_key_edit, "KMS key ID", "A key ID or ARN; empty: the default key")
        self.customer_key_edit = QLineEdit()
        self.customer_key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.customer_key_edit.setToolTip(
            "The base64 of 32 random bytes, e.g. from `openssl rand -base64 32`."
        )
        self.note = QLabel(KEEP_A_COPY)
        self.note.setWordWrap(True)
        form.addRow("En&cryption", self.kind_combo)
        form.addRow("&KMS key ID", self.kms_key_edit)
        form.addRow("Customer ke&y", self.customer_key_edit)
        form.addRow(self.note)
        self._key_stored = False
        self.kind_combo.currentIndexChanged.connect(self._show_fields)
        self._show_fields()

    @property
    def kind(self) -> Encryption:
        chosen = self.kind_combo.currentData()
        assert isinstance(chosen, Encryption)
        return chosen

    def show_profile(self, profile: Profile, *, key_stored: bool) -> None:
        """The profile's encryption; ``key_stored``: the keyring holds its customer key."""
        self._key_stored = key_stored
        kinds = [kind for _label, kind in _CHOICES]
        self.kind_combo.setCurrentIndex(kinds.index(profile.encryption))
        self.kms_key_edit.setText(profile.sse_kms_key_id or "")
        self.customer_key_edit.clear()
        self._show_fields()

    def _show_fields(self) -> None:
        sse_c = self.kind is Encryption.SSE_C
        self.kms_key_edit.setEnabled(self.kind is Encryption.KMS)
        self.customer_key_edit.setEnabled(sse_c)
        self.note.setVisible(sse_c)
        placeholder = (
            "unchanged (kept in the keyring)"
            if self._key_stored
            else "none stored: paste the key to keep it in the keyring"
        )
        self.customer_key_edit.setPlaceholderText(placeholder if sse_c else "")
        self.customer_key_edit.setAccessibleName("Customer key")
        self.customer_key_edit.setAccessibleDescription(f"The SSE-C customer key: {placeholder}")
        fit_placeholder(self.customer_key_edit)

    def apply(self, profile: Profile) -> Profile:
        """The profile with this form's encryption; not validated."""
        kms_key = self.kms_key_edit.text().strip() if self.kind is Encryption.KMS else ""
        return dataclasses.replace(profile, sse=self.kind.value, sse_kms_key_id=kms_key or None)

    def typed_customer_key(self) -> str:
        """The customer key typed for SSE-C, checked ("": none typed, keep the stored one).

        ConfigError for a key that is not the base64 of 32 bytes, and for SSE-C
        with no key typed and none in the keyring.
        """
        if self.kind is not Encryption.SSE_C:
            return ""
        typed = self.customer_key_edit.text().strip()
        if typed:
            parse_customer_key(typed)
            return typed
        if not self._key_stored:
            raise ConfigError(
                "SSE-C needs the customer key: paste it in the Customer key field (the base64 "
                "of 32 random bytes). It is kept in the keyring, never in the profile file.",
                title="No customer key",
            )
        return ""

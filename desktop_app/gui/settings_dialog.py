"""Settings: edit a profile's destination and how Ferry sends and checks.

Profiles are read and written on a worker thread (the GUI thread does no I/O);
the secret key goes to the keyring only when typed, and an empty secret field
keeps the stored one. A value the person did not touch is written back exactly
as it was, even when the form shows it rounded (a part size of 7.5 MiB shown
as 8 stays 7.5). Settings of the profile in use apply from Ferry's next start:
the running engine keeps its pools and limits until then, and the dialog says
so.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.app import Environment
from desktop_app.core.config import MIB, Profile
from desktop_app.core.errors import ConfigError, FerryError
from desktop_app.core.keys import SecretKind
from desktop_app.gui.connection_test import ConnectionTester

HOUR = 3600
DAY = 24 * HOUR
MB = 1_000_000
NEW_PROFILE = "＋ New profile…"


class _ProfileIO(QObject):
    """Carries results of the worker thread back to the GUI thread."""

    loaded = Signal(list, str)  # list[Profile], default profile name ("" if none)
    saved = Signal(str)  # name of the saved profile
    failed = Signal(str)  # plain message


def _in_thread(work: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=work, name="ferry-settings-io", daemon=True)
    thread.start()
    return thread


class _ScaledSpin:
    """A spin box showing a stored value in bigger units (MiB, hours, days)."""

    def __init__(self, spin: QSpinBox | QDoubleSpinBox, unit: int) -> None:
        self.spin = spin
        self.unit = unit
        self._stored = 0
        self._shown = 0.0

    def show(self, stored: int) -> None:
        self._stored = stored
        shown = stored / self.unit
        if isinstance(self.spin, QSpinBox):
            self.spin.setValue(round(shown))
        else:
            self.spin.setValue(shown)
        self._shown = self.spin.value()  # rounded to what the box can show

    def value(self) -> int:
        # Untouched: give back the stored value, not its rounded display.
        if self.spin.value() == self._shown:
            return self._stored
        return round(self.spin.value() * self.unit)


class SettingsDialog(QDialog):
    def __init__(
        self, env: Environment, active_profile: str | None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.env = env
        self.active_profile = active_profile
        self.profiles: dict[str, Profile] = {}
        self.default_name = ""
        self._showing_sandbox = False
        self.saved_name: str | None = None
        self.setWindowTitle("Ferry settings")
        self._io = _ProfileIO(self)
        self._io.loaded.connect(self._on_loaded)
        self._io.saved.connect(self._on_saved)
        self._io.failed.connect(self._on_failed)
        self._threads: list[threading.Thread] = []

        layout = QVBoxLayout(self)
        chooser = QHBoxLayout()
        self.profile_combo = QComboBox()
        self.profile_combo.currentTextChanged.connect(self._show_profile)
        profile_label = QLabel("&Profile")
        profile_label.setBuddy(self.profile_combo)
        chooser.addWidget(profile_label)
        chooser.addWidget(self.profile_combo, 1)
        layout.addLayout(chooser)

        self.destination_box = QGroupBox("Destination")
        form = QFormLayout(self.destination_box)
        self.name_edit = QLineEdit()
        self.endpoint_edit = QLineEdit()
        self.endpoint_edit.setPlaceholderText("https://s3.example.com (empty for AWS S3)")
        self.region_edit = QLineEdit()
        self.bucket_edit = QLineEdit()
        self.prefix_edit = QLineEdit()
        self.access_key_edit = QLineEdit()
        self.secret_edit = QLineEdit()
        self.secret_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret_edit.setPlaceholderText("unchanged (kept in the keyring)")
        self.catalog_edit = QLineEdit()
        self.catalog_edit.setPlaceholderText("empty: a catalog file on this computer")
        for label, widget in (
            ("&Name", self.name_edit),
            ("&Endpoint", self.endpoint_edit),
            ("&Region", self.region_edit),
            ("B&ucket", self.bucket_edit),
            ("Key p&refix", self.prefix_edit),
            ("&Access key ID", self.access_key_edit),
            ("&Secret key", self.secret_edit),
            ("Ca&talog URL", self.catalog_edit),
        ):
            form.addRow(label, widget)
        self.test_button = QPushButton("Test co&nnection")
        self.test_button.clicked.connect(self.test_connection)
        self.test_result = QLabel("")
        self.test_result.setWordWrap(True)
        form.addRow(self.test_button, self.test_result)
        layout.addWidget(self.destination_box)

        sending = QGroupBox("Sending")
        form = QFormLayout(sending)
        self.concurrency_spin = QSpinBox()
        self.concurrency_spin.setRange(1, 64)
        self.concurrency_spin.setToolTip("How many files are sent at the same time.")
        part_spin = QSpinBox()
        part_spin.setRange(5, 5 * 1024)
        part_spin.setSuffix(" MiB")
        part_spin.setToolTip("Big files are sent in parts of this size (doubled when needed).")
        self.part_size = _ScaledSpin(part_spin, MIB)
        bandwidth_spin = QDoubleSpinBox()
        bandwidth_spin.setRange(0, 100_000)
        bandwidth_spin.setDecimals(1)
        bandwidth_spin.setSuffix(" MB/s")
        bandwidth_spin.setSpecialValueText("No limit")
        bandwidth_spin.setToolTip("Shared by all transfers; 0 means no limit.")
        self.bandwidth = _ScaledSpin(bandwidth_spin, MB)
        self.conflict_combo = QComboBox()
        self.conflict_combo.addItem("Upload it as a new version, “name (2).ext”", "suffix")
        self.conflict_combo.addItem("Replace the object in the bucket", "overwrite")
        form.addRow("&Files at once", self.concurrency_spin)
        form.addRow("&Part size", part_spin)
        form.addRow("&Bandwidth limit", bandwidth_spin)
        form.addRow("A watched file is re&written", self.conflict_combo)
        layout.addWidget(sending)

        checking = QGroupBox("Checking bucket and catalog")
        form = QFormLayout(checking)
        interval_spin = QSpinBox()
        interval_spin.setRange(0, 24 * 30)
        interval_spin.setSuffix(" h")
        interval_spin.setSpecialValueText("Daily while the window is open")
        self.check_interval = _ScaledSpin(interval_spin, HOUR)
        grace_spin = QSpinBox()
        grace_spin.setRange(0, 24 * 365)
        grace_spin.setSuffix(" h")
        grace_spin.setToolTip("Differences younger than this may be uploads still in progress.")
        self.grace = _ScaledSpin(grace_spin, HOUR)
        retention_spin = QSpinBox()
        retention_spin.setRange(0, 3650)
        retention_spin.setSuffix(" days")
        retention_spin.setSpecialValueText("Remove at once")
        retention_spin.setToolTip("How long a deleted file's object may stay in the bucket.")
        self.retention = _ScaledSpin(retention_spin, DAY)
        form.addRow("Check &every", interval_spin)
        form.addRow("Leave alone if &younger than", grace_spin)
        form.addRow("Keep objects of &deleted files", retention_spin)
        layout.addWidget(checking)

        self.default_check = QCheckBox("&Use this profile when Ferry starts")
        layout.addWidget(self.default_check)
        self.status = QLabel("Loading profiles…")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.tester = ConnectionTester(self)
        self.tester.finished.connect(self._show_test_result)
        self._editable: list[QWidget] = [
            self.profile_combo,
            sending,
            checking,
            self.default_check,
            self.buttons.button(QDialogButtonBox.StandardButton.Save),
        ]
        self._set_editable(False)
        self._threads.append(_in_thread(self._load))

    # -- loading ------------------------------------------------------------------

    def _load(self) -> None:
        try:
            profiles = self.env.profiles.profiles()
            default = self.env.profiles.default_name() or ""
        except FerryError as exc:
            self._io.failed.emit(exc.message)
            return
        self._io.loaded.emit(profiles, default)

    def _on_loaded(self, profiles: list[Profile], default: str) -> None:
        self.profiles = {p.name: p for p in profiles}
        self.default_name = default
        self.profile_combo.blockSignals(True)
        self.profile_combo.clear()
        self.profile_combo.addItems([*self.profiles, NEW_PROFILE])
        self.profile_combo.blockSignals(False)
        wanted = self.active_profile or default
        index = self.profile_combo.findText(wanted) if wanted else 0
        self.profile_combo.setCurrentIndex(max(index, 0))
        self._show_profile(self.profile_combo.currentText())
        self._set_editable(True)

    def _set_editable(self, editable: bool) -> None:
        for widget in self._editable:
            widget.setEnabled(editable)
        # The sandbox's address is chosen at each start; only its tuning is editable.
        self.destination_box.setEnabled(editable and not self._showing_sandbox)

    def _show_profile(self, name: str) -> None:
        is_new = name == NEW_PROFILE
        profile = self.profiles.get(name) or Profile(name="", bucket="", catalog_url="")
        self.name_edit.setText(profile.name)
        self.name_edit.setReadOnly(not is_new)
        self.endpoint_edit.setText(profile.endpoint_url or "")
        self.region_edit.setText(profile.region)
        self.bucket_edit.setText(profile.bucket)
        self.prefix_edit.setText(profile.prefix)
        self.access_key_edit.setText(profile.access_key_id or "")
        self.secret_edit.clear()
        self.catalog_edit.setText(profile.catalog_url)
        self.concurrency_spin.setValue(profile.concurrency)
        self.part_size.show(profile.part_size)
        self.bandwidth.show(profile.bandwidth_limit)
        self.conflict_combo.setCurrentIndex(
            max(self.conflict_combo.findData(profile.watch_key_conflict), 0)
        )
        self.check_interval.show(profile.check_interval)
        self.grace.show(profile.grace_seconds)
        self.retention.show(profile.retention_seconds)
        self.default_check.setChecked(bool(name) and name == self.default_name)
        self._showing_sandbox = profile.sandbox
        self.destination_box.setEnabled(self.profile_combo.isEnabled() and not profile.sandbox)
        self.test_result.clear()
        if profile.sandbox:
            self.status.setText("The local sandbox's address is set when it starts.")
        else:
            self.status.clear()

    # -- saving -------------------------------------------------------------------

    def profile_from_form(self) -> Profile:
        name = self.name_edit.text().strip()
        base = self.profiles.get(name) if self.profile_combo.currentText() != NEW_PROFILE else None
        if base is None and name in self.profiles:
            raise ConfigError(f"A profile named {name!r} exists already; choose another name.")
        template = base or Profile(name=name, bucket="", catalog_url="")
        profile = dataclasses.replace(
            template,
            name=name,
            bucket=self.bucket_edit.text().strip(),
            catalog_url=self.catalog_edit.text().strip()
            or self.env.paths.default_catalog_url(name),
            endpoint_url=self.endpoint_edit.text().strip() or None,
            region=self.region_edit.text().strip() or "us-east-1",
            prefix=self.prefix_edit.text().strip(),
            access_key_id=self.access_key_edit.text().strip() or None,
            concurrency=self.concurrency_spin.value(),
            part_size=self.part_size.value(),
            bandwidth_limit=self.bandwidth.value(),
            watch_key_conflict=str(self.conflict_combo.currentData()),
            check_interval=self.check_interval.value(),
            grace_seconds=self.grace.value(),
            retention_seconds=self.retention.value(),
        )
        if profile.memory_budget < profile.part_size:
            # The budget must hold two parts in flight so one can be read while one is sent.
            profile = dataclasses.replace(profile, memory_budget=2 * profile.part_size)
        profile.validate()
        return profile

    def test_connection(self) -> None:
        try:
            profile = self.profile_from_form()
        except FerryError as exc:
            self.test_result.setText(exc.message)
            return
        self.test_button.setEnabled(False)
        self.test_result.setText("Testing…")
        self.tester.start(self.env, profile, self.secret_edit.text())

    def _show_test_result(self, text: str) -> None:
        self.test_button.setEnabled(True)
        self.test_result.setText(text)

    def save(self) -> None:
        try:
            profile = self.profile_from_form()
        except FerryError as exc:
            self.status.setText(exc.message)
            return
        secret = self.secret_edit.text()
        make_default = self.default_check.isChecked()
        self._set_editable(False)
        self.status.setText("Saving…")

        def work() -> None:
            try:
                if secret:
                    self.env.secrets.set(profile.name, SecretKind.S3_SECRET_KEY, secret)
                self.env.profiles.save(profile, make_default=make_default)
            except FerryError as exc:
                self._io.failed.emit(exc.message)
                return
            self._io.saved.emit(profile.name)

        self._threads.append(_in_thread(work))

    def _on_saved(self, name: str) -> None:
        self.saved_name = name
        self.accept()

    def _on_failed(self, message: str) -> None:
        self.status.setText(message)
        self._set_editable(bool(self.profiles))

    def done(self, result: int) -> None:
        self.tester.wait()
        for thread in self._threads:
            thread.join(timeout=30)
        super().done(result)

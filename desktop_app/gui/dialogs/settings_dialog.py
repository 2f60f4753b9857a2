"""Settings: edit a profile's destination and how Ferry sends and checks.

Profiles are read and written on a worker thread (the GUI thread does no I/O);
the secret key goes to the keyring only when typed, and an empty secret field
keeps the stored one. A value the person did not touch is written back exactly
as it was, even when the form shows it rounded (a part size of 7.5 MiB shown
as 8 stays 7.5). The dialog only saves; the window then offers to apply the
settings of the profile in use by restarting its engine process.

Under the destination it says what the profile's server does about other
programs' objects at Ferry's keys (refuses writes over them, or not: Ferry
then looks before and after each write), as Ferry found out at the first
upload or a connection test, read from the data dir off the GUI thread.

The sections scroll between the profile chooser and the Save/Cancel row, so the
dialog fits a 1366×768 laptop screen (at most 740 px tall, less on a smaller
screen) and its buttons are always in reach.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.model.errors import ConfigError, FerryError
from desktop_app.core.model.sizes import MIB
from desktop_app.core.runtime.diagnosis import known_protection
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.runtime.sandbox_profile import sandbox_access
from desktop_app.core.settings.profiles import Profile
from desktop_app.core.settings.relay_options import describe_nats_url
from desktop_app.core.settings.secrets import SecretKind
from desktop_app.core.transfers.protection import LearntProtection
from desktop_app.gui.dialogs.destination_form import DestinationForm
from desktop_app.gui.dialogs.encryption_form import EncryptionForm
from desktop_app.gui.dialogs.profile_facts import (
    SecretsKept,
    protection_text,
    read_secrets_kept,
    secret_placeholder,
)
from desktop_app.gui.dialogs.scaled_spin import scaled_spin
from desktop_app.gui.widgets import OutputBox, accessible, fit_placeholder, fit_to_screen

HOUR = 3600
DAY = 24 * HOUR
MB = 1_000_000
NEW_PROFILE = "＋ New profile…"
MIN_WIDTH = 640  # the checks' results and the relay's state read as lines, not a column


class _ProfileIO(QObject):
    """Carries results of the worker thread back to the GUI thread."""

    # list[Profile], default profile name ("" if none), what is known of their secrets
    loaded = Signal(list, str, object)  # ..., SecretsKept
    # {profile name: LearntProtection | None}: what each one's server was found to do
    protections = Signal(object)
    saved = Signal(str)  # name of the saved profile
    failed = Signal(str)  # plain message


def _in_thread(work: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=work, name="ferry-settings-io", daemon=True)
    thread.start()
    return thread


class _Sections(QScrollArea):
    """Scrolls the sections vertically; asks for their full width, scroll bar included."""

    def __init__(self, content: QWidget) -> None:
        super().__init__()
        self.content = content
        self.setWidget(content)
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        accessible(self, "Settings of the profile", "Every setting of the chosen profile")

    def sizeHint(self) -> QSize:
        content = self.content.sizeHint()
        return QSize(
            content.width() + self.verticalScrollBar().sizeHint().width(), content.height()
        )

    def minimumSizeHint(self) -> QSize:
        return QSize(self.sizeHint().width(), 120)


class SettingsDialog(QDialog):
    def __init__(
        self, env: Environment, active_profile: str | None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.env = env
        self.active_profile = active_profile
        self.profiles: dict[str, Profile] = {}
        self.default_name = ""
        self.secrets_kept = SecretsKept(keyring_usable=False, stored=frozenset(), unknown=True)
        self._showing_sandbox = False
        self.saved_name: str | None = None
        self.setWindowTitle("Ferry settings")
        self._io = _ProfileIO(self)
        self._io.loaded.connect(self._on_loaded)
        self._io.protections.connect(self._on_protections)
        self._protections: dict[str, LearntProtection | None] = {}
        self._io.saved.connect(self._on_saved)
        self._io.failed.connect(self._on_failed)
        self._threads: list[threading.Thread] = []

        layout = QVBoxLayout(self)
        chooser = QHBoxLayout()
        self.profile_combo = QComboBox()
        self.profile_combo.currentTextChanged.connect(self._show_profile)
        profile_label = QLabel("&Profile")
        profile_label.setBuddy(self.profile_combo)
        accessible(
            self.profile_combo, "Profile", "Whose settings are shown; the last item adds one"
        )
        chooser.addWidget(profile_label)
        chooser.addWidget(self.profile_combo, 1)
        layout.addLayout(chooser)
        content = QWidget()
        sections = QVBoxLayout(content)
        sections.setContentsMargins(0, 0, 0, 0)

        self.destination = DestinationForm(env, "Destination")
        self.destination.profile_for_test = self.profile_from_form
        sections.addWidget(self.destination)
        self.protection = QLabel()
        self.protection.setWordWrap(True)
        self.protection.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.protection.setAccessibleName("Protection of other programs' objects")
        sections.addWidget(self.protection)
        # A connection test finds it out (and keeps it): said here at once.
        self.destination.tester.finished.connect(self._reload_protection)
        # Lines to copy: all in sight, however they wrap (the last was cut).
        self.sandbox_access = OutputBox(7, whole=True)
        self.sandbox_access.setToolTip("Copy these to reach the sandbox with aws-cli or rclone")
        self.sandbox_access.setAccessibleName("How to reach the sandbox")
        self.sandbox_access.hide()
        sections.addWidget(self.sandbox_access)
        self.encryption = EncryptionForm()
        self.destination.typed_customer_key = self.encryption.typed_customer_key
        sections.addWidget(self.encryption)

        sending = QGroupBox("Sending")
        form = QFormLayout(sending)
        self.concurrency_spin = QSpinBox()
        self.concurrency_spin.setRange(1, 64)
        self.concurrency_spin.setToolTip(
            "How many large files are sent at the same time, and how many parts of them. "
            "Small files (under one part) go at least this many at once, up to 64 while "
            "that is faster, fewer if the server asks Ferry to slow down."
        )
        self.part_size = scaled_spin(
            MIB,
            5,
            5 * 1024,
            " MiB",
            "Big files are sent in parts of this size (doubled when needed).",
        )
        self.bandwidth = scaled_spin(
            MB,
            0,
            100_000,
            " MB/s",
            "Shared by all transfers; 0 means no limit.",
            special="No limit",
            decimals=1,
        )
        self.schedule_edit = QLineEdit()
        self.schedule_edit.setPlaceholderText("e.g. 08:00-18:00 2MiB/s, 18:00-08:00 off")
        fit_placeholder(self.schedule_edit)
        self.schedule_edit.setToolTip(
            "Rates by the time of day (local time); 'off' is no limit; hours no range covers "
            "use the bandwidth limit above. Running uploads follow it as the clock moves."
        )
        self.metered_check = QCheckBox("Pause uploads while on a &metered connection")
        self.metered_check.setToolTip(
            "A phone hotspot or a capped plan (as NetworkManager reports it): uploads wait, "
            "and go on by themselves when the connection is not metered."
        )
        self.awake_check = QCheckBox("Keep the computer awake while uploadin&g")
        self.awake_check.setToolTip("Released when nothing has been uploading for 10 s.")
        self.conflict_combo = QComboBox()
        self.conflict_combo.addItem("Upload it as a new version, “name (2).ext”", "suffix")
        self.conflict_combo.addItem("Replace the object in the bucket", "overwrite")
        accessible(
            self.conflict_combo,
            "A watched file is rewritten",
            "What a file saved again in a watched folder after its upload becomes",
        )
        form.addRow("&Files at once", self.concurrency_spin)
        form.addRow("Part si&ze", self.part_size.spin)
        form.addRow("&Bandwidth limit", self.bandwidth.spin)
        form.addRow("Bandwidth by the cloc&k", self.schedule_edit)
        form.addRow("", self.metered_check)
        form.addRow("", self.awake_check)
        form.addRow("A watched file is re&written", self.conflict_combo)
        sections.addWidget(sending)

        checking = QGroupBox("Checking bucket and catalog")
        form = QFormLayout(checking)
        self.check_interval = scaled_spin(
            HOUR,
            0,
            24 * 30,
            " h",
            "How often the window compares bucket and catalog.",
            special="Daily while the window is open",
        )
        self.grace = scaled_spin(
            HOUR, 0, 24 * 365, " h", "Differences younger than this may be uploads in progress."
        )
        self.retention = scaled_spin(
            DAY,
            0,
            3650,
            " days",
            "How long a deleted file's object may stay in the bucket.",
            special="Remove at once",
        )
        form.addRow("Check e&very", self.check_interval.spin)
        form.addRow("Leave alone if &younger than", self.grace.spin)
        form.addRow("Keep objects of &deleted files", self.retention.spin)
        sections.addWidget(checking)

        events = QGroupBox("Events for other systems")
        form = QFormLayout(events)
        self.nats_edit = QLineEdit()
        self.nats_edit.setPlaceholderText("none: no relay configured")
        fit_placeholder(self.nats_edit)
        self.nats_edit.setToolTip(
            "The NATS JetStream server `ferry relay` publishes this catalog's events to "
            "(file.uploaded, file.deleted, file.repaired). No password here: give one in "
            "FERRY_NATS_URL where the relay runs."
        )
        self.stream_edit = QLineEdit()
        self.subject_prefix_edit = QLineEdit()
        self.relay_state = QLabel()
        self.relay_state.setWordWrap(True)
        self.relay_state.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.stream_edit.setAccessibleDescription("The JetStream stream events go to")
        self.subject_prefix_edit.setAccessibleDescription("Subjects are PREFIX.BUCKET.EVENT")
        form.addRow("&NATS server", self.nats_edit)
        form.addRow("S&tream", self.stream_edit)
        form.addRow("Subject pre&fix", self.subject_prefix_edit)
        form.addRow(self.relay_state)
        for edit in (
            self.nats_edit,
            self.stream_edit,
            self.subject_prefix_edit,
            self.destination.name_edit,
        ):
            edit.textChanged.connect(self._show_relay_state)
        sections.addWidget(events)

        self.default_check = QCheckBox("Start with this profi&le")
        self.default_check.setToolTip("Ferry opens this profile when it starts")
        sections.addWidget(self.default_check)
        sections.addStretch(1)
        self.sections = _Sections(content)
        layout.addWidget(self.sections, 1)
        self.status = QLabel("Loading profiles…")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setToolTip(
            "Save this profile's settings"
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setToolTip(
            "Close without saving"
        )
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._editable: list[QWidget] = [
            self.profile_combo,
            sending,
            checking,
            events,
            self.default_check,
            self.buttons.button(QDialogButtonBox.StandardButton.Save),
        ]
        self._set_editable(False)
        self._threads.append(_in_thread(self._load))

    def setVisible(self, visible: bool) -> None:
        # Sized and placed before the window system has the window: moved once it
        # had, under icewm the dialog's title bar stayed above the screen's top.
        if visible and not self.isVisible():
            fit_to_screen(self, min_width=MIN_WIDTH)  # the sections scroll in what is left
        super().setVisible(visible)

    # -- loading ------------------------------------------------------------------

    def _load(self) -> None:
        try:
            profiles = self.env.profiles.profiles()
            default = self.env.profiles.default_name() or ""
        except FerryError as exc:
            self._io.failed.emit(exc.message)
            return
        self._io.loaded.emit(profiles, default, read_secrets_kept(self.env, profiles))
        self._io.protections.emit({p.name: known_protection(self.env, p) for p in profiles})

    def _on_protections(self, found: dict[str, LearntProtection | None]) -> None:
        self._protections.update(found)
        self.protection.setText(
            protection_text(self._protections.get(self.profile_combo.currentText()))
        )

    def _reload_protection(self, _results: str) -> None:
        try:
            profile = self.profile_from_form()
        except FerryError:
            return
        name = self.profile_combo.currentText()

        def work() -> None:
            self._io.protections.emit({name: known_protection(self.env, profile)})

        self._threads.append(_in_thread(work))

    def _on_loaded(self, profiles: list[Profile], default: str, kept: SecretsKept) -> None:
        self.profiles = {p.name: p for p in profiles}
        self.default_name = default
        self.secrets_kept = kept
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
        self.destination.setEnabled(editable and not self._showing_sandbox)
        self.encryption.setEnabled(editable and not self._showing_sandbox)

    def _show_profile(self, name: str) -> None:
        is_new = name == NEW_PROFILE
        profile = self.profiles.get(name) or Profile(name="", bucket="", catalog_url="")
        self.destination.show_profile(profile)
        self.destination.say_of_secret(*secret_placeholder(profile, is_new, self.secrets_kept))
        self.encryption.show_profile(
            profile, key_stored=profile.name in self.secrets_kept.customer_keys
        )
        self.destination.name_edit.setReadOnly(not is_new)
        self.concurrency_spin.setValue(profile.concurrency)
        self.part_size.show(profile.part_size)
        self.bandwidth.show(profile.bandwidth_limit)
        self.schedule_edit.setText(profile.bandwidth_schedule)
        self.metered_check.setChecked(profile.pause_on_metered)
        self.awake_check.setChecked(profile.keep_awake)
        self.conflict_combo.setCurrentIndex(
            max(self.conflict_combo.findData(profile.watch_key_conflict), 0)
        )
        self.check_interval.show(profile.check_interval)
        self.grace.show(profile.grace_seconds)
        self.retention.show(profile.retention_seconds)
        self.nats_edit.setText(profile.relay_nats_url or "")
        self.stream_edit.setText(profile.relay_stream)
        self.subject_prefix_edit.setText(profile.relay_subject_prefix)
        self.default_check.setChecked(bool(name) and name == self.default_name)
        self.protection.setText(protection_text(self._protections.get(name)))
        self._showing_sandbox = profile.sandbox
        self._set_editable(self.profile_combo.isEnabled())
        self.sandbox_access.setVisible(profile.sandbox)
        if profile.sandbox:
            self.sandbox_access.setPlainText("\n".join(sandbox_access(profile).lines()))
            self.status.setText(
                "The local sandbox keeps its address while the port is free; other programs "
                "reach it with the lines above (ferry sandbox --show prints them too)."
            )
        else:
            self.status.clear()

    def _show_relay_state(self) -> None:
        """Whether this profile has a relay configured, in words."""
        address = self.nats_edit.text().strip()
        name = self.destination.name_edit.text().strip() or "NAME"
        if not address:
            self.relay_state.setText(
                "No relay configured: file events wait in the catalog's outbox until "
                f"`ferry relay --profile {name} --nats URL` publishes them."
            )
            return
        prefix = self.subject_prefix_edit.text().strip() or "ferry"
        self.relay_state.setText(
            f"Relay configured: `ferry relay --profile {name}` publishes to stream "
            f"{self.stream_edit.text().strip() or 'FERRY'} at {describe_nats_url(address)}, "
            f"subjects {prefix}.BUCKET.file.uploaded and the like."
        )

    # -- saving -------------------------------------------------------------------

    def profile_from_form(self) -> Profile:
        name = self.destination.name_edit.text().strip()
        base = self.profiles.get(name) if self.profile_combo.currentText() != NEW_PROFILE else None
        if base is None and name in self.profiles:
            raise ConfigError(f"A profile named {name!r} exists already; choose another name.")
        profile = dataclasses.replace(
            self.encryption.apply(self.destination.apply_to_template(base)),
            concurrency=self.concurrency_spin.value(),
            part_size=self.part_size.value(),
            bandwidth_limit=self.bandwidth.value(),
            bandwidth_schedule=self.schedule_edit.text().strip(),
            pause_on_metered=self.metered_check.isChecked(),
            keep_awake=self.awake_check.isChecked(),
            watch_key_conflict=str(self.conflict_combo.currentData()),
            check_interval=self.check_interval.value(),
            grace_seconds=self.grace.value(),
            retention_seconds=self.retention.value(),
            relay_nats_url=self.nats_edit.text().strip() or None,
            relay_stream=self.stream_edit.text().strip() or "FERRY",
            relay_subject_prefix=self.subject_prefix_edit.text().strip() or "ferry",
        )
        if profile.memory_budget < profile.part_size:
            # The budget must hold two parts in flight so one can be read while one is sent.
            profile = dataclasses.replace(profile, memory_budget=2 * profile.part_size)
        profile.validate()
        return profile

    def save(self) -> None:
        try:
            profile = self.profile_from_form()
            customer_key = self.encryption.typed_customer_key()
        except FerryError as exc:
            self.status.setText(exc.message)
            return
        secret = self.destination.secret_edit.text()
        make_default = self.default_check.isChecked()
        self._set_editable(False)
        self.status.setText("Saving…")

        def work() -> None:
            try:
                if secret:
                    self.env.secrets.set(profile.name, SecretKind.S3_SECRET_KEY, secret)
                if customer_key:
                    self.env.secrets.set(profile.name, SecretKind.SSE_CUSTOMER_KEY, customer_key)
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
        self.destination.tester.wait()
        for thread in self._threads:
            thread.join(timeout=30)
        super().done(result)

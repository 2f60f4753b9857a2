""" "Test connection" for a profile being edited, run off the GUI thread.

Used by the first-run dialog and Settings: the same checks as
``ferry profile test`` (endpoint, credentials, bucket, write, catalog). A secret
typed into the form is used for the test only; nothing is stored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFormLayout, QGroupBox, QLineEdit, QPushButton
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from desktop_app.core.model.errors import FerryError
from desktop_app.core.runtime.diagnosis import CheckResult, diagnose_profile
from desktop_app.core.runtime.environment import Environment
from desktop_app.core.settings.profiles import Profile
from desktop_app.core.settings.secrets import KeyringBackend, SecretKind, SecretStore
from desktop_app.gui.widgets import OutputBox, accessible, fit_placeholder

SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class _TypedSecrets:
    """A keyring that answers with the secrets typed into the form and asks the real one
    (``kept``: None, none) for the rest; ``used`` names the typed ones the checks took."""

    priority = 1

    def __init__(self, typed: dict[SecretKind, str], kept: KeyringBackend | None) -> None:
        self._typed = {kind: value for kind, value in typed.items() if value}
        self._kept = kept
        self.used: set[SecretKind] = set()

    def get_password(self, service: str, username: str) -> str | None:
        for kind, value in self._typed.items():
            if username.endswith(kind.value):
                self.used.add(kind)
                return value
        return None if self._kept is None else self._kept.get_password(service, username)

    def set_password(self, *_args: str) -> None:
        pass

    def delete_password(self, *_args: str) -> None:
        pass


def describe(results: list[CheckResult]) -> str:
    return "\n".join(f"{'✔' if r.ok else '✘'} {r.name}: {r.detail}" for r in results)


def typed_secret_result(store: SecretStore) -> CheckResult:
    """Where the credentials of a test with a typed secret came from: the form, not a
    keyring; and whether a keyring can keep that secret when the profile is saved."""
    if store.usable:
        return CheckResult(
            "credentials", True, "the secret key typed here (kept in the keyring when saved)"
        )
    return CheckResult(
        "credentials",
        False,
        f"the secret key typed here; no usable keyring can keep it ({store.describe()}), "
        "so it cannot be saved. Leave it empty and set AWS_SECRET_ACCESS_KEY, or use "
        "~/.aws/credentials.",
    )


def sqlite_file(catalog_url: str) -> Path | None:
    """The file of an SQLite catalog URL (None: another database, or no file)."""
    try:
        parsed = make_url(catalog_url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def _not_there(file: Path) -> list[Path]:
    """The file and the folders above it that do not exist yet, the file first."""
    missing = []
    for path in (file, *file.parents):
        if path.exists():
            break
        missing.append(path)
    return missing


def remove_created(paths: list[Path]) -> None:
    """Remove what a test created: files (with SQLite's side files), then empty folders."""
    for path in paths:
        for name in (path, *(path.with_name(path.name + s) for s in SQLITE_SIDE_FILES)):
            if not name.is_dir():
                name.unlink(missing_ok=True)
    for path in paths:
        if path.is_dir():
            with contextlib.suppress(OSError):
                path.rmdir()  # only when empty: never what someone else put there


class ConnectionTester(QObject):
    finished = Signal(str)  # one line per check, ✔ or ✘

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: threading.Thread | None = None
        # Files and folders the checks created (an SQLite catalog opened to test
        # it): the first-run dialog removes them when it is cancelled.
        self.created: list[Path] = []

    def start(
        self, env: Environment, profile: Profile, typed_secret: str, typed_customer_key: str = ""
    ) -> None:
        """Test in the background; an empty typed secret or key means the stored one.

        A typed S3 secret stands alone (the keyring is not asked for it or anything
        else, as before it is saved); a typed customer key only replaces the kept one.
        """
        store = env.secrets
        typed_secrets = {
            SecretKind.S3_SECRET_KEY: typed_secret,
            SecretKind.SSE_CUSTOMER_KEY: typed_customer_key,
        }
        catalog_file = sqlite_file(profile.catalog_url)

        def run() -> None:
            # Here, not on the GUI thread: finding the system keyring may ask D-Bus.
            typed = _TypedSecrets(typed_secrets, None if typed_secret else store.backend)
            tested = env
            if typed_secret or typed_customer_key:
                tested = Environment(env.paths, env.environ, SecretStore(typed))
            fresh = _not_there(catalog_file) if catalog_file else []
            try:
                results = diagnose_profile(tested, profile)
            except FerryError as exc:
                results = [CheckResult("profile", False, exc.message)]
            finally:
                self.created.extend(p for p in fresh if p.exists() and p not in self.created)
            if SecretKind.S3_SECRET_KEY in typed.used:
                results = [
                    typed_secret_result(store) if r.name == "credentials" else r for r in results
                ]
            self.finished.emit(describe(results))

        self._thread = threading.Thread(target=run, name="ferry-test-connection", daemon=True)
        self._thread.start()

    def wait(self, timeout: float = 30) -> None:
        if self._thread is not None:
            self._thread.join(timeout=timeout)


class DestinationForm(QGroupBox):
    """Name, endpoint, region, bucket, prefix, access key, secret or AWS profile, proxy,
    catalog URL."""

    def __init__(self, env: Environment, title: str, *, result_lines: int = 7) -> None:
        super().__init__(title)
        self.env = env
        self.profile_for_test: Callable[[], Profile] = self.apply_to_template
        # The SSE-C key typed beside this form (Settings' Encryption), for a test.
        self.typed_customer_key: Callable[[], str] = lambda: ""
        form = QFormLayout(self)
        self.name_edit = QLineEdit()
        self.endpoint_edit = QLineEdit()
        self.endpoint_edit.setPlaceholderText("https://s3.example.com (empty for AWS S3)")
        self.region_edit = QLineEdit("us-east-1")
        self.bucket_edit = QLineEdit()
        self.prefix_edit = QLineEdit()
        self.access_key_edit = QLineEdit()
        self.secret_edit = QLineEdit()
        self.secret_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.aws_profile_edit = QLineEdit()
        self.aws_profile_edit.setPlaceholderText("instead of a key: a profile of ~/.aws/config")
        self.aws_profile_edit.setToolTip(
            "Company sign-in: an AWS profile using IAM Identity Center (SSO), a role or a "
            "credential_process. Its credentials come from the AWS configuration; `ferry "
            "profile login` signs in when they have expired."
        )
        self.proxy_edit = QLineEdit()
        self.proxy_edit.setPlaceholderText("empty: HTTPS_PROXY from the environment, if any")
        self.catalog_edit = QLineEdit()
        self.catalog_edit.setPlaceholderText("empty: a catalog file on this computer")
        for widget, description in (
            (self.name_edit, "The name this destination is saved under, e.g. work"),
            (self.endpoint_edit, "The S3 server's address; empty for AWS S3"),
            (self.region_edit, "The bucket's region, e.g. eu-central-1"),
            (self.bucket_edit, "The bucket files are uploaded to"),
            (self.prefix_edit, "Put before every key, e.g. scans/; may be empty"),
            (self.access_key_edit, "The S3 access key ID; empty with an AWS sign-in profile"),
            (self.secret_edit, "The S3 secret access key, kept in the keyring"),
            (self.aws_profile_edit, "Instead of a key: a profile of the AWS configuration"),
            (self.proxy_edit, "An HTTP(S) proxy; empty: HTTPS_PROXY from the environment"),
            (self.catalog_edit, "A database URL for the catalog; empty: a file here"),
        ):
            widget.setAccessibleDescription(description)
        for label, widget in (
            ("Profile &name", self.name_edit),
            ("&Endpoint", self.endpoint_edit),
            ("&Region", self.region_edit),
            ("B&ucket", self.bucket_edit),
            ("Key prefi&x", self.prefix_edit),
            ("&Access key ID", self.access_key_edit),
            ("&Secret key", self.secret_edit),
            ("AWS sign-&in profile", self.aws_profile_edit),
            ("&HTTP(S) proxy", self.proxy_edit),
            ("Ca&talog URL", self.catalog_edit),
        ):
            fit_placeholder(widget)
            form.addRow(label, widget)
        self.test_button = QPushButton("Test c&onnection")
        self.test_button.clicked.connect(self.test_connection)
        # One line per check, each as long as its reason: wrapped, scrolled, never cut.
        self.test_result = OutputBox(result_lines, "What “Test connection” finds shows here.")
        self.test_button.setToolTip("Check credentials, bucket, write access and catalog")
        accessible(self.test_result, "Test results", "What Test connection found, a line a check")
        form.addRow(self.test_button, self.test_result)
        self.tester = ConnectionTester(self)
        self.tester.finished.connect(self._show_test_result)

    def say_of_secret(self, placeholder: str, tooltip: str = "") -> None:
        """What the empty Secret key field stands for (Settings: what is stored)."""
        self.secret_edit.setPlaceholderText(placeholder)
        self.secret_edit.setToolTip(tooltip)
        self.secret_edit.setAccessibleDescription(f"The S3 secret access key: {placeholder}")
        fit_placeholder(self.secret_edit)

    def show_profile(self, profile: Profile) -> None:
        self.name_edit.setText(profile.name)
        self.endpoint_edit.setText(profile.endpoint_url or "")
        self.region_edit.setText(profile.region)
        self.bucket_edit.setText(profile.bucket)
        self.prefix_edit.setText(profile.prefix)
        self.access_key_edit.setText(profile.access_key_id or "")
        self.secret_edit.clear()
        self.aws_profile_edit.setText(profile.aws_profile or "")
        self.proxy_edit.setText(profile.proxy_url or "")
        self.catalog_edit.setText(profile.catalog_url)
        self.test_result.clear()

    def apply_to_template(self, template: Profile | None = None) -> Profile:
        """The template (or a new profile) with this form's destination; not validated."""
        name = self.name_edit.text().strip()
        base = template or Profile(name=name, bucket="", catalog_url="")
        return dataclasses.replace(
            base,
            name=name,
            bucket=self.bucket_edit.text().strip(),
            catalog_url=self.catalog_edit.text().strip()
            or self.env.paths.default_catalog_url(name),
            endpoint_url=self.endpoint_edit.text().strip() or None,
            region=self.region_edit.text().strip() or "us-east-1",
            prefix=self.prefix_edit.text().strip(),
            access_key_id=self.access_key_edit.text().strip() or None,
            aws_profile=self.aws_profile_edit.text().strip() or None,
            proxy_url=self.proxy_edit.text().strip() or None,
        )

    def test_connection(self) -> None:
        try:
            profile = self.profile_for_test()
            profile.validate()
            customer_key = self.typed_customer_key()
        except FerryError as exc:
            self.test_result.setPlainText(exc.message)
            return
        self.test_button.setEnabled(False)
        self.test_result.setPlainText("Testing…")
        self.tester.start(self.env, profile, self.secret_edit.text(), customer_key)

    def _show_test_result(self, text: str) -> None:
        self.test_button.setEnabled(True)
        self.test_result.setPlainText(text)

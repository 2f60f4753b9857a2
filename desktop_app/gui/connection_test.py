""" "Test connection" for a profile being edited, run off the GUI thread.

Used by the first-run dialog and Settings: the same checks as
``ferry profile test`` (endpoint, credentials, bucket, write, catalog). A secret
typed into the form is used for the test only; nothing is stored.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from desktop_app.core.app import CheckResult, Environment, diagnose_profile
from desktop_app.core.config import Profile
from desktop_app.core.errors import FerryError
from desktop_app.core.keys import SecretKind, SecretStore


class _TypedSecret:
    """A keyring that knows only the S3 secret typed into the form."""

    priority = 1

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def get_password(self, _service: str, username: str) -> str | None:
        return self._secret if username.endswith(SecretKind.S3_SECRET_KEY.value) else None

    def set_password(self, *_args: str) -> None:
        pass

    def delete_password(self, *_args: str) -> None:
        pass


def describe(results: list[CheckResult]) -> str:
    return "\n".join(f"{'✔' if r.ok else '✘'} {r.name}: {r.detail}" for r in results)


class ConnectionTester(QObject):
    finished = Signal(str)  # one line per check, ✔ or ✘

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: threading.Thread | None = None

    def start(self, env: Environment, profile: Profile, typed_secret: str) -> None:
        """Test in the background; an empty typed secret means the stored one."""
        if typed_secret:
            env = Environment(env.paths, env.environ, SecretStore(_TypedSecret(typed_secret)))

        def run() -> None:
            try:
                results = diagnose_profile(env, profile)
            except FerryError as exc:
                results = [CheckResult("profile", False, exc.message)]
            self.finished.emit(describe(results))

        self._thread = threading.Thread(target=run, name="ferry-test-connection", daemon=True)
        self._thread.start()

    def wait(self, timeout: float = 30) -> None:
        if self._thread is not None:
            self._thread.join(timeout=timeout)

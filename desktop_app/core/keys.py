"""Secrets: the S3 secret key and the catalog password.

Secrets live in the OS keyring (service ``ferry``). Where no usable keyring is
reachable (a backend of priority below 1, or keyring's ``fail`` backend, as on
a headless Linux box), Ferry warns and falls back to the standard AWS
variables and credential files as boto3 reads them, and says which source it
used. A secret is never written anywhere else, never logged and never part of
an exception message.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import boto3
import keyring
import keyring.errors

from desktop_app.core.config import Profile
from desktop_app.core.errors import ConfigError, SecretStoreError

SERVICE = "ferry"
# The sandbox server runs with authentication off on loopback, so its
# credentials are placeholders, not secrets.
SANDBOX_ACCESS_KEY = "ferry-sandbox"
SANDBOX_SECRET_KEY = "ferry-sandbox-not-a-secret"


class SecretKind(enum.Enum):
    S3_SECRET_KEY = "s3-secret-key"
    CATALOG_PASSWORD = "catalog-password"


class CredentialSource(enum.Enum):
    KEYRING = "keyring"
    ENVIRONMENT = "environment variables"
    AWS_FILES = "AWS credential files"
    SANDBOX = "local sandbox"
    NONE = "none"


class KeyringBackend(Protocol):
    priority: Any

    def get_password(self, service: str, username: str) -> str | None: ...

    def set_password(self, service: str, username: str, password: str) -> None: ...

    def delete_password(self, service: str, username: str) -> None: ...


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str | None
    secret_access_key: str | None = field(repr=False)
    source: CredentialSource
    session_token: str | None = field(default=None, repr=False)


class SecretStore:
    """Reads and writes Ferry's secrets in a keyring backend (injected)."""

    def __init__(self, backend: KeyringBackend | None = None) -> None:
        chosen: Any = backend if backend is not None else keyring.get_keyring()
        self.backend: KeyringBackend = chosen
        self._injected = backend is not None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Sent to the window's engine process: the system keyring is looked up
        # again there (its backend may hold unpicklable connections); an
        # injected backend (tests) travels as it is.
        return (SecretStore, (self.backend,) if self._injected else ())

    @property
    def usable(self) -> bool:
        module = type(self.backend).__module__
        if module.startswith("keyring.backends.fail"):
            return False
        try:
            return float(self.backend.priority) >= 1
        except (TypeError, ValueError):
            return False

    def describe(self) -> str:
        return f"{type(self.backend).__module__}.{type(self.backend).__name__}"

    @staticmethod
    def _username(profile_name: str, kind: SecretKind) -> str:
        return f"{profile_name}/{kind.value}"

    def get(self, profile_name: str, kind: SecretKind) -> str | None:
        if not self.usable:
            return None
        try:
            return self.backend.get_password(SERVICE, self._username(profile_name, kind))
        except keyring.errors.KeyringError as exc:
            raise SecretStoreError(
                f"The keyring could not be read ({type(exc).__name__}). Unlock it and retry."
            ) from None

    def set(self, profile_name: str, kind: SecretKind, value: str) -> None:
        if not self.usable:
            raise SecretStoreError(
                f"No usable keyring is available ({self.describe()}), so Ferry will not store "
                "the secret. Set AWS_SECRET_ACCESS_KEY or use ~/.aws/credentials instead, or "
                "install a keyring backend (e.g. GNOME Keyring, KWallet)."
            )
        try:
            self.backend.set_password(SERVICE, self._username(profile_name, kind), value)
        except keyring.errors.KeyringError as exc:
            raise SecretStoreError(
                f"The keyring refused to store the secret ({type(exc).__name__})."
            ) from None

    def delete(self, profile_name: str, kind: SecretKind) -> None:
        if not self.usable:
            return
        try:
            self.backend.delete_password(SERVICE, self._username(profile_name, kind))
        except keyring.errors.PasswordDeleteError:
            pass
        except keyring.errors.KeyringError as exc:
            raise SecretStoreError(
                f"The keyring refused to delete the secret ({type(exc).__name__})."
            ) from None


def resolve_s3_credentials(
    profile: Profile, secrets: SecretStore, environ: Mapping[str, str]
) -> S3Credentials:
    """Find the S3 credentials for a profile, and say where they came from.

    Order: sandbox placeholders; keyring (with the profile's access key id);
    AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; the AWS shared credential files.
    """
    if profile.sandbox:
        return S3Credentials(SANDBOX_ACCESS_KEY, SANDBOX_SECRET_KEY, CredentialSource.SANDBOX)
    if profile.access_key_id:
        secret = secrets.get(profile.name, SecretKind.S3_SECRET_KEY)
        if secret:
            return S3Credentials(profile.access_key_id, secret, CredentialSource.KEYRING)
    env_key, env_secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if env_key and env_secret:
        return S3Credentials(
            env_key, env_secret, CredentialSource.ENVIRONMENT, environ.get("AWS_SESSION_TOKEN")
        )
    session = boto3.session.Session(profile_name=environ.get("AWS_PROFILE") or None)
    found = session.get_credentials()
    if found is not None:
        frozen = found.get_frozen_credentials()
        return S3Credentials(
            frozen.access_key, frozen.secret_key, CredentialSource.AWS_FILES, frozen.token
        )
    return S3Credentials(None, None, CredentialSource.NONE)


def require_s3_credentials(
    profile: Profile, secrets: SecretStore, environ: Mapping[str, str]
) -> S3Credentials:
    credentials = resolve_s3_credentials(profile, secrets, environ)
    if credentials.source is CredentialSource.NONE:
        hint = (
            "the keyring has no secret for it"
            if secrets.usable
            else f"no usable keyring is available ({secrets.describe()})"
        )
        raise ConfigError(
            f"No S3 credentials for profile {profile.name!r}: {hint}, and neither "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY nor ~/.aws/credentials provide any. "
            f"Run `ferry profile add {profile.name} --access-key-id ID` to store a secret.",
            title="No credentials",
        )
    return credentials


def catalog_password(
    profile: Profile, secrets: SecretStore, environ: Mapping[str, str]
) -> str | None:
    """The catalog password: keyring first, then PGPASSWORD as libpq reads it."""
    stored = secrets.get(profile.name, SecretKind.CATALOG_PASSWORD)
    return stored or environ.get("PGPASSWORD") or None

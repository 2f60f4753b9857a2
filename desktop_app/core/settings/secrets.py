"""Secrets: the S3 secret key, the catalog password and an SSE-C customer key.

Secrets live in the OS keyring (service ``ferry``). Where no usable keyring is
reachable (a backend of priority below 1, or keyring's ``fail`` backend, as on
a headless Linux box), Ferry warns and falls back to the standard AWS
variables and credential files as boto3 reads them, and says which source it
used. A profile may instead name a profile of the AWS configuration
(``aws_profile``): boto3 then resolves SSO, assume-role, ``credential_process``
or web identity itself and refreshes them; Ferry holds only the boto3 session.
A secret is never written anywhere else, never logged and never part of an
exception message. botocore's credential errors are translated here.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import enum
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from desktop_app.core.model.errors import (
    ConfigError,
    ErrorCause,
    SecretStoreError,
    SignInRequiredError,
)
from desktop_app.core.settings.profiles import Encryption, Profile

# boto3 and keyring are imported where they are used: a command that reads no
# secret from them (`ferry status` with keys in the environment) loads neither.
if TYPE_CHECKING:
    import boto3
    from botocore.exceptions import BotoCoreError

SERVICE = "ferry"
BACKEND_VARIABLE = "PYTHON_KEYRING_BACKEND"
# The sandbox server runs with authentication off on loopback, so its
# credentials are placeholders, not secrets.
SANDBOX_ACCESS_KEY = "ferry-sandbox"
SANDBOX_SECRET_KEY = "ferry-sandbox-not-a-secret"


class SecretKind(enum.Enum):
    S3_SECRET_KEY = "s3-secret-key"
    CATALOG_PASSWORD = "catalog-password"
    # The 256-bit key of a profile with sse = "SSE-C", as base64 (44 characters).
    SSE_CUSTOMER_KEY = "sse-customer-key"


class CredentialSource(enum.Enum):
    KEYRING = "keyring"
    ENVIRONMENT = "environment variables"
    AWS_PROFILE = "the profile's AWS configuration profile"
    AWS_FILES = "the AWS configuration (AWS_PROFILE, credential files, web identity)"
    SANDBOX = "local sandbox"
    NONE = "none"


class KeyringBackend(Protocol):
    priority: Any

    def get_password(self, service: str, username: str) -> str | None: ...

    def set_password(self, service: str, username: str, password: str) -> None: ...

    def delete_password(self, service: str, username: str) -> None: ...


@dataclass(frozen=True)
class S3Credentials:
    """Keys found for a profile, or a boto3 session that finds and refreshes its own."""

    access_key_id: str | None
    secret_access_key: str | None = field(repr=False)
    source: CredentialSource
    session_token: str | None = field(default=None, repr=False)
    # Credentials that expire (SSO, assume-role, credential_process) are
    # refreshed by this session's provider; the client must be made from it.
    session: boto3.session.Session | None = field(default=None, repr=False, compare=False)
    # The SSE-C key (32 raw bytes) of a profile with sse = "SSE-C", from the keyring.
    sse_customer_key: bytes | None = field(default=None, repr=False, compare=False)


CUSTOMER_KEY_BYTES = 32


def parse_customer_key(text: str) -> bytes:
    """The 32 bytes of an SSE-C key given as base64; ConfigError for anything else.

    The message never repeats what was given: it may be the key, mistyped.
    """
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != CUSTOMER_KEY_BYTES:
        raise ConfigError(
            "The SSE-C customer key must be the base64 of exactly 32 random bytes (44 "
            "characters, e.g. from `openssl rand -base64 32`); what was given is not. "
            "Nothing was saved.",
            title="Not a customer key",
            cause=ErrorCause.CREDENTIALS,
        )
    return key


def customer_key(profile: Profile, secrets: SecretStore) -> bytes | None:
    """The profile's SSE-C key from the keyring (None: none stored, or not SSE-C)."""
    if profile.encryption is not Encryption.SSE_C:
        return None
    stored = secrets.get(profile.name, SecretKind.SSE_CUSTOMER_KEY)
    if not stored:
        return None
    try:
        return parse_customer_key(stored)
    except ConfigError:
        raise ConfigError(
            f"The SSE-C customer key kept in the keyring for profile {profile.name!r} is not "
            "the base64 of 32 bytes. Store the right key again with `ferry profile add "
            f"{profile.name} … --sse SSE-C --sse-customer-key-stdin`.",
            title="Customer key unusable",
            cause=ErrorCause.CREDENTIALS,
        ) from None


class SecretStore:
    """Reads and writes Ferry's secrets in a keyring backend (injected)."""

    def __init__(self, backend: KeyringBackend | None = None) -> None:
        self._backend = backend
        self._injected = backend is not None

    @property
    def backend(self) -> KeyringBackend:
        """The keyring, looked up at its first use: finding the system's costs
        80 ms of plugin loading that a command reading no secret (`ferry
        status`, `ferry ls`) should not pay, and a keyring that cannot be
        loaded is reported by the command that needs one."""
        if self._backend is None:
            self._backend = system_keyring()
        return self._backend

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Sent to the window's engine process: the system keyring is looked up
        # again there (its backend may hold unpicklable connections); an
        # injected backend (tests) travels as it is.
        return (SecretStore, (self._backend,) if self._injected else ())

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
        import keyring.errors

        try:
            return self.backend.get_password(SERVICE, self._username(profile_name, kind))
        except keyring.errors.KeyringError as exc:
            raise SecretStoreError(
                f"The keyring could not be read ({type(exc).__name__}). Unlock it and retry."
            ) from exc

    def set(self, profile_name: str, kind: SecretKind, value: str) -> None:
        if not self.usable:
            raise SecretStoreError(
                f"No usable keyring is available ({self.describe()}), so Ferry will not store "
                "the secret. Set AWS_SECRET_ACCESS_KEY (it goes with the profile's access key "
                "id) or use ~/.aws/credentials instead, or "
                "install a keyring backend (e.g. GNOME Keyring, KWallet)."
            )
        import keyring.errors

        try:
            self.backend.set_password(SERVICE, self._username(profile_name, kind), value)
        except keyring.errors.KeyringError as exc:
            raise SecretStoreError(
                f"The keyring refused to store the secret ({type(exc).__name__})."
            ) from exc

    def delete(self, profile_name: str, kind: SecretKind) -> None:
        if not self.usable:
            return
        import keyring.errors

        try:
            self.backend.delete_password(SERVICE, self._username(profile_name, kind))
        except keyring.errors.PasswordDeleteError:
            pass
        except keyring.errors.KeyringError as exc:
            raise SecretStoreError(
                f"The keyring refused to delete the secret ({type(exc).__name__})."
            ) from exc


def system_keyring() -> KeyringBackend:
    """The keyring `keyring` chooses for this user, PYTHON_KEYRING_BACKEND honoured.

    An empty PYTHON_KEYRING_BACKEND (``PYTHON_KEYRING_BACKEND=``) counts as unset,
    as an empty variable does for most programs: keyring itself would fail on it
    ("Empty module name"). A backend that cannot be loaded, named there or in
    keyring's own configuration file, is a ConfigError that names it.
    """
    import keyring

    named = os.environ.get(BACKEND_VARIABLE)
    try:
        if named is not None and not named.strip():
            with _unset(BACKEND_VARIABLE):
                return cast(KeyringBackend, keyring.get_keyring())
        return cast(KeyringBackend, keyring.get_keyring())
    except (ImportError, AttributeError, ValueError, RuntimeError) as exc:
        if named and named.strip():
            where = f"{BACKEND_VARIABLE} names the keyring backend {named.strip()!r}"
            todo = (
                "Fix the name (e.g. keyring.backends.SecretService.Keyring) "
                f"or unset {BACKEND_VARIABLE}"
            )
        else:
            where = "keyring's configuration file (keyringrc.cfg) names a keyring backend"
            todo = (
                "Fix its default-keyring line or remove it (`keyring diagnose` shows where it is)"
            )
        raise ConfigError(
            f"{where}, which cannot be loaded here ({type(exc).__name__}). {todo}, then try again.",
            title="Keyring problem",
            cause=ErrorCause.CREDENTIALS,
        ) from exc


@contextlib.contextmanager
def _unset(name: str) -> Iterator[None]:
    """The environment without ``name`` for a moment, as it was afterwards."""
    value = os.environ.pop(name, None)
    try:
        yield
    finally:
        if value is not None:
            os.environ[name] = value


def resolve_s3_credentials(
    profile: Profile, secrets: SecretStore, environ: Mapping[str, str]
) -> S3Credentials:
    """Find the S3 credentials for a profile (with its SSE-C key, where it has
    one in the keyring), and say where they came from (see :func:`_resolve`)."""
    found = _resolve(profile, secrets, environ)
    key = customer_key(profile, secrets)
    return dataclasses.replace(found, sse_customer_key=key) if key else found


def _resolve(profile: Profile, secrets: SecretStore, environ: Mapping[str, str]) -> S3Credentials:
    """Find the S3 credentials for a profile, and say where they came from.

    Order: sandbox placeholders; the profile's AWS configuration profile;
    keyring (with the profile's access key id); AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY (the secret alone: with the profile's access key
    id); the rest of the AWS chain (AWS_PROFILE, files, web
    identity). Raises SignInRequiredError when an SSO sign-in has expired.
    """
    if profile.sandbox:
        return S3Credentials(SANDBOX_ACCESS_KEY, SANDBOX_SECRET_KEY, CredentialSource.SANDBOX)
    if profile.aws_profile:
        return _from_aws_config(profile, profile.aws_profile, CredentialSource.AWS_PROFILE)
    if profile.access_key_id:
        secret = secrets.get(profile.name, SecretKind.S3_SECRET_KEY)
        if secret:
            return S3Credentials(profile.access_key_id, secret, CredentialSource.KEYRING)
    env_secret = environ.get("AWS_SECRET_ACCESS_KEY")
    # The secret alone in the environment (where no keyring can keep it) goes
    # with the profile's own access key id, unless the environment names one too.
    env_key = environ.get("AWS_ACCESS_KEY_ID") or (profile.access_key_id if env_secret else None)
    if env_key and env_secret:
        return S3Credentials(
            env_key, env_secret, CredentialSource.ENVIRONMENT, environ.get("AWS_SESSION_TOKEN")
        )
    return _from_aws_config(profile, environ.get("AWS_PROFILE") or None, CredentialSource.AWS_FILES)


def _from_aws_config(
    profile: Profile, aws_profile: str | None, source: CredentialSource
) -> S3Credentials:
    """Credentials through boto3's own chain for an AWS profile (None: its default)."""
    import boto3.session
    from botocore.exceptions import BotoCoreError, ProfileNotFound

    try:
        session = boto3.session.Session(profile_name=aws_profile)
        if session.region_name is None:
            # STS (assume-role) needs a region; the AWS profile may leave it out.
            session = boto3.session.Session(profile_name=aws_profile, region_name=profile.region)
        found = session.get_credentials()
        # Providers such as SSO defer the fetch: freezing makes it happen now,
        # so an expired sign-in is reported before any transfer starts.
        frozen = found.get_frozen_credentials() if found is not None else None
    except ProfileNotFound:
        by_profile = source is CredentialSource.AWS_PROFILE
        named_by = f"Profile {profile.name!r}" if by_profile else "AWS_PROFILE"
        raise ConfigError(
            f"{named_by} names the AWS profile {aws_profile!r}, which is not in the AWS "
            "configuration (~/.aws/config or AWS_CONFIG_FILE). Add it there "
            "(`aws configure sso` or by hand) or fix the name.",
            title="No credentials",
            cause=ErrorCause.CREDENTIALS,
        ) from None
    except BotoCoreError as exc:
        raise aws_credential_error(exc, profile.name, aws_profile) from exc
    if frozen is None or not frozen.access_key:
        return S3Credentials(None, None, CredentialSource.NONE)
    return S3Credentials(
        frozen.access_key, frozen.secret_key, source, frozen.token, session=session
    )


def aws_credential_error(
    exc: BotoCoreError, profile_name: str, aws_profile: str | None
) -> ConfigError:
    """A botocore credential failure said plainly: sign in again, or fix the AWS profile."""
    from botocore.exceptions import CredentialRetrievalError, SSOError, TokenRetrievalError

    which = f"AWS profile {aws_profile!r}" if aws_profile else "the default AWS profile"
    if isinstance(exc, SSOError | TokenRetrievalError):
        return SignInRequiredError(
            f"The AWS sign-in (IAM Identity Center) of {which} has expired or was never made. "
            f"Run `ferry profile login {profile_name}` (or `aws sso login"
            f"{' --profile ' + aws_profile if aws_profile else ''}`), then try again."
        )
    if isinstance(exc, CredentialRetrievalError):
        # Not the error's text: a credential_process may print anything, secrets too.
        provider = exc.kwargs.get("provider", "its provider")
        return ConfigError(
            f"The credentials of {which} could not be obtained from {provider}. Fix that "
            "profile in the AWS configuration (its credential_process or role), then try again.",
            title="No credentials",
            cause=ErrorCause.CREDENTIALS,
        )
    return ConfigError(
        f"The credentials of {which} could not be obtained ({type(exc).__name__}). Fix that "
        "profile in the AWS configuration, then try again.",
        title="No credentials",
        cause=ErrorCause.CREDENTIALS,
    )


def require_s3_credentials(
    profile: Profile, secrets: SecretStore, environ: Mapping[str, str]
) -> S3Credentials:
    credentials = resolve_s3_credentials(profile, secrets, environ)
    if credentials.source is CredentialSource.NONE:
        if secrets.usable:
            hint = "the keyring has no secret for it"
            todo = (
                f"Run `ferry profile add {profile.name} --access-key-id ID` to store a secret, "
                f"or name an AWS profile with `--aws-profile NAME`."
            )
        else:
            hint = f"no usable keyring is available ({secrets.describe()})"
            todo = (
                "Without a keyring Ferry cannot store a secret: set AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY, or name an AWS profile (`ferry profile add "
                f"{profile.name} --aws-profile NAME`, or AWS_PROFILE)."
            )
        raise ConfigError(
            f"No S3 credentials for profile {profile.name!r}: {hint}, and neither "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY nor the AWS configuration provide any. "
            + todo,
            title="No credentials",
            cause=ErrorCause.CREDENTIALS,
        )
    return credentials


def describe_encryption(profile: Profile, credentials: S3Credentials) -> str:
    """The encryption line of `ferry profile test` (never the key itself)."""
    kind = profile.encryption
    if kind is Encryption.SSE_C:
        held = "in the keyring" if credentials.sse_customer_key else "missing"
        return f"SSE-C (AES256 with the profile's customer key: {held})"
    if kind is Encryption.KMS:
        return f"aws:kms (key {profile.sse_kms_key_id or 'the account default for S3'})"
    if kind is Encryption.AES256:
        return "AES256 (SSE-S3, keys kept by the server)"
    return "the bucket's default (Ferry asks for none)"


def missing_customer_key(profile: Profile) -> str:
    return (
        f"Profile {profile.name!r} encrypts with SSE-C, and the keyring holds no customer key "
        "for it, so Ferry can neither write nor read its objects. Store the key with `ferry "
        f"profile add {profile.name} … --sse SSE-C --sse-customer-key-stdin` (the base64 of "
        "32 bytes on stdin); objects written with a key that is lost cannot be read again."
    )


def catalog_password(
    profile: Profile, secrets: SecretStore, environ: Mapping[str, str]
) -> str | None:
    """The catalog password: keyring first, then PGPASSWORD as libpq reads it;
    None for an SQLite file, which has none (and then the keyring is not asked:
    opening it costs a start some tens of milliseconds, a D-Bus round trip on Linux)."""
    if profile.catalog_url.startswith("sqlite:"):
        return None
    stored = secrets.get(profile.name, SecretKind.CATALOG_PASSWORD)
    return stored or environ.get("PGPASSWORD") or None
